//! The byte-range scan window and session stores share: records of a store keyed `key ‖ suffix`
//! (window start and sequence number; session end and start) whose key is in a range, filtered on the
//! suffix before anything is decoded. The stores and the interactive queries of them read through
//! [`window_records`] and [`session_records`].

use std::ops::Bound;

use state_store::{KeyValueIterator, ReadOnlyKeyValueStore};

use crate::serde::{SESSION_SUFFIX, WINDOW_STORE_SUFFIX};
use crate::StreamsError;

/// Records (stored key and value bytes) of window store `name` (keys `key ‖ start ‖ seqnum`) whose
/// key bytes are in `[low, high]` (`None`: unbounded) and whose window starts in `[from, to]`.
pub(crate) fn window_records<'a>(
    inner: &'a dyn ReadOnlyKeyValueStore,
    name: &'a str,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
    from: i64,
    to: i64,
) -> Result<impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StreamsError>> + use<'a>, StreamsError> {
    // Window starts are never negative (Kafka Streams' `Window`): their bytes sort as numbers.
    let from = from.max(0);
    let scan = KeyedScan {
        low,
        high,
        suffix_len: WINDOW_STORE_SUFFIX,
        first_suffix: [&from.to_be_bytes()[..], &[0; 4]].concat(),
        last_suffix: [&to.max(0).to_be_bytes()[..], &[0xff; 4]].concat(),
        kind: "window store",
        empty: to < from,
    };
    let keep = move |suffix: &[u8]| {
        let start = i64::from_be_bytes(suffix[..8].try_into().expect("eight of the twelve suffix bytes"));
        (from..=to).contains(&start)
    };
    scan_keyed(inner, name, scan, keep)
}

/// Records (stored key and value bytes) of session store `name` (keys `key ‖ end ‖ start`) whose key
/// bytes are in `[low, high]` (`None`: unbounded), ending at or after `earliest_end` and starting at
/// or before `latest_start`.
pub(crate) fn session_records<'a>(
    inner: &'a dyn ReadOnlyKeyValueStore,
    name: &'a str,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
    earliest_end: i64,
    latest_start: i64,
) -> Result<impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StreamsError>> + use<'a>, StreamsError> {
    // Session times are never negative: their bytes sort as numbers.
    let earliest_end = earliest_end.max(0);
    let times = |end: i64, start: i64| [end.to_be_bytes(), start.to_be_bytes()].concat();
    let scan = KeyedScan {
        low,
        high,
        suffix_len: SESSION_SUFFIX,
        first_suffix: times(earliest_end, 0),
        last_suffix: times(i64::MAX, i64::MAX),
        kind: "session store",
        empty: latest_start < 0,
    };
    let keep = move |times: &[u8]| {
        let time = |at: usize| i64::from_be_bytes(times[at..at + 8].try_into().expect("eight bytes"));
        time(0) >= earliest_end && time(8) <= latest_start
    };
    scan_keyed(inner, name, scan, keep)
}

/// What a scan looks for, in a store whose keys end in a suffix of `suffix_len` bytes.
struct KeyedScan<'b> {
    /// The first and last key, by their bytes; `None`: unbounded.
    low: Option<&'b [u8]>,
    high: Option<&'b [u8]>,
    suffix_len: usize,
    /// Where one key's records of interest start (its suffix), and where any key's end.
    first_suffix: Vec<u8>,
    last_suffix: Vec<u8>,
    /// The store's kind, for the error about a key too short to be one of its keys.
    kind: &'static str,
    /// Nothing can match (an empty time range): no read at all.
    empty: bool,
}

/// Stored `(key, value)` records of `inner` (the store `name`) for `scan`, those whose suffix passes
/// `keep`. One key's range starts at its first suffix; a range of keys at the first key's lowest bytes,
/// since a longer key that begins with them sorts among its records (Kafka Streams' key schemas'
/// `lowerRange`). The byte range alone can take in longer keys that begin with `high`'s bytes, so each
/// record's key is checked too.
fn scan_keyed<'a, F: Fn(&[u8]) -> bool + 'a>(
    inner: &'a dyn ReadOnlyKeyValueStore,
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
