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

use state_store::RecordCache as Core;

use crate::record::Headers;

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
}

impl<K, VA> Default for RecordCache<K, VA> {
    fn default() -> Self {
        RecordCache { core: Core::default() }
    }
}

impl<K, VA> RecordCache<K, VA> {
    /// The cached update for `key`, if any: `Some(None)` is a cached delete.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Option<&VA>, i64)> {
        self.core.get(key).map(|p| (p.value.as_ref(), p.timestamp))
    }

    /// Caches the latest update of `key`, making it the youngest entry. A value counts by its in-memory
    /// size.
    pub(crate) fn put(&mut self, budget: &CacheBudget, key_bytes: Vec<u8>, update: (K, Option<VA>, i64, Headers)) {
        let (key, value, timestamp, headers) = update;
        self.core.put(budget, key_bytes, Pending { key, value, timestamp, headers }, std::mem::size_of::<VA>());
    }

    /// The oldest entry, if the thread's caches are over budget.
    pub(crate) fn evict_if_over(&mut self, budget: &CacheBudget) -> Option<Pending<K, VA>> {
        self.core.evict_if_over(budget).map(|(_, pending)| pending)
    }

    /// Every entry, oldest first (at commit).
    pub(crate) fn drain(&mut self, budget: &CacheBudget) -> Vec<Pending<K, VA>> {
        self.core.drain(budget).map(|(_, pending)| pending).collect()
    }

    /// Drops every entry unflushed (a task closed without a commit).
    pub(crate) fn clear(&mut self, budget: &CacheBudget) {
        self.core.clear(budget);
    }
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
