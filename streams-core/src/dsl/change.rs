//! What a KTable forwards: the new value and the old one for the same key, so that downstream
//! aggregations can subtract the old before adding the new.

use std::sync::Arc;

use crate::processor::ProcessingContext;
use crate::serde::{Serde, SerdeError};

/// A table update: `new` is `None` for a delete, `old` is `None` for an insert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<V> {
    /// The value after the update.
    pub(crate) new: Option<V>,
    /// The value before it.
    pub(crate) old: Option<V>,
    /// Whether `new` is the key's newest value by timestamp (Kafka Streams' `isLatest`): false only for
    /// an out-of-order update a versioned table kept as history. Not written to repartition topics, as
    /// in Kafka Streams: an update read back from one is the latest.
    pub(crate) is_latest: bool,
}

impl<V> Change<V> {
    /// An update from `old` to `new`.
    pub(crate) fn new(new: Option<V>, old: Option<V>) -> Self {
        Change { new, old, is_latest: true }
    }

    /// This change, marked as the key's newest value or not.
    pub(crate) fn latest(mut self, is_latest: bool) -> Self {
        self.is_latest = is_latest;
        self
    }

    /// Whether a table-table or foreign-key join skips this change of a table whose output is
    /// `versioned`: an out-of-order update (KIP-914), which it counts as a dropped record, as Kafka
    /// Streams does.
    pub(crate) fn skipped_by_join(&self, ctx: &mut ProcessingContext<'_>, versioned: bool) -> bool {
        let skip = versioned && !self.is_latest;
        if skip {
            ctx.record_dropped("an out-of-order update of a versioned table, which a join of tables skips");
        }
        skip
    }
}

/// The bytes of a [`Change`] on a repartition topic: a flags byte (bit 0: new present, bit 1: old
/// present), the new value's length as 4 bytes big-endian, the new value's bytes, then the old value's.
/// (Internal to this library; Kafka Streams' `ChangedSerializer` is laid out differently.)
pub(crate) struct ChangeSerde<V>(pub(crate) Arc<dyn Serde<V>>);

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, topic: &str, value: &Change<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        // A value the serde writes as null (a `None` from a table's `map_values`) is no value: a delete, as
        // a null is in Kafka Streams, and read back as `None`.
        let new = value.new.as_ref().filter(|v| !self.0.is_null(v));
        let old = value.old.as_ref().filter(|v| !self.0.is_null(v));
        let flags = u8::from(new.is_some()) | (u8::from(old.is_some()) << 1);
        out.push(flags);
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        if let Some(new) = new {
            self.0.serialize(topic, new, out)?;
        }
        let new_len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&new_len.to_be_bytes());
        if let Some(old) = old {
            self.0.serialize(topic, old, out)?;
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Change<V>, SerdeError> {
        let bad = |why: &str| SerdeError::new("Change", topic, why.to_string());
        let (&flags, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
        if rest.len() < 4 {
            return Err(bad("truncated length"));
        }
        let (len, rest) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        if rest.len() < len {
            return Err(bad("truncated new value"));
        }
        let (new_bytes, old_bytes) = rest.split_at(len);
        let new = if flags & 1 != 0 { Some(self.0.deserialize(topic, new_bytes)?) } else { None };
        let old = if flags & 2 != 0 { Some(self.0.deserialize(topic, old_bytes)?) } else { None };
        Ok(Change::new(new, old))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;

    #[test]
    fn change_serde_round_trips_every_shape() {
        let serde = ChangeSerde(Arc::new(StringSerde));
        for change in [
            Change::new(Some("n".to_string()), Some("old".to_string())),
            Change::new(Some("".to_string()), None),
            Change::new(None, Some("o".to_string())),
            Change::new(None, None),
        ] {
            let mut out = Vec::new();
            serde.serialize("t", &change, &mut out).unwrap();
            assert_eq!(serde.deserialize("t", &out).unwrap(), change);
        }
        assert!(serde.deserialize("t", &[3, 0, 0, 0, 9, b'x']).is_err());
        assert!(serde.deserialize("t", &[]).is_err());
    }

    #[test]
    fn a_null_value_is_written_as_no_value() {
        let serde = ChangeSerde(Arc::new(crate::serde::OptionSerde::new(Arc::new(StringSerde))));
        let mut out = Vec::new();
        serde.serialize("t", &Change::new(Some(None), Some(Some("old".to_string()))), &mut out).unwrap();
        assert_eq!(serde.deserialize("t", &out).unwrap(), Change::new(None, Some(Some("old".to_string()))));
    }
}
