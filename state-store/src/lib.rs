//! # state-store: where a stream task keeps its state
//!
//! Stream processors that aggregate, join or deduplicate keep state in *stores*. This crate defines what a
//! store is and ships the implementations; it knows nothing of Kafka (dependencies point one way:
//! `streams-core` → `state-store`).
//!
//! - [`store`]: the byte-level traits every store implements, [`ReadOnlyKeyValueStore`] for readers and
//!   [`KeyValueStore`] for writers. Keys order by their bytes (lexicographically), as in RocksDB and Kafka
//!   Streams, so range and prefix scans mean the same thing whatever the implementation.
//! - [`memory`]: [`InMemoryKeyValueStore`], a `BTreeMap` behind the traits.
//! - [`changelog`]: [`ChangeLoggingKeyValueStore`], which reports every write to a [`ChangelogWriter`]
//!   (the runtime writes them to a compacted topic), and restores without logging again.
//! - [`error`]: [`StoreError`], naming the store at fault.
//!
//! Typed access (serdes, `get(&K) -> Option<V>`) is layered on top by `streams-core`, the same way Kafka
//! Streams wraps a `KeyValueStore<Bytes, byte[]>` in a metered, typed store.

pub mod changelog;
pub mod error;
pub mod memory;
pub mod store;

pub use changelog::{ChangeLoggingKeyValueStore, ChangelogWriter};
pub use error::StoreError;
pub use memory::InMemoryKeyValueStore;
pub use store::{KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, StateStore};
