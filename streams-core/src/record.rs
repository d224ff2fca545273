//! What flows between processors: a typed [`Record`] with its timestamp and headers, and the metadata of
//! the input record being processed.

use std::borrow::Cow;
use std::sync::Arc;

/// What a key or value type must be to flow through a topology: cloneable (a record forwarded to two
/// children is cloned once), sendable to the task's thread, and owned.
pub trait Data: Clone + Send + 'static {}

impl<T: Clone + Send + 'static> Data for T {}

/// Record headers: an ordered list of `(name, value)` pairs, as in Kafka (names may repeat; a value may be
/// null). Cloning is cheap while headers are empty, which is the common case. A name the library stamps
/// on every record of a kind (a changelog's owner epoch) is a `&'static str`, not a copy per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Cow<'static, str>, Option<Vec<u8>>)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a header (existing headers of the same name are kept, as in Kafka).
    pub fn add(&mut self, name: impl Into<String>, value: Option<Vec<u8>>) -> &mut Self {
        self.0.push((Cow::Owned(name.into()), value));
        self
    }

    /// [`Headers::add`] for a name known at compile time: no copy of the name.
    pub(crate) fn add_static(&mut self, name: &'static str, value: Option<Vec<u8>>) -> &mut Self {
        self.0.push((Cow::Borrowed(name), value));
        self
    }

    /// The value of the last header called `name`.
    pub fn last(&self, name: &str) -> Option<Option<&[u8]>> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_deref())
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v.as_deref()))
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<N: Into<String>> FromIterator<(N, Option<Vec<u8>>)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, Option<Vec<u8>>)>>(iter: I) -> Self {
        Headers(iter.into_iter().map(|(n, v)| (Cow::Owned(n.into()), v)).collect())
    }
}

/// A typed record as processors see it (Kafka Streams' `Record<K, V>`): key, value, timestamp in
/// milliseconds since the epoch, and headers.
///
/// Processors receive records by value and forward new ones; [`Record::with_value`] and friends keep the
/// timestamp and headers, which is what Kafka Streams' operators do.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The headers.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record { key, value, timestamp, headers: Headers::new() }
    }

    /// The same record with another key.
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record { key, value: self.value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another key and value.
    pub fn with_key_value<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record { key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// Which part of a record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordPart {
    /// The key.
    Key,
    /// The value.
    Value,
    /// The key or the value: a serde pair that is given, or missing, as one.
    KeyOrValue,
}

impl std::fmt::Display for RecordPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordPart::Key => "key",
            RecordPart::Value => "value",
            RecordPart::KeyOrValue => "key or value",
        })
    }
}

/// Where the record being processed came from: topic, partition and offset (Kafka Streams'
/// `RecordMetadata`). There is none while a punctuation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic the record was read from.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
}

/// A record as it arrives from a topic, before deserialization: what a transport hands to a task.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key bytes; `None` is Kafka's null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is Kafka's null value (a tombstone in a table topic).
    pub value: Option<Vec<u8>>,
    /// The headers.
    pub headers: Headers,
}

/// A record a sink wrote, serialized and addressed, waiting to be produced: what a task hands back to the
/// transport.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducedRecord {
    /// The destination topic.
    pub topic: Arc<str>,
    /// The partition a custom partitioner chose; `None` leaves it to the default partitioner (murmur2 of
    /// the key bytes, as Kafka's Java producer does).
    pub partition: Option<i32>,
    /// Key bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The timestamp (ms since the epoch).
    pub timestamp: i64,
    /// The headers.
    pub headers: Headers,
}
