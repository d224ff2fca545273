//! An in-process broker behind the client seam: zero-setup runs (no Kafka to install) and, next,
//! deterministic simulation of several instances. It keeps topics of partition logs with offsets,
//! timestamps and headers, compacts compacted topics on request, runs consumer groups with Kafka's eager
//! range assignment (so co-partitioned partitions land on one member, as on Kafka), rebalances on join,
//! leave and session timeout, keeps committed offsets and refuses commits from members fenced out of
//! the group (a stale generation). Keyed records are placed with Kafka's murmur2.
//!
//! Transactions follow Kafka's protocol: a transactional producer registers its id
//! (`init_transactions` bumps the id's epoch, aborts what an older producer left open and fences it),
//! its records and offsets commit or abort together, markers take offsets, a transaction open longer
//! than `transaction.timeout.ms` is aborted, and `read_committed` readers stop at the last stable offset
//! and skip aborted records. A new owner of a partition waits for a transaction that still holds offsets
//! for it (KIP-447).
//!
//! ```
//! use std::sync::Arc;
//! use streams_core::config::StreamsConfig;
//! use streams_core::dsl::StreamsBuilder;
//! use streams_core::embedded::EmbeddedBroker;
//! use streams_core::runtime::KafkaStreams;
//!
//! let broker = EmbeddedBroker::new();
//! broker.create_topic("words", 2);
//! broker.create_topic("shouted", 2);
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("words").map_values(|w| w.to_uppercase()).to("shouted");
//! let config = StreamsConfig::new("shout", "embedded");
//! let mut app = KafkaStreams::with_client_supplier(builder.build()?, config, Arc::new(broker.clone()))?;
//! app.start()?;
//! app.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`EmbeddedBroker::open`] persists to a directory (a journal, replayed on open), so that a run can be
//! stopped and continued. The `simulation` module (feature `test-utils`) drives several instances on one
//! broker from a seed, with faults.

mod classic_group;
mod clients;
mod group_member;
pub(crate) mod journal;
mod state;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use clients::{EmbeddedAdmin, EmbeddedConsumer, EmbeddedProducer, EmbeddedRestoreConsumer, TransactionalClient};
use state::BrokerState;

use crate::client::{
    ClientError, ClientSupplier, GroupMember, RebalanceListener, RestoreConsumer, StreamsAdmin, StreamsConsumer,
    StreamsProducer,
};
use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::record::RawRecord;
use crate::sync::LockUnpoisoned;
use crate::time::Clock;

/// librdkafka's default `message.max.bytes`: the largest record a producer sends.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The broker; clones share it. Hand it to the runtime as its [`ClientSupplier`].
#[derive(Clone)]
pub struct EmbeddedBroker {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<BrokerState>,
    /// Wakes polling consumers when records arrive or the group changes.
    changed: Condvar,
    clock: Clock,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker").field("topics", &self.lock().topics.len()).finish()
    }
}

impl Default for EmbeddedBroker {
    fn default() -> Self {
        EmbeddedBroker::new()
    }
}

impl EmbeddedBroker {
    /// An empty broker on the system clock.
    pub fn new() -> Self {
        EmbeddedBroker::on_clock(Clock::System)
    }

    /// An empty broker whose session timeouts and record timestamps follow `clock` (the simulation's
    /// virtual clock).
    #[cfg(feature = "test-utils")]
    pub fn with_clock(clock: Clock) -> Self {
        EmbeddedBroker::on_clock(clock)
    }

    fn on_clock(clock: Clock) -> Self {
        EmbeddedBroker {
            inner: Arc::new(Inner { state: Mutex::new(BrokerState::default()), changed: Condvar::new(), clock }),
        }
    }

    /// A broker that keeps its topics, records and committed offsets in `dir`: every change is
    /// appended to the journal file `dir/broker.journal` as it happens (one JSON line per event, no
    /// fsync: it survives the process being killed), and a broker opened on `dir` replays it. Group
    /// members and producers are not kept (their processes are gone); transactions they left open
    /// are aborted on open. An unreadable journal is an error naming its file and line.
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self, ClientError> {
        let (journal, events) = journal::Journal::open(dir.as_ref())?;
        let broker = EmbeddedBroker::new();
        let now = broker.now_ms();
        broker.lock().replay(events, journal, now);
        Ok(broker)
    }

    /// Creates `name` with `partitions` partitions unless it exists: records are kept (`cleanup.policy`
    /// delete, without retention limits here).
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.lock().create_topic(name, partitions, false);
    }

    /// Creates `name` with `partitions` partitions unless it exists, compacted (`cleanup.policy`
    /// compact): [`compact`](Self::compact) keeps the latest record of each key, as for a table's topic.
    pub fn create_compacted_topic(&self, name: &str, partitions: i32) {
        self.lock().create_topic(name, partitions, true);
    }

    /// Compacts every compacted topic now: the latest record per key (and tombstones) stay.
    pub fn compact(&self) {
        self.lock().compact();
    }

    /// The end offset of each partition of `topic` (`None` if it does not exist).
    pub fn end_offsets(&self, topic: &str) -> Option<Vec<i64>> {
        self.lock().topics.get(topic).map(|t| t.partitions.iter().map(|p| p.next_offset).collect())
    }

    /// Every record `topic` holds now, as a `read_uncommitted` consumer reads it (open and aborted
    /// transactions included, markers not): partition by partition, in offset order (empty if it does
    /// not exist).
    pub fn read_all(&self, topic: &str) -> Vec<RawRecord> {
        self.read(topic, false)
    }

    /// What a `read_committed` consumer of `topic` reads now: records of committed transactions and
    /// records written outside transactions, up to each partition's last stable offset.
    pub fn read_committed(&self, topic: &str) -> Vec<RawRecord> {
        self.read(topic, true)
    }

    fn read(&self, topic: &str, read_committed: bool) -> Vec<RawRecord> {
        let state = self.lock();
        let Some(t) = state.topics.get(topic) else { return Vec::new() };
        let name: Arc<str> = topic.into();
        let mut records = Vec::new();
        for (partition, log) in t.partitions.iter().enumerate() {
            let end = log.read_end(read_committed);
            let visible = log.records.iter().filter(|r| r.offset < end && log.visible(r, read_committed));
            records.extend(visible.map(|r| r.to_raw(&name, partition as i32)));
        }
        records
    }

    /// How many records `topic` holds now, over all partitions (transaction markers not counted).
    pub fn record_count(&self, topic: &str) -> usize {
        self.lock()
            .topics
            .get(topic)
            .map_or(0, |t| t.partitions.iter().map(|p| p.records.iter().filter(|r| !r.control).count()).sum())
    }

    /// Fault injection: the next send (of any producer) is refused, as a send that exhausted its
    /// retries (inside a transaction the transaction must then abort).
    pub fn refuse_next_send(&self) {
        self.lock().faults.sends += 1;
    }

    /// Fault injection: the next send to `topic` outside a transaction is lost: the send is accepted,
    /// the record never written, and the producer's next flush fails with a timeout, as when a record
    /// times out in a Kafka producer's queue while others, to other partitions, get through.
    pub fn lose_next_send_to(&self, topic: &str) {
        self.lock().faults.lost_sends_to.push(topic.to_string());
    }

    /// Fault injection: the next commit (of offsets, or of a transaction) fails with a timeout, and is
    /// not carried out.
    pub fn fail_next_commit(&self) {
        self.lock().faults.commits.push_back(false);
    }

    /// Fault injection: the next commit fails with a timeout but is carried out all the same, the
    /// ambiguous outcome a timeout can hide.
    pub fn time_out_next_commit_after_applying_it(&self) {
        self.lock().faults.commits.push_back(true);
    }

    /// Writes a record to `topic` outside any transaction, as an idempotent producer whose send
    /// succeeded (injected faults do not apply): into `partition`, or the key's partition (murmur2),
    /// or round robin. Returns the partition and offset, or `None` if there is no such topic or
    /// partition. A simulation's input generator writes through this.
    pub fn append(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Option<(i32, i64)> {
        let mut state = self.lock();
        let count = state.topics.get(topic)?.partitions.len() as i32;
        let partition = state.place(partition, key.as_deref(), count);
        let offset = state.append(topic, partition, timestamp, key, value, crate::record::Headers::new(), None)?;
        drop(state);
        self.notify();
        Some((partition, offset))
    }

    /// The names of every topic, in order.
    pub fn topics(&self) -> Vec<String> {
        self.lock().topics.keys().cloned().collect()
    }

    /// How many records of `topic` the consumer group `group` has not committed past yet: records
    /// at or above each partition's committed offset, including those of open transactions (not
    /// markers, nor records of aborted transactions, which no reader processes). Zero once the group
    /// has processed and committed all of it.
    pub fn group_lag(&self, group: &str, topic: &str) -> usize {
        let state = self.lock();
        let Some(t) = state.topics.get(topic) else { return 0 };
        let committed = state.groups.get(group).map(|g| &g.committed);
        let mut lag = 0;
        for (p, log) in t.partitions.iter().enumerate() {
            let tp = crate::client::TopicPartition::new(topic, p as i32);
            let from = committed.and_then(|c| c.get(&tp)).map_or(0, |c| c.offset);
            // What a read_committed reader would deliver from there, open transactions included.
            lag += log.read(from, log.records.len()).iter().filter(|r| log.visible(r, true)).count();
        }
        lag
    }

    /// How many transactions the broker aborted because they outlived `transaction.timeout.ms`.
    #[cfg(feature = "test-utils")]
    pub fn transactions_timed_out(&self) -> u64 {
        self.lock().transactions_timed_out
    }

    /// How many transactions are open now (after aborting those past their timeout).
    pub fn open_transactions(&self) -> usize {
        let now = self.now_ms();
        let mut state = self.lock();
        state.expire_transactions(now);
        state.producers.values().filter(|p| p.open.is_some()).count()
    }

    fn lock(&self) -> MutexGuard<'_, BrokerState> {
        self.inner.state.lock_unpoisoned()
    }

    fn notify(&self) {
        self.inner.changed.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let state = self.lock();
        let _ = self.inner.changed.wait_timeout(state, timeout);
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Whether the broker runs on a simulation's manual clock: its time moves only between steps, so
    /// waiting for it inside a call never ends.
    fn simulated(&self) -> bool {
        matches!(self.inner.clock, crate::time::Clock::Manual(_))
    }

    /// The time group sessions are measured on: monotonic, so that a step of the system clock does
    /// not expire every member (on the simulation's manual clock, the same as [`now_ms`](Self::now_ms)).
    fn session_ms(&self) -> i64 {
        self.inner.clock.monotonic_ms()
    }

    /// Waits `duration` on the broker's clock: woken early by a change on the system clock; on a
    /// simulation's manual clock, time moves on instead.
    fn sleep(&self, duration: Duration) {
        match self.inner.clock {
            Clock::System => self.wait(duration),
            Clock::Manual(_) => self.inner.clock.sleep(duration),
        }
    }
}

/// Whether a consumer reads `read_committed`, as the rdkafka clients do: its `isolation.level`, else
/// `read_committed` under exactly_once_v2 and `read_uncommitted` under at_least_once (Kafka Streams'
/// choice, which the rdkafka supplier sets too).
fn read_committed(config: &StreamsConfig) -> bool {
    config
        .consumer_setting("isolation.level")
        .map_or(config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2, |level| level == "read_committed")
}

impl ClientSupplier for EmbeddedBroker {
    fn consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<Box<dyn StreamsConsumer>, ClientError> {
        Ok(Box::new(EmbeddedConsumer {
            broker: self.clone(),
            group: config.application_id.clone(),
            client_id: client_id.to_string(),
            topics: Vec::new(),
            member: None,
            generation: -1,
            listener,
            session_timeout_ms: config.session_timeout_ms() as i64,
            read_committed: read_committed(config),
            positions: Default::default(),
            paused: Default::default(),
            next_partition: 0,
            rejoin_requested: false,
        }))
    }

    fn producer(
        &self,
        config: &StreamsConfig,
        _client_id: &str,
        transactional_id: Option<&str>,
    ) -> Result<Box<dyn StreamsProducer>, ClientError> {
        let timeout = config.producer_setting("transaction.timeout.ms");
        let transactional = transactional_id.map(|id| TransactionalClient {
            id: id.to_string(),
            epoch: None,
            in_transaction: false,
            timeout_ms: timeout.and_then(|v| v.parse().ok()).unwrap_or(10_000),
        });
        Ok(Box::new(EmbeddedProducer {
            broker: self.clone(),
            acked: Default::default(),
            undelivered: None,
            transactional,
            max_message_bytes: config
                .producer_setting("message.max.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES),
        }))
    }

    fn restore_consumer(
        &self,
        config: &StreamsConfig,
        _client_id: &str,
    ) -> Result<Box<dyn RestoreConsumer>, ClientError> {
        Ok(Box::new(EmbeddedRestoreConsumer {
            broker: self.clone(),
            read_committed: read_committed(config),
            timeout: config.default_api_timeout,
        }))
    }

    fn admin(&self, _config: &StreamsConfig) -> Result<Box<dyn StreamsAdmin>, ClientError> {
        Ok(Box::new(EmbeddedAdmin { broker: self.clone() }))
    }

    fn group_member(&self, config: &StreamsConfig, client_id: &str) -> Result<Box<dyn GroupMember>, ClientError> {
        Ok(Box::new(group_member::EmbeddedGroupMember::new(self, config, client_id)?))
    }
}
