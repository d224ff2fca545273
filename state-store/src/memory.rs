//! An in-memory key-value store: a `BTreeMap` behind the store traits.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::store::{empty_range, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
use crate::StoreError;

/// A `BTreeMap<Vec<u8>, Vec<u8>>` behind the store traits; contents are lost on restart.
///
/// ```
/// use std::ops::Bound;
/// use state_store::{InMemoryKeyValueStore, KeyValueStore, ReadOnlyKeyValueStore};
///
/// let mut store = InMemoryKeyValueStore::new("counts");
/// store.put(b"apple", b"3")?;
/// store.put(b"banana", b"5")?;
/// assert_eq!(store.get(b"apple")?, Some(b"3".to_vec()));
/// let keys: Vec<Vec<u8>> = store
///     .range(Bound::Included(&b"a"[..]), Bound::Excluded(&b"b"[..]))?
///     .map(|kv| kv.map(|(k, _)| k))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(keys, vec![b"apple".to_vec()]);
/// # Ok::<(), state_store::StoreError>(())
/// ```
#[derive(Debug)]
pub struct InMemoryKeyValueStore {
    name: String,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    open: bool,
}

impl InMemoryKeyValueStore {
    /// An empty, open store.
    pub fn new(name: impl Into<String>) -> Self {
        InMemoryKeyValueStore { name: name.into(), map: BTreeMap::new(), open: true }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.open {
            Ok(())
        } else {
            Err(StoreError::Closed { store: self.name.clone() })
        }
    }
}

impl StateStore for InMemoryKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.check()
    }
    fn close(&mut self) -> Result<(), StoreError> {
        self.open = false;
        Ok(())
    }
    fn persistent(&self) -> bool {
        false
    }
    fn is_open(&self) -> bool {
        self.open
    }
}

impl ReadOnlyKeyValueStore for InMemoryKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.map.get(key).cloned())
    }
    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        self.check()?;
        if empty_range(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let (lo, hi) = (from.map(<[u8]>::to_vec), to.map(<[u8]>::to_vec));
        Ok(Box::new(self.map.range((lo, hi)).map(|(k, v)| Ok((k.clone(), v.clone())))))
    }
    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        self.check()?;
        let prefix = prefix.to_vec();
        Ok(Box::new(
            self.map
                .range((Bound::Included(prefix.clone()), Bound::Unbounded))
                .take_while(move |(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| Ok((k.clone(), v.clone()))),
        ))
    }
    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.check()?;
        Ok(self.map.len() as u64)
    }
}

impl KeyValueStore for InMemoryKeyValueStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.check()?;
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.map.remove(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(iter: KeyValueIterator<'_>) -> Vec<Vec<u8>> {
        iter.map(|kv| kv.unwrap().0).collect()
    }

    fn store() -> InMemoryKeyValueStore {
        let mut s = InMemoryKeyValueStore::new("s");
        for k in [&[0x00][..], &[0x7f], &[0x80], &[0xff], &[0xff, 0x00], &[0xff, 0xff], b"ab", b"ac"] {
            s.put(k, b"v").unwrap();
        }
        s
    }

    #[test]
    fn memory_store_orders_by_unsigned_key_bytes() {
        let s = store();
        let all = keys(s.all().unwrap());
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        let at = |k: &[u8]| all.iter().position(|x| x == k).unwrap();
        assert_eq!(at(&[0x80]), at(&[0x7f]) + 1, "0x80 sorts right after 0x7f: bytes are unsigned");
        assert_eq!(s.approximate_num_entries().unwrap(), 8);
    }

    #[test]
    fn memory_store_ranges_and_prefixes_handle_edges() {
        let s = store();
        let range = |from, to| keys(s.range(from, to).unwrap());
        assert_eq!(range(Bound::Included(&b"ab"[..]), Bound::Included(&b"ac"[..])).len(), 2);
        assert_eq!(range(Bound::Excluded(&b"ab"[..]), Bound::Excluded(&b"ac"[..])).len(), 0);
        assert!(
            range(Bound::Included(&[0x80][..]), Bound::Included(&[0x00][..])).is_empty(),
            "inverted: empty, no panic"
        );
        assert!(range(Bound::Excluded(&[0x80][..]), Bound::Excluded(&[0x80][..])).is_empty());
        assert_eq!(keys(s.prefix_scan(&[0xff]).unwrap()), vec![vec![0xff], vec![0xff, 0x00], vec![0xff, 0xff]]);
        assert_eq!(keys(s.prefix_scan(&[]).unwrap()).len(), 8);
        assert_eq!(keys(s.prefix_scan(b"a").unwrap()).len(), 2);
    }

    #[test]
    fn memory_store_writes_and_closing() {
        let mut s = InMemoryKeyValueStore::new("counts");
        assert_eq!(s.put_if_absent(b"k", b"1").unwrap(), None);
        assert_eq!(s.put_if_absent(b"k", b"2").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.delete(b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.delete(b"k").unwrap(), None);
        s.close().unwrap();
        let err = s.get(b"k").unwrap_err();
        assert_eq!(err.to_string(), "state store `counts` is closed");
        assert_eq!(err.store(), "counts");
    }
}
