//! The rdkafka side of the client seam: the only module that imports rdkafka. [`RdKafkaSupplier`] makes
//! consumers, producers and admin clients that speak to a real Kafka-compatible broker.
//!
//! Settings the runtime always applies (as Kafka Streams overrides its clients): the consumer group is the
//! application id, offsets are committed by the runtime only (`enable.auto.commit=false`), new groups start
//! at the earliest offset, partitions are assigned by range (so co-partitioned partitions land together),
//! and the producer places keyed records with murmur2 (`partitioner=murmur2_random`), as Kafka's Java
//! producer does, so Java and Rust applications agree on where a key lives.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::client::{
    ClientError, ClientErrorKind, ClientSupplier, CommittedOffsets, GroupMember, GroupMetadata, NewTopic,
    OffsetAndMetadata, OffsetCommitter, RebalanceListener, RestoreConsumer, StreamsAdmin, StreamsConsumer,
    StreamsProducer, TopicPartition,
};
use crate::config::{ProcessingGuarantee, StreamsConfig, DEFAULT_SESSION_TIMEOUT_MS};
use crate::record::{Headers as RecordHeaders, ProducedRecord, RawRecord};
use crate::sync::LockUnpoisoned;

mod consumer_protocol;
mod group_member;
pub mod reset;
mod restore;
mod wire;
use restore::RdKafkaRestoreConsumer;

/// Makes rdkafka clients: the default [`ClientSupplier`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RdKafkaSupplier;

fn client_error(operation: impl Into<String>, error: KafkaError) -> ClientError {
    // rdkafka keeps an admin operation's code to itself.
    let code = match &error {
        KafkaError::AdminOp(code) => Some(*code),
        _ => error.rdkafka_error_code(),
    };
    let transaction = match &error {
        KafkaError::Transaction(e) => Some(TransactionVerdict {
            fatal: e.is_fatal(),
            requires_abort: e.txn_requires_abort(),
            retriable: e.is_retriable(),
        }),
        _ => None,
    };
    classified(operation, error.to_string(), code, transaction)
}

/// A transactional call's failure through the extension crate, classified as [`client_error`] would
/// classify rdkafka's own.
fn transaction_error(operation: impl Into<String>, e: streams_rdkafka_ext::TransactionError) -> ClientError {
    let verdict = TransactionVerdict { fatal: e.fatal, requires_abort: e.requires_abort, retriable: e.retriable };
    classified(operation, format!("Transaction error: {}", e.message), Some(e.code), Some(verdict))
}

/// What librdkafka says itself about a failed transactional call.
struct TransactionVerdict {
    fatal: bool,
    requires_abort: bool,
    retriable: bool,
}

fn classified(
    operation: impl Into<String>,
    message: String,
    code: Option<RDKafkaErrorCode>,
    transaction: Option<TransactionVerdict>,
) -> ClientError {
    use RDKafkaErrorCode as Code;
    let fenced = matches!(
        code,
        Some(
            Code::ProducerFenced
                | Code::InvalidProducerEpoch
                | Code::Fenced
                | Code::FencedInstanceId
                | Code::IllegalGeneration
                | Code::UnknownMemberId
                | Code::RebalanceInProgress
                | Code::AssignmentLost
                | Code::PollExceeded
        )
    );
    let kind = match &transaction {
        // librdkafka says itself what a failed transactional call means.
        Some(t) if t.fatal || fenced => {
            if fenced {
                ClientErrorKind::Fenced
            } else {
                ClientErrorKind::Fatal
            }
        }
        Some(t) if t.requires_abort => ClientErrorKind::Abortable,
        Some(t) if t.retriable => ClientErrorKind::Retriable,
        _ if fenced => ClientErrorKind::Fenced,
        _ if matches!(
            code,
            Some(
                Code::OperationTimedOut
                    | Code::RequestTimedOut
                    | Code::BrokerTransportFailure
                    | Code::AllBrokersDown
                    | Code::NotLeaderForPartition
                    | Code::LeaderNotAvailable
                    | Code::QueueFull
                    | Code::MessageTimedOut
                    | Code::TimedOutQueue
                    | Code::Retry
                    // A request in flight to a broker that left the cluster's metadata (it went down):
                    // librdkafka dropped its handle, the client goes on with the others.
                    | Code::DestroyBroker
                    // A broker's name that does not resolve yet (a restarting container or pod).
                    | Code::Resolve
                    | Code::NetworkException
                    | Code::BrokerNotAvailable
                    // A coordinator moving to another broker, or loading its state there.
                    | Code::WaitingForCoordinator
                    | Code::NotCoordinator
                    | Code::CoordinatorNotAvailable
                    | Code::CoordinatorLoadInProgress
                    | Code::NotController
                    // A partition's leadership or replicas moving: ListOffsets and produce requests
                    // answer these until the new leader is known and in sync.
                    | Code::ReplicaNotAvailable
                    | Code::PreferredLeaderNotAvailable
                    | Code::FencedLeaderEpoch
                    | Code::UnknownLeaderEpoch
                    | Code::OffsetNotAvailable
                    | Code::NotEnoughReplicas
                    | Code::NotEnoughReplicasAfterAppend
                    | Code::KafkaStorageError
                    | Code::UnstableOffsetCommit
                    | Code::ThrottlingQuotaExceeded
            )
        ) =>
        {
            ClientErrorKind::Retriable
        }
        _ => ClientErrorKind::Fatal,
    };
    let client_error = ClientError::new(operation, message, kind);
    match code {
        Some(code) => client_error.with_code(code as i32),
        None => client_error,
    }
}

/// How long librdkafka waits before fetching again once its local queue is full (`queued.min.messages`).
/// Its default, 1000 ms, leaves a consumer that is only a little slower than the broker idle for a
/// second at a time: restores ran at a quarter of the raw consume rate because of it.
const FETCH_QUEUE_BACKOFF_MS: &str = "5";

/// Applies the user's `client.` settings, then those of the client's own prefix (`own`), over what `c`
/// holds: every client takes the library's values first, so the user can change them.
fn apply_overrides(c: &mut ClientConfig, config: &StreamsConfig, own: &BTreeMap<String, String>) {
    for (k, v) in config.client_overrides.iter().chain(own) {
        c.set(k, v);
    }
}

/// The main consumer's settings: the library's values, then `client.` and `consumer.` overrides, then
/// the values the runtime owns.
fn consumer_settings(config: &StreamsConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.application_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS.to_string())
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    // Kafka Streams' choice (and the Java consumer's default) under at_least_once; librdkafka's own
    // default would be read_committed.
    let exactly_once = config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    c.set("isolation.level", if exactly_once { "read_committed" } else { "read_uncommitted" });
    apply_overrides(&mut c, config, &config.consumer_overrides);
    // The runtime owns these; overriding them would break its guarantees (under exactly-once, a
    // read_uncommitted consumer would process records of transactions that abort later).
    c.set("enable.auto.commit", "false").set("group.id", &config.application_id);
    if exactly_once {
        c.set("isolation.level", "read_committed");
    }
    c
}

/// A producer's settings: the library's values, then `client.` and `producer.` overrides, then the
/// transactional id under exactly-once.
fn producer_settings(config: &StreamsConfig, client_id: &str, transactional_id: Option<&str>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", client_id)
        .set("linger.ms", "100")
        .set("partitioner", "murmur2_random");
    if transactional_id.is_some() {
        // Kafka Streams' exactly-once default: a transaction left open by a crashed instance blocks
        // read_committed readers of its partitions for at most this long.
        c.set("transaction.timeout.ms", "10000");
        // After a commit the broker refuses to add partitions to the next transaction until the
        // last one's markers are written (CONCURRENT_TRANSACTIONS), and librdkafka retries after
        // `retry.backoff.ms`: at its 100 ms default, every commit waited that long for the sends
        // of the next transaction (the Java client retries this one after 20 ms, KAFKA-5477).
        c.set("retry.backoff.ms", "10");
    }
    if transactional_id.is_none() {
        // The Java producer's default since Kafka 3.0, so Kafka Streams' under at_least_once too:
        // without it a retried batch can land after a later one, and a store's changelog then ends on
        // an older value of a key than the store holds.
        c.set("enable.idempotence", "true");
    }
    apply_overrides(&mut c, config, &config.producer_overrides);
    if let Some(id) = transactional_id {
        c.set("transactional.id", id).set("enable.idempotence", "true");
    } else {
        // A record still queued when a paused instance wakes must not go out after the group gave its
        // partitions to another member (see `StreamsConfig::pause_limit`). `delivery.timeout.ms` is
        // librdkafka's alias of the same setting; a value set by the user is kept.
        let limit = config.pause_limit().as_millis() as u64;
        let timeout = ["message.timeout.ms", "delivery.timeout.ms"].into_iter().find_map(|k| c.get(k));
        match timeout.map(|v| v.parse::<u64>()) {
            None => {
                c.set("message.timeout.ms", limit.to_string());
                // A record for a topic that does not exist fails as such (the production exception
                // handler's call) after librdkafka has waited this long for its metadata; at the
                // default 30 s it would time out first, which the thread takes for a broker away.
                if c.get("topic.metadata.propagation.max.ms").is_none() {
                    c.set("topic.metadata.propagation.max.ms", (limit / 2).to_string());
                }
            }
            Some(Ok(ms)) if ms > limit => tracing::warn!(
                target: "kstreams::kafka",
                message_timeout_ms = ms,
                pause_limit_ms = limit,
                "under at_least_once a producer timeout longer than the pause limit lets a paused instance \
                 write after its partitions moved, which can roll a store's changelog back"
            ),
            Some(_) => {}
        }
    }
    c
}

/// The restore consumer's settings, and those of its `read_uncommitted` twin for end offsets.
fn restore_settings(config: &StreamsConfig, client_id: &str) -> (ClientConfig, ClientConfig) {
    // The library's defaults first, then `client.` and `consumer.` overrides, then what the restore
    // needs: assigned partitions only, never a group member; offsets are never committed.
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", client_id)
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        // At the end of a changelog the broker holds a fetch this long; the next task's offset
        // query waits behind it on the same connection (at the default 500 ms, every task of a
        // rebalance took half a second to open).
        .set("fetch.wait.max.ms", "10");
    apply_overrides(&mut c, config, &config.consumer_overrides);
    c.set("group.id", format!("{}-restore-consumer", config.application_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A restore reads a changelog in chunks, each from where the last ended: if the log's start
        // passed that meanwhile (a window changelog's retention), it goes on from the start, never the
        // end (librdkafka's default), which would skip what is left.
        .set("auto.offset.reset", "earliest");
    // The high watermark comes from a `read_uncommitted` client: librdkafka's offset query follows
    // the consumer's isolation level, and a last stable offset would end a restore early.
    let mut end_offsets = c.clone();
    end_offsets.set("client.id", format!("{client_id}-end-offsets")).set("isolation.level", "read_uncommitted");
    if config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
        c.set("isolation.level", "read_committed");
    } else if c.get("isolation.level").is_none() {
        c.set("isolation.level", "read_uncommitted");
    }
    (c, end_offsets)
}

impl ClientSupplier for RdKafkaSupplier {
    fn consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<Box<dyn StreamsConsumer>, ClientError> {
        let mut c = consumer_settings(config, client_id);
        // For the consumer's lag metrics (see `RuntimeContext::stats`), unless set otherwise.
        if !config.consumer_overrides.contains_key("statistics.interval.ms")
            && !config.client_overrides.contains_key("statistics.interval.ms")
        {
            c.set("statistics.interval.ms", "1000");
        }
        let read_committed = c.get("isolation.level") == Some("read_committed");
        let context = RuntimeContext {
            listener,
            read_committed,
            committed_timeout: config.default_api_timeout,
            failed_assignment: Mutex::new(None),
            assigned_from: Mutex::new(BTreeMap::new()),
            reset_to_latest: matches!(c.get("auto.offset.reset"), Some("latest" | "largest" | "end")),
        };
        let consumer: BaseConsumer<RuntimeContext> =
            c.create_with_context(context).map_err(|e| client_error("create consumer", e))?;
        Ok(Box::new(RdKafkaConsumer {
            consumer,
            ends: HashMap::new(),
            topics: Vec::new(),
            subscription: Vec::new(),
            unknown_topic: None,
            unknown_topic_grace: config.default_api_timeout,
            statistics_interval: c
                .get("statistics.interval.ms")
                .and_then(|ms| ms.parse().ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            last_poll: Instant::now(),
        }))
    }

    fn producer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        transactional_id: Option<&str>,
    ) -> Result<Box<dyn StreamsProducer>, ClientError> {
        let c = producer_settings(config, client_id, transactional_id);
        let context = DeliveryContext { transactional: transactional_id.is_some(), ..DeliveryContext::default() };
        let (first_error, rejected) = (context.first_error.clone(), context.rejected.clone());
        let (acked, era) = (context.acked.clone(), context.era.clone());
        // librdkafka's default, 60 s, unless set (the runtime sets 10 s under exactly_once_v2).
        let transaction_timeout =
            Duration::from_millis(c.get("transaction.timeout.ms").and_then(|ms| ms.parse().ok()).unwrap_or(60_000));
        let producer: ThreadedProducer<DeliveryContext> =
            c.create_with_context(context).map_err(|e| client_error("create producer", e))?;
        let producer = Arc::new(producer);
        let transactional = transactional_id.is_some();
        Ok(Box::new(RdKafkaProducer {
            producer,
            transactional,
            transaction_timeout,
            first_error,
            rejected,
            acked,
            era,
        }))
    }

    fn restore_consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
    ) -> Result<Box<dyn RestoreConsumer>, ClientError> {
        let (c, end_offsets) = restore_settings(config, client_id);
        let end_offsets = if c.get("isolation.level") == Some("read_committed") {
            Some(end_offsets.create_with_context(LogContext).map_err(|e| client_error("create restore consumer", e))?)
        } else {
            None
        };
        let consumer: BaseConsumer<LogContext> =
            c.create_with_context(LogContext).map_err(|e| client_error("create restore consumer", e))?;
        Ok(Box::new(RdKafkaRestoreConsumer::new(
            consumer,
            end_offsets,
            config.default_api_timeout,
            config.task_timeout,
        )))
    }

    fn admin(&self, config: &StreamsConfig) -> Result<Box<dyn StreamsAdmin>, ClientError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.bootstrap_servers);
        if let Some(id) = &config.client_id {
            c.set("client.id", format!("{id}-admin"));
        }
        apply_overrides(&mut c, config, &config.admin_overrides);
        let connection = ConnectionContext::default();
        let admin: AdminClient<ConnectionContext> =
            c.create_with_context(connection.clone()).map_err(|e| client_error("create admin client", e))?;
        let metadata: BaseConsumer<ConnectionContext> =
            c.create_with_context(connection.clone()).map_err(|e| client_error("create metadata client", e))?;
        let timeout = config.default_api_timeout;
        Ok(Box::new(RdKafkaAdmin { admin, metadata, connection, timeout, servers: config.bootstrap_servers.clone() }))
    }

    fn group_member(&self, config: &StreamsConfig, client_id: &str) -> Result<Box<dyn GroupMember>, ClientError> {
        Ok(Box::new(group_member::KafkaGroupMember::new(config, client_id)?))
    }
}

/// How many `None`s in a row end a poll, besides one per statistics event that can have queued since
/// the last (see `poll_batch`): past the handled events, the queue is empty. Each costs a look at the
/// queue once its wait is over.
const MAX_EMPTY_POLLS: u32 = 8;

/// The admin clients' context: remembers why librdkafka last failed to reach a broker (a refused
/// password, a certificate it does not trust, a refused connection), which librdkafka only says in its
/// log (facility `FAIL`) and in error events. A request that then times out says that cause instead of
/// only "timed out".
#[derive(Clone, Default)]
struct ConnectionContext {
    /// The failure kept: how much it says (see `note`), when, and librdkafka's words.
    last_failure: Arc<Mutex<Option<(u8, Instant, String)>>>,
}

impl ConnectionContext {
    /// Why the last connection failed, if one did within `recent`: librdkafka's own words, which name
    /// the broker.
    fn last_failure(&self, recent: Duration) -> Option<String> {
        let last = self.last_failure.lock().ok()?;
        let (_, at, reason) = last.as_ref()?;
        (at.elapsed() <= recent).then(|| reason.clone())
    }

    /// Keeps `reason`, unless a failure that says more is kept: a refused authentication or TLS handshake
    /// says more than the transport failures that follow it.
    fn note(&self, reason: &str) {
        // `[thrd:sasl_ssl://host:port/bootstrap]: sasl_ssl://host:port/bootstrap: ...`: the thread's name
        // repeats the broker's.
        let reason = match reason.strip_prefix("[thrd:").and_then(|rest| rest.split_once("]: ")) {
            Some((_, rest)) => rest,
            None => reason,
        };
        let lower = reason.to_ascii_lowercase();
        let rank =
            if ["authentication", "ssl", "certificate", "sasl"].iter().any(|w| lower.contains(w)) { 2 } else { 1 };
        if let Ok(mut last) = self.last_failure.lock() {
            // An older failure that said more gives way after a minute: it may be long over.
            let keep_older =
                last.as_ref().is_some_and(|(kept, at, _)| *kept > rank && at.elapsed() < Duration::from_secs(60));
            if !keep_older {
                *last = Some((rank, Instant::now(), reason.to_string()));
            }
        }
    }
}

impl ConsumerContext for ConnectionContext {}

/// librdkafka's log line, under the target `kstreams::librdkafka` (rdkafka's default context logs under
/// `librdkafka`, which `RUST_LOG=kstreams=…` would not show). Every client's context logs through here.
fn log_line(level: RDKafkaLogLevel, fac: &str, log_message: &str) {
    use RDKafkaLogLevel as Level;
    match level {
        Level::Emerg | Level::Alert | Level::Critical | Level::Error => {
            tracing::error!(target: "kstreams::librdkafka", "librdkafka: {fac} {log_message}")
        }
        Level::Warning => tracing::warn!(target: "kstreams::librdkafka", "librdkafka: {fac} {log_message}"),
        Level::Notice | Level::Info => {
            tracing::info!(target: "kstreams::librdkafka", "librdkafka: {fac} {log_message}")
        }
        Level::Debug => tracing::debug!(target: "kstreams::librdkafka", "librdkafka: {fac} {log_message}"),
    }
}

/// librdkafka's error event, under the same target.
fn log_error(error: &KafkaError, reason: &str) {
    tracing::error!(target: "kstreams::librdkafka", "librdkafka: {error}: {reason}");
}

/// The context of a client that hears nothing else: its log goes under `kstreams::librdkafka`.
#[derive(Clone, Copy, Default)]
pub(crate) struct LogContext;

/// `ClientContext` for contexts that only log: librdkafka's lines and error events under
/// `kstreams::librdkafka` (the admin's `ConnectionContext` also keeps the last connection failure).
macro_rules! logging_client_context {
    ($($context:ty),+) => {$(
        impl ClientContext for $context {
            fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
                log_line(level, fac, log_message);
            }

            fn error(&self, error: KafkaError, reason: &str) {
                log_error(&error, reason);
            }
        }
    )+};
}

logging_client_context!(LogContext, DeliveryContext);

impl ClientContext for RuntimeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`) give the Java consumer's lag metrics:
    /// `records-lag` of each partition the thread fetches (the end a reader at its isolation level
    /// sees, less the position handed out; librdkafka's own `consumer_lag` counts from the committed
    /// offset instead) and `records-lag-max` of the client (the largest now).
    fn stats(&self, statistics: rdkafka::Statistics) {
        let client = crate::metrics::Tags::new(&[("client-id", &statistics.client_id)]);
        let mut max: Option<i64> = None;
        for (name, topic) in &statistics.topics {
            for (partition, figures) in &topic.partitions {
                let end = if self.read_committed { figures.ls_offset } else { figures.hi_offset };
                if *partition < 0 || figures.app_offset < 0 || end < 0 {
                    continue;
                }
                let lag = (end - figures.app_offset).max(0);
                max = Some(max.map_or(lag, |m| m.max(lag)));
                // As the Java consumer's tag: dots in a topic name become underscores.
                client.with("topic", &name.replace('.', "_")).with("partition", &partition.to_string()).gauge(
                    crate::metrics::CONSUMER_FETCH,
                    "records-lag",
                    lag as f64,
                );
            }
        }
        if let Some(max) = max {
            client.gauge(crate::metrics::CONSUMER_FETCH, "records-lag-max", max as f64);
        }
    }
}

impl ConsumerContext for LogContext {}

impl ClientContext for ConnectionContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
        if fac == "FAIL" {
            self.note(log_message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL | RDKafkaErrorCode::BrokerTransportFailure)
        ) {
            self.note(reason);
        }
    }
}

/// Runs the runtime's rebalance listener inside rdkafka's rebalance callback.
struct RuntimeContext {
    listener: Arc<dyn RebalanceListener>,
    /// Whether the consumer reads committed records only (exactly_once_v2): fetching committed offsets
    /// then waits for them to be stable (see [`committed_of`]).
    read_committed: bool,
    /// How long to wait for the committed offsets of newly assigned partitions.
    committed_timeout: Duration,
    /// Why the last assignment's committed offsets could not be read: its tasks were not opened, and the
    /// next poll fails with this (a retriable error makes the thread rejoin and try again).
    failed_assignment: Mutex<Option<ClientError>>,
    /// Where fetching of each assigned partition starts (its committed offset), for its lag until
    /// librdkafka has a position of its own: one where nothing was fetched since the assignment.
    assigned_from: Mutex<BTreeMap<TopicPartition, i64>>,
    /// Where a partition without a committed offset starts: its end (`auto.offset.reset` = latest)
    /// rather than its beginning.
    reset_to_latest: bool,
}

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) if consumer.assignment_lost() => {
                self.listener.on_partitions_lost(&partitions_of(list));
            }
            Rebalance::Revoke(list) => {
                let committer = CallbackCommitter { consumer };
                self.listener.on_partitions_revoked(&partitions_of(list), &committer);
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(target: "kstreams::kafka", error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            match committed_of(consumer, list, self.committed_timeout, self.read_committed) {
                Ok(committed) => {
                    // librdkafka keeps a partition paused by the application across its reassignment;
                    // the runtime's fresh queues expect it fetched.
                    if let Err(e) = consumer.resume(list) {
                        tracing::warn!(target: "kstreams::kafka", error = %e, "could not resume newly assigned partitions");
                    }
                    let mut from = self.assigned_from.lock_unpoisoned();
                    from.clear();
                    from.extend(committed.iter().map(|(tp, c)| (tp.clone(), c.offset)));
                    drop(from);
                    self.listener.on_partitions_assigned(&partitions_of(list), &committed)
                }
                Err(e) => {
                    // Without the committed metadata a task would start without what its processors
                    // committed (an emit-final aggregation would emit its windows again), and its next
                    // commit would erase it: the tasks are not opened, and the thread tries again.
                    tracing::warn!(target: "kstreams::kafka", error = %e, "could not read the committed offsets of newly assigned partitions; not opening their tasks");
                    *self.failed_assignment.lock_unpoisoned() = Some(e);
                }
            }
        }
    }
}

/// The group's committed offsets and metadata of `list`'s partitions, read when they are assigned (as
/// Kafka Streams reads them before it restores the tasks): the metadata holds what the tasks' processors
/// committed. An error when they cannot be read, for the whole list or for one partition.
///
/// Under `read_committed` (exactly_once_v2) this also waits until no transaction that holds offsets of
/// these partitions is pending (KIP-447). A previous owner (a zombie, or an instance killed between
/// sending its offsets and committing) may have a transaction open with the offsets, outputs and
/// changelog writes of a task. Its changelog writes are invisible to the restore (which reads up to the
/// last stable offset) until it ends; if it then commits, the task's offsets jump past its records while
/// the restored state lacks their updates. librdkafka then asks for stable offsets and retries while the
/// broker answers `UNSTABLE_OFFSET_COMMIT`.
fn committed_of(
    consumer: &BaseConsumer<RuntimeContext>,
    list: &TopicPartitionList,
    timeout: Duration,
    read_committed: bool,
) -> Result<CommittedOffsets, ClientError> {
    let mut committed = CommittedOffsets::new();
    if list.count() == 0 {
        return Ok(committed);
    }
    let started = Instant::now();
    let offsets =
        consumer.committed_offsets(list.clone(), timeout).map_err(|e| client_error("read committed offsets", e))?;
    if read_committed && started.elapsed() >= Duration::from_secs(1) {
        tracing::info!(
            target: "kstreams::kafka",
            waited_ms = started.elapsed().as_millis() as u64,
            "waited for a pending transaction of a previous owner before restoring"
        );
    }
    for element in offsets.elements() {
        let tp = TopicPartition::new(element.topic(), element.partition());
        element.error().map_err(|e| client_error(format!("read the committed offset of {tp}"), e))?;
        let Offset::Offset(offset) = element.offset() else { continue };
        // rdkafka's `metadata()` panics on bytes that are not UTF-8 (only a foreign client writes such);
        // this runs inside librdkafka's callback, where a panic must not unwind.
        let metadata = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| element.metadata().to_string()))
            .unwrap_or_default();
        committed.insert(tp, OffsetAndMetadata { offset, metadata });
    }
    Ok(committed)
}

/// The list a commit sends: each partition's offset and, when there is one, its metadata.
fn commit_list(offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<TopicPartitionList, ClientError> {
    let mut list = TopicPartitionList::new();
    for (tp, committed) in offsets {
        let mut element = list.add_partition(&tp.topic, tp.partition);
        element
            .set_offset(Offset::Offset(committed.offset))
            .map_err(|e| client_error(format!("commit offset of {tp}"), e))?;
        if !committed.metadata.is_empty() {
            element.set_metadata(&committed.metadata);
        }
    }
    Ok(list)
}

fn partition_list(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for tp in partitions {
        list.add_partition(&tp.topic, tp.partition);
    }
    list
}

fn offset_list(offsets: &[(TopicPartition, i64)]) -> Result<TopicPartitionList, ClientError> {
    let mut list = TopicPartitionList::new();
    for (tp, offset) in offsets {
        list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
            .map_err(|e| client_error(format!("commit offset of {tp}"), e))?;
    }
    Ok(list)
}

struct CallbackCommitter<'a> {
    consumer: &'a BaseConsumer<RuntimeContext>,
}

impl OffsetCommitter for CallbackCommitter<'_> {
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        commit_sync(self.consumer, offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        consumer_group_metadata(self.consumer)
    }
}

/// The consumer's membership as librdkafka holds it now (read through the extension crate, so that offsets
/// sent to a transaction carry a membership of the same form whichever group member made it).
fn consumer_group_metadata(consumer: &BaseConsumer<RuntimeContext>) -> Option<GroupMetadata> {
    let m = streams_rdkafka_ext::consumer_membership(consumer.client())?;
    let metadata = GroupMetadata::new(m.group_id, m.member_id, m.generation_id);
    Some(match m.group_instance_id {
        Some(id) => metadata.with_group_instance_id(id),
        None => metadata,
    })
}

fn commit_sync(
    consumer: &BaseConsumer<RuntimeContext>,
    offsets: &[(TopicPartition, OffsetAndMetadata)],
) -> Result<(), ClientError> {
    if offsets.is_empty() {
        return Ok(());
    }
    consumer.commit(&commit_list(offsets)?, CommitMode::Sync).map_err(|e| client_error("commit offsets", e))
}

/// How long the end of a partition asked of the broker is taken as its end while the consumer's
/// position has reached it: new records produced meanwhile go unseen that long (`max.task.idle.ms`).
const END_REFRESH: Duration = Duration::from_millis(100);

/// How long asking the partitions' ends may take, all together at one step; past it their lags are not
/// known (their tasks wait).
const END_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an end asked of the broker is used at all, even while the position is below it (a log
/// truncated under the consumer would otherwise keep a task waiting).
const END_MAX_AGE: Duration = Duration::from_secs(5);

/// A partition's first offset and readable end, as the broker said at `asked`.
#[derive(Clone, Copy)]
struct PartitionEnd {
    low: i64,
    end: i64,
    asked: Instant,
}

struct RdKafkaConsumer {
    consumer: BaseConsumer<RuntimeContext>,
    /// The partitions' ends last asked of the broker, for [`StreamsConsumer::fetched_lags`].
    ends: HashMap<TopicPartition, PartitionEnd>,
    /// Topic names as shared strings, so a record does not allocate its topic's name.
    topics: Vec<Arc<str>>,
    subscription: Vec<String>,
    /// When the current run of "unknown topic or partition" errors began, and the last one.
    unknown_topic: Option<(Instant, Instant)>,
    /// How long a subscribed topic may stay unknown before polling fails (`default.api.timeout.ms`).
    unknown_topic_grace: Duration,
    /// `statistics.interval.ms`, when librdkafka sends statistics (see `poll_batch`).
    statistics_interval: Option<Duration>,
    /// When the last poll ended.
    last_poll: Instant,
}

impl RdKafkaConsumer {
    /// Whether an "unknown topic or partition" error is still within its grace period. Right after a
    /// topic is created, a broker may not know it yet (metadata propagates); `start()` checked that
    /// every source topic exists, so the consumer waits for it, and fails only if it stays unknown
    /// for `default.api.timeout.ms` (a topic deleted under the application). A run of errors that
    /// stopped for that long starts a new grace period.
    fn unknown_topic_tolerated(&mut self) -> bool {
        let now = Instant::now();
        let (first, last) = match self.unknown_topic {
            Some((first, last)) if now - last < self.unknown_topic_grace => (first, now),
            _ => (now, now),
        };
        self.unknown_topic = Some((first, last));
        now - first < self.unknown_topic_grace
    }
}

fn topic_of(topics: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    match topics.iter().find(|t| &***t == name) {
        Some(topic) => topic.clone(),
        None => {
            let topic: Arc<str> = name.into();
            topics.push(topic.clone());
            topic
        }
    }
}

fn raw_record(topic: Arc<str>, message: &rdkafka::message::BorrowedMessage<'_>) -> RawRecord {
    let headers = headers_of(message);
    RawRecord {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis().unwrap_or(-1),
        key: message.key().map(crate::buffers::copy_of),
        value: message.payload().map(crate::buffers::copy_of),
        headers,
    }
}

fn headers_of(message: &rdkafka::message::BorrowedMessage<'_>) -> RecordHeaders {
    message
        .headers()
        .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default()
}

impl OffsetCommitter for RdKafkaConsumer {
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        commit_sync(&self.consumer, offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        consumer_group_metadata(&self.consumer)
    }
}

impl StreamsConsumer for RdKafkaConsumer {
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError> {
        self.subscription = topics.to_vec();
        if topics.is_empty() {
            // librdkafka refuses an empty subscription: a source pattern that matches no topic yet. The
            // member joins once one does.
            self.consumer.unsubscribe();
            return Ok(());
        }
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics).map_err(|e| client_error("subscribe", e))
    }

    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
        let deadline =
            Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        // `poll` also answers `None` when it handled an event in place of a message (librdkafka's
        // statistics every `statistics.interval.ms`, a log line): a poll that stopped at the first
        // `None` left the fetched records behind one such event per call (a thread restoring, which
        // polls without waiting, saw no record for as long as its restore lasted). It looks past as
        // many as can have queued since the last poll: one statistics event per interval, and a few
        // more (log lines; rdkafka gives no safe way to ask the queue's length). A burst of log events
        // longer than that (`debug=` settings) can still end a batch early: the next poll goes on.
        let queued_statistics = self.statistics_interval.map_or(0, |interval| {
            (self.last_poll.elapsed().as_millis() / interval.as_millis().max(1)).min(u32::MAX as u128) as u32
        });
        let max_empty_polls = MAX_EMPTY_POLLS.saturating_add(queued_statistics);
        let mut empty_polls = 0;
        while out.len() < max {
            // Wait only until something came; then take what is already fetched.
            let wait = if out.is_empty() { deadline.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
            let polled = self.consumer.poll(wait);
            if let Some(failed) = self.consumer.context().failed_assignment.lock_unpoisoned().take() {
                return Err(failed);
            }
            let error = match polled {
                None => {
                    empty_polls += 1;
                    if empty_polls > max_empty_polls {
                        break;
                    }
                    continue;
                }
                Some(Ok(message)) => {
                    let topic = topic_of(&mut self.topics, message.topic());
                    out.push(raw_record(topic, &message));
                    None
                }
                Some(Err(KafkaError::PartitionEOF(_))) => None,
                Some(Err(e)) => Some(e),
            };
            match error {
                None => {}
                Some(e)
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                        && self.unknown_topic_tolerated() =>
                {
                    tracing::debug!(target: "kstreams::kafka", error = %e, "a subscribed topic is not known to the broker yet; polling on");
                }
                Some(e) => {
                    let error = client_error("poll", e);
                    if error.is_retriable() {
                        tracing::warn!(target: "kstreams::kafka", error = %error, "retriable consumer error; polling on");
                    } else {
                        return Err(error);
                    }
                }
            }
            empty_polls = 0;
        }
        self.last_poll = Instant::now();
        Ok(())
    }

    fn rejoin(&mut self) -> Result<(), ClientError> {
        self.consumer.unsubscribe();
        let topics = self.subscription.clone();
        self.subscribe(&topics)
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        let list = partition_list(partitions);
        self.consumer.pause(&list).map_err(|e| client_error("pause partitions", e))
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        let list = partition_list(partitions);
        self.consumer.resume(&list).map_err(|e| client_error("resume partitions", e))
    }

    /// The end a reader at this consumer's isolation level sees (the last stable offset under
    /// read_committed), less the position after the last record or transaction marker handed out
    /// (librdkafka's `position`, or where fetching started when nothing was handed out yet). rdkafka
    /// offers no cached end: it is asked of the broker (`ListOffsets`), at most every
    /// [`END_REFRESH`] per partition, and only when the position has reached the end last seen.
    fn fetched_lags(&mut self, partitions: &[TopicPartition]) -> Vec<Option<i64>> {
        let positions = self.consumer.position().ok();
        let context = self.consumer.context();
        let assigned_from = context.assigned_from.lock_unpoisoned();
        let deadline = Instant::now() + END_TIMEOUT;
        partitions
            .iter()
            .map(|tp| {
                let handed_out =
                    positions.as_ref().and_then(|p| p.find_partition(&tp.topic, tp.partition)).and_then(|e| {
                        match e.offset() {
                            Offset::Offset(offset) => Some(offset),
                            _ => None,
                        }
                    });
                let position = handed_out.or_else(|| assigned_from.get(tp).copied());
                let known = self.ends.get(tp).filter(|end| {
                    let age = end.asked.elapsed();
                    age < END_REFRESH || (age < END_MAX_AGE && position.is_some_and(|position| position < end.end))
                });
                let end = match known {
                    Some(end) => *end,
                    None => {
                        let wait = deadline.saturating_duration_since(Instant::now());
                        let (low, high) = self.consumer.fetch_watermarks(&tp.topic, tp.partition, wait).ok()?;
                        let end = PartitionEnd { low, end: high, asked: Instant::now() };
                        self.ends.insert(tp.clone(), end);
                        end
                    }
                };
                let position = match position {
                    // A committed offset below the log's start (records deleted unread) reads from the
                    // start: the consumer resets there.
                    Some(position) => position.clamp(end.low, end.end.max(end.low)),
                    None if context.reset_to_latest => end.end,
                    None => end.low,
                };
                Some(end.end - position)
            })
            .collect()
    }

    fn close(&mut self) {
        self.consumer.unsubscribe();
        // Serve the revocation callback so the listener commits and closes tasks before we go.
        let _ = self.consumer.poll(Duration::from_millis(100));
    }

    fn assign(&mut self, partitions: &[(TopicPartition, Option<i64>)]) -> Result<(), ClientError> {
        let mut list = TopicPartitionList::new();
        for (tp, offset) in partitions {
            // No offset: librdkafka reads the group's committed one, else applies `auto.offset.reset`.
            let offset = offset.map_or(Offset::Invalid, Offset::Offset);
            list.add_partition_offset(&tp.topic, tp.partition, offset)
                .map_err(|e| client_error(format!("assign {tp}"), e))?;
        }
        self.consumer.incremental_assign(&list).map_err(|e| client_error("assign partitions", e))?;
        let mut from = self.consumer.context().assigned_from.lock_unpoisoned();
        for (tp, offset) in partitions {
            match offset {
                Some(offset) => from.insert(tp.clone(), *offset),
                None => from.remove(tp),
            };
        }
        Ok(())
    }

    /// librdkafka's offsets-for-times with Kafka's "latest" timestamp (-1): one ListOffsets request per
    /// partition leader, at the consumer's isolation level.
    fn end_offsets(&mut self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let mut list = TopicPartitionList::new();
        for tp in partitions {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::End)
                .map_err(|e| client_error(format!("end offset of {tp}"), e))?;
        }
        let answered = self
            .consumer
            .offsets_for_times(list, self.unknown_topic_grace)
            .map_err(|e| client_error("read the end offsets", e))?;
        let ends = answered.elements().into_iter().filter(|e| e.error().is_ok()).filter_map(|e| match e.offset() {
            Offset::Offset(end) => Some((TopicPartition::new(e.topic(), e.partition()), end)),
            _ => None,
        });
        Ok(ends.collect())
    }

    fn unassign(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        let list = partition_list(partitions);
        self.consumer.incremental_unassign(&list).map_err(|e| client_error("unassign partitions", e))?;
        let mut from = self.consumer.context().assigned_from.lock_unpoisoned();
        for tp in partitions {
            from.remove(tp);
        }
        Ok(())
    }
}

/// Records the broker rejected, copied from librdkafka's report, with the error.
type Rejected = Arc<Mutex<Vec<(ProducedRecord, ClientError)>>>;

/// A rejected record as it was produced, for the production exception handler: copied only when a
/// delivery fails.
fn rejected_record(message: &rdkafka::message::BorrowedMessage<'_>) -> ProducedRecord {
    use rdkafka::message::{Headers as _, Message as _};
    let mut headers = crate::record::Headers::new();
    if let Some(borrowed) = message.headers() {
        for header in borrowed.iter() {
            headers.add(header.key, header.value.map(<[u8]>::to_vec));
        }
    }
    ProducedRecord {
        topic: message.topic().into(),
        partition: Some(message.partition()).filter(|&p| p >= 0),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        timestamp: message.timestamp().to_millis().unwrap_or(-1),
        headers,
    }
}

/// Acknowledged offsets: topic -> partition -> offset of the last acknowledged record.
type Acked = Arc<Mutex<HashMap<String, HashMap<i32, i64>>>>;

/// Keeps the first delivery error for `flush` to report, the records the broker rejected, and the last
/// acknowledged offset per partition.
#[derive(Default)]
struct DeliveryContext {
    first_error: Arc<Mutex<Option<ClientError>>>,
    rejected: Rejected,
    acked: Acked,
    /// How many times the unsent records were dropped (`purge_unsent`). A record carries the era it
    /// was sent in; a failure of a record of an earlier era belongs to work already given up, and is
    /// not reported (its report can come long after the purge, from librdkafka's own threads).
    era: Arc<AtomicUsize>,
    /// Whether the producer is transactional (see `delivery`).
    transactional: bool,
}

/// What a failed send was: `produce to <topic>-<partition>`, or `produce to <topic>` for a record that
/// never got a partition (its topic is missing, say), which librdkafka reports as partition -1.
fn produce_operation(topic: &str, partition: i32) -> String {
    match partition {
        p if p >= 0 => format!("produce to {topic}-{p}"),
        _ => format!("produce to {topic}"),
    }
}

/// A record's failed delivery, classified. A transaction that failed by itself (an error that needs
/// the producer's epoch bumped, as out-of-order sequence numbers after a broker restart) has its queued
/// records purged by librdkafka: this era's `PurgeQueue`/`PurgeInflight` mean the transaction must
/// abort and its work be redone. (Without a transaction only `purge_unsent` purges, in a new era.)
fn delivery_failure(operation: String, error: &KafkaError, transactional: bool) -> ClientError {
    let mut failure = client_error(operation, error.clone());
    if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)) {
        failure.kind = if transactional { ClientErrorKind::Abortable } else { ClientErrorKind::Retriable };
    }
    failure
}

/// What a producer's fatal error `cause` means for its thread. A transactional producer whose epoch is
/// stale (its coordinator aborted a transaction that outlived `transaction.timeout.ms`, as when the
/// member was cut off from the brokers, and bumped the epoch; or a newer incarnation took its id) is
/// fenced: the thread recovers with a new producer, as from any fencing. Any other cause, and any
/// fatal error of a producer without transactions (which the recovery would not replace), fails the
/// thread.
fn fatal_cause_kind(cause: RDKafkaErrorCode, transactional: bool) -> ClientErrorKind {
    use RDKafkaErrorCode as Code;
    match cause {
        Code::Fenced | Code::ProducerFenced | Code::InvalidProducerEpoch if transactional => ClientErrorKind::Fenced,
        _ => ClientErrorKind::Fatal,
    }
}

impl ProducerContext for DeliveryContext {
    /// The record's era (see `era`) shifted left by one, and in the low bit whether to remember its
    /// offset: only for records sent to an explicit partition (changelogs), so that sink records do
    /// not take a lock each.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        if let (Ok(message), 1) = (result, opaque & 1) {
            let mut acked = self.acked.lock_unpoisoned();
            let partitions = match acked.get_mut(message.topic()) {
                Some(partitions) => partitions,
                None => acked.entry(message.topic().to_string()).or_default(),
            };
            let offset = partitions.entry(message.partition()).or_insert(message.offset());
            *offset = (*offset).max(message.offset());
        }
        if let Err((error, message)) = result {
            if opaque >> 1 != self.era.load(Ordering::SeqCst) {
                tracing::debug!(target: "kstreams::kafka", topic = message.topic(), partition = message.partition(), %error,
                    "a record of work given up failed; its task redoes it from the last commit");
                return;
            }
            let operation = produce_operation(message.topic(), message.partition());
            let failure = delivery_failure(operation, error, self.transactional);
            // Kept only when the record itself was refused: a timeout or a fencing is recovered
            // from (the work is redone), never handed to the production handler.
            if failure.kind == ClientErrorKind::Fatal {
                let copy = client_error(produce_operation(message.topic(), message.partition()), error.clone());
                self.rejected.lock_unpoisoned().push((rejected_record(message), copy));
            }
            let mut first = self.first_error.lock_unpoisoned();
            if first.is_none() {
                *first = Some(failure);
            }
        }
    }
}

/// How much longer than its own timeout `send_offsets_to_transaction` may take before the stream thread
/// stops waiting for it.
const SEND_OFFSETS_GRACE: Duration = Duration::from_secs(1);

struct RdKafkaProducer {
    /// Shared with the thread that waits for `send_offsets_to_transaction` (see there).
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    transactional: bool,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction open longer than that, so waiting
    /// longer for one of its calls is waiting for nothing.
    transaction_timeout: Duration,
    first_error: Arc<Mutex<Option<ClientError>>>,
    rejected: Rejected,
    acked: Acked,
    era: Arc<AtomicUsize>,
}

impl RdKafkaProducer {
    /// The first delivery error since the last call, if any.
    fn take_delivery_error(&self) -> Result<(), ClientError> {
        match self.first_error.lock_unpoisoned().take() {
            Some(error) => Err(self.with_fatal_cause(error)),
            None => Ok(()),
        }
    }

    /// Once the producer has hit a fatal error, librdkafka fails its records with a bare `Fatal`, and
    /// that can reach the thread before the failed transactional call that says why: the error takes
    /// the cause's code and reason, and the cause decides what it means (see `fatal_cause_kind`).
    fn with_fatal_cause(&self, mut error: ClientError) -> ClientError {
        if error.code != Some(RDKafkaErrorCode::Fatal as i32) {
            return error;
        }
        let Some((cause, reason)) = self.producer.client().fatal_error() else { return error };
        error.message = format!("{} (the producer's fatal error: {reason})", error.message);
        error.kind = fatal_cause_kind(cause, self.transactional);
        error.code = Some(cause as i32);
        error
    }
}

impl StreamsProducer for RdKafkaProducer {
    fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError> {
        loop {
            let opaque = self.era.load(Ordering::Relaxed) << 1 | usize::from(record.partition.is_some());
            let mut r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(&record.topic, opaque);
            // Most records have no headers: skip librdkafka's header list (an allocation) for them. The
            // list goes to librdkafka with the record, so it is built again only if the queue was full.
            if !record.headers.is_empty() {
                let headers = record
                    .headers
                    .iter()
                    .fold(OwnedHeaders::new_with_capacity(record.headers.len()), |hs, (key, value)| {
                        hs.insert(Header { key, value })
                    });
                r = r.headers(headers);
            }
            if let Some(key) = &record.key {
                r = r.key(key.as_slice());
            }
            if let Some(value) = &record.value {
                r = r.payload(value.as_slice());
            }
            if let Some(partition) = record.partition {
                r = r.partition(partition);
            }
            if record.timestamp >= 0 {
                r = r.timestamp(record.timestamp);
            }
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Back-pressure: let deliveries drain, then try again.
                    std::thread::sleep(Duration::from_millis(1));
                }
                // A transactional producer refuses records outside an open transaction: a call of the
                // transaction failed before (librdkafka's abortable error state; a fatal one says
                // `Fatal`). The transaction must abort, and the work since the last commit be redone.
                Err((e @ KafkaError::MessageProduction(RDKafkaErrorCode::State), _)) => {
                    let mut error = client_error(format!("produce to {}", record.topic), e);
                    error.kind = ClientErrorKind::Abortable;
                    return Err(error);
                }
                Err((e, _)) => {
                    return Err(self.with_fatal_cause(client_error(format!("produce to {}", record.topic), e)))
                }
            }
        }
    }

    fn purge_unsent(&mut self) {
        self.era.fetch_add(1, Ordering::SeqCst);
        self.producer.purge(PurgeConfig::default().queue());
        let _ = self.take_delivery_error();
        self.rejected.lock_unpoisoned().clear();
    }

    fn take_rejected(&mut self) -> Vec<(ProducedRecord, ClientError)> {
        std::mem::take(&mut *self.rejected.lock_unpoisoned())
    }

    /// rust-rdkafka's `flush(timeout)` waits in 100 ms polls of the queue that the threaded producer's
    /// own thread drains first, so every flush took 100 or 200 ms: at a 100 ms commit interval, most of
    /// the time. Here each round asks librdkafka to send what it holds now (`rd_kafka_flush` with no
    /// wait, which overrides `linger.ms`) and checks whether everything was acknowledged, every
    /// millisecond until `timeout`.
    fn flush(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.flush(Duration::ZERO) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(client_error("flush producer", e)),
            }
        }
        self.take_delivery_error()
    }

    fn acked_offset(&self, partition: &TopicPartition) -> Option<i64> {
        let acked = self.acked.lock_unpoisoned();
        acked.get(&*partition.topic)?.get(&partition.partition).copied()
    }

    fn init_transactions(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.producer.init_transactions(timeout).map_err(|e| client_error("init transactions", e))
    }

    fn begin_transaction(&mut self) -> Result<(), ClientError> {
        self.producer.begin_transaction().map_err(|e| client_error("begin transaction", e))
    }

    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        group: &GroupMetadata,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        const OPERATION: &str = "send offsets to transaction";
        let membership = streams_rdkafka_ext::Membership {
            group_id: group.group_id.clone(),
            member_id: group.member_id.clone(),
            generation_id: group.generation_id,
            group_instance_id: group.group_instance_id.clone(),
        };
        // librdkafka does not keep this call's timeout when the group coordinator's broker goes away
        // (confluentinc/librdkafka#5456; #5511 once that broker has left the metadata, as a killed KRaft
        // broker does): it can wait for good, the brokers back and well (docs/reliability.md). So the
        // call runs on a thread of its own and the stream thread waits for it only as long as the timeout,
        // or `transaction.timeout.ms` when shorter (the transaction is aborted by then in any case).
        // Past that the producer is in doubt: the thread recovers, replacing it (the new one fences it
        // and aborts its transaction); the waiting thread keeps the old one until the call returns.
        let (list, producer) = (commit_list(offsets)?, self.producer.clone());
        let timeout = timeout.min(self.transaction_timeout);
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("kstreams-send-offsets".to_string())
            .spawn(move || {
                let client = producer.client();
                let sent = streams_rdkafka_ext::send_offsets_to_transaction(client, &list, &membership, timeout);
                let _ = answer.send(sent);
            })
            .map_err(|e| {
                ClientError::new(OPERATION, format!("cannot start its thread: {e}"), ClientErrorKind::Fatal)
            })?;
        match answered.recv_timeout(timeout + SEND_OFFSETS_GRACE) {
            Ok(result) => result.map_err(|e| transaction_error(OPERATION, e)),
            Err(_) => Err(ClientError::new(
                OPERATION,
                format!(
                    "no answer within {timeout:?}: librdkafka waits for a group coordinator that left \
                     (confluentinc/librdkafka#5456); the producer is replaced"
                ),
                ClientErrorKind::Retriable,
            )),
        }
    }

    fn commit_transaction(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let result = self.producer.commit_transaction(timeout).map_err(|e| client_error("commit transaction", e));
        // A record the broker refused makes the commit fail too; name the record's partition rather
        // than only the transaction.
        match (result, self.take_delivery_error()) {
            (Err(mut commit), Err(delivery)) => {
                commit.message = format!("{} (first delivery error: {delivery})", commit.message);
                Err(commit)
            }
            (result, _) => result,
        }
    }

    fn abort_transaction(&mut self, timeout: Duration) -> Result<(), ClientError> {
        // The abort purges the transaction's records still queued or in flight, and their failures
        // (`PurgeQueue`, `PurgeInflight`) arrive while it runs: they belong to work given up, not to
        // the next transaction's flush.
        self.era.fetch_add(1, Ordering::SeqCst);
        let _ = self.take_delivery_error();
        let aborted = self.producer.abort_transaction(timeout).map_err(|e| client_error("abort transaction", e));
        let _ = self.take_delivery_error();
        self.rejected.lock_unpoisoned().clear();
        aborted
    }
}

struct RdKafkaAdmin {
    admin: AdminClient<ConnectionContext>,
    metadata: BaseConsumer<ConnectionContext>,
    connection: ConnectionContext,
    timeout: Duration,
    servers: String,
}

impl RdKafkaAdmin {
    /// `error` of a request to the brokers, with why the last connection to one failed, if one did.
    fn broker_error(&self, operation: String, error: KafkaError) -> ClientError {
        // librdkafka queues its log lines and error events on the client's main queue (rdkafka sets
        // `log.queue`), which nothing else polls: drain it so the context sees them.
        for _ in 0..10_000 {
            match self.metadata.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => self.connection.note(&e.to_string()),
                Some(Ok(_)) => {}
            }
        }
        let mut error = client_error(operation, error);
        error.message = match self.connection.last_failure(self.timeout * 2) {
            Some(cause) => format!("{}; the last connection attempt failed: {cause}", error.message),
            None => format!("{} (is a broker running at {}?)", error.message, self.servers),
        };
        error
    }
}

impl StreamsAdmin for RdKafkaAdmin {
    fn partition_counts(&self, topics: &[String]) -> Result<BTreeMap<String, Option<i32>>, ClientError> {
        let metadata = self
            .metadata
            .fetch_metadata(None, self.timeout)
            .map_err(|e| self.broker_error(format!("fetch metadata from {}", self.servers), e))?;
        let mut counts: BTreeMap<String, Option<i32>> = topics.iter().map(|t| (t.clone(), None)).collect();
        for topic in metadata.topics() {
            if let Some(count) = counts.get_mut(topic.name())
                && topic.error().is_none()
            {
                *count = Some(topic.partitions().len() as i32);
            }
        }
        Ok(counts)
    }

    fn topic_names(&self) -> Result<Vec<String>, ClientError> {
        let metadata = self
            .metadata
            .fetch_metadata(None, self.timeout)
            .map_err(|e| self.broker_error(format!("fetch metadata from {}", self.servers), e))?;
        Ok(metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name().to_string()).collect())
    }

    fn create_topics(&self, topics: &[NewTopic]) -> Result<(), ClientError> {
        if topics.is_empty() {
            return Ok(());
        }
        let specs: Vec<RdNewTopic<'_>> = topics
            .iter()
            .map(|t| {
                let mut spec =
                    RdNewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication_factor.into()));
                for (k, v) in &t.config {
                    spec = spec.set(k, v);
                }
                spec
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
        let results = futures::executor::block_on(self.admin.create_topics(&specs, &options))
            .map_err(|e| self.broker_error(format!("create topics on {}", self.servers), e))?;
        for result in results {
            if let Err((topic, code)) = result
                && code != RDKafkaErrorCode::TopicAlreadyExists
            {
                return Err(ClientError::new(
                    format!("create topic {topic}"),
                    code.to_string(),
                    ClientErrorKind::Fatal,
                ));
            }
        }
        self.wait_until_visible(topics)
    }

    fn delete_records(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let list = offset_list(offsets)?;
        let options = AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
        let result = futures::executor::block_on(self.admin.delete_records(&list, &options))
            .map_err(|e| self.broker_error(format!("delete records on {}", self.servers), e))?;
        for element in result.elements() {
            if let Err(e) = element.error() {
                let what = format!(
                    "delete records of {}-{} below {:?}",
                    element.topic(),
                    element.partition(),
                    element.offset()
                );
                return Err(client_error(what, e));
            }
        }
        Ok(())
    }
}

impl RdKafkaAdmin {
    /// Waits until every topic in `topics` is in the broker's metadata. The controller answers
    /// CreateTopics before every broker's metadata has the new topic, so without this a metadata
    /// request right after `create_topics` can still say the topic does not exist.
    fn wait_until_visible(&self, topics: &[NewTopic]) -> Result<(), ClientError> {
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(10);
        loop {
            let counts = self.partition_counts(&names)?;
            let missing: Vec<&str> =
                counts.iter().filter(|(_, count)| count.is_none()).map(|(name, _)| name.as_str()).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() + backoff >= deadline {
                let message = format!("created, but not in the metadata of {} after {:?}", self.servers, self.timeout);
                return Err(ClientError::new(
                    format!("create topics {}", missing.join(", ")),
                    message,
                    ClientErrorKind::Retriable,
                ));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_send_names_its_partition_but_never_partition_minus_one() {
        assert_eq!(produce_operation("long-views", 3), "produce to long-views-3");
        assert_eq!(produce_operation("long-views", -1), "produce to long-views");
    }

    #[test]
    fn a_client_error_keeps_the_error_code_and_what_it_means() {
        let fenced = client_error("commit transaction", KafkaError::Global(RDKafkaErrorCode::InvalidProducerEpoch));
        assert_eq!((fenced.kind, fenced.code), (ClientErrorKind::Fenced, Some(47)));
        let timed_out = client_error("send", KafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
        assert_eq!((timed_out.kind, timed_out.code), (ClientErrorKind::Retriable, Some(-185)));
        assert!(timed_out.is_retriable());
        let no_code = client_error("create consumer", KafkaError::ClientCreation("bad setting".into()));
        assert_eq!((no_code.kind, no_code.code), (ClientErrorKind::Fatal, None));
    }

    #[test]
    fn records_librdkafka_purged_from_a_failed_transaction_make_it_abort_not_fail_the_thread() {
        let purged = KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue);
        let in_transaction = delivery_failure("produce to min-2".into(), &purged, true);
        assert_eq!(in_transaction.kind, ClientErrorKind::Abortable, "{in_transaction}");
        let in_flight = KafkaError::MessageProduction(RDKafkaErrorCode::PurgeInflight);
        assert_eq!(delivery_failure("produce to min-2".into(), &in_flight, false).kind, ClientErrorKind::Retriable);
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(delivery_failure("produce to min-2".into(), &refused, true).kind, ClientErrorKind::Fatal);
    }

    #[test]
    fn a_fatal_error_is_a_fencing_only_for_a_transactional_producer_whose_epoch_is_stale() {
        use RDKafkaErrorCode as Code;
        for cause in [Code::Fenced, Code::ProducerFenced, Code::InvalidProducerEpoch] {
            assert_eq!(fatal_cause_kind(cause, true), ClientErrorKind::Fenced, "{cause:?}");
            // An idempotent producer without transactions is not replaced by a recovery: it fails.
            assert_eq!(fatal_cause_kind(cause, false), ClientErrorKind::Fatal, "{cause:?}");
        }
        for cause in [Code::OutOfOrderSequenceNumber, Code::UnknownMemberId, Code::IllegalGeneration] {
            assert_eq!(fatal_cause_kind(cause, true), ClientErrorKind::Fatal, "{cause:?}");
        }
    }

    fn config(guarantee: ProcessingGuarantee) -> StreamsConfig {
        let mut config = StreamsConfig::new("totals", "127.0.0.1:9092");
        config.processing_guarantee = guarantee;
        for (k, v) in [("linger.ms", "5"), ("isolation.level", "read_uncommitted"), ("group.id", "mine")] {
            config.client_overrides.insert(k.into(), v.into());
        }
        config.consumer_overrides.insert("fetch.wait.max.ms".into(), "50".into());
        config.producer_overrides.insert("partitioner".into(), "consistent".into());
        config
    }

    #[test]
    fn client_settings_override_the_library_s_values_but_not_the_ones_it_owns() {
        let config = config(ProcessingGuarantee::ExactlyOnceV2);
        let producer = producer_settings(&config, "p", Some("totals-1-0"));
        assert_eq!(producer.get("linger.ms"), Some("5"), "a `client.` setting reaches the producer");
        assert_eq!(producer.get("partitioner"), Some("consistent"), "and a `producer.` one");
        assert_eq!(producer.get("transactional.id"), Some("totals-1-0"));

        let consumer = consumer_settings(&config, "c");
        assert_eq!(consumer.get("isolation.level"), Some("read_committed"), "exactly-once reads committed data only");
        assert_eq!(consumer.get("group.id"), Some("totals"));

        let (restore, end_offsets) = restore_settings(&config, "r");
        assert_eq!(restore.get("fetch.wait.max.ms"), Some("50"), "a `consumer.` setting reaches the restore consumer");
        assert_eq!(restore.get("isolation.level"), Some("read_committed"));
        assert_eq!(restore.get("group.id"), Some("totals-restore-consumer"));
        assert_eq!(end_offsets.get("isolation.level"), Some("read_uncommitted"));
    }

    #[test]
    fn under_at_least_once_the_isolation_level_is_the_user_s_to_choose() {
        let mut config = config(ProcessingGuarantee::AtLeastOnce);
        config.client_overrides.insert("isolation.level".into(), "read_committed".into());
        assert_eq!(consumer_settings(&config, "c").get("isolation.level"), Some("read_committed"));
        assert_eq!(restore_settings(&config, "r").0.get("isolation.level"), Some("read_committed"));
        config.client_overrides.remove("isolation.level");
        assert_eq!(consumer_settings(&config, "c").get("isolation.level"), Some("read_uncommitted"));
        assert_eq!(producer_settings(&config, "p", None).get("transactional.id"), None);
    }

    #[test]
    fn under_at_least_once_records_time_out_within_the_pause_limit() {
        let mut config = config(ProcessingGuarantee::AtLeastOnce);
        config.consumer_overrides.insert("session.timeout.ms".into(), "6000".into());
        config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1500".into());
        let producer = producer_settings(&config, "p", None);
        assert_eq!(producer.get("message.timeout.ms"), Some("2250"), "(6000 - 1500) / 2");
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("topic.metadata.propagation.max.ms"), Some("1125"), "a missing topic fails first");
        config.producer_overrides.insert("delivery.timeout.ms".into(), "120000".into());
        let producer = producer_settings(&config, "p", None);
        assert_eq!(producer.get("message.timeout.ms"), None, "the user's own timeout, under its alias, is kept");
        assert_eq!(producer.get("delivery.timeout.ms"), Some("120000"));

        let exactly_once = producer_settings(&config, "p", Some("totals-1-0"));
        assert_eq!(exactly_once.get("message.timeout.ms"), None, "transactions fence a zombie instead");
    }
}
