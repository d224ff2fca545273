//! Interactive queries on this instance's stores (Kafka Streams' `KafkaStreams#store`): a read-only,
//! typed view over every local task's store of one name, or over a global store.
//!
//! A read takes each task's thread lock in turn (between two of the thread's steps) and copies that
//! task's part whole while holding it (decoding it after), so each partition's part is one consistent
//! picture; different partitions may be read a step apart. While the instance rebalances, or a task
//! of the store restores, a read fails with a retriable error unless stale stores are enabled. What a
//! reader sees of a store:
//! - exactly_once_v2: the state as of the task's last commit, never a write whose transaction could
//!   still abort (the stores hold writes apart until the commit; reads go below them);
//! - at_least_once: the state as processed so far, including writes since the last commit (which a
//!   crash makes the task redo, to the same values where processing is deterministic); values a DSL
//!   aggregation holds in its record cache show once the cache writes them (at the commit, or when it
//!   evicts them), as in Kafka Streams.

use std::marker::PhantomData;
use std::sync::Arc;

use state_store::{KeyValueIterator, ReadOnlyKeyValueStore};

use super::Shared;
use crate::error::StoreUnavailable;
use crate::processor::state::GlobalStores;
use crate::record::RecordPart;
use crate::serde::Serde;
use crate::store::{decode_stored, ErasedStore, TypedKeyValueStore, ValueAndTimestamp};
use crate::{StreamsError, TaskId};

/// What to query: a store's name, the view's types, and where to read (Kafka Streams'
/// `StoreQueryParameters`).
///
/// ```
/// use streams_core::runtime::{QueryableStoreTypes, StoreQueryParameters};
///
/// let params = StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<String, f64>())
///     .with_partition(3);
/// assert_eq!(params.store_name(), "totals");
/// assert_eq!(params.partition(), Some(3));
/// ```
#[derive(Debug, Clone)]
pub struct StoreQueryParameters<T> {
    store_name: String,
    store_type: T,
    partition: Option<i32>,
    stale_stores: bool,
}

impl<T: QueryableStoreType> StoreQueryParameters<T> {
    /// The store called `store_name`, read as `store_type` says; every local partition, active tasks
    /// only.
    pub fn from_name_and_type(store_name: impl Into<String>, store_type: T) -> Self {
        StoreQueryParameters { store_name: store_name.into(), store_type, partition: None, stale_stores: false }
    }

    /// Only the task of this partition (an error when this instance does not hold it).
    pub fn with_partition(self, partition: i32) -> Self {
        StoreQueryParameters { partition: Some(partition), ..self }
    }

    /// Also reads stores still restoring from their changelogs, as far as restored, and the tasks open
    /// while the instance rebalances (Kafka Streams also reads standbys then; this library has none
    /// yet).
    pub fn enable_stale_stores(self) -> Self {
        StoreQueryParameters { stale_stores: true, ..self }
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    /// The partition asked for, if any.
    pub fn partition(&self) -> Option<i32> {
        self.partition
    }

    /// Whether stores still restoring are read.
    pub fn stale_stores_enabled(&self) -> bool {
        self.stale_stores
    }

    pub(crate) fn into_parts(self) -> (String, Option<i32>, bool) {
        let _ = self.store_type;
        (self.store_name, self.partition, self.stale_stores)
    }
}

pub(super) mod sealed {
    /// Only this crate's store types can be queried: the views read the engine's stores.
    pub trait Sealed {}
}

/// The kind of view [`KafkaStreams::store`](super::KafkaStreams::store) gives (Kafka Streams'
/// `QueryableStoreType`); made by [`QueryableStoreTypes`].
pub trait QueryableStoreType: sealed::Sealed {
    /// The view.
    type Store;

    /// Makes the view over `source`.
    fn create(source: StoreSource) -> Self::Store;
}

/// The store types an interactive query can ask for (Kafka Streams' `QueryableStoreTypes`).
pub struct QueryableStoreTypes;

impl QueryableStoreTypes {
    /// A key-value store of `K` to `V`: a store of `(K, V)`, or a timestamped one (a DSL aggregation's
    /// or table's) read without its timestamps, as Kafka Streams' `keyValueStore()` reads both.
    pub fn key_value<K: 'static, V: 'static>() -> KeyValueStoreType<K, V> {
        KeyValueStoreType(PhantomData)
    }

    /// A timestamped key-value store of `K` to `V` (a DSL aggregation's or table's), with each value's
    /// timestamp (Kafka Streams' `timestampedKeyValueStore()`).
    pub fn timestamped_key_value<K: 'static, V: 'static>() -> KeyValueStoreType<K, ValueAndTimestamp<V>> {
        KeyValueStoreType(PhantomData)
    }
}

/// A key-value store of `K` to `V`, to query (see [`QueryableStoreTypes::key_value`]).
pub struct KeyValueStoreType<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> std::fmt::Debug for KeyValueStoreType<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyValueStoreType<{}, {}>", std::any::type_name::<K>(), std::any::type_name::<V>())
    }
}

impl<K, V> Clone for KeyValueStoreType<K, V> {
    fn clone(&self) -> Self {
        KeyValueStoreType(PhantomData)
    }
}

impl<K, V> sealed::Sealed for KeyValueStoreType<K, V> {}

impl<K: 'static, V: 'static> QueryableStoreType for KeyValueStoreType<K, V> {
    type Store = LocalKeyValueStore<K, V>;

    fn create(source: StoreSource) -> Self::Store {
        LocalKeyValueStore { source, _types: PhantomData }
    }
}

/// Where a queried store is read from: this instance's tasks of one sub-topology, or a global store.
/// Opaque; made by [`KafkaStreams::store`](super::KafkaStreams::store).
pub struct StoreSource {
    pub(super) name: Arc<str>,
    shared: Arc<Shared>,
    place: Place,
    partition: Option<i32>,
    stale_stores: bool,
}

/// Which tasks hold the store.
pub(crate) enum Place {
    /// The tasks of this sub-topology.
    Tasks(u32),
    /// The global task that holds it.
    Global(Arc<dyn GlobalStores>),
}

impl StoreSource {
    pub(crate) fn new(name: String, shared: Arc<Shared>, place: Place, partition: Option<i32>, stale: bool) -> Self {
        StoreSource { name: name.into(), shared, place, partition, stale_stores: stale }
    }

    pub(super) fn unavailable(&self, reason: StoreUnavailable) -> StreamsError {
        StreamsError::StoreUnavailable { store: self.name.to_string(), reason }
    }

    /// Runs `read` on the committed view of each store this source names (see the module's doc), in
    /// task order, under each task's thread lock in turn (`read` should copy, not decode: values are
    /// decoded after the lock is let go; only the queried keys are encoded under it).
    pub(super) fn read_each<R>(
        &self,
        mut read: impl FnMut(&dyn ErasedStore, &dyn ReadOnlyKeyValueStore) -> Result<R, StreamsError>,
    ) -> Result<Vec<R>, StreamsError> {
        if crate::sync::holds_task_lock() {
            return Err(self.unavailable(StoreUnavailable::OnStreamThread));
        }
        let rebalancing = match self.shared.state.get() {
            super::State::Running => false,
            super::State::Rebalancing => true,
            super::State::Created => return Err(self.unavailable(StoreUnavailable::NotStarted)),
            state => return Err(self.unavailable(StoreUnavailable::NotRunning { state: format!("{state:?}") })),
        };
        let mut out = Vec::new();
        let subtopology = match &self.place {
            // A global store is read whole by every instance: rebalances do not move it.
            Place::Global(globals) => {
                globals.with_store(&self.name, &mut |store| {
                    out.push(read(&*store, committed(store.bytes()))?);
                    Ok(())
                })?;
                return Ok(out);
            }
            Place::Tasks(subtopology) => *subtopology,
        };
        let holders: Vec<TaskId> = self
            .shared
            .task_holders
            .holders()
            .into_iter()
            // Standbys only for a reader that accepts stale stores.
            .filter(|(_, _, standby)| self.stale_stores || !standby)
            .map(|(id, _, _)| id)
            .filter(|id| id.subtopology == subtopology && self.partition.is_none_or(|p| p == id.partition))
            .collect();
        let migrated = || self.unavailable(StoreUnavailable::Migrated { partition: self.partition });
        if holders.is_empty() {
            return Err(migrated());
        }
        if !self.stale_stores {
            // Told at once, without waiting for the restore step that holds the thread's lock.
            if let Some(&task) = holders.iter().find(|&&id| self.shared.task_holders.restoring(id)) {
                return Err(self.unavailable(StoreUnavailable::Restoring { task }));
            }
            // An eager rebalance closes a thread's tasks until its partitions come back: the tasks
            // listed now may not be all this instance will hold, and a key missing from them may be
            // in one closed for the while.
            if rebalancing {
                return Err(self.unavailable(StoreUnavailable::Rebalancing));
            }
        }
        for id in holders {
            let result = self.shared.task_holders.read_task(id, |task, restoring| {
                if restoring && !self.stale_stores {
                    return Err(self.unavailable(StoreUnavailable::Restoring { task: id }));
                }
                let store = task
                    .erased_store(&self.name)
                    .ok_or_else(|| StreamsError::Internal(format!("task {id} has no store `{}`", self.name)))?;
                read(store, committed(store.bytes()))
            });
            // Closed since it was listed: it is moving.
            out.push(result.ok_or_else(migrated)??);
        }
        // A rebalance that began after the tasks were listed may have closed some before they were read.
        if !self.stale_stores && self.shared.state.get() == super::State::Rebalancing {
            return Err(self.unavailable(StoreUnavailable::Rebalancing));
        }
        Ok(out)
    }
}

/// What interactive queries read of a store: its committed state where a layer holds writes apart.
pub(super) fn committed(store: &dyn state_store::KeyValueStore) -> &dyn ReadOnlyKeyValueStore {
    store.committed().unwrap_or(store)
}

/// How a view reads a store's values: stored as they are, or with a timestamp it leaves out.
pub(super) enum Values<V> {
    Plain(Arc<dyn Serde<V>>),
    Timestamped(Arc<dyn Serde<ValueAndTimestamp<V>>>),
}

impl<V: 'static> Values<V> {
    /// A value of store `store`, from its bytes.
    pub(super) fn decode(&self, store: &str, bytes: &[u8]) -> Result<V, StreamsError> {
        match self {
            Values::Plain(serde) => decode_stored(&**serde, store, RecordPart::Value, bytes),
            Values::Timestamped(serde) => {
                decode_stored(&**serde, store, RecordPart::Value, bytes).map(|stamped| stamped.value)
            }
        }
    }
}

/// `records` last first: the `reverse_` and `backward_` reads of the views.
pub(super) fn reversed<T>(mut records: Vec<T>) -> Vec<T> {
    records.reverse();
    records
}

/// `value` serialized by `serde` for a query of store `store`.
pub(super) fn encode_for_query<T: 'static>(
    serde: &dyn Serde<T>,
    store: &str,
    value: &T,
) -> Result<Vec<u8>, StreamsError> {
    let mut bytes = Vec::new();
    serde.serialize(store, value, &mut bytes).map_err(|source| StreamsError::Serialization {
        node: "(interactive query)".into(),
        target: store.to_string(),
        source,
    })?;
    Ok(bytes)
}

/// A read-only view of this instance's key-value stores of one name (Kafka Streams'
/// `ReadOnlyKeyValueStore` that `KafkaStreams#store` gives): every local task's store (the partitions
/// this instance holds), or one partition's, or a global store. Each call reads anew, so the view
/// stays usable across rebalances; a call fails with [`StreamsError::StoreUnavailable`] when the
/// store cannot be read now (see [`StoreUnavailable::is_retriable`]).
///
/// Unlike Kafka Streams' composite store, which goes store by store, ranges come back in the order of
/// the serialized keys across all partitions, and read in full (each partition's part under one hold
/// of its thread).
pub struct LocalKeyValueStore<K, V> {
    source: StoreSource,
    _types: PhantomData<fn() -> (K, V)>,
}

/// Records as read: each with its key's bytes, to order them across partitions.
type Read<K, V> = Vec<(Vec<u8>, K, V)>;

impl<K: 'static, V: 'static> LocalKeyValueStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.source.name
    }

    /// The serdes of `store`, if it holds these types.
    fn serdes(&self, store: &dyn ErasedStore) -> Result<(Arc<dyn Serde<K>>, Values<V>), StreamsError> {
        if let Some(typed) = store.as_any().downcast_ref::<TypedKeyValueStore<K, V>>() {
            let (keys, values) = typed.serdes();
            return Ok((keys, Values::Plain(values)));
        }
        if let Some(typed) = store.as_any().downcast_ref::<TypedKeyValueStore<K, ValueAndTimestamp<V>>>() {
            let (keys, values) = typed.serdes();
            return Ok((keys, Values::Timestamped(values)));
        }
        Err(self.source.unavailable(StoreUnavailable::Unknown(format!(
            "it is a key-value store of {}, not of ({}, {}) or of timestamped values of it",
            store.type_names(),
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ))))
    }

    fn decode_value(&self, values: &Values<V>, bytes: &[u8]) -> Result<V, StreamsError> {
        values.decode(&self.source.name, bytes)
    }

    fn encode_key(&self, serde: &dyn Serde<K>, key: &K) -> Result<Vec<u8>, StreamsError> {
        encode_for_query(serde, &self.source.name, key)
    }

    /// The value for `key`, from whichever local store holds it.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let found = self.source.read_each(|store, bytes| {
            let (keys, values) = self.serdes(store)?;
            Ok(bytes.get(&self.encode_key(&*keys, key)?)?.map(|value| (values, value)))
        })?;
        match found.into_iter().flatten().next() {
            Some((values, bytes)) => self.decode_value(&values, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Records of each store `scan` picks out, decoded, in the order of their key bytes across stores.
    /// The bytes are copied under each thread's lock and decoded after it is let go.
    fn scan(
        &self,
        scan: impl for<'s> Fn(&'s dyn ReadOnlyKeyValueStore, &[Vec<u8>]) -> Result<KeyValueIterator<'s>, StreamsError>,
        keys: &[&K],
    ) -> Result<Vec<(K, V)>, StreamsError> {
        let parts = self.source.read_each(|store, bytes| {
            let (key_serde, values) = self.serdes(store)?;
            let encoded = keys.iter().map(|key| self.encode_key(&*key_serde, key)).collect::<Result<Vec<_>, _>>()?;
            let records = scan(bytes, &encoded)?.collect::<Result<Vec<_>, _>>()?;
            Ok((key_serde, values, records))
        })?;
        let mut records: Read<K, V> = Vec::new();
        for (key_serde, values, part) in parts {
            for (key, value) in part {
                let decoded = decode_stored(&*key_serde, &self.source.name, RecordPart::Key, &key)?;
                records.push((key, decoded, self.decode_value(&values, &value)?));
            }
        }
        // Each part is in key order already, and a key lives in one partition: a stable sort merges them.
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records.into_iter().map(|(_, key, value)| (key, value)).collect())
    }

    /// Records with `from <= key <= to` by their serialized keys, in that order.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        use std::ops::Bound::Included;
        self.scan(|store, keys| Ok(store.range(Included(&keys[0]), Included(&keys[1]))?), &[from, to])
    }

    /// [`range`](Self::range), last key first.
    pub fn reverse_range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        self.range(from, to).map(reversed)
    }

    /// Records whose serialized key starts with the serialized `prefix`, in key order.
    pub fn prefix_scan(&self, prefix: &K) -> Result<Vec<(K, V)>, StreamsError> {
        self.scan(|store, keys| Ok(store.prefix_scan(&keys[0])?), &[prefix])
    }

    /// Every record, in the order of the serialized keys. Reads the whole store into memory: for a large
    /// one, prefer [`range`](Self::range) or [`prefix_scan`](Self::prefix_scan).
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        self.scan(|store, _| Ok(store.all()?), &[])
    }

    /// [`all`](Self::all), last key first.
    pub fn reverse_all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        self.all().map(reversed)
    }

    /// An estimate of the number of records in all the local stores read (RocksDB's estimate on disk).
    pub fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        let counts = self.source.read_each(|store, bytes| {
            self.serdes(store)?;
            Ok(bytes.approximate_num_entries()?)
        })?;
        Ok(counts.into_iter().fold(0u64, u64::saturating_add))
    }
}
