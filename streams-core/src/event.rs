//! Event types: a value type bound to the topic it lives on and to the field that partitions it, so that
//! a topology reads and writes it without naming the topic or a key selector (`#[derive(Event)]` in the
//! façade writes the impl).
//!
//! The declaration plays the part of an event schema that names its partition key,
//! `{ "type": "order-created", "partitionKey": "customer_id", "data": { .. } }`: [`Event::TOPIC`] is where
//! the events go, [`Event::key`] is the partition key read from the data. The value itself is the data
//! (JSON by default); the declaration is not written into each record.
//!
//! How the DSL uses it:
//! - [`StreamsBuilder::stream_event`](crate::dsl::StreamsBuilder::stream_event) reads `E::TOPIC` as a
//!   `KStream<E::Key, E>`. The key is the record's key as written (deserialized with `E::Key`'s serde),
//!   not recomputed from the value: [`KStream::to_event`](crate::dsl::KStream::to_event) writes exactly
//!   `value.key()` there, and the topic is partitioned by it, so the stream is not marked for
//!   repartitioning. A key that cannot be read goes to the deserialization handler like any other
//!   (`StreamsError::Deserialization` names topic, partition and offset); a null key is dropped and
//!   counted in `dropped_records`, as for every stream whose key type cannot be null.
//! - [`KStream::to_event`](crate::dsl::KStream::to_event) writes a stream of events to `E::TOPIC`, keyed
//!   (and so partitioned) by `value.key()`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use streams_core::dsl::StreamsBuilder;
//! use streams_core::event::Event;
//! use streams_core::testing::TopologyTestDriver;
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Order { customer_id: i64, total_value: f64 }
//! streams_core::json_serde!(Order);
//!
//! // By hand, what `#[derive(Event)] #[event(topic = "orders", key = customer_id)]` derives.
//! impl Event for Order {
//!     type Key = i64;
//!     const TOPIC: &'static str = "orders";
//!     fn key(&self) -> i64 { self.customer_id }
//! }
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<i64, Order>("web-orders").map_values(|o| o).to_event(); // keyed by customer_id
//! let mut driver = TopologyTestDriver::new(builder.build()?)?;
//! let web = driver.input_topic::<i64, Order>("web-orders");
//! let orders = driver.output_topic::<i64, Order>(Order::TOPIC);
//! driver.pipe(&web, 0, Order { customer_id: 7, total_value: 1.5 }, 0)?;
//! assert_eq!(driver.read_key_values(&orders), vec![(7, Order { customer_id: 7, total_value: 1.5 })]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::record::Data;
use crate::serde::DefaultSerde;

/// A value type that lives on one topic and is partitioned by one of its fields (see the
/// [module docs](self)). Derive it with `#[derive(Event)] #[event(topic = "orders", key = customer_id)]`.
///
/// Contract: [`key`](Event::key) depends on the value only, and equal events give equal keys, so every
/// writer of [`TOPIC`](Event::TOPIC) that keys records by it partitions them the same way.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event type: it names no topic and partition key",
    label = "not an `Event`",
    note = "derive it on the struct: `#[derive(Event)] #[event(topic = \"...\", key = field)]`",
    note = "or name the topic: `builder.stream::<K, V>(\"...\")`, `stream.to(\"...\")`, or in a `#[topology]` \
            `#[source(topic = \"...\")]`, `#[sink(topic = \"...\")]`"
)]
pub trait Event: Data + DefaultSerde {
    /// The type of the partition key field.
    type Key: Data + DefaultSerde;

    /// The topic events of this type are read from and written to.
    const TOPIC: &'static str;

    /// The partition key: the record key events are written with, and so what partitions the topic.
    fn key(&self) -> Self::Key;
}

/// What the proc macros' generated code calls. Not a stable API: the paths and names may change with
/// the macros that use them.
#[doc(hidden)]
pub mod __private {
    use std::sync::Arc;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::serde::{JsonSerde, Serde};

    /// The JSON serde `#[derive(Event)]` (with the default `serde = json`) makes the type's default.
    pub fn json_serde<T: Serialize + DeserializeOwned + 'static>() -> Arc<dyn Serde<T>> {
        Arc::new(JsonSerde::<T>::new())
    }

    /// Whether two topics are the same, in a const context (for the topology macro's assertions on
    /// topics that come from `Event::TOPIC`, which it cannot read at expansion time).
    pub const fn same_topic(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    #[cfg(test)]
    mod tests {
        use super::same_topic;

        #[test]
        fn same_topic_compares_every_byte() {
            assert!(same_topic("orders", "orders"));
            assert!(!same_topic("orders", "order"));
            assert!(!same_topic("orders", "orderz"));
            assert!(same_topic("", ""));
            const { assert!(same_topic("a.b", "a.b")) };
        }
    }
}
