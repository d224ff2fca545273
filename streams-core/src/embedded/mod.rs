//! An in-process broker behind the client seam: zero-setup runs (no Kafka to install) and, next,
//! deterministic simulation of several instances. It keeps topics of partition logs with offsets,
//! timestamps and headers, compacts compacted topics on request, runs consumer groups with Kafka's eager
//! range assignment (so co-partitioned partitions land on one member, as on Kafka), rebalances on join,
//! leave and session timeout, and keeps committed offsets. Keyed records are placed with Kafka's murmur2.
//!
//! ```
//! use std::sync::Arc;
//! use streams_core::config::StreamsConfig;
//! use streams_core::dsl::StreamsBuilder;
//! use streams_core::embedded::EmbeddedBroker;
//! use streams_core::runtime::KafkaStreams;
//!
//! let broker = EmbeddedBroker::new();
//! broker.create_topic("words", 2, false);
//! broker.create_topic("shouted", 2, false);
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("words").map_values(|w| w.to_uppercase()).to("shouted");
//! let config = StreamsConfig::new("shout", "embedded");
//! let mut app = KafkaStreams::with_client_supplier(builder.build()?, config, Arc::new(broker.clone()))?;
//! app.start()?;
//! app.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not yet (see issue #5): idempotent and transactional producers and `read_committed`, generation
//! fencing of commits, persistence to a directory, and the seeded simulation with fault injection.

mod clients;
mod murmur2;
mod state;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use clients::{EmbeddedAdmin, EmbeddedConsumer, EmbeddedProducer, EmbeddedRestoreConsumer};
use state::{BrokerState, PartitionLog, Topic};

use crate::client::{
    ClientError, ClientSupplier, RebalanceListener, RestoreConsumer, StreamsAdmin, StreamsConsumer, StreamsProducer,
};
use crate::config::StreamsConfig;
use crate::record::RawRecord;
use crate::time::Clock;

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
        EmbeddedBroker::with_clock(Clock::System)
    }

    /// An empty broker whose session timeouts and record timestamps follow `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        EmbeddedBroker {
            inner: Arc::new(Inner { state: Mutex::new(BrokerState::default()), changed: Condvar::new(), clock }),
        }
    }

    /// Creates `name` with `partitions` partitions (compacted or not) unless it exists.
    pub fn create_topic(&self, name: &str, partitions: i32, compacted: bool) {
        let mut state = self.lock();
        state.topics.entry(name.to_string()).or_insert_with(|| Topic {
            partitions: (0..partitions.max(1)).map(|_| PartitionLog::default()).collect(),
            compacted,
        });
    }

    /// Compacts every compacted topic now: the latest record per key (and tombstones) stay.
    pub fn compact(&self) {
        let mut state = self.lock();
        for topic in state.topics.values_mut().filter(|t| t.compacted) {
            topic.partitions.iter_mut().for_each(PartitionLog::compact);
        }
    }

    /// The end offset of each partition of `topic` (`None` if it does not exist).
    pub fn end_offsets(&self, topic: &str) -> Option<Vec<i64>> {
        self.lock().topics.get(topic).map(|t| t.partitions.iter().map(|p| p.next_offset).collect())
    }

    /// Every record `topic` holds now: partition by partition, in offset order (empty if it does not exist).
    pub fn read_all(&self, topic: &str) -> Vec<RawRecord> {
        let state = self.lock();
        let Some(t) = state.topics.get(topic) else { return Vec::new() };
        let name: Arc<str> = topic.into();
        let mut records = Vec::new();
        for (partition, log) in t.partitions.iter().enumerate() {
            records.extend(log.records.iter().map(|r| r.to_raw(&name, partition as i32)));
        }
        records
    }

    /// How many records `topic` holds now, over all partitions.
    pub fn record_count(&self, topic: &str) -> usize {
        self.lock().topics.get(topic).map_or(0, |t| t.partitions.iter().map(|p| p.records.len()).sum())
    }

    fn lock(&self) -> MutexGuard<'_, BrokerState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
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
}

fn session_timeout_ms(config: &StreamsConfig) -> i64 {
    config
        .consumer_overrides
        .get("session.timeout.ms")
        .or_else(|| config.client_overrides.get("session.timeout.ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(45_000)
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
            member: None,
            listener,
            session_timeout_ms: session_timeout_ms(config),
            positions: Default::default(),
            next_partition: 0,
        }))
    }

    fn producer(&self, _config: &StreamsConfig, _client_id: &str) -> Result<Box<dyn StreamsProducer>, ClientError> {
        Ok(Box::new(EmbeddedProducer { broker: self.clone(), acked: Default::default() }))
    }

    fn restore_consumer(
        &self,
        _config: &StreamsConfig,
        _client_id: &str,
    ) -> Result<Box<dyn RestoreConsumer>, ClientError> {
        Ok(Box::new(EmbeddedRestoreConsumer { broker: self.clone() }))
    }

    fn admin(&self, _config: &StreamsConfig) -> Result<Box<dyn StreamsAdmin>, ClientError> {
        Ok(Box::new(EmbeddedAdmin { broker: self.clone() }))
    }
}
