//! A key-value store on RocksDB files, one database per store per task, as Kafka Streams lays them out
//! (`<state.dir>/<application.id>/<task>/rocksdb/<store>`).
//!
//! Choices, and why:
//! - **No write-ahead log.** The changelog topic is the log: whatever RocksDB loses in a crash is restored
//!   from there, and the checkpoint written after each flush says from where. Writing a WAL too would pay
//!   for durability twice.
//! - **One memory budget for all stores.** Every store opened with the same [`RocksDbMemory`] shares one
//!   LRU block cache, and its memtables are charged to that cache through a write-buffer manager, so
//!   64 stores cost what one budget allows, not 64 × (block cache + memtables) as RocksDB's defaults would.
//! - **No compression**, as Kafka Streams: state is read back often and is usually small.
//! - **Restore mode** bulk-loads: replayed changelog records skip the write path. They are collected in
//!   runs the size of the store's memtables, each sorted and written to an SST file that the database
//!   ingests (`restore_run.rs`), and automatic compactions wait until the restore ends; RocksDB then
//!   compacts in the background. A read or write during a restore first ingests the run, so it sees
//!   every restored record and lands after them.

mod restore_run;

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ::rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, DBRawIteratorWithThreadMode, ErrorKind, LogLevel, Options,
    ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use restore_run::Restoring;

use crate::store::{
    empty_range, prefix_successor, KeyValue, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore,
};
use crate::StoreError;

/// The memory every RocksDB store of one application instance shares: an LRU block cache, memtables
/// limited to `write_buffer_bytes` and charged to that same cache, and an allowance for what each open
/// database holds outside the cache. The total stays near `cache_bytes` however many stores are open.
/// Cheap to clone: clones share the budget.
///
/// Why an allowance: every open database also keeps table readers, a MANIFEST writer, column-family
/// and version metadata of its own, outside any cache: without an allowance, many stores overshoot the
/// budget in resident memory (figures in docs/state.md, "RocksDB settings, and why"). So the block
/// cache gives up [`BASE_ALLOWANCE`] once a store is open, plus
/// [`PER_STORE_ALLOWANCE`] for every open store (never going below a quarter of the budget, so a crowd
/// of stores still has a cache), and takes it back as stores close.
///
/// Memtables past `write_buffer_bytes` make the database being written flush; they do not stall its
/// writes: with many databases, RocksDB's stalling write-buffer manager can wait forever for memory
/// that only idle databases hold (tried: 64 stores hung with no CPU in use).
#[derive(Clone)]
pub struct RocksDbMemory {
    inner: Arc<MemoryInner>,
}

/// What an open RocksDB database holds outside the shared cache (measured: docs/state.md).
pub const PER_STORE_ALLOWANCE: usize = 320 << 10;

/// What RocksDB holds outside the cache once any store is open, however many: its background flush and
/// compaction threads with their allocator arenas (measured: docs/state.md).
pub const BASE_ALLOWANCE: usize = 8 << 20;

struct MemoryInner {
    cache: Cache,
    write_buffers: WriteBufferManager,
    cache_bytes: usize,
    write_buffer_bytes: usize,
    open_stores: std::sync::Mutex<usize>,
}

impl RocksDbMemory {
    /// A budget of `cache_bytes` in all, of which memtables may take up to `write_buffer_bytes`.
    pub fn new(cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        let cache = Cache::new_lru_cache(cache_bytes);
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(write_buffer_bytes, false, cache.clone());
        RocksDbMemory {
            inner: Arc::new(MemoryInner {
                cache,
                write_buffers,
                cache_bytes,
                write_buffer_bytes,
                open_stores: std::sync::Mutex::new(0),
            }),
        }
    }

    /// Bytes the shared cache holds now (blocks and the memtables charged to it).
    pub fn usage(&self) -> usize {
        self.inner.cache.get_usage()
    }

    /// Bytes the memtables of all stores take now.
    pub fn write_buffer_usage(&self) -> usize {
        self.inner.write_buffers.get_usage()
    }

    /// The configured total.
    pub fn cache_bytes(&self) -> usize {
        self.inner.cache_bytes
    }

    /// The configured memtable share.
    pub fn write_buffer_bytes(&self) -> usize {
        self.inner.write_buffer_bytes
    }

    /// The block cache's capacity now: the budget less the allowance of every open store.
    pub fn cache_capacity(&self) -> usize {
        self.capacity_for(*self.open_stores())
    }

    fn open_stores(&self) -> std::sync::MutexGuard<'_, usize> {
        self.inner.open_stores.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn capacity_for(&self, stores: usize) -> usize {
        let budget = self.inner.cache_bytes;
        let outside = if stores == 0 { 0 } else { BASE_ALLOWANCE + stores * PER_STORE_ALLOWANCE };
        budget.saturating_sub(outside).max(budget / 4)
    }

    /// A store opened (`+1`) or closed (`-1`): the cache's capacity follows.
    fn stores_changed(&self, delta: isize) {
        let mut stores = self.open_stores();
        *stores = stores.saturating_add_signed(delta);
        // A clone of the cache handle resizes the one shared cache.
        self.inner.cache.clone().set_capacity(self.capacity_for(*stores));
    }
}

impl Default for RocksDbMemory {
    /// 64 MiB in all, up to 16 MiB of it for memtables.
    fn default() -> Self {
        RocksDbMemory::new(64 << 20, 16 << 20)
    }
}

impl fmt::Debug for RocksDbMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbMemory")
            .field("cache_bytes", &self.inner.cache_bytes)
            .field("write_buffer_bytes", &self.inner.write_buffer_bytes)
            .field("usage", &self.usage())
            .finish()
    }
}

/// A [`KeyValueStore`] on a RocksDB database of its own.
///
/// ```
/// use state_store::{KeyValueStore, ReadOnlyKeyValueStore, RocksDbKeyValueStore, RocksDbMemory, StateStore};
///
/// let dir = tempfile::tempdir()?;
/// let memory = RocksDbMemory::default();
/// let mut store = RocksDbKeyValueStore::open("counts", dir.path().join("counts"), &memory)?;
/// store.put(b"apple", b"3")?;
/// store.flush()?;
/// store.close()?;
///
/// let store = RocksDbKeyValueStore::open("counts", dir.path().join("counts"), &memory)?;
/// assert_eq!(store.get(b"apple")?, Some(b"3".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RocksDbKeyValueStore {
    name: String,
    path: PathBuf,
    /// Shared with a restore's writer thread.
    db: Option<Arc<DB>>,
    write: WriteOptions,
    /// In restore mode: replayed records not in the database yet (see `restore_run.rs`). A mutex only
    /// because reads, which take `&self`, put them in first.
    restoring: Option<Mutex<Restoring>>,
    /// This store's share of the budget, given back when the database closes (declared after `db`, so
    /// that a dropped store closes its database first).
    registration: Option<Registration>,
}

/// An open store counted in its [`RocksDbMemory`]; dropping it gives the store's allowance back.
struct Registration(RocksDbMemory);

impl Registration {
    fn new(memory: &RocksDbMemory) -> Self {
        memory.stores_changed(1);
        Registration(memory.clone())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.stores_changed(-1);
    }
}

impl fmt::Debug for RocksDbKeyValueStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksDbKeyValueStore").field("name", &self.name).field("path", &self.path).finish()
    }
}

impl RocksDbKeyValueStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(name: impl Into<String>, path: impl Into<PathBuf>, memory: &RocksDbMemory) -> Result<Self, StoreError> {
        let (name, path) = (name.into(), path.into());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| backend(&name, format!("create {}", parent.display()), e))?;
        }
        let db = open_db(&name, &path, &options(memory))?;
        // A run file left by a process that died while writing it was never ingested: its records are
        // replayed again, as the checkpoint does not cover them.
        match std::fs::remove_file(path.join(RUN_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(backend(&name, format!("delete {}", path.join(RUN_FILE).display()), e));
            }
            _ => {}
        }
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        let registration = Some(Registration::new(memory));
        Ok(RocksDbKeyValueStore { name, path, db: Some(Arc::new(db)), write, restoring: None, registration })
    }

    /// Deletes the database at `path` and its files (a store must not have it open). Used to wipe a store
    /// whose checkpoint cannot be trusted before it is restored from scratch.
    pub fn destroy(name: &str, path: &Path) -> Result<(), StoreError> {
        if !path.exists() {
            return Ok(());
        }
        std::fs::remove_dir_all(path).map_err(|e| backend(name, format!("delete {}", path.display()), e))
    }

    /// The database with every restored record in it: during a restore, the records not in it yet are
    /// put in first, so a read sees them and a write lands after them.
    fn db(&self) -> Result<&DB, StoreError> {
        let db = self.db_as_is()?;
        if let Some(restoring) = &self.restoring {
            restoring.lock().unwrap_or_else(PoisonError::into_inner).settle(db)?;
        }
        Ok(db)
    }

    fn db_as_is(&self) -> Result<&Arc<DB>, StoreError> {
        self.db.as_ref().ok_or_else(|| StoreError::Closed { store: self.name.clone() })
    }

    /// Turns RocksDB's automatic compactions on or off (a live option: no reopening).
    fn auto_compactions(&self, on: bool) -> Result<(), StoreError> {
        let value = if on { "false" } else { "true" };
        self.db_as_is()?
            .set_options(&[("disable_auto_compactions", value)])
            .map_err(|e| backend(&self.name, "set disable_auto_compactions".into(), e))
    }

    fn iterate<'a>(
        &'a self,
        lower: Option<Vec<u8>>,
        upper: Option<Vec<u8>>,
        skip: Option<Vec<u8>>,
    ) -> Result<KeyValueIterator<'a>, StoreError> {
        let db = self.db()?;
        let mut read = ReadOptions::default();
        if let Some(lower) = lower {
            read.set_iterate_lower_bound(lower);
        }
        if let Some(upper) = upper {
            read.set_iterate_upper_bound(upper);
        }
        let mut raw = db.raw_iterator_opt(read);
        raw.seek_to_first();
        Ok(Box::new(RocksDbIter { raw, skip, name: &self.name, path: &self.path, done: false }))
    }
}

/// The file a restore run is written to before the database ingests it, in the database's directory.
const RUN_FILE: &str = "restore-run.sst";

/// Whether directory `dir` exists and holds anything: a store's files that a checkpoint can vouch for.
pub fn holds_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Opens the database at `path`, creating it when the directory holds nothing yet.
fn open_db(name: &str, path: &Path, options: &Options) -> Result<DB, StoreError> {
    // RocksDB makes a new, empty database wherever it finds no CURRENT file, whatever else is there: the
    // files of a database without one are a damaged database, not a missing one, and a checkpoint would
    // vouch for the empty store in its place.
    let has_files = holds_files(path);
    if has_files && !path.join("CURRENT").exists() {
        return Err(corrupt(name, path, "the CURRENT file is missing".into()));
    }
    DB::open(options, path).map_err(|e| {
        // A file the MANIFEST names that is gone is damage too, though RocksDB calls it an I/O error.
        let missing = e.kind() == ErrorKind::IOError && e.to_string().contains("No such file or directory");
        if has_files && missing {
            return corrupt(name, path, format!("open: {e}"));
        }
        db_error(name, path, "open", e)
    })
}

/// [`StoreError::Corrupt`] for the store `store` whose files are in `path`.
fn corrupt(store: &str, path: &Path, message: String) -> StoreError {
    StoreError::Corrupt { store: store.to_string(), path: path.to_path_buf(), message }
}

/// RocksDB's `error` in `what` as the store's: one that says the files are damaged (a checksum that does
/// not match, a file cut short) is [`StoreError::Corrupt`], so the runtime can restore the store afresh.
fn db_error(store: &str, path: &Path, what: &str, error: ::rocksdb::Error) -> StoreError {
    if error.kind() == ErrorKind::Corruption {
        return corrupt(store, path, format!("{what}: {error}"));
    }
    backend(store, what.to_string(), error)
}

/// The options every store gets: the shared cache and memtable budget, no compression, bloom filters.
fn options(memory: &RocksDbMemory) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&memory.inner.cache);
    // Index and filter blocks in the cache too, so they count against the budget.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_block_size(4 << 10);
    table.set_bloom_filter(10.0, false);
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_block_based_table_factory(&table);
    options.set_write_buffer_manager(&memory.inner.write_buffers);
    options.set_write_buffer_size(memtable_bytes(memory));
    options.set_max_write_buffer_number(MEMTABLES);
    // Memtables grow in arena blocks (by default an eighth of the write buffer each): keep them small,
    // or many mostly-idle stores would each pin a large block outside the budget.
    options.set_arena_block_size(64 << 10);
    options.set_compression_type(DBCompressionType::None);
    options.set_log_level(LogLevel::Warn);
    options.set_keep_log_file_num(1);
    options
}

/// A store's memtables at most (the active one and those being flushed).
const MEMTABLES: i32 = 3;

/// The size of one memtable of a store: a quarter of the shared memtable budget, so a few stores cannot
/// starve the rest, and at most 16 MiB, Kafka Streams' size.
fn memtable_bytes(memory: &RocksDbMemory) -> usize {
    (memory.inner.write_buffer_bytes / 4).clamp(64 << 10, 16 << 20)
}

fn backend(store: &str, what: String, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend { store: store.to_string(), message: format!("{what}: {error}"), source: Some(Box::new(error)) }
}

struct RocksDbIter<'a> {
    raw: DBRawIteratorWithThreadMode<'a, DB>,
    /// An excluded lower bound: skipped if the first key equals it.
    skip: Option<Vec<u8>>,
    name: &'a str,
    path: &'a Path,
    done: bool,
}

impl Iterator for RocksDbIter<'_> {
    type Item = Result<KeyValue, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(skip) = self.skip.take()
            && self.raw.key() == Some(skip.as_slice())
        {
            self.raw.next();
        }
        match self.raw.item() {
            Some((key, value)) => {
                let item = (key.to_vec(), value.to_vec());
                self.raw.next();
                Some(Ok(item))
            }
            None => {
                self.done = true;
                self.raw.status().err().map(|e| Err(db_error(self.name, self.path, "iterate", e)))
            }
        }
    }
}

impl StateStore for RocksDbKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn property(&self, name: &str) -> Option<u64> {
        self.db().ok()?.property_int_value(name).ok()?
    }

    /// Writes the memtables to SST files: with the write-ahead log off, this is what makes writes durable.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.db()?.flush().map_err(|e| db_error(&self.name, &self.path, "flush", e))
    }

    /// A store closed mid-restore keeps what it restored so far (as a flush would) and needs no options
    /// put back: the next open uses the normal ones.
    fn close(&mut self) -> Result<(), StoreError> {
        let settled = match (&self.db, self.restoring.take()) {
            (Some(db), Some(restoring)) => restoring.into_inner().unwrap_or_else(PoisonError::into_inner).settle(db),
            _ => Ok(()),
        };
        // Dropping the database closes it; RocksDB flushes unpersisted memtables on the way out.
        self.db = None;
        self.registration = None;
        settled
    }

    fn persistent(&self) -> bool {
        true
    }

    fn is_open(&self) -> bool {
        self.db.is_some()
    }

    fn begin_restore(&mut self) -> Result<(), StoreError> {
        if self.restoring.is_none() {
            let memory = self.registration.as_ref().ok_or_else(|| StoreError::Closed { store: self.name.clone() })?;
            // A run as large as the store's memtables may grow.
            let run_bytes = memtable_bytes(&memory.0) * MEMTABLES as usize;
            let restoring = Restoring::new(&self.name, self.path.join(RUN_FILE), options(&memory.0), run_bytes);
            self.auto_compactions(false)?;
            self.restoring = Some(Mutex::new(restoring));
        }
        Ok(())
    }

    fn end_restore(&mut self) -> Result<(), StoreError> {
        if let Some(restoring) = self.restoring.take() {
            restoring.into_inner().unwrap_or_else(PoisonError::into_inner).settle(self.db_as_is()?)?;
            self.auto_compactions(true)?;
        }
        Ok(())
    }
}

impl ReadOnlyKeyValueStore for RocksDbKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db()?.get(key).map_err(|e| db_error(&self.name, &self.path, "get", e))
    }

    fn range<'a>(&'a self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValueIterator<'a>, StoreError> {
        if empty_range(from, to) {
            return Ok(Box::new(std::iter::empty()));
        }
        let (lower, skip) = match from {
            Bound::Included(k) => (Some(k.to_vec()), None),
            Bound::Excluded(k) => (Some(k.to_vec()), Some(k.to_vec())),
            Bound::Unbounded => (None, None),
        };
        let upper = match to {
            // The immediate successor of `k` is `k` followed by a zero byte.
            Bound::Included(k) => Some([k, &[0]].concat()),
            Bound::Excluded(k) => Some(k.to_vec()),
            Bound::Unbounded => None,
        };
        self.iterate(lower, upper, skip)
    }

    fn prefix_scan<'a>(&'a self, prefix: &[u8]) -> Result<KeyValueIterator<'a>, StoreError> {
        self.iterate(Some(prefix.to_vec()), prefix_successor(prefix), None)
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        let n = self
            .db()?
            .property_int_value("rocksdb.estimate-num-keys")
            .map_err(|e| backend(&self.name, "estimate entries".into(), e))?;
        Ok(n.unwrap_or(0))
    }
}

impl KeyValueStore for RocksDbKeyValueStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db()?.put_opt(key, value, &self.write).map_err(|e| db_error(&self.name, &self.path, "put", e))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(key)?;
        if old.is_some() {
            self.db()?.delete_opt(key, &self.write).map_err(|e| db_error(&self.name, &self.path, "delete", e))?;
        }
        Ok(old)
    }

    /// In restore mode the records join the restore run (written out when it is full); otherwise they are
    /// one write batch.
    fn restore_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        match (&mut self.restoring, &self.db) {
            (Some(restoring), Some(db)) => restoring.get_mut().unwrap_or_else(PoisonError::into_inner).add(db, entries),
            _ => self.write_batch(entries),
        }
    }

    /// One RocksDB write batch: all of it lands, or none of it.
    fn write_batch(&mut self, entries: &[(&[u8], Option<&[u8]>)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        self.db()?.write_opt(batch, &self.write).map_err(|e| db_error(&self.name, &self.path, "write batch", e))
    }
}
