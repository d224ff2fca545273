//! What a key-value store promises: the byte-level read and write traits.
//!
//! Keys and values are raw bytes; typed access is a layer above. Iteration is in ascending key-byte order
//! (unsigned lexicographic), which every implementation must honour so that `range` and `prefix_scan` return
//! the same records from memory or from RocksDB.

use std::ops::Bound;

use crate::StoreError;

/// One stored record as it comes out of an iterator: `(key, value)`, owned.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over records in ascending key order. It borrows the store, so it cannot outlive a write.
pub type KeyValueIterator<'a> = Box<dyn Iterator<Item = Result<KeyValue, StoreError>> + 'a>;

/// What every store has, whatever its shape: a name, a lifecycle, and a flush.
pub trait StateStore: Send {
    /// The store's name, unique within a topology (`KSTREAM-AGGREGATE-STATE-STORE-0000000003`).
    fn name(&self) -> &str;

    /// Makes every write so far part of the store's committed state without making it durable: a layer
    /// that holds writes apart until the commit applies them here. Cheap; the runtime calls it at every
    /// commit. A no-op for stores that write through.
    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Commits (see [`commit`](StateStore::commit)) and makes every write so far durable in the store's
    /// own medium (a no-op in memory). The runtime calls it before it writes a checkpoint, so the
    /// checkpoint never runs ahead of the data: on close, and while running once the changelog has moved
    /// on enough since the last checkpoint (Kafka Streams' 10,000 records), since flushing RocksDB's
    /// memtables at every commit cost more than the processing at short commit intervals.
    fn flush(&mut self) -> Result<(), StoreError>;

    /// Releases the store's resources. Reads and writes after `close` fail with [`StoreError::Closed`].
    fn close(&mut self) -> Result<(), StoreError>;

    /// Whether the store keeps its contents across a restart of the process (RocksDB yes, memory no).
    fn persistent(&self) -> bool;

    /// Whether the store is open for reads and writes.
    fn is_open(&self) -> bool;

    /// A changelog replay is about to start: a store may switch to bulk-loading settings.
    fn begin_restore(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The replay is over: back to normal settings.
    fn end_restore(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Drops the writes made since the last [`flush`](StateStore::flush) where a layer keeps them apart
    /// (see [`TransactionalKeyValueStore`](crate::TransactionalKeyValueStore)); a no-op for stores that
    /// write through.
    fn discard_uncommitted(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Writes out what a record cache in front of the store holds (see
    /// [`CachingKeyValueStore`](crate::CachingKeyValueStore)), so that the changelog records of those
    /// writes exist before the commit that covers them is made. The runtime calls it first thing at each
    /// commit; a no-op for stores without a cache.
    fn flush_cache(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Bytes of writes held back until the next flush (0 for stores that write through). The runtime
    /// commits early when this grows past its limit.
    fn uncommitted_bytes(&self) -> usize {
        0
    }

    /// An integer property of the database under the store (RocksDB's `rocksdb.estimate-num-keys`,
    /// ...), summed over a segmented store's databases; `None` for stores without one. Layers above a
    /// store pass it on. Read for metrics.
    fn property(&self, name: &str) -> Option<u64> {
        let _ = name;
        None
    }

    /// The latest time a time-segmented store (window or session) has seen, which decides what it still
    /// shows; `None` for stores without one. Layers above such a store pass it on.
    fn observed_stream_time(&self) -> Option<i64> {
        None
    }

    /// The stream time committed with the task's input offsets: the position its input resumes from
    /// after a crash (`None`: not known). The runtime tells it before a changelog replay and after each
    /// commit. Under at-least-once a store's changelog, and its files after a crash, can hold writes of
    /// records processed after the last commit, which are processed again. A time-segmented store
    /// (window or session) hides and drops what is older than its observed time minus its retention:
    /// a replay moves that time no further than the committed one, and segments are deleted only once
    /// they expire at the committed time, so the windows the redone records update are still there.
    /// Stores without a time ignore it; layers above one pass it on.
    fn set_committed_stream_time(&mut self, time: Option<i64>) {
        let _ = time;
    }
}

/// Reads from a key-value store. Interactive queries and processors that only look up get this view.
pub trait ReadOnlyKeyValueStore: StateStore {
    /// The value stored for `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records with `from <= key <= to` under the given bounds, in ascending key order.
    /// An empty range (from above to) yields nothing rather than an error, as in Kafka Streams.
    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError>;

    /// Records whose key starts with `prefix`, in ascending key order.
    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError>;

    /// Every record, in ascending key order.
    fn all<'a>(&'a self) -> Result<KeyValueIterator<'a>, StoreError> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// An estimate of the number of records: exact in memory, RocksDB's estimate on disk. Use it for sizing,
    /// never for correctness.
    fn approximate_num_entries(&self) -> Result<u64, StoreError>;

    /// The store as of the last commit, when this store or a layer below it is a transaction boundary
    /// that holds the writes since then apart (see
    /// [`TransactionalKeyValueStore`](crate::TransactionalKeyValueStore)); `None` when there is no such
    /// boundary, and reads of the store itself are the view. Interactive queries read through it, so
    /// that under exactly-once a reader never sees a write whose transaction may still abort. Other
    /// layers (a cache, a change logger) pass their inner store's on.
    fn committed(&self) -> Option<&dyn ReadOnlyKeyValueStore> {
        None
    }
}

/// Writes to a key-value store. Writes are visible to reads at once (read-your-writes within a task).
pub trait KeyValueStore: ReadOnlyKeyValueStore {
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Stores `value` only if `key` has no value; returns the value that was already there, if any
    /// (in which case nothing was written).
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(existing) = self.get(key)? {
            return Ok(Some(existing));
        }
        self.put(key, value)?;
        Ok(None)
    }

    /// Stores every pair, in order, as if by repeated `put`.
    fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StoreError> {
        for (key, value) in entries {
            self.put(key, value)?;
        }
        Ok(())
    }

    /// Removes `key`; returns the value it had, if any.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies puts (`Some`) and deletes (`None`) in order. Stores that can make them atomic (RocksDB's
    /// write batch) do; the default applies them one by one.
    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        for (key, value) in entries {
            match value {
                Some(value) => self.put(key, value)?,
                None => {
                    self.delete(key)?;
                }
            }
        }
        Ok(())
    }

    /// Applies records replayed from the store's changelog, as [`write_batch`](KeyValueStore::write_batch).
    /// Layers that log writes or hold them back pass it straight down: a restore is not logged again and
    /// is committed at once.
    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.write_batch(entries)
    }

    /// Applies one replayed record (see [`restore_batch`](KeyValueStore::restore_batch)).
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        self.restore_batch(&[(key, value)])
    }
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when there is none
/// (the prefix is all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether `(from, to)` selects nothing at all (from above to).
pub(crate) fn empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) if a > b => true,
        (Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_carries_over_ff_bytes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[0x01, 0xff]), Some(vec![0x02]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn empty_ranges_are_recognised() {
        use Bound::*;
        assert!(empty_range(Included(&b"b"[..]), Included(&b"a"[..])));
        assert!(empty_range(Excluded(&b"a"[..]), Excluded(&b"a"[..])));
        assert!(empty_range(Included(&b"a"[..]), Excluded(&b"a"[..])));
        assert!(!empty_range(Included(&b"a"[..]), Included(&b"a"[..])));
        assert!(!empty_range(Unbounded, Included(&b"a"[..])));
    }
}
