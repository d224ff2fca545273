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

    /// Makes every write so far durable in the store's own medium (a no-op in memory). The runtime calls it
    /// at each commit, before it writes the checkpoint, so the checkpoint never runs ahead of the data.
    fn flush(&mut self) -> Result<(), StoreError>;

    /// Releases the store's resources. Reads and writes after `close` fail with [`StoreError::Closed`].
    fn close(&mut self) -> Result<(), StoreError>;

    /// Whether the store keeps its contents across a restart of the process (RocksDB yes, memory no).
    fn persistent(&self) -> bool;

    /// Whether the store is open for reads and writes.
    fn is_open(&self) -> bool;
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
}

/// Writes to a key-value store. Writes are visible to reads at once (read-your-writes within a task).
pub trait KeyValueStore: ReadOnlyKeyValueStore {
    /// Stores `value` under `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Stores `value` only if `key` has no value; returns the value that was already there, if any
    /// (in which case nothing was written).
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores every pair, in order, as if by repeated `put`.
    fn put_all(&mut self, entries: &[(&[u8], &[u8])]) -> Result<(), StoreError> {
        for (key, value) in entries {
            self.put(key, value)?;
        }
        Ok(())
    }

    /// Removes `key`; returns the value it had, if any.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies one record replayed from the store's changelog: a put, or a delete for `None`. Layers
    /// that log writes pass it straight down, so a restore is not logged again.
    fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        match value {
            Some(value) => self.put(key, value),
            None => self.delete(key).map(|_| ()),
        }
    }
}
