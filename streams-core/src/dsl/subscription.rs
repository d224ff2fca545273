//! The records of a foreign-key join's internal topics and subscription store, byte for byte as Kafka
//! Streams writes them (its `SubscriptionWrapperSerde`, `SubscriptionResponseWrapperSerde` and
//! `CombinedKeySchema`), so that a Java and a Rust application of one topology can read each other's
//! internal topics (the subscription store's changelog values carry this library's timestamp prefix,
//! as every timestamped store's do: docs/differences-from-kafka-streams.md).
//!
//! A subscription travels from a row of the joining table to the task of the row's foreign key:
//! "row `primary_key` (whose value hashes to `hash`) refers to this foreign key; answer it as
//! `instruction` says". An answer travels back with the foreign row's value and the same hash; the
//! joining side drops an answer whose hash is no longer its row's (the row changed since it asked).

use std::sync::Arc;

use crate::serde::{Serde, SerdeError};

/// The subscription format this library writes (1: with the primary key's partition).
const SUBSCRIPTION_VERSION: u8 = 1;
/// The only response format.
const RESPONSE_VERSION: u8 = 0;
/// Set in the version byte when the record carries no hash.
const NO_HASH: u8 = 0x80;
/// Kafka Streams' `Murmur3.DEFAULT_SEED`.
const HASH_SEED: u32 = 104_729;

/// What the foreign key's task does with a subscription (Kafka Streams' `SubscriptionWrapper.Instruction`,
/// with its byte values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Instruction {
    /// Unsubscribe from this foreign key, and answer nothing: the row moved to another key, whose
    /// subscription answers.
    DeleteKeyNoPropagate = 0,
    /// Unsubscribe, and answer with no foreign value: the row was deleted or lost its foreign key.
    DeleteKeyAndPropagate = 1,
    /// Subscribe, and answer with the foreign value, or with none when there is none.
    PropagateNullIfNoForeignValue = 2,
    /// Subscribe, and answer only when there is a foreign value.
    PropagateOnlyIfForeignValue = 3,
}

impl Instruction {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Instruction::DeleteKeyNoPropagate,
            1 => Instruction::DeleteKeyAndPropagate,
            2 => Instruction::PropagateNullIfNoForeignValue,
            3 => Instruction::PropagateOnlyIfForeignValue,
            _ => return None,
        })
    }

    /// Whether the subscription is removed from the store.
    pub(crate) fn unsubscribes(self) -> bool {
        matches!(self, Instruction::DeleteKeyNoPropagate | Instruction::DeleteKeyAndPropagate)
    }
}

/// The 128-bit hash of a row's serialized value: Kafka Streams' `Murmur3.hash128` (MurmurHash3_x64_128,
/// seed 104729), as its two 64-bit halves written big-endian.
pub(crate) type ValueHash = [u8; 16];

/// The hash of `bytes`.
pub(crate) fn value_hash(bytes: &[u8]) -> ValueHash {
    let hash = murmur3::murmur3_x64_128(&mut std::io::Cursor::new(bytes), HASH_SEED)
        .expect("reading from a slice cannot fail");
    let (h1, h2) = (hash as u64, (hash >> 64) as u64);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&h1.to_be_bytes());
    out[8..].copy_from_slice(&h2.to_be_bytes());
    out
}

/// A row's subscription to its foreign key (Kafka Streams' `SubscriptionWrapper`): the value of the
/// registration topic and of the subscription store.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Subscription<K> {
    /// The hash of the row's value; none when the row was deleted.
    pub(crate) hash: Option<ValueHash>,
    pub(crate) instruction: Instruction,
    pub(crate) primary_key: K,
    /// The partition of the row's table the subscription came from, where answers go; none in the
    /// format before it (Kafka Streams before 3.3), whose answers go where their key hashes.
    pub(crate) primary_partition: Option<i32>,
}

/// Reads and writes [`Subscription`]s, the primary key with the joining table's key serde.
pub(crate) struct SubscriptionSerde<K> {
    key_serde: Arc<dyn Serde<K>>,
}

impl<K> SubscriptionSerde<K> {
    pub(crate) fn new(key_serde: Arc<dyn Serde<K>>) -> Self {
        SubscriptionSerde { key_serde }
    }
}

impl<K: 'static> Serde<Subscription<K>> for SubscriptionSerde<K> {
    /// The version (with [`NO_HASH`] when there is no hash), the instruction, the hash, the primary
    /// key's bytes, then (version 1) the partition as a big-endian `i32`.
    fn serialize(&self, topic: &str, value: &Subscription<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let version = if value.primary_partition.is_some() { SUBSCRIPTION_VERSION } else { 0 };
        out.push(version | if value.hash.is_none() { NO_HASH } else { 0 });
        out.push(value.instruction as u8);
        if let Some(hash) = &value.hash {
            out.extend_from_slice(hash);
        }
        self.key_serde.serialize(&format!("{topic}-pk"), &value.primary_key, out)?;
        if let Some(partition) = value.primary_partition {
            out.extend_from_slice(&partition.to_be_bytes());
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Subscription<K>, SerdeError> {
        let error = |reason: String| SerdeError::new("a foreign-key join subscription", topic, reason);
        let [first, instruction, rest @ ..] = bytes else {
            return Err(error(format!("{} bytes, fewer than the 2 of a subscription's header", bytes.len())));
        };
        let version = first & !NO_HASH;
        if version > SUBSCRIPTION_VERSION {
            return Err(error(format!(
                "subscription format {version} is newer than the {SUBSCRIPTION_VERSION} this library reads (written by a newer Kafka Streams?)"
            )));
        }
        let instruction = Instruction::from_byte(*instruction)
            .ok_or_else(|| error(format!("unknown subscription instruction {instruction}")))?;
        let hash_len = if first & NO_HASH == 0 { 16 } else { 0 };
        let partition_len = if version >= 1 { 4 } else { 0 };
        let Some(key_len) = rest.len().checked_sub(hash_len + partition_len) else {
            return Err(error(format!("{} bytes, too few for a subscription of format {version}", bytes.len())));
        };
        let (hash, rest) = rest.split_at(hash_len);
        let (key, partition) = rest.split_at(key_len);
        Ok(Subscription {
            hash: (hash_len > 0).then(|| hash.try_into().expect("16 bytes")),
            instruction,
            primary_key: self.key_serde.deserialize(&format!("{topic}-pk"), key)?,
            primary_partition: (partition_len > 0).then(|| i32::from_be_bytes(partition.try_into().expect("4 bytes"))),
        })
    }
}

/// The foreign key's answer to a subscription (Kafka Streams' `SubscriptionResponseWrapper`): the value
/// of the response topic.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Response<VO> {
    /// The subscription's hash, returned as it came.
    pub(crate) hash: Option<ValueHash>,
    pub(crate) foreign_value: Option<VO>,
    /// Where the answer goes (not written: only the response topic's partitioner reads it).
    pub(crate) primary_partition: Option<i32>,
}

/// Reads and writes [`Response`]s, the foreign value with the foreign table's value serde.
pub(crate) struct ResponseSerde<VO> {
    value_serde: Arc<dyn Serde<VO>>,
}

impl<VO> ResponseSerde<VO> {
    pub(crate) fn new(value_serde: Arc<dyn Serde<VO>>) -> Self {
        ResponseSerde { value_serde }
    }
}

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    /// The version (with [`NO_HASH`] when there is no hash), the hash, then the foreign value's bytes
    /// (none when there is no value).
    fn serialize(&self, topic: &str, value: &Response<VO>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.push(RESPONSE_VERSION | if value.hash.is_none() { NO_HASH } else { 0 });
        if let Some(hash) = &value.hash {
            out.extend_from_slice(hash);
        }
        match &value.foreign_value {
            Some(v) if !self.value_serde.is_null(v) => self.value_serde.serialize(topic, v, out),
            _ => Ok(()),
        }
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Response<VO>, SerdeError> {
        let error = |reason: String| SerdeError::new("a foreign-key join response", topic, reason);
        let [first, rest @ ..] = bytes else { return Err(error("no bytes".into())) };
        let version = first & !NO_HASH;
        if version != RESPONSE_VERSION {
            return Err(error(format!("response format {version}; this library reads {RESPONSE_VERSION}")));
        }
        let hash_len = if first & NO_HASH == 0 { 16 } else { 0 };
        if rest.len() < hash_len {
            return Err(error(format!("{} bytes, too few for a response with a hash", bytes.len())));
        }
        let (hash, value) = rest.split_at(hash_len);
        // No bytes left: no value (as in Kafka Streams, a value written as no bytes reads as none).
        let foreign_value = if value.is_empty() { None } else { Some(self.value_serde.deserialize(topic, value)?) };
        Ok(Response {
            hash: (hash_len > 0).then(|| hash.try_into().expect("16 bytes")),
            foreign_value,
            primary_partition: None,
        })
    }
}

/// The subscription store's key (Kafka Streams' `CombinedKeySchema`): the foreign key's length as a
/// big-endian `i32`, its bytes, then the primary key's bytes, so that a foreign key's subscribers are
/// one prefix ([`subscribers_prefix`]) in key order.
pub(crate) fn combined_key(foreign_key: &[u8], primary_key: &[u8]) -> Vec<u8> {
    let mut key = subscribers_prefix(foreign_key);
    key.extend_from_slice(primary_key);
    key
}

/// The prefix every subscription store key of `foreign_key` starts with.
pub(crate) fn subscribers_prefix(foreign_key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(4 + foreign_key.len());
    prefix.extend_from_slice(&(foreign_key.len() as i32).to_be_bytes());
    prefix.extend_from_slice(foreign_key);
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Kafka Streams' `Murmur3.hash128` of these strings' UTF-8 bytes.
    #[test]
    fn the_value_hash_is_kafka_streams_murmur3() {
        for (input, expected) in [
            ("r1", "d1f7b4eacf5a235e80f9e7904f59aac2"),
            ("r2", "83d83b9d35ed64debe83826ce2f6c365"),
            ("nofk", "86acf90601515c973eb7edcf504673e3"),
            ("", "9d2764a018e329428c3cf3b035938518"),
            ("a", "3361634e7e0f5188e9c7dda24eae326b"),
            ("hello world, 0123456789", "689422a0fecdcc482376f3c4aaef1f99"),
            // Tails of 9 to 15 bytes, and none (read off Kafka Streams 4.3's `Murmur3.hash128`).
            ("nine byte", "2a98bea1b5ffdcb5494082528feccfae"),
            ("thirteen byte", "5a225e02d32989adef5e5cfb5e55ed1b"),
            ("fifteen bytes!!", "d615b59fb3c006d22d333a2423fa9a35"),
            ("sixteen bytes!!!", "198a5158981e91bb07656cef55b9e983"),
            ("a-thirty-one-byte-long-string!!", "cef527ce66b878469a65d1afda627a5b"),
        ] {
            assert_eq!(hex(&value_hash(input.as_bytes())), expected, "{input:?}");
        }
    }

    #[test]
    fn subscriptions_are_written_as_kafka_streams_writes_them() {
        let serde = SubscriptionSerde::new(Arc::new(StringSerde) as Arc<dyn Serde<String>>);
        let with_hash = Subscription {
            hash: Some(value_hash(b"r1")),
            instruction: Instruction::PropagateOnlyIfForeignValue,
            primary_key: "l1".to_string(),
            primary_partition: Some(0),
        };
        let mut out = Vec::new();
        serde.serialize("t", &with_hash, &mut out).unwrap();
        assert_eq!(hex(&out), "0103d1f7b4eacf5a235e80f9e7904f59aac26c3100000000");
        assert_eq!(serde.deserialize("t", &out).unwrap(), with_hash);

        let deleted = Subscription { hash: None, instruction: Instruction::DeleteKeyAndPropagate, ..with_hash };
        out.clear();
        serde.serialize("t", &deleted, &mut out).unwrap();
        assert_eq!(hex(&out), "81016c3100000000");
        assert_eq!(serde.deserialize("t", &out).unwrap(), deleted);

        // Format 0 (Kafka Streams before 3.3): no partition.
        let old = serde.deserialize("t", &[0x80, 0x02, b'l', b'1']).unwrap();
        assert_eq!((old.primary_key.as_str(), old.primary_partition), ("l1", None));
    }

    #[test]
    fn bad_subscription_bytes_are_errors_naming_the_topic() {
        let serde = SubscriptionSerde::new(Arc::new(StringSerde) as Arc<dyn Serde<String>>);
        for bytes in [&[][..], &[0x01], &[0x02, 0x00, 0x00], &[0x01, 0x09, b'k', 0, 0, 0, 0], &[0x01, 0x00, 0, 0]] {
            let error = serde.deserialize("app-sub-topic", bytes).unwrap_err().to_string();
            assert!(error.contains("app-sub-topic"), "{error}");
        }
    }

    #[test]
    fn responses_are_written_as_kafka_streams_writes_them() {
        let serde = ResponseSerde::new(Arc::new(StringSerde) as Arc<dyn Serde<String>>);
        let response = Response {
            hash: Some(value_hash(b"r1")),
            foreign_value: Some("R1".to_string()),
            primary_partition: Some(3),
        };
        let mut out = Vec::new();
        serde.serialize("t", &response, &mut out).unwrap();
        assert_eq!(hex(&out), "00d1f7b4eacf5a235e80f9e7904f59aac25231");
        // The partition is not written.
        assert_eq!(serde.deserialize("t", &out).unwrap(), Response { primary_partition: None, ..response });
        out.clear();
        serde.serialize("t", &Response { hash: None, foreign_value: None, primary_partition: None }, &mut out).unwrap();
        assert_eq!(hex(&out), "80");
        assert!(serde.deserialize("t", &[0x01]).is_err());
        assert!(serde.deserialize("t", &[0x00, 1, 2]).is_err());
    }

    #[test]
    fn combined_keys_put_a_foreign_keys_subscribers_under_one_prefix() {
        assert_eq!(hex(&combined_key(b"r2", b"l1")), "0000000272326c31");
        assert!(combined_key(b"r2", b"l1").starts_with(&subscribers_prefix(b"r2")));
        assert!(!combined_key(b"r22", b"l1").starts_with(&subscribers_prefix(b"r2")));
    }
}
