//! Change logging: a layer that reports every write of the store below it to a [`ChangelogWriter`], so
//! the writes can be replayed elsewhere (Kafka Streams' `ChangeLoggingKeyValueBytesStore`). What the
//! writer does with them (a compacted Kafka topic) is the runtime's business; this crate knows no Kafka.

use std::ops::Bound;

use crate::store::{KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
use crate::StoreError;

/// Receives a store's writes, in order: a value for a put, `None` for a delete.
pub trait ChangelogWriter: Send {
    /// Records one write.
    fn log(&mut self, key: &[u8], value: Option<&[u8]>);
}

/// Logs every write of `inner` to a [`ChangelogWriter`]. Restoring ([`KeyValueStore::restore`]) goes to
/// the inner store directly, so replayed records are not logged a second time.
pub struct ChangeLoggingKeyValueStore<S> {
    inner: S,
    writer: Box<dyn ChangelogWriter>,
}

impl<S: KeyValueStore> ChangeLoggingKeyValueStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, writer: Box<dyn ChangelogWriter>) -> Self {
        ChangeLoggingKeyValueStore { inner, writer }
    }
}

impl<S: KeyValueStore> StateStore for ChangeLoggingKeyValueStore<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.inner.commit()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.inner.flush()
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

impl<S: KeyValueStore> ReadOnlyKeyValueStore for ChangeLoggingKeyValueStore<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn committed(&self) -> Option<&dyn ReadOnlyKeyValueStore> {
        self.inner.committed()
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        self.inner.range(from, to)
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        self.inner.prefix_scan(prefix)
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.inner.approximate_num_entries()
    }
}

impl<S: KeyValueStore> KeyValueStore for ChangeLoggingKeyValueStore<S> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.inner.put(key, value)?;
        self.writer.log(key, Some(value));
        Ok(())
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let existing = self.inner.put_if_absent(key, value)?;
        if existing.is_none() {
            self.writer.log(key, Some(value));
        }
        Ok(existing)
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.inner.delete(key)?;
        self.writer.log(key, None);
        Ok(old)
    }

    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.inner.write_batch(entries)?;
        for (key, value) in entries {
            self.writer.log(key, *value);
        }
        Ok(())
    }

    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.inner.restore_batch(entries)
    }
}

impl<S: KeyValueStore + ?Sized> KeyValueStore for Box<S> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        (**self).put(key, value)
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).put_if_absent(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).delete(key)
    }

    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        (**self).write_batch(entries)
    }

    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        (**self).restore_batch(entries)
    }
}

impl<S: ReadOnlyKeyValueStore + ?Sized> ReadOnlyKeyValueStore for Box<S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        (**self).range(from, to)
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        (**self).prefix_scan(prefix)
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        (**self).approximate_num_entries()
    }

    fn committed(&self) -> Option<&dyn ReadOnlyKeyValueStore> {
        (**self).committed()
    }
}

impl<S: StateStore + ?Sized> StateStore for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        (**self).commit()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        (**self).flush()
    }

    fn close(&mut self) -> Result<(), StoreError> {
        (**self).close()
    }

    fn persistent(&self) -> bool {
        (**self).persistent()
    }

    fn is_open(&self) -> bool {
        (**self).is_open()
    }

    fn begin_restore(&mut self) -> Result<(), StoreError> {
        (**self).begin_restore()
    }

    fn end_restore(&mut self) -> Result<(), StoreError> {
        (**self).end_restore()
    }

    fn discard_uncommitted(&mut self) -> Result<(), StoreError> {
        (**self).discard_uncommitted()
    }

    fn flush_cache(&mut self) -> Result<(), StoreError> {
        (**self).flush_cache()
    }

    fn uncommitted_bytes(&self) -> usize {
        (**self).uncommitted_bytes()
    }

    fn property(&self, name: &str) -> Option<u64> {
        (**self).property(name)
    }

    fn observed_stream_time(&self) -> Option<i64> {
        (**self).observed_stream_time()
    }

    fn set_committed_stream_time(&mut self, time: Option<i64>) {
        (**self).set_committed_stream_time(time)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::InMemoryKeyValueStore;

    type Log = Arc<Mutex<Vec<(Vec<u8>, Option<Vec<u8>>)>>>;

    struct Recorder(Log);
    impl ChangelogWriter for Recorder {
        fn log(&mut self, key: &[u8], value: Option<&[u8]>) {
            self.0.lock().unwrap().push((key.to_vec(), value.map(<[u8]>::to_vec)));
        }
    }

    #[test]
    fn changelog_records_every_write_and_replays_into_an_equal_store() {
        let log: Log = Arc::default();
        let mut store =
            ChangeLoggingKeyValueStore::new(InMemoryKeyValueStore::new("s"), Box::new(Recorder(log.clone())));
        store.put(b"a", b"1").unwrap();
        store.put(b"b", b"2").unwrap();
        assert_eq!(store.put_if_absent(b"a", b"x").unwrap(), Some(b"1".to_vec())); // not written, not logged
        store.delete(b"b").unwrap();
        store.put(b"a", b"3").unwrap();
        let written = log.lock().unwrap().clone();
        assert_eq!(written.len(), 4);

        let mut replica =
            ChangeLoggingKeyValueStore::new(InMemoryKeyValueStore::new("s"), Box::new(Recorder(Log::default())));
        for (k, v) in &written {
            replica.restore(k, v.as_deref()).unwrap();
        }
        let all = |s: &dyn ReadOnlyKeyValueStore| s.all().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        assert_eq!(all(&replica), all(&store));
        assert_eq!(log.lock().unwrap().len(), 4, "restoring does not log");
    }
}
