//! What the embedded broker holds: topics of partition logs, consumer groups with their members,
//! assignments and committed offsets, and transactional producers with their open transactions. Plain
//! data behind one lock; the clients in `clients.rs` take the lock, change or read this, and let go
//! before calling back into the runtime.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use std::sync::Arc;

use super::classic_group::ClassicGroup;
use super::journal::{Event, Journal};
use crate::client::{ClientError, OffsetAndMetadata, TopicPartition};
use crate::record::{Headers, RawRecord};

/// One record as the broker stores it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Headers,
    /// The transaction it was written in; `None` outside any.
    pub(crate) txn: Option<u64>,
    /// A transaction marker (commit or abort): it takes an offset, as in Kafka, but is never delivered.
    pub(crate) control: bool,
}

impl Stored {
    /// The record as a consumer of `topic`-`partition` receives it.
    pub(crate) fn to_raw(&self, topic: &Arc<str>, partition: i32) -> RawRecord {
        RawRecord {
            topic: topic.clone(),
            partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.as_deref().map(crate::buffers::copy_of),
            value: self.value.as_deref().map(crate::buffers::copy_of),
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
    /// Transactions with records here that are still open, and the offset of their first record here.
    pub(crate) open: BTreeMap<u64, i64>,
    /// Transactions with records here that were aborted: `read_committed` readers skip their records.
    pub(crate) aborted: HashSet<u64>,
}

impl PartitionLog {
    /// Appends a record (in transaction `txn`, if given); returns its offset.
    pub(crate) fn append(
        &mut self,
        timestamp: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Headers,
        txn: Option<u64>,
    ) -> i64 {
        let offset = self.next_offset;
        if let Some(txn) = txn {
            self.open.entry(txn).or_insert(offset);
        }
        self.records.push(Stored { offset, timestamp, key, value, headers, txn, control: false });
        self.next_offset += 1;
        offset
    }

    /// Ends transaction `txn` here with a marker; its records become visible (commit) or are skipped
    /// by `read_committed` readers from now on (abort). False if `txn` was not open here.
    pub(crate) fn end_transaction(&mut self, txn: u64, commit: bool, timestamp: i64) -> bool {
        if self.open.remove(&txn).is_none() {
            return false;
        }
        if !commit {
            self.aborted.insert(txn);
        }
        let offset = self.next_offset;
        let headers = Headers::new();
        self.records.push(Stored { offset, timestamp, key: None, value: None, headers, txn: Some(txn), control: true });
        self.next_offset += 1;
        true
    }

    /// The first offset a `read_committed` reader may not read yet: the first record of the oldest open
    /// transaction, or the end of the log (Kafka's last stable offset).
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.open.values().min().copied().unwrap_or(self.next_offset)
    }

    /// Where a reader stops: the last stable offset under `read_committed`, else the end of the log.
    pub(crate) fn read_end(&self, read_committed: bool) -> i64 {
        if read_committed {
            self.last_stable_offset()
        } else {
            self.next_offset
        }
    }

    /// Whether a reader sees `record`: never a marker, and under `read_committed` never a record of an
    /// aborted transaction.
    pub(crate) fn visible(&self, record: &Stored, read_committed: bool) -> bool {
        !record.control && (!read_committed || !record.txn.is_some_and(|t| self.aborted.contains(&t)))
    }

    /// The first offset still in the log (the end offset when empty).
    pub(crate) fn start_offset(&self) -> i64 {
        self.records.first().map_or(self.next_offset, |r| r.offset)
    }

    /// Deletes the records below `offset` (Kafka's DeleteRecords); the start offset becomes `offset`
    /// (or the first record after it).
    pub(crate) fn delete_before(&mut self, offset: i64) {
        let below = self.records.partition_point(|r| r.offset < offset);
        self.records.drain(..below);
    }

    /// Up to `max` records from offset `from` on.
    pub(crate) fn read(&self, from: i64, max: usize) -> &[Stored] {
        let start = self.records.partition_point(|r| r.offset < from);
        let end = (start + max).min(self.records.len());
        &self.records[start..end]
    }

    /// Keeps only the latest record of each key (a null-key record is kept as is), like Kafka's log
    /// cleaner. Tombstones stay, so a reader replaying the log still sees the delete. As in Kafka, only
    /// the log below the last stable offset is cleaned, and there aborted records and markers go.
    pub(crate) fn compact(&mut self) {
        let stable = self.last_stable_offset();
        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for r in self.records.iter().take_while(|r| r.offset < stable) {
            if let (Some(key), true) = (&r.key, self.visible(r, true)) {
                latest.insert(key, r.offset);
            }
        }
        let keep: BTreeSet<i64> = latest.into_values().collect();
        let aborted = &self.aborted;
        self.records.retain(|r| {
            let committed_data = !r.control && !r.txn.is_some_and(|t| aborted.contains(&t));
            r.offset >= stable || (committed_data && (r.key.is_none() || keep.contains(&r.offset)))
        });
    }
}

/// A topic: its partitions and whether its log is compacted.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) partitions: Vec<PartitionLog>,
    pub(crate) compacted: bool,
    /// `message.timestamp.after.max.ms`, when not the broker's default.
    pub(crate) timestamp_after_max_ms: Option<i64>,
}

/// Kafka 4's default `message.timestamp.after.max.ms`: a record stamped further than this ahead of the
/// broker's clock is refused.
pub(crate) const TIMESTAMP_AFTER_MAX_MS: i64 = 3_600_000;

impl Topic {
    /// Whether the broker takes a record stamped `timestamp` at `now_ms`, as Kafka's log validator.
    pub(crate) fn takes_timestamp(&self, timestamp: i64, now_ms: i64) -> bool {
        timestamp.saturating_sub(now_ms) <= self.timestamp_after_max_ms.unwrap_or(TIMESTAMP_AFTER_MAX_MS)
    }
}

/// A member of a consumer group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) subscription: Vec<String>,
    /// Whether it has given up its partitions since the group's membership last changed.
    pub(crate) rejoined: bool,
    /// Its partitions in the current assignment (empty while it rejoins).
    pub(crate) assignment: Vec<TopicPartition>,
    /// The broker's session time (monotonic ms) of its last poll, for the session timeout.
    pub(crate) last_seen_ms: i64,
    pub(crate) session_timeout_ms: i64,
    /// The group generation of its assignment: its commits count only while this is the group's.
    pub(crate) generation: i32,
}

/// A consumer group (Kafka's classic protocol with an eager range assignor, as librdkafka's `range`).
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) members: BTreeMap<String, Member>,
    /// The assignment after the last membership change, once every member has rejoined.
    pub(crate) assignment: Option<BTreeMap<String, Vec<TopicPartition>>>,
    /// Counts the assignments computed; a commit from a member of an older one is refused.
    pub(crate) generation: i32,
    pub(crate) committed: BTreeMap<TopicPartition, OffsetAndMetadata>,
    /// Members of the library's own ([`GroupMember`](crate::client::GroupMember)), on Kafka's classic protocol.
    pub(crate) classic: ClassicGroup,
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
    pub(crate) fn assign_if_ready(&mut self, topics: &BTreeMap<String, Topic>) {
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
        self.generation += 1;
    }

    /// Whether `member` of `generation` may commit: it is still in the group and no newer assignment
    /// was made without it (Kafka's ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID checks, which fence zombies).
    pub(crate) fn check_member(&self, member: &str, generation: i32, transactional: bool) -> Result<(), String> {
        if self.classic.has(member) {
            return self.classic.check(member, generation, transactional).map_err(|(_, why)| why);
        }
        match self.members.get(member) {
            None => Err(format!("member {member} is not in the group (its session timed out or it left)")),
            Some(m) if m.generation != generation || generation != self.generation => Err(format!(
                "member {member} commits for generation {generation}, but the group is at generation {}",
                self.generation
            )),
            Some(_) => Ok(()),
        }
    }
}

/// A transactional producer's registration: Kafka's producer epoch and its open transaction.
#[derive(Debug, Default)]
pub(crate) struct TransactionalProducer {
    /// Bumped by every `init_transactions` and by a timed-out transaction: an older epoch is fenced.
    pub(crate) epoch: u32,
    pub(crate) open: Option<OpenTransaction>,
}

/// A transaction that has begun writing or committing offsets and has not ended.
#[derive(Debug)]
pub(crate) struct OpenTransaction {
    pub(crate) id: u64,
    pub(crate) partitions: BTreeSet<TopicPartition>,
    /// Offsets to commit with it: group -> partition -> next offset.
    pub(crate) offsets: BTreeMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>>,
    /// When it began (broker time), for `transaction.timeout.ms`.
    pub(crate) started_ms: i64,
    pub(crate) timeout_ms: i64,
}

/// Failures the broker was told to inject (simulation).
#[derive(Debug, Default)]
pub(crate) struct InjectedFaults {
    /// Sends still to refuse.
    pub(crate) sends: u32,
    /// Topics whose next send is to be lost, one entry per send.
    pub(crate) lost_sends_to: Vec<String>,
    /// Commits (of offsets or of a transaction) still to fail with a timeout, in order; each says
    /// whether that commit takes effect all the same (the ambiguous outcome a timeout leaves).
    pub(crate) commits: std::collections::VecDeque<bool>,
}

impl InjectedFaults {
    /// Whether the next send is to be refused (and counts it).
    pub(crate) fn refuse_send(&mut self) -> bool {
        let refuse = self.sends > 0;
        self.sends = self.sends.saturating_sub(1);
        refuse
    }

    /// Whether the next send to `topic` is to be lost (and counts it).
    pub(crate) fn lose_send(&mut self, topic: &str) -> bool {
        let lost = self.lost_sends_to.iter().position(|t| t == topic);
        lost.map(|i| self.lost_sends_to.remove(i)).is_some()
    }
}

/// Everything the broker holds. Ordered maps throughout: whatever iterates them (transaction expiry,
/// assignment) does so in the same order every run, which a seeded simulation needs to replay.
#[derive(Debug, Default)]
pub(crate) struct BrokerState {
    pub(crate) topics: BTreeMap<String, Topic>,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Member ids handed out so far, to make each unique.
    pub(crate) members_created: u64,
    /// Null-key records spread round robin.
    pub(crate) round_robin: u64,
    /// Transactional producers by transactional id.
    pub(crate) producers: BTreeMap<String, TransactionalProducer>,
    /// Transaction ids handed out so far.
    pub(crate) transactions_created: u64,
    /// Transactions aborted because they were open longer than their timeout.
    pub(crate) transactions_timed_out: u64,
    pub(crate) faults: InjectedFaults,
    /// Where every change is also written, when the broker persists to a directory.
    pub(crate) journal: Option<Journal>,
}

impl BrokerState {
    /// The log of `tp`, if the topic and partition exist.
    pub(crate) fn log(&self, tp: &TopicPartition) -> Option<&PartitionLog> {
        log_of(&self.topics, tp)
    }

    fn journal(&mut self, event: impl FnOnce() -> Event) {
        if let Some(journal) = &mut self.journal {
            journal.write(&event());
        }
    }

    /// The partition a record goes to among `count`: the one given, else its key's (murmur2, as Java
    /// clients place keys), else the next one round robin.
    pub(crate) fn place(&mut self, partition: Option<i32>, key: Option<&[u8]>, count: i32) -> i32 {
        match (partition, key) {
            (Some(p), _) => p,
            (None, Some(key)) => crate::murmur2::partition_for_key(key, count),
            (None, None) => {
                self.round_robin += 1;
                (self.round_robin % count.max(1) as u64) as i32
            }
        }
    }

    /// Fails `operation` when the journal could not be written.
    pub(crate) fn check_journal(&self, operation: &str) -> Result<(), ClientError> {
        self.journal.as_ref().map_or(Ok(()), |j| j.check(operation))
    }

    /// Creates `name` unless it exists; true if it was created.
    pub(crate) fn create_topic(&mut self, name: &str, partitions: i32, compacted: bool) -> bool {
        self.create_topic_with(name, partitions, compacted, None)
    }

    /// [`create_topic`](Self::create_topic) with a `message.timestamp.after.max.ms` of its own.
    pub(crate) fn create_topic_with(
        &mut self,
        name: &str,
        partitions: i32,
        compacted: bool,
        timestamp_after_max_ms: Option<i64>,
    ) -> bool {
        if self.topics.contains_key(name) {
            return false;
        }
        let partitions = partitions.max(1);
        let logs = (0..partitions).map(|_| PartitionLog::default()).collect();
        self.topics.insert(name.to_string(), Topic { partitions: logs, compacted, timestamp_after_max_ms });
        self.journal(|| Event::Topic { name: name.to_string(), partitions, compacted, timestamp_after_max_ms });
        true
    }

    /// Appends a record to `topic`-`partition` (in transaction `txn`, if given); its offset, or `None`
    /// if there is no such partition.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Headers,
        txn: Option<u64>,
    ) -> Option<i64> {
        let log = self.topics.get_mut(topic)?.partitions.get_mut(usize::try_from(partition).ok()?)?;
        if self.journal.is_none() {
            return Some(log.append(timestamp, key, value, headers, txn));
        }
        let event = Event::Record {
            topic: topic.to_string(),
            partition,
            timestamp,
            key: key.clone(),
            value: value.clone(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec))).collect(),
            txn,
        };
        let offset = log.append(timestamp, key, value, headers, txn);
        self.journal(|| event);
        Some(offset)
    }

    /// Commits `committed` (an offset and its metadata, which replaces any earlier) for `tp` in `group`.
    pub(crate) fn commit_offset(&mut self, group: &str, tp: &TopicPartition, committed: OffsetAndMetadata) {
        let (offset, metadata) = (committed.offset, committed.metadata.clone());
        self.groups.entry(group.to_string()).or_default().committed.insert(tp.clone(), committed);
        self.journal(|| Event::Offset {
            group: group.to_string(),
            topic: tp.topic.to_string(),
            partition: tp.partition,
            offset,
            metadata,
        });
    }

    /// Deletes the records of `tp` below `offset`. An unknown partition, or an offset past the end of the
    /// log, is an error, as on Kafka (`UNKNOWN_TOPIC_OR_PARTITION`, `OFFSET_OUT_OF_RANGE`).
    pub(crate) fn delete_records(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), String> {
        let log = self.log_mut(tp).ok_or_else(|| format!("unknown topic or partition {tp}"))?;
        if offset < 0 || offset > log.next_offset {
            return Err(format!("offset {offset} is outside {tp}, which ends at {}", log.next_offset));
        }
        log.delete_before(offset);
        self.journal(|| Event::DeleteRecords { topic: tp.topic.to_string(), partition: tp.partition, offset });
        Ok(())
    }

    /// Compacts every compacted topic.
    pub(crate) fn compact(&mut self) {
        for topic in self.topics.values_mut().filter(|t| t.compacted) {
            topic.partitions.iter_mut().for_each(PartitionLog::compact);
        }
        self.journal(|| Event::Compact);
    }

    /// Rebuilds the state from `journal`'s `events`, attaches the journal, then aborts the
    /// transactions the events leave open: their producers are gone.
    pub(crate) fn replay(&mut self, events: Vec<Event>, journal: Journal, now_ms: i64) {
        for event in events {
            match event {
                Event::Topic { name, partitions, compacted, timestamp_after_max_ms } => {
                    self.create_topic_with(&name, partitions, compacted, timestamp_after_max_ms);
                }
                Event::Record { topic, partition, timestamp, key, value, headers, txn } => {
                    let headers = headers.into_iter().collect();
                    self.append(&topic, partition, timestamp, key, value, headers, txn);
                    self.transactions_created = self.transactions_created.max(txn.unwrap_or(0));
                }
                Event::EndTxn { topic, partition, txn, commit, timestamp } => {
                    let tp = TopicPartition::new(&topic, partition);
                    if let Some(log) = self.log_mut(&tp) {
                        log.end_transaction(txn, commit, timestamp);
                    }
                }
                Event::Offset { group, topic, partition, offset, metadata } => {
                    let committed = OffsetAndMetadata { offset, metadata };
                    self.commit_offset(&group, &TopicPartition::new(&topic, partition), committed);
                }
                Event::Compact => self.compact(),
                Event::DeleteRecords { topic, partition, offset } => {
                    // Replayed as it happened: it was valid when written.
                    let _ = self.delete_records(&TopicPartition::new(&topic, partition), offset);
                }
            }
        }
        self.journal = Some(journal);
        let open: Vec<(TopicPartition, u64)> = self
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions.iter().enumerate().flat_map(move |(p, log)| {
                    log.open.keys().map(move |txn| (TopicPartition::new(name, p as i32), *txn))
                })
            })
            .collect();
        for (tp, txn) in open {
            self.end_partition_transaction(&tp, txn, false, now_ms);
        }
    }

    fn log_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionLog> {
        self.topics.get_mut(&*tp.topic)?.partitions.get_mut(usize::try_from(tp.partition).ok()?)
    }

    /// Writes transaction `txn`'s marker on `tp`, if it is open there.
    fn end_partition_transaction(&mut self, tp: &TopicPartition, txn: u64, commit: bool, now_ms: i64) {
        let ended = self.log_mut(tp).is_some_and(|log| log.end_transaction(txn, commit, now_ms));
        if ended {
            self.journal(|| Event::EndTxn {
                topic: tp.topic.to_string(),
                partition: tp.partition,
                txn,
                commit,
                timestamp: now_ms,
            });
        }
    }

    /// Ends the open transaction of `transactional_id`, if any: markers on every partition it wrote
    /// and, on commit, its offsets committed into their groups.
    pub(crate) fn end_transaction(&mut self, transactional_id: &str, commit: bool, now_ms: i64) {
        let Some(txn) = self.producers.get_mut(transactional_id).and_then(|p| p.open.take()) else { return };
        for tp in &txn.partitions {
            self.end_partition_transaction(tp, txn.id, commit, now_ms);
        }
        if commit {
            for (group, offsets) in txn.offsets {
                for (tp, offset) in offsets {
                    self.commit_offset(&group, &tp, offset);
                }
            }
        }
    }

    /// Aborts every transaction open longer than its timeout and fences its producer, as Kafka's
    /// transaction coordinator does: a crashed instance's transaction does not block readers forever.
    pub(crate) fn expire_transactions(&mut self, now_ms: i64) {
        let expired: Vec<String> = self
            .producers
            .iter()
            .filter(|(_, p)| p.open.as_ref().is_some_and(|t| now_ms - t.started_ms > t.timeout_ms))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.transactions_timed_out += 1;
            self.end_transaction(&id, false, now_ms);
            if let Some(producer) = self.producers.get_mut(&id) {
                producer.epoch += 1;
            }
        }
    }

    /// Whether an open transaction holds offsets of `group` for `tp` not yet committed: a new owner of
    /// `tp` must wait for it to end before reading the committed offset (KIP-447).
    pub(crate) fn offsets_pending(&self, group: &str, tp: &TopicPartition) -> bool {
        self.producers
            .values()
            .filter_map(|p| p.open.as_ref())
            .any(|t| t.offsets.get(group).is_some_and(|o| o.contains_key(tp)))
    }
}

/// The log of `tp` among `topics` (for callers that hold another part of the state mutably).
pub(crate) fn log_of<'a>(topics: &'a BTreeMap<String, Topic>, tp: &TopicPartition) -> Option<&'a PartitionLog> {
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
            generation: 0,
        }
    }

    #[test]
    fn range_assignment_gives_co_partitioned_partitions_to_the_same_member() {
        let mut topics = BTreeMap::new();
        for name in ["a", "b"] {
            let partitions = (0..5).map(|_| PartitionLog::default()).collect();
            topics.insert(name.to_string(), Topic { partitions, compacted: false, timestamp_after_max_ms: None });
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
            log.append(0, Some(k.as_bytes().to_vec()), v.map(|v| v.as_bytes().to_vec()), Headers::new(), None);
        }
        log.compact();
        let left: Vec<i64> = log.records.iter().map(|r| r.offset).collect();
        assert_eq!(left, vec![2, 3], "offsets keep their gaps");
        assert_eq!(log.next_offset, 4);
        assert_eq!(log.read(0, 10).len(), 2);
        assert_eq!(log.read(3, 10).len(), 1);
    }

    fn append(log: &mut PartitionLog, key: &str, value: &str, txn: Option<u64>) -> i64 {
        log.append(0, Some(key.as_bytes().to_vec()), Some(value.as_bytes().to_vec()), Headers::new(), txn)
    }

    fn values(log: &PartitionLog, read_committed: bool) -> Vec<String> {
        log.read(0, log.records.len())
            .iter()
            .filter(|r| r.offset < log.read_end(read_committed) && log.visible(r, read_committed))
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn an_open_transaction_holds_back_the_last_stable_offset_until_it_ends() {
        let mut log = PartitionLog::default();
        append(&mut log, "a", "plain", None);
        append(&mut log, "a", "t1", Some(1));
        append(&mut log, "b", "after", None);
        assert_eq!(log.last_stable_offset(), 1, "the first record of the open transaction");
        assert_eq!(values(&log, true), vec!["plain"], "read_committed stops at the last stable offset");
        assert_eq!(values(&log, false), vec!["plain", "t1", "after"], "read_uncommitted reads everything");

        log.end_transaction(1, true, 0);
        assert_eq!(log.last_stable_offset(), 4, "the marker took offset 3");
        assert_eq!(values(&log, true), vec!["plain", "t1", "after"], "markers are never delivered");
    }

    #[test]
    fn aborted_records_are_skipped_by_read_committed_readers_only() {
        let mut log = PartitionLog::default();
        append(&mut log, "a", "aborted", Some(1));
        append(&mut log, "a", "committed", Some(2));
        log.end_transaction(1, false, 0);
        assert_eq!(log.last_stable_offset(), 1, "transaction 2 is still open");
        log.end_transaction(2, true, 0);
        assert_eq!(values(&log, true), vec!["committed"]);
        assert_eq!(values(&log, false), vec!["aborted", "committed"]);
        log.end_transaction(2, false, 0);
        assert_eq!(values(&log, true), vec!["committed"], "a second end of a transaction changes nothing");
    }

    #[test]
    fn compaction_cleans_only_below_the_last_stable_offset_and_drops_aborted_records_and_markers() {
        let mut log = PartitionLog::default();
        append(&mut log, "a", "1", None); // 0: superseded by 4
        append(&mut log, "b", "aborted", Some(1)); // 1: aborted
        log.end_transaction(1, false, 0); // 2: marker
        append(&mut log, "b", "1", None); // 3: latest b below the stable offset
        append(&mut log, "a", "2", None); // 4: latest a below the stable offset
        append(&mut log, "a", "open", Some(2)); // 5: open, so the stable offset is 5
        append(&mut log, "b", "2", None); // 6: above the stable offset: kept though it supersedes 3
        log.compact();
        let left: Vec<i64> = log.records.iter().map(|r| r.offset).collect();
        assert_eq!(left, vec![3, 4, 5, 6]);
        assert_eq!(values(&log, false), vec!["1", "2", "open", "2"]);

        log.end_transaction(2, true, 0); // 7: marker
        log.compact();
        let left: Vec<i64> = log.records.iter().map(|r| r.offset).collect();
        assert_eq!(left, vec![5, 6], "now a's latest is the committed 5 and b's is 6; the marker goes");
        assert_eq!(log.next_offset, 8);
    }
}
