//! The seam between the runtime and its broker clients (Kafka Streams' `KafkaClientSupplier`). The
//! runtime asks a [`ClientSupplier`] for a consumer, a producer and an admin client and speaks only these
//! traits; [`crate::kafka::RdKafkaSupplier`] (rdkafka) is the default, and an embedded broker plugs in
//! here too. Nothing above this seam knows which broker it runs on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::record::{ProducedRecord, RawRecord};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A broker client failed. Says which operation, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct ClientError {
    /// What was being done (`create topics`, `commit offsets`, `produce to orders`).
    pub operation: String,
    /// What the client said.
    pub message: String,
    /// Whether the same call may succeed later (a timeout, a leader moving).
    pub retriable: bool,
}

impl ClientError {
    /// An error in `operation`.
    pub fn new(operation: impl Into<String>, message: impl Into<String>, retriable: bool) -> Self {
        ClientError { operation: operation.into(), message: message.into(), retriable }
    }
}

/// Commits offsets from inside a rebalance callback.
pub trait OffsetCommitter {
    /// Commits, for each partition, the offset of the next record to read.
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError>;
}

/// Hears about partitions moving. Called from inside [`StreamsConsumer::poll_batch`], on the polling
/// thread, so it may use the thread's tasks; it must finish quickly.
pub trait RebalanceListener: Send + Sync {
    /// `partitions` are about to be taken away: commit what was processed (through `committer`) and
    /// close their tasks.
    fn on_partitions_revoked(&self, partitions: &[TopicPartition], committer: &dyn OffsetCommitter);

    /// `partitions` were given to this consumer: create their tasks.
    fn on_partitions_assigned(&self, partitions: &[TopicPartition]);
}

/// Reads input records as a member of the application's consumer group.
pub trait StreamsConsumer: Send {
    /// Joins the group for `topics`.
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError>;

    /// Waits up to `timeout` for a first record, then appends every record already fetched, up to `max`
    /// in all, without waiting again. Rebalance callbacks run inside this call.
    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError>;

    /// Commits, for each partition, the offset of the next record to read.
    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError>;

    /// Leaves the group promptly (revoking partitions through the listener first).
    fn close(&mut self);
}

/// Writes output, repartition and changelog records.
pub trait StreamsProducer: Send {
    /// Queues a record without waiting for it to be acknowledged; delivery errors come out of `flush`.
    fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError>;

    /// Waits until every queued record is acknowledged; the first delivery error, if any.
    fn flush(&mut self, timeout: Duration) -> Result<(), ClientError>;

    /// The offset of the last record the broker acknowledged on `partition` from this producer, if any:
    /// how far a store's changelog is written, for its checkpoint. Only records sent to an explicit
    /// partition (changelog records always are) need to be tracked.
    fn acked_offset(&self, partition: &TopicPartition) -> Option<i64>;
}

/// Reads changelog partitions to rebuild a task's stores.
pub trait RestoreConsumer: Send {
    /// The first offset of `partition` and its end (the offset the next record written will get).
    fn watermarks(&mut self, partition: &TopicPartition) -> Result<(i64, i64), ClientError>;

    /// Reads `partition` from offset `from` until every record before `end` has been read, handing the
    /// records to `apply` in batches of at most `max_batch`. Returns the offset of the last record read
    /// (`None` if there was none: offsets may have gaps after compaction or transaction markers).
    fn read(
        &mut self,
        partition: &TopicPartition,
        from: i64,
        end: i64,
        max_batch: usize,
        apply: &mut dyn FnMut(&[RawRecord]) -> Result<(), crate::StreamsError>,
    ) -> Result<Option<i64>, crate::StreamsError>;
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Its partition count.
    pub partitions: i32,
    /// Its replication factor (-1: the broker's default).
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy` …).
    pub config: BTreeMap<String, String>,
}

/// Creates and inspects topics.
pub trait StreamsAdmin: Send {
    /// The partition count of each topic, `None` for a topic that does not exist.
    fn partition_counts(&self, topics: &[String]) -> Result<BTreeMap<String, Option<i32>>, ClientError>;

    /// Creates topics; a topic that already exists is not an error.
    fn create_topics(&self, topics: &[NewTopic]) -> Result<(), ClientError>;
}

/// Makes the runtime's clients (Kafka Streams' `KafkaClientSupplier`).
pub trait ClientSupplier: Send + Sync {
    /// A consumer in the application's group; `listener` hears about rebalances.
    fn consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<Box<dyn StreamsConsumer>, ClientError>;

    /// A producer.
    fn producer(&self, config: &StreamsConfig, client_id: &str) -> Result<Box<dyn StreamsProducer>, ClientError>;

    /// An admin client.
    fn admin(&self, config: &StreamsConfig) -> Result<Box<dyn StreamsAdmin>, ClientError>;

    /// A consumer outside the group, for restoring stores from changelogs.
    fn restore_consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
    ) -> Result<Box<dyn RestoreConsumer>, ClientError>;
}
