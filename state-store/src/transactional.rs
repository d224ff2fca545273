//! Writes held per commit (KIP-892): the type below says how it works.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

use crate::store::{
    empty_range, prefix_successor, KeyValue, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore,
};
use crate::StoreError;

/// Per-entry bookkeeping counted on top of key and value bytes (tree node, vectors).
const ENTRY_OVERHEAD: usize = 64;

/// Holds `inner`'s writes until the next flush.
///
/// Writes held per commit (Kafka's KIP-892 idea): a layer that keeps the writes since the last commit in
/// an ordered in-memory overlay, applies them to the store below in one batch when the commit succeeds
/// ([`StateStore::flush`]), and drops them when it does not ([`StateStore::discard_uncommitted`]).
///
/// The store below therefore only ever holds committed state. After a crash under exactly-once it needs
/// no wipe: replaying the changelog's committed records from the checkpoint on brings it up to date,
/// where Kafka Streams deletes the whole store and restores it from scratch.
///
/// Reads see the task's own uncommitted writes first (read-your-writes), merged in key order with the
/// store below for range and prefix scans.
///
/// ```
/// use state_store::{InMemoryKeyValueStore, KeyValueStore, ReadOnlyKeyValueStore, StateStore, TransactionalKeyValueStore};
///
/// let mut store = TransactionalKeyValueStore::new(InMemoryKeyValueStore::new("s"));
/// store.put(b"a", b"1")?;
/// store.flush()?; // committed
/// store.put(b"a", b"2")?;
/// assert_eq!(store.get(b"a")?, Some(b"2".to_vec())); // read-your-writes
/// store.discard_uncommitted()?; // the commit failed
/// assert_eq!(store.get(b"a")?, Some(b"1".to_vec()));
/// # Ok::<(), state_store::StoreError>(())
/// ```
///
/// [`holding_deletes`](Self::holding_deletes) holds only the deletes: puts reach the store below at
/// once.
#[derive(Debug)]
pub struct TransactionalKeyValueStore<S> {
    inner: S,
    /// Uncommitted writes: a value, or `None` for a delete.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pending_bytes: usize,
    /// Whether puts are held too (or pass through, dropping a held delete of their key).
    hold_puts: bool,
}

impl<S: KeyValueStore> TransactionalKeyValueStore<S> {
    /// Wraps `inner`, with nothing pending.
    pub fn new(inner: S) -> Self {
        TransactionalKeyValueStore { inner, pending: BTreeMap::new(), pending_bytes: 0, hold_puts: true }
    }

    /// Wraps `inner`, holding only its deletes until the commit. Over a change-logging layer, the
    /// deletes then reach the changelog only at the commit, while puts go at once.
    ///
    /// ```
    /// use state_store::{InMemoryKeyValueStore, KeyValueStore, ReadOnlyKeyValueStore, StateStore, TransactionalKeyValueStore};
    ///
    /// let mut store = TransactionalKeyValueStore::holding_deletes(InMemoryKeyValueStore::new("s"));
    /// store.put(b"a", b"1")?;
    /// assert_eq!(store.inner().get(b"a")?, Some(b"1".to_vec())); // a put passes through
    /// store.delete(b"a")?;
    /// assert_eq!(store.get(b"a")?, None);
    /// assert_eq!(store.inner().get(b"a")?, Some(b"1".to_vec())); // the delete is held
    /// store.commit()?;
    /// assert_eq!(store.inner().get(b"a")?, None);
    /// # Ok::<(), state_store::StoreError>(())
    /// ```
    pub fn holding_deletes(inner: S) -> Self {
        TransactionalKeyValueStore { hold_puts: false, ..Self::new(inner) }
    }

    /// The store below.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn hold(&mut self, key: &[u8], value: Option<&[u8]>) {
        let added = key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD;
        match self.pending.insert(key.to_vec(), value.map(<[u8]>::to_vec)) {
            Some(old) => {
                self.pending_bytes =
                    self.pending_bytes + value.map_or(0, <[u8]>::len) - old.as_ref().map_or(0, Vec::len)
            }
            None => self.pending_bytes += added,
        }
    }

    /// Drops what is held for `key`.
    fn release(&mut self, key: &[u8]) {
        if let Some(old) = self.pending.remove(key) {
            self.pending_bytes -= key.len() + old.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD;
        }
    }

    fn merged<'a>(
        &'a self,
        below: KeyValueIterator<'a>,
        held: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a,
    ) -> KeyValueIterator<'a> {
        Box::new(Merge::new(below, held))
    }
}

/// Merges the store's records with the held (or cached) writes, in key order; a held write wins over the
/// store's record for the same key, and a held delete hides it.
pub(crate) struct Merge<
    'a,
    B: Iterator<Item = Result<KeyValue, StoreError>>,
    H: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
> {
    below: Peekable<B>,
    held: Peekable<H>,
}

impl<'a, B, H> Merge<'a, B, H>
where
    B: Iterator<Item = Result<KeyValue, StoreError>>,
    H: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
{
    pub(crate) fn new(below: B, held: H) -> Self {
        Merge { below: below.peekable(), held: held.peekable() }
    }
}

impl<'a, B, H> Iterator for Merge<'a, B, H>
where
    B: Iterator<Item = Result<KeyValue, StoreError>>,
    H: Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
{
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.below.peek(), self.held.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.below.next(),
                (Some(Ok(_)), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(Ok((b, _))), Some((h, _))) => b.as_slice().cmp(h.as_slice()),
            };
            if order == Ordering::Less {
                return self.below.next();
            }
            if order == Ordering::Equal {
                self.below.next();
            }
            let (key, value) = self.held.next().expect("peeked");
            if let Some(value) = value {
                return Some(Ok((key.clone(), value.clone())));
            }
        }
    }
}

impl<S: KeyValueStore> StateStore for TransactionalKeyValueStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Commits: the held writes go to the store below in one batch (atomic on RocksDB).
    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.pending_bytes = 0;
            let batch: Vec<(&[u8], Option<&[u8]>)> =
                pending.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
            self.inner.write_batch(&batch)?;
        }
        self.inner.commit()
    }

    /// Commits, then the store below flushes.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.commit()?;
        self.inner.flush()
    }

    /// Closes without committing: whatever was not flushed is dropped, as after a crash.
    fn close(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        self.pending_bytes = 0;
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
        self.pending.clear();
        self.pending_bytes = 0;
        self.inner.discard_uncommitted()
    }

    fn flush_cache(&mut self) -> Result<(), StoreError> {
        self.inner.flush_cache()
    }

    fn uncommitted_bytes(&self) -> usize {
        self.pending_bytes + self.inner.uncommitted_bytes()
    }

    fn property(&self, name: &str) -> Option<u64> {
        self.inner.property(name)
    }

    /// The store below's: held writes have not reached it yet, so a reader that needs the time its own
    /// writes reached keeps track of that itself.
    fn observed_stream_time(&self) -> Option<i64> {
        self.inner.observed_stream_time()
    }

    fn set_committed_stream_time(&mut self, time: Option<i64>) {
        self.inner.set_committed_stream_time(time)
    }
}

impl<S: KeyValueStore> ReadOnlyKeyValueStore for TransactionalKeyValueStore<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.pending.get(key) {
            Some(held) => Ok(held.clone()),
            None => self.inner.get(key),
        }
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        let below = self.inner.range(from, to)?;
        if empty_range(from, to) {
            return Ok(below);
        }
        let held = self.pending.range::<[u8], _>((from, to));
        Ok(self.merged(below, held))
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        let below = self.inner.prefix_scan(prefix)?;
        let end = prefix_successor(prefix);
        let upper = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let held = self.pending.range::<[u8], _>((Bound::Included(prefix), upper));
        Ok(self.merged(below, held))
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        let added = self.pending.values().filter(|v| v.is_some()).count() as u64;
        Ok(self.inner.approximate_num_entries()? + added)
    }

    /// The store below, which only ever holds committed state. A layer holding only deletes (for the
    /// changelog's sake, under at-least-once) is no commit boundary for readers: it passes the store
    /// below's on.
    fn committed(&self) -> Option<&dyn ReadOnlyKeyValueStore> {
        if self.hold_puts {
            Some(self.inner.committed().unwrap_or(&self.inner))
        } else {
            self.inner.committed()
        }
    }
}

impl<S: KeyValueStore> KeyValueStore for TransactionalKeyValueStore<S> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if !self.inner.is_open() {
            return Err(StoreError::Closed { store: self.inner.name().to_string() });
        }
        if !self.hold_puts {
            self.release(key);
            return self.inner.put(key, value);
        }
        self.hold(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(key)?;
        self.hold(key, None);
        Ok(old)
    }

    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        for (key, value) in entries {
            match value {
                Some(value) if !self.hold_puts => self.put(key, value)?,
                _ => self.hold(key, *value),
            }
        }
        Ok(())
    }

    /// Replayed changelog records are committed state: they go straight to the store below.
    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.inner.restore_batch(entries)
    }
}
