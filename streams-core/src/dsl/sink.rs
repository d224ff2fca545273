//! Typed sinks: [`Sink`] names a topic together with the key and value types written to it, so that
//! writing a stream of other types is a compile error at the call ([`KStream::to_sink`]); and
//! [`KStream::to_event`], which writes an [`Event`] stream to its own topic, keyed by its partition key.
//!
//! The topology macro declares a topology's outputs as `Sink` parameters; hand-written topologies can use
//! them the same way, to name each output once with its types.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use super::{Data, KStream};
use crate::event::Event;
use crate::serde::DefaultSerde;

/// A topic a topology writes, with the key and value types it holds.
///
/// # Examples
///
/// ```
/// use streams_core::dsl::{Sink, StreamsBuilder};
///
/// let totals: Sink<String, Option<i64>> = Sink::new("totals");
/// assert_eq!(totals.topic(), "totals");
/// assert!(!totals.is_keyed_by_event()); // written with the key the records have
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, i64>("amounts").group_by_key().count().to_stream().to_sink(&totals);
/// assert!(builder.build()?.describe().to_string().contains("(topic: totals)"));
/// # Ok::<(), streams_core::TopologyError>(())
/// ```
pub struct Sink<K, V> {
    topic: Cow<'static, str>,
    /// For event sinks: records are re-keyed with `Event::key` before they are written.
    key_of: Option<fn(&V) -> K>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Sink<K, V> {
    /// Records of these types go to `topic`, with the key they have.
    pub fn new(topic: impl Into<Cow<'static, str>>) -> Self {
        Sink { topic: topic.into(), key_of: None, _types: PhantomData }
    }

    /// The topic written.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether records are re-keyed by their event's partition key before they are written
    /// ([`Sink::event`]). Hidden: only the macros' tests (in `tests/`) ask.
    #[doc(hidden)]
    pub fn is_keyed_by_event(&self) -> bool {
        self.key_of.is_some()
    }

    /// The event type's own topic ([`Event::TOPIC`]); records are written keyed by [`Event::key`], as
    /// [`KStream::to_event`] writes them. (A bound on the function rather than on an impl block, so that
    /// a value type that is not an event gets `Event`'s own error message.)
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Sink, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # struct Order { customer_id: i64, total_value: f64 }
    /// # streams_core::json_serde!(Order);
    /// # impl streams_core::Event for Order {
    /// #     type Key = i64;
    /// #     const TOPIC: &'static str = "orders";
    /// #     fn key(&self) -> i64 { self.customer_id }
    /// # }
    /// // `Order` is declared with topic "orders" and key `customer_id: i64`.
    /// let orders: Sink<i64, Order> = Sink::event();
    /// assert_eq!(orders.topic(), "orders");
    /// assert!(orders.is_keyed_by_event());
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<i64, Order>("web-orders").to_sink(&orders); // keyed by order number
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let web = driver.input_topic::<i64, Order>("web-orders");
    /// let out = driver.output_topic::<i64, Order>("orders");
    /// driver.pipe(&web, 1001, Order { customer_id: 7, total_value: 9.5 }, 0)?;
    /// assert_eq!(driver.read_key_values(&out), vec![(7, Order { customer_id: 7, total_value: 9.5 })]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event() -> Self
    where
        V: Event<Key = K>,
    {
        Sink { topic: Cow::Borrowed(V::TOPIC), key_of: Some(V::key), _types: PhantomData }
    }
}

impl<K, V> Clone for Sink<K, V> {
    fn clone(&self) -> Self {
        Sink { topic: self.topic.clone(), key_of: self.key_of, _types: PhantomData }
    }
}

impl<K, V> fmt::Debug for Sink<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("topic", &self.topic)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .field("keyed_by_event", &self.key_of.is_some())
            .finish()
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Writes every record to `sink`'s topic: [`to`](Self::to) for a sink made with [`Sink::new`], and
    /// [`to_event`](Self::to_event) (re-keyed by the event's partition key) for one made with
    /// [`Sink::event`]. A sink of other key or value types does not compile.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Sink, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let totals: Sink<String, Option<i64>> = Sink::new("totals");
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").group_by_key().reduce(|a, b| a + b).to_stream().to_sink(&totals);
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// driver.pipe(&amounts, "ada".into(), 3, 0)?;
    /// driver.pipe(&amounts, "ada".into(), 4, 1)?;
    /// let out = driver.output_topic::<String, Option<i64>>(totals.topic());
    /// assert_eq!(driver.read_key_values(&out), vec![("ada".to_string(), Some(3)), ("ada".to_string(), Some(7))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A stream of other types does not compile:
    ///
    /// ```compile_fail
    /// use streams_core::dsl::{Sink, StreamsBuilder};
    ///
    /// let totals: Sink<String, Option<i64>> = Sink::new("totals");
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").to_sink(&totals); // i64 values, not Option<i64>
    /// ```
    pub fn to_sink(&self, sink: &Sink<K, V>)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        match sink.key_of {
            Some(key_of) => self.select_key(move |_, value| key_of(value)).to(sink.topic()),
            None => self.to(sink.topic()),
        }
    }

    /// Writes a stream of events to their topic ([`Event::TOPIC`]), keyed (and so partitioned) by
    /// [`Event::key`], whatever key the stream had: `select_key(|_, e| e.key()).to(E::TOPIC)`, so
    /// `describe()` shows a `KSTREAM-KEY-SELECT` node before the sink.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # struct Order { customer_id: i64, total_value: f64 }
    /// # streams_core::json_serde!(Order);
    /// # impl streams_core::Event for Order {
    /// #     type Key = i64;
    /// #     const TOPIC: &'static str = "orders";
    /// #     fn key(&self) -> i64 { self.customer_id }
    /// # }
    /// let builder = StreamsBuilder::new();
    /// // Whatever the key was (here the order number), the topic gets the event's own key.
    /// builder.stream::<i64, Order>("web-orders").to_event();
    /// let topology = builder.build()?;
    /// assert!(topology.describe().to_string().contains("Processor: KSTREAM-KEY-SELECT-0000000001"));
    ///
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// let web = driver.input_topic::<i64, Order>("web-orders");
    /// let orders = driver.output_topic::<i64, Order>("orders");
    /// driver.pipe(&web, 1001, Order { customer_id: 7, total_value: 9.5 }, 0)?;
    /// assert_eq!(driver.read_key_values(&orders), vec![(7, Order { customer_id: 7, total_value: 9.5 })]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_event(&self)
    where
        V: Event,
    {
        self.select_key(|_, value: &V| value.key()).to(V::TOPIC)
    }
}
