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
        self.key_serde.serialize(&self.name, key, &mut self.key_buf).map_err(|source| StreamsError::Serialization {
            node: "(store)".into(),
            target: self.name.to_string(),
            source,
        })
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
        self.value_serde.serialize(&self.name, value, &mut self.value_buf).map_err(|source| {
            StreamsError::Serialization { node: "(store)".into(), target: self.name.to_string(), source }
        })?;
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
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_, StreamsError> {
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
    ) -> Result<impl Iterator<Item = Result<(K, V), StreamsError>> + '_, StreamsError> {
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
}

fn decode<T: 'static>(serde: &dyn Serde<T>, store: &str, part: RecordPart, bytes: &[u8]) -> Result<T, StreamsError> {
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

impl<K: 'static, V: 'static> ErasedStore for TypedKeyValueStore<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn bytes(&self) -> &dyn KeyValueStore {
        &*self.inner
    }

    fn bytes_mut(&mut self) -> &mut dyn KeyValueStore {
        &mut *self.inner
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn type_names(&self) -> String {
        format!("{}, {}", std::any::type_name::<K>(), std::any::type_name::<V>())
    }
}

impl dyn ErasedStore {
    pub(crate) fn is<K: 'static, V: 'static>(&self) -> bool {
        self.as_any().is::<TypedKeyValueStore<K, V>>()
    }

    pub(crate) fn downcast_mut<K: 'static, V: 'static>(&mut self) -> Option<&mut TypedKeyValueStore<K, V>> {
        self.as_any_mut().downcast_mut::<TypedKeyValueStore<K, V>>()
    }
}
