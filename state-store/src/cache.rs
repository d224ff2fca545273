//! The record cache in front of a store: the type below says how it works.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use crate::record_cache::{CacheBudget, RecordCache};
use crate::store::{empty_range, prefix_successor, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
use crate::transactional::Merge;
use crate::StoreError;

/// A record cache in front of `inner`.
///
/// The record cache in front of a store (`statestore.cache.max.bytes`), for stores that processors
/// write directly (the Processor API). DSL aggregations cache one level up, in the processor, because
/// they also forward what leaves the cache; this layer only saves the store, and its changelog, the writes
/// that a later write of the same key makes pointless.
///
/// Writes stay in the cache until the commit ([`StateStore::flush_cache`], which the runtime calls before
/// it flushes the producer, or [`StateStore::commit`]) writes them all to the store below in one batch,
/// or until the budget, shared by every cache of a stream thread, runs over and the oldest entries of
/// this cache are written out one by one. Reads see the cache first, merged in key order with
/// the store below for scans. Closing without a commit, or an abort, drops what the cache held, like
/// any write the commit did not cover.
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
    /// The latest write per key, `None` for a delete, oldest first (the crate's one record cache).
    cache: RecordCache<Option<Vec<u8>>>,
    /// The cached keys in key order, for scans merged with the store below and for writing the cache
    /// out in key order. It changes only when a key enters or leaves the cache, so a write of a cached
    /// key costs one hash look-up.
    keys: BTreeSet<Vec<u8>>,
}

impl<S> std::fmt::Debug for CachingKeyValueStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKeyValueStore").field("cache", &self.cache).finish()
    }
}

impl<S: KeyValueStore> CachingKeyValueStore<S> {
    /// A cache in front of `inner`, holding what `budget` allows.
    pub fn new(inner: S, budget: Arc<CacheBudget>) -> Self {
        CachingKeyValueStore { inner, budget, cache: RecordCache::default(), keys: BTreeSet::new() }
    }

    /// The store below.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn cache(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        if !self.inner.is_open() {
            return Err(StoreError::Closed { store: self.inner.name().to_string() });
        }
        // The key's copy in the index counts too.
        let payload = value.map_or(0, <[u8]>::len) + key.len();
        if self.cache.put(&self.budget, key, value.map(<[u8]>::to_vec), payload) {
            self.keys.insert(key.to_vec());
        }
        // Over the thread's budget: this cache writes out its oldest entries.
        while let Some((oldest, value)) = self.cache.evict_if_over(&self.budget) {
            self.keys.remove(&oldest);
            match value {
                Some(value) => self.inner.put(&oldest, &value)?,
                None => {
                    self.inner.delete(&oldest)?;
                }
            }
        }
        Ok(())
    }

    /// The cached entries whose keys are in `(from, to)`, in key order.
    fn cached_range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + use<'a, S> {
        let cache = &self.cache;
        self.keys.range::<[u8], _>((from, to)).map(move |k| (k, cache.get(k).expect("indexed keys are cached")))
    }

    /// Empties the cache and gives its memory back, dropping what it held.
    fn drop_all(&mut self) {
        self.cache.clear(&self.budget);
        self.keys.clear();
    }
}

impl<S> Drop for CachingKeyValueStore<S> {
    fn drop(&mut self) {
        self.cache.clear(&self.budget);
    }
}

impl<S: KeyValueStore> StateStore for CachingKeyValueStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Writes every cached entry to the store below in one batch (in key order).
    fn flush_cache(&mut self) -> Result<(), StoreError> {
        if !self.cache.is_empty() {
            let cache = &self.cache;
            let batch: Vec<(&[u8], Option<&[u8]>)> = (self.keys.iter())
                .map(|k| (k.as_slice(), cache.get(k).expect("indexed keys are cached").as_deref()))
                .collect();
            let written = self.inner.write_batch(&batch);
            self.drop_all();
            written?;
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
        self.drop_all();
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
        self.drop_all();
        self.inner.discard_uncommitted()
    }

    fn uncommitted_bytes(&self) -> usize {
        self.inner.uncommitted_bytes()
    }

    fn property(&self, name: &str) -> Option<u64> {
        self.inner.property(name)
    }

    fn observed_stream_time(&self) -> Option<i64> {
        self.inner.observed_stream_time()
    }

    fn set_committed_stream_time(&mut self, time: Option<i64>) {
        self.inner.set_committed_stream_time(time)
    }
}

impl<S: KeyValueStore> ReadOnlyKeyValueStore for CachingKeyValueStore<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.cache.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.inner.get(key),
        }
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        let below = self.inner.range(from, to)?;
        if empty_range(from, to) {
            return Ok(below);
        }
        Ok(Box::new(Merge::new(below, self.cached_range(from, to))))
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        let below = self.inner.prefix_scan(prefix)?;
        let end = prefix_successor(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        Ok(Box::new(Merge::new(below, self.cached_range(Bound::Included(prefix), upper))))
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        let added = self.cache.values().filter(|v| v.is_some()).count() as u64;
        Ok(self.inner.approximate_num_entries()? + added)
    }

    /// The store below's: where a layer below holds writes until the commit, what the cache holds is
    /// not committed either; where none does (at-least-once), reads through the cache are the view, as
    /// in Kafka Streams.
    fn committed(&self) -> Option<&dyn ReadOnlyKeyValueStore> {
        self.inner.committed()
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
