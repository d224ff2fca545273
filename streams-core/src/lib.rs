//! # streams-core: the kstreams engine
//!
//! Kafka Streams for Rust. Users describe a processing graph with a typed DSL or by hand, and it runs
//! one task per input partition, with state in stores.
//!
//! ```text
//!  testing (TopologyTestDriver)     runtime (KafkaStreams, on Kafka or the embedded broker)
//!                \                    /
//!                 v                  v
//!  task (one sub-topology x one partition: the one execution path)
//!                 |          dsl (StreamsBuilder, KStream, KTable)
//!                 v           v
//!  topology (untyped graph: nodes, stores, sub-topologies, describe)
//!                 |
//!                 v
//!  processor (the Processor API, and the nodes a task runs)
//!                 |
//!                 v
//!  store (typed stores over state-store's byte stores)
//! ```
//!
//! An arrow is a dependency; none points up (docs/architecture.md).
//!
//! - [`serde`]: typed keys and values to bytes, wire-compatible with Kafka's serdes.
//! - [`dsl`]: the typed builder. Every operator lowers to a [`processor::Processor`].
//! - [`event`]: event types bound to their topic and partition key ([`event::Event`]), for the DSL's
//!   `stream_event`/`to_event` and the façade's derive and topology macros.
//! - [`processor`]: the Processor API: processors, their context, punctuation.
//! - [`topology`]: the graph, its validation and its description.
//! - [`store`]: typed stores over `state-store`'s byte stores, and store builders.
//! - [`testing`]: the test driver: pipe records in, read records and stores out, move time.
//! - [`handler`]: what happens to records that cannot be read, that user code fails on, or that cannot
//!   be written.
//!
//! ```
//! use streams_core::dsl::StreamsBuilder;
//! use streams_core::testing::TopologyTestDriver;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, i64>("orders")
//!     .filter(|_, amount| *amount > 0)
//!     .group_by_key()
//!     .reduce(|a, b| a + b)
//!     .to_stream()
//!     .to("totals");
//! let mut driver = TopologyTestDriver::new(builder.build()?)?;
//! let orders = driver.input_topic::<String, i64>("orders");
//! let totals = driver.output_topic::<String, Option<i64>>("totals");
//! driver.pipe(&orders, "alice".to_string(), 10, 0)?;
//! driver.pipe(&orders, "alice".to_string(), 5, 1)?;
//! assert_eq!(driver.read_key_values(&totals), vec![
//!     ("alice".to_string(), Some(10)),
//!     ("alice".to_string(), Some(15)),
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod buffers;
pub mod client;
mod client_error;
pub mod config;
pub mod dsl;
pub mod embedded;
pub mod error;
pub mod event;
pub mod handler;
#[cfg(test)]
mod hostile_input;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(test)]
mod layering;
mod metrics;
mod murmur2;
mod names;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serde;
#[cfg(feature = "test-utils")]
pub mod simulation;
pub mod store;
mod sync;
pub(crate) mod task;
mod task_id;
mod task_metrics;
pub mod testing;
/// The clock: public with `test-utils`, for the simulation's virtual clock.
#[cfg(feature = "test-utils")]
pub mod time;
#[cfg(not(feature = "test-utils"))]
pub(crate) mod time;
mod timestamp;
pub mod topology;
mod window;

pub use error::{StreamsError, TopologyError};
pub use event::Event;
pub use record::{Headers, Record, RecordMetadata};
pub use task::OWNER_EPOCH_HEADER;
pub use task_id::TaskId;
pub use task_metrics::TaskMetrics;
pub use topology::Topology;

#[cfg(test)]
mod tests {
    /// `RUST_LOG=kstreams=debug` must show every log line of the library: each event names a target under
    /// `kstreams` (by default tracing would use the module path, `streams_core::…`, a crate name users
    /// never typed).
    #[test]
    fn every_log_event_is_under_the_kstreams_target() {
        fn visit(dir: &std::path::Path, missing: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read the source folder") {
                let path = entry.expect("a source folder entry").path();
                if path.is_dir() {
                    visit(&path, missing);
                    continue;
                }
                let source = std::fs::read_to_string(&path).expect("read a source file");
                for level in ["trace", "debug", "info", "warn", "error"] {
                    let call = format!("tracing::{level}!(");
                    for (at, _) in source.match_indices(&call) {
                        let args = source[at + call.len()..].trim_start();
                        if !args.starts_with("target: \"kstreams") {
                            let line = source[..at].lines().count();
                            missing.push(format!("{}:{line}", path.display()));
                        }
                    }
                }
            }
        }
        let mut missing = Vec::new();
        visit(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut missing);
        assert!(missing.is_empty(), "log events without a `target: \"kstreams::…\"`: {missing:?}");
    }
}
