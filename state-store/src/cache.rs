//! The record cache in front of a store (`statestore.cache.max.bytes`), for stores that processors
//! write directly (the Processor API). DSL aggregations cache one level up, in the processor, because
//! they also forward what leaves the cache; this layer only saves the store, and its changelog, the writes
//! that a later write of the same key makes pointless.
//!
//! Writes stay in the cache until the commit ([`StateStore::flush_cache`], which the runtime calls before
//! it flushes the producer, or [`StateStore::commit`]) writes them all to the store below in one batch,
//! or until the budget, shared by every cache of a stream thread, runs over and the oldest entries of
//! this cache are written out one by one. Reads see the cache first, merged in key order with
//! the store below for scans. Closing without a commit, or an abort, drops what the cache held, like
//! any write the commit did not cover.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::store::{empty_range, prefix_successor, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
use crate::transactional::Merge;
use crate::StoreError;

/// Bookkeeping counted per entry on top of key and value bytes.
const ENTRY_OVERHEAD: usize = 96;

/// The cache memory shared by the caches of one stream thread's tasks (its share of
/// `statestore.cache.max.bytes`). Sizes are estimates of what the entries hold.
#[derive(Debug, Default)]
pub struct CacheBudget {
    max: usize,
    used: AtomicUsize,
}

impl CacheBudget {
    /// A budget of `max` bytes; 0 turns caching off.
    pub fn new(max: usize) -> Self {
        CacheBudget { max, used: AtomicUsize::new(0) }
    }

    /// Whether caching is on at all.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Whether the caches sharing this budget hold more than it allows.
    pub fn over(&self) -> bool {
        self.used() > self.max
    }

    /// Bytes the caches hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A cache took `bytes` more.
    pub fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A cache gave `bytes` back.
    pub fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

struct Entry {
    /// The latest value, or `None` for a delete.
    value: Option<Vec<u8>>,
    /// Age: the sequence number of the entry's last write.
    seq: u64,
    size: usize,
}

/// A record cache in front of `inner`; see the [module documentation](self).
///
/// ```
/// use std::sync::Arc;
/// use state_store::{CacheBudget, CachingKeyValueStore, InMemoryKeyValueStore, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
///
/// let budget = Arc::new(CacheBudget::new(1 << 20));
/// let mut store = CachingKeyValueStore::new(InMemoryKeyValueStore::new("s"), budget);
/// store.put(b"a", b"1")?;
/// store.put(b"a", b"2")?; // replaces the cached write: the store below sees one write
/// assert_eq!(store.inner().get(b"a")?, None);
/// store.commit()?;
/// assert_eq!(store.inner().get(b"a")?, Some(b"2".to_vec()));
/// # Ok::<(), state_store::StoreError>(())
/// ```
pub struct CachingKeyValueStore<S> {
    inner: S,
    budget: Arc<CacheBudget>,
    /// Cached writes by key (ordered, for scans).
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Age order: sequence number -> key.
    order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    /// Bytes this cache holds of the budget.
    held: usize,
}

impl<S> std::fmt::Debug for CachingKeyValueStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKeyValueStore").field("entries", &self.entries.len()).field("held", &self.held).finish()
    }
}

impl<S: KeyValueStore> CachingKeyValueStore<S> {
    /// A cache in front of `inner`, holding what `budget` allows.
    pub fn new(inner: S, budget: Arc<CacheBudget>) -> Self {
        CachingKeyValueStore { inner, budget, entries: BTreeMap::new(), order: BTreeMap::new(), next_seq: 0, held: 0 }
    }

    /// The store below.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn cache(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        if !self.inner.is_open() {
            return Err(StoreError::Closed { store: self.inner.name().to_string() });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let size = key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        if let Some(old) = self.entries.insert(key.to_vec(), Entry { value: value.map(<[u8]>::to_vec), seq, size }) {
            self.order.remove(&old.seq);
            self.release(old.size);
        }
        self.order.insert(seq, key.to_vec());
        self.held += size;
        self.budget.take(size);
        // Over the thread's budget: this cache writes out its oldest entries.
        while self.budget.over() {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            let entry = self.entries.remove(&oldest).expect("ordered entries are cached");
            self.release(entry.size);
            match entry.value {
                Some(value) => self.inner.put(&oldest, &value)?,
                None => {
                    self.inner.delete(&oldest)?;
                }
            }
        }
        Ok(())
    }

    fn release(&mut self, size: usize) {
        self.held -= size;
        self.budget.give_back(size);
    }

    /// Empties the cache and gives its memory back; returns what it held.
    fn take_all(&mut self) -> BTreeMap<Vec<u8>, Entry> {
        self.order.clear();
        self.budget.give_back(self.held);
        self.held = 0;
        std::mem::take(&mut self.entries)
    }
}

impl<S> Drop for CachingKeyValueStore<S> {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

impl<S: KeyValueStore> StateStore for CachingKeyValueStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Writes every cached entry to the store below in one batch (in key order).
    fn flush_cache(&mut self) -> Result<(), StoreError> {
        if !self.entries.is_empty() {
            let entries = self.take_all();
            let batch: Vec<(&[u8], Option<&[u8]>)> =
                entries.iter().map(|(k, e)| (k.as_slice(), e.value.as_deref())).collect();
            self.inner.write_batch(&batch)?;
        }
        self.inner.flush_cache()
    }

    /// Writes the cache out (if the runtime has not already), then commits the store below.
    fn commit(&mut self) -> Result<(), StoreError> {
        self.flush_cache()?;
        self.inner.commit()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.commit()?;
        self.inner.flush()
    }

    /// Closes without writing the cache out: what the last commit did not cover is dropped.
    fn close(&mut self) -> Result<(), StoreError> {
        self.take_all();
        self.inner.close()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    fn begin_restore(&mut self) -> Result<(), StoreError> {
        self.inner.begin_restore()
    }

    fn end_restore(&mut self) -> Result<(), StoreError> {
        self.inner.end_restore()
    }

    fn discard_uncommitted(&mut self) -> Result<(), StoreError> {
        self.take_all();
        self.inner.discard_uncommitted()
    }

    fn uncommitted_bytes(&self) -> usize {
        self.inner.uncommitted_bytes()
    }
}

impl<S: KeyValueStore> ReadOnlyKeyValueStore for CachingKeyValueStore<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entries.get(key) {
            Some(entry) => Ok(entry.value.clone()),
            None => self.inner.get(key),
        }
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        let below = self.inner.range(from, to)?;
        if empty_range(from, to) {
            return Ok(below);
        }
        let cached = self.entries.range::<[u8], _>((from, to)).map(|(k, e)| (k, &e.value));
        Ok(Box::new(Merge::new(below, cached)))
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        let below = self.inner.prefix_scan(prefix)?;
        let end = prefix_successor(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let cached = self.entries.range::<[u8], _>((Bound::Included(prefix), upper)).map(|(k, e)| (k, &e.value));
        Ok(Box::new(Merge::new(below, cached)))
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        let added = self.entries.values().filter(|e| e.value.is_some()).count() as u64;
        Ok(self.inner.approximate_num_entries()? + added)
    }
}

impl<S: KeyValueStore> KeyValueStore for CachingKeyValueStore<S> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.cache(key, Some(value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(key)?;
        self.cache(key, None)?;
        Ok(old)
    }

    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        for (key, value) in entries {
            self.cache(key, *value)?;
        }
        Ok(())
    }

    /// Replayed changelog records go straight to the store below (nothing is cached while restoring).
    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.inner.restore_batch(entries)
    }
}
