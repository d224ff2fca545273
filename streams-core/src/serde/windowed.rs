//! Windowed keys in Kafka's byte layouts, so that Java consumers and tools read what we write:
//! - on topics, Kafka's `TimeWindowedSerializer`: the key's bytes, then the window start (8 bytes,
//!   big-endian); the end is not written, a reader adds the window size to the start;
//! - in window stores and their changelogs, Kafka Streams' `WindowKeySchema.toStoreKeyBinary`: the key's
//!   bytes, the start, then a 4-byte sequence number (0: aggregations keep one value per window);
//! - for session windows, on topics, in session stores and their changelogs alike, Kafka's
//!   `SessionWindowedSerializer` (`SessionKeySchema.toBinary`): the key's bytes, the end, then the start.

use std::sync::Arc;

use super::{DefaultSerde, Serde, SerdeError};
use crate::window::{Window, Windowed};

const START_BYTES: usize = 8;
const SEQ_BYTES: usize = 4;

/// Bytes a window store key has after the user's key: the start and the sequence number.
pub(crate) const WINDOW_STORE_SUFFIX: usize = START_BYTES + SEQ_BYTES;

/// Bytes a session key has after the user's key: the end and the start.
pub(crate) const SESSION_SUFFIX: usize = 2 * START_BYTES;

/// A windowed key as Kafka's `TimeWindowedSerializer`/`TimeWindowedDeserializer` write and read it. The
/// window size gives the end of a window read back (`i64::MAX` when the sum overflows, and for the
/// [`DefaultSerde`] of [`Windowed`], which does not know the size, as Kafka's deserializer without one).
/// A sink without a partitioner places these keys by the inner key's bytes alone, as Kafka Streams does.
pub struct TimeWindowedSerde<K> {
    layout: WindowKeyLayout<K>,
}

impl<K> TimeWindowedSerde<K> {
    /// Windowed keys of `inner`, in windows of `window_size`.
    pub fn new(inner: Arc<dyn Serde<K>>, window_size: std::time::Duration) -> Self {
        Self::with_size_ms(inner, crate::window::millis(window_size))
    }

    pub(crate) fn with_size_ms(inner: Arc<dyn Serde<K>>, window_size_ms: i64) -> Self {
        TimeWindowedSerde { layout: WindowKeyLayout { inner, window_size_ms, sequence_number: false } }
    }
}

impl<K: 'static> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.layout.serialize(topic, value, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        self.layout.deserialize(topic, bytes)
    }

    fn partition_bytes<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[..bytes.len().saturating_sub(START_BYTES)]
    }
}

impl<K: DefaultSerde> DefaultSerde for Windowed<K> {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(TimeWindowedSerde::with_size_ms(K::default_serde(), i64::MAX))
    }
}

/// A session-windowed key as Kafka's `SessionWindowedSerializer`/`SessionWindowedDeserializer` write and
/// read it, on topics and in session stores alike: the key's bytes, the session's end, then its start
/// (8 bytes each, big-endian). A sink without a partitioner places these keys by the inner key's bytes
/// alone. Read a session-windowed topic with this serde: the [`DefaultSerde`] of [`Windowed`] reads
/// time-windowed keys.
pub struct SessionWindowedSerde<K> {
    inner: Arc<dyn Serde<K>>,
}

impl<K> SessionWindowedSerde<K> {
    /// Session-windowed keys of `inner`.
    pub fn new(inner: Arc<dyn Serde<K>>) -> Self {
        SessionWindowedSerde { inner }
    }
}

impl<K: 'static> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize(topic, &value.key, out)?;
        out.extend_from_slice(&value.window.end.to_be_bytes());
        out.extend_from_slice(&value.window.start.to_be_bytes());
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        let Some(key_len) = bytes.len().checked_sub(SESSION_SUFFIX) else {
            let reason = format!(
                "{} bytes are too few for a session-windowed key (at least {SESSION_SUFFIX} expected)",
                bytes.len()
            );
            return Err(SerdeError::new("Windowed", topic, reason));
        };
        let time = |at: usize| i64::from_be_bytes(bytes[at..at + START_BYTES].try_into().expect("8 bytes"));
        let (end, start) = (time(key_len), time(key_len + START_BYTES));
        if start < 0 || end < start {
            let reason = format!("a session cannot run from {start} to {end}");
            return Err(SerdeError::new("Windowed", topic, reason));
        }
        let key = self.inner.deserialize(topic, &bytes[..key_len])?;
        Ok(Windowed { key, window: Window { start, end } })
    }

    fn partition_bytes<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[..bytes.len().saturating_sub(SESSION_SUFFIX)]
    }
}

/// A windowed key as a window store (and its changelog) keys it: the topic layout and a sequence number.
pub(crate) struct WindowStoreKeySerde<K> {
    layout: WindowKeyLayout<K>,
}

impl<K> WindowStoreKeySerde<K> {
    pub(crate) fn new(inner: Arc<dyn Serde<K>>, window_size_ms: i64) -> Self {
        WindowStoreKeySerde { layout: WindowKeyLayout { inner, window_size_ms, sequence_number: true } }
    }
}

impl<K: 'static> Serde<Windowed<K>> for WindowStoreKeySerde<K> {
    fn serialize(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.layout.serialize(topic, value, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        self.layout.deserialize(topic, bytes)
    }

    /// The inner key's bytes, as [`TimeWindowedSerde`] places its keys (interactive queries read a
    /// key's windows by them).
    fn partition_bytes<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[..bytes.len().saturating_sub(self.layout.suffix())]
    }
}

/// The one layout of both: the key's bytes, the start, and (in stores) a sequence number of 0, since
/// aggregations keep one value per window.
struct WindowKeyLayout<K> {
    inner: Arc<dyn Serde<K>>,
    window_size_ms: i64,
    sequence_number: bool,
}

impl<K: 'static> WindowKeyLayout<K> {
    fn suffix(&self) -> usize {
        START_BYTES + if self.sequence_number { SEQ_BYTES } else { 0 }
    }

    fn serialize(&self, topic: &str, value: &Windowed<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.inner.serialize(topic, &value.key, out)?;
        out.extend_from_slice(&value.window.start.to_be_bytes());
        if self.sequence_number {
            out.extend_from_slice(&0i32.to_be_bytes());
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        let suffix = self.suffix();
        let Some(key_len) = bytes.len().checked_sub(suffix) else {
            let reason = format!("{} bytes are too few for a windowed key (at least {suffix} expected)", bytes.len());
            return Err(SerdeError::new("Windowed", topic, reason));
        };
        let start = i64::from_be_bytes(bytes[key_len..key_len + START_BYTES].try_into().expect("8 bytes"));
        let key = self.inner.deserialize(topic, &bytes[..key_len])?;
        Ok(Windowed { key, window: Window { start, end: start.checked_add(self.window_size_ms).unwrap_or(i64::MAX) } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::{from_bytes, to_bytes, StringSerde};

    fn a_at_1000() -> Windowed<String> {
        Windowed::new("a".to_string(), Window { start: 1000, end: 1010 })
    }

    /// The bytes Kafka's `TimeWindowedSerializer` writes for key "a" in the window starting at 1000.
    #[test]
    fn topic_layout_is_kafka_s_time_windowed_serializer() {
        let serde = TimeWindowedSerde::new(Arc::new(StringSerde), std::time::Duration::from_millis(10));
        let bytes = to_bytes(&serde, "t", &a_at_1000()).unwrap().unwrap();
        assert_eq!(bytes, [0x61, 0, 0, 0, 0, 0, 0, 0x03, 0xE8]);
        assert_eq!(from_bytes(&serde, "t", Some(&bytes)).unwrap(), Some(a_at_1000()));
        let without_size = Windowed::<String>::default_serde();
        assert_eq!(without_size.deserialize("t", &bytes).unwrap().window.end, i64::MAX);
        assert_eq!(serde.partition_bytes(&bytes), b"a", "placed by the inner key, as WindowedStreamPartitioner");
    }

    /// Kafka Streams' `WindowKeySchema.toStoreKeyBinary(key, 1000, 0)`.
    #[test]
    fn store_layout_is_kafka_streams_window_key_schema() {
        let serde = WindowStoreKeySerde::new(Arc::new(StringSerde), 10);
        let bytes = to_bytes(&serde, "s", &a_at_1000()).unwrap().unwrap();
        assert_eq!(bytes, [0x61, 0, 0, 0, 0, 0, 0, 0x03, 0xE8, 0, 0, 0, 0]);
        assert_eq!(serde.deserialize("s", &bytes).unwrap(), a_at_1000());
    }

    /// Kafka's `SessionWindowedSerializer` for key "a" in the session [1000, 1010].
    #[test]
    fn session_layout_is_kafka_s_session_windowed_serializer() {
        let serde = SessionWindowedSerde::new(Arc::new(StringSerde));
        let session = a_at_1000();
        let bytes = to_bytes(&serde, "t", &session).unwrap().unwrap();
        assert_eq!(bytes, [0x61, 0, 0, 0, 0, 0, 0, 0x03, 0xF2, 0, 0, 0, 0, 0, 0, 0x03, 0xE8]);
        assert_eq!(serde.deserialize("t", &bytes).unwrap(), session);
        assert_eq!(serde.partition_bytes(&bytes), b"a");
        let backwards = [0x61, 0, 0, 0, 0, 0, 0, 0x03, 0xE8, 0, 0, 0, 0, 0, 0, 0x03, 0xF2];
        let error = serde.deserialize("t", &backwards).unwrap_err().to_string();
        assert!(error.contains("cannot run from 1010 to 1000"), "{error}");
    }

    #[test]
    fn too_few_bytes_are_an_error_naming_the_topic() {
        let serde = WindowStoreKeySerde::new(Arc::new(StringSerde), 10);
        let error = serde.deserialize("the-store", &[1, 2, 3]).unwrap_err().to_string();
        assert!(error.contains("the-store") && error.contains("3 bytes are too few"), "{error}");
    }
}
