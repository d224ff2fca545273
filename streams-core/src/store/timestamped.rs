//! Values stored with the timestamp of the record that last changed them, as Kafka Streams' timestamped
//! stores do: the DSL's aggregations and tables keep `ValueAndTimestamp<V>` so that the records they
//! forward carry the right time.

use std::sync::Arc;

use crate::serde::{Serde, SerdeError};

/// A value with the timestamp (ms) of the record that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueAndTimestamp<V> {
    /// The value.
    pub value: V,
    /// Its timestamp.
    pub timestamp: i64,
}

/// The 8-byte big-endian timestamp followed by the value's bytes: Kafka Streams' timestamped store format.
pub struct ValueAndTimestampSerde<V>(Arc<dyn Serde<V>>);

impl<V> ValueAndTimestampSerde<V> {
    /// Wraps the value's serde.
    pub fn new(inner: Arc<dyn Serde<V>>) -> Self {
        ValueAndTimestampSerde(inner)
    }
}

impl<V: 'static> Serde<ValueAndTimestamp<V>> for ValueAndTimestampSerde<V> {
    fn serialize(&self, topic: &str, value: &ValueAndTimestamp<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&value.timestamp.to_be_bytes());
        self.0.serialize(topic, &value.value, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<ValueAndTimestamp<V>, SerdeError> {
        if bytes.len() < 8 {
            return Err(SerdeError::new(
                "ValueAndTimestamp",
                topic,
                format!("expected an 8-byte timestamp prefix, got {} bytes", bytes.len()),
            ));
        }
        let (ts, rest) = bytes.split_at(8);
        let timestamp = i64::from_be_bytes(ts.try_into().expect("split_at(8) gives 8 bytes"));
        Ok(ValueAndTimestamp { value: self.0.deserialize(topic, rest)?, timestamp })
    }

    /// A null value with a timestamp is a null, as Kafka Streams' `ValueAndTimestamp.make(null, ts)` is:
    /// putting it deletes the key.
    fn is_null(&self, value: &ValueAndTimestamp<V>) -> bool {
        self.0.is_null(&value.value)
    }
}
