//! One behaviour, every store: the in-memory store, the RocksDB store, and the transactional and caching
//! layers over each are driven by the same random operations as a plain `BTreeMap` model (the way sled checks its tree
//! against a model), and must agree on every read, every range and prefix scan, across commits, aborts
//! and reopening the files.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use proptest::prelude::*;
use std::sync::Arc;

use state_store::{
    CacheBudget, CachingKeyValueStore, InMemoryKeyValueStore, KeyValueStore, ReadOnlyKeyValueStore,
    RocksDbKeyValueStore, RocksDbMemory, StateStore, TransactionalKeyValueStore,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    RocksDb,
    TransactionalMemory,
    TransactionalRocksDb,
    /// A record cache small enough that most writes leave it by eviction, not at the commit.
    CachingMemory,
    CachingRocksDb,
}

/// Room for about three small entries: writes are evicted to the store below all the time.
const CACHE_BYTES: usize = 3 * 110;

impl Kind {
    fn transactional(self) -> bool {
        matches!(self, Kind::TransactionalMemory | Kind::TransactionalRocksDb)
    }
    fn persistent(self) -> bool {
        matches!(self, Kind::RocksDb | Kind::TransactionalRocksDb | Kind::CachingRocksDb)
    }
    fn caching(self) -> bool {
        matches!(self, Kind::CachingMemory | Kind::CachingRocksDb)
    }
}

fn open(kind: Kind, dir: &Path, memory: &RocksDbMemory) -> Box<dyn KeyValueStore> {
    let rocks = || RocksDbKeyValueStore::open("s", dir.join("s"), memory).unwrap();
    match kind {
        Kind::Memory => Box::new(InMemoryKeyValueStore::new("s")),
        Kind::RocksDb => Box::new(rocks()),
        Kind::TransactionalMemory => Box::new(TransactionalKeyValueStore::new(InMemoryKeyValueStore::new("s"))),
        Kind::TransactionalRocksDb => Box::new(TransactionalKeyValueStore::new(rocks())),
        Kind::CachingMemory => Box::new(CachingKeyValueStore::new(
            InMemoryKeyValueStore::new("s"),
            Arc::new(CacheBudget::new(CACHE_BYTES)),
        )),
        Kind::CachingRocksDb => Box::new(CachingKeyValueStore::new(rocks(), Arc::new(CacheBudget::new(CACHE_BYTES)))),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    PutIfAbsent(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Get(Vec<u8>),
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
    Prefix(Vec<u8>),
    Commit,
    Abort,
    Reopen,
}

/// Keys from a few bytes that sit on the edges of unsigned ordering.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, 0x7f, 0x80, 0xfe, 0xff]), 0..4)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..8)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![Just(Bound::Unbounded), key().prop_map(Bound::Included), key().prop_map(Bound::Excluded)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (key(), value()).prop_map(|(k, v)| Op::PutIfAbsent(k, v)),
        3 => key().prop_map(Op::Delete),
        1 => prop::collection::vec((key(), prop::option::of(value())), 0..5).prop_map(Op::Batch),
        3 => key().prop_map(Op::Get),
        2 => (bound(), bound()).prop_map(|(a, b)| Op::Range(a, b)),
        2 => key().prop_map(Op::Prefix),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

/// What the store must contain: committed state, and the writes held since the last commit.
#[derive(Default)]
struct Model {
    committed: BTreeMap<Vec<u8>, Vec<u8>>,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Model {
    fn view(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut view = self.committed.clone();
        for (k, v) in &self.pending {
            match v {
                Some(v) => view.insert(k.clone(), v.clone()),
                None => view.remove(k),
            };
        }
        view
    }
    fn write(&mut self, kind: Kind, key: &[u8], value: Option<&[u8]>) {
        if kind.transactional() {
            self.pending.insert(key.to_vec(), value.map(<[u8]>::to_vec));
        } else {
            match value {
                Some(v) => self.committed.insert(key.to_vec(), v.to_vec()),
                None => self.committed.remove(key),
            };
        }
    }
    fn commit(&mut self) {
        for (k, v) in std::mem::take(&mut self.pending) {
            match v {
                Some(v) => self.committed.insert(k, v),
                None => self.committed.remove(&k),
            };
        }
    }
}

fn in_bounds(key: &[u8], from: &Bound<Vec<u8>>, to: &Bound<Vec<u8>>) -> bool {
    let lower = match from {
        Bound::Included(f) => key >= f.as_slice(),
        Bound::Excluded(f) => key > f.as_slice(),
        Bound::Unbounded => true,
    };
    let upper = match to {
        Bound::Included(t) => key <= t.as_slice(),
        Bound::Excluded(t) => key < t.as_slice(),
        Bound::Unbounded => true,
    };
    lower && upper
}

fn collect(iter: state_store::KeyValueIterator<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.collect::<Result<_, _>>().unwrap()
}

fn run(kind: Kind, ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let memory = RocksDbMemory::new(8 << 20, 2 << 20);
    let mut store = open(kind, dir.path(), &memory);
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let at = format!("{kind:?}, step {step}: {op:?}");
        match op {
            Op::Put(k, v) => {
                store.put(k, v).unwrap();
                model.write(kind, k, Some(v));
            }
            Op::PutIfAbsent(k, v) => {
                let existing = store.put_if_absent(k, v).unwrap();
                let expected = model.view().get(k).cloned();
                assert_eq!(existing, expected, "{at}");
                if expected.is_none() {
                    model.write(kind, k, Some(v));
                }
            }
            Op::Delete(k) => {
                let old = store.delete(k).unwrap();
                assert_eq!(old, model.view().get(k).cloned(), "{at}");
                model.write(kind, k, None);
            }
            Op::Batch(entries) => {
                let batch: Vec<(&[u8], Option<&[u8]>)> =
                    entries.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
                store.write_batch(&batch).unwrap();
                for (k, v) in entries {
                    model.write(kind, k, v.as_deref());
                }
            }
            Op::Get(k) => {
                assert_eq!(store.get(k).unwrap(), model.view().get(k).cloned(), "{at}");
                // What an interactive query reads: the committed state where writes are held, else the view.
                let committed = match store.committed() {
                    Some(committed) => collect(committed.all().unwrap()),
                    None => collect(store.all().unwrap()),
                };
                let want = if kind.transactional() { model.committed.clone() } else { model.view() };
                assert_eq!(committed, want.into_iter().collect::<Vec<_>>(), "{at}: committed reads");
            }
            Op::Range(from, to) => {
                let got =
                    collect(store.range(from.as_ref().map(Vec::as_slice), to.as_ref().map(Vec::as_slice)).unwrap());
                let want: Vec<_> = model.view().into_iter().filter(|(k, _)| in_bounds(k, from, to)).collect();
                assert_eq!(got, want, "{at}");
            }
            Op::Prefix(p) => {
                let got = collect(store.prefix_scan(p).unwrap());
                let want: Vec<_> = model.view().into_iter().filter(|(k, _)| k.starts_with(p)).collect();
                assert_eq!(got, want, "{at}");
            }
            Op::Commit => {
                store.flush().unwrap();
                model.commit();
            }
            // What an abort leaves of a cache's writes depends on which were evicted before it (both
            // outcomes are allowed: a cache is not a transaction), so the model cannot say.
            Op::Abort if kind.caching() => {}
            Op::Abort => {
                store.discard_uncommitted().unwrap();
                model.pending.clear();
            }
            Op::Reopen if kind.persistent() => {
                // Closing without a commit drops what was held; what was written through survives.
                // (A cache is written out first, for the same reason as above.)
                if kind.caching() {
                    store.flush().unwrap();
                }
                store.close().unwrap();
                drop(store);
                store = open(kind, dir.path(), &memory);
                model.pending.clear();
            }
            Op::Reopen => {}
        }
    }
    let all = collect(store.all().unwrap());
    assert_eq!(all, model.view().into_iter().collect::<Vec<_>>(), "{kind:?}: final contents");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_behaves_as_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(Kind::Memory, &ops);
        run(Kind::TransactionalMemory, &ops);
        run(Kind::CachingMemory, &ops);
    }

    #[test]
    fn rocksdb_store_behaves_as_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(Kind::RocksDb, &ops);
        run(Kind::TransactionalRocksDb, &ops);
        run(Kind::CachingRocksDb, &ops);
    }
}

#[test]
fn rocksdb_store_keeps_its_contents_across_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RocksDbMemory::default();
    let path = dir.path().join("0_1").join("rocksdb").join("counts");
    let mut store = RocksDbKeyValueStore::open("counts", &path, &memory).unwrap();
    store.put(b"alice", b"3").unwrap();
    store.put(b"bob", b"5").unwrap();
    store.delete(b"bob").unwrap();
    store.close().unwrap();
    assert!(matches!(store.get(b"alice"), Err(state_store::StoreError::Closed { .. })));
    drop(store);

    let store = RocksDbKeyValueStore::open("counts", &path, &memory).unwrap();
    assert_eq!(store.get(b"alice").unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get(b"bob").unwrap(), None);
    assert!(store.persistent());
}

/// A restore in bulk mode (sorted runs ingested as SST files) ends with the contents plain
/// writes give: overwrites and deletes applied in changelog order, on top of what the store held, in key
/// order, kept across a reopen; reads during the restore see it too, and closing mid-restore loses
/// nothing written.
#[test]
fn a_bulk_restore_gives_the_contents_plain_writes_give() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RocksDbMemory::default();
    let path = dir.path().join("0_3").join("rocksdb").join("totals");
    let mut store = RocksDbKeyValueStore::open("totals", &path, &memory).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    store.put(b"before", b"0").unwrap();
    model.insert(b"before".to_vec(), b"0".to_vec());

    let changelog: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0u32..30_000)
        .map(|i| {
            let key = (i.wrapping_mul(2_654_435_761) % 7_000).to_be_bytes().to_vec();
            let value = (i % 11 != 0).then(|| i.to_le_bytes().to_vec());
            (key, value)
        })
        .collect();
    store.begin_restore().unwrap();
    for chunk in changelog.chunks(4_000) {
        let batch: Vec<(&[u8], Option<&[u8]>)> = chunk.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
        store.restore_batch(&batch).unwrap();
    }
    for (key, value) in &changelog {
        match value {
            Some(value) => model.insert(key.clone(), value.clone()),
            None => model.remove(key),
        };
    }
    let (probe, want) = model.iter().nth(100).unwrap();
    assert_eq!(store.get(probe).unwrap().as_ref(), Some(want), "a read during the restore");
    store.end_restore().unwrap();
    assert_eq!(collect(store.all().unwrap()), model.clone().into_iter().collect::<Vec<_>>());

    store.begin_restore().unwrap();
    store.restore_batch(&[(b"late", Some(b"1"))]).unwrap();
    model.insert(b"late".to_vec(), b"1".to_vec());
    store.close().unwrap();
    drop(store);
    let store = RocksDbKeyValueStore::open("totals", &path, &memory).unwrap();
    assert_eq!(collect(store.all().unwrap()), model.into_iter().collect::<Vec<_>>());
}

#[test]
fn open_stores_take_their_allowance_from_the_shared_cache_and_give_it_back() {
    use state_store::{BASE_ALLOWANCE, PER_STORE_ALLOWANCE};
    let dir = tempfile::tempdir().unwrap();
    let memory = RocksDbMemory::new(64 << 20, 16 << 20);
    assert_eq!(memory.cache_capacity(), 64 << 20);
    let mut a = RocksDbKeyValueStore::open("a", dir.path().join("a"), &memory).unwrap();
    let b = RocksDbKeyValueStore::open("b", dir.path().join("b"), &memory).unwrap();
    assert_eq!(memory.cache_capacity(), (64 << 20) - BASE_ALLOWANCE - 2 * PER_STORE_ALLOWANCE);
    a.close().unwrap();
    a.close().unwrap(); // closing twice gives back once
    assert_eq!(memory.cache_capacity(), (64 << 20) - BASE_ALLOWANCE - PER_STORE_ALLOWANCE);
    drop(a);
    drop(b); // dropped without close
    assert_eq!(memory.cache_capacity(), 64 << 20);
    // However many stores, the cache keeps a quarter of the budget.
    let many: Vec<_> = (0..300)
        .map(|i| RocksDbKeyValueStore::open(format!("s{i}"), dir.path().join(format!("s{i}")), &memory).unwrap())
        .collect();
    assert_eq!(memory.cache_capacity(), 16 << 20);
    drop(many);
    assert_eq!(memory.cache_capacity(), 64 << 20);
}

#[test]
fn an_aborted_commit_leaves_nothing_in_the_rocksdb_files() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RocksDbMemory::default();
    let path = dir.path().join("s");
    let mut store = TransactionalKeyValueStore::new(RocksDbKeyValueStore::open("s", &path, &memory).unwrap());
    store.put(b"k", b"committed").unwrap();
    store.flush().unwrap();
    store.put(b"k", b"aborted").unwrap();
    store.put(b"other", b"aborted").unwrap();
    assert!(store.uncommitted_bytes() > 0);
    assert_eq!(store.inner().get(b"k").unwrap(), Some(b"committed".to_vec()), "held, not written through");
    store.discard_uncommitted().unwrap();
    assert_eq!(store.uncommitted_bytes(), 0);
    store.put(b"crash", b"never committed").unwrap();
    store.close().unwrap(); // a crash: the held write is gone
    drop(store);

    let reopened = RocksDbKeyValueStore::open("s", &path, &memory).unwrap();
    let all = collect(reopened.all().unwrap());
    assert_eq!(all, vec![(b"k".to_vec(), b"committed".to_vec())]);
}

#[test]
fn a_million_keys_iterate_in_key_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RocksDbMemory::default();
    let mut store = RocksDbKeyValueStore::open("big", dir.path().join("big"), &memory).unwrap();
    const N: u32 = 1_000_000;
    // Written in a scrambled order (a multiplicative permutation of 0..N), in batches.
    let mut batch_keys = Vec::with_capacity(10_000);
    for i in 0..N {
        let k = (i as u64 * 7_919 % N as u64) as u32;
        batch_keys.push(k.to_be_bytes());
        if batch_keys.len() == 10_000 {
            let batch: Vec<(&[u8], Option<&[u8]>)> = batch_keys.iter().map(|k| (&k[..], Some(&k[..]))).collect();
            store.write_batch(&batch).unwrap();
            batch_keys.clear();
        }
    }
    let mut expected = 0u32;
    for kv in store.all().unwrap() {
        let (k, v) = kv.unwrap();
        assert_eq!(k, expected.to_be_bytes(), "keys come out in order");
        assert_eq!(v, k);
        expected += 1;
    }
    assert_eq!(expected, N);
    let from = 500_000u32.to_be_bytes();
    let to = 500_009u32.to_be_bytes();
    let range = collect(store.range(Bound::Included(&from[..]), Bound::Excluded(&to[..])).unwrap());
    assert_eq!(range.len(), 9);
    assert_eq!(collect(store.prefix_scan(&[0x00, 0x07]).unwrap()).len(), 256 * 256);
}

#[test]
fn a_cache_writes_each_key_once_per_commit_and_evicts_the_oldest_over_budget() {
    use state_store::{ChangeLoggingKeyValueStore, ChangelogWriter};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<(Vec<u8>, Option<Vec<u8>>)>>>);
    impl ChangelogWriter for Log {
        fn log(&mut self, key: &[u8], value: Option<&[u8]>) {
            self.0.lock().unwrap().push((key.to_vec(), value.map(<[u8]>::to_vec)));
        }
    }

    let log = Log::default();
    let logged = ChangeLoggingKeyValueStore::new(InMemoryKeyValueStore::new("s"), Box::new(log.clone()));
    let budget = Arc::new(CacheBudget::new(1 << 20));
    let mut store = CachingKeyValueStore::new(logged, budget.clone());
    for i in 0..100u8 {
        store.put(b"a", &[i]).unwrap();
        store.put(b"b", &[i]).unwrap();
    }
    store.delete(b"b").unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(vec![99]));
    assert!(log.0.lock().unwrap().is_empty(), "nothing leaves the cache before the commit");
    store.flush_cache().unwrap();
    assert_eq!(*log.0.lock().unwrap(), vec![(b"a".to_vec(), Some(vec![99])), (b"b".to_vec(), None)]);
    assert_eq!(budget.used(), 0);

    // A budget for about two entries: the third write evicts the oldest.
    let log = Log::default();
    let logged = ChangeLoggingKeyValueStore::new(InMemoryKeyValueStore::new("s"), Box::new(log.clone()));
    let mut store = CachingKeyValueStore::new(logged, Arc::new(CacheBudget::new(2 * 100)));
    store.put(b"x", b"1").unwrap();
    store.put(b"y", b"1").unwrap();
    store.put(b"x", b"2").unwrap(); // x is now the youngest
    store.put(b"z", b"1").unwrap();
    assert_eq!(*log.0.lock().unwrap(), vec![(b"y".to_vec(), Some(b"1".to_vec()))]);
    assert_eq!(store.get(b"y").unwrap(), Some(b"1".to_vec()), "read from the store below");
}

/// Discards what a change-logging layer logs.
struct NoChangelog;

impl state_store::ChangelogWriter for NoChangelog {
    fn log(&mut self, _: &[u8], _: Option<&[u8]>) {}
}

/// The stack exactly-once builds for a cached, logged store (cache, change logger, held writes, store):
/// what interactive queries read (`committed`) shows a write only once its commit is done, whether it
/// sat in the cache or among the held writes, and never one whose commit was dropped.
#[test]
fn an_exactly_once_stack_shows_readers_committed_writes_only() {
    let logged = state_store::ChangeLoggingKeyValueStore::new(
        TransactionalKeyValueStore::new(InMemoryKeyValueStore::new("s")),
        Box::new(NoChangelog),
    );
    let mut store = CachingKeyValueStore::new(logged, Arc::new(CacheBudget::new(1 << 20)));
    let read = |store: &CachingKeyValueStore<_>| collect(store.committed().expect("a boundary below").all().unwrap());
    store.put(b"a", b"1").unwrap();
    assert_eq!(read(&store), vec![], "in the cache");
    store.flush_cache().unwrap();
    assert_eq!(read(&store), vec![], "held until the commit");
    store.commit().unwrap();
    assert_eq!(read(&store), vec![(b"a".to_vec(), b"1".to_vec())]);
    store.put(b"a", b"2").unwrap();
    store.flush_cache().unwrap();
    store.discard_uncommitted().unwrap();
    assert_eq!(read(&store), vec![(b"a".to_vec(), b"1".to_vec())], "a dropped commit never shows");
}

/// The stack at-least-once builds for a store whose deletes are logged at the commit (held deletes, change
/// logger, store): no transaction boundary, so readers see the store as processed, deletes included.
#[test]
fn an_at_least_once_stack_holding_deletes_shows_readers_what_was_processed() {
    let mut store = TransactionalKeyValueStore::holding_deletes(state_store::ChangeLoggingKeyValueStore::new(
        InMemoryKeyValueStore::new("s"),
        Box::new(NoChangelog),
    ));
    store.put(b"a", b"1").unwrap();
    store.put(b"b", b"1").unwrap();
    store.delete(b"a").unwrap();
    assert!(store.committed().is_none(), "no boundary: reads of the store are the view");
    assert_eq!(collect(store.all().unwrap()), vec![(b"b".to_vec(), b"1".to_vec())]);
}
