//! # state-store: where a stream task keeps its state
//!
//! Stream processors that aggregate, join or deduplicate keep state in *stores*. This crate defines what a
//! store is and ships the implementations; it knows nothing of Kafka (dependencies point one way:
//! `streams-core` → `state-store`).
//!
//! - `store`: the byte-level traits every store implements, [`ReadOnlyKeyValueStore`] for readers and
//!   [`KeyValueStore`] for writers. Keys order by their bytes (lexicographically), as in RocksDB and Kafka
//!   Streams, so range and prefix scans mean the same thing whatever the implementation.
//! - `memory`: [`InMemoryKeyValueStore`], a `BTreeMap` behind the traits.
//! - `rocksdb`: [`RocksDbKeyValueStore`], a RocksDB database per store, without a write-ahead log,
//!   sharing one memory budget ([`RocksDbMemory`]) with every other store of the instance.
//! - `segmented`: [`SegmentedKeyValueStore`], a window store cut into time segments (in memory or one
//!   RocksDB database each), so that its retention drops whole segments.
//! - `transactional`: [`TransactionalKeyValueStore`], which holds a commit's writes apart and applies
//!   them only when the commit succeeds (KIP-892), so an aborted commit leaves no trace in the store.
//! - `record_cache`: [`RecordCache`], the one record cache of the library (the latest entry per key,
//!   oldest first), used by the DSL's aggregations and by the caching store; [`CacheBudget`] is the
//!   memory a stream thread's caches share.
//! - `cache`: [`CachingKeyValueStore`], the record cache in front of a Processor-API store: repeated
//!   writes of a key between commits reach the store and its changelog once.
//! - `checkpoint`: [`OffsetCheckpoint`], the `.checkpoint` file recording how far into its changelog
//!   each local store is.
//! - `changelog`: [`ChangeLoggingKeyValueStore`], which reports every write to a [`ChangelogWriter`]
//!   (the runtime writes them to a compacted topic), and restores without logging again.
//! - `error`: [`StoreError`], naming the store at fault.
//!
//! Typed access (serdes, `get(&K) -> Option<V>`) is layered on top by `streams-core`, the same way Kafka
//! Streams wraps a `KeyValueStore<Bytes, byte[]>` in a metered, typed store.

mod cache;
mod changelog;
mod checkpoint;
mod error;
mod memory;
mod record_cache;
mod rocksdb;
mod segmented;
mod store;
mod transactional;

pub use cache::CachingKeyValueStore;
pub use changelog::{ChangeLoggingKeyValueStore, ChangelogWriter};
pub use checkpoint::{CheckpointError, OffsetCheckpoint, Offsets};
pub use error::StoreError;
pub use memory::InMemoryKeyValueStore;
pub use record_cache::{CacheBudget, RecordCache, ENTRY_OVERHEAD};
pub use rocksdb::{holds_files, RocksDbKeyValueStore, RocksDbMemory, BASE_ALLOWANCE, PER_STORE_ALLOWANCE};
pub use segmented::SegmentedKeyValueStore;
pub use store::{KeyValue, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
pub use transactional::TransactionalKeyValueStore;
