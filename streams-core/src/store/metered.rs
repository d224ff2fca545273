//! [`MeteredKeyValueStore`]: the outermost layer of a store built at `metrics.recording.level` DEBUG
//! or above (Kafka Streams' metered store): it times each operation the store above it asks for, and
//! the stream thread publishes the counts and times as the store's `<op>-rate`, `<op>-latency-avg`
//! and `<op>-latency-max`. At INFO no store has it, and nothing is measured.
//!
//! Range reads (`range`, `prefix-scan`, `all`) are timed until the iterator is made, not until it is
//! read out (Kafka Streams times them until the iterator closes). A window or session store's fetches
//! are the `range` reads of the bytes store below it.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use state_store::{KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore, StoreError};

use crate::sync::LockUnpoisoned;

/// The operations timed, by Kafka Streams' metric names.
pub(crate) const OPERATIONS: [&str; 9] =
    ["put", "put-if-absent", "put-all", "get", "delete", "range", "prefix-scan", "all", "flush"];

/// How often and how long one operation ran since the thread last took the figures.
#[derive(Default)]
struct Times {
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

/// The figures of one store's operations, shared by the store and the task that reports them.
#[derive(Default)]
pub(crate) struct OperationTimes([Times; OPERATIONS.len()]);

/// One operation's figures, taken: how many ran, their time in all and the longest, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Taken {
    pub(crate) count: u64,
    pub(crate) total_ns: u64,
    pub(crate) max_ns: u64,
}

impl OperationTimes {
    fn record(&self, operation: usize, began: Instant) {
        let ns = began.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        let times = &self.0[operation];
        // Whoever records or takes holds the task's thread lock (the stream thread, or an interactive
        // query reading through this layer): relaxed is enough.
        times.count.fetch_add(1, Ordering::Relaxed);
        times.total_ns.fetch_add(ns, Ordering::Relaxed);
        times.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Each operation's figures since the last take, by name; they start again from zero.
    pub(crate) fn take(&self) -> impl Iterator<Item = (&'static str, Taken)> + '_ {
        OPERATIONS.iter().zip(&self.0).map(|(name, times)| {
            let taken = Taken {
                count: times.count.swap(0, Ordering::Relaxed),
                total_ns: times.total_ns.swap(0, Ordering::Relaxed),
                max_ns: times.max_ns.swap(0, Ordering::Relaxed),
            };
            (*name, taken)
        })
    }
}

/// The metered stores of one task, by store name, as the task's stores are built.
#[derive(Default)]
pub(crate) struct StoreMeters(Mutex<Vec<(String, Arc<OperationTimes>)>>);

impl std::fmt::Debug for StoreMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.lock_unpoisoned().iter().map(|(store, _)| store)).finish()
    }
}

impl StoreMeters {
    /// The figures of a new metered store called `store`.
    pub(crate) fn register(&self, store: &str) -> Arc<OperationTimes> {
        let times = Arc::new(OperationTimes::default());
        self.0.lock_unpoisoned().push((store.to_string(), times.clone()));
        times
    }

    /// Every metered store and its figures.
    pub(crate) fn stores(&self) -> Vec<(String, Arc<OperationTimes>)> {
        self.0.lock_unpoisoned().clone()
    }
}

/// Times the operations of the store below it.
pub(crate) struct MeteredKeyValueStore {
    inner: Box<dyn KeyValueStore>,
    times: Arc<OperationTimes>,
}

impl MeteredKeyValueStore {
    pub(crate) fn new(inner: Box<dyn KeyValueStore>, times: Arc<OperationTimes>) -> Self {
        MeteredKeyValueStore { inner, times }
    }

    fn timed<T>(&self, operation: usize, run: impl FnOnce() -> T) -> T {
        let began = Instant::now();
        let result = run();
        self.times.record(operation, began);
        result
    }
}

const PUT: usize = 0;
const PUT_IF_ABSENT: usize = 1;
const PUT_ALL: usize = 2;
const GET: usize = 3;
const DELETE: usize = 4;
const RANGE: usize = 5;
const PREFIX_SCAN: usize = 6;
const ALL: usize = 7;
const FLUSH: usize = 8;

impl StateStore for MeteredKeyValueStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.inner.commit()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let began = Instant::now();
        let result = self.inner.flush();
        self.times.record(FLUSH, began);
        result
    }

    fn close(&mut self) -> Result<(), StoreError> {
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
        self.inner.discard_uncommitted()
    }

    fn flush_cache(&mut self) -> Result<(), StoreError> {
        self.inner.flush_cache()
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

impl ReadOnlyKeyValueStore for MeteredKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(GET, || self.inner.get(key))
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        self.timed(RANGE, || self.inner.range(from, to))
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        self.timed(PREFIX_SCAN, || self.inner.prefix_scan(prefix))
    }

    fn all<'a>(&'a self) -> Result<KeyValueIterator<'a>, StoreError> {
        self.timed(ALL, || self.inner.all())
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.inner.approximate_num_entries()
    }

    fn committed(&self) -> Option<&dyn ReadOnlyKeyValueStore> {
        self.inner.committed()
    }
}

impl KeyValueStore for MeteredKeyValueStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let began = Instant::now();
        let result = self.inner.put(key, value);
        self.times.record(PUT, began);
        result
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let began = Instant::now();
        let result = self.inner.put_if_absent(key, value);
        self.times.record(PUT_IF_ABSENT, began);
        result
    }

    fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StoreError> {
        let began = Instant::now();
        let result = self.inner.put_all(entries);
        self.times.record(PUT_ALL, began);
        result
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let began = Instant::now();
        let result = self.inner.delete(key);
        self.times.record(DELETE, began);
        result
    }

    /// A batch of puts and deletes: timed as one put-all.
    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        let began = Instant::now();
        let result = self.inner.write_batch(entries);
        self.times.record(PUT_ALL, began);
        result
    }

    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.inner.restore_batch(entries)
    }

    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        self.inner.restore(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_counted_and_timed_once_and_taken_once() {
        let times = Arc::new(OperationTimes::default());
        let mut store =
            MeteredKeyValueStore::new(Box::new(state_store::InMemoryKeyValueStore::new("s")), times.clone());
        store.put(b"a", b"1").unwrap();
        store.put(b"b", b"2").unwrap();
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.all().unwrap().count(), 2);
        store.delete(b"a").unwrap();
        store.flush().unwrap();
        let taken: std::collections::BTreeMap<_, _> = times.take().map(|(op, t)| (op, t.count)).collect();
        assert_eq!(
            (taken["put"], taken["get"], taken["all"], taken["range"], taken["delete"], taken["flush"]),
            (2, 1, 1, 0, 1, 1)
        );
        assert!(times.take().all(|(_, t)| t == Taken { count: 0, total_ns: 0, max_ns: 0 }));
    }
}
