//! The metadata Kafka Streams commits with each input partition's offset (`TopicPartitionMetadata`):
//! Base64 of a version byte (2), the partition's time, and the task's processor metadata (named `i64`
//! values, such as an emit-final aggregation's last emitted window close time, keyed by its store).
//! Written the same way, so that offsets committed by either library read the same (this library does
//! not restore the partition time from it yet).

use std::collections::BTreeMap;

/// The version this library writes (Kafka Streams' `LATEST_MAGIC_BYTE`).
const VERSION: u8 = 2;

/// A task's processor metadata: what it commits with every offset (Kafka Streams' `ProcessorMetadata`).
/// The whole map goes with each partition's offset, so any one of them restores it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProcessorMetadata {
    entries: BTreeMap<String, i64>,
}

impl ProcessorMetadata {
    pub(crate) fn get(&self, key: &str) -> Option<i64> {
        self.entries.get(key).copied()
    }

    pub(crate) fn put(&mut self, key: &str, value: i64) {
        self.entries.insert(key.to_string(), value);
    }

    /// Takes in what was committed with another input partition: the larger value of each key, as
    /// Kafka Streams merges them.
    pub(crate) fn merge(&mut self, other: BTreeMap<String, i64>) {
        for (key, value) in other {
            let entry = self.entries.entry(key).or_insert(value);
            *entry = (*entry).max(value);
        }
    }
}

/// The metadata string of a partition whose time is `partition_time`, in a task holding `metadata`.
pub(crate) fn encode(partition_time: i64, metadata: &ProcessorMetadata) -> String {
    let mut bytes = vec![VERSION];
    bytes.extend_from_slice(&partition_time.to_be_bytes());
    if !metadata.entries.is_empty() {
        bytes.extend_from_slice(&(metadata.entries.len() as i32).to_be_bytes());
        for (key, value) in &metadata.entries {
            bytes.extend_from_slice(&(key.len() as i32).to_be_bytes());
            bytes.extend_from_slice(key.as_bytes());
            bytes.extend_from_slice(&value.to_be_bytes());
        }
    }
    base64_encode(&bytes)
}

/// The partition time and processor metadata a committed metadata string holds: `(-1, {})` for an empty
/// string; an error saying why for one that is not Kafka Streams'.
pub(crate) fn decode(metadata: &str) -> Result<(i64, BTreeMap<String, i64>), String> {
    if metadata.is_empty() {
        return Ok((-1, BTreeMap::new()));
    }
    let bytes = base64_decode(metadata).ok_or("it is not base64")?;
    let mut at: usize = 0;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let part = bytes.get(at..at.saturating_add(n)).ok_or("it is truncated")?;
        at += n;
        Ok(part)
    };
    let version = take(1)?[0];
    if version != 1 && version != 2 {
        return Err(format!("its version is {version}"));
    }
    let time = i64::from_be_bytes(take(8)?.try_into().expect("eight bytes"));
    let mut entries = BTreeMap::new();
    if version == 2 && bytes.len() > 9 {
        let count = i32::from_be_bytes(take(4)?.try_into().expect("four bytes"));
        for _ in 0..count.max(0) {
            let len = i32::from_be_bytes(take(4)?.try_into().expect("four bytes"));
            let len = usize::try_from(len).map_err(|_| "a key length is negative".to_string())?;
            let key = String::from_utf8(take(len)?.to_vec()).map_err(|_| "a key is not UTF-8".to_string())?;
            let value = i64::from_be_bytes(take(8)?.try_into().expect("eight bytes"));
            entries.insert(key, value);
        }
    }
    Ok((time, entries))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard Base64 with padding (Java's `Base64.getEncoder()`).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(entries: &[(&str, i64)]) -> ProcessorMetadata {
        let mut m = ProcessorMetadata::default();
        for (k, v) in entries {
            m.put(k, *v);
        }
        m
    }

    #[test]
    fn strings_are_kafka_streams_own() {
        // Computed with Java's layout and Base64.
        assert_eq!(encode(1000, &metadata(&[("store", 5)])), "AgAAAAAAAAPoAAAAAQAAAAVzdG9yZQAAAAAAAAAF");
        assert_eq!(encode(-1, &ProcessorMetadata::default()), "Av//////////");
        assert_eq!(decode("AQAAAAAAAAAq"), Ok((42, BTreeMap::new())));
        let (time, entries) = decode("AgAAAAAAAAPoAAAAAQAAAAVzdG9yZQAAAAAAAAAF").unwrap();
        assert_eq!((time, entries.get("store").copied()), (1000, Some(5)));
    }

    #[test]
    fn anything_else_is_an_error_and_never_a_panic() {
        assert_eq!(decode(""), Ok((-1, BTreeMap::new())));
        assert!(decode("not base64!").is_err());
        assert!(decode("Aw==").is_err()); // version 3
        assert!(decode("AgAAAAAA").is_err()); // truncated time
        let negative_len =
            base64_encode(&[[2u8].as_slice(), &[0; 8], &1i32.to_be_bytes(), &(-5i32).to_be_bytes()].concat());
        assert!(decode(&negative_len).is_err());
        for len in 0..40 {
            let _ = decode(&encode(7, &metadata(&[("a", 1), ("bb", 2)]))[..len]);
        }
    }

    #[test]
    fn metadata_merges_by_the_largest_value_and_round_trips() {
        let mut m = metadata(&[("a", 5), ("b", 1)]);
        m.merge(BTreeMap::from([("a".to_string(), 3), ("c".to_string(), 9)]));
        assert_eq!((m.get("a"), m.get("b"), m.get("c")), (Some(5), Some(1), Some(9)));
        let (time, entries) = decode(&encode(123, &m)).unwrap();
        assert_eq!((time, entries.len(), entries["c"]), (123, 3, 9));
        for n in 0..10 {
            let bytes: Vec<u8> = (0..n).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }
    }
}
