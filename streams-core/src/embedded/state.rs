//! What the embedded broker holds: topics of partition logs, and consumer groups with their members,
//! assignments and committed offsets. Plain data behind one lock; the clients in `clients.rs` take the
//! lock, change or read this, and let go before calling back into the runtime.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::sync::Arc;

use crate::client::TopicPartition;
use crate::record::{Headers, RawRecord};

/// One record as the broker stores it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Headers,
}

impl Stored {
    /// The record as a consumer of `topic`-`partition` receives it.
    pub(crate) fn to_raw(&self, topic: &Arc<str>, partition: i32) -> RawRecord {
        RawRecord {
            topic: topic.clone(),
            partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// A partition's log: records in offset order. Compaction leaves gaps in the offsets, as in Kafka.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    pub(crate) records: Vec<Stored>,
    /// The offset the next record gets (Kafka's log end offset, the high watermark here).
    pub(crate) next_offset: i64,
}

impl PartitionLog {
    pub(crate) fn append(
        &mut self,
        timestamp: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Headers,
    ) -> i64 {
        let offset = self.next_offset;
        self.records.push(Stored { offset, timestamp, key, value, headers });
        self.next_offset += 1;
        offset
    }

    /// The first offset still in the log (the end offset when empty).
    pub(crate) fn start_offset(&self) -> i64 {
        self.records.first().map_or(self.next_offset, |r| r.offset)
    }

    /// Up to `max` records from offset `from` on.
    pub(crate) fn read(&self, from: i64, max: usize) -> &[Stored] {
        let start = self.records.partition_point(|r| r.offset < from);
        let end = (start + max).min(self.records.len());
        &self.records[start..end]
    }

    /// Keeps only the latest record of each key (a null-key record is kept as is), like Kafka's log
    /// cleaner over the whole log. Tombstones stay, so a reader replaying the log still sees the delete.
    pub(crate) fn compact(&mut self) {
        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for r in &self.records {
            if let Some(key) = &r.key {
                latest.insert(key, r.offset);
            }
        }
        let keep: BTreeSet<i64> = latest.into_values().collect();
        self.records.retain(|r| r.key.is_none() || keep.contains(&r.offset));
    }
}

/// A topic: its partitions and whether its log is compacted.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) partitions: Vec<PartitionLog>,
    pub(crate) compacted: bool,
}

/// A member of a consumer group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) subscription: Vec<String>,
    /// Whether it has given up its partitions since the group's membership last changed.
    pub(crate) rejoined: bool,
    /// Its partitions in the current assignment (empty while it rejoins).
    pub(crate) assignment: Vec<TopicPartition>,
    /// The broker time (ms) of its last poll, for the session timeout.
    pub(crate) last_seen_ms: i64,
    pub(crate) session_timeout_ms: i64,
}

/// A consumer group (Kafka's classic protocol with an eager range assignor, as librdkafka's `range`).
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) members: BTreeMap<String, Member>,
    /// The assignment after the last membership change, once every member has rejoined.
    pub(crate) assignment: Option<BTreeMap<String, Vec<TopicPartition>>>,
    pub(crate) committed: HashMap<TopicPartition, i64>,
}

impl Group {
    /// Membership changed: every member must give up its partitions and rejoin.
    pub(crate) fn rebalance(&mut self) {
        self.assignment = None;
        for member in self.members.values_mut() {
            member.rejoined = false;
        }
    }

    /// Removes members whose session expired at `now_ms`; true if any was removed.
    pub(crate) fn expire(&mut self, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| now_ms - m.last_seen_ms <= m.session_timeout_ms);
        let expired = self.members.len() != before;
        if expired {
            self.rebalance();
        }
        expired
    }

    /// Computes the assignment once every member has rejoined: Kafka's range assignor, per topic.
    pub(crate) fn assign_if_ready(&mut self, topics: &HashMap<String, Topic>) {
        if self.assignment.is_some() || self.members.values().any(|m| !m.rejoined) {
            return;
        }
        let mut assignment: BTreeMap<String, Vec<TopicPartition>> =
            self.members.keys().map(|id| (id.clone(), Vec::new())).collect();
        let all_topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.subscription).collect();
        for topic in all_topics {
            let Some(t) = topics.get(topic) else { continue };
            // Members subscribed to the topic, sorted by member id, as the range assignor sorts them.
            let subscribers: Vec<&String> =
                self.members.iter().filter(|(_, m)| m.subscription.contains(topic)).map(|(id, _)| id).collect();
            let (n, count) = (t.partitions.len(), subscribers.len());
            if count == 0 {
                continue;
            }
            let (per, extra) = (n / count, n % count);
            let mut next = 0;
            for (i, member) in subscribers.iter().enumerate() {
                let take = per + usize::from(i < extra);
                for p in next..next + take {
                    assignment.get_mut(*member).expect("listed").push(TopicPartition::new(topic, p as i32));
                }
                next += take;
            }
        }
        self.assignment = Some(assignment);
    }
}

/// Everything the broker holds.
#[derive(Debug, Default)]
pub(crate) struct BrokerState {
    pub(crate) topics: HashMap<String, Topic>,
    pub(crate) groups: HashMap<String, Group>,
    /// Member ids handed out so far, to make each unique.
    pub(crate) members_created: u64,
    /// Null-key records spread round robin.
    pub(crate) round_robin: u64,
}

impl BrokerState {
    /// The log of `tp`, if the topic and partition exist.
    pub(crate) fn log(&self, tp: &TopicPartition) -> Option<&PartitionLog> {
        log_of(&self.topics, tp)
    }
}

/// The log of `tp` among `topics` (for callers that hold another part of the state mutably).
pub(crate) fn log_of<'a>(topics: &'a HashMap<String, Topic>, tp: &TopicPartition) -> Option<&'a PartitionLog> {
    topics.get(&*tp.topic)?.partitions.get(usize::try_from(tp.partition).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(subscription: &[&str]) -> Member {
        Member {
            subscription: subscription.iter().map(|s| s.to_string()).collect(),
            rejoined: true,
            assignment: Vec::new(),
            last_seen_ms: 0,
            session_timeout_ms: 45_000,
        }
    }

    #[test]
    fn range_assignment_gives_co_partitioned_partitions_to_the_same_member() {
        let mut topics = HashMap::new();
        for name in ["a", "b"] {
            let partitions = (0..5).map(|_| PartitionLog::default()).collect();
            topics.insert(name.to_string(), Topic { partitions, compacted: false });
        }
        let mut group = Group::default();
        group.members.insert("m1".into(), member(&["a", "b"]));
        group.members.insert("m2".into(), member(&["a", "b"]));
        group.assign_if_ready(&topics);
        let assignment = group.assignment.unwrap();
        let parts = |m: &str, t: &str| -> Vec<i32> {
            assignment[m].iter().filter(|tp| &*tp.topic == t).map(|tp| tp.partition).collect()
        };
        assert_eq!(parts("m1", "a"), vec![0, 1, 2], "the first member takes the extra partition");
        assert_eq!(parts("m2", "a"), vec![3, 4]);
        assert_eq!(parts("m1", "a"), parts("m1", "b"), "same partitions of both topics");
    }

    #[test]
    fn compaction_keeps_the_latest_record_per_key_and_tombstones() {
        let mut log = PartitionLog::default();
        for (k, v) in [("a", Some("1")), ("b", Some("1")), ("a", Some("2")), ("b", None)] {
            log.append(0, Some(k.as_bytes().to_vec()), v.map(|v| v.as_bytes().to_vec()), Headers::new());
        }
        log.compact();
        let left: Vec<i64> = log.records.iter().map(|r| r.offset).collect();
        assert_eq!(left, vec![2, 3], "offsets keep their gaps");
        assert_eq!(log.next_offset, 4);
        assert_eq!(log.read(0, 10).len(), 2);
        assert_eq!(log.read(3, 10).len(), 1);
    }
}
