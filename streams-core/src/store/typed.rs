//! The typed layer processors use: serializes keys and values and delegates to a byte store.

use std::any::Any;
use std::ops::Bound;
use std::sync::Arc;

use state_store::KeyValueStore;

use crate::record::RecordPart;
use crate::serde::Serde;
use crate::StreamsError;

/// A key-value store seen through serdes: `get(&K) -> Option<V>`. Ranges follow the order of the
/// serialized key bytes (true for big-endian non-negative integers and for UTF-8 strings), as in Kafka
/// Streams.
pub struct TypedKeyValueStore<K, V> {
    name: Arc<str>,
    inner: Box<dyn KeyValueStore>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl<K: 'static, V: 'static> TypedKeyValueStore<K, V> {
    pub(crate) fn new(
        inner: Box<dyn KeyValueStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TypedKeyValueStore {
            name: inner.name().into(),
            inner,
            key_serde,
            value_serde,
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn encode_key(&mut self, key: &K) -> Result<(), StreamsError> {
        self.key_buf.clear();
        encode(&*self.key_serde, &self.name, key, &mut self.key_buf)
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, StreamsError> {
        decode(&*self.value_serde, &self.name, RecordPart::Value, bytes)
    }

    /// The value for `key`.
    pub fn get(&mut self, key: &K) -> Result<Option<V>, StreamsError> {
        self.encode_key(key)?;
        match self.inner.get(&self.key_buf)? {
            Some(bytes) => self.decode_value(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`; a value its serde writes as null (`None` of an `Option`) deletes the key,
    /// as a `put(key, null)` does in Kafka Streams.
    pub fn put(&mut self, key: &K, value: &V) -> Result<(), StreamsError> {
        self.encode_key(key)?;
        if self.value_serde.is_null(value) {
            self.inner.delete(&self.key_buf)?;
            return Ok(());
        }
        self.value_buf.clear();
        encode(&*self.value_serde, &self.name, value, &mut self.value_buf)?;
        self.inner.put(&self.key_buf, &self.value_buf)?;
        Ok(())
    }

    /// Stores `value` unless `key` has one; returns the existing value (then nothing was written).
    pub fn put_if_absent(&mut self, key: &K, value: &V) -> Result<Option<V>, StreamsError> {
        if let Some(existing) = self.get(key)? {
            return Ok(Some(existing));
        }
        self.put(key, value)?;
        Ok(None)
    }

    /// Removes `key`, returning its value.
    pub fn delete(&mut self, key: &K) -> Result<Option<V>, StreamsError> {
        self.encode_key(key)?;
        match self.inner.delete(&self.key_buf)? {
            Some(bytes) => self.decode_value(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Records with `from <= key <= to` (both inclusive, as Kafka Streams' `range`), in key-byte order.
    /// Records are read as the iterator goes (nothing is collected first); one whose stored bytes the
    /// serdes cannot read comes as an error item naming the store.
    pub fn range(
        &mut self,
        from: &K,
        to: &K,
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_ + use<'_, K, V>, StreamsError> {
        self.encode_key(from)?;
        let from_bytes = std::mem::take(&mut self.key_buf);
        self.encode_key(to)?;
        let iter = self.inner.range(Bound::Included(&from_bytes), Bound::Included(&self.key_buf))?;
        self.key_buf = from_bytes;
        Ok(decoded(iter, &*self.key_serde, &*self.value_serde, &self.name))
    }

    /// Records whose serialized key starts with the serialized `prefix`, read as [`range`](Self::range)
    /// reads them.
    pub fn prefix_scan(
        &mut self,
        prefix: &K,
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_ + use<'_, K, V>, StreamsError> {
        self.encode_key(prefix)?;
        let iter = self.inner.prefix_scan(&self.key_buf)?;
        Ok(decoded(iter, &*self.key_serde, &*self.value_serde, &self.name))
    }

    /// Every record, in key-byte order, read as [`range`](Self::range) reads them.
    pub fn all(&self) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_, StreamsError> {
        Ok(decoded(self.inner.all()?, &*self.key_serde, &*self.value_serde, &self.name))
    }

    /// An estimate of the number of records.
    pub fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        Ok(self.inner.approximate_num_entries()?)
    }

    /// The records of one key in a store keyed `key ‖ suffix` (window and session stores): stored keys in
    /// `[key ‖ from, key ‖ to]` that are exactly this key's, with a suffix as long as `from` that passes
    /// `keep`, checked before anything is decoded. The byte range alone can take in other keys whose
    /// bytes begin with this key's.
    pub(crate) fn range_of_key<'a>(
        &'a self,
        key: &[u8],
        from: &[u8],
        to: &[u8],
        keep: impl Fn(&[u8]) -> bool + 'a,
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + 'a, StreamsError> {
        let (low, high) = ([key, from].concat(), [key, to].concat());
        let iter = self.inner.range(Bound::Included(&low), Bound::Included(&high))?;
        let (key, suffix_len) = (key.to_vec(), from.len());
        let kept = iter.filter(move |record| {
            record.as_ref().map_or(true, |(stored, _)| {
                stored.len() == key.len() + suffix_len && stored.starts_with(&key) && keep(&stored[key.len()..])
            })
        });
        Ok(decoded(Box::new(kept), &*self.key_serde, &*self.value_serde, &self.name))
    }

    /// Every record whose stored key ends in `suffix_len` bytes that pass `keep` (checked before anything
    /// is decoded), with its stored key: a window store's records of some window starts, whatever the key.
    pub(crate) fn all_with_suffix<'a>(
        &'a self,
        suffix_len: usize,
        keep: impl Fn(&[u8]) -> bool + 'a,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, K, V), StreamsError>> + 'a, StreamsError> {
        let kept = self.inner.all()?.filter(move |record| {
            record
                .as_ref()
                .map_or(true, |(stored, _)| stored.len() >= suffix_len && keep(&stored[stored.len() - suffix_len..]))
        });
        let (key_serde, value_serde, name) = (&*self.key_serde, &*self.value_serde, &self.name);
        Ok(kept.map(move |record| {
            let (stored, value) = record?;
            let key = decode(key_serde, name, RecordPart::Key, &stored)?;
            let value = decode(value_serde, name, RecordPart::Value, &value)?;
            Ok((stored, key, value))
        }))
    }

    /// The latest time the time-segmented store below has seen (see
    /// `state_store::StateStore::observed_stream_time`).
    pub(crate) fn observed_stream_time(&self) -> Option<i64> {
        self.inner.observed_stream_time()
    }

    /// The serdes it reads keys and values with, for a reader of its bytes (interactive queries).
    pub(crate) fn serdes(&self) -> (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) {
        (self.key_serde.clone(), self.value_serde.clone())
    }
}

/// Appends a key's or value's bytes for the store `store`.
pub(super) fn encode<T: 'static>(
    serde: &dyn Serde<T>,
    store: &str,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), StreamsError> {
    serde.serialize(store, value, out).map_err(|source| StreamsError::Serialization {
        node: "(store)".into(),
        target: store.to_string(),
        source,
    })
}

/// Reads a key or value the store `store` holds.
pub(crate) fn decode<T: 'static>(
    serde: &dyn Serde<T>,
    store: &str,
    part: RecordPart,
    bytes: &[u8],
) -> Result<T, StreamsError> {
    serde.deserialize(store, bytes).map_err(|source| StreamsError::StoreAccess {
        node: "(store)".into(),
        store: store.to_string(),
        reason: format!("stored {part} cannot be read: {source}"),
    })
}

fn decoded<'a, K: 'static, V: 'static>(
    iter: state_store::KeyValueIterator<'a>,
    key_serde: &'a dyn Serde<K>,
    value_serde: &'a dyn Serde<V>,
    store: &'a str,
) -> impl Iterator<Item = Result<(K, V), StreamsError>> + 'a {
    iter.map(move |kv| {
        let (k, v) = kv?;
        Ok((decode(key_serde, store, RecordPart::Key, &k)?, decode(value_serde, store, RecordPart::Value, &v)?))
    })
}

/// What a task needs of a store without knowing its types: its name, the byte store under it (for
/// commit, flush, close and restore, which work on bytes), and a checked downcast back to the typed
/// store.
pub(crate) trait ErasedStore: Send {
    fn name(&self) -> &str;
    fn bytes(&self) -> &dyn KeyValueStore;
    fn bytes_mut(&mut self) -> &mut dyn KeyValueStore;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
    fn type_names(&self) -> String;
}

/// Implements [`ErasedStore`] for a typed store `$store<K, V>` with `name` and `inner` fields; `$what`
/// starts the text that names its types in errors.
macro_rules! erased_store {
    ($store:ident, $what:literal) => {
        impl<K: 'static, V: 'static> $crate::store::typed::ErasedStore for $store<K, V> {
            fn name(&self) -> &str {
                &self.name
            }

            fn bytes(&self) -> &dyn state_store::KeyValueStore {
                &*self.inner
            }

            fn bytes_mut(&mut self) -> &mut dyn state_store::KeyValueStore {
                &mut *self.inner
            }

            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }

            fn as_any(&self) -> &dyn std::any::Any {
                self
            }

            fn type_names(&self) -> String {
                format!(concat!($what, "{}, {}"), std::any::type_name::<K>(), std::any::type_name::<V>())
            }
        }
    };
}
pub(super) use erased_store;

erased_store!(TypedKeyValueStore, "");

/// A key-value store to read, never to write: a global store as the processors of other tasks see it
/// ([`ProcessingContext::global_store`](crate::processor::ProcessingContext::global_store)), which only its
/// own processor writes (Kafka Streams' read-only decorator of a global store).
pub struct ReadOnlyKeyValueView<'a, K, V>(&'a mut TypedKeyValueStore<K, V>);

impl<'a, K: 'static, V: 'static> ReadOnlyKeyValueView<'a, K, V> {
    pub(crate) fn new(store: &'a mut TypedKeyValueStore<K, V>) -> Self {
        ReadOnlyKeyValueView(store)
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The value for `key`.
    pub fn get(&mut self, key: &K) -> Result<Option<V>, StreamsError> {
        self.0.get(key)
    }

    /// Records with `from <= key <= to`, as [`TypedKeyValueStore::range`] reads them.
    pub fn range(
        &mut self,
        from: &K,
        to: &K,
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_ + use<'_, K, V>, StreamsError> {
        self.0.range(from, to)
    }

    /// Records whose serialized key starts with the serialized `prefix`.
    pub fn prefix_scan(
        &mut self,
        prefix: &K,
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_ + use<'_, K, V>, StreamsError> {
        self.0.prefix_scan(prefix)
    }

    /// Every record, in key-byte order.
    pub fn all(&self) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_, StreamsError> {
        self.0.all()
    }

    /// An estimate of the number of records.
    pub fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        self.0.approximate_num_entries()
    }
}

impl dyn ErasedStore {
    /// Whether the store is an `S` (a [`TypedKeyValueStore`] or a window store of given types).
    pub(crate) fn is<S: 'static>(&self) -> bool {
        self.as_any().is::<S>()
    }

    pub(crate) fn downcast_mut<S: 'static>(&mut self) -> Option<&mut S> {
        self.as_any_mut().downcast_mut::<S>()
    }
}
