//! The embedded broker's clients: the consumer (a group member), the producer, the admin client and the
//! restore consumer, each speaking the runtime's client traits against the broker's state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::murmur2::partition_for_key;
use super::state::{log_of, Member, PartitionLog, Topic};
use super::EmbeddedBroker;
use crate::client::{
    ClientError, NewTopic, OffsetCommitter, RebalanceListener, RestoreConsumer, StreamsAdmin, StreamsConsumer,
    StreamsProducer, TopicPartition,
};
use crate::record::{ProducedRecord, RawRecord};
use crate::StreamsError;

fn unknown_topic(operation: String) -> ClientError {
    ClientError::new(operation, "Broker: Unknown topic or partition", false)
}

/// What a poll must do for the group before it fetches.
enum GroupStep {
    Revoke(Vec<TopicPartition>),
    Assign(Vec<TopicPartition>),
    Fetch,
}

pub(crate) struct EmbeddedConsumer {
    pub(crate) broker: EmbeddedBroker,
    pub(crate) group: String,
    pub(crate) client_id: String,
    pub(crate) member: Option<String>,
    pub(crate) listener: Arc<dyn RebalanceListener>,
    pub(crate) session_timeout_ms: i64,
    /// The next offset to read of each assigned partition.
    pub(crate) positions: BTreeMap<TopicPartition, i64>,
    /// Where the next fetch starts among the assigned partitions, so every partition gets its turn.
    pub(crate) next_partition: usize,
}

/// Commits into the consumer's group (also from inside a rebalance callback).
struct GroupCommitter<'a> {
    broker: &'a EmbeddedBroker,
    group: &'a str,
}

impl OffsetCommitter for GroupCommitter<'_> {
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError> {
        let mut state = self.broker.lock();
        let group = state.groups.entry(self.group.to_string()).or_default();
        for (tp, offset) in offsets {
            group.committed.insert(tp.clone(), *offset);
        }
        Ok(())
    }
}

impl EmbeddedConsumer {
    /// Heartbeats, expires silent members, and says what this member must do for the group now.
    fn group_step(&mut self) -> Result<GroupStep, ClientError> {
        let Some(id) = self.member.clone() else { return Ok(GroupStep::Fetch) };
        let now = self.broker.now_ms();
        let mut state = self.broker.lock();
        let state = &mut *state;
        let group = state.groups.entry(self.group.clone()).or_default();
        if let Some(member) = group.members.get_mut(&id) {
            member.last_seen_ms = now;
        }
        group.expire(now);
        let Some(member) = group.members.get_mut(&id) else {
            // Expired while away (a pause past the session timeout): its partitions belong to others now.
            return Err(ClientError::new(
                format!("poll for group {}", self.group),
                format!("member {id} was removed from the group after its session timed out"),
                false,
            ));
        };
        if !member.rejoined {
            // Rejoined only once the revocation callback (which commits) has run: no other member may
            // be assigned these partitions, and read their committed offsets, before that.
            let revoked = std::mem::take(&mut member.assignment);
            return Ok(GroupStep::Revoke(revoked));
        }
        group.assign_if_ready(&state.topics);
        let member = group.members.get_mut(&id).expect("present");
        if let Some(assignment) = &group.assignment {
            if member.assignment.is_empty() && !assignment[&id].is_empty() && self.positions.is_empty() {
                member.assignment = assignment[&id].clone();
                let mut assigned = Vec::new();
                for tp in &member.assignment {
                    let start = log_of(&state.topics, tp).map_or(0, PartitionLog::start_offset);
                    let position = group.committed.get(tp).copied().unwrap_or(start).max(start);
                    self.positions.insert(tp.clone(), position);
                    assigned.push(tp.clone());
                }
                return Ok(GroupStep::Assign(assigned));
            }
        }
        Ok(GroupStep::Fetch)
    }

    /// The member gave up its partitions: it counts as rejoined.
    fn rejoined(&mut self) {
        let Some(id) = &self.member else { return };
        let mut state = self.broker.lock();
        if let Some(member) = state.groups.get_mut(&self.group).and_then(|g| g.members.get_mut(id)) {
            member.rejoined = true;
        }
        drop(state);
        self.broker.notify();
    }

    fn fetch(&mut self, max: usize, out: &mut Vec<RawRecord>) {
        let state = self.broker.lock();
        let partitions: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        if partitions.is_empty() {
            return;
        }
        for i in 0..partitions.len() {
            if out.len() >= max {
                break;
            }
            let tp = &partitions[(self.next_partition + i) % partitions.len()];
            let Some(log) = state.log(tp) else { continue };
            let position = self.positions[tp];
            for r in log.read(position, max - out.len()) {
                out.push(r.to_raw(&tp.topic, tp.partition));
                self.positions.insert(tp.clone(), r.offset + 1);
            }
        }
        self.next_partition = (self.next_partition + 1) % partitions.len();
    }
}

impl StreamsConsumer for EmbeddedConsumer {
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError> {
        let now = self.broker.now_ms();
        let mut state = self.broker.lock();
        state.members_created += 1;
        let id = format!("{}-{}", self.client_id, state.members_created);
        let group = state.groups.entry(self.group.clone()).or_default();
        group.rebalance();
        group.members.insert(
            id.clone(),
            Member {
                subscription: topics.to_vec(),
                // A new member holds nothing to give up.
                rejoined: true,
                assignment: Vec::new(),
                last_seen_ms: now,
                session_timeout_ms: self.session_timeout_ms,
            },
        );
        self.member = Some(id);
        drop(state);
        self.broker.notify();
        Ok(())
    }

    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.group_step()? {
                GroupStep::Revoke(revoked) => {
                    let committer = GroupCommitter { broker: &self.broker, group: &self.group };
                    if !revoked.is_empty() {
                        self.listener.on_partitions_revoked(&revoked, &committer);
                    }
                    self.positions.clear();
                    self.rejoined();
                    continue;
                }
                GroupStep::Assign(assigned) => {
                    self.listener.on_partitions_assigned(&assigned);
                    continue;
                }
                GroupStep::Fetch => {}
            }
            self.fetch(max, out);
            let now = Instant::now();
            if !out.is_empty() || now >= deadline {
                return Ok(());
            }
            // Woken by a produce or a group change; wakes at least every 10 ms to keep the session alive.
            self.broker.wait((deadline - now).min(Duration::from_millis(10)));
        }
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError> {
        GroupCommitter { broker: &self.broker, group: &self.group }.commit(offsets)
    }

    fn close(&mut self) {
        let Some(id) = self.member.take() else { return };
        let revoked: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        if !revoked.is_empty() {
            let committer = GroupCommitter { broker: &self.broker, group: &self.group };
            self.listener.on_partitions_revoked(&revoked, &committer);
        }
        self.positions.clear();
        let mut state = self.broker.lock();
        if let Some(group) = state.groups.get_mut(&self.group) {
            if group.members.remove(&id).is_some() {
                group.rebalance();
            }
        }
        drop(state);
        self.broker.notify();
    }
}

pub(crate) struct EmbeddedProducer {
    pub(crate) broker: EmbeddedBroker,
    pub(crate) acked: HashMap<TopicPartition, i64>,
}

impl StreamsProducer for EmbeddedProducer {
    fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError> {
        let timestamp = if record.timestamp >= 0 { record.timestamp } else { self.broker.now_ms() };
        let mut guard = self.broker.lock();
        let state = &mut *guard;
        let Some(topic) = state.topics.get_mut(&*record.topic) else {
            return Err(unknown_topic(format!("produce to {}", record.topic)));
        };
        let count = topic.partitions.len() as i32;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                state.round_robin += 1;
                (state.round_robin % count as u64) as i32
            }
        };
        let Some(log) = topic.partitions.get_mut(partition as usize).filter(|_| partition >= 0) else {
            return Err(unknown_topic(format!("produce to {}-{partition}", record.topic)));
        };
        let offset = log.append(timestamp, record.key.clone(), record.value.clone(), record.headers.clone());
        if record.partition.is_some() {
            self.acked.insert(TopicPartition { topic: record.topic.clone(), partition }, offset);
        }
        drop(guard);
        self.broker.notify();
        Ok(())
    }

    /// Every send is appended at once: nothing is ever in flight.
    fn flush(&mut self, _timeout: Duration) -> Result<(), ClientError> {
        Ok(())
    }

    fn acked_offset(&self, partition: &TopicPartition) -> Option<i64> {
        self.acked.get(partition).copied()
    }
}

pub(crate) struct EmbeddedAdmin {
    pub(crate) broker: EmbeddedBroker,
}

impl StreamsAdmin for EmbeddedAdmin {
    fn partition_counts(&self, topics: &[String]) -> Result<BTreeMap<String, Option<i32>>, ClientError> {
        let state = self.broker.lock();
        Ok(topics.iter().map(|t| (t.clone(), state.topics.get(t).map(|t| t.partitions.len() as i32))).collect())
    }

    fn create_topics(&self, topics: &[NewTopic]) -> Result<(), ClientError> {
        let mut state = self.broker.lock();
        for t in topics {
            if t.partitions < 1 {
                return Err(ClientError::new(
                    format!("create topic {}", t.name),
                    "partitions must be at least 1",
                    false,
                ));
            }
            let compacted = t.config.get("cleanup.policy").is_some_and(|p| p.contains("compact"));
            state.topics.entry(t.name.clone()).or_insert_with(|| Topic {
                partitions: (0..t.partitions).map(|_| PartitionLog::default()).collect(),
                compacted,
            });
        }
        Ok(())
    }
}

pub(crate) struct EmbeddedRestoreConsumer {
    pub(crate) broker: EmbeddedBroker,
}

impl RestoreConsumer for EmbeddedRestoreConsumer {
    fn watermarks(&mut self, tp: &TopicPartition) -> Result<(i64, i64), ClientError> {
        let state = self.broker.lock();
        let log = state.log(tp).ok_or_else(|| unknown_topic(format!("read the offsets of {tp}")))?;
        Ok((log.start_offset(), log.next_offset))
    }

    fn read(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        end: i64,
        max_batch: usize,
        apply: &mut dyn FnMut(&[RawRecord]) -> Result<(), StreamsError>,
    ) -> Result<Option<i64>, StreamsError> {
        let mut position = from;
        let mut last = None;
        while position < end {
            // Copy a batch out under the lock, apply it without.
            let batch: Vec<RawRecord> = {
                let state = self.broker.lock();
                let log = state.log(tp).ok_or_else(|| unknown_topic(format!("restore {tp}")))?;
                log.read(position, max_batch)
                    .iter()
                    .take_while(|r| r.offset < end)
                    .map(|r| r.to_raw(&tp.topic, tp.partition))
                    .collect()
            };
            let Some(tail) = batch.last() else { break };
            position = tail.offset + 1;
            last = Some(tail.offset);
            apply(&batch)?;
        }
        Ok(last)
    }
}
