//! The byte-range scan window and session stores share: records of a store keyed `key ‖ suffix`
//! (window start and sequence number; session end and start) whose key is in a range, filtered on the
//! suffix before anything is decoded.

use std::ops::Bound;

use state_store::{KeyValueIterator, KeyValueStore};

use crate::StreamsError;

/// What a scan looks for, in a store whose keys end in a suffix of `suffix_len` bytes.
pub(super) struct KeyedScan<'b> {
    /// The first and last key, by their bytes; `None`: unbounded.
    pub(super) low: Option<&'b [u8]>,
    pub(super) high: Option<&'b [u8]>,
    pub(super) suffix_len: usize,
    /// Where one key's records of interest start (its suffix), and where any key's end.
    pub(super) first_suffix: Vec<u8>,
    pub(super) last_suffix: Vec<u8>,
    /// The store's kind, for the error about a key too short to be one of its keys.
    pub(super) kind: &'static str,
    /// Nothing can match (an empty time range): no read at all.
    pub(super) empty: bool,
}

/// Stored `(key, value)` records of `inner` (the store `name`) for `scan`, those whose suffix passes
/// `keep`. One key's range starts at its first suffix; a range of keys at the first key's lowest bytes,
/// since a longer key that begins with them sorts among its records (Kafka Streams' key schemas'
/// `lowerRange`). The byte range alone can take in longer keys that begin with `high`'s bytes, so each
/// record's key is checked too.
pub(super) fn scan_keyed<'a, F: Fn(&[u8]) -> bool + 'a>(
    inner: &'a dyn KeyValueStore,
    name: &'a str,
    scan: KeyedScan<'_>,
    keep: F,
) -> Result<impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StreamsError>> + use<'a, F>, StreamsError> {
    let KeyedScan { low, high, suffix_len, first_suffix, last_suffix, kind, empty } = scan;
    let lowest = vec![0; suffix_len];
    let lower = low.map(|key| [key, if low == high { &first_suffix } else { &lowest }].concat());
    let upper = high.map(|key| [key, &last_suffix[..]].concat());
    let lower_bound = lower.as_deref().map_or(Bound::Unbounded, Bound::Included);
    let upper_bound = upper.as_deref().map_or(Bound::Unbounded, Bound::Included);
    let iter: KeyValueIterator<'a> =
        if empty { Box::new(std::iter::empty()) } else { inner.range(lower_bound, upper_bound)? };
    let (low, high) = (low.map(<[u8]>::to_vec), high.map(<[u8]>::to_vec));
    Ok(iter.filter_map(move |record| {
        let (stored, value) = match record {
            Ok(record) => record,
            Err(e) => return Some(Err(e.into())),
        };
        let Some(key_len) = stored.len().checked_sub(suffix_len) else {
            return Some(Err(StreamsError::StoreAccess {
                node: "(store)".into(),
                store: name.to_string(),
                reason: format!("a stored key of {} bytes is not a {kind} key", stored.len()),
            }));
        };
        let (key, suffix) = stored.split_at(key_len);
        let in_keys = low.as_deref().is_none_or(|low| key >= low) && high.as_deref().is_none_or(|high| key <= high);
        (in_keys && keep(suffix)).then_some(Ok((stored, value)))
    }))
}
