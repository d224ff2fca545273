//! Window stores for the Processor API (Kafka Streams' `WindowStore`): values per key and window start,
//! kept for a retention, on the segmented byte store. Keys are laid out as Kafka Streams lays them out
//! (the key, the window start, a sequence number), so the changelog reads the same.

use std::sync::Arc;
use std::time::Duration;

use state_store::{KeyValueStore, SegmentedKeyValueStore};

use super::builder::{persistent_store_dir, KeyValueBytesStoreSupplier, StoreContext};
use super::keyed_scan::window_records;
use super::typed::{decode, encode};
use crate::record::RecordPart;
use crate::serde::{Serde, WindowStoreKeySerde, WINDOW_STORE_SUFFIX};
use crate::window::{millis, Windowed};
use crate::{StreamsError, TopologyError};

/// Opens window stores for each task: in memory or on RocksDB, with a retention, a window size and
/// whether each put is kept even when its key and window are already there (Kafka Streams'
/// `WindowBytesStoreSupplier`). Made by [`Stores::persistent_window_store`](super::Stores) and
/// [`Stores::in_memory_window_store`](super::Stores).
#[derive(Debug, Clone)]
pub struct WindowBytesStoreSupplier {
    pub(crate) name: String,
    pub(crate) retention_ms: i64,
    pub(crate) window_size_ms: i64,
    pub(crate) retain_duplicates: bool,
    pub(crate) persistent: bool,
}

impl WindowBytesStoreSupplier {
    /// Checks the figures as Kafka Streams' `Stores` does.
    pub(crate) fn new(
        name: String,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
        persistent: bool,
    ) -> Result<Self, TopologyError> {
        let (retention_ms, window_size_ms) = (millis(retention), millis(window_size));
        if window_size_ms > retention_ms {
            return Err(TopologyError::InvalidStore {
                store: name,
                reason: format!(
                    "The retention period of the window store must be no smaller than its window size. Got size=[{window_size_ms}], retention=[{retention_ms}]"
                ),
            });
        }
        Ok(WindowBytesStoreSupplier { name, retention_ms, window_size_ms, retain_duplicates, persistent })
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long windows are kept past the latest window start.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms.max(0) as u64)
    }

    /// The size of the store's windows (the end of a window read back is its start plus this).
    pub fn window_size(&self) -> Duration {
        Duration::from_millis(self.window_size_ms.max(0) as u64)
    }
}

impl KeyValueBytesStoreSupplier for WindowBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        open_window_bytes(ctx, &self.name, self.retention_ms, self.persistent, false)
    }
}

/// Opens the segmented byte store of a window (or session) store for the context's task: on RocksDB
/// under the store's directory, or in memory.
pub(crate) fn open_window_bytes(
    ctx: &StoreContext<'_>,
    name: &str,
    retention_ms: i64,
    persistent: bool,
    sessions: bool,
) -> Result<Box<dyn KeyValueStore>, StreamsError> {
    Ok(match (persistent, sessions) {
        (true, false) => Box::new(SegmentedKeyValueStore::rocksdb_window_store(
            name,
            persistent_store_dir(ctx, name)?,
            ctx.rocksdb,
            retention_ms,
        )?),
        (true, true) => Box::new(SegmentedKeyValueStore::rocksdb_session_store(
            name,
            persistent_store_dir(ctx, name)?,
            ctx.rocksdb,
            retention_ms,
        )?),
        (false, false) => Box::new(SegmentedKeyValueStore::in_memory_window_store(name, retention_ms)),
        (false, true) => Box::new(SegmentedKeyValueStore::in_memory_session_store(name, retention_ms)),
    })
}

/// A window store seen through serdes (Kafka Streams' `WindowStore<K, V>`): a value per key and window
/// start. Reads go in the order of the stored bytes: by the key's bytes, then by window start.
///
/// Windows older than the store's retention (past the latest window start put) are gone, or hidden
/// until their segment goes.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use streams_core::dsl::Window;
/// use streams_core::processor::{Processor, ProcessorContext};
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::store::Stores;
/// use streams_core::testing::TopologyTestDriver;
/// use streams_core::{Record, StreamsError, Topology};
///
/// /// Counts clicks per user per minute.
/// struct PerMinute;
/// impl Processor<String, String, String, i64> for PerMinute {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<(), StreamsError> {
///         let start = r.timestamp - r.timestamp % 60_000;
///         let store = ctx.window_store::<String, i64>("clicks")?;
///         let count = store.get(&r.key, start)?.unwrap_or(0) + 1;
///         store.put(&r.key, &count, start)?;
///         ctx.forward(Record::new(r.key, count, r.timestamp))
///     }
/// }
///
/// let minute = Duration::from_secs(60);
/// let supplier = Stores::in_memory_window_store("clicks", 10 * minute, minute, false)?;
/// let mut topology = Topology::new();
/// topology.add_source("in", &["clicks"], Arc::new(StringSerde), Arc::new(StringSerde))?;
/// topology.add_processor("count", || PerMinute, &["in"])?;
/// topology.add_state_store(Stores::window_store_builder(supplier, Arc::new(StringSerde), Arc::new(I64Serde)), &["count"])?;
/// let mut driver = TopologyTestDriver::new(topology)?;
/// let input = driver.input_topic::<String, String>("clicks");
/// for ts in [1_000, 2_000, 61_000] {
///     driver.pipe(&input, "ada".into(), "click".into(), ts)?;
/// }
/// let store = driver.window_store::<String, i64>("clicks").unwrap();
/// let per_minute: Vec<(i64, i64)> = store.fetch(&"ada".to_string(), 0, 120_000)?.collect::<Result<_, _>>()?;
/// assert_eq!(per_minute, vec![(0, 2), (60_000, 1)]);
/// let all = store.all()?.collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(all[1].0.window, Window { start: 60_000, end: 120_000 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WindowStore<K, V> {
    name: Arc<str>,
    inner: Box<dyn KeyValueStore>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    /// Reads stored keys back, with the window end from the window size.
    stored_key: Arc<WindowStoreKeySerde<K>>,
    retain_duplicates: bool,
    /// The sequence number of the last put with duplicates retained (Kafka Streams' `seqnum`).
    seqnum: i32,
}

/// A window store's record as its range reads give it: the window's key, and the value.
pub type WindowedKeyValue<K, V> = (Windowed<K>, V);

impl<K: 'static, V: 'static> WindowStore<K, V> {
    pub(crate) fn new(
        inner: Box<dyn KeyValueStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        window_size_ms: i64,
        retain_duplicates: bool,
    ) -> Self {
        WindowStore {
            name: inner.name().into(),
            inner,
            stored_key: Arc::new(WindowStoreKeySerde::new(key_serde.clone(), window_size_ms)),
            key_serde,
            value_serde,
            retain_duplicates,
            seqnum: 0,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The serdes of its stored keys (key and window) and of its values, for interactive queries.
    pub(crate) fn query_serdes(&self) -> (Arc<dyn Serde<Windowed<K>>>, Arc<dyn Serde<V>>) {
        (self.stored_key.clone(), self.value_serde.clone())
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StreamsError> {
        let mut bytes = Vec::new();
        encode(&*self.key_serde, &self.name, key, &mut bytes)?;
        Ok(bytes)
    }

    fn store_key(key: &[u8], start: i64, seqnum: i32) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(key.len() + WINDOW_STORE_SUFFIX);
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&start.to_be_bytes());
        bytes.extend_from_slice(&seqnum.to_be_bytes());
        bytes
    }

    /// Stores `value` for `key` in the window starting at `window_start`. A value its serde writes as
    /// null deletes the window; with duplicates retained, every put is kept (under its own sequence
    /// number) and a null one is ignored, as in Kafka Streams.
    pub fn put(&mut self, key: &K, value: &V, window_start: i64) -> Result<(), StreamsError> {
        let key = self.key_bytes(key)?;
        let null = self.value_serde.is_null(value);
        if self.retain_duplicates {
            if null {
                return Ok(());
            }
            self.seqnum = (self.seqnum.wrapping_add(1)) & i32::MAX;
        }
        let stored = Self::store_key(&key, window_start, if self.retain_duplicates { self.seqnum } else { 0 });
        if null {
            self.inner.delete(&stored)?;
        } else {
            let mut bytes = Vec::new();
            encode(&*self.value_serde, &self.name, value, &mut bytes)?;
            self.inner.put(&stored, &bytes)?;
        }
        Ok(())
    }

    /// The value for `key` in the window starting at `window_start` (Kafka Streams' `fetch(key, time)`).
    pub fn get(&self, key: &K, window_start: i64) -> Result<Option<V>, StreamsError> {
        let stored = Self::store_key(&self.key_bytes(key)?, window_start, 0);
        match self.inner.get(&stored)? {
            Some(bytes) => decode(&*self.value_serde, &self.name, RecordPart::Value, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// `(window start, value)` of `key`'s windows that start in `[from, to]`, oldest first (Kafka
    /// Streams' `fetch(key, timeFrom, timeTo)`).
    pub fn fetch(
        &self,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = Result<(i64, V), StreamsError>> + '_ + use<'_, K, V>, StreamsError> {
        let key = self.key_bytes(key)?;
        let records = self.scan(Some(&key), Some(&key), from, to)?;
        Ok(records.map(|record| record.map(|(windowed, value)| (windowed.window.start, value))))
    }

    /// [`fetch`](Self::fetch), newest first (Kafka Streams' `backwardFetch`). Reads the range before
    /// giving the first record.
    pub fn backward_fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let mut records = self.fetch(key, from, to)?.collect::<Result<Vec<_>, _>>()?;
        records.reverse();
        Ok(records)
    }

    /// The windows of keys in `[key_from, key_to]` (by their bytes) that start in `[from, to]`, by key
    /// and then start (Kafka Streams' `fetch(keyFrom, keyTo, timeFrom, timeTo)`).
    pub fn fetch_range(
        &self,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = Result<WindowedKeyValue<K, V>, StreamsError>> + '_ + use<'_, K, V>, StreamsError>
    {
        let (low, high) = (self.key_bytes(key_from)?, self.key_bytes(key_to)?);
        self.scan(Some(&low), Some(&high), from, to)
    }

    /// [`fetch_range`](Self::fetch_range) in reverse order (Kafka Streams' `backwardFetch`).
    pub fn backward_fetch_range(
        &self,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        let mut records = self.fetch_range(key_from, key_to, from, to)?.collect::<Result<Vec<_>, _>>()?;
        records.reverse();
        Ok(records)
    }

    /// Every window that starts in `[from, to]`, whatever its key (Kafka Streams' `fetchAll`).
    pub fn fetch_all(
        &self,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = Result<WindowedKeyValue<K, V>, StreamsError>> + '_ + use<'_, K, V>, StreamsError>
    {
        self.scan(None, None, from, to)
    }

    /// Every window in the store.
    pub fn all(&self) -> Result<impl Iterator<Item = Result<WindowedKeyValue<K, V>, StreamsError>> + '_, StreamsError> {
        self.scan(None, None, i64::MIN, i64::MAX)
    }

    /// Stored records whose key bytes are in `[low, high]` and whose window starts in `[from, to]`.
    fn scan<'a>(
        &'a self,
        low: Option<&[u8]>,
        high: Option<&[u8]>,
        from: i64,
        to: i64,
    ) -> Result<impl Iterator<Item = Result<WindowedKeyValue<K, V>, StreamsError>> + 'a + use<'a, K, V>, StreamsError>
    {
        Ok(window_records(&*self.inner, &self.name, low, high, from, to)?.map(move |record| {
            let (stored, value) = record?;
            let windowed = decode(&*self.stored_key, &self.name, RecordPart::Key, &stored)?;
            Ok((windowed, decode(&*self.value_serde, &self.name, RecordPart::Value, &value)?))
        }))
    }
}

super::typed::erased_store!(WindowStore, "a window store of ");
