//! How a topology declares a store: a supplier of byte stores, serdes, and logging and caching choices.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use state_store::{
    CacheBudget, CachingKeyValueStore, ChangeLoggingKeyValueStore, ChangelogWriter, InMemoryKeyValueStore,
    KeyValueStore, RocksDbKeyValueStore, RocksDbMemory, TransactionalKeyValueStore,
};

use super::metered::{MeteredKeyValueStore, StoreMeters};
use super::session::{SessionBytesStoreSupplier, SessionStore};
use super::suppression::{SuppressionBuffer, CHANGELOG_VERSION_HEADER};
use super::typed::{ErasedStore, TypedKeyValueStore};
use super::versioned::VersionedKeyValueStore;
use super::window::{open_window_bytes, WindowBytesStoreSupplier, WindowStore};
use crate::config::{ConfigError, DslStoreType};
use crate::serde::Serde;
use crate::task_id::TaskId;
use crate::window::{millis, Windowed};
use crate::{StreamsError, TopologyError};

/// What a supplier knows when it opens a store for a task.
#[derive(Debug, Clone, Copy)]
pub struct StoreContext<'a> {
    /// The application id.
    pub application_id: &'a str,
    /// The task the store belongs to.
    pub task_id: TaskId,
    /// The task's directory (`<state.dir>/<application.id>/<task>`) for persistent stores; `None` when the
    /// application keeps no local state on disk.
    pub task_dir: Option<&'a Path>,
    /// The memory budget every RocksDB store of the instance shares.
    pub rocksdb: &'a RocksDbMemory,
    /// The store the DSL uses when the user chose none (`default.dsl.store`).
    pub(crate) dsl_store: DslStoreType,
    /// Whether stores hold each commit's writes apart until the commit succeeds (exactly-once).
    pub(crate) hold_writes_per_commit: bool,
    /// The record cache memory of the task's stream thread, for stores built with caching.
    pub(crate) cache: &'a Arc<CacheBudget>,
    /// Where the task keeps its stores' operation times, when they are metered
    /// (`metrics.recording.level` DEBUG or above).
    pub(crate) meters: Option<&'a StoreMeters>,
}

impl StoreContext<'_> {
    /// Where a persistent store called `store` keeps its files: `<task dir>/rocksdb/<store>`, as in Kafka
    /// Streams; `None` without a task directory.
    pub fn store_dir(&self, store: &str) -> Option<std::path::PathBuf> {
        self.task_dir.map(|dir| store_dir(dir, store))
    }
}

/// `<task dir>/rocksdb/<store>`: the one place that knows where a persistent store's files go.
pub(crate) fn store_dir(task_dir: &Path, store: &str) -> std::path::PathBuf {
    task_dir.join("rocksdb").join(store)
}

/// Opens byte stores of one kind (in memory, RocksDB) for each task (Kafka Streams'
/// `KeyValueBytesStoreSupplier`).
pub trait KeyValueBytesStoreSupplier: Send + Sync + 'static {
    /// The store's name.
    fn name(&self) -> &str;

    /// Opens the store for one task.
    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError>;
}

/// Supplies [`InMemoryKeyValueStore`]s.
#[derive(Debug, Clone)]
pub struct InMemoryKeyValueBytesStoreSupplier {
    name: String,
}

impl KeyValueBytesStoreSupplier for InMemoryKeyValueBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, _ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        Ok(Box::new(InMemoryKeyValueStore::new(self.name.clone())))
    }
}

/// Supplies [`RocksDbKeyValueStore`]s under the task's directory, sharing the instance's memory budget.
#[derive(Debug, Clone)]
pub struct RocksDbKeyValueBytesStoreSupplier {
    name: String,
}

impl KeyValueBytesStoreSupplier for RocksDbKeyValueBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        let path = persistent_store_dir(ctx, &self.name)?;
        Ok(Box::new(RocksDbKeyValueStore::open(self.name.clone(), path, ctx.rocksdb)?))
    }
}

/// A supplier of versioned key-value stores on RocksDB (Kafka Streams'
/// `RocksDbVersionedKeyValueBytesStoreSupplier`): made by
/// [`Stores::persistent_versioned_key_value_store`], turned into a store by
/// [`Stores::versioned_key_value_store_builder`].
#[derive(Debug, Clone)]
pub struct VersionedBytesStoreSupplier {
    bytes: RocksDbKeyValueBytesStoreSupplier,
    pub(crate) history_retention_ms: i64,
}

impl VersionedBytesStoreSupplier {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.bytes.name
    }

    /// How long older versions are kept.
    pub fn history_retention(&self) -> Duration {
        Duration::from_millis(self.history_retention_ms.max(0) as u64)
    }
}

/// Where the persistent store `store` of the context's task goes; an error without a state directory.
pub(super) fn persistent_store_dir(ctx: &StoreContext<'_>, store: &str) -> Result<std::path::PathBuf, StreamsError> {
    ctx.store_dir(store).ok_or_else(|| {
        ConfigError::Invalid {
            key: "state.dir".into(),
            value: "(none)".into(),
            reason: format!("the persistent store `{store}` of task {} needs a state directory", ctx.task_id),
        }
        .into()
    })
}

/// The DSL's store when the user chose none: RocksDB or in memory, as `default.dsl.store` says.
#[derive(Debug, Clone)]
pub(crate) struct DefaultKeyValueBytesStoreSupplier {
    pub(crate) name: String,
}

impl KeyValueBytesStoreSupplier for DefaultKeyValueBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        match ctx.dsl_store {
            DslStoreType::RocksDb => RocksDbKeyValueBytesStoreSupplier { name: self.name.clone() }.get(ctx),
            DslStoreType::InMemory => Ok(Box::new(InMemoryKeyValueStore::new(self.name.clone()))),
        }
    }
}

/// The DSL's window and session stores: segmented by time so that the retention drops whole segments,
/// on RocksDB (one database per segment, under the store's directory) or in memory, as
/// `default.dsl.store` says.
#[derive(Debug, Clone)]
pub(crate) struct DefaultWindowBytesStoreSupplier {
    pub(crate) name: String,
    pub(crate) retention_ms: i64,
    /// Keys laid out as a session store's (key, end, start) rather than a window store's.
    pub(crate) sessions: bool,
}

impl KeyValueBytesStoreSupplier for DefaultWindowBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        let persistent = matches!(ctx.dsl_store, DslStoreType::RocksDb);
        open_window_bytes(ctx, &self.name, self.retention_ms, persistent, self.sessions)
    }
}

/// Factory functions for stores, as Kafka Streams' `Stores`.
///
/// ```
/// use std::sync::Arc;
/// use streams_core::serde::{StringSerde, I64Serde};
/// use streams_core::store::Stores;
///
/// let counts = Stores::key_value_store_builder(
///     Stores::in_memory_key_value_store("counts"),
///     Arc::new(StringSerde),
///     Arc::new(I64Serde),
/// );
/// assert_eq!(counts.name(), "counts");
/// ```
pub struct Stores;

impl Stores {
    /// A supplier of in-memory stores called `name`.
    pub fn in_memory_key_value_store(name: impl Into<String>) -> InMemoryKeyValueBytesStoreSupplier {
        InMemoryKeyValueBytesStoreSupplier { name: name.into() }
    }

    /// A supplier of RocksDB stores called `name` (Kafka Streams' `persistentKeyValueStore`).
    pub fn persistent_key_value_store(name: impl Into<String>) -> RocksDbKeyValueBytesStoreSupplier {
        RocksDbKeyValueBytesStoreSupplier { name: name.into() }
    }

    /// A builder of typed stores over `supplier`'s byte stores. Logging is on by default, as in Kafka
    /// Streams; caching is off.
    pub fn key_value_store_builder<K: Send + 'static, V: Send + 'static>(
        supplier: impl KeyValueBytesStoreSupplier,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StoreBuilder<K, V> {
        let typed = move |bytes: Box<dyn KeyValueStore>| -> Box<dyn ErasedStore> {
            Box::new(TypedKeyValueStore::new(bytes, key_serde.clone(), value_serde.clone()))
        };
        StoreBuilder::new(Arc::new(supplier), Arc::new(typed), None)
    }

    /// A supplier of versioned key-value stores on RocksDB called `name` (Kafka Streams'
    /// `persistentVersionedKeyValueStore`, KIP-889): each key's values are kept with the time each became
    /// valid, and older versions for `history_retention` past the newest timestamp written, so that a
    /// reader can ask for the value at a given time. The same duration is the grace period for writes:
    /// older ones are refused.
    pub fn persistent_versioned_key_value_store(
        name: impl Into<String>,
        history_retention: Duration,
    ) -> VersionedBytesStoreSupplier {
        VersionedBytesStoreSupplier {
            bytes: RocksDbKeyValueBytesStoreSupplier { name: name.into() },
            history_retention_ms: millis(history_retention),
        }
    }

    /// A builder of versioned stores of `K` keys and `V` values over `supplier` (Kafka Streams'
    /// `versionedKeyValueStoreBuilder`); processors reach them with
    /// [`ProcessingContext::versioned_store`](crate::processor::ProcessingContext::versioned_store). Logged
    /// to a compacted changelog whose `min.compaction.lag.ms` is the history retention plus a day (unless
    /// the logging config sets it), as in Kafka Streams; never cached (`with_caching_enabled` is ignored,
    /// where Kafka Streams throws).
    pub fn versioned_key_value_store_builder<K: Send + 'static, V: Send + 'static>(
        supplier: VersionedBytesStoreSupplier,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StoreBuilder<K, V> {
        let history = supplier.history_retention_ms;
        let typed = move |bytes: Box<dyn KeyValueStore>| -> Box<dyn ErasedStore> {
            Box::new(VersionedKeyValueStore::new(bytes, key_serde.clone(), value_serde.clone(), history))
        };
        let mut builder = StoreBuilder::new(Arc::new(supplier.bytes), Arc::new(typed), None);
        builder.versioned_history_ms = Some(history);
        builder
    }

    /// A supplier of window stores on RocksDB called `name` (Kafka Streams' `persistentWindowStore`):
    /// windows are kept for `retention` past the latest window start, in time segments of
    /// `max(retention / 2, 60 s)`, one database each. With `retain_duplicates`, every put is kept, even
    /// for a key and window that already have a value (what stream-stream joins need). An error if the
    /// window size is larger than the retention, as in Kafka Streams.
    pub fn persistent_window_store(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
    ) -> Result<WindowBytesStoreSupplier, TopologyError> {
        WindowBytesStoreSupplier::new(name.into(), retention, window_size, retain_duplicates, true)
    }

    /// [`persistent_window_store`](Self::persistent_window_store) in memory.
    pub fn in_memory_window_store(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
    ) -> Result<WindowBytesStoreSupplier, TopologyError> {
        WindowBytesStoreSupplier::new(name.into(), retention, window_size, retain_duplicates, false)
    }

    /// A RocksDB-backed session store kept for `retention` past the latest session end, one RocksDB
    /// database per time segment (Kafka Streams' `persistentSessionStore`).
    pub fn persistent_session_store(
        name: impl Into<String>,
        retention: Duration,
    ) -> Result<SessionBytesStoreSupplier, TopologyError> {
        SessionBytesStoreSupplier::new(name.into(), retention, true)
    }

    /// An in-memory session store kept for `retention` past the latest session end (Kafka Streams'
    /// `inMemorySessionStore`).
    pub fn in_memory_session_store(
        name: impl Into<String>,
        retention: Duration,
    ) -> Result<SessionBytesStoreSupplier, TopologyError> {
        SessionBytesStoreSupplier::new(name.into(), retention, false)
    }

    /// A session store of `K` keys and `V` aggregates over `supplier`'s byte stores (Kafka Streams'
    /// `sessionStoreBuilder`); processors reach it with
    /// [`ProcessingContext::session_store`](crate::processor::ProcessingContext::session_store). Logged
    /// like a window store: a `compact,delete` changelog kept for the retention plus
    /// `windowstore.changelog.additional.retention.ms`.
    pub fn session_store_builder<K: Send + 'static, V: Send + 'static>(
        supplier: SessionBytesStoreSupplier,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StoreBuilder<Windowed<K>, V> {
        let retention = supplier.retention_ms;
        let typed = move |bytes: Box<dyn KeyValueStore>| -> Box<dyn ErasedStore> {
            Box::new(SessionStore::new(bytes, key_serde.clone(), value_serde.clone()))
        };
        StoreBuilder::new(Arc::new(supplier), Arc::new(typed), Some(retention))
    }

    /// A builder of window stores over `supplier`: values of `V` per key `K` and window, read and written
    /// through [`WindowStore`] (`ProcessorContext::window_store`). The builder's types say what the
    /// store maps: windowed keys to values. Logging is on by default: the changelog topic is
    /// `compact,delete`, kept for the retention plus `windowstore.changelog.additional.retention.ms`.
    pub fn window_store_builder<K: Send + 'static, V: Send + 'static>(
        supplier: WindowBytesStoreSupplier,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StoreBuilder<Windowed<K>, V> {
        let (size, duplicates, retention) =
            (supplier.window_size_ms, supplier.retain_duplicates, supplier.retention_ms);
        let typed = move |bytes: Box<dyn KeyValueStore>| -> Box<dyn ErasedStore> {
            Box::new(WindowStore::new(bytes, key_serde.clone(), value_serde.clone(), size, duplicates))
        };
        StoreBuilder::new(Arc::new(supplier), Arc::new(typed), Some(retention))
    }
}

/// Declares a typed store for a topology: which byte store, which serdes, whether writes are logged to
/// the changelog topic `<application.id>-<name>-changelog`, and whether a record cache sits in front.
pub struct StoreBuilder<K, V> {
    supplier: Arc<dyn KeyValueBytesStoreSupplier>,
    /// Puts the typed layer (key-value or window) over the byte stack.
    typed: Arc<TypedLayer>,
    /// A window store's retention, for its changelog's configuration.
    window_retention_ms: Option<i64>,
    logging_enabled: bool,
    logging_config: BTreeMap<String, String>,
    caching_enabled: bool,
    /// Under at_least_once, deletes reach the changelog only at the commit (see
    /// [`suppression_buffer_def`]).
    log_deletes_at_commit: bool,
    /// A versioned store's history retention: never cached, and its changelog's
    /// `min.compaction.lag.ms` follows it.
    versioned_history_ms: Option<i64>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// Makes the typed store over a task's byte stack.
type TypedLayer = dyn Fn(Box<dyn KeyValueStore>) -> Box<dyn ErasedStore> + Send + Sync;

impl<K: Send + 'static, V: Send + 'static> StoreBuilder<K, V> {
    fn new(
        supplier: Arc<dyn KeyValueBytesStoreSupplier>,
        typed: Arc<TypedLayer>,
        window_retention_ms: Option<i64>,
    ) -> Self {
        StoreBuilder {
            supplier,
            typed,
            window_retention_ms,
            logging_enabled: true,
            logging_config: BTreeMap::new(),
            caching_enabled: false,
            log_deletes_at_commit: false,
            versioned_history_ms: None,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.supplier.name()
    }

    /// Turns changelog logging off: the store then starts empty on every new instance.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging_enabled = false;
        self
    }

    /// Turns changelog logging on, with extra topic configs for the changelog topic.
    pub fn with_logging_enabled(mut self, config: BTreeMap<String, String>) -> Self {
        self.logging_enabled = true;
        self.logging_config = config;
        self
    }

    /// Puts the record cache in front of the store (Kafka Streams' caching store): writes of a key
    /// between commits reach the store and its changelog once, at the commit or when the thread's share
    /// of `statestore.cache.max.bytes` runs over (`state_store::CachingKeyValueStore`). Reads see the
    /// cached writes. Nothing is forwarded downstream when entries leave the cache (DSL aggregations
    /// have their own cache, which does). With a cache size of 0 the store writes through.
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching_enabled = true;
        self
    }

    /// Takes the record cache away.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching_enabled = false;
        self
    }

    pub(crate) fn into_def(self) -> StoreDef {
        let StoreBuilder {
            supplier,
            typed,
            window_retention_ms,
            logging_enabled,
            mut logging_config,
            mut caching_enabled,
            log_deletes_at_commit,
            versioned_history_ms,
            _types,
        } = self;
        if let Some(history) = versioned_history_ms {
            // Kafka Streams' `VersionedChangelogTopicConfig`: history kept for a day past the retention.
            logging_config
                .entry("min.compaction.lag.ms".to_string())
                .or_insert_with(|| history.saturating_add(86_400_000).to_string());
            caching_enabled = false;
        }
        let name = supplier.name().to_string();
        let metered_name = name.clone();
        let factory = move |ctx: &StoreContext<'_>,
                            changelog: Option<Box<dyn ChangelogWriter>>|
              -> Result<Box<dyn ErasedStore>, StreamsError> {
            let mut inner = supplier.get(ctx)?;
            if ctx.hold_writes_per_commit {
                inner = Box::new(TransactionalKeyValueStore::new(inner));
            }
            if let Some(writer) = changelog {
                inner = Box::new(ChangeLoggingKeyValueStore::new(inner, writer));
                if log_deletes_at_commit && !ctx.hold_writes_per_commit {
                    inner = Box::new(TransactionalKeyValueStore::holding_deletes(inner));
                }
            }
            // Above the logging layer, as in Kafka Streams: the changelog gets the deduplicated writes.
            if caching_enabled && ctx.cache.enabled() {
                inner = Box::new(CachingKeyValueStore::new(inner, ctx.cache.clone()));
            }
            // Outermost, as Kafka Streams' metered store: the operations the processor asks for.
            if let Some(meters) = ctx.meters {
                inner = Box::new(MeteredKeyValueStore::new(inner, meters.register(&metered_name)));
            }
            Ok(typed(inner))
        };
        StoreDef {
            name,
            logging_enabled,
            logging_config,
            window_retention_ms,
            changelog_value_header: None,
            factory: Arc::new(factory),
        }
    }
}

/// The window store of one side of a stream-stream join (Kafka Streams' `StreamJoinedStoreFactory`):
/// the DSL's default kind, every record kept (duplicates retained), windows of `window_size_ms` kept
/// for `retention_ms`, logged unless `logging` is `None`, to a changelog that is only `delete` (a store
/// of duplicates cannot be compacted).
pub(crate) fn join_window_store_def<K: Send + 'static, V: Send + 'static>(
    name: &str,
    window_size_ms: i64,
    retention_ms: i64,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging: &Option<BTreeMap<String, String>>,
) -> StoreDef {
    let typed = move |bytes: Box<dyn KeyValueStore>| -> Box<dyn ErasedStore> {
        Box::new(WindowStore::new(bytes, key_serde.clone(), value_serde.clone(), window_size_ms, true))
    };
    let supplier = DefaultWindowBytesStoreSupplier { name: name.to_string(), retention_ms, sessions: false };
    let builder = StoreBuilder::<Windowed<K>, V>::new(Arc::new(supplier), Arc::new(typed), Some(retention_ms));
    let logging = logging.clone().map(|mut config| {
        config.insert("cleanup.policy".to_string(), "delete".to_string());
        config
    });
    logged(builder, logging).into_def()
}

/// A key-value store of the DSL's default kind, logged unless `logging` is `None` (a foreign-key
/// join's subscription store).
pub(crate) fn dsl_key_value_store_def<K: Send + 'static, V: Send + 'static>(
    name: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging: Option<BTreeMap<String, String>>,
) -> StoreDef {
    dsl_key_value_builder(name, key_serde, value_serde, logging).into_def()
}

/// A stream-stream left or outer join's store of records still waiting for a partner: a
/// [`dsl_key_value_store_def`] whose deletes reach the changelog at the commit under at_least_once, as
/// a suppression buffer's do (see [`suppression_buffer_def`]): a record leaves the store when its result,
/// joined or not, is emitted, and must not leave it for good while that result may still be lost.
/// `persistent` chooses RocksDB or memory (the kind of a side's supplied store); `None`: the DSL's
/// default kind.
pub(crate) fn outer_join_store_def<K: Send + 'static, V: Send + 'static>(
    name: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging: Option<BTreeMap<String, String>>,
    persistent: Option<bool>,
) -> StoreDef {
    let mut builder = match persistent {
        None => dsl_key_value_builder(name, key_serde, value_serde, logging),
        Some(true) => logged(
            Stores::key_value_store_builder(Stores::persistent_key_value_store(name), key_serde, value_serde),
            logging,
        ),
        Some(false) => logged(
            Stores::key_value_store_builder(Stores::in_memory_key_value_store(name), key_serde, value_serde),
            logging,
        ),
    };
    builder.log_deletes_at_commit = true;
    builder.into_def()
}

/// `builder` logged with `logging` as its changelog's topic configs, or not logged for `None` (the DSL's
/// way of passing a store's logging choice).
pub(crate) fn logged<K: Send + 'static, V: Send + 'static>(
    builder: StoreBuilder<K, V>,
    logging: Option<BTreeMap<String, String>>,
) -> StoreBuilder<K, V> {
    match logging {
        Some(config) => builder.with_logging_enabled(config),
        None => builder.with_logging_disabled(),
    }
}

fn dsl_key_value_builder<K: Send + 'static, V: Send + 'static>(
    name: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging: Option<BTreeMap<String, String>>,
) -> StoreBuilder<K, V> {
    let builder = Stores::key_value_store_builder(
        DefaultKeyValueBytesStoreSupplier { name: name.to_string() },
        key_serde,
        value_serde,
    );
    logged(builder, logging)
}

/// The suppression buffer `name` of a `suppress` (Kafka Streams' `InMemoryTimeOrderedKeyValueChangeBuffer`):
/// in memory, never cached, logged to a compacted changelog with `logging` as its topic config unless
/// `logging` is `None`, and each logged value marked with the layout's version as Kafka Streams marks it.
///
/// Under at_least_once the deletes of emitted changes reach the buffer's changelog at the commit, after
/// the producer has acknowledged what the buffer emitted, and are acknowledged in turn before the
/// offsets are committed. Logged at once, such a delete could reach the changelog while the emitted
/// record itself was lost (a send that timed out): restored without the change, with the input that
/// made it committed, the buffer would never emit that final result again. Puts are logged at once: the
/// buffer restores to where the aggregation above it restores. (Under exactly_once_v2 both are in one
/// transaction.)
pub(crate) fn suppression_buffer_def<K: Send + 'static, V: Send + 'static>(
    name: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging: Option<BTreeMap<String, String>>,
) -> StoreDef {
    let typed = move |bytes: Box<dyn KeyValueStore>| -> Box<dyn ErasedStore> {
        Box::new(SuppressionBuffer::new(bytes, key_serde.clone(), value_serde.clone()))
    };
    let mut builder = StoreBuilder::<K, V>::new(
        Arc::new(InMemoryKeyValueBytesStoreSupplier { name: name.to_string() }),
        Arc::new(typed),
        None,
    );
    builder = match logging {
        Some(config) => builder.with_logging_enabled(config),
        None => builder.with_logging_disabled(),
    };
    builder.log_deletes_at_commit = true;
    let mut def = builder.into_def();
    def.changelog_value_header = Some(CHANGELOG_VERSION_HEADER);
    def
}

/// Opens the store for a task; with a writer, every write is also logged to it.
type StoreFactory = dyn Fn(&StoreContext<'_>, Option<Box<dyn ChangelogWriter>>) -> Result<Box<dyn ErasedStore>, StreamsError>
    + Send
    + Sync;

/// A store as the untyped topology holds it.
#[derive(Clone)]
pub(crate) struct StoreDef {
    pub(crate) name: String,
    pub(crate) logging_enabled: bool,
    pub(crate) logging_config: BTreeMap<String, String>,
    /// A window store's retention: its changelog is then `compact,delete`, kept for the retention plus
    /// `windowstore.changelog.additional.retention.ms` (Kafka Streams' `WindowedChangelogTopicConfig`).
    pub(crate) window_retention_ms: Option<i64>,
    /// A header every value logged to the changelog carries (the suppression buffer's layout version).
    pub(crate) changelog_value_header: Option<(&'static str, &'static [u8])>,
    pub(crate) factory: Arc<StoreFactory>,
}
