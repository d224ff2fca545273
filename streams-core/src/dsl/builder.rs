//! The entry point of the DSL: [`StreamsBuilder`] makes streams and tables from topics and builds the
//! [`Topology`]. It also owns the name counter that gives every generated node and store its name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::ktable::table_source;
use super::options::{Consumed, Materialized};
use super::{Data, KStream, KTable};
use crate::event::Event;
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, Serde};
use crate::store::StoreBuilder;
use crate::topology::{source_def, SourceTopics, TopicPattern, TopicRef, Topology};
use crate::TopologyError;

/// Builds a topology with the typed DSL (Kafka Streams' `StreamsBuilder`).
///
/// Streams and tables are cheap handles into the builder; operators on them add nodes. Mistakes found
/// while building (a name used twice, a topic read twice) are reported by [`StreamsBuilder::build`].
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    pub(crate) state: Rc<RefCell<BuilderState>>,
}

#[derive(Default)]
pub(crate) struct BuilderState {
    pub(crate) topology: Topology,
    counter: u64,
    /// For each windowed aggregation's node, how long after a window's end its result is final (the
    /// grace, plus the gap for sessions): what `suppress(until_window_closes)` below it waits.
    pub(crate) window_close_after: HashMap<String, i64>,
    /// What is decided only once the whole topology is known, run by `build` (in the order added): a
    /// foreign-key join's result gets a store if an operator below came to need one.
    finishers: Vec<Box<dyn FnOnce(&mut Topology)>>,
}

impl BuilderState {
    /// `KSTREAM-FILTER-0000000001`: a prefix and the builder-wide counter, ten digits.
    pub(crate) fn new_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{:010}", self.counter);
        self.counter += 1;
        name
    }

    /// `KSTREAM-AGGREGATE-STATE-STORE-0000000003`.
    pub(crate) fn new_store_name(&mut self, prefix: &str) -> String {
        self.new_name(&format!("{prefix}STATE-STORE-"))
    }

    /// A user's name if given, else a generated one. The counter advances either way, as in Kafka
    /// Streams (`NamedInternal.orElseGenerateWithPrefix`), so naming one operator renumbers no other.
    pub(crate) fn name_or(&mut self, given: Option<String>, prefix: &str) -> String {
        let generated = self.new_name(prefix);
        given.unwrap_or(generated)
    }

    /// A user's name if given (the counter stays), else a generated one: Kafka Streams'
    /// `process`/`processValues` with a `Named`, which take `NamedInternal.name()` without burning an index.
    pub(crate) fn given_or(&mut self, given: Option<String>, prefix: &str) -> String {
        given.unwrap_or_else(|| self.new_name(prefix))
    }

    /// Connects processor `node` to `stores`; an unknown store is reported by `build()`.
    pub(crate) fn connect_stores(&mut self, node: &str, stores: &[&str]) {
        if let Err(e) = self.topology.connect_processor_and_state_stores(node, stores) {
            self.topology.deferred.push(e);
        }
    }

    /// Runs `finish` on the topology when it is built.
    pub(crate) fn finish_with(&mut self, finish: impl FnOnce(&mut Topology) + 'static) {
        self.finishers.push(Box::new(finish));
    }

    /// Advances the counter without using the name (Kafka Streams does this for split branches, and for
    /// a `count` whose `Materialized` names no store).
    pub(crate) fn burn(&mut self) {
        self.counter += 1;
    }
}

impl StreamsBuilder {
    /// A new, empty builder.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::TopologyError;
    ///
    /// let builder = StreamsBuilder::new();
    /// // Nothing to run until a stream or table is added.
    /// assert!(matches!(builder.build(), Err(TopologyError::Empty)));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`, with serdes chosen by type. A record whose key or value is
    /// null is dropped (and counted in `dropped_records`) unless that type is an `Option`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").to("amounts-copy");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let copy = driver.output_topic::<String, i64>("amounts-copy");
    /// driver.pipe(&amounts, "ada".into(), 42, 0)?;
    /// assert_eq!(driver.read_key_values(&copy), vec![("ada".to_string(), 42)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream<K: Data + DefaultSerde, V: Data + DefaultSerde>(&self, topic: &str) -> KStream<K, V> {
        self.stream_with(topic, Consumed::with(K::default_serde(), V::default_serde()))
    }

    /// A stream of the records of `topic`, with the serdes and source name given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Consumed, StreamsBuilder};
    /// use streams_core::serde::{I32Serde, StringSerde};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I32Serde)).with_name("readings-in");
    /// builder.stream_with("readings", consumed).to("readings-copy");
    /// let topology = builder.build()?;
    /// assert!(topology.describe().to_string().contains("Source: readings-in (topics: [readings])"));
    ///
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// let readings = driver.input_topic::<String, i32>("readings");
    /// let copy = driver.output_topic::<String, i32>("readings-copy");
    /// driver.pipe(&readings, "sensor-1".into(), 17, 0)?;
    /// assert_eq!(driver.read_key_values(&copy), vec![("sensor-1".to_string(), 17)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream_with<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        self.stream_from(&[topic], consumed)
    }

    /// One stream of the records of several topics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Consumed, StreamsBuilder};
    /// use streams_core::serde::StringSerde;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde));
    /// builder.stream_from(&["web-logs", "app-logs"], consumed).to("all-logs");
    /// let topology = builder.build()?;
    /// assert!(topology.describe().to_string().contains("(topics: [web-logs, app-logs])"));
    ///
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// let web = driver.input_topic::<String, String>("web-logs");
    /// let app = driver.input_topic::<String, String>("app-logs");
    /// let all = driver.output_topic::<String, String>("all-logs");
    /// driver.pipe(&web, "w".into(), "GET /".into(), 0)?;
    /// driver.pipe(&app, "a".into(), "start".into(), 1)?;
    /// assert_eq!(driver.read_key_values(&all), vec![
    ///     ("w".to_string(), "GET /".to_string()),
    ///     ("a".to_string(), "start".to_string()),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream_from<K: Data, V: Data>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V> {
        let target = format!("the source of {}", topics.join(", "));
        let topics = topics.iter().map(|t| TopicRef::user(t)).collect();
        self.source(Ok(SourceTopics::Names(topics)), target, consumed)
    }

    /// One stream of the records of every topic whose whole name matches the regular expression
    /// `pattern` (Kafka Streams' `stream(Pattern)`), with the key and value types' default serdes. The
    /// topics are those that exist when the application starts, and those created while it runs, found
    /// every `metadata.max.age.ms` (a consumer setting; 5 minutes by default) as Kafka Streams finds them
    /// at its consumers' metadata refresh. They must have the same number of partitions: a later topic
    /// with another count is refused, with an error logged. An invalid pattern is an error at
    /// `build()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream_pattern::<String, String>("logs-.*").to("all-logs");
    /// let topology = builder.build()?;
    /// assert!(topology.describe().to_string().contains("Source: KSTREAM-SOURCE-0000000000 (topics: logs-.*)"));
    ///
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// let web = driver.input_topic::<String, String>("logs-web");
    /// let all = driver.output_topic::<String, String>("all-logs");
    /// driver.pipe(&web, "w".into(), "GET /".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&all), vec![("w".to_string(), "GET /".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream_pattern<K: Data + DefaultSerde, V: Data + DefaultSerde>(&self, pattern: &str) -> KStream<K, V> {
        self.stream_pattern_with(pattern, Consumed::with(K::default_serde(), V::default_serde()))
    }

    /// [`stream_pattern`](Self::stream_pattern) with serdes or a name from `consumed`.
    pub fn stream_pattern_with<K: Data, V: Data>(&self, pattern: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        let target = format!("the source of the topics matching {pattern}");
        self.source(TopicPattern::new(pattern).map(SourceTopics::Pattern), target, consumed)
    }

    /// A source node reading `topics` (or the error that they are), and its stream.
    fn source<K: Data, V: Data>(
        &self,
        topics: Result<SourceTopics, TopologyError>,
        target: String,
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut state = self.state.borrow_mut();
        let name = state.name_or(consumed.name, "KSTREAM-SOURCE-");
        let (Some(key_serde), Some(value_serde)) = (consumed.key_serde, consumed.value_serde) else {
            state.topology.deferred.push(missing_serde::<K, V>(name.clone(), target, RecordPart::KeyOrValue));
            return KStream::new(self.state.clone(), name, None, None, false);
        };
        match topics {
            Ok(topics) => {
                let def =
                    source_def(&name, topics, key_serde.clone(), value_serde.clone(), consumed.timestamp_extractor);
                state.topology.add_node_deferred(def)
            }
            Err(error) => state.topology.deferred.push(error),
        }
        KStream::new(self.state.clone(), name, Some(key_serde), Some(value_serde), false)
    }

    /// The stream of an event type's topic ([`Event::TOPIC`]), keyed by its partition key: the same
    /// source as `stream::<E::Key, E>(E::TOPIC)`.
    ///
    /// The key is the record's key as written, read with `E::Key`'s serde; it is not recomputed from the
    /// value. Writers of the topic key by [`Event::key`] ([`KStream::to_event`] does), so the topic is
    /// partitioned by it and the stream needs no repartition before a grouping. A key that cannot be read
    /// goes to the deserialization handler (the error names topic, partition and offset); a null key is
    /// dropped and counted, as on every stream whose key type cannot be null.
    ///
    /// # Examples
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::Event;
    /// # #[derive(Clone, Serialize, Deserialize)]
    /// # struct Order { customer_id: i64, total_value: f64 }
    /// # streams_core::json_serde!(Order);
    /// # impl Event for Order {
    /// #     type Key = i64;
    /// #     const TOPIC: &'static str = "orders";
    /// #     fn key(&self) -> i64 { self.customer_id }
    /// # }
    /// let builder = StreamsBuilder::new();
    /// // `Order` is declared with topic "orders" and key `customer_id: i64`.
    /// builder.stream_event::<Order>().group_by_key().count().to_stream().to("orders-per-customer");
    /// assert!(builder.build()?.describe().to_string().contains("(topics: [orders])"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn stream_event<E: Event>(&self) -> KStream<E::Key, E> {
        self.stream::<E::Key, E>(E::TOPIC)
    }

    /// The table of an event type's topic ([`Event::TOPIC`]): the latest event per partition key, with
    /// the keys read as [`stream_event`](Self::stream_event) reads them. The same source as
    /// `table::<E::Key, E>(E::TOPIC)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    /// use streams_core::Event;
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    /// # struct Customer { id: i64, name: String }
    /// # streams_core::json_serde!(Customer);
    /// # impl Event for Customer {
    /// #     type Key = i64;
    /// #     const TOPIC: &'static str = "customers";
    /// #     fn key(&self) -> i64 { self.id }
    /// # }
    /// let builder = StreamsBuilder::new();
    /// // `Customer` is declared with topic "customers" and key `id: i64`.
    /// let customers = builder.table_event::<Customer>();
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let input = driver.input_topic::<i64, Option<Customer>>(Customer::TOPIC);
    /// driver.pipe(&input, 7, Some(Customer { id: 7, name: "Ada".into() }), 0)?;
    /// driver.pipe(&input, 7, Some(Customer { id: 7, name: "Ada L.".into() }), 1)?;
    /// let latest = driver.store_entries::<i64, Customer>(customers.store_name().unwrap())?;
    /// assert_eq!(latest, vec![(7, Customer { id: 7, name: "Ada L.".into() })]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table_event<E: Event>(&self) -> KTable<E::Key, E> {
        self.table::<E::Key, E>(E::TOPIC)
    }

    /// A table of the latest value per key of `topic` (a null value deletes the key), with serdes chosen
    /// by type.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// // Values are read as `Option`s: `None` is a tombstone, which deletes the key.
    /// let users_in = driver.input_topic::<String, Option<String>>("users");
    /// driver.pipe(&users_in, "u1".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&users_in, "u2".into(), Some("Bob".into()), 1)?;
    /// driver.pipe(&users_in, "u1".into(), Some("Ada L.".into()), 2)?;
    /// driver.pipe(&users_in, "u2".into(), None, 3)?;
    /// let store = users.store_name().unwrap();
    /// assert_eq!(driver.store_entries::<String, String>(store)?, vec![("u1".to_string(), "Ada L.".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table<K: Data + DefaultSerde, V: Data + DefaultSerde>(&self, topic: &str) -> KTable<K, V> {
        self.table_with(topic, Consumed::with(K::default_serde(), V::default_serde()), Materialized::new())
    }

    /// A table of `topic` with the serdes, names and store given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Consumed, Materialized, StreamsBuilder};
    /// use streams_core::serde::{I64Serde, StringSerde};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde)).with_name("prices-in");
    /// let prices = builder.table_with("prices", consumed, Materialized::as_store("prices"));
    /// assert_eq!(prices.store_name(), Some("prices"));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let prices_in = driver.input_topic::<String, Option<i64>>("prices");
    /// driver.pipe(&prices_in, "tea".into(), Some(250), 0)?;
    /// assert_eq!(driver.store_entries::<String, i64>("prices")?, vec![("tea".to_string(), 250)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        table_source(self, topic, consumed, materialized)
    }

    /// Adds a state store for processors that [`KStream::process`] adds (Kafka Streams'
    /// `addStateStore`); they name it to use it. A mistake (a bad or repeated name) is reported by
    /// [`build`](Self::build).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::processor::{Processor, ProcessorContext};
    /// use streams_core::serde::{I64Serde, StringSerde};
    /// use streams_core::store::Stores;
    /// use streams_core::testing::TopologyTestDriver;
    /// use streams_core::{Record, StreamsError};
    ///
    /// /// Forwards only the first record of each key, remembering the keys seen in store "seen".
    /// struct FirstOnly;
    ///
    /// impl Processor<String, String, String, String> for FirstOnly {
    ///     fn process(
    ///         &mut self,
    ///         ctx: &mut ProcessorContext<'_, String, String>,
    ///         record: Record<String, String>,
    ///     ) -> Result<(), StreamsError> {
    ///         let seen = ctx.store::<String, i64>("seen")?;
    ///         if seen.get(&record.key)?.is_some() {
    ///             return Ok(());
    ///         }
    ///         seen.put(&record.key, &record.timestamp)?;
    ///         ctx.forward(record)
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.add_state_store(Stores::key_value_store_builder(
    ///     Stores::in_memory_key_value_store("seen"),
    ///     Arc::new(StringSerde),
    ///     Arc::new(I64Serde),
    /// ));
    /// builder.stream::<String, String>("visits").process(|| FirstOnly, &["seen"]).to("first-visits");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let visits = driver.input_topic::<String, String>("visits");
    /// let first = driver.output_topic::<String, String>("first-visits");
    /// driver.pipe(&visits, "ada".into(), "/home".into(), 0)?;
    /// driver.pipe(&visits, "ada".into(), "/cart".into(), 1)?;
    /// assert_eq!(driver.read_key_values(&first), vec![("ada".to_string(), "/home".to_string())]);
    /// assert_eq!(driver.store_entries::<String, i64>("seen")?, vec![("ada".to_string(), 0)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_state_store<K: Send + 'static, V: Send + 'static>(&self, store: StoreBuilder<K, V>) -> &Self {
        let mut state = self.state.borrow_mut();
        if let Err(e) = state.topology.add_state_store(store, &[]) {
            state.topology.deferred.push(e);
        }
        self
    }

    /// Validates the graph and returns the topology to run.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::TopologyError;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("events").to("events-copy");
    /// let topology = builder.build()?;
    /// assert_eq!(topology.describe().subtopologies.len(), 1);
    ///
    /// // Mistakes made while building surface here, not in the chain that made them.
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("events").to("copy-1");
    /// builder.stream::<String, String>("events").to("copy-2"); // a topic can have one source only
    /// assert!(matches!(builder.build(), Err(TopologyError::TopicReadTwice { topic, .. }) if topic == "events"));
    /// # Ok::<(), TopologyError>(())
    /// ```
    pub fn build(&self) -> Result<Topology, TopologyError> {
        let mut state = self.state.borrow_mut();
        for finish in std::mem::take(&mut state.finishers) {
            finish(&mut state.topology);
        }
        let topology = std::mem::take(&mut state.topology);
        topology.validate()?;
        Ok(topology)
    }
}

/// The error for a serde neither given nor inherited: node `node`, writing or reading `target`, needs a
/// `part` serde for records of `K` and `V`.
pub(crate) fn missing_serde<K: ?Sized, V: ?Sized>(
    node: impl Into<String>,
    target: impl Into<String>,
    part: RecordPart,
) -> TopologyError {
    TopologyError::MissingSerde {
        node: node.into(),
        target: target.into(),
        part,
        types: format!("{}, {}", crate::error::short_type_name::<K>(), crate::error::short_type_name::<V>()),
    }
}

/// Picks the serde for an operator: given explicitly, else inherited from upstream.
pub(crate) fn pick<T: ?Sized>(given: Option<Arc<T>>, inherited: &Option<Arc<T>>) -> Option<Arc<T>> {
    given.or_else(|| inherited.clone())
}

/// Picks a serde, falling back to the type's default.
pub(crate) fn pick_or_default<T: DefaultSerde>(
    given: Option<Arc<dyn Serde<T>>>,
    inherited: &Option<Arc<dyn Serde<T>>>,
) -> Arc<dyn Serde<T>> {
    pick(given, inherited).unwrap_or_else(T::default_serde)
}
