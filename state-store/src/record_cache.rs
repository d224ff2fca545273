//! The record cache's core, one for every cache of the library: the DSL's aggregations keep their
//! pending aggregates in it, and [`CachingKeyValueStore`](crate::CachingKeyValueStore) its pending
//! writes. It keeps the latest entry per serialized key in age order, and counts what it holds against
//! the [`CacheBudget`] a stream thread's caches share (`statestore.cache.max.bytes`).
//!
//! A linked hash map does an update in one hash look-up and moves the key to the young end in O(1); the
//! design it replaced (a map by key plus a `BTreeMap` of ages) took two tree operations and a key copy
//! per update, a quarter of a DSL count's CPU. Key order, which scans need, is not kept here: a user
//! that scans keeps its own index of the keys (see `CachingKeyValueStore`).

use std::sync::atomic::{AtomicUsize, Ordering};

use hashlink::LinkedHashMap;

/// Bookkeeping counted per entry on top of the key bytes and the entry's own size.
pub const ENTRY_OVERHEAD: usize = 96;

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
    fn over(&self) -> bool {
        self.used() > self.max
    }

    /// Bytes the caches hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A cache took `bytes` more.
    fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A cache gave `bytes` back.
    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

struct Slot<V> {
    value: V,
    size: usize,
}

/// The latest `V` per serialized key, oldest first: writing a key makes it the youngest.
pub struct RecordCache<V> {
    entries: LinkedHashMap<Vec<u8>, Slot<V>>,
    /// Bytes this cache holds of the budget.
    held: usize,
}

impl<V> Default for RecordCache<V> {
    fn default() -> Self {
        RecordCache { entries: LinkedHashMap::new(), held: 0 }
    }
}

impl<V> std::fmt::Debug for RecordCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache").field("entries", &self.entries.len()).field("held", &self.held).finish()
    }
}

impl<V> RecordCache<V> {
    /// The cached entry of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.entries.get(key).map(|slot| &slot.value)
    }

    /// Caches `value` as the latest entry of `key`, making it the youngest; `payload` is what the value
    /// holds in bytes (the key and [`ENTRY_OVERHEAD`] are added). Returns whether the key is new to the
    /// cache. The key is copied only when it is new.
    pub fn put<K>(&mut self, budget: &CacheBudget, key: K, value: V, payload: usize) -> bool
    where
        K: AsRef<[u8]> + Into<Vec<u8>>,
    {
        let size = key.as_ref().len() + payload + ENTRY_OVERHEAD;
        let new = match self.entries.to_back(key.as_ref()) {
            Some(slot) => {
                let old = std::mem::replace(slot, Slot { value, size });
                self.held -= old.size;
                budget.give_back(old.size);
                false
            }
            None => {
                self.entries.insert(key.into(), Slot { value, size });
                true
            }
        };
        self.held += size;
        budget.take(size);
        new
    }

    /// Takes the oldest entry out, if the caches sharing `budget` hold more than it allows.
    pub fn evict_if_over(&mut self, budget: &CacheBudget) -> Option<(Vec<u8>, V)> {
        if !budget.over() {
            return None;
        }
        let (key, slot) = self.entries.pop_front()?;
        self.release(budget, slot.size);
        Some((key, slot.value))
    }

    /// Takes every entry out, oldest first, and gives the memory back.
    pub fn drain(&mut self, budget: &CacheBudget) -> impl Iterator<Item = (Vec<u8>, V)> + use<'_, V> {
        budget.give_back(self.held);
        self.held = 0;
        self.entries.drain().map(|(key, slot)| (key, slot.value))
    }

    /// Drops every entry unwritten and gives the memory back (a close or an abort).
    pub fn clear(&mut self, budget: &CacheBudget) {
        budget.give_back(self.held);
        self.held = 0;
        self.entries.clear();
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached entries, oldest first.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|slot| &slot.value)
    }

    fn release(&mut self, budget: &CacheBudget, size: usize) {
        self.held -= size;
        budget.give_back(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_latest_entry_per_key_and_evicts_the_oldest_over_budget() {
        let budget = CacheBudget::new(2 * (1 + 8 + ENTRY_OVERHEAD));
        let mut cache: RecordCache<i64> = RecordCache::default();
        assert!(cache.put(&budget, b"a".to_vec(), 1, 8));
        assert!(cache.put(&budget, &b"b"[..], 1, 8));
        assert!(!cache.put(&budget, &b"a"[..], 2, 8), "a is now the youngest, and deduplicated");
        assert!(cache.evict_if_over(&budget).is_none(), "two entries fit");
        assert_eq!(cache.get(b"a"), Some(&2));
        cache.put(&budget, &b"c"[..], 1, 8);
        let (evicted, _) = cache.evict_if_over(&budget).expect("over budget");
        assert_eq!(evicted, b"b", "the oldest goes first");
        assert!(cache.evict_if_over(&budget).is_none());
        let rest: Vec<Vec<u8>> = cache.drain(&budget).map(|(k, _)| k).collect();
        assert_eq!(rest, vec![b"a".to_vec(), b"c".to_vec()]);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn clear_gives_the_memory_back() {
        let budget = CacheBudget::new(1 << 20);
        let mut cache: RecordCache<()> = RecordCache::default();
        cache.put(&budget, &b"a"[..], (), 10);
        cache.put(&budget, &b"b"[..], (), 10);
        assert_eq!(budget.used(), 2 * (1 + 10 + ENTRY_OVERHEAD));
        cache.clear(&budget);
        assert!(cache.is_empty());
        assert_eq!(budget.used(), 0);
    }
}
