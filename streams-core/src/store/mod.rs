//! Typed state stores on top of `state-store`'s byte stores: how a processor reads and writes `K -> V`,
//! and how a topology declares the stores it needs.
//!
//! Layers, as in Kafka Streams (`Metered(Caching(ChangeLogging(RocksDB)))`): [`TypedKeyValueStore`] is
//! the outer, typed layer that processors see; below it any [`state_store::KeyValueStore`]. A
//! [`StoreBuilder`] (from [`Stores`]) says which store, with which serdes, and whether its writes are
//! logged to a changelog topic.

mod builder;
mod keyed_scan;
pub(crate) mod metered;
mod session;
mod suppression;
mod timestamped;
mod typed;
mod versioned;
mod window;

pub use builder::{
    InMemoryKeyValueBytesStoreSupplier, KeyValueBytesStoreSupplier, RocksDbKeyValueBytesStoreSupplier, StoreBuilder,
    StoreContext, Stores, VersionedBytesStoreSupplier,
};
pub use session::{SessionBytesStoreSupplier, SessionKeyValue, SessionStore};
pub use timestamped::{ValueAndTimestamp, ValueAndTimestampSerde};
pub use typed::{ReadOnlyKeyValueView, TypedKeyValueStore};
pub use versioned::{
    VersionedKeyValueStore, VersionedRecord, PUT_RETURN_CODE_NOT_PUT, PUT_RETURN_CODE_VALID_TO_UNDEFINED,
};
pub use window::{WindowBytesStoreSupplier, WindowStore, WindowedKeyValue};

pub(crate) use builder::{
    dsl_key_value_store_def, join_window_store_def, logged, outer_join_store_def, store_dir, suppression_buffer_def,
    DefaultKeyValueBytesStoreSupplier, DefaultWindowBytesStoreSupplier, StoreDef,
};
pub(crate) use keyed_scan::{session_records, window_records};
pub(crate) use suppression::{read_join_buffer_value, write_join_buffer_value, BufferedContext, SuppressionBuffer};
pub(crate) use typed::{decode as decode_stored, ErasedStore};
