//! [`StreamsConfig`]: the application's settings, with Kafka Streams' names and defaults. Built in code,
//! from `key=value` properties or from a `.properties` file; a wrong value or an unknown key is an error
//! that names it (and the file and line).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::error::ConfigError;
use crate::handler::{
    DeserializationExceptionHandler, FailOnProductionError, LogAndFail, ProcessingExceptionHandler,
    ProductionExceptionHandler,
};
pub use crate::metrics::RecordingLevel;
use crate::timestamp::{AnyTimestampExtractor, FailOnInvalidTimestamp};

pub(crate) mod settings;

/// How much the application promises about each input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Every record is processed at least once; after a crash some may be processed again.
    AtLeastOnce,
    /// Outputs, state changes and input offsets commit together or not at all (Kafka transactions).
    ExactlyOnceV2,
}

/// Who assigns the application's partitions to its stream threads (`group.assignor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAssignor {
    /// librdkafka's consumer group with its `range` assignor (`range`, the default for now): every
    /// rebalance moves every task, each with its partitions by range, whatever state is where.
    Range,
    /// The library's own group member with Kafka Streams' task assignor (`streams`): tasks stay where
    /// they are across rebalances, stateful tasks go where their state is, rebalances are cooperative,
    /// static membership keeps a restarted instance's tasks, standby replicas (`num.standby.replicas`)
    /// are kept up to date on other instances. Experimental, and a group cannot mix it with `range`.
    Streams,
}

/// Which store the DSL uses for a state store the user did not choose (`default.dsl.store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DslStoreType {
    /// A RocksDB store under `state.dir` (`rocksDB`, Kafka Streams' default).
    RocksDb,
    /// An in-memory store, restored from its changelog on every start (`in_memory`).
    InMemory,
}

/// Kafka's default `session.timeout.ms` for consumers (since 3.0), which Kafka Streams keeps.
pub(crate) const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;

/// The `key=value` pairs of a Java `.properties` file, each with its line number: `=`, `:` or white
/// space between key and value, `#` and `!` comments, a `\` at the end of a line continuing it.
fn parse_properties(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while logical.ends_with('\\') && !logical.ends_with("\\\\") {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let split = logical.find(['=', ':', ' ', '\t']).unwrap_or(logical.len());
        let key = logical[..split].trim().to_string();
        let rest = logical[split..].trim_start();
        let value = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim().to_string();
        out.push((index + 1, key, value));
    }
    out
}

/// The application's settings (Kafka Streams' `StreamsConfig`). Defaults are Kafka Streams' own.
///
/// Made with [`StreamsConfig::new`], [`StreamsConfig::from_properties`] or
/// [`from_properties_file`](StreamsConfig::from_properties_file), then changed through its fields or
/// [`set`](StreamsConfig::set). It is `#[non_exhaustive]`: a setting added in a later version is not a
/// breaking change, so it cannot be built with a struct literal.
#[derive(Clone)]
#[non_exhaustive]
pub struct StreamsConfig {
    /// `application.id`: the consumer group, and the prefix of internal topics and the state directory.
    pub application_id: String,
    /// `bootstrap.servers`: `host:port` pairs, comma-separated.
    pub bootstrap_servers: String,
    /// `client.id` (default `<application.id>-<process id>`): the prefix of the id of every client of
    /// the instance (`<client.id>-StreamThread-<n>-consumer`, `...-producer`, `...-restore-consumer`,
    /// `<client.id>-admin`) and of its threads' names, as in Kafka Streams: how broker logs, quotas and
    /// request metrics tell one instance's connections from another's.
    pub client_id: Option<String>,
    /// `num.stream.threads` (default 1).
    pub num_stream_threads: usize,
    /// `processing.guarantee` (default at_least_once).
    pub processing_guarantee: ProcessingGuarantee,
    /// `group.assignor` (default range).
    pub group_assignor: GroupAssignor,
    /// `application.server` (default none): this instance's address, `host:port`, where the
    /// application serves interactive queries; the assignment tells every instance every address
    /// with its tasks, so that a query for a key is forwarded to the instance that holds it
    /// (`KafkaStreams::query_metadata_for_key`). Needs `group.assignor=streams`.
    pub application_server: Option<String>,
    /// `num.standby.replicas` (default 0): copies of each stateful task's stores kept up to date on
    /// other instances from its changelogs, so that the task fails over to one of them and restores only
    /// what the copy lags behind. Needs `group.assignor=streams`.
    pub num_standby_replicas: usize,
    /// `acceptable.recovery.lag` (default 10000): how many changelog records an instance's copy of a
    /// task may lag behind and still count as caught up, so that the task may move there at once; a
    /// task whose only caught-up copy is where it runs stays there while a warm-up copy catches up
    /// elsewhere (`group.assignor=streams`).
    pub acceptable_recovery_lag: i64,
    /// `max.warmup.replicas` (default 2): warm-up copies restoring at once for tasks to move to
    /// instances that are not caught up yet (`group.assignor=streams`).
    pub max_warmup_replicas: usize,
    /// `probing.rebalance.interval.ms` (default 10 minutes, at least 1 minute): how often the group
    /// rebalances while warm-ups restore, to move those that caught up (`group.assignor=streams`).
    pub probing_rebalance_interval: Duration,
    /// `commit.interval.ms`. `None` (the default) is Kafka Streams' default for the guarantee in force
    /// when the application starts: 30 s, or 100 ms under exactly_once_v2, so that setting the
    /// guarantee after [`new`](Self::new) moves it too. [`effective_commit_interval`](Self::effective_commit_interval)
    /// says which applies.
    pub commit_interval: Option<Duration>,
    /// `state.dir` (default `<tmp>/kafka-streams`).
    pub state_dir: PathBuf,
    /// `statestore.cache.max.bytes` (default 10 MiB).
    pub cache_max_bytes: u64,
    /// `default.dsl.store`: the store the DSL uses unless told otherwise (default RocksDB).
    pub default_dsl_store: DslStoreType,
    /// `rocksdb.cache.bytes`: the memory all RocksDB stores of this instance share, block cache and
    /// memtables together (default 64 MiB). Not a Kafka Streams setting: there each store has its own
    /// cache unless a `RocksDBConfigSetter` says otherwise.
    pub rocksdb_cache_bytes: usize,
    /// `rocksdb.write.buffer.bytes`: how much of `rocksdb.cache.bytes` memtables may take (default 16 MiB).
    pub rocksdb_write_buffer_bytes: usize,
    /// `statestore.uncommitted.max.bytes` (KIP-892): under exactly-once, stores hold a commit's writes in
    /// memory; past this many bytes the thread commits early (default 64 MiB).
    pub statestore_uncommitted_max_bytes: usize,
    /// `max.poll.records` (default 1000): the most records one poll hands to the tasks.
    pub max_poll_records: usize,
    /// `buffered.records.per.partition` (default 1000): past this many records buffered for one input
    /// partition, the thread stops fetching it until its task has drained it to that many.
    pub buffered_records_per_partition: usize,
    /// `max.task.idle.ms` (default 0; `None` is Kafka's -1): how long a task with records buffered for
    /// some of its input partitions waits for one that has none, once the broker has none either, before
    /// it goes on without it (and may take records out of timestamp order across its partitions). A
    /// partition with records at the broker not fetched yet is always waited for, unless `None`, which
    /// never waits: records are taken across a task's partitions as they were fetched.
    pub max_task_idle: Option<Duration>,
    /// `task.timeout.ms` (default 5 minutes, as in Kafka Streams): how long a thread keeps recovering
    /// from timeouts and failed transactions without one successful commit before it gives up (ERROR).
    pub task_timeout: Duration,
    /// `replication.factor` of internal topics (default -1: the broker's default).
    pub replication_factor: i16,
    /// `default.api.timeout.ms` (default 60 s): how long admin and metadata calls wait for the broker.
    pub default_api_timeout: Duration,
    /// `poll.ms` (default 100 ms): how long a poll waits for records when there are none.
    pub poll_timeout: Duration,
    /// `repartition.purge.interval.ms` (default 30 s): how often a thread deletes the records of its
    /// repartition topics that it has consumed and committed, so they do not grow without bound.
    pub repartition_purge_interval: Duration,
    /// `metrics.recording.level` (default INFO): which metrics are recorded (docs/operations.md lists
    /// each metric with its level).
    pub metrics_recording_level: RecordingLevel,
    /// `metrics.sample.window.ms` (default 30 s): the window of one sample of a metric's `-rate`,
    /// `-avg` and `-max`.
    pub metrics_sample_window: Duration,
    /// `metrics.num.samples` (default 2): how many samples those figures span.
    pub metrics_num_samples: usize,
    /// `metrics.prometheus.listen.address` (default none; not a Kafka Streams setting): where the
    /// process serves its metrics to Prometheus (`GET /metrics`), with the `prometheus` feature.
    /// Without it, metrics go to whatever [`metrics`](https://docs.rs/metrics) recorder the
    /// application installs, if any.
    pub metrics_prometheus_listen_address: Option<std::net::SocketAddr>,
    /// `windowstore.changelog.additional.retention.ms` (default one day): how much longer than its
    /// window store's retention a window store's changelog topic keeps records (`retention.ms` of the
    /// topic is the sum), so that a restore still finds every window the store keeps.
    pub windowstore_changelog_additional_retention: Duration,
    /// `__emit.interval.ms.kstreams.windowed.aggregation__` (default 1 s; Kafka Streams' internal setting,
    /// under its name): how often, at most, an aggregation with
    /// [`EmitStrategy::on_window_close`](crate::dsl::EmitStrategy::on_window_close) looks for windows that
    /// have closed, by the wall clock, when a record arrives. The test driver uses 0: every record looks.
    pub windowed_emit_interval: Duration,
    /// `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__` (default 1 s; Kafka Streams'
    /// internal setting, under its name): how often, at most, a stream-stream left or outer join looks,
    /// by the wall clock, for records whose window closed without a partner. The test driver uses 0.
    pub outer_join_emit_interval: Duration,
    /// `default.deserialization.exception.handler` (default log and fail).
    pub deserialization_handler: Arc<dyn DeserializationExceptionHandler>,
    /// `processing.exception.handler` (default log and fail): what happens when user code in a
    /// processor, a DSL function or a punctuation returns an error or panics (KIP-1033).
    pub processing_handler: Arc<dyn ProcessingExceptionHandler>,
    /// `default.production.exception.handler` (default fail).
    pub production_handler: Arc<dyn ProductionExceptionHandler>,
    /// `default.timestamp.extractor` (default [`FailOnInvalidTimestamp`]): the timestamp of each record
    /// read by a source that has no extractor of its own (`Consumed::with_timestamp_extractor`).
    pub default_timestamp_extractor: Arc<AnyTimestampExtractor>,
    /// librdkafka properties for every client (`client.` prefix).
    pub client_overrides: BTreeMap<String, String>,
    /// librdkafka properties for the consumer (`consumer.` prefix).
    pub consumer_overrides: BTreeMap<String, String>,
    /// librdkafka properties for the producer (`producer.` prefix).
    pub producer_overrides: BTreeMap<String, String>,
    /// librdkafka properties for the admin client (`admin.` prefix).
    pub admin_overrides: BTreeMap<String, String>,
}

/// Every setting of the table by its property name (`consumer.*` for a family), with its value as the
/// property would be written. Secrets are redacted: a config is printed into logs.
impl fmt::Debug for StreamsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("StreamsConfig");
        for setting in &settings::SETTINGS {
            out.field(&setting.label(), &(setting.show)(self));
        }
        out.finish()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(key) => write!(f, "setting `{key}` is required"),
            ConfigError::Invalid { key, value, reason } => write!(f, "setting `{key}` cannot be `{value}`: {reason}"),
            ConfigError::Unknown(key) => write!(
                f,
                "unknown setting `{key}`{}; librdkafka settings take a `consumer.`, `producer.`, `admin.` or \
                 `client.` prefix",
                settings::did_you_mean(key)
            ),
            ConfigError::Read { path, reason } => write!(f, "cannot read {}: {reason}", path.display()),
            ConfigError::InFile { path, line, error } => {
                write!(f, "{}{}: {error}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())
            }
        }
    }
}

impl StreamsConfig {
    /// Settings for `application_id` on `bootstrap_servers`, everything else at its default.
    ///
    /// ```
    /// use streams_core::config::{StreamsConfig, ProcessingGuarantee};
    /// let config = StreamsConfig::new("order-totals", "127.0.0.1:9092");
    /// assert_eq!(config.effective_commit_interval().as_millis(), 30_000);
    /// assert_eq!(config.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
    /// ```
    pub fn new(application_id: impl Into<String>, bootstrap_servers: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            bootstrap_servers: bootstrap_servers.into(),
            client_id: None,
            num_stream_threads: 1,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            group_assignor: GroupAssignor::Range,
            application_server: None,
            num_standby_replicas: 0,
            acceptable_recovery_lag: 10_000,
            max_warmup_replicas: 2,
            probing_rebalance_interval: Duration::from_secs(600),
            commit_interval: None,
            state_dir: std::env::temp_dir().join("kafka-streams"),
            cache_max_bytes: 10 * 1024 * 1024,
            default_dsl_store: DslStoreType::RocksDb,
            rocksdb_cache_bytes: 64 << 20,
            rocksdb_write_buffer_bytes: 16 << 20,
            statestore_uncommitted_max_bytes: 64 << 20,
            max_poll_records: 1000,
            buffered_records_per_partition: 1000,
            max_task_idle: Some(Duration::ZERO),
            task_timeout: Duration::from_secs(300),
            replication_factor: -1,
            default_api_timeout: Duration::from_secs(60),
            poll_timeout: Duration::from_millis(100),
            repartition_purge_interval: Duration::from_millis(30_000),
            metrics_recording_level: RecordingLevel::Info,
            metrics_sample_window: Duration::from_millis(30_000),
            metrics_num_samples: 2,
            metrics_prometheus_listen_address: None,
            windowstore_changelog_additional_retention: Duration::from_millis(86_400_000),
            windowed_emit_interval: Duration::from_millis(1000),
            outer_join_emit_interval: Duration::from_millis(1000),
            deserialization_handler: Arc::new(LogAndFail),
            processing_handler: Arc::new(LogAndFail),
            production_handler: Arc::new(FailOnProductionError),
            default_timestamp_extractor: Arc::new(FailOnInvalidTimestamp),
            client_overrides: BTreeMap::new(),
            consumer_overrides: BTreeMap::new(),
            producer_overrides: BTreeMap::new(),
            admin_overrides: BTreeMap::new(),
        }
    }

    /// Settings from `key=value` properties with Kafka Streams' names. Unknown keys and bad values are
    /// errors that name them. `processing.guarantee=exactly_once_v2` also moves the commit interval's
    /// default to 100 ms, as in Kafka Streams.
    ///
    /// ```
    /// use streams_core::config::StreamsConfig;
    /// let config = StreamsConfig::from_properties([
    ///     ("application.id", "totals"),
    ///     ("bootstrap.servers", "127.0.0.1:9092"),
    ///     ("commit.interval.ms", "1000"),
    ///     ("consumer.fetch.min.bytes", "1"),
    /// ]).unwrap();
    /// assert_eq!(config.effective_commit_interval().as_millis(), 1000);
    /// let err = StreamsConfig::from_properties([("application.id", "a"), ("bootstrap.servers", "b"), ("num.threads", "2")]);
    /// assert_eq!(err.unwrap_err().to_string(), "unknown setting `num.threads` (did you mean `num.stream.threads`?); \
    ///     librdkafka settings take a `consumer.`, `producer.`, `admin.` or `client.` prefix");
    /// ```
    pub fn from_properties<K: AsRef<str>, V: AsRef<str>>(
        properties: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let properties: BTreeMap<String, String> = properties
            .into_iter()
            .map(|(k, v)| (k.as_ref().trim().to_string(), v.as_ref().trim().to_string()))
            .collect();
        let properties: Vec<((), String, String)> = properties.into_iter().map(|(k, v)| ((), k, v)).collect();
        Self::from_located(&properties, |_, error| error)
    }

    /// The settings of `properties`, set in order, each tagged with where it came from; an error goes
    /// through `locate` with the tag of the setting at fault (`None` for a missing required setting).
    fn from_located<T: Copy>(
        properties: &[(T, String, String)],
        locate: impl Fn(Option<T>, ConfigError) -> ConfigError,
    ) -> Result<Self, ConfigError> {
        let value_of = |key: &'static str| {
            properties
                .iter()
                .rev()
                .find(|(_, k, _)| k == key)
                .map(|(_, _, v)| v.clone())
                .ok_or_else(|| locate(None, ConfigError::Missing(key)))
        };
        let mut config = StreamsConfig::new(value_of("application.id")?, value_of("bootstrap.servers")?);
        for (at, key, value) in properties {
            config.set(key, value).map_err(|e| locate(Some(*at), e))?;
        }
        Ok(config)
    }

    /// Settings from a Java `.properties` file, as [`from_properties`](Self::from_properties) takes them:
    /// an error names the file and the line of the setting at fault.
    ///
    /// ```
    /// use streams_core::config::StreamsConfig;
    /// let dir = std::env::temp_dir().join(format!("kstreams-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let file = dir.join("app.properties");
    /// std::fs::write(&file, "# order totals\napplication.id=order-totals\nbootstrap.servers=127.0.0.1:9092\n\
    ///     security.protocol=SASL_SSL\nnum.stream.threds=2\n").unwrap();
    /// let error = StreamsConfig::from_properties_file(&file).unwrap_err().to_string();
    /// assert!(error.ends_with("app.properties line 5: unknown setting `num.stream.threds` (did you mean \
    ///     `num.stream.threads`?); librdkafka settings take a `consumer.`, `producer.`, `admin.` or `client.` prefix"));
    /// ```
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        let in_file = |line: Option<usize>, error: ConfigError| ConfigError::InFile {
            path: path.to_path_buf(),
            line,
            error: Box::new(error),
        };
        Self::from_located(&parse_properties(&text), in_file)
    }

    /// Sets one setting by its property name, as [`from_properties`](Self::from_properties) reads it:
    /// Kafka Streams' names; librdkafka settings under `consumer.`, `producer.`, `admin.` or `client.`
    /// (every client); and, as in Kafka Streams, `security.protocol`, `sasl.*` and `ssl.*` without a
    /// prefix for every client (docs/security.md).
    ///
    /// ```
    /// use streams_core::config::StreamsConfig;
    /// let mut config = StreamsConfig::new("order-totals", "broker:9093");
    /// config.set("security.protocol", "SASL_SSL").unwrap();
    /// config.set("sasl.mechanism", "SCRAM-SHA-512").unwrap();
    /// assert_eq!(config.client_overrides["sasl.mechanism"], "SCRAM-SHA-512");
    /// assert!(config.set("sasl.jaas.config", "...").unwrap_err().to_string().contains("sasl.username"));
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let (key, value) = (key.trim(), value.trim());
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        };
        if let Some((_, instead)) = settings::JAVA_ONLY.iter().find(|(java, _)| *java == key) {
            return Err(invalid(instead));
        }
        let setting = settings::setting(key).ok_or_else(|| ConfigError::Unknown(key.to_string()))?;
        (setting.set)(self, key, value).map_err(invalid)
    }

    /// How often a thread commits: `commit_interval` when set, otherwise Kafka Streams' default for
    /// the guarantee (30 s under at_least_once, 100 ms under exactly_once_v2).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::config::{ProcessingGuarantee, StreamsConfig};
    /// let mut config = StreamsConfig::new("order-totals", "127.0.0.1:9092");
    /// config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
    /// assert_eq!(config.effective_commit_interval(), Duration::from_millis(100));
    /// config.commit_interval = Some(Duration::from_secs(1));
    /// assert_eq!(config.effective_commit_interval(), Duration::from_secs(1));
    /// ```
    pub fn effective_commit_interval(&self) -> Duration {
        self.commit_interval.unwrap_or(match self.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => Duration::from_millis(30_000),
            ProcessingGuarantee::ExactlyOnceV2 => Duration::from_millis(100),
        })
    }

    /// A consumer property as the consumers get it: the `consumer.` override, else the `client.` one.
    pub(crate) fn consumer_setting(&self, name: &str) -> Option<&str> {
        self.consumer_overrides.get(name).or_else(|| self.client_overrides.get(name)).map(String::as_str)
    }

    /// A producer property as the producers get it: the `producer.` override, else the `client.` one.
    pub(crate) fn producer_setting(&self, name: &str) -> Option<&str> {
        self.producer_overrides.get(name).or_else(|| self.client_overrides.get(name)).map(String::as_str)
    }

    /// Under at_least_once, how long a stream thread may go without running before it must assume
    /// that its group gave its partitions to another member, and how long its producer may hold a
    /// record before giving up on it: half of what is left of the consumer's `session.timeout.ms`
    /// (default 45 s) after one `heartbeat.interval.ms` (default 3 s, counted as at most a third of the
    /// session), 21 s by default.
    ///
    /// Nothing on the broker fences a paused at_least_once member: a write it sends after the group
    /// moved its partitions lands after the new owner's, and can roll a store's changelog back. A
    /// member is only evicted a session timeout after its last heartbeat, and heartbeats go out every
    /// heartbeat interval while the process runs; so a record enqueued no later than this limit after
    /// the thread last ran, and sent within this limit of being enqueued, reaches the broker before the
    /// eviction. The stream thread refuses to send after a longer gap (see
    /// `runtime::producer::ThreadProducer`) and the producer's `message.timeout.ms` is this limit.
    /// This makes late writes rare, not impossible: librdkafka may send a request that was in flight
    /// at the pause again when the process resumes (`docs/exactly-once.md`, Limits). For the state, the
    /// owner epochs on changelog records catch what gets through: a restore skips a former owner's late
    /// write (`docs/state.md`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::config::StreamsConfig;
    /// let mut config = StreamsConfig::new("order-totals", "127.0.0.1:9092");
    /// assert_eq!(config.pause_limit(), Duration::from_millis(21_000));
    /// config.consumer_overrides.insert("session.timeout.ms".into(), "6000".into());
    /// config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1500".into());
    /// assert_eq!(config.pause_limit(), Duration::from_millis(2_250));
    /// ```
    pub fn pause_limit(&self) -> Duration {
        let session = self.session_timeout_ms();
        let heartbeat = self.consumer_ms("heartbeat.interval.ms", 3_000).min(session / 3);
        Duration::from_millis((session - heartbeat) / 2)
    }

    /// The consumers' `session.timeout.ms` as they get it: the override, else Kafka's default of 45 s.
    pub(crate) fn session_timeout_ms(&self) -> u64 {
        self.consumer_ms("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS)
    }

    /// The consumers' `metadata.max.age.ms` as they get it (Kafka's default, 5 minutes): also how often
    /// a running application looks for new topics its source patterns match, as Kafka Streams picks
    /// them up at its consumers' metadata refresh.
    pub(crate) fn metadata_max_age(&self) -> Duration {
        Duration::from_millis(self.consumer_ms("metadata.max.age.ms", 300_000))
    }

    /// A consumer setting in milliseconds, or `default` when it is not set or not a number.
    fn consumer_ms(&self, name: &str, default: u64) -> u64 {
        self.consumer_setting(name).and_then(settings::parse_millis).unwrap_or(default)
    }

    /// A consumer setting in milliseconds, or `default` when it is not set; a value that is not a
    /// number is an error (for the library's own group member, which has no librdkafka to refuse it).
    pub(crate) fn consumer_millis(&self, name: &str, default: u64) -> Result<Duration, String> {
        match self.consumer_setting(name) {
            None => Ok(Duration::from_millis(default)),
            Some(v) => settings::parse_millis(v)
                .map(Duration::from_millis)
                .ok_or_else(|| format!("`{v}` is not a number of milliseconds")),
        }
    }

    /// Checks values that a builder could have set wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            reason: reason.into(),
        };
        if self.application_id.is_empty() {
            return Err(ConfigError::Missing("application.id"));
        }
        if let Some(reason) = crate::names::invalid_reason(&self.application_id) {
            let reason = format!("invalid name `{}`: {reason}", self.application_id);
            return Err(invalid("application.id", self.application_id.clone(), &reason));
        }
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::Missing("bootstrap.servers"));
        }
        if self.num_stream_threads == 0 {
            return Err(invalid("num.stream.threads", "0".into(), "a number from 1"));
        }
        if self.max_poll_records == 0 {
            return Err(invalid("max.poll.records", "0".into(), "a number from 1"));
        }
        if self.rocksdb_write_buffer_bytes > self.rocksdb_cache_bytes {
            let reason = format!("at most rocksdb.cache.bytes ({})", self.rocksdb_cache_bytes);
            return Err(invalid("rocksdb.write.buffer.bytes", self.rocksdb_write_buffer_bytes.to_string(), &reason));
        }
        if let Some(server) = &self.application_server {
            if host_and_port(server).is_none() {
                return Err(invalid("application.server", server.clone(), "host:port, such as orders-1.internal:8080"));
            }
            // librdkafka's assignment carries no addresses.
            if self.group_assignor == GroupAssignor::Range {
                let reason = "unset under group.assignor=range: the instances' addresses need group.assignor=streams";
                return Err(invalid("application.server", server.clone(), reason));
            }
        }
        // librdkafka's group moves every task at each rebalance and knows no standbys: asking for them
        // there would be asking for nothing.
        if self.num_standby_replicas > 0 && self.group_assignor == GroupAssignor::Range {
            let reason = "0 under group.assignor=range: standby replicas need group.assignor=streams";
            return Err(invalid("num.standby.replicas", self.num_standby_replicas.to_string(), reason));
        }
        if self.max_warmup_replicas == 0 {
            return Err(invalid("max.warmup.replicas", "0".into(), "a number from 1"));
        }
        if self.acceptable_recovery_lag < 0 {
            let lag = self.acceptable_recovery_lag.to_string();
            return Err(invalid("acceptable.recovery.lag", lag, "a number of records from 0"));
        }
        if self.probing_rebalance_interval < Duration::from_secs(60) {
            let interval = self.probing_rebalance_interval.as_millis().to_string();
            return Err(invalid("probing.rebalance.interval.ms", interval, "milliseconds, at least 60000"));
        }
        Ok(())
    }
}

/// `host:port` (the port a number up to 65535; the host not empty, of letters, digits and `-%._:`
/// as Kafka's `Utils.getHost` allows, an IPv6 host in brackets), as Kafka Streams reads
/// `application.server`.
pub(crate) fn host_and_port(endpoint: &str) -> Option<(&str, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']')?,
        None => host,
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-%._:".contains(c);
    if host.is_empty() || !host.chars().all(allowed) || !port.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standbys_need_the_streams_assignor() {
        let mut c = StreamsConfig::new("app", "localhost:9092");
        c.set("num.standby.replicas", "1").unwrap();
        let error = c.validate().unwrap_err().to_string();
        assert!(error.contains("num.standby.replicas") && error.contains("group.assignor=streams"), "{error}");
        c.set("group.assignor", "streams").unwrap();
        c.validate().unwrap();
        assert!(c.set("probing.rebalance.interval.ms", "59999").is_err(), "Kafka Streams' minimum is a minute");
        assert!(c.set("max.warmup.replicas", "0").is_err());
    }

    #[test]
    fn application_server_is_host_and_port_under_the_streams_assignor() {
        let mut c = StreamsConfig::new("app", "localhost:9092");
        c.set("application.server", "orders-1.internal:8080").unwrap();
        let error = c.validate().unwrap_err().to_string();
        assert!(error.contains("application.server") && error.contains("group.assignor=streams"), "{error}");
        c.set("group.assignor", "streams").unwrap();
        c.validate().unwrap();
        c.set("application.server", "orders-1.internal").unwrap();
        let error = c.validate().unwrap_err().to_string();
        assert!(error.contains("`orders-1.internal`") && error.contains("host:port"), "{error}");
        c.set("application.server", "").unwrap();
        assert_eq!(c.application_server, None);
        c.validate().unwrap();
    }

    #[test]
    fn config_defaults_are_kafka_streams_defaults() {
        let c = StreamsConfig::new("app", "localhost:9092");
        assert_eq!(c.num_stream_threads, 1);
        assert_eq!(c.effective_commit_interval(), Duration::from_secs(30));
        assert_eq!(c.cache_max_bytes, 10 * 1024 * 1024);
        assert_eq!(c.max_poll_records, 1000);
        assert_eq!(c.task_timeout, Duration::from_secs(300));
        assert!(c.state_dir.ends_with("kafka-streams"));
    }

    #[test]
    fn config_exactly_once_moves_the_commit_interval_default() {
        let c = StreamsConfig::from_properties([
            ("application.id", "a"),
            ("bootstrap.servers", "b"),
            ("processing.guarantee", "exactly_once_v2"),
        ])
        .unwrap();
        assert_eq!(c.effective_commit_interval(), Duration::from_millis(100));
        let mut c = StreamsConfig::new("a", "b");
        c.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
        assert_eq!(c.effective_commit_interval(), Duration::from_millis(100), "set in code, after new");
        c.commit_interval = Some(Duration::from_secs(2));
        assert_eq!(c.effective_commit_interval(), Duration::from_secs(2), "an explicit interval wins");
    }

    #[test]
    fn config_errors_name_the_setting() {
        let base = [("application.id", "a"), ("bootstrap.servers", "b")];
        let with = |k: &'static str, v: &'static str| {
            let mut props = base.to_vec();
            props.push((k, v));
            StreamsConfig::from_properties(props).unwrap_err().to_string()
        };
        assert!(with("processing.guarantee", "exactly_once").contains("`processing.guarantee`"));
        assert!(with("commit.interval.ms", "soon").contains("`commit.interval.ms`"));
        assert!(with("num.stream.threads", "0").contains("`num.stream.threads`"));
        assert!(with("task.timeout.ms", "-1").contains("`task.timeout.ms`"));
        assert_eq!(
            StreamsConfig::from_properties([("bootstrap.servers", "b")]).unwrap_err(),
            ConfigError::Missing("application.id")
        );
        assert!(StreamsConfig::new("bad id!", "b").validate().unwrap_err().to_string().contains("application.id"));
    }

    #[test]
    fn an_unknown_setting_names_the_closest_known_one() {
        let unknown = |key: &str| ConfigError::Unknown(key.into()).to_string();
        assert!(unknown("comit.interval.ms").contains("(did you mean `commit.interval.ms`?)"));
        assert!(unknown("num.threads").contains("(did you mean `num.stream.threads`?)"));
        assert!(unknown("processing.guarantees").contains("(did you mean `processing.guarantee`?)"));
        assert!(!unknown("fetch.min.bytes").contains("did you mean"), "{}", unknown("fetch.min.bytes"));
    }

    #[test]
    fn properties_files_are_read_as_java_reads_them() {
        let text = "# comment\n! also a comment\n\n  application.id = totals\nbootstrap.servers:host:9092\n\
                    state.dir /var/lib/kstreams\nclient.sasl.password=a\\\n   b\nempty=\n";
        let parsed = parse_properties(text);
        let pairs: Vec<(usize, &str, &str)> = parsed.iter().map(|(l, k, v)| (*l, k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            vec![
                (4, "application.id", "totals"),
                (5, "bootstrap.servers", "host:9092"),
                (6, "state.dir", "/var/lib/kstreams"),
                (7, "client.sasl.password", "ab"),
                (9, "empty", ""),
            ]
        );
    }

    #[test]
    fn a_properties_file_s_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.properties");
        std::fs::write(&file, "application.id=a\nbootstrap.servers=b\n\ncommit.interval.ms=soon\n").unwrap();
        let error = StreamsConfig::from_properties_file(&file).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{} line 4: setting `commit.interval.ms` cannot be `soon`: milliseconds, a whole number",
                file.display()
            )
        );
        std::fs::write(&file, "bootstrap.servers=b\n").unwrap();
        let error = StreamsConfig::from_properties_file(&file).unwrap_err().to_string();
        assert_eq!(error, format!("{}: setting `application.id` is required", file.display()));
        let missing = dir.path().join("nope.properties");
        assert!(StreamsConfig::from_properties_file(&missing)
            .unwrap_err()
            .to_string()
            .starts_with(&format!("cannot read {}", missing.display())));
        std::fs::write(
            &file,
            "application.id=a\nbootstrap.servers=b\nsecurity.protocol=SASL_SSL\nssl.ca.location=/ca.pem\n",
        )
        .unwrap();
        let config = StreamsConfig::from_properties_file(&file).unwrap();
        assert_eq!(config.client_overrides.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(config.client_overrides.get("ssl.ca.location").map(String::as_str), Some("/ca.pem"));
    }
}
