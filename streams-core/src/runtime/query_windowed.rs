//! Interactive queries of window and session stores (Kafka Streams' `ReadOnlyWindowStore` and
//! `ReadOnlySessionStore`, from `QueryableStoreTypes.windowStore()`, `timestampedWindowStore()` and
//! `sessionStore()`): the stores of the DSL's windowed and session aggregations, and the Processor
//! API's [`WindowStore`] and [`SessionStore`]. Reads go through the stores' own byte-range scans, on the
//! committed view of each local task's store, as [`LocalKeyValueStore`](super::LocalKeyValueStore)
//! reads key-value stores (what a reader sees under each guarantee: the `query` module's doc).

use std::marker::PhantomData;
use std::sync::Arc;

use state_store::ReadOnlyKeyValueStore;

use super::query::{encode_for_query, reversed, sealed, QueryableStoreType, StoreSource, Values};
use super::QueryableStoreTypes;
use crate::error::StoreUnavailable;
use crate::record::RecordPart;
use crate::serde::{Serde, SESSION_SUFFIX, WINDOW_STORE_SUFFIX};
use crate::store::{
    decode_stored, session_records, window_records, ErasedStore, SessionKeyValue, SessionStore, TypedKeyValueStore,
    ValueAndTimestamp, WindowStore, WindowedKeyValue,
};
use crate::window::{Window, Windowed};
use crate::StreamsError;

impl QueryableStoreTypes {
    /// A window store of `K` to `V`: a Processor API window store, or a windowed aggregation's read
    /// without its values' timestamps (Kafka Streams' `windowStore()`).
    pub fn window_store<K: 'static, V: 'static>() -> WindowStoreType<K, V> {
        WindowStoreType(PhantomData)
    }

    /// A windowed aggregation's window store of `K` to `V`, with each value's timestamp (Kafka Streams'
    /// `timestampedWindowStore()`).
    pub fn timestamped_window_store<K: 'static, V: 'static>() -> WindowStoreType<K, ValueAndTimestamp<V>> {
        WindowStoreType(PhantomData)
    }

    /// A session store of `K` to `V`: a session aggregation's or a Processor API session store
    /// (Kafka Streams' `sessionStore()`).
    pub fn session_store<K: 'static, V: 'static>() -> SessionStoreType<K, V> {
        SessionStoreType(PhantomData)
    }
}

/// A window store of `K` to `V`, to query (see [`QueryableStoreTypes::window_store`]).
pub struct WindowStoreType<K, V>(PhantomData<fn() -> (K, V)>);

/// A session store of `K` to `V`, to query (see [`QueryableStoreTypes::session_store`]).
pub struct SessionStoreType<K, V>(PhantomData<fn() -> (K, V)>);

macro_rules! store_type {
    ($type:ident, $view:ident, $kind:expr) => {
        impl<K, V> std::fmt::Debug for $type<K, V> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let (k, v) = (std::any::type_name::<K>(), std::any::type_name::<V>());
                write!(f, "{}<{k}, {v}>", stringify!($type))
            }
        }

        impl<K, V> Clone for $type<K, V> {
            fn clone(&self) -> Self {
                $type(PhantomData)
            }
        }

        impl<K, V> sealed::Sealed for $type<K, V> {}

        impl<K: Clone + 'static, V: 'static> QueryableStoreType for $type<K, V> {
            type Store = $view<K, V>;

            fn create(source: StoreSource) -> Self::Store {
                $view { reader: WindowedReader { source, kind: $kind, _types: PhantomData } }
            }
        }
    };
}

store_type!(WindowStoreType, LocalWindowStore, Kind::Window);
store_type!(SessionStoreType, LocalSessionStore, Kind::Session);

/// The two layouts of windowed stores' keys: the key's bytes, then a window store's start and sequence
/// number, or a session store's end and start.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Window,
    Session,
}

impl Kind {
    fn suffix(self) -> usize {
        match self {
            Kind::Window => WINDOW_STORE_SUFFIX,
            Kind::Session => SESSION_SUFFIX,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Window => "window store",
            Kind::Session => "session store",
        }
    }

    /// Stored records of keys `[low, high]` (every key for `None`) whose windows a scan from `t1` to
    /// `t2` takes (a window store's that start in `[t1, t2]`; a session store's that end at or after
    /// `t1` and start at or before `t2`), as bytes.
    fn scan(
        self,
        store: &dyn ReadOnlyKeyValueStore,
        name: &str,
        keys: Option<(&[u8], &[u8])>,
        (t1, t2): (i64, i64),
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StreamsError> {
        let (low, high) = (keys.map(|k| k.0), keys.map(|k| k.1));
        match self {
            Kind::Window => window_records(store, name, low, high, t1, t2)?.collect(),
            Kind::Session => session_records(store, name, low, high, t1, t2)?.collect(),
        }
    }
}

/// How one task's store is read: the serde of its stored keys (key and window, in its layout) and
/// of its values.
struct StoreSerdes<K, V> {
    keys: Arc<dyn Serde<Windowed<K>>>,
    values: Values<V>,
}

/// What window and session views share: finding each store's serdes, and reading by key and window.
struct WindowedReader<K, V> {
    source: StoreSource,
    kind: Kind,
    _types: PhantomData<fn() -> (K, V)>,
}

/// Records as read: each with its stored key's bytes, to order them across partitions.
type Read<K, V> = Vec<(Vec<u8>, Windowed<K>, V)>;

impl<K: Clone + 'static, V: 'static> WindowedReader<K, V> {
    /// The serdes of `store`, if it is a store of this kind holding these types: the Processor API's
    /// typed store, or a DSL aggregation's key-value store of windowed keys (plain or timestamped
    /// values).
    fn serdes(&self, store: &dyn ErasedStore) -> Result<StoreSerdes<K, V>, StreamsError> {
        let any = store.as_any();
        let own = match self.kind {
            Kind::Window => any.downcast_ref::<WindowStore<K, V>>().map(WindowStore::query_serdes),
            Kind::Session => any.downcast_ref::<SessionStore<K, V>>().map(SessionStore::query_serdes),
        };
        if let Some((keys, values)) = own {
            return Ok(StoreSerdes { keys, values: Values::Plain(values) });
        }
        if let Some(typed) = any.downcast_ref::<TypedKeyValueStore<Windowed<K>, V>>() {
            let (keys, values) = typed.serdes();
            return Ok(StoreSerdes { keys, values: Values::Plain(values) });
        }
        if let Some(typed) = any.downcast_ref::<TypedKeyValueStore<Windowed<K>, ValueAndTimestamp<V>>>() {
            let (keys, values) = typed.serdes();
            return Ok(StoreSerdes { keys, values: Values::Timestamped(values) });
        }
        Err(self.source.unavailable(StoreUnavailable::Unknown(format!(
            "it is {}, not a {} of ({}, {}) or of timestamped values of it",
            store.type_names(),
            self.kind.name(),
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ))))
    }

    /// `key` in `window` as the store keys it, and how long the key's own bytes are; an error when
    /// the store's keys are not laid out as this kind's (a key-value store of windowed keys that is
    /// not a window or session store, or a session store read as a window store).
    fn stored_key(
        &self,
        serdes: &StoreSerdes<K, V>,
        key: &K,
        window: Window,
    ) -> Result<(Vec<u8>, usize), StreamsError> {
        let windowed = Windowed { key: key.clone(), window };
        let stored = encode_for_query(&*serdes.keys, &self.source.name, &windowed)?;
        let key_len = serdes.keys.partition_bytes(&stored).len();
        match stored.len() - key_len == self.kind.suffix() {
            true => Ok((stored, key_len)),
            false => Err(self.source.unavailable(StoreUnavailable::Unknown(format!(
                "its keys are not laid out as a {}'s ({} bytes after the key, not {})",
                self.kind.name(),
                stored.len() - key_len,
                self.kind.suffix()
            )))),
        }
    }

    /// The value of `key` in `window`, from whichever local store holds it.
    fn get(&self, key: &K, window: Window) -> Result<Option<V>, StreamsError> {
        let found = self.source.read_each(|store, bytes| {
            let serdes = self.serdes(store)?;
            let (stored, _) = self.stored_key(&serdes, key, window)?;
            Ok(bytes.get(&stored)?.map(|value| (serdes.values, value)))
        })?;
        match found.into_iter().flatten().next() {
            Some((values, bytes)) => values.decode(&self.source.name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Records of keys in `[low, high]` (by their bytes; every key for `None`) whose windows a scan
    /// from `t1` to `t2` takes, in the order of the stored keys across stores. The bytes are copied
    /// under each thread's lock and decoded after it is let go. The layout is checked on the query's
    /// keys, or without keys on the store's first record (an empty store of another layout reads as
    /// empty).
    fn scan(&self, keys: Option<(&K, &K)>, t1: i64, t2: i64) -> Result<Vec<(Windowed<K>, V)>, StreamsError> {
        let name = &*self.source.name;
        let parts = self.source.read_each(|store, bytes| {
            let serdes = self.serdes(store)?;
            let records = match keys {
                Some((low, high)) => {
                    let (low, low_len) = self.stored_key(&serdes, low, Window { start: 0, end: 0 })?;
                    let (high, high_len) = self.stored_key(&serdes, high, Window { start: 0, end: 0 })?;
                    self.kind.scan(bytes, name, Some((&low[..low_len], &high[..high_len])), (t1, t2))?
                }
                None => {
                    if let Some((stored, _)) = bytes.all()?.next().transpose()? {
                        let first = decode_stored(&*serdes.keys, name, RecordPart::Key, &stored)?;
                        self.stored_key(&serdes, &first.key, first.window)?;
                    }
                    self.kind.scan(bytes, name, None, (t1, t2))?
                }
            };
            Ok((serdes, records))
        })?;
        let mut read: Read<K, V> = Vec::new();
        for (serdes, part) in parts {
            for (stored, value) in part {
                let windowed = decode_stored(&*serdes.keys, name, RecordPart::Key, &stored)?;
                let value = serdes.values.decode(name, &value)?;
                read.push((stored, windowed, value));
            }
        }
        // Each part is in stored-key order already, and a key lives in one partition: a stable sort
        // merges them.
        read.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(read.into_iter().map(|(_, windowed, value)| (windowed, value)).collect())
    }
}

/// A read-only view of this instance's window stores of one name (Kafka Streams' `ReadOnlyWindowStore`
/// that `KafkaStreams#store` gives): every local task's store, or one partition's. Each call reads
/// anew and fails with [`StreamsError::StoreUnavailable`] when the store cannot be read now, as
/// [`LocalKeyValueStore`](super::LocalKeyValueStore). Times are window starts in milliseconds; reads
/// come back whole, in the order of the serialized keys and then the window starts, and the `backward_`
/// reads in the reverse order (Kafka Streams' range reads go by time first).
pub struct LocalWindowStore<K, V> {
    reader: WindowedReader<K, V>,
}

impl<K: Clone + 'static, V: 'static> LocalWindowStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.reader.source.name
    }

    /// The value of `key`'s window that starts at `window_start` (Kafka Streams' `fetch(key, time)`).
    pub fn get(&self, key: &K, window_start: i64) -> Result<Option<V>, StreamsError> {
        self.reader.get(key, Window { start: window_start, end: window_start })
    }

    /// `(window start, value)` of `key`'s windows that start in `[from, to]`, oldest first (Kafka
    /// Streams' `fetch(key, timeFrom, timeTo)`).
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let records = self.reader.scan(Some((key, key)), from, to)?;
        Ok(records.into_iter().map(|(windowed, value)| (windowed.window.start, value)).collect())
    }

    /// [`fetch`](Self::fetch), newest first (Kafka Streams' `backwardFetch(key, ..)`).
    pub fn backward_fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        self.fetch(key, from, to).map(reversed)
    }

    /// The windows of keys in `[key_from, key_to]` (by their serialized bytes) that start in
    /// `[from, to]` (Kafka Streams' `fetch(keyFrom, keyTo, timeFrom, timeTo)`).
    pub fn fetch_range(
        &self,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        self.reader.scan(Some((key_from, key_to)), from, to)
    }

    /// [`fetch_range`](Self::fetch_range) in the reverse order (Kafka Streams' `backwardFetch(keyFrom,
    /// ..)`).
    pub fn backward_fetch_range(
        &self,
        key_from: &K,
        key_to: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        self.fetch_range(key_from, key_to, from, to).map(reversed)
    }

    /// Every window that starts in `[from, to]`, whatever its key (Kafka Streams' `fetchAll`). Reads
    /// the whole store.
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        self.reader.scan(None, from, to)
    }

    /// [`fetch_all`](Self::fetch_all) in the reverse order (Kafka Streams' `backwardFetchAll`).
    pub fn backward_fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        self.fetch_all(from, to).map(reversed)
    }

    /// Every window in the stores (Kafka Streams' `all`).
    pub fn all(&self) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        self.fetch_all(i64::MIN, i64::MAX)
    }

    /// [`all`](Self::all) in the reverse order (Kafka Streams' `backwardAll`).
    pub fn backward_all(&self) -> Result<Vec<WindowedKeyValue<K, V>>, StreamsError> {
        self.backward_fetch_all(i64::MIN, i64::MAX)
    }
}

/// A read-only view of this instance's session stores of one name (Kafka Streams'
/// `ReadOnlySessionStore` that `KafkaStreams#store` gives): every local task's store, or one
/// partition's. Each call reads anew and fails with [`StreamsError::StoreUnavailable`] when the store
/// cannot be read now, as [`LocalKeyValueStore`](super::LocalKeyValueStore). Sessions come back whole,
/// in the order of the serialized keys and then the sessions' ends (last first for the `backward_`
/// reads).
pub struct LocalSessionStore<K, V> {
    reader: WindowedReader<K, V>,
}

impl<K: Clone + 'static, V: 'static> LocalSessionStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.reader.source.name
    }

    /// The aggregate of `key`'s session `[start, end]` (Kafka Streams' `fetchSession`).
    pub fn fetch_session(&self, key: &K, start: i64, end: i64) -> Result<Option<V>, StreamsError> {
        self.reader.get(key, Window { start, end })
    }

    /// `key`'s sessions that end at or after `earliest_end` and start at or before `latest_start`
    /// (Kafka Streams' `findSessions(key, earliestSessionEndTime, latestSessionStartTime)`).
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.reader.scan(Some((key, key)), earliest_end, latest_start)
    }

    /// [`find_sessions`](Self::find_sessions), last first (Kafka Streams' `backwardFindSessions`).
    pub fn backward_find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.find_sessions(key, earliest_end, latest_start).map(reversed)
    }

    /// The sessions of keys in `[key_from, key_to]` (by their serialized bytes) that end at or after
    /// `earliest_end` and start at or before `latest_start` (Kafka Streams' `findSessions(keyFrom,
    /// keyTo, ..)`).
    pub fn find_sessions_range(
        &self,
        key_from: &K,
        key_to: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.reader.scan(Some((key_from, key_to)), earliest_end, latest_start)
    }

    /// [`find_sessions_range`](Self::find_sessions_range) in the reverse order (Kafka Streams'
    /// `backwardFindSessions(keyFrom, keyTo, ..)`).
    pub fn backward_find_sessions_range(
        &self,
        key_from: &K,
        key_to: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.find_sessions_range(key_from, key_to, earliest_end, latest_start).map(reversed)
    }

    /// Every session of `key` (Kafka Streams' `fetch(key)`).
    pub fn fetch(&self, key: &K) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// [`fetch`](Self::fetch), last first (Kafka Streams' `backwardFetch(key)`).
    pub fn backward_fetch(&self, key: &K) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.backward_find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Every session of keys in `[key_from, key_to]` (Kafka Streams' `fetch(keyFrom, keyTo)`).
    pub fn fetch_range(&self, key_from: &K, key_to: &K) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.find_sessions_range(key_from, key_to, i64::MIN, i64::MAX)
    }

    /// [`fetch_range`](Self::fetch_range), last first (Kafka Streams' `backwardFetch(keyFrom, keyTo)`).
    pub fn backward_fetch_range(&self, key_from: &K, key_to: &K) -> Result<Vec<SessionKeyValue<K, V>>, StreamsError> {
        self.fetch_range(key_from, key_to).map(reversed)
    }
}
