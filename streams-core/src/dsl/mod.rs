//! The typed DSL (Kafka Streams' `kstream` package): [`StreamsBuilder`] makes [`KStream`]s and
//! [`KTable`]s from topics; their operators add nodes to a [`Topology`](crate::Topology).
//!
//! Every operator is a [`Processor`](crate::processor::Processor) underneath, one family per file:
//! `stateless` (filter, map, …, split), `aggregate` (count/reduce/aggregate), `ktable` (table operators),
//! `repartition` (the internal-topic hop), `sink` (typed sinks, and writing event types). Names, stores
//! and internal topics are generated as Kafka Streams generates them, so `describe()` output reads the
//! same.
//!
//! Keys change → repartition: after `select_key`, `map`, `flat_map` or `group_by`, an aggregation first
//! sends records through `<application.id>-<name>-repartition` so that each key is owned by one task.
//! `map_values`, `flat_map_values`, `filter` and `peek` keep the key, and so need no repartition.

mod aggregate;
mod builder;
mod cache;
pub(crate) mod change;
mod cogroup;
mod emit_final;
mod fk_join;
mod getter;
mod global;
mod grouped;
mod join;
mod join_buffer;
mod kstream;
mod ktable;
mod options;
mod repartition;
mod session;
mod sink;
mod sliding;
mod stateless;
mod stream_join;
pub(crate) mod subscription;
mod suppress;
mod table_store;
mod transform_values;
mod windowed;

pub use builder::StreamsBuilder;
pub use cogroup::{CogroupWindowedBy, CogroupedKStream, SessionWindowedCogroupedKStream, TimeWindowedCogroupedKStream};
pub use global::GlobalKTable;
pub use grouped::{KGroupedStream, KGroupedTable};
pub use kstream::{BranchedKStream, Branches, KStream};
pub use ktable::KTable;
pub use options::{
    Branched, Consumed, Grouped, Joined, Materialized, Produced, Repartitioned, StreamJoined, TableJoined,
};
pub use session::SessionWindowedKStream;
pub use sink::Sink;
pub use sliding::SlidingWindowedKStream;
pub use suppress::{BufferConfig, EagerBufferConfig, StrictBufferConfig, Suppressed};
pub use transform_values::ValueTransformerWithKey;
pub use windowed::{TimeWindowedKStream, WindowedBy};

pub use crate::window::{EmitStrategy, JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};

pub use crate::record::Data;
