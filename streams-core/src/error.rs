//! What can go wrong, classified by who must act: the topology's author ([`TopologyError`], at build
//! time), the data ([`StreamsError::Deserialization`], naming the record), user code in a processor
//! ([`StreamsError::Processor`]), the settings ([`ConfigError`], naming the setting), or the environment
//! (stores, brokers).

use std::path::PathBuf;

use state_store::StoreError;

use crate::serde::SerdeError;

/// A topology that cannot run. Returned by `StreamsBuilder::build` and `Topology::validate`; every variant
/// names the node, topic or store at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// Two nodes share a name.
    #[error("node name `{name}` is used twice; node names must be unique")]
    DuplicateNode {
        /// The repeated name.
        name: String,
    },
    /// A node names a parent that does not exist.
    #[error("node `{node}` names parent `{parent}`, which is not in the topology")]
    UnknownParent {
        /// The child.
        node: String,
        /// The missing parent.
        parent: String,
    },
    /// Stores were connected to a processor that is not in the topology.
    #[error("cannot connect state stores {} to processor `{processor}`: no such processor", stores.join(", "))]
    UnknownProcessor {
        /// The processor named.
        processor: String,
        /// The stores.
        stores: Vec<String>,
    },
    /// A sink was named as a parent; sinks end a branch.
    #[error("node `{node}` names sink `{sink}` as its parent; a sink cannot have children")]
    SinkAsParent {
        /// The child.
        node: String,
        /// The sink.
        sink: String,
    },
    /// A processor or sink without any parent can never receive records.
    #[error("node `{node}` has no parent; every processor and sink needs at least one")]
    NoParent {
        /// The orphan.
        node: String,
    },
    /// The graph has a cycle, so a record could loop forever.
    #[error("the topology has a cycle through node `{node}`")]
    Cycle {
        /// A node on the cycle.
        node: String,
    },
    /// A source subscribes to no topic.
    #[error("source `{source_node}` subscribes to no topic")]
    SourceWithoutTopic {
        /// The source.
        source_node: String,
    },
    /// Two sources read the same topic.
    #[error("topic `{topic}` is read by two sources, `{first}` and `{second}`; a topic may have one source")]
    TopicReadTwice {
        /// The topic.
        topic: String,
        /// The first source.
        first: String,
        /// The second source.
        second: String,
    },
    /// A topic pattern is not a valid regular expression.
    #[error("invalid topic pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// What the regular expression parser said.
        reason: String,
    },
    /// A source's topic pattern matches a topic that another source reads.
    #[error("topic `{topic}` matches pattern `{pattern}` and would be read by two sources, `{first}` and `{second}`")]
    PatternMatchesTopic {
        /// The pattern.
        pattern: String,
        /// The topic.
        topic: String,
        /// The source added first.
        first: String,
        /// The source added second.
        second: String,
    },
    /// A windowed aggregation's windows, or its store's retention, cannot be used (Kafka Streams'
    /// `IllegalArgumentException` messages).
    #[error("the windowed aggregation `{node}` cannot be built: {reason}")]
    InvalidWindows {
        /// The aggregation's processor.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A join cannot be built: a table it reads cannot be looked up by key.
    #[error("the join `{node}` cannot be built: {reason}")]
    InvalidJoin {
        /// The join's processor.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A `suppress` cannot be built (Kafka Streams' message: final results without windows above).
    #[error("the suppression `{node}` cannot be built: {reason}")]
    InvalidSuppress {
        /// The suppression's processor.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A sink has no topic to write to.
    #[error("sink `{sink}` has no topic")]
    SinkWithoutTopic {
        /// The sink.
        sink: String,
    },
    /// A processor uses a store that was never added.
    #[error("processor `{node}` uses state store `{store}`, which was never added to the topology")]
    UnknownStore {
        /// The processor.
        node: String,
        /// The missing store.
        store: String,
    },
    /// A store's figures cannot be used (a window store whose window is longer than its retention).
    #[error("state store `{store}` cannot be built: {reason}")]
    InvalidStore {
        /// The store.
        store: String,
        /// What is wrong (Kafka Streams' message where it has one).
        reason: String,
    },
    /// A global store's source and processor have the same name.
    #[error("the source and the processor of a global store are both named `{name}`; they must be different")]
    GlobalStoreNames {
        /// The name.
        name: String,
    },
    /// A processor is connected to a global store, which every processor reads without being connected.
    #[error(
        "processor `{processor}` is connected to the global store `{store}`; a global store can be read by any processor without being connected to it, and only its global processor writes it"
    )]
    GlobalStoreConnected {
        /// The processor.
        processor: String,
        /// The global store.
        store: String,
    },
    /// Two stores share a name.
    #[error("state store `{store}` is added twice")]
    DuplicateStore {
        /// The store.
        store: String,
    },
    /// A store was added to a node that is not a processor.
    #[error("state store `{store}` is connected to `{node}`, which is not a processor")]
    StoreOnNonProcessor {
        /// The node.
        node: String,
        /// The store.
        store: String,
    },
    /// A parent's output types differ from a child's input types (possible only through the Processor API).
    #[error("node `{child}` takes ({child_types}) but its parent `{parent}` forwards ({parent_types})")]
    TypeMismatch {
        /// The parent.
        parent: String,
        /// What the parent forwards.
        parent_types: String,
        /// The child.
        child: String,
        /// What the child takes.
        child_types: String,
    },
    /// A name is empty or has characters Kafka does not allow in topic names.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An operator needs a serde that was neither given nor inherited from upstream.
    #[error("node `{node}` ({target}) needs a {part} serde for ({types}): give one (Consumed/Produced/Grouped/Materialized/Repartitioned) or use a type with a DefaultSerde")]
    MissingSerde {
        /// The node.
        node: String,
        /// What the serde is for: the topic read or written, or the store.
        target: String,
        /// Which serde.
        part: crate::record::RecordPart,
        /// The key and value types, as `K, V` without module paths.
        types: String,
    },
    /// The topology has no source.
    #[error("the topology has no source; add a stream or table")]
    Empty,
    /// Several mistakes the builder collected while the topology was written, all reported at once
    /// (one mistake is reported as itself).
    #[error("{} mistakes in the topology: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<TopologyError>),
}

/// An error while processing records, or while setting up a task.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// The topology is invalid.
    #[error("invalid topology")]
    Topology(#[from] TopologyError),
    /// An input record could not be deserialized. Handled by the deserialization exception handler.
    #[error("cannot deserialize the {part} of the record at {topic}-{partition} offset {offset}")]
    Deserialization {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// The key or the value.
        part: crate::record::RecordPart,
        /// What the serde said.
        #[source]
        source: SerdeError,
    },
    /// A source's timestamp extractor failed (returned an error or panicked) on an input record. Fails
    /// the task, as in Kafka Streams; it does not go to the processing exception handler.
    #[error("the timestamp extractor failed on the record at {topic}-{partition} offset {offset}")]
    TimestampExtraction {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// What the extractor said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record could not be serialized for a sink, a repartition topic or a store.
    #[error("node `{node}` cannot serialize a record for `{target}`")]
    Serialization {
        /// The node that wrote.
        node: String,
        /// The topic or store written to.
        target: String,
        /// What the serde said.
        #[source]
        source: SerdeError,
    },
    /// A state store failed.
    #[error("state store failure")]
    Store(#[from] StoreError),
    /// The local state directory or a task's files in it cannot be used (locked by another instance,
    /// unwritable).
    #[error("state directory {path}: {message}")]
    StateDir {
        /// The directory or file at fault.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A task's checkpoint could not be written.
    #[error("task {task}: {message}")]
    State {
        /// The task.
        task: crate::task_id::TaskId,
        /// What went wrong.
        message: String,
    },
    /// A processor asked for a store it is not connected to, or with the wrong types.
    #[error("processor `{node}` cannot use state store `{store}`: {reason}")]
    StoreAccess {
        /// The processor.
        node: String,
        /// The store.
        store: String,
        /// Why.
        reason: String,
    },
    /// User code in a processor returned an error.
    #[error("processor `{node}` failed")]
    Processor {
        /// The processor.
        node: String,
        /// What the user code returned.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// User code failed on a record (or in a punctuation) and the processing exception handler said to
    /// fail. Names the node, the task and where the source record was read.
    #[error("node `{node}` of task {task} failed {}; the processing exception handler said to fail", at_record(.source_record.as_ref()))]
    ProcessingFailed {
        /// The node whose processor, DSL function or serde failed.
        node: String,
        /// The task.
        task: crate::task_id::TaskId,
        /// Where the source record was read; `None` for a punctuation.
        source_record: Option<crate::RecordMetadata>,
        /// What failed.
        #[source]
        source: Box<StreamsError>,
    },
    /// A record was forwarded to a child that does not exist.
    #[error("processor `{node}` forwarded to unknown child `{child}`")]
    UnknownChild {
        /// The forwarding processor.
        node: String,
        /// The child it named.
        child: String,
    },
    /// A setting is wrong. Its message is the setting's (what is wrong, and with which setting).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A broker client failed. Its message is the client's (the operation, the broker and the cause).
    #[error(transparent)]
    Client(#[from] crate::client_error::ClientError),
    /// Source topics the topology reads do not exist (nothing is created for the user by default).
    #[error("source topics do not exist: {}", topics.join(", "))]
    MissingSourceTopics {
        /// The missing topics.
        topics: Vec<String>,
    },
    /// The source topics of one sub-topology have different partition counts, so one task could not own
    /// the same key in each.
    #[error(
        "the source topics of sub-topology {subtopology} must have the same number of partitions, but have: {}",
        counts.iter().map(|(topic, n)| format!("{topic} ({n} partitions)")).collect::<Vec<_>>().join(", ")
    )]
    CoPartitioning {
        /// The sub-topology.
        subtopology: u32,
        /// Each source topic and its partition count.
        counts: Vec<(String, i32)>,
    },
    /// An internal topic exists with the wrong partition count; it is not silently reused.
    #[error(
        "internal topic `{topic}` has {actual} partitions but needs {expected}; delete it or reset the application"
    )]
    InternalTopicMismatch {
        /// The topic.
        topic: String,
        /// The partitions it must have.
        expected: i32,
        /// The partitions it has.
        actual: i32,
    },
    /// The application is not in a state that allows the call.
    #[error("cannot {action} while the application is {state}")]
    IllegalState {
        /// What was attempted.
        action: &'static str,
        /// The state it was in.
        state: String,
    },
    /// `close_timeout` ran out while stream threads were still running. They go on shutting down, and
    /// the state directory stays locked until they have ended.
    #[error(
        "stream threads still running {timeout:?} after close was asked: {}; the state directory stays locked until they end",
        threads.join(", ")
    )]
    CloseTimeout {
        /// The timeout given.
        timeout: std::time::Duration,
        /// The names of the threads still running.
        threads: Vec<String>,
    },
    /// Another instance of the application (or another thread of this one) failed, and its uncaught
    /// exception handler said `ShutdownApplication`: every instance running then shuts down to ERROR.
    #[error("the application is shutting down at the request of stream thread `{thread}`, which failed: {reason}")]
    ApplicationShutdownRequested {
        /// The name of the thread that failed (`<application.id>-<process id>-StreamThread-<n>`).
        thread: String,
        /// Its error, as text.
        reason: String,
    },
    /// An interactive query ([`KafkaStreams::store`](crate::runtime::KafkaStreams::store)) cannot read the
    /// store now; [`StoreUnavailable::is_retriable`] says whether asking again later may work.
    #[error("cannot query state store `{store}`: {reason}")]
    StoreUnavailable {
        /// The store asked for.
        store: String,
        /// Why it cannot be read.
        reason: StoreUnavailable,
    },
    /// An invariant of this library broke: a bug to report, never caused by data.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

/// Why an interactive query cannot read a store (Kafka Streams' `InvalidStateStoreException` and its
/// kinds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreUnavailable {
    /// The instance has not been started (`StreamsNotStartedException`); retriable once it is.
    #[error("the instance has not started")]
    NotStarted,
    /// The instance is shutting down, stopped or failed (`StateStoreNotAvailableException`).
    #[error("the instance is {state}")]
    NotRunning {
        /// Its state.
        state: String,
    },
    /// The topology has no store of that name that holds the asked types (`UnknownStateStoreException`).
    #[error("{0}")]
    Unknown(String),
    /// No task of this instance holds the store (or the partition asked for) now: the group gave it to
    /// another instance, or is giving it back to this one (`StateStoreMigratedException`); retriable.
    #[error("no task of this instance holds it now{}; it may have moved to another instance",
        partition.map(|p| format!(" for partition {p}")).unwrap_or_default())]
    Migrated {
        /// The partition asked for, if one was.
        partition: Option<i32>,
    },
    /// A task of this instance is still restoring it from its changelog; retriable (or ask with
    /// stale stores enabled to read it as restored so far).
    #[error("task {task} is restoring it")]
    Restoring {
        /// The task.
        task: crate::task_id::TaskId,
    },
    /// The instance is rebalancing: some of its tasks may be closed until their partitions come back,
    /// so a read of every local partition could miss keys (`StreamsRebalancingException`); retriable,
    /// or ask with stale stores enabled to read what is open.
    #[error("the instance is rebalancing")]
    Rebalancing,
    /// The query was made while this OS thread runs a task (from a processor, a punctuation, a restore
    /// or state listener), which would wait for itself or for a thread that waits for it.
    #[error(
        "it was queried from inside a task (a processor, a punctuation or a listener); query from outside the stream threads"
    )]
    OnStreamThread,
}

impl StoreUnavailable {
    /// Whether the same query may succeed later: the instance starting, a rebalance or a restore
    /// finishing.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreUnavailable::NotStarted
                | StoreUnavailable::Migrated { .. }
                | StoreUnavailable::Restoring { .. }
                | StoreUnavailable::Rebalancing
        )
    }
}

fn at_record(record: Option<&crate::RecordMetadata>) -> String {
    match record {
        Some(r) => format!("on the record at {}-{} offset {}", r.topic, r.partition, r.offset),
        None => "in a punctuation".to_string(),
    }
}

/// A panic in user code, caught at the node it happened in and handled as the error it stands for.
#[derive(Debug)]
pub(crate) struct Panicked(pub(crate) String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl std::error::Error for Panicked {}

impl Panicked {
    /// The message of a caught panic's payload (a `&str` or `String`, as `panic!` makes them).
    pub(crate) fn from_payload(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Panicked(message)
    }
}

impl StreamsError {
    /// The variant's name, as a dead letter's `__streams.errors.exception` header gives it (where Kafka
    /// Streams gives the exception's class).
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            StreamsError::Topology(_) => "StreamsError::Topology",
            StreamsError::Deserialization { .. } => "StreamsError::Deserialization",
            StreamsError::TimestampExtraction { .. } => "StreamsError::TimestampExtraction",
            StreamsError::Serialization { .. } => "StreamsError::Serialization",
            StreamsError::Store(_) => "StreamsError::Store",
            StreamsError::StateDir { .. } => "StreamsError::StateDir",
            StreamsError::State { .. } => "StreamsError::State",
            StreamsError::StoreAccess { .. } => "StreamsError::StoreAccess",
            StreamsError::Processor { source, .. } if source.is::<Panicked>() => "panic",
            StreamsError::Processor { .. } => "StreamsError::Processor",
            StreamsError::ProcessingFailed { .. } => "StreamsError::ProcessingFailed",
            StreamsError::UnknownChild { .. } => "StreamsError::UnknownChild",
            StreamsError::Config(_) => "StreamsError::Config",
            StreamsError::Client(_) => "StreamsError::Client",
            StreamsError::MissingSourceTopics { .. } => "StreamsError::MissingSourceTopics",
            StreamsError::CoPartitioning { .. } => "StreamsError::CoPartitioning",
            StreamsError::InternalTopicMismatch { .. } => "StreamsError::InternalTopicMismatch",
            StreamsError::IllegalState { .. } => "StreamsError::IllegalState",
            StreamsError::CloseTimeout { .. } => "StreamsError::CloseTimeout",
            StreamsError::ApplicationShutdownRequested { .. } => "StreamsError::ApplicationShutdownRequested",
            StreamsError::StoreUnavailable { .. } => "StreamsError::StoreUnavailable",
            StreamsError::Internal(_) => "StreamsError::Internal",
        }
    }

    /// Whether the processing exception handler decides about this error at the node it came out of.
    /// Not: a failure a node below already decided on, a record the deserialization handler already
    /// decided on, a broker client's failure (the thread recovers from those or stops), a store whose
    /// files are damaged or whose disk fails (no record's fault: skipping records would lose each one
    /// that meets the store, where Kafka Streams asks the handler), and a bug of this library.
    pub(crate) fn is_processing_error(&self) -> bool {
        !matches!(
            self,
            StreamsError::ProcessingFailed { .. }
                | StreamsError::Deserialization { .. }
                | StreamsError::TimestampExtraction { .. }
                | StreamsError::Client(_)
                | StreamsError::Internal(_)
                | StreamsError::Store(StoreError::Corrupt { .. } | StoreError::Backend { .. })
        )
    }

    /// Wraps an error from user code running in processor `node`.
    pub fn processor(node: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StreamsError::Processor { node: node.into(), source: source.into() }
    }
}

/// Errors in the configuration, each naming the setting at fault.
///
/// Its messages are written next to the settings table in `config` (`impl Display` there): the message
/// of an unknown setting names the closest known one, and this module sits below `config`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is missing.
    Missing(&'static str),
    /// A setting has a value it cannot take.
    Invalid {
        /// The setting.
        key: String,
        /// The value given.
        value: String,
        /// What it can be.
        reason: String,
    },
    /// A setting this library does not know (librdkafka settings go under `consumer.`, `producer.`,
    /// `admin.` or the shared `client.` prefix). The message names the closest known setting, if one is close.
    Unknown(String),
    /// A properties file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// A setting in a properties file is wrong: the file, the line (none for a missing setting) and what.
    InFile {
        /// The file.
        path: PathBuf,
        /// The line the setting is on, from 1.
        line: Option<usize>,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
}

/// `std::any::type_name` without module paths, for messages: `alloc::string::String` is `String`, and
/// `core::option::Option<app::PageView>` is `Option<PageView>`.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let mut out = String::new();
    let mut ident = String::new();
    for c in std::any::type_name::<T>().chars() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c == ':' {
            ident.clear();
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out + &ident
}
