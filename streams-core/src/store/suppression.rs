//! The suppression buffer (Kafka Streams' `InMemoryTimeOrderedKeyValueChangeBuffer`): the latest change
//! of each key, held back until its buffer time has expired, in the order each key was first buffered.
//!
//! Entries live in a byte store (in memory, change-logged, held apart per commit under exactly-once like
//! every store) whose values are laid out as Kafka Streams writes them to the buffer's changelog (its
//! version 3: record context, prior value, old value, new value, buffer time), so the changelog reads the
//! same to Kafka's tools. The order by time is an index over that store, built when the buffer is first
//! used, which is after any restore: a restored buffer needs nothing else.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use state_store::KeyValueStore;

use super::typed::{decode, encode};
use crate::record::{Headers, RecordPart};
use crate::serde::Serde;
use crate::RecordMetadata;
use crate::StreamsError;

/// The header Kafka Streams puts on every value of a buffer's changelog: the layout's version.
pub(crate) const CHANGELOG_VERSION_HEADER: (&str, &[u8]) = ("v", &[3]);

/// Where a buffered change came from (Kafka Streams' `ProcessorRecordContext`): what the record carries
/// when it is emitted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BufferedContext {
    pub(crate) timestamp: i64,
    pub(crate) offset: i64,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) headers: Headers,
}

impl BufferedContext {
    /// The context of a record now being processed: its timestamp and headers, and where it was read
    /// (`metadata`; none for a record that was not read from a topic).
    pub(crate) fn of(metadata: Option<&RecordMetadata>, timestamp: i64, headers: Headers) -> Self {
        match metadata {
            Some(m) => BufferedContext {
                timestamp,
                offset: m.offset,
                topic: m.topic.to_string(),
                partition: m.partition,
                headers,
            },
            None => BufferedContext { timestamp, offset: -1, topic: String::new(), partition: -1, headers },
        }
    }

    /// Where the record was read, if it was.
    pub(crate) fn metadata(&self) -> Option<RecordMetadata> {
        (self.partition >= 0).then(|| RecordMetadata {
            topic: self.topic.as_str().into(),
            partition: self.partition,
            offset: self.offset,
        })
    }
}

/// A stream-table join's buffered record as Kafka Streams stores and logs it
/// (`RocksDBTimeOrderedKeyValueBuffer`): a buffer entry with only a new value, the record's, and a
/// buffer time of 0.
pub(crate) fn write_join_buffer_value(context: BufferedContext, value: Vec<u8>) -> Vec<u8> {
    Entry { context, prior: None, old: None, new: Some(value), time: 0 }.write()
}

/// The record context and value bytes of [`write_join_buffer_value`]'s bytes.
pub(crate) fn read_join_buffer_value(bytes: &[u8]) -> Result<(BufferedContext, Vec<u8>), &'static str> {
    let entry = Entry::read(bytes)?;
    Ok((entry.context, entry.new.ok_or("the buffered value is null")?))
}

/// A change leaving the buffer.
pub(crate) struct Eviction<K, V> {
    pub(crate) key: K,
    pub(crate) new: Option<V>,
    pub(crate) old: Option<V>,
    pub(crate) context: BufferedContext,
}

/// The suppression buffer of one task, typed by the table's key and value.
pub(crate) struct SuppressionBuffer<K, V> {
    name: String,
    inner: Box<dyn KeyValueStore>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    /// Built from the store on first use.
    index: Option<Index>,
}

/// The buffer's order: (buffer time, key bytes), the time of each key, and the size estimate Kafka
/// Streams compares with `max_bytes`.
#[derive(Default)]
struct Index {
    by_time: BTreeSet<(i64, Vec<u8>)>,
    time_of: HashMap<Vec<u8>, i64>,
    bytes: u64,
}

impl<K: 'static, V: 'static> SuppressionBuffer<K, V> {
    pub(crate) fn new(
        inner: Box<dyn KeyValueStore>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        SuppressionBuffer { name: inner.name().to_string(), inner, key_serde, value_serde, index: None }
    }

    fn index(&mut self) -> Result<&mut Index, StreamsError> {
        if self.index.is_none() {
            let mut index = Index::default();
            for entry in self.inner.all()? {
                let (key, bytes) = entry?;
                let entry = Entry::read(&bytes).map_err(|reason| self.corrupt(&key, reason))?;
                index.bytes += entry.size_estimate(&key);
                index.by_time.insert((entry.time, key.clone()));
                index.time_of.insert(key, entry.time);
            }
            self.index = Some(index);
        }
        Ok(self.index.as_mut().expect("built above"))
    }

    fn corrupt(&self, key: &[u8], reason: &str) -> StreamsError {
        StreamsError::StoreAccess {
            node: "(store)".into(),
            store: self.name.clone(),
            reason: format!("the buffered change of key {key:02x?} cannot be read: {reason}"),
        }
    }

    /// Buffers the change of `key` at `time`. A key already buffered keeps its place (and time) and its
    /// prior value, the value it had before it was first buffered.
    pub(crate) fn put(
        &mut self,
        time: i64,
        key: &K,
        new: Option<&V>,
        old: Option<&V>,
        context: BufferedContext,
    ) -> Result<(), StreamsError> {
        self.index()?; // before the store changes, so that the entry is counted once
        let mut key_bytes = Vec::new();
        encode(&*self.key_serde, &self.name, key, &mut key_bytes)?;
        let new = self.value_bytes(new)?;
        let old = self.value_bytes(old)?;
        let previous = match self.inner.get(&key_bytes)? {
            Some(bytes) => Some(Entry::read(&bytes).map_err(|reason| self.corrupt(&key_bytes, reason))?),
            None => None,
        };
        let (time, prior, previous_size) = match previous {
            Some(entry) => (entry.time, entry.prior.clone(), entry.size_estimate(&key_bytes)),
            None => (time, old.clone(), 0),
        };
        let entry = Entry { context, prior, old, new, time };
        self.inner.put(&key_bytes, &entry.write())?;
        let size = entry.size_estimate(&key_bytes);
        let index = self.index()?;
        index.bytes = index.bytes + size - previous_size;
        if index.time_of.insert(key_bytes.clone(), time).is_none() {
            index.by_time.insert((time, key_bytes));
        }
        Ok(())
    }

    fn value_bytes(&self, value: Option<&V>) -> Result<Option<Vec<u8>>, StreamsError> {
        value
            .map(|v| {
                let mut out = Vec::new();
                encode(&*self.value_serde, &self.name, v, &mut out).map(|()| out)
            })
            .transpose()
    }

    /// The earliest buffer time, `i64::MAX` when the buffer is empty.
    pub(crate) fn min_timestamp(&mut self) -> Result<i64, StreamsError> {
        Ok(self.index()?.by_time.first().map_or(i64::MAX, |(time, _)| *time))
    }

    /// How many keys are buffered.
    pub(crate) fn num_records(&mut self) -> Result<u64, StreamsError> {
        Ok(self.index()?.time_of.len() as u64)
    }

    /// Kafka Streams' estimate of the buffer's memory, what `max_bytes` bounds.
    pub(crate) fn size_bytes(&mut self) -> Result<u64, StreamsError> {
        Ok(self.index()?.bytes)
    }

    /// Takes the change with the earliest buffer time out of the buffer.
    pub(crate) fn evict_first(&mut self) -> Result<Option<Eviction<K, V>>, StreamsError> {
        let Some((time, key_bytes)) = self.index()?.by_time.first().cloned() else { return Ok(None) };
        // Read and decoded before anything is removed: a change that cannot be read stays buffered.
        let bytes = self.inner.get(&key_bytes)?.ok_or_else(|| self.corrupt(&key_bytes, "it is not in the store"))?;
        let entry = Entry::read(&bytes).map_err(|reason| self.corrupt(&key_bytes, reason))?;
        let value = |bytes: &Option<Vec<u8>>| {
            bytes.as_ref().map(|b| decode(&*self.value_serde, &self.name, RecordPart::Value, b)).transpose()
        };
        let eviction = Eviction {
            key: decode(&*self.key_serde, &self.name, RecordPart::Key, &key_bytes)?,
            new: value(&entry.new)?,
            old: value(&entry.old)?,
            context: entry.context.clone(),
        };
        self.inner.delete(&key_bytes)?;
        let size = entry.size_estimate(&key_bytes);
        let index = self.index()?;
        index.by_time.remove(&(time, key_bytes.clone()));
        index.time_of.remove(&key_bytes);
        index.bytes -= size;
        Ok(Some(eviction))
    }
}

super::typed::erased_store!(SuppressionBuffer, "a suppression buffer of ");

/// One buffered change as it is stored (and logged).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    context: BufferedContext,
    prior: Option<Vec<u8>>,
    old: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
    time: i64,
}

/// Marks a null value.
const NULL: i32 = -1;
/// Marks an old value equal to the prior value (written once).
const SAME_AS_PRIOR: i32 = -2;

impl Entry {
    /// Kafka Streams' `BufferValue.serialize` followed by the buffer time.
    fn write(&self) -> Vec<u8> {
        let c = &self.context;
        let mut out = Vec::with_capacity(64 + c.topic.len());
        out.extend_from_slice(&c.timestamp.to_be_bytes());
        out.extend_from_slice(&c.offset.to_be_bytes());
        put_bytes(&mut out, Some(c.topic.as_bytes()));
        out.extend_from_slice(&c.partition.to_be_bytes());
        out.extend_from_slice(&(c.headers.len() as i32).to_be_bytes());
        for (name, value) in c.headers.iter() {
            put_bytes(&mut out, Some(name.as_bytes()));
            put_bytes(&mut out, value);
        }
        put_bytes(&mut out, self.prior.as_deref());
        match &self.old {
            Some(_) if self.old == self.prior => out.extend_from_slice(&SAME_AS_PRIOR.to_be_bytes()),
            old => put_bytes(&mut out, old.as_deref()),
        }
        put_bytes(&mut out, self.new.as_deref());
        out.extend_from_slice(&self.time.to_be_bytes());
        out
    }

    fn read(bytes: &[u8]) -> Result<Entry, &'static str> {
        let mut r = Reader(bytes);
        let timestamp = r.i64()?;
        let offset = r.i64()?;
        let topic = r.bytes()?.ok_or("the topic is null")?;
        let topic = String::from_utf8(topic).map_err(|_| "the topic is not UTF-8")?;
        let partition = r.i32()?;
        let mut headers = Headers::new();
        for _ in 0..r.i32()? {
            let name = r.bytes()?.ok_or("a header name is null")?;
            let name = String::from_utf8(name).map_err(|_| "a header name is not UTF-8")?;
            headers.add(name, r.bytes()?);
        }
        let prior = r.bytes()?;
        let old = match r.i32()? {
            SAME_AS_PRIOR => prior.clone(),
            NULL => None,
            len => Some(r.take(usize::try_from(len).map_err(|_| "a negative length")?)?.to_vec()),
        };
        let new = r.bytes()?;
        let time = r.i64()?;
        if !r.0.is_empty() {
            return Err("bytes are left over");
        }
        Ok(Entry { context: BufferedContext { timestamp, offset, topic, partition, headers }, prior, old, new, time })
    }

    /// Kafka Streams' estimate (`computeRecordSize`): the buffer time, the key, the values (an old value
    /// equal to the prior once) and the record context.
    fn size_estimate(&self, key: &[u8]) -> u64 {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len) as u64;
        let old = if self.old == self.prior { 0 } else { len(&self.old) };
        let c = &self.context;
        let java_chars = |s: &str| s.encode_utf16().count() as u64;
        let headers: u64 =
            c.headers.iter().map(|(name, value)| java_chars(name) + value.map_or(0, <[u8]>::len) as u64).sum();
        let context = 8 + 8 + java_chars(&c.topic) + 4 + headers;
        8 + key.len() as u64 + len(&self.prior) + old + len(&self.new) + context
    }
}

fn put_bytes(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            out.extend_from_slice(&(v.len() as i32).to_be_bytes());
            out.extend_from_slice(v);
        }
        None => out.extend_from_slice(&NULL.to_be_bytes()),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("it is truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("eight bytes")))
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, &'static str> {
        match self.i32()? {
            NULL => Ok(None),
            len => Ok(Some(self.take(usize::try_from(len).map_err(|_| "a negative length")?)?.to_vec())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::{I64Serde, StringSerde};
    use state_store::InMemoryKeyValueStore;

    fn context(timestamp: i64) -> BufferedContext {
        let mut headers = Headers::new();
        headers.add("h", Some(vec![1, 2]));
        BufferedContext { timestamp, offset: 7, topic: "in".into(), partition: 0, headers }
    }

    fn buffer() -> SuppressionBuffer<String, i64> {
        SuppressionBuffer::new(
            Box::new(InMemoryKeyValueStore::new("buf".to_string())),
            Arc::new(StringSerde),
            Arc::new(I64Serde),
        )
    }

    #[test]
    fn entries_are_laid_out_as_kafka_streams_logs_them() {
        let entry = Entry { context: context(5), prior: Some(vec![9]), old: Some(vec![9]), new: None, time: 10 };
        let bytes = entry.write();
        let mut expected = Vec::new();
        expected.extend_from_slice(&5i64.to_be_bytes());
        expected.extend_from_slice(&7i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, b'i', b'n', 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0, 0, 0, 1, b'h', 0, 0, 0, 2, 1, 2]);
        expected.extend_from_slice(&[0, 0, 0, 1, 9]); // prior
        expected.extend_from_slice(&(-2i32).to_be_bytes()); // old: the same as prior
        expected.extend_from_slice(&(-1i32).to_be_bytes()); // new: null
        expected.extend_from_slice(&10i64.to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(Entry::read(&bytes).unwrap(), entry);
        assert_eq!(Entry::read(&bytes[..bytes.len() - 1]), Err("it is truncated"));
        // key 1 byte + time 8 + prior 1 + context (8 + 8 + 2 + 4 + header 1 + 2)
        assert_eq!(entry.size_estimate(&[0]), 1 + 8 + 1 + 25);
    }

    proptest::proptest! {
        /// Hostile input (a changelog record of the buffer): read or refused, never a panic; and what is
        /// written reads back.
        #[test]
        fn entries_are_read_or_refused_and_read_back_as_written(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
            timestamp in proptest::prelude::any::<i64>(),
            prior in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4)),
            old_is_prior in proptest::prelude::any::<bool>(),
            new in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4)),
        ) {
            let _ = Entry::read(&bytes);
            let old = if old_is_prior { prior.clone() } else { new.clone() };
            let entry = Entry { context: context(timestamp), prior, old, new, time: timestamp };
            proptest::prop_assert_eq!(Entry::read(&entry.write()), Ok(entry));
        }
    }

    #[test]
    fn a_key_keeps_its_first_place_and_prior_value_and_leaves_in_time_order() {
        let mut buffer = buffer();
        buffer.put(20, &"b".to_string(), Some(&1), None, context(1)).unwrap();
        // key 1 + time 8 + new value 8 + context (8 + 8 + 2 + 4 + header 1 + 2)
        assert_eq!(buffer.size_bytes().unwrap(), 1 + 8 + 8 + 25);
        buffer.put(10, &"a".to_string(), Some(&1), Some(&0), context(2)).unwrap();
        buffer.put(30, &"a".to_string(), Some(&2), Some(&1), context(3)).unwrap();
        assert_eq!(buffer.min_timestamp().unwrap(), 10);
        assert_eq!(buffer.num_records().unwrap(), 2);
        let size = buffer.size_bytes().unwrap();

        let first = buffer.evict_first().unwrap().unwrap();
        assert_eq!((first.key.as_str(), first.new, first.old, first.context.timestamp), ("a", Some(2), Some(1), 3));
        let stored = buffer.inner.get(b"b").unwrap().unwrap();
        assert_eq!(Entry::read(&stored).unwrap().time, 20);
        assert!(buffer.size_bytes().unwrap() < size);

        // A buffer opened over the same store (after a restore) finds the same order.
        let SuppressionBuffer { inner, .. } = buffer;
        let mut reopened = SuppressionBuffer::<String, i64>::new(inner, Arc::new(StringSerde), Arc::new(I64Serde));
        assert_eq!(reopened.min_timestamp().unwrap(), 20);
        assert_eq!(reopened.evict_first().unwrap().unwrap().key, "b");
        assert_eq!(reopened.size_bytes().unwrap(), 0);
        assert_eq!(reopened.min_timestamp().unwrap(), i64::MAX);
        assert!(reopened.evict_first().unwrap().is_none());
    }
}
