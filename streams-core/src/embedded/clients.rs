//! The embedded broker's clients: the consumer (a group member), the producer, the admin client and the
//! restore consumer, each speaking the runtime's client traits against the broker's state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{log_of, BrokerState, Member, OpenTransaction, PartitionLog};
use super::EmbeddedBroker;
use crate::client::{
    ClientError, ClientErrorKind, CommittedOffsets, GroupMetadata, NewTopic, OffsetAndMetadata, OffsetCommitter,
    RebalanceListener, RestoreConsumer, StreamsAdmin, StreamsConsumer, StreamsProducer, TopicPartition,
};
use crate::record::{ProducedRecord, RawRecord};
use crate::StreamsError;

fn unknown_topic(operation: String) -> ClientError {
    ClientError::new(operation, "Broker: Unknown topic or partition", ClientErrorKind::Fatal)
}

fn fenced(operation: impl Into<String>, message: impl Into<String>) -> ClientError {
    ClientError::new(operation, message, ClientErrorKind::Fenced)
}

/// An injected commit failure: a timeout, after which the caller cannot know whether it took effect.
fn commit_timeout(operation: &str) -> ClientError {
    ClientError::new(operation, "Broker: Request timed out (injected fault)", ClientErrorKind::Retriable)
}

/// What a poll must do for the group before it fetches.
enum GroupStep {
    Revoke(Vec<TopicPartition>),
    /// Partitions given to the member, with the group's committed offsets of them.
    Assign(Vec<TopicPartition>, CommittedOffsets),
    /// The member was removed from the group (its session timed out): its partitions are gone.
    Lost,
    Fetch,
}

pub(crate) struct EmbeddedConsumer {
    pub(crate) broker: EmbeddedBroker,
    pub(crate) group: String,
    pub(crate) client_id: String,
    pub(crate) topics: Vec<String>,
    pub(crate) member: Option<String>,
    /// The generation of the member's current assignment.
    pub(crate) generation: i32,
    pub(crate) listener: Arc<dyn RebalanceListener>,
    pub(crate) session_timeout_ms: i64,
    pub(crate) read_committed: bool,
    /// The next offset to read of each assigned partition.
    pub(crate) positions: BTreeMap<TopicPartition, i64>,
    /// Assigned partitions not fetched until resumed.
    pub(crate) paused: BTreeSet<TopicPartition>,
    /// Where the next fetch starts among the assigned partitions, so every partition gets its turn.
    pub(crate) next_partition: usize,
    /// `rejoin` was called: leave and join again at the next poll.
    pub(crate) rejoin_requested: bool,
}

/// Commits into the consumer's group (also from inside a rebalance callback), as long as the member
/// is still in the group at its generation.
struct GroupCommitter<'a> {
    broker: &'a EmbeddedBroker,
    membership: Option<GroupMetadata>,
}

impl OffsetCommitter for GroupCommitter<'_> {
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(m) = &self.membership else {
            return Err(fenced("commit offsets", "the consumer is not a member of its group"));
        };
        let mut state = self.broker.lock();
        state.check_journal("commit offsets")?;
        let injected = state.faults.commits.pop_front();
        let group = state.groups.entry(m.group_id.clone()).or_default();
        group.check_member(&m.member_id, m.generation_id, false).map_err(|e| fenced("commit offsets", e))?;
        if injected != Some(false) {
            for (tp, offset) in offsets {
                state.commit_offset(&m.group_id, tp, offset.clone());
            }
        }
        match injected {
            Some(_) => Err(commit_timeout("commit offsets")),
            None => Ok(()),
        }
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.membership.clone()
    }
}

impl EmbeddedConsumer {
    fn committer(&self) -> GroupCommitter<'_> {
        let membership = (self.member.as_ref()).map(|member| GroupMetadata::new(&self.group, member, self.generation));
        GroupCommitter { broker: &self.broker, membership }
    }

    /// Joins the group as a new member: every member gives up its partitions and the group reassigns.
    fn join(&mut self) {
        let now = self.broker.session_ms();
        let mut state = self.broker.lock();
        state.members_created += 1;
        let id = format!("{}-{}", self.client_id, state.members_created);
        let group = state.groups.entry(self.group.clone()).or_default();
        group.rebalance();
        group.members.insert(
            id.clone(),
            Member {
                subscription: self.topics.clone(),
                // A new member holds nothing to give up.
                rejoined: true,
                assignment: Vec::new(),
                last_seen_ms: now,
                session_timeout_ms: self.session_timeout_ms,
                generation: -1,
            },
        );
        self.member = Some(id);
        self.generation = -1;
        drop(state);
        self.broker.notify();
    }

    /// Heartbeats, expires silent members and transactions, and says what this member must do for the
    /// group now.
    fn group_step(&mut self) -> Result<GroupStep, ClientError> {
        let Some(id) = self.member.clone() else { return Ok(GroupStep::Fetch) };
        let (now, session_now) = (self.broker.now_ms(), self.broker.session_ms());
        let mut state = self.broker.lock();
        let state = &mut *state;
        state.expire_transactions(now);
        let group = state.groups.entry(self.group.clone()).or_default();
        // Sessions expire on the broker's clock, whoever calls first: a member back from a pause past
        // its session timeout finds itself gone, as on Kafka.
        group.expire(session_now);
        let Some(member) = group.members.get_mut(&id) else {
            // Expired while away: its partitions belong to others now.
            return Ok(GroupStep::Lost);
        };
        member.last_seen_ms = session_now;
        if !member.rejoined {
            // Rejoined only once the revocation callback (which commits) has run: no other member may
            // be assigned these partitions, and read their committed offsets, before that.
            let revoked = std::mem::take(&mut member.assignment);
            return Ok(GroupStep::Revoke(revoked));
        }
        group.assign_if_ready(&state.topics);
        let Some(mine) = group.assignment.as_ref().map(|a| a[&id].clone()) else { return Ok(GroupStep::Fetch) };
        // A partition whose offsets an open transaction is still committing cannot be read from its
        // committed offset yet: wait for that transaction to end (KIP-447).
        if mine.iter().any(|tp| state.offsets_pending(&self.group, tp)) {
            return Ok(GroupStep::Fetch);
        }
        let group = state.groups.get_mut(&self.group).expect("present");
        let member = group.members.get_mut(&id).expect("present");
        member.generation = group.generation;
        self.generation = group.generation;
        if member.assignment.is_empty() && !mine.is_empty() && self.positions.is_empty() {
            member.assignment = mine;
            let mut committed = CommittedOffsets::new();
            for tp in &member.assignment {
                let start = log_of(&state.topics, tp).map_or(0, PartitionLog::start_offset);
                let position = group.committed.get(tp).map(|c| c.offset).unwrap_or(start).max(start);
                self.positions.insert(tp.clone(), position);
                if let Some(c) = group.committed.get(tp) {
                    committed.insert(tp.clone(), c.clone());
                }
            }
            return Ok(GroupStep::Assign(member.assignment.clone(), committed));
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
        let partitions: Vec<TopicPartition> =
            self.positions.keys().filter(|tp| !self.paused.contains(*tp)).cloned().collect();
        if partitions.is_empty() {
            return;
        }
        for i in 0..partitions.len() {
            if out.len() >= max {
                break;
            }
            let tp = &partitions[(self.next_partition + i) % partitions.len()];
            let Some(log) = state.log(tp) else { continue };
            let end = log.read_end(self.read_committed);
            let mut position = self.positions[tp];
            for r in log.read(position, max - out.len()) {
                if r.offset >= end {
                    break;
                }
                if log.visible(r, self.read_committed) {
                    out.push(r.to_raw(&tp.topic, tp.partition));
                }
                position = r.offset + 1;
            }
            self.positions.insert(tp.clone(), position);
        }
        self.next_partition = (self.next_partition + 1) % partitions.len();
    }
}

impl OffsetCommitter for EmbeddedConsumer {
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        self.committer().commit(offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.committer().group_metadata()
    }
}

impl StreamsConsumer for EmbeddedConsumer {
    /// A member that subscribes again keeps its id, and the group rebalances with its new
    /// subscription, as on Kafka.
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError> {
        self.topics = topics.to_vec();
        let Some(id) = &self.member else {
            self.join();
            return Ok(());
        };
        let mut state = self.broker.lock();
        let group = state.groups.entry(self.group.clone()).or_default();
        match group.members.get_mut(id) {
            Some(member) => {
                member.subscription = self.topics.clone();
                group.rebalance();
                drop(state);
                self.broker.notify();
            }
            // Expired meanwhile: the next poll finds its partitions lost and joins as a new member.
            None => drop(state),
        }
        Ok(())
    }

    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        if std::mem::take(&mut self.rejoin_requested) {
            self.leave();
            self.join();
        }
        loop {
            match self.group_step()? {
                GroupStep::Revoke(revoked) => {
                    if !revoked.is_empty() {
                        self.listener.on_partitions_revoked(&revoked, &self.committer());
                    }
                    self.positions.clear();
                    self.paused.clear();
                    self.rejoined();
                    continue;
                }
                GroupStep::Assign(assigned, committed) => {
                    self.listener.on_partitions_assigned(&assigned, &committed);
                    continue;
                }
                GroupStep::Lost => {
                    let lost: Vec<TopicPartition> = std::mem::take(&mut self.positions).into_keys().collect();
                    self.paused.clear();
                    if !lost.is_empty() {
                        self.listener.on_partitions_lost(&lost);
                    }
                    // As librdkafka does: come back as a new member.
                    self.join();
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

    /// Deferred to the next poll, where the listener may be called (the caller may hold what the
    /// listener needs).
    fn rejoin(&mut self) -> Result<(), ClientError> {
        self.rejoin_requested = true;
        Ok(())
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        self.paused.extend(partitions.iter().filter(|tp| self.positions.contains_key(*tp)).cloned());
        Ok(())
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        for tp in partitions {
            self.paused.remove(tp);
        }
        Ok(())
    }

    /// Exact: the end a reader at this isolation level sees, less the position.
    fn fetched_lags(&mut self, partitions: &[TopicPartition]) -> Vec<Option<i64>> {
        let state = self.broker.lock();
        partitions
            .iter()
            .map(|tp| {
                let position = *self.positions.get(tp)?;
                let end = state.log(tp).map_or(0, |log| log.read_end(self.read_committed));
                Some((end - position).max(0))
            })
            .collect()
    }

    fn close(&mut self) {
        self.leave();
    }

    fn assign(&mut self, partitions: &[(TopicPartition, Option<i64>)]) -> Result<(), ClientError> {
        let state = self.broker.lock();
        for (tp, offset) in partitions {
            let start = log_of(&state.topics, tp).map_or(0, PartitionLog::start_offset);
            // No offset: the group's committed one, else the earliest (Kafka Streams' reset policy).
            let committed = state.groups.get(&self.group).and_then(|g| g.committed.get(tp)).map(|c| c.offset);
            self.positions.insert(tp.clone(), offset.or(committed).unwrap_or(start).max(start));
        }
        Ok(())
    }

    fn unassign(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        for tp in partitions {
            self.positions.remove(tp);
            self.paused.remove(tp);
        }
        Ok(())
    }

    fn end_offsets(&mut self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let state = self.broker.lock();
        let ends = partitions.iter().filter_map(|tp| Some((tp.clone(), state.log(tp)?.read_end(self.read_committed))));
        Ok(ends.collect())
    }
}

impl EmbeddedConsumer {
    /// Gives up the member's partitions (committing through the listener) and leaves the group.
    fn leave(&mut self) {
        let Some(id) = self.member.clone() else { return };
        let revoked: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        if !revoked.is_empty() {
            self.listener.on_partitions_revoked(&revoked, &self.committer());
        }
        self.member = None;
        self.positions.clear();
        self.paused.clear();
        let mut state = self.broker.lock();
        if let Some(group) = state.groups.get_mut(&self.group)
            && group.members.remove(&id).is_some()
        {
            group.rebalance();
        }
        drop(state);
        self.broker.notify();
    }
}

pub(crate) struct EmbeddedProducer {
    pub(crate) broker: EmbeddedBroker,
    pub(crate) acked: HashMap<TopicPartition, i64>,
    /// A send that was lost (an injected fault), reported by the next flush.
    pub(crate) undelivered: Option<ClientError>,
    /// Set for a transactional producer.
    pub(crate) transactional: Option<TransactionalClient>,
    /// librdkafka's `message.max.bytes`: a larger record is refused at the send.
    pub(crate) max_message_bytes: usize,
}

/// A transactional producer's side of the protocol.
pub(crate) struct TransactionalClient {
    pub(crate) id: String,
    /// The epoch `init_transactions` got; `None` before it.
    pub(crate) epoch: Option<u32>,
    pub(crate) in_transaction: bool,
    pub(crate) timeout_ms: i64,
}

impl EmbeddedProducer {
    /// Checks that this producer may act in a transaction now (initialized, begun, not fenced), expires
    /// timed-out transactions first, and opens the broker's side of the transaction if needed. Returns
    /// the transaction's id; `None` for a producer that is not transactional.
    fn transaction(&self, state: &mut BrokerState, operation: &str) -> Result<Option<u64>, ClientError> {
        let Some(client) = &self.transactional else { return Ok(None) };
        let now = self.broker.now_ms();
        state.expire_transactions(now);
        let Some(epoch) = client.epoch else {
            return Err(ClientError::new(operation, "init_transactions was not called", ClientErrorKind::Fatal));
        };
        if !client.in_transaction {
            return Err(ClientError::new(operation, "no transaction was begun", ClientErrorKind::Fatal));
        }
        let next_id = state.transactions_created + 1;
        let producer = state.producers.entry(client.id.clone()).or_default();
        if producer.epoch != epoch {
            return Err(fenced(
                operation,
                format!(
                    "producer `{}` epoch {epoch} was fenced by epoch {} (a newer producer, or its transaction timed out)",
                    client.id, producer.epoch
                ),
            ));
        }
        let txn = producer.open.get_or_insert_with(|| OpenTransaction {
            id: next_id,
            partitions: Default::default(),
            offsets: Default::default(),
            started_ms: now,
            timeout_ms: client.timeout_ms,
        });
        if txn.id == next_id {
            state.transactions_created = next_id;
        }
        Ok(Some(txn.id))
    }

    fn client(&mut self, operation: &str) -> Result<&mut TransactionalClient, ClientError> {
        self.transactional
            .as_mut()
            .ok_or_else(|| ClientError::new(operation, "the producer is not transactional", ClientErrorKind::Fatal))
    }

    /// Commits or aborts the open transaction, unless this producer was fenced.
    fn end_transaction(&mut self, commit: bool) -> Result<(), ClientError> {
        let operation = if commit { "commit transaction" } else { "abort transaction" };
        let client = self.client(operation)?;
        if !client.in_transaction {
            return Err(ClientError::new(operation, "no transaction was begun", ClientErrorKind::Fatal));
        }
        let (id, epoch) = (client.id.clone(), client.epoch);
        client.in_transaction = false;
        let now = self.broker.now_ms();
        let mut state = self.broker.lock();
        state.expire_transactions(now);
        let current = state.producers.get(&id).map_or(0, |p| p.epoch);
        if epoch != Some(current) {
            return Err(fenced(operation, format!("producer `{id}` was fenced by epoch {current}")));
        }
        let injected = if commit { state.faults.commits.pop_front() } else { None };
        if injected == Some(false) {
            // The request never reached the coordinator: the transaction stays open.
            return Err(commit_timeout(operation));
        }
        state.end_transaction(&id, commit, now);
        drop(state);
        self.broker.notify();
        match injected {
            Some(_) => Err(commit_timeout(operation)),
            None => Ok(()),
        }
    }
}

impl StreamsProducer for EmbeddedProducer {
    fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError> {
        let timestamp = if record.timestamp >= 0 { record.timestamp } else { self.broker.now_ms() };
        let mut guard = self.broker.lock();
        let state = &mut *guard;
        let operation = format!("produce to {}", record.topic);
        // As librdkafka counts a record against `message.max.bytes` before it queues it.
        let headers: usize = record.headers.iter().map(|(name, value)| name.len() + value.map_or(0, <[u8]>::len)).sum();
        let size = record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len()) + headers;
        if size > self.max_message_bytes {
            let message =
                format!("Broker: Message size too large ({size} bytes, message.max.bytes {})", self.max_message_bytes);
            return Err(ClientError::new(operation, message, ClientErrorKind::Fatal).with_code(10));
        }
        state.check_journal(&operation)?;
        let txn = self.transaction(state, &operation)?;
        if state.faults.refuse_send() {
            // As a send that exhausted its retries: in a transaction the transaction must abort.
            let kind = if txn.is_some() { ClientErrorKind::Abortable } else { ClientErrorKind::Retriable };
            return Err(ClientError::new(operation, "Broker: Not enough in-sync replicas (injected fault)", kind));
        }
        if txn.is_none() && state.faults.lose_send(&record.topic) {
            // As a send whose record timed out in the producer's queue: accepted now, failed at the flush.
            let error =
                ClientError::new(operation, "Local: Message timed out (injected fault)", ClientErrorKind::Retriable);
            self.undelivered.get_or_insert(error);
            return Ok(());
        }
        let Some(topic) = state.topics.get(&*record.topic) else {
            return Err(unknown_topic(operation));
        };
        if !topic.takes_timestamp(timestamp, self.broker.now_ms()) {
            // Kafka refuses the record (INVALID_TIMESTAMP): the record's fault, for the production handler.
            let message = format!(
                "Broker: Invalid timestamp ({timestamp} is more than message.timestamp.after.max.ms ahead of the broker's clock)"
            );
            return Err(ClientError::new(operation, message, ClientErrorKind::Fatal).with_code(32));
        }
        let count = topic.partitions.len() as i32;
        let partition = state.place(record.partition, record.key.as_deref(), count);
        let (key, value, headers) = (record.key.clone(), record.value.clone(), record.headers.clone());
        let Some(offset) = state.append(&record.topic, partition, timestamp, key, value, headers, txn) else {
            return Err(unknown_topic(format!("produce to {}-{partition}", record.topic)));
        };
        let tp = TopicPartition { topic: record.topic.clone(), partition };
        if let (Some(_), Some(client)) = (txn, &self.transactional) {
            let open = state.producers.get_mut(&client.id).and_then(|p| p.open.as_mut());
            open.expect("opened above").partitions.insert(tp.clone());
        }
        if record.partition.is_some() {
            self.acked.insert(tp, offset);
        }
        drop(guard);
        self.broker.notify();
        Ok(())
    }

    /// Every send is appended at once: nothing is ever in flight (and so never sent twice: the
    /// idempotence Kafka's producer ids and sequence numbers give holds here by construction). A send
    /// lost to an injected fault is reported here.
    fn flush(&mut self, _timeout: Duration) -> Result<(), ClientError> {
        self.undelivered.take().map_or(Ok(()), Err)
    }

    fn acked_offset(&self, partition: &TopicPartition) -> Option<i64> {
        self.acked.get(partition).copied()
    }

    fn init_transactions(&mut self, _timeout: Duration) -> Result<(), ClientError> {
        let now = self.broker.now_ms();
        let id = self.client("init transactions")?.id.clone();
        let mut state = self.broker.lock();
        // What an older producer with this id left open is aborted, and that producer fenced.
        state.end_transaction(&id, false, now);
        let producer = state.producers.entry(id).or_default();
        producer.epoch += 1;
        let epoch = producer.epoch;
        drop(state);
        self.broker.notify();
        let client = self.client("init transactions")?;
        client.epoch = Some(epoch);
        client.in_transaction = false;
        Ok(())
    }

    fn begin_transaction(&mut self) -> Result<(), ClientError> {
        let client = self.client("begin transaction")?;
        if client.epoch.is_none() {
            return Err(ClientError::new(
                "begin transaction",
                "init_transactions was not called",
                ClientErrorKind::Fatal,
            ));
        }
        if client.in_transaction {
            return Err(ClientError::new("begin transaction", "a transaction is already open", ClientErrorKind::Fatal));
        }
        client.in_transaction = true;
        Ok(())
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        group: &GroupMetadata,
        _timeout: Duration,
    ) -> Result<(), ClientError> {
        let operation = "send offsets to transaction";
        let mut state = self.broker.lock();
        self.transaction(&mut state, operation)?;
        // The group refuses offsets from a member that is no longer in it at this generation: a zombie
        // cannot commit (KIP-447). The transaction must be aborted.
        let group_state = state.groups.entry(group.group_id.clone()).or_default();
        group_state.check_member(&group.member_id, group.generation_id, true).map_err(|e| fenced(operation, e))?;
        let id = &self.transactional.as_ref().expect("checked in transaction()").id;
        let open = state.producers.get_mut(id).and_then(|p| p.open.as_mut()).expect("opened above");
        open.offsets.entry(group.group_id.clone()).or_default().extend(offsets.iter().cloned());
        Ok(())
    }

    fn commit_transaction(&mut self, _timeout: Duration) -> Result<(), ClientError> {
        self.end_transaction(true)
    }

    fn abort_transaction(&mut self, _timeout: Duration) -> Result<(), ClientError> {
        self.end_transaction(false)
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

    fn topic_names(&self) -> Result<Vec<String>, ClientError> {
        Ok(self.broker.lock().topics.keys().cloned().collect())
    }

    fn create_topics(&self, topics: &[NewTopic]) -> Result<(), ClientError> {
        let mut state = self.broker.lock();
        for t in topics {
            if t.partitions < 1 {
                return Err(ClientError::new(
                    format!("create topic {}", t.name),
                    "partitions must be at least 1",
                    ClientErrorKind::Fatal,
                ));
            }
            let compacted = t.config.get("cleanup.policy").is_some_and(|p| p.contains("compact"));
            let after_max = t.config.get("message.timestamp.after.max.ms").and_then(|v| v.parse().ok());
            state.create_topic_with(&t.name, t.partitions, compacted, after_max);
        }
        Ok(())
    }

    fn delete_records(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError> {
        let mut state = self.broker.lock();
        for (tp, offset) in offsets {
            state.delete_records(tp, *offset).map_err(|message| {
                ClientError::new(format!("delete records of {tp}"), message, ClientErrorKind::Fatal)
            })?;
        }
        state.check_journal("delete records")
    }
}

pub(crate) struct EmbeddedRestoreConsumer {
    pub(crate) broker: EmbeddedBroker,
    pub(crate) read_committed: bool,
    /// How long a restore waits for an open transaction that holds it back.
    pub(crate) timeout: Duration,
}

impl RestoreConsumer for EmbeddedRestoreConsumer {
    fn watermarks(&mut self, tp: &TopicPartition) -> Result<(i64, i64), ClientError> {
        let state = self.broker.lock();
        let log = state.log(tp).ok_or_else(|| unknown_topic(format!("read the offsets of {tp}")))?;
        Ok((log.start_offset(), log.next_offset))
    }

    fn readable_end(&mut self, tp: &TopicPartition) -> Result<i64, ClientError> {
        let mut state = self.broker.lock();
        state.expire_transactions(self.broker.now_ms());
        let log = state.log(tp).ok_or_else(|| unknown_topic(format!("read the offsets of {tp}")))?;
        Ok(log.read_end(self.read_committed))
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
        let mut waited = Duration::ZERO;
        while position < end {
            // Copy a batch out under the lock, apply it without.
            let mut batch = Vec::new();
            let held_back = {
                let mut state = self.broker.lock();
                state.expire_transactions(self.broker.now_ms());
                let log = state.log(tp).ok_or_else(|| unknown_topic(format!("restore {tp}")))?;
                let stable = log.read_end(self.read_committed);
                let stop = end.min(stable);
                for r in log.read(position, max_batch).iter().take_while(|r| r.offset < stop) {
                    if log.visible(r, self.read_committed) {
                        batch.push(r.to_raw(&tp.topic, tp.partition));
                        last = Some(r.offset);
                    }
                    position = r.offset + 1;
                }
                let held_back = position < end && stable <= position;
                if !held_back && position < end && log.read(position, 1).first().is_none_or(|r| r.offset >= stop) {
                    // Nothing more can be read below `end` now (compaction removed the rest).
                    position = end;
                }
                held_back
            };
            if !batch.is_empty() {
                apply(&batch)?;
            }
            if held_back {
                // A transaction still open below `end`: wait for it to commit, abort or time out.
                if waited >= self.timeout {
                    let message = format!("an open transaction held the restore at offset {position} for {waited:?}");
                    return Err(ClientError::new(format!("restore {tp}"), message, ClientErrorKind::Retriable).into());
                }
                let pause = Duration::from_millis(10);
                self.broker.sleep(pause);
                waited += pause;
            }
        }
        Ok(last)
    }
}
