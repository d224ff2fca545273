//! Window and session stores' records cut into time segments, so that retention drops whole segments
//! (Kafka Streams' segmented bytes store).
//!
//! Keys are laid out as Kafka Streams lays out window and session store keys: `key ‖ window start (i64,
//! big-endian) ‖ sequence number (i32, big-endian)` for windows, `key ‖ session end (i64) ‖ session start
//! (i64)` for sessions. The store reads the time it segments by (a window's start, a session's end) from
//! the key's bytes; everything else about the key is opaque to it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::store::{KeyValue, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
use crate::{InMemoryKeyValueStore, RocksDbKeyValueStore, RocksDbMemory, StoreError};

/// How a stored key carries its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `key ‖ start ‖ seqnum`: segmented by the window start.
    Window,
    /// `key ‖ end ‖ start`: segmented by the session end.
    Session,
}

impl Layout {
    /// Bytes after the user's key.
    fn suffix(self) -> usize {
        match self {
            Layout::Window => 8 + 4,
            Layout::Session => 8 + 8,
        }
    }

    /// The time a key is segmented by, or `None` when the key is too short for the layout.
    fn time_of(self, key: &[u8]) -> Option<i64> {
        let at = key.len().checked_sub(self.suffix())?;
        Some(i64::from_be_bytes(key[at..at + 8].try_into().expect("eight bytes")))
    }

    fn describe(self) -> &'static str {
        match self {
            Layout::Window => "a window store key (key, window start, sequence number)",
            Layout::Session => "a session store key (key, session end, session start)",
        }
    }
}

/// The shortest segment Kafka Streams cuts, whatever the retention.
const MIN_SEGMENT_INTERVAL_MS: i64 = 60_000;

/// A window or session store made of one key-value store per time segment.
///
/// As Kafka Streams' segmented stores (the time of a record is its window's start, or its session's end):
/// - a segment spans `max(retention / 2, 60 s)` of time, and is named `<store>.<segment start>`;
/// - the store's *observed stream time* is the greatest time written, deleted or restored (a restore
///   moves it no further than the committed stream time, see [`StateStore::set_committed_stream_time`]);
/// - a segment is live while its id is at least that of `observed - retention`; a write into an older
///   segment is dropped (with a warning), and reads neither see it nor records whose time is at or
///   before `observed - retention`, even in a live segment;
/// - writes drop the segments that are no longer live, which frees their memory or deletes their
///   RocksDB files; once the store is told the committed stream time, only those no longer live at that
///   time. After a crash the files are reused with the last checkpoint and the records processed since
///   the last commit are redone: the windows they update must still be there, though the time those
///   records had reached expired their segments.
///
/// Iteration is in ascending key-byte order across segments, as every store of this crate iterates;
/// Kafka Streams' RocksDB window store goes segment by segment instead (the same order while all
/// windows are in one segment).
///
/// ```
/// use state_store::{KeyValueStore, ReadOnlyKeyValueStore, SegmentedKeyValueStore};
///
/// fn key(user: &[u8], start: i64) -> Vec<u8> {
///     [user, &start.to_be_bytes()[..], &0i32.to_be_bytes()[..]].concat()
/// }
///
/// let mut store = SegmentedKeyValueStore::in_memory_window_store("counts", 120_000);
/// store.put(&key(b"a", 0), b"1")?;
/// store.put(&key(b"a", 60_000), b"2")?;
/// assert_eq!(store.get(&key(b"a", 0))?, Some(b"1".to_vec()));
/// store.put(&key(b"a", 150_000), b"3")?; // 0 is now past the retention of 120 s
/// assert_eq!(store.get(&key(b"a", 0))?, None);
/// assert_eq!(store.all()?.count(), 2);
/// # Ok::<(), state_store::StoreError>(())
/// ```
pub struct SegmentedKeyValueStore {
    name: String,
    layout: Layout,
    medium: Medium,
    retention_ms: i64,
    interval_ms: i64,
    /// Segment id → its store, oldest first.
    segments: BTreeMap<i64, Box<dyn KeyValueStore>>,
    observed: i64,
    /// The stream time of the task's last commit, once told (see
    /// [`StateStore::set_committed_stream_time`]).
    committed: Option<i64>,
    restoring: bool,
    open: bool,
}

/// Where segments live.
enum Medium {
    Memory,
    RocksDb { dir: PathBuf, memory: RocksDbMemory },
}

impl std::fmt::Debug for SegmentedKeyValueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedKeyValueStore")
            .field("name", &self.name)
            .field("persistent", &self.persistent())
            .field("retention_ms", &self.retention_ms)
            .field("interval_ms", &self.interval_ms)
            .field("segments", &self.segments.keys().collect::<Vec<_>>())
            .field("observed", &self.observed)
            .finish()
    }
}

impl SegmentedKeyValueStore {
    /// A window store in memory keeping windows for `retention_ms` (past the latest window start).
    pub fn in_memory_window_store(name: impl Into<String>, retention_ms: i64) -> Self {
        Self::new(name.into(), Layout::Window, Medium::Memory, retention_ms)
    }

    /// A window store on RocksDB, one database per segment under `dir` (`dir/<store>.<segment start>`),
    /// reopening the segments found there.
    pub fn rocksdb_window_store(
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        memory: &RocksDbMemory,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        Self::on_rocksdb(name.into(), Layout::Window, dir.into(), memory, retention_ms)
    }

    /// A session store in memory keeping sessions for `retention_ms` (past the latest session end).
    pub fn in_memory_session_store(name: impl Into<String>, retention_ms: i64) -> Self {
        Self::new(name.into(), Layout::Session, Medium::Memory, retention_ms)
    }

    /// A session store on RocksDB, laid out as [`rocksdb_window_store`](Self::rocksdb_window_store).
    pub fn rocksdb_session_store(
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        memory: &RocksDbMemory,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        Self::on_rocksdb(name.into(), Layout::Session, dir.into(), memory, retention_ms)
    }

    fn on_rocksdb(
        name: String,
        layout: Layout,
        dir: PathBuf,
        memory: &RocksDbMemory,
        retention_ms: i64,
    ) -> Result<Self, StoreError> {
        let mut store =
            Self::new(name, layout, Medium::RocksDb { dir: dir.clone(), memory: memory.clone() }, retention_ms);
        for start in store.segments_on_disk(&dir)? {
            let id = store.segment_id(start);
            store.open_segment(id)?;
        }
        Ok(store)
    }

    fn new(name: String, layout: Layout, medium: Medium, retention_ms: i64) -> Self {
        let retention_ms = retention_ms.max(0);
        SegmentedKeyValueStore {
            name,
            layout,
            medium,
            retention_ms,
            interval_ms: (retention_ms / 2).max(MIN_SEGMENT_INTERVAL_MS),
            segments: BTreeMap::new(),
            observed: -1,
            committed: None,
            restoring: false,
            open: true,
        }
    }

    /// Segment starts of the `<store>.<start>` directories under `dir`.
    fn segments_on_disk(&self, dir: &Path) -> Result<Vec<i64>, StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.backend(format!("list {}", dir.display()), e)),
        };
        let prefix = format!("{}.", self.name);
        let mut starts = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.backend(format!("list {}", dir.display()), e))?;
            let file = entry.file_name();
            let start = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|s| s.parse::<i64>().ok());
            if let Some(start) = start {
                starts.push(start);
            }
        }
        Ok(starts)
    }

    /// Java's `timestamp / interval` (truncating toward zero, as Rust's `/` does).
    fn segment_id(&self, timestamp: i64) -> i64 {
        timestamp / self.interval_ms
    }

    fn min_live_segment(&self) -> i64 {
        self.segment_id(self.observed.saturating_sub(self.retention_ms))
    }

    /// The oldest segment to keep: the oldest live one, or the oldest live at the committed stream time.
    fn min_kept_segment(&self) -> i64 {
        let time = self.committed.map_or(self.observed, |committed| committed.min(self.observed));
        self.segment_id(time.saturating_sub(self.retention_ms))
    }

    /// The live segments, oldest first.
    fn live_segments(&self) -> impl Iterator<Item = &Box<dyn KeyValueStore>> {
        self.segments.range(self.min_live_segment()..).map(|(_, segment)| segment)
    }

    /// Whether a record of time `time` is still inside the retention.
    fn visible(&self, time: i64) -> bool {
        time >= self.observed.saturating_sub(self.retention_ms).saturating_add(1)
    }

    fn segment_name(&self, id: i64) -> String {
        format!("{}.{}", self.name, id.saturating_mul(self.interval_ms))
    }

    fn open_segment(&mut self, id: i64) -> Result<&mut Box<dyn KeyValueStore>, StoreError> {
        if !self.segments.contains_key(&id) {
            let name = self.segment_name(id);
            let mut segment: Box<dyn KeyValueStore> = match &self.medium {
                Medium::Memory => Box::new(InMemoryKeyValueStore::new(name)),
                Medium::RocksDb { dir, memory } => {
                    let path = dir.join(&name);
                    Box::new(RocksDbKeyValueStore::open(name, path, memory)?)
                }
            };
            if self.restoring {
                segment.begin_restore()?;
            }
            self.segments.insert(id, segment);
        }
        Ok(self.segments.get_mut(&id).expect("inserted above"))
    }

    /// Closes and deletes the segments that are no longer kept.
    fn drop_expired(&mut self) -> Result<(), StoreError> {
        let live = self.segments.split_off(&self.min_kept_segment());
        let expired = std::mem::replace(&mut self.segments, live);
        for (id, mut segment) in expired {
            segment.close()?;
            if let Medium::RocksDb { dir, .. } = &self.medium {
                let name = self.segment_name(id);
                RocksDbKeyValueStore::destroy(&name, &dir.join(&name))?;
            }
        }
        Ok(())
    }

    /// The time a key carries.
    fn start_of(&self, key: &[u8]) -> Result<i64, StoreError> {
        self.layout.time_of(key).ok_or_else(|| StoreError::Backend {
            store: self.name.clone(),
            message: format!(
                "a key of {} bytes is not {} (at least {} bytes)",
                key.len(),
                self.layout.describe(),
                self.layout.suffix()
            ),
            source: None,
        })
    }

    fn backend(&self, what: String, error: std::io::Error) -> StoreError {
        StoreError::Backend {
            store: self.name.clone(),
            message: format!("{what}: {error}"),
            source: Some(Box::new(error)),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.open {
            Ok(())
        } else {
            Err(StoreError::Closed { store: self.name.clone() })
        }
    }

    /// Applies writes and deletes segment by segment. A restore first moves the observed stream time to
    /// the batch's latest window start (as Kafka Streams does), or to its bound if that is earlier, so
    /// records it has already expired are not written at all; other writes move it record by record.
    fn write(&mut self, entries: &[(&[u8], Option<&[u8]>)], restore: bool) -> Result<(), StoreError> {
        self.check()?;
        let starts = entries.iter().map(|(key, _)| self.start_of(key)).collect::<Result<Vec<_>, _>>()?;
        let bound = if restore { self.committed.unwrap_or(i64::MAX) } else { i64::MAX };
        if restore {
            self.observed = starts.iter().map(|&start| start.min(bound)).fold(self.observed, i64::max);
        }
        let mut per_segment: BTreeMap<i64, Vec<(&[u8], Option<&[u8]>)>> = BTreeMap::new();
        for (&(key, value), &start) in entries.iter().zip(&starts) {
            self.observed = self.observed.max(start.min(bound));
            let id = self.segment_id(start);
            if id < self.min_live_segment() {
                if value.is_some() && !restore {
                    tracing::warn!(
                        store = %self.name,
                        window_start = start,
                        observed_stream_time = self.observed,
                        retention_ms = self.retention_ms,
                        "Skipping record for expired segment."
                    );
                }
                continue;
            }
            per_segment.entry(id).or_default().push((key, value));
        }
        self.drop_expired()?;
        let min_live = self.min_live_segment();
        for (id, batch) in per_segment {
            // Writes that came before the observed time moved on in this batch land in expired segments,
            // which a write at a time would have written and then dropped.
            let deletes_only = batch.iter().all(|(_, value)| value.is_none());
            if id < min_live || (deletes_only && !self.segments.contains_key(&id)) {
                continue;
            }
            let segment = self.open_segment(id)?;
            if restore {
                segment.restore_batch(&batch)?;
            } else {
                segment.write_batch(&batch)?;
            }
        }
        Ok(())
    }

    fn each_segment(&mut self, f: impl Fn(&mut dyn KeyValueStore) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.check()?;
        self.segments.values_mut().try_for_each(|segment| f(segment.as_mut()))
    }

    /// Merges per-segment iterators into one in key order, hiding expired windows.
    fn merged<'a>(&'a self, sources: Vec<KeyValueIterator<'a>>) -> Result<KeyValueIterator<'a>, StoreError> {
        let merged = Merged::new(sources)?;
        Ok(Box::new(merged.filter(move |kv| match kv {
            Ok((key, _)) => self.layout.time_of(key).is_none_or(|time| self.visible(time)),
            Err(_) => true,
        })))
    }
}

/// Several key-ordered iterators with disjoint keys, merged into one in key order.
struct Merged<'a> {
    sources: Vec<KeyValueIterator<'a>>,
    /// The next record of each source, `None` once it has run out.
    heads: Vec<Option<KeyValue>>,
    /// An error a source gave when asked for its next record, reported on the following call.
    pending: Option<StoreError>,
}

impl<'a> Merged<'a> {
    fn new(mut sources: Vec<KeyValueIterator<'a>>) -> Result<Self, StoreError> {
        let heads = sources.iter_mut().map(|source| source.next().transpose()).collect::<Result<Vec<_>, _>>()?;
        Ok(Merged { sources, heads, pending: None })
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.pending.take() {
            return Some(Err(error));
        }
        let (at, _) = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, head)| head.as_ref().map(|(key, _)| (i, key)))
            .min_by(|(_, a), (_, b)| a.cmp(b))?;
        let head = match self.sources[at].next() {
            Some(Ok(next)) => Some(next),
            Some(Err(error)) => {
                self.pending = Some(error);
                None
            }
            None => None,
        };
        std::mem::replace(&mut self.heads[at], head).map(Ok)
    }
}

impl StateStore for SegmentedKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }

    /// Summed over the segments, except the block cache's figures: the segments share one cache, and
    /// each reports all of it (as Kafka Streams reads them when the cache is shared).
    fn property(&self, name: &str) -> Option<u64> {
        let mut values = self.segments.values().filter_map(|segment| segment.property(name));
        if name.starts_with("rocksdb.block-cache") {
            values.next()
        } else {
            values.reduce(|a, b| a + b)
        }
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.each_segment(|segment| segment.commit())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.each_segment(|segment| segment.flush())
    }

    fn close(&mut self) -> Result<(), StoreError> {
        let mut first_error = None;
        for segment in self.segments.values_mut() {
            if let Err(e) = segment.close() {
                first_error.get_or_insert(e);
            }
        }
        self.segments.clear();
        self.open = false;
        first_error.map_or(Ok(()), Err)
    }

    fn persistent(&self) -> bool {
        matches!(self.medium, Medium::RocksDb { .. })
    }

    fn is_open(&self) -> bool {
        self.open
    }

    fn begin_restore(&mut self) -> Result<(), StoreError> {
        self.restoring = true;
        self.each_segment(|segment| segment.begin_restore())
    }

    fn end_restore(&mut self) -> Result<(), StoreError> {
        self.restoring = false;
        self.each_segment(|segment| segment.end_restore())
    }

    fn observed_stream_time(&self) -> Option<i64> {
        Some(self.observed)
    }

    fn set_committed_stream_time(&mut self, time: Option<i64>) {
        self.committed = time;
    }
}

impl ReadOnlyKeyValueStore for SegmentedKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        let start = self.start_of(key)?;
        if !self.visible(start) {
            return Ok(None);
        }
        match self.segments.get(&self.segment_id(start)) {
            Some(segment) => segment.get(key),
            None => Ok(None),
        }
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        self.check()?;
        let sources = self.live_segments().map(|segment| segment.range(from, to)).collect::<Result<Vec<_>, _>>()?;
        self.merged(sources)
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        self.check()?;
        let sources = self.live_segments().map(|segment| segment.prefix_scan(prefix)).collect::<Result<Vec<_>, _>>()?;
        self.merged(sources)
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.live_segments().try_fold(0u64, |sum, segment| Ok(sum.saturating_add(segment.approximate_num_entries()?)))
    }
}

impl KeyValueStore for SegmentedKeyValueStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.write(&[(key, Some(value))], false)
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        let old = self.get(key)?;
        self.write(&[(key, None)], false)?;
        Ok(old)
    }

    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.write(entries, false)
    }

    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        self.write(entries, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn key(user: &[u8], start: i64) -> Vec<u8> {
        [user, &start.to_be_bytes()[..], &0i32.to_be_bytes()[..]].concat()
    }

    fn starts(store: &SegmentedKeyValueStore) -> Vec<(Vec<u8>, i64)> {
        store
            .all()
            .unwrap()
            .map(|kv| {
                let (k, _) = kv.unwrap();
                let start = Layout::Window.time_of(&k).unwrap();
                (k[..k.len() - Layout::Window.suffix()].to_vec(), start)
            })
            .collect()
    }

    #[test]
    fn segments_span_half_the_retention_but_at_least_a_minute() {
        assert_eq!(SegmentedKeyValueStore::in_memory_window_store("s", 10).interval_ms, MINUTE);
        assert_eq!(SegmentedKeyValueStore::in_memory_window_store("s", 10 * MINUTE).interval_ms, 5 * MINUTE);
        let store = SegmentedKeyValueStore::in_memory_window_store("s", 2 * MINUTE);
        assert_eq!(store.segment_name(3), "s.180000");
    }

    #[test]
    fn writes_expire_whole_segments_and_reads_hide_expired_windows() {
        let mut store = SegmentedKeyValueStore::in_memory_window_store("s", 2 * MINUTE);
        store.put(&key(b"a", 0), b"0").unwrap();
        store.put(&key(b"a", 61_000), b"1").unwrap();
        store.put(&key(b"b", 90_000), b"2").unwrap();
        assert_eq!(store.segments.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        // Observed 150 s: the retention reaches back to 30 s, so segment 0 is still live but the window at
        // 0 is hidden.
        store.put(&key(b"c", 150_000), b"3").unwrap();
        assert_eq!(store.segments.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(store.get(&key(b"a", 0)).unwrap(), None);
        assert_eq!(store.get(&key(b"a", 61_000)).unwrap(), Some(b"1".to_vec()));
        assert_eq!(starts(&store), vec![(b"a".to_vec(), 61_000), (b"b".to_vec(), 90_000), (b"c".to_vec(), 150_000)]);
        // Observed 180 s: windows from 60 s on are kept, in segments 1 and up; segment 0 goes.
        store.put(&key(b"c", 180_000), b"4").unwrap();
        assert_eq!(store.segments.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(store.get(&key(b"a", 61_000)).unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.approximate_num_entries().unwrap(), 4);
        // A write into a dropped segment is dropped.
        store.put(&key(b"a", 1_000), b"late").unwrap();
        assert!(!store.segments.contains_key(&0));
    }

    #[test]
    fn iteration_is_in_key_order_across_segments() {
        let mut store = SegmentedKeyValueStore::in_memory_window_store("s", 10 * MINUTE);
        for (user, start) in [(b"b", 0), (b"a", 6 * MINUTE), (b"a", 0), (b"c", 5 * MINUTE), (b"b", 7 * MINUTE)] {
            store.put(&key(user, start), b"v").unwrap();
        }
        assert_eq!(store.segments.len(), 2);
        let all = starts(&store);
        assert_eq!(
            all,
            vec![
                (b"a".to_vec(), 0),
                (b"a".to_vec(), 6 * MINUTE),
                (b"b".to_vec(), 0),
                (b"b".to_vec(), 7 * MINUTE),
                (b"c".to_vec(), 5 * MINUTE)
            ]
        );
        let b: Vec<_> = store.prefix_scan(b"b").unwrap().map(|kv| kv.unwrap().0).collect();
        assert_eq!(b, vec![key(b"b", 0), key(b"b", 7 * MINUTE)]);
        let from = key(b"a", 6 * MINUTE);
        let to = key(b"b", 0);
        let ranged: Vec<_> =
            store.range(Bound::Included(&from), Bound::Included(&to)).unwrap().map(|kv| kv.unwrap().0).collect();
        assert_eq!(ranged, vec![from.clone(), to.clone()]);
    }

    #[test]
    fn a_restore_moves_stream_time_to_the_batch_end_first() {
        let mut store = SegmentedKeyValueStore::in_memory_window_store("s", 2 * MINUTE);
        let (old, new) = (key(b"a", 0), key(b"a", 10 * MINUTE));
        store.restore_batch(&[(&old, Some(b"0")), (&new, Some(b"1"))]).unwrap();
        assert_eq!(store.segments.keys().copied().collect::<Vec<_>>(), vec![10]);
        assert_eq!(starts(&store), vec![(b"a".to_vec(), 10 * MINUTE)]);
        // A plain batch moves it record by record: the old record is written, then dropped with its segment.
        let mut store = SegmentedKeyValueStore::in_memory_window_store("s", 2 * MINUTE);
        store.write_batch(&[(&old, Some(b"0")), (&new, Some(b"1"))]).unwrap();
        assert_eq!(starts(&store), vec![(b"a".to_vec(), 10 * MINUTE)]);
    }

    #[test]
    fn a_bounded_restore_moves_stream_time_no_further_than_its_bound() {
        let mut store = SegmentedKeyValueStore::in_memory_window_store("s", 2 * MINUTE);
        let (old, new) = (key(b"a", MINUTE), key(b"a", 10 * MINUTE));
        // The input resumes at stream time 2 min: the window at 10 min comes from records to be redone.
        store.set_committed_stream_time(Some(2 * MINUTE));
        store.restore_batch(&[(&old, Some(b"0")), (&new, Some(b"1"))]).unwrap();
        assert_eq!(store.observed_stream_time(), Some(2 * MINUTE));
        assert_eq!(store.get(&old).unwrap(), Some(b"0".to_vec()), "still inside the retention at 2 min");
        assert_eq!(store.get(&new).unwrap(), Some(b"1".to_vec()));
        // Processing moves it on as usual.
        store.put(&key(b"b", 10 * MINUTE), b"2").unwrap();
        assert_eq!(store.get(&old).unwrap(), None);
    }

    #[test]
    fn segments_expired_after_the_committed_time_stay_on_disk_but_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let memory = RocksDbMemory::new(8 << 20, 2 << 20);
        let mut store = SegmentedKeyValueStore::rocksdb_window_store("w", dir.path(), &memory, 2 * MINUTE).unwrap();
        store.set_committed_stream_time(Some(0));
        store.put(&key(b"a", 0), b"0").unwrap();
        store.put(&key(b"a", 200_000), b"1").unwrap();
        // Segment 0 expired at 200 s, not at the committed 0 s: a crash now would redo records into it.
        assert!(dir.path().join("w.0").exists());
        assert_eq!(store.get(&key(b"a", 0)).unwrap(), None);
        assert_eq!(store.delete(&key(b"a", 0)).unwrap(), None);
        assert_eq!(starts(&store), vec![(b"a".to_vec(), 200_000)]);
        assert_eq!(store.approximate_num_entries().unwrap(), 1);
        store.close().unwrap(); // the process dies before its commit

        // The restart reopens the files and replays the changelog's tail no further than the committed
        // time: the window the redone records update is there.
        let mut store = SegmentedKeyValueStore::rocksdb_window_store("w", dir.path(), &memory, 2 * MINUTE).unwrap();
        store.set_committed_stream_time(Some(0));
        store.restore_batch(&[(&key(b"a", 200_000), Some(b"1"))]).unwrap();
        assert_eq!(store.get(&key(b"a", 0)).unwrap(), Some(b"0".to_vec()));
        // Redone up to 200 s and committed there: the next write lets the segment go.
        store.put(&key(b"a", 200_000), b"1").unwrap();
        assert!(dir.path().join("w.0").exists());
        store.set_committed_stream_time(Some(200_000));
        store.put(&key(b"b", 200_000), b"2").unwrap();
        assert!(!dir.path().join("w.0").exists());
    }

    #[test]
    fn deletes_return_the_old_value_and_create_no_segment() {
        let mut store = SegmentedKeyValueStore::in_memory_window_store("s", 2 * MINUTE);
        assert_eq!(store.delete(&key(b"a", 0)).unwrap(), None);
        assert!(store.segments.is_empty());
        store.put(&key(b"a", 0), b"1").unwrap();
        assert_eq!(store.delete(&key(b"a", 0)).unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(&key(b"a", 0)).unwrap(), None);
    }

    #[test]
    fn a_key_too_short_for_the_layout_is_an_error_naming_the_store() {
        let mut store = SegmentedKeyValueStore::in_memory_window_store("windows", MINUTE);
        let err = store.put(b"short", b"v").unwrap_err();
        assert!(err.to_string().contains("`windows`"), "{err}");
        assert!(err.to_string().contains("5 bytes"), "{err}");
    }

    #[test]
    fn session_stores_segment_and_hide_by_the_session_end() {
        let session =
            |user: &[u8], start: i64, end: i64| [user, &end.to_be_bytes()[..], &start.to_be_bytes()[..]].concat();
        let mut store = SegmentedKeyValueStore::in_memory_session_store("s", 10);
        store.put(&session(b"a", 0, 98), b"p").unwrap();
        store.put(&session(b"b", 108, 108), b"q").unwrap();
        assert_eq!(store.observed_stream_time(), Some(108));
        // 98 <= 108 - 10: hidden, though its segment lives.
        assert_eq!(store.get(&session(b"a", 0, 98)).unwrap(), None);
        store.put(&session(b"a", 99, 99), b"r").unwrap();
        assert_eq!(store.get(&session(b"a", 99, 99)).unwrap(), Some(b"r".to_vec()), "99 > 98: visible");
        // A delete moves the observed time too, as Kafka Streams' RocksDB store does.
        store.delete(&session(b"c", 500, 500)).unwrap();
        assert_eq!(store.observed_stream_time(), Some(500));
        let err = store.put(b"0123456789ab", b"v").unwrap_err().to_string();
        assert!(err.contains("12 bytes is not a session store key"), "{err}");
    }

    #[test]
    fn rocksdb_segments_are_reopened_and_expired_ones_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let memory = RocksDbMemory::new(8 << 20, 2 << 20);
        let mut store = SegmentedKeyValueStore::rocksdb_window_store("w", dir.path(), &memory, 2 * MINUTE).unwrap();
        assert!(store.persistent());
        store.put(&key(b"a", 0), b"0").unwrap();
        store.put(&key(b"a", 90_000), b"1").unwrap();
        store.flush().unwrap();
        store.close().unwrap();
        assert!(dir.path().join("w.0").exists() && dir.path().join("w.60000").exists());

        let mut store = SegmentedKeyValueStore::rocksdb_window_store("w", dir.path(), &memory, 2 * MINUTE).unwrap();
        assert_eq!(starts(&store), vec![(b"a".to_vec(), 0), (b"a".to_vec(), 90_000)]);
        store.put(&key(b"a", 200_000), b"2").unwrap();
        assert!(!dir.path().join("w.0").exists(), "segment 0 expired and its files went with it");
        assert_eq!(starts(&store), vec![(b"a".to_vec(), 90_000), (b"a".to_vec(), 200_000)]);
        store.close().unwrap();
        assert!(store.get(&key(b"a", 0)).is_err());
    }
}
