//! An in-memory key-value store: a `BTreeMap` behind the store traits.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::store::{KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
use crate::StoreError;

/// A `BTreeMap<Vec<u8>, Vec<u8>>` behind the store traits; contents are lost on restart.
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
        let (lo, hi) = (from.map(<[u8]>::to_vec), to.map(<[u8]>::to_vec));
        let empty = match (&lo, &hi) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) if a > b => true,
            (Bound::Excluded(a), Bound::Excluded(b)) if a == b => true,
            _ => false,
        };
        if empty {
            return Ok(Box::new(std::iter::empty()));
        }
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
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        if let Some(v) = self.map.get(key) {
            return Ok(Some(v.clone()));
        }
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(None)
    }
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.map.remove(key))
    }
}
