//! # kstreams: Kafka Streams for Rust
//!
//! Typed stream processing over Kafka topics: streams, tables, aggregations in state stores, one task
//! per input partition. This façade is the crate to depend on; it re-exports the workspace crates:
//!
//! - [`streams_core`] (everything under the root here): the DSL, the topology model, the Processor API,
//!   serdes and the test driver;
//! - [`state`]: store traits and the stores themselves;
//! - [`streams_macros`]: [`Event`](derive@Event) binds an event type to its topic and partition key, and
//!   [`topology`](macro@topology) derives a topology from a function that declares its inputs, outputs and
//!   stores (`docs/macros.md` shows what they expand to).
//!
//! ```
//! use kstreams::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, f64>("orders")
//!     .filter(|_, total| *total > 0.0)
//!     .group_by_key()
//!     .reduce(|a, b| a + b)
//!     .to_stream()
//!     .to("customer-totals");
//! let topology = builder.build()?;
//! let mut driver = TopologyTestDriver::new(topology)?;
//! let orders = driver.input_topic::<String, f64>("orders");
//! let totals = driver.output_topic::<String, Option<f64>>("customer-totals");
//! driver.pipe(&orders, "c1".to_string(), 10.0, 0)?;
//! driver.pipe(&orders, "c1".to_string(), -1.0, 1)?;
//! driver.pipe(&orders, "c1".to_string(), 2.5, 2)?;
//! assert_eq!(driver.read_key_values(&totals), vec![("c1".to_string(), Some(10.0)), ("c1".to_string(), Some(12.5))]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// Byte stores: the read and write interfaces every store has, and the stores the built-in suppliers
/// open (the state-store crate). Its layers (cache, changelog, transactional buffer) and checkpoints are
/// the engine's and stay inside it.
pub mod state {
    pub use state_store::{
        InMemoryKeyValueStore, KeyValue, KeyValueIterator, KeyValueStore, ReadOnlyKeyValueStore, RocksDbKeyValueStore,
        RocksDbMemory, StateStore, StoreError,
    };
}
pub use streams_core::*;
pub use streams_macros::{topology, Event};

/// The names most programs need, in one `use`.
pub mod prelude {
    pub use streams_core::dsl::{
        Branched, BufferConfig, Consumed, GlobalKTable, Grouped, KGroupedStream, KGroupedTable, KStream, KTable,
        Materialized, Produced, Repartitioned, SessionWindows, Sink, SlidingWindows, StreamsBuilder, Suppressed,
        TimeWindows, Window, Windowed,
    };
    pub use streams_core::processor::{Processor, ProcessorContext, Punctuation, PunctuationType};
    pub use streams_core::serde::{DefaultSerde, JsonSerde, Serde};
    pub use streams_core::testing::{BrokerTopics, TestDriverConfig, TopologyTestDriver};
    pub use streams_core::{json_serde, Event, Record, StreamsError, Topology, TopologyError};
    pub use streams_macros::{topology, Event};
}

/// The README's and the docs' code, compiled and run as doctests so they cannot drift from the code.
#[cfg(doctest)]
mod doc_snippets {
    // The README and getting started run their app on Kafka (`KafkaStreams::new`): built with the
    // `kafka` feature only.
    #[cfg(feature = "kafka")]
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/testing.md")]
    struct Testing;
    #[doc = include_str!("../docs/macros.md")]
    struct Macros;
    #[doc = include_str!("../docs/dsl.md")]
    struct Dsl;
    #[doc = include_str!("../docs/processor-api.md")]
    struct ProcessorApi;
    #[doc = include_str!("../docs/concepts.md")]
    struct Concepts;
    #[doc = include_str!("../docs/interactive-queries.md")]
    struct InteractiveQueries;
    #[doc = include_str!("../docs/configuration.md")]
    struct Configuration;
    #[doc = include_str!("../docs/operations.md")]
    struct Operations;
    #[doc = include_str!("../docs/state.md")]
    struct State;
    #[doc = include_str!("../docs/kafka-streams-mapping.md")]
    struct KafkaStreamsMapping;
    #[doc = include_str!("../docs/README.md")]
    struct DocsIndex;
    #[doc = include_str!("../docs/security.md")]
    struct Security;
    #[cfg(feature = "kafka")]
    #[doc = include_str!("../docs/getting-started.md")]
    struct GettingStarted;
}
