//! How a topology declares a store: a supplier of byte stores, serdes, and logging and caching choices.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use state_store::{
    CacheBudget, CachingKeyValueStore, ChangeLoggingKeyValueStore, ChangelogWriter, InMemoryKeyValueStore,
    KeyValueStore, RocksDbKeyValueStore, RocksDbMemory, SegmentedKeyValueStore, TransactionalKeyValueStore,
};

use super::typed::{ErasedStore, TypedKeyValueStore};
use crate::config::{ConfigError, DslStoreType};
use crate::serde::Serde;
use crate::task_id::TaskId;
use crate::StreamsError;

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

/// Where the persistent store `store` of the context's task goes; an error without a state directory.
fn persistent_store_dir(ctx: &StoreContext<'_>, store: &str) -> Result<std::path::PathBuf, StreamsError> {
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

/// The DSL's window store: segmented by time so that its retention drops whole segments, on RocksDB (one
/// database per segment, under the store's directory) or in memory, as `default.dsl.store` says.
#[derive(Debug, Clone)]
pub(crate) struct DefaultWindowBytesStoreSupplier {
    pub(crate) name: String,
    pub(crate) retention_ms: i64,
}

impl KeyValueBytesStoreSupplier for DefaultWindowBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        Ok(match ctx.dsl_store {
            DslStoreType::RocksDb => {
                let dir = persistent_store_dir(ctx, &self.name)?;
                Box::new(SegmentedKeyValueStore::rocksdb_window_store(
                    self.name.clone(),
                    dir,
                    ctx.rocksdb,
                    self.retention_ms,
                )?)
            }
            DslStoreType::InMemory => {
                Box::new(SegmentedKeyValueStore::in_memory_window_store(self.name.clone(), self.retention_ms))
            }
        })
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
    pub fn key_value_store_builder<K: 'static, V: 'static>(
        supplier: impl KeyValueBytesStoreSupplier,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            supplier: Arc::new(supplier),
            key_serde,
            value_serde,
            logging_enabled: true,
            logging_config: BTreeMap::new(),
            caching_enabled: false,
        }
    }
}

/// Declares a typed store for a topology: which byte store, which serdes, whether writes are logged to
/// the changelog topic `<application.id>-<name>-changelog`, and whether a record cache sits in front.
pub struct StoreBuilder<K, V> {
    supplier: Arc<dyn KeyValueBytesStoreSupplier>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging_enabled: bool,
    logging_config: BTreeMap<String, String>,
    caching_enabled: bool,
}

impl<K: Send + 'static, V: Send + 'static> StoreBuilder<K, V> {
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
        let StoreBuilder { supplier, key_serde, value_serde, logging_enabled, logging_config, caching_enabled } = self;
        let name = supplier.name().to_string();
        let factory = move |ctx: &StoreContext<'_>,
                            changelog: Option<Box<dyn ChangelogWriter>>|
              -> Result<Box<dyn ErasedStore>, StreamsError> {
            let mut inner = supplier.get(ctx)?;
            if ctx.hold_writes_per_commit {
                inner = Box::new(TransactionalKeyValueStore::new(inner));
            }
            if let Some(writer) = changelog {
                inner = Box::new(ChangeLoggingKeyValueStore::new(inner, writer));
            }
            // Above the logging layer, as in Kafka Streams: the changelog gets the deduplicated writes.
            if caching_enabled && ctx.cache.enabled() {
                inner = Box::new(CachingKeyValueStore::new(inner, ctx.cache.clone()));
            }
            Ok(Box::new(TypedKeyValueStore::new(inner, key_serde.clone(), value_serde.clone())))
        };
        StoreDef { name, logging_enabled, logging_config, window_retention_ms: None, factory: Arc::new(factory) }
    }
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
    pub(crate) factory: Arc<StoreFactory>,
}
