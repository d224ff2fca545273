//! Session stores for the Processor API (Kafka Streams' `SessionStore`): an aggregate per key and
//! session (`[start, end]`, both inclusive), kept for a retention past the latest session end, on the
//! segmented byte store. Keys are laid out as Kafka Streams lays them out (the key, the session's end,
//! its start), so the changelog reads the same.

use std::sync::Arc;
use std::time::Duration;

use state_store::KeyValueStore;

use super::builder::{KeyValueBytesStoreSupplier, StoreContext};
use super::keyed_scan::session_records;
use super::typed::{decode, encode};
use super::window::open_window_bytes;
use crate::record::RecordPart;
use crate::serde::{Serde, SessionWindowedSerde};
use crate::window::{millis, Windowed};
use crate::{StreamsError, TopologyError};

/// Opens session stores for each task: in memory or on RocksDB, with a retention (Kafka Streams'
/// `SessionBytesStoreSupplier`). Made by [`Stores::persistent_session_store`](super::Stores) and
/// [`Stores::in_memory_session_store`](super::Stores).
#[derive(Debug, Clone)]
pub struct SessionBytesStoreSupplier {
    pub(crate) name: String,
    pub(crate) retention_ms: i64,
    pub(crate) persistent: bool,
}

impl SessionBytesStoreSupplier {
    pub(crate) fn new(name: String, retention: Duration, persistent: bool) -> Result<Self, TopologyError> {
        let retention_ms = millis(retention);
        if retention_ms < 0 {
            return Err(TopologyError::InvalidStore {
                store: name,
                reason: "retentionPeriod cannot be negative".into(),
            });
        }
        Ok(SessionBytesStoreSupplier { name, retention_ms, persistent })
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long sessions are kept past the latest session end.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms.max(0) as u64)
    }
}

impl KeyValueBytesStoreSupplier for SessionBytesStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, ctx: &StoreContext<'_>) -> Result<Box<dyn KeyValueStore>, StreamsError> {
        open_window_bytes(ctx, &self.name, self.retention_ms, self.persistent, true)
    }
}

/// A session store seen through serdes (Kafka Streams' `SessionStore<K, AGG>`): a value per key and
/// session. Reads go in the order of the stored bytes: by the key's bytes, then by session end, then
/// start.
///
/// Sessions that ended at or before the latest end put less the retention are gone, or hidden until
/// their segment goes.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use streams_core::dsl::{Window, Windowed};
/// use streams_core::processor::{Processor, ProcessorContext};
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::store::Stores;
/// use streams_core::testing::TopologyTestDriver;
/// use streams_core::{Record, StreamsError, Topology};
///
/// /// Clicks per visit: a visit ends after 10 s without a click (no merging of visits, for brevity).
/// struct Visits;
/// impl Processor<String, String, String, i64> for Visits {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<(), StreamsError> {
///         let store = ctx.session_store::<String, i64>("visits")?;
///         let open = store.find_sessions(&r.key, r.timestamp - 10_000, r.timestamp)?.last().transpose()?;
///         let (start, count) = match open {
///             Some((visit, count)) => {
///                 store.remove(&visit)?;
///                 (visit.window.start, count + 1)
///             }
///             None => (r.timestamp, 1),
///         };
///         store.put(&Windowed::new(r.key.clone(), Window { start, end: r.timestamp }), &count)?;
///         ctx.forward(Record::new(r.key, count, r.timestamp))
///     }
/// }
///
/// let supplier = Stores::in_memory_session_store("visits", Duration::from_secs(3600))?;
/// let mut topology = Topology::new();
/// topology.add_source("in", &["clicks"], Arc::new(StringSerde), Arc::new(StringSerde))?;
/// topology.add_processor("visits", || Visits, &["in"])?;
/// topology.add_state_store(Stores::session_store_builder(supplier, Arc::new(StringSerde), Arc::new(I64Serde)), &["visits"])?;
/// let mut driver = TopologyTestDriver::new(topology)?;
/// let input = driver.input_topic::<String, String>("clicks");
/// for ts in [1_000, 5_000, 30_000] {
///     driver.pipe(&input, "ada".into(), "click".into(), ts)?;
/// }
/// let store = driver.session_store::<String, i64>("visits").unwrap();
/// assert_eq!(store.fetch_session(&"ada".to_string(), 1_000, 5_000)?, Some(2));
/// let visits: Vec<(Windowed<String>, i64)> = store.fetch(&"ada".to_string())?.collect::<Result<_, _>>()?;
/// assert_eq!(visits.iter().map(|(w, n)| (w.window.start, w.window.end, *n)).collect::<Vec<_>>(), vec![(1_000, 5_000, 2), (30_000, 30_000, 1)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SessionStore<K, V> {
    name: Arc<str>,
    inner: Box<dyn KeyValueStore>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    /// Stored keys: Kafka's session layout.
    stored_key: Arc<SessionWindowedSerde<K>>,
}

/// A session store's record as its reads give it: the session's key, and the value.
pub type SessionKeyValue<K, V> = (Windowed<K>, V);

impl<K: 'static, V: 'static> SessionStore<K, V> {
    pub(crate) fn new(
        inner: Box<dyn KeyValueStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        SessionStore {
            name: inner.name().into(),
            inner,
            stored_key: Arc::new(SessionWindowedSerde::new(key_serde.clone())),
            key_serde,
            value_serde,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The serdes of its stored keys (key and session) and of its values, for interactive queries.
    pub(crate) fn query_serdes(&self) -> (Arc<dyn Serde<Windowed<K>>>, Arc<dyn Serde<V>>) {
        (self.stored_key.clone(), self.value_serde.clone())
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StreamsError> {
        let mut bytes = Vec::new();
        encode(&*self.key_serde, &self.name, key, &mut bytes)?;
        Ok(bytes)
    }

    fn session_bytes(&self, session: &Windowed<K>) -> Result<Vec<u8>, StreamsError> {
        let mut bytes = Vec::new();
        encode(&*self.stored_key, &self.name, session, &mut bytes)?;
        Ok(bytes)
    }

    fn stored(key: &[u8], end: i64, start: i64) -> Vec<u8> {
        [key, &end.to_be_bytes(), &start.to_be_bytes()].concat()
    }

    /// Stores `value` as the aggregate of `session`; a value its serde writes as null removes the
    /// session, as in Kafka Streams.
    pub fn put(&mut self, session: &Windowed<K>, value: &V) -> Result<(), StreamsError> {
        let stored = self.session_bytes(session)?;
        if self.value_serde.is_null(value) {
            self.inner.delete(&stored)?;
            return Ok(());
        }
        let mut bytes = Vec::new();
        encode(&*self.value_serde, &self.name, value, &mut bytes)?;
        self.inner.put(&stored, &bytes)?;
        Ok(())
    }

    /// Removes `session`.
    pub fn remove(&mut self, session: &Windowed<K>) -> Result<(), StreamsError> {
        let stored = self.session_bytes(session)?;
        self.inner.delete(&stored)?;
        Ok(())
    }

    /// The aggregate of `key`'s session `[start, end]` (Kafka Streams' `fetchSession`).
    pub fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>, StreamsError> {
        let stored = Self::stored(&self.key_bytes(key)?, end, start);
        match self.inner.get(&stored)? {
            Some(bytes) => decode(&*self.value_serde, &self.name, RecordPart::Value, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// `key`'s sessions that end at or after `earliest_end` and start at or before `latest_start`: those
    /// a record between the two times would touch (Kafka Streams' `findSessions`), by end, then start.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<impl Iterator<Item = Result<SessionKeyValue<K, V>, StreamsError>> + '_ + use<'_, K, V>, StreamsError>
    {
        let key = self.key_bytes(key)?;
        self.scan(Some(&key), Some(&key), earliest_end, latest_start)
    }

    /// [`find_sessions`](Self::find_sessions), latest first (Kafka Streams' `backwardFindSessions`).
    pub fn backward_find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        let mut sessions = self.find_sessions(key, earliest_end, latest_start)?.collect::<Result<Vec<_>, _>>()?;
        sessions.reverse();
        Ok(sessions)
    }

    /// The sessions of keys in `[key_from, key_to]` (by their bytes) that end at or after `earliest_end`
    /// and start at or before `latest_start`, by key, then end (Kafka Streams' `findSessions(keyFrom,
    /// keyTo, ..)`).
    pub fn find_sessions_range(
        &self,
        key_from: &K,
        key_to: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<impl Iterator<Item = Result<SessionKeyValue<K, V>, StreamsError>> + '_ + use<'_, K, V>, StreamsError>
    {
        let (low, high) = (self.key_bytes(key_from)?, self.key_bytes(key_to)?);
        self.scan(Some(&low), Some(&high), earliest_end, latest_start)
    }

    /// Every session of `key` (Kafka Streams' `fetch(key)`).
    pub fn fetch(
        &self,
        key: &K,
    ) -> Result<impl Iterator<Item = Result<SessionKeyValue<K, V>, StreamsError>> + '_ + use<'_, K, V>, StreamsError>
    {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// [`fetch`](Self::fetch), latest first (Kafka Streams' `backwardFetch(key)`).
    pub fn backward_fetch(&self, key: &K) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.backward_find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Every session of keys in `[key_from, key_to]` (Kafka Streams' `fetch(keyFrom, keyTo)`).
    pub fn fetch_range(
        &self,
        key_from: &K,
        key_to: &K,
    ) -> Result<impl Iterator<Item = Result<SessionKeyValue<K, V>, StreamsError>> + '_ + use<'_, K, V>, StreamsError>
    {
        self.find_sessions_range(key_from, key_to, i64::MIN, i64::MAX)
    }

    /// Every session in the store, by key, then end.
    pub fn all(&self) -> Result<impl Iterator<Item = Result<SessionKeyValue<K, V>, StreamsError>> + '_, StreamsError> {
        self.scan(None, None, i64::MIN, i64::MAX)
    }

    /// Stored sessions whose key bytes are in `[low, high]`, ending at or after `earliest_end` and
    /// starting at or before `latest_start`.
    fn scan<'a>(
        &'a self,
        low: Option<&[u8]>,
        high: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<impl Iterator<Item = Result<SessionKeyValue<K, V>, StreamsError>> + 'a + use<'a, K, V>, StreamsError>
    {
        Ok(session_records(&*self.inner, &self.name, low, high, earliest_end, latest_start)?.map(move |record| {
            let (stored, value) = record?;
            let session = decode(&*self.stored_key, &self.name, RecordPart::Key, &stored)?;
            Ok((session, decode(&*self.value_serde, &self.name, RecordPart::Value, &value)?))
        }))
    }
}

super::typed::erased_store!(SessionStore, "a session store of ");
