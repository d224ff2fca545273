//! Versioned key-value stores (Kafka Streams' `VersionedKeyValueStore`, KIP-889): every value a key had
//! within the history retention, each valid from its timestamp until the next version's, so that a
//! reader can ask what the key held at a given time.
//!
//! The versions live as rows of an ordinary byte store (RocksDB or memory, below the usual layers), so
//! its changelog, restore, transactions and owner-epoch checks are those of every other store:
//!
//! - `[0] key` → `[timestamp][1 value | 0]`: the newest version (a value or a tombstone);
//! - `[1] [key length] key [valid from]` → `[valid to][1 value | 0]`: an older version;
//! - `[2] [valid to] [key length] key [valid from]` → empty: when an older version expires;
//! - `[3]` → `[observed stream time]`, written with every write that moves it, so that a restored or
//!   reopened store refuses exactly what it refused before;
//! - `[4] [timestamp] [key length] key` → empty: when a newest version that is a tombstone expires.
//!
//! Times are written so that their bytes sort as numbers (big-endian, sign bit flipped). A version
//! expires once its end is no later than the observed stream time minus the history retention, and a
//! newest tombstone once its own time is: no query or write the store still accepts can reach them
//! (Kafka Streams drops whole segments by the same rule).

use std::ops::Bound;
use std::sync::Arc;

use state_store::KeyValueStore;

use super::typed::{decode, encode};
use crate::record::RecordPart;
use crate::serde::Serde;
use crate::StreamsError;

/// What [`VersionedKeyValueStore::put`] returns when the new version is the newest (Kafka Streams'
/// `PUT_RETURN_CODE_VALID_TO_UNDEFINED`).
pub const PUT_RETURN_CODE_VALID_TO_UNDEFINED: i64 = -1;
/// What [`VersionedKeyValueStore::put`] returns when the timestamp is older than the history retention
/// allows, and nothing was written (Kafka Streams' `PUT_RETURN_CODE_NOT_PUT`).
pub const PUT_RETURN_CODE_NOT_PUT: i64 = i64::MIN;

/// One version of a key's value: the value, the time it became valid, and when a newer version
/// replaced it (`None` for the newest).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedRecord<V> {
    /// The value.
    pub value: V,
    /// Valid from this time (inclusive).
    pub timestamp: i64,
    /// Valid until this time (exclusive); `None`: still the newest.
    pub valid_to: Option<i64>,
}

const LATEST: u8 = 0;
const HISTORY: u8 = 1;
const EXPIRY: u8 = 2;
const OBSERVED: u8 = 3;
const TOMBSTONE_EXPIRY: u8 = 4;

fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(bytes: &[u8]) -> i64 {
    let raw: [u8; 8] = bytes[..8].try_into().expect("eight bytes");
    (u64::from_be_bytes(raw) ^ (1 << 63)) as i64
}

/// A stored version's value: `None` for a tombstone.
fn version_value(bytes: &[u8]) -> Option<&[u8]> {
    match bytes.first() {
        Some(1) => Some(&bytes[1..]),
        _ => None,
    }
}

fn tagged(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(v) => [&[1u8][..], v].concat(),
        None => vec![0],
    }
}

/// The versions of one store, kept as rows of a byte store (the layout in the module's documentation).
pub(crate) struct VersionRows {
    history_retention_ms: i64,
    /// The largest timestamp written; `None` until the first write or a read of the stored one.
    observed: Option<i64>,
    /// The horizon up to which expired rows were last dropped: later drops start there.
    expired_through: Option<i64>,
    loaded: bool,
}

/// A version found by a lookup: its value (`None`: a tombstone), when it began and ended.
type Found = (Option<Vec<u8>>, i64, Option<i64>);

impl VersionRows {
    pub(crate) fn new(history_retention_ms: i64) -> Self {
        VersionRows { history_retention_ms, observed: None, expired_through: None, loaded: false }
    }

    fn load(&mut self, store: &dyn KeyValueStore) -> Result<(), StreamsError> {
        if !self.loaded {
            let stored = store.get(&[OBSERVED])?.map(|b| time_of(&b));
            self.observed = self.observed.max(stored);
            self.loaded = true;
        }
        Ok(())
    }

    /// The oldest time a write or a lookup may still concern; `None`: any.
    fn horizon(&self) -> Option<i64> {
        self.observed.map(|o| o.saturating_sub(self.history_retention_ms))
    }

    /// The key of a row of `tag` (the layout in the module's documentation): `[tag] [lead] [key length]
    /// key [trail]`, each time only when given.
    fn row_key(tag: u8, lead: Option<i64>, key: &[u8], trail: Option<i64>) -> Vec<u8> {
        let mut row = Vec::with_capacity(key.len() + 21);
        row.push(tag);
        row.extend(lead.map(time_bytes).into_iter().flatten());
        row.extend_from_slice(&(key.len() as u32).to_be_bytes());
        row.extend_from_slice(key);
        row.extend(trail.map(time_bytes).into_iter().flatten());
        row
    }

    fn history_key(key: &[u8], valid_from: i64) -> Vec<u8> {
        Self::row_key(HISTORY, None, key, Some(valid_from))
    }

    fn expiry_key(key: &[u8], valid_from: i64, valid_to: i64) -> Vec<u8> {
        Self::row_key(EXPIRY, Some(valid_to), key, Some(valid_from))
    }

    fn latest(store: &dyn KeyValueStore, key: &[u8]) -> Result<Option<(i64, Option<Vec<u8>>)>, StreamsError> {
        let row = [&[LATEST][..], key].concat();
        Ok(store.get(&row)?.map(|bytes| (time_of(&bytes), version_value(&bytes[8..]).map(<[u8]>::to_vec))))
    }

    fn tombstone_expiry_key(key: &[u8], time: i64) -> Vec<u8> {
        Self::row_key(TOMBSTONE_EXPIRY, Some(time), key, None)
    }

    /// The key's newest version; a tombstone is indexed to expire (an index row the key has moved on
    /// from is dropped when it expires, finding a newer version there).
    fn write_latest(
        store: &mut dyn KeyValueStore,
        key: &[u8],
        time: i64,
        value: Option<&[u8]>,
    ) -> Result<(), StreamsError> {
        let row = [&[LATEST][..], key].concat();
        let bytes = [&time_bytes(time)[..], &tagged(value)].concat();
        store.put(&row, &bytes)?;
        if value.is_none() {
            store.put(&Self::tombstone_expiry_key(key, time), &[])?;
        }
        Ok(())
    }

    /// The key's older versions, oldest first: (valid from, valid to, value).
    #[allow(clippy::type_complexity)]
    fn history(store: &dyn KeyValueStore, key: &[u8]) -> Result<Vec<(i64, i64, Option<Vec<u8>>)>, StreamsError> {
        let prefix = Self::row_key(HISTORY, None, key, None);
        let mut versions = Vec::new();
        for row in store.prefix_scan(&prefix)? {
            let (row_key, bytes) = row?;
            let valid_from = time_of(&row_key[prefix.len()..]);
            versions.push((valid_from, time_of(&bytes), version_value(&bytes[8..]).map(<[u8]>::to_vec)));
        }
        Ok(versions)
    }

    fn write_history(
        store: &mut dyn KeyValueStore,
        key: &[u8],
        valid_from: i64,
        valid_to: i64,
        value: Option<&[u8]>,
    ) -> Result<(), StreamsError> {
        let bytes = [&time_bytes(valid_to)[..], &tagged(value)].concat();
        store.put(&Self::history_key(key, valid_from), &bytes)?;
        store.put(&Self::expiry_key(key, valid_from, valid_to), &[])?;
        Ok(())
    }

    /// The index rows of `tag` whose time is from the last drop's horizon to `horizon`.
    fn due(&self, store: &dyn KeyValueStore, tag: u8, horizon: i64) -> Result<Vec<Vec<u8>>, StreamsError> {
        // Rows due before the last horizon are gone, and no write since can have been that old.
        let lower = match self.expired_through {
            Some(last) => [&[tag][..], &time_bytes(last)].concat(),
            None => vec![tag],
        };
        let upper = [&[tag][..], &time_bytes(horizon.saturating_add(1))].concat();
        Ok(store
            .range(Bound::Included(&lower[..]), Bound::Excluded(&upper[..]))?
            .map(|row| row.map(|(k, _)| k))
            .collect::<Result<_, _>>()?)
    }

    /// Drops every older version that ended at or before the horizon, then every newest version that
    /// is a tombstone from then or before (the key's older versions all ended by its time).
    fn expire(&mut self, store: &mut dyn KeyValueStore) -> Result<(), StreamsError> {
        let Some(horizon) = self.horizon() else { return Ok(()) };
        let key_at = |row: &[u8], at: usize| {
            let len = u32::from_be_bytes(row[at..at + 4].try_into().expect("four bytes")) as usize;
            row[at + 4..at + 4 + len].to_vec()
        };
        for row in self.due(store, EXPIRY, horizon)? {
            let key = key_at(&row, 9);
            let valid_from = time_of(&row[13 + key.len()..]);
            store.delete(&Self::history_key(&key, valid_from))?;
            store.delete(&row)?;
        }
        for row in self.due(store, TOMBSTONE_EXPIRY, horizon)? {
            let (key, time) = (key_at(&row, 9), time_of(&row[1..9]));
            if let Some((newest, None)) = Self::latest(store, &key)?
                && newest == time
            {
                store.delete(&[&[LATEST][..], &key].concat())?;
            }
            store.delete(&row)?;
        }
        self.expired_through = Some(horizon);
        Ok(())
    }

    /// Writes `value` (`None`: a tombstone) as the key's version from `time`; returns when that version
    /// ends ([`PUT_RETURN_CODE_VALID_TO_UNDEFINED`] for the newest), or [`PUT_RETURN_CODE_NOT_PUT`] for a
    /// time older than the history retention allows.
    pub(crate) fn put(
        &mut self,
        store: &mut dyn KeyValueStore,
        key: &[u8],
        value: Option<&[u8]>,
        time: i64,
    ) -> Result<i64, StreamsError> {
        self.load(store)?;
        if let Some(horizon) = self.horizon()
            && time < horizon
        {
            tracing::warn!(target: "kstreams::store", time, horizon, "skipping a write to a versioned store older than its history retention allows");
            return Ok(PUT_RETURN_CODE_NOT_PUT);
        }
        if self.observed.is_none_or(|o| time > o) {
            self.observed = Some(time);
            store.put(&[OBSERVED], &time_bytes(time))?;
            self.expire(store)?;
        }
        let valid_to = match Self::latest(store, key)? {
            None => {
                Self::write_latest(store, key, time, value)?;
                PUT_RETURN_CODE_VALID_TO_UNDEFINED
            }
            Some((newest, old)) if time > newest => {
                Self::write_history(store, key, newest, time, old.as_deref())?;
                Self::write_latest(store, key, time, value)?;
                PUT_RETURN_CODE_VALID_TO_UNDEFINED
            }
            Some((newest, _)) if time == newest => {
                Self::write_latest(store, key, time, value)?;
                PUT_RETURN_CODE_VALID_TO_UNDEFINED
            }
            Some((newest, _)) => {
                let history = Self::history(store, key)?;
                match history.iter().rev().find(|(from, _, _)| *from <= time) {
                    Some(&(from, to, _)) if from == time => {
                        Self::write_history(store, key, from, to, value)?;
                        to
                    }
                    before => {
                        let to = history.iter().find(|(from, _, _)| *from > time).map_or(newest, |v| v.0);
                        if let Some((from, old_to, old)) = before {
                            store.delete(&Self::expiry_key(key, *from, *old_to))?;
                            Self::write_history(store, key, *from, time, old.as_deref())?;
                        }
                        Self::write_history(store, key, time, to, value)?;
                        to
                    }
                }
            }
        };
        Ok(valid_to)
    }

    /// The key's newest version, if it is a value.
    pub(crate) fn get(&mut self, store: &dyn KeyValueStore, key: &[u8]) -> Result<Option<Found>, StreamsError> {
        Ok(match Self::latest(store, key)? {
            Some((time, Some(value))) => Some((Some(value), time, None)),
            _ => None,
        })
    }

    /// The key's version at `as_of`, if it is a value. Older than the history retention allows, only
    /// the newest version can answer (Kafka Streams' rule).
    pub(crate) fn get_as_of(
        &mut self,
        store: &dyn KeyValueStore,
        key: &[u8],
        as_of: i64,
    ) -> Result<Option<Found>, StreamsError> {
        self.load(store)?;
        let latest = Self::latest(store, key)?;
        if let Some((time, value)) = &latest
            && *time <= as_of
        {
            return Ok(value.clone().map(|v| (Some(v), *time, None)));
        }
        if self.horizon().is_some_and(|h| as_of < h) {
            return Ok(None);
        }
        let history = Self::history(store, key)?;
        Ok(match history.into_iter().rev().find(|(from, _, _)| *from <= as_of) {
            Some((from, to, Some(value))) if as_of < to => Some((Some(value), from, Some(to))),
            _ => None,
        })
    }
}

/// A versioned key-value store seen through serdes (Kafka Streams' `VersionedKeyValueStore`): made by
/// [`Stores::versioned_key_value_store_builder`](crate::store::Stores::versioned_key_value_store_builder)
/// over [`Stores::persistent_versioned_key_value_store`](crate::store::Stores::persistent_versioned_key_value_store),
/// reached by a processor with
/// [`ProcessingContext::versioned_store`](crate::processor::ProcessingContext::versioned_store).
///
/// Writes older than the newest timestamp written minus the history retention are refused
/// ([`PUT_RETURN_CODE_NOT_PUT`]); lookups that old see only the newest version. Unlike Kafka Streams,
/// whose typed store drops it, a version found in the history says when it ended (`valid_to`).
pub struct VersionedKeyValueStore<K, V> {
    name: Arc<str>,
    inner: Box<dyn KeyValueStore>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    rows: VersionRows,
    key_buf: Vec<u8>,
}

impl<K: 'static, V: 'static> VersionedKeyValueStore<K, V> {
    pub(crate) fn new(
        inner: Box<dyn KeyValueStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        history_retention_ms: i64,
    ) -> Self {
        VersionedKeyValueStore {
            name: inner.name().into(),
            inner,
            key_serde,
            value_serde,
            rows: VersionRows::new(history_retention_ms),
            key_buf: Vec::new(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long older versions are kept, in milliseconds.
    pub fn history_retention_ms(&self) -> i64 {
        self.rows.history_retention_ms
    }

    fn encode_key(&mut self, key: &K) -> Result<(), StreamsError> {
        self.key_buf.clear();
        encode(&*self.key_serde, &self.name, key, &mut self.key_buf)
    }

    fn record(&self, found: Option<Found>) -> Result<Option<VersionedRecord<V>>, StreamsError> {
        let Some((Some(bytes), timestamp, valid_to)) = found else { return Ok(None) };
        let value = decode(&*self.value_serde, &self.name, RecordPart::Value, &bytes)?;
        Ok(Some(VersionedRecord { value, timestamp, valid_to }))
    }

    /// Adds `value` (`None`: a delete) as the key's version from `timestamp`. Returns when the new version
    /// ends: the timestamp of the next newer version, or [`PUT_RETURN_CODE_VALID_TO_UNDEFINED`] if it is
    /// the newest; [`PUT_RETURN_CODE_NOT_PUT`] if `timestamp` is older than the history retention allows
    /// (nothing is written).
    pub fn put(&mut self, key: &K, value: Option<&V>, timestamp: i64) -> Result<i64, StreamsError> {
        self.encode_key(key)?;
        let mut bytes = Vec::new();
        let value = match value {
            Some(v) => {
                encode(&*self.value_serde, &self.name, v, &mut bytes)?;
                Some(&bytes[..])
            }
            None => None,
        };
        self.rows.put(&mut *self.inner, &self.key_buf, value, timestamp)
    }

    /// Deletes the key as of `timestamp` (a tombstone version); returns the version that was valid then,
    /// if any. Older than the history retention allows, nothing happens and `None` is returned.
    pub fn delete(&mut self, key: &K, timestamp: i64) -> Result<Option<VersionedRecord<V>>, StreamsError> {
        let existing = self.get_as_of(key, timestamp)?;
        match self.put(key, None, timestamp)? {
            PUT_RETURN_CODE_NOT_PUT => Ok(None),
            _ => Ok(existing),
        }
    }

    /// The key's newest version, if it is a value.
    pub fn get(&mut self, key: &K) -> Result<Option<VersionedRecord<V>>, StreamsError> {
        self.encode_key(key)?;
        let found = self.rows.get(&*self.inner, &self.key_buf)?;
        self.record(found)
    }

    /// The key's version at `as_of` (the newest one that began at or before it), if it is a value (Kafka
    /// Streams' `get(key, asOfTimestamp)`).
    pub fn get_as_of(&mut self, key: &K, as_of: i64) -> Result<Option<VersionedRecord<V>>, StreamsError> {
        self.encode_key(key)?;
        let found = self.rows.get_as_of(&*self.inner, &self.key_buf, as_of)?;
        self.record(found)
    }
}

super::typed::erased_store!(VersionedKeyValueStore, "a versioned key-value store of ");

#[cfg(test)]
mod tests {
    use super::*;
    use state_store::{InMemoryKeyValueStore, ReadOnlyKeyValueStore};

    fn rows(history: i64) -> (VersionRows, InMemoryKeyValueStore) {
        (VersionRows::new(history), InMemoryKeyValueStore::new("v".to_string()))
    }

    fn at(r: &mut VersionRows, s: &InMemoryKeyValueStore, as_of: i64) -> Option<(String, i64, Option<i64>)> {
        r.get_as_of(s, b"k", as_of).unwrap().map(|(v, from, to)| (String::from_utf8(v.unwrap()).unwrap(), from, to))
    }

    /// Kafka Streams' `RocksDBVersionedStore` semantics: versions in and out of order, a tombstone, the
    /// return codes, lookups across versions.
    #[test]
    fn versions_answer_lookups_at_any_time_within_the_history() {
        let (mut r, mut s) = rows(100);
        assert_eq!(r.put(&mut s, b"k", Some(b"a"), 10).unwrap(), PUT_RETURN_CODE_VALID_TO_UNDEFINED);
        assert_eq!(r.put(&mut s, b"k", Some(b"c"), 30).unwrap(), PUT_RETURN_CODE_VALID_TO_UNDEFINED);
        // Out of order: ends where the next version begins.
        assert_eq!(r.put(&mut s, b"k", Some(b"b"), 20).unwrap(), 30);
        assert_eq!(r.put(&mut s, b"k", None, 40).unwrap(), PUT_RETURN_CODE_VALID_TO_UNDEFINED);
        assert_eq!(at(&mut r, &s, 5), None);
        assert_eq!(at(&mut r, &s, 10), Some(("a".into(), 10, Some(20))));
        assert_eq!(at(&mut r, &s, 25), Some(("b".into(), 20, Some(30))));
        assert_eq!(at(&mut r, &s, 39), Some(("c".into(), 30, Some(40))));
        assert_eq!(at(&mut r, &s, 45), None, "deleted at 40");
        assert_eq!(r.get(&s, b"k").unwrap(), None);
        // Replacing a version at its own time keeps its end.
        assert_eq!(r.put(&mut s, b"k", Some(b"B"), 20).unwrap(), 30);
        assert_eq!(at(&mut r, &s, 25), Some(("B".into(), 20, Some(30))));
        assert_eq!(r.put(&mut s, b"k", Some(b"d"), 50).unwrap(), PUT_RETURN_CODE_VALID_TO_UNDEFINED);
        assert_eq!(r.get(&s, b"k").unwrap(), Some((Some(b"d".to_vec()), 50, None)));
    }

    /// Older than the observed time minus the history: writes refused, lookups see only the newest
    /// version, and older versions that ended by then are gone from the rows.
    #[test]
    fn the_history_retention_bounds_writes_lookups_and_rows() {
        let (mut r, mut s) = rows(100);
        r.put(&mut s, b"k", Some(b"a"), 0).unwrap();
        r.put(&mut s, b"k", Some(b"b"), 50).unwrap();
        r.put(&mut s, b"other", Some(b"x"), 300).unwrap();
        assert_eq!(r.put(&mut s, b"k", Some(b"late"), 199).unwrap(), PUT_RETURN_CODE_NOT_PUT);
        assert_eq!(r.put(&mut s, b"k", Some(b"in time"), 200).unwrap(), PUT_RETURN_CODE_VALID_TO_UNDEFINED);
        assert_eq!(at(&mut r, &s, 100), None, "expired lookup, the newest began later");
        assert_eq!(at(&mut r, &s, 250), Some(("in time".into(), 200, None)));
        let history_rows = s.prefix_scan(&[HISTORY]).unwrap().count();
        assert_eq!(history_rows, 1, "a (0..50) expired at the put at 300; b (50..200) goes at the next advance");
        // A restart reads the observed time back.
        let mut restarted = VersionRows::new(100);
        assert_eq!(restarted.put(&mut s, b"k", Some(b"late"), 150).unwrap(), PUT_RETURN_CODE_NOT_PUT);
    }

    /// A key whose newest version is a tombstone leaves no row behind once that tombstone is older than
    /// the history retention reaches, and behaves as before: no value at any time still in reach.
    #[test]
    fn a_newest_tombstone_expires_with_the_history() {
        let (mut r, mut s) = rows(100);
        r.put(&mut s, b"k", Some(b"a"), 10).unwrap();
        r.put(&mut s, b"k", None, 20).unwrap();
        r.put(&mut s, b"gone", None, 30).unwrap(); // a delete of a key that never had a value
        r.put(&mut s, b"other", Some(b"x"), 200).unwrap();
        let keys: Vec<Vec<u8>> = s.all().unwrap().map(|row| row.unwrap().0).collect();
        assert!(!keys.iter().any(|k| k.ends_with(b"k") || k.ends_with(b"gone")), "{keys:?}");
        assert_eq!(at(&mut r, &s, 150), None);
        assert_eq!(r.put(&mut s, b"k", Some(b"b"), 150).unwrap(), PUT_RETURN_CODE_VALID_TO_UNDEFINED);
        assert_eq!(at(&mut r, &s, 160), Some(("b".into(), 150, None)));
    }
}
