//! The record cache in front of a DSL aggregation's store (`statestore.cache.max.bytes`).
//!
//! An aggregation with caching on keeps the latest aggregate per key here instead of writing it to its
//! store and forwarding it at once. Many updates of one key between commits become one store write, one
//! changelog record and one record downstream. Entries leave the cache, oldest first, when the cache
//! is over its budget, and all of them at each commit. Leaving means: written to the store (and so to the
//! changelog), then forwarded downstream as a change from the store's previous value.
//!
//! The budget is shared by every cache of a stream thread's tasks (`statestore.cache.max.bytes` divided
//! by the number of threads), as in Kafka Streams. Each cache evicts its own oldest entries while the
//! thread's total is over the budget. Sizes are estimates: a key by its serialized bytes, a value by its
//! in-memory size, plus a fixed overhead per entry. With a budget of 0 nothing is cached and every update
//! goes through at once (the test driver runs so).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use state_store::RecordCache as Core;

use crate::processor::state::TaskState;
use crate::record::Headers;
use crate::sync::LockUnpoisoned;
use crate::StreamsError;

/// The cache memory shared by one stream thread's tasks: the DSL's caches and the Processor-API stores'
/// (`state_store::CachingKeyValueStore`) draw on the same budget.
pub(crate) use state_store::CacheBudget;

/// A pending aggregate: `None` deletes the key.
pub(crate) struct Pending<K, VA> {
    pub(crate) key: K,
    pub(crate) value: Option<VA>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Headers,
}

/// One aggregation's cached updates, by serialized key, oldest first: state-store's record cache (the
/// one the caching store uses too) holding typed updates.
pub(crate) struct RecordCache<K, VA> {
    core: Core<Pending<K, VA>>,
    /// The cached keys in byte order, for an aggregation that reads its store by range (sessions and
    /// sliding windows read a key's windows); `None` for one that reads by key only, which so pays no
    /// ordered insert per new key.
    keys: Option<BTreeSet<Vec<u8>>>,
}

impl<K, VA> Default for RecordCache<K, VA> {
    fn default() -> Self {
        RecordCache { core: Core::default(), keys: None }
    }
}

impl<K, VA> RecordCache<K, VA> {
    /// A cache that can also be read by key range ([`RecordCache::range`]).
    pub(crate) fn sorted() -> Self {
        RecordCache { core: Core::default(), keys: Some(BTreeSet::new()) }
    }

    /// The cached updates of one key in a store keyed `key ‖ suffix` (window and session stores), in key
    /// order: those in `[key ‖ from, key ‖ to]` that are exactly this key's, with a suffix as long as
    /// `from` that passes `keep`, as [`TypedKeyValueStore::range_of_key`](crate::store::TypedKeyValueStore)
    /// reads the store. None for a cache that is not sorted.
    pub(crate) fn range_of_key<'a>(
        &'a self,
        key: &'a [u8],
        from: &[u8],
        to: &[u8],
        keep: impl Fn(&[u8]) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Pending<K, VA>> + 'a {
        use std::ops::Bound::Included;
        let (low, high) = ([key, from].concat(), [key, to].concat());
        let suffix_len = from.len();
        // (`BTreeSet::range` panics on bounds out of order.)
        let keys = self.keys.as_ref().filter(|_| low <= high);
        keys.map(|keys| keys.range::<[u8], _>((Included(&low[..]), Included(&high[..]))))
            .into_iter()
            .flatten()
            .filter(move |stored| {
                stored.len() == key.len() + suffix_len && stored.starts_with(key) && keep(&stored[key.len()..])
            })
            .map(move |stored| self.core.get(stored).expect("indexed keys are cached"))
    }

    /// The cached update for `key`, if any: `Some(None)` is a cached delete.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Option<&VA>, i64)> {
        self.core.get(key).map(|p| (p.value.as_ref(), p.timestamp))
    }

    /// Caches the latest update of `key`, making it the youngest entry. A value counts by its in-memory
    /// size.
    pub(crate) fn put(&mut self, budget: &CacheBudget, key_bytes: Vec<u8>, update: (K, Option<VA>, i64, Headers)) {
        let (key, value, timestamp, headers) = update;
        let pending = Pending { key, value, timestamp, headers };
        match &mut self.keys {
            None => {
                self.core.put(budget, key_bytes, pending, std::mem::size_of::<VA>());
            }
            Some(keys) => {
                // The key's copy in the index counts too.
                let payload = std::mem::size_of::<VA>() + key_bytes.len();
                if self.core.put(budget, key_bytes.as_slice(), pending, payload) {
                    keys.insert(key_bytes);
                }
            }
        }
    }

    /// The oldest entry, if the thread's caches are over budget.
    pub(crate) fn evict_if_over(&mut self, budget: &CacheBudget) -> Option<Pending<K, VA>> {
        let (key, pending) = self.core.evict_if_over(budget)?;
        if let Some(keys) = &mut self.keys {
            keys.remove(&key);
        }
        Some(pending)
    }

    /// Every entry, oldest first (at commit).
    pub(crate) fn drain(&mut self, budget: &CacheBudget) -> Vec<Pending<K, VA>> {
        if let Some(keys) = &mut self.keys {
            keys.clear();
        }
        self.core.drain(budget).map(|(_, pending)| pending).collect()
    }

    /// Drops every entry unflushed (a task closed without a commit).
    pub(crate) fn clear(&mut self, budget: &CacheBudget) {
        if let Some(keys) = &mut self.keys {
            keys.clear();
        }
        self.core.clear(budget);
    }
}

/// Where a processor's cached updates live: in a cache of its own, or in one that the nodes of a
/// cogroup share: they write one store, and each must read the updates the others have pending (Kafka
/// Streams' cogroup shares one caching store the same way).
pub(crate) enum CacheSlot<K, VA> {
    Own(RecordCache<K, VA>),
    Shared(Arc<Mutex<RecordCache<K, VA>>>),
}

impl<K: Send + 'static, VA: Send + 'static> CacheSlot<K, VA> {
    /// From now on, the cache of `store` that the task's nodes share (made, like this one, sorted or
    /// not, by the first node that asks).
    pub(crate) fn share(&mut self, task: &mut TaskState, store: &str) -> Result<(), StreamsError> {
        let sorted = self.read(|cache| cache.keys.is_some());
        let make = || Mutex::new(if sorted { RecordCache::sorted() } else { RecordCache::default() });
        *self = CacheSlot::Shared(task.shared(&format!("the record cache of {store}"), make)?);
        Ok(())
    }

    /// `f` on the cache, to change it.
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut RecordCache<K, VA>) -> R) -> R {
        match self {
            CacheSlot::Own(cache) => f(cache),
            CacheSlot::Shared(cache) => f(&mut cache.lock_unpoisoned()),
        }
    }

    /// `f` on the cache, to read it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&RecordCache<K, VA>) -> R) -> R {
        match self {
            CacheSlot::Own(cache) => f(cache),
            CacheSlot::Shared(cache) => f(&cache.lock_unpoisoned()),
        }
    }
}

/// `stored` records in suffix order (`T`, from a store read by range) with the cached updates of the
/// same range over them: a cached value replaces the record of its suffix, a cached delete removes it.
pub(crate) fn overlay<T: Ord, V>(
    stored: impl IntoIterator<Item = (T, V)>,
    cached: impl IntoIterator<Item = (T, Option<V>)>,
) -> Vec<(T, V)> {
    let mut merged: std::collections::BTreeMap<T, V> = stored.into_iter().collect();
    for (at, update) in cached {
        match update {
            Some(value) => merged.insert(at, value),
            None => merged.remove(&at),
        };
    }
    merged.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(key: &str, value: i64) -> (String, Option<i64>, i64, Headers) {
        (key.to_string(), Some(value), 0, Headers::new())
    }

    #[test]
    fn the_cache_keeps_the_latest_update_per_key_and_evicts_the_oldest_over_budget() {
        let budget = CacheBudget::new(2 * (1 + 8 + state_store::ENTRY_OVERHEAD));
        let mut cache: RecordCache<String, i64> = RecordCache::default();
        cache.put(&budget, b"a".to_vec(), update("a", 1));
        cache.put(&budget, b"b".to_vec(), update("b", 1));
        cache.put(&budget, b"a".to_vec(), update("a", 2)); // a is now the youngest, and deduplicated
        assert!(cache.evict_if_over(&budget).is_none(), "two entries fit");
        assert_eq!(cache.get(b"a").map(|(v, _)| v.copied()), Some(Some(2)));
        cache.put(&budget, b"c".to_vec(), update("c", 1));
        let evicted = cache.evict_if_over(&budget).expect("over budget");
        assert_eq!(evicted.key, "b", "the oldest goes first");
        assert!(cache.evict_if_over(&budget).is_none());
        let rest: Vec<String> = cache.drain(&budget).into_iter().map(|p| p.key).collect();
        assert_eq!(rest, vec!["a".to_string(), "c".to_string()]);
        assert_eq!(budget.used(), 0);
    }
}
