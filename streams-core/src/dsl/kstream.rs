//! [`KStream`]: an unbounded stream of independent records, and its operators.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::builder::{missing_serde, pick, pick_or_default, BuilderState};
use super::grouped::KGroupedStream;
use super::options::{BranchChain, Branched, Grouped, Materialized, Produced, Repartitioned};
use super::repartition::{add_repartition, RepartitionNames};
use super::stateless::{
    Filter, FlatMap, FlatMapValues, Map, MapValues, PassThrough, Peek, Predicate, SelectKey, Split,
};
use super::{Data, KTable};
use crate::processor::fixed_key::FixedKey;
use crate::processor::{FixedKeyProcessor, Processor};
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, Serde};
use crate::sync::LockUnpoisoned;
use crate::topology::{processor_def, sink_def, SinkSpec, TopicRef};
use crate::RecordMetadata;

/// A stream of records (Kafka Streams' `KStream<K, V>`): every record is an independent event.
///
/// A `KStream` is a cheap handle; operators take `&self`, so one stream can feed several operators.
pub struct KStream<K, V> {
    pub(crate) builder: Rc<RefCell<BuilderState>>,
    pub(crate) node: String,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    /// Set by key-changing operators: a grouping downstream must repartition by the new key first.
    pub(crate) repartition_required: bool,
    pub(crate) next_name: Option<String>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            builder: self.builder.clone(),
            node: self.node.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
            next_name: self.next_name.clone(),
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        builder: Rc<RefCell<BuilderState>>,
        node: String,
        key_serde: Option<Arc<dyn Serde<K>>>,
        value_serde: Option<Arc<dyn Serde<V>>>,
        repartition_required: bool,
    ) -> Self {
        KStream { builder, node, key_serde, value_serde, repartition_required, next_name: None }
    }

    /// The name of the node this stream comes out of.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.stream::<String, i64>("orders");
    /// assert_eq!(orders.node_name(), "KSTREAM-SOURCE-0000000000");
    /// assert_eq!(orders.filter(|_, amount| *amount > 0).node_name(), "KSTREAM-FILTER-0000000001");
    /// ```
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// Names the next operator applied to this handle (Kafka Streams' `Named`), instead of a generated
    /// `KSTREAM-…-0000000007` name.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.stream::<String, i64>("orders");
    /// orders.named("positive-orders").filter(|_, amount| *amount > 0).to("valid-orders");
    /// let description = builder.build()?.describe().to_string();
    /// assert!(description.contains("Processor: positive-orders"));
    /// // The given name still advanced the counter: the sink is numbered as if the filter were unnamed.
    /// assert!(description.contains("Sink: KSTREAM-SINK-0000000002 (topic: valid-orders)"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn named(&self, name: impl Into<String>) -> Self {
        KStream { next_name: Some(name.into()), ..self.clone() }
    }

    /// Adds a processor below this stream; returns its name.
    fn add<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        prefix: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> String {
        let name = self.builder.borrow_mut().name_or(self.next_name.clone(), prefix);
        self.add_as(name, supplier)
    }

    /// Adds the processor made by `supplier` as node `name`.
    fn add_as<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        name: String,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> String {
        let mut b = self.builder.borrow_mut();
        b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
        name
    }

    fn derive<K2: Data, V2: Data>(
        &self,
        node: String,
        key_serde: Option<Arc<dyn Serde<K2>>>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
        repartition_required: bool,
    ) -> KStream<K2, V2> {
        KStream::new(self.builder.clone(), node, key_serde, value_serde, repartition_required)
    }

    /// Keeps the records for which `predicate` holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").filter(|_, amount| *amount > 0).to("positive");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let positive = driver.output_topic::<String, i64>("positive");
    /// driver.pipe(&amounts, "a".into(), 5, 0)?;
    /// driver.pipe(&amounts, "b".into(), -3, 1)?;
    /// assert_eq!(driver.read_key_values(&positive), vec![("a".to_string(), 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let predicate = Arc::new(predicate);
        let name = self.add("KSTREAM-FILTER-", move || Filter { predicate: predicate.clone(), keep_if: true });
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), self.repartition_required)
    }

    /// Drops the records for which `predicate` holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").filter_not(|user, _| user.starts_with("test-")).to("real");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let real = driver.output_topic::<String, i64>("real");
    /// driver.pipe(&amounts, "test-1".into(), 5, 0)?;
    /// driver.pipe(&amounts, "ada".into(), 7, 1)?;
    /// assert_eq!(driver.read_key_values(&real), vec![("ada".to_string(), 7)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let predicate = Arc::new(predicate);
        let name = self.add("KSTREAM-FILTER-", move || Filter { predicate: predicate.clone(), keep_if: false });
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), self.repartition_required)
    }

    /// A new key and value per record. Changes the key, so a grouping downstream repartitions.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // user -> page becomes page -> user
    /// builder.stream::<String, String>("views").map(|user, page| (page, user)).to("views-by-page");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let views = driver.input_topic::<String, String>("views");
    /// let by_page = driver.output_topic::<String, String>("views-by-page");
    /// driver.pipe(&views, "ada".into(), "/home".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&by_page), vec![("/home".to_string(), "ada".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<K2: Data, V2: Data>(
        &self,
        mapper: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KSTREAM-MAP-", move || Map(mapper.clone()));
        self.derive(name, None, None, true)
    }

    /// A new value per record, same key: no repartition needed downstream.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("lines").map_values(|line| line.len() as i64).to("line-lengths");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let lines = driver.input_topic::<String, String>("lines");
    /// let lengths = driver.output_topic::<String, i64>("line-lengths");
    /// driver.pipe(&lines, "doc-1".into(), "hello".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&lengths), vec![("doc-1".to_string(), 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_values<V2: Data>(&self, mapper: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| mapper(v))
    }

    /// A new value per record computed from the (read-only) key and the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("scores")
    ///     .map_values_with_key(|player, score| format!("{player} scored {score}"))
    ///     .to("announcements");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let scores = driver.input_topic::<String, i64>("scores");
    /// let announcements = driver.output_topic::<String, String>("announcements");
    /// driver.pipe(&scores, "ada".into(), 42, 0)?;
    /// assert_eq!(driver.read_key_values(&announcements), vec![("ada".to_string(), "ada scored 42".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_values_with_key<V2: Data>(
        &self,
        mapper: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KSTREAM-MAPVALUES-", move || MapValues(mapper.clone()));
        self.derive(name, self.key_serde.clone(), None, self.repartition_required)
    }

    /// Zero or more `(key, value)` pairs per record. Changes the key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // order -> "item,item,..." becomes one record per item, keyed by the item
    /// builder
    ///     .stream::<String, String>("orders")
    ///     .flat_map(|order, items| items.split(',').map(|item| (item.to_string(), order.clone())).collect::<Vec<_>>())
    ///     .to("orders-by-item");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let orders = driver.input_topic::<String, String>("orders");
    /// let by_item = driver.output_topic::<String, String>("orders-by-item");
    /// driver.pipe(&orders, "o1".into(), "tea,milk".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&by_item), vec![
    ///     ("tea".to_string(), "o1".to_string()),
    ///     ("milk".to_string(), "o1".to_string()),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flat_map<K2: Data, V2: Data, I: IntoIterator<Item = (K2, V2)> + 'static>(
        &self,
        mapper: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KSTREAM-FLATMAP-", move || FlatMap(mapper.clone()));
        self.derive(name, None, None, true)
    }

    /// Zero or more values per record, same key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("lines")
    ///     .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    ///     .to("words");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let lines = driver.input_topic::<String, String>("lines");
    /// let words = driver.output_topic::<String, String>("words");
    /// driver.pipe(&lines, "doc-1".into(), "to be".into(), 0)?;
    /// driver.pipe(&lines, "doc-2".into(), "   ".into(), 1)?; // no words: nothing forwarded
    /// assert_eq!(driver.read_key_values(&words), vec![
    ///     ("doc-1".to_string(), "to".to_string()),
    ///     ("doc-1".to_string(), "be".to_string()),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flat_map_values<V2: Data, I: IntoIterator<Item = V2> + 'static>(
        &self,
        mapper: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let mapper = Arc::new(move |_: &K, v: V| mapper(v));
        let name = self.add("KSTREAM-FLATMAPVALUES-", move || FlatMapValues(mapper.clone()));
        self.derive(name, self.key_serde.clone(), None, self.repartition_required)
    }

    /// A new key computed from key and value. Changes the key, so a grouping downstream repartitions.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // session -> user becomes user -> user
    /// builder.stream::<String, String>("logins").select_key(|_, user| user.clone()).to("logins-by-user");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let logins = driver.input_topic::<String, String>("logins");
    /// let by_user = driver.output_topic::<String, String>("logins-by-user");
    /// driver.pipe(&logins, "session-9".into(), "ada".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&by_user), vec![("ada".to_string(), "ada".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn select_key<K2: Data>(&self, selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        let selector = Arc::new(selector);
        let name = self.add("KSTREAM-KEY-SELECT-", move || SelectKey(selector.clone()));
        self.derive(name, None, self.value_serde.clone(), true)
    }

    /// Runs `action` on every record and passes it on unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = seen.clone();
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("events")
    ///     .peek(move |_, _| {
    ///         counter.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .to("events-copy");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let events = driver.input_topic::<String, String>("events");
    /// let copy = driver.output_topic::<String, String>("events-copy");
    /// driver.pipe(&events, "k".into(), "a".into(), 0)?;
    /// driver.pipe(&events, "k".into(), "b".into(), 1)?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 2);
    /// assert_eq!(driver.read_key_values(&copy), vec![
    ///     ("k".to_string(), "a".to_string()),
    ///     ("k".to_string(), "b".to_string()),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let action = Arc::new(action);
        let name = self.add("KSTREAM-PEEK-", move || Peek { action: action.clone(), forward: true });
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), self.repartition_required)
    }

    /// Runs a hand-written [`Processor`] on every record (Kafka Streams' `process`), made once per task by
    /// `supplier`, with access to the stores named in `stores` (added with
    /// [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)). It forwards what it
    /// likes, with any key: the stream it returns is marked for repartitioning, so a grouping after it
    /// repartitions. An unknown store is reported by `build()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::processor::{Processor, ProcessorContext};
    /// use streams_core::testing::TopologyTestDriver;
    /// use streams_core::{Record, StreamsError};
    ///
    /// /// Forwards each word of a line, keyed by the word, with its length.
    /// struct WordLengths;
    ///
    /// impl Processor<String, String, String, i64> for WordLengths {
    ///     fn process(
    ///         &mut self,
    ///         ctx: &mut ProcessorContext<'_, String, i64>,
    ///         record: Record<String, String>,
    ///     ) -> Result<(), StreamsError> {
    ///         for word in record.value.split_whitespace() {
    ///             ctx.forward(Record::new(word.to_string(), word.len() as i64, record.timestamp))?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("lines").process(|| WordLengths, &[]).to("word-lengths");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let lines = driver.input_topic::<String, String>("lines");
    /// let lengths = driver.output_topic::<String, i64>("word-lengths");
    /// driver.pipe(&lines, "doc-1".into(), "hi there".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&lengths), vec![("hi".to_string(), 2), ("there".to_string(), 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2> {
        // A given name burns no index here, unlike other operators (Kafka Streams' `process`).
        let name = self.builder.borrow_mut().given_or(self.next_name.clone(), "KSTREAM-PROCESSOR-");
        let name = self.add_as(name, supplier);
        self.builder.borrow_mut().connect_stores(&name, stores);
        self.derive(name, None, None, true)
    }

    /// Runs a hand-written [`FixedKeyProcessor`] on every record (Kafka Streams' `processValues`), made
    /// once per task by `supplier`, with access to the stores named in `stores`. It may change values,
    /// timestamps and headers and forward any number of records, but not the key (its records are
    /// [`FixedKeyRecord`](crate::processor::FixedKeyRecord)s), so unlike [`process`](Self::process) the
    /// stream it returns is partitioned as this one: a grouping after it repartitions only if one after
    /// this stream would. The key serde carries over. [`FixedKeyProcessor`] has an example.
    pub fn process_values<V2: Data, P: FixedKeyProcessor<K, V, V2>>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K, V2> {
        // A given name burns no index here, unlike other operators (Kafka Streams' `processValues`).
        let name = self.builder.borrow_mut().given_or(self.next_name.clone(), "KSTREAM-PROCESSVALUES-");
        let name = self.add_as(name, move || FixedKey(supplier()));
        self.builder.borrow_mut().connect_stores(&name, stores);
        self.derive(name, self.key_serde.clone(), None, self.repartition_required)
    }

    /// Runs `action` on every record; ends the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let alerts = Arc::new(Mutex::new(Vec::new()));
    /// let sink = alerts.clone();
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("temperatures")
    ///     .filter(|_, celsius| *celsius > 30)
    ///     .foreach(move |room, celsius| sink.lock().unwrap().push(format!("{room}: {celsius}")));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let temperatures = driver.input_topic::<String, i64>("temperatures");
    /// driver.pipe(&temperatures, "kitchen".into(), 21, 0)?;
    /// driver.pipe(&temperatures, "attic".into(), 34, 1)?;
    /// assert_eq!(*alerts.lock().unwrap(), ["attic: 34"]);
    /// assert!(driver.output_topics().is_empty()); // foreach writes nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn foreach(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) {
        let action = Arc::new(action);
        self.add::<K, V, _>("KSTREAM-FOREACH-", move || Peek { action: action.clone(), forward: false });
    }

    /// One stream of the records of both (Kafka Streams' `merge`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let web = builder.stream::<String, String>("web-clicks");
    /// let app = builder.stream::<String, String>("app-clicks");
    /// web.merge(&app).to("clicks");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let web_in = driver.input_topic::<String, String>("web-clicks");
    /// let app_in = driver.input_topic::<String, String>("app-clicks");
    /// let clicks = driver.output_topic::<String, String>("clicks");
    /// driver.pipe(&web_in, "ada".into(), "/home".into(), 0)?;
    /// driver.pipe(&app_in, "bob".into(), "/cart".into(), 1)?;
    /// assert_eq!(driver.read_key_values(&clicks), vec![
    ///     ("ada".to_string(), "/home".to_string()),
    ///     ("bob".to_string(), "/cart".to_string()),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let name = {
            let mut b = self.builder.borrow_mut();
            let name = b.name_or(self.next_name.clone(), "KSTREAM-MERGE-");
            let parents = vec![self.node.clone(), other.node.clone()];
            b.topology.add_node_deferred(processor_def::<K, V, K, V, _>(&name, parents, || PassThrough));
            name
        };
        let repartition = self.repartition_required || other.repartition_required;
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), repartition)
    }

    /// Splits the stream by predicates (Kafka Streams' `split()`): each record goes to the first branch
    /// whose predicate holds. Branches are named `<split name><branch name>`; [`named`](Self::named) before
    /// `split()` names the split.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Branched, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch(|_, v| *v > 0, Branched::with_name("positive"))
    ///     .default_branch(Branched::with_name("other"));
    /// branches.get("KSTREAM-BRANCH-0000000001positive").unwrap().to("positive");
    /// branches.get("KSTREAM-BRANCH-0000000001other").unwrap().to("other");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let positive = driver.output_topic::<String, i64>("positive");
    /// let other = driver.output_topic::<String, i64>("other");
    /// driver.pipe(&amounts, "a".into(), 5, 0)?;
    /// driver.pipe(&amounts, "b".into(), 0, 1)?;
    /// assert_eq!(driver.read_key_values(&positive), vec![("a".to_string(), 5)]);
    /// assert_eq!(driver.read_key_values(&other), vec![("b".to_string(), 0)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn split(&self) -> BranchedKStream<K, V> {
        let branches: SharedBranches<K, V> = Arc::default();
        let name = {
            let mut b = self.builder.borrow_mut();
            let name = b.name_or(self.next_name.clone(), "KSTREAM-BRANCH-");
            // The split node is added now and each branch as it is declared, as in Kafka Streams, so that
            // a branch's chain of operators is numbered and placed where Kafka Streams places it.
            let shared = branches.clone();
            let supplier = move || Split { branches: shared.lock_unpoisoned().clone(), positions: Vec::new() };
            b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
            name
        };
        BranchedKStream {
            stream: KStream { next_name: None, ..self.clone() },
            split_name: name,
            branches,
            outputs: Vec::new(),
        }
    }

    /// Writes every record to `topic`, with the upstream serdes or the types' defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").map_values(|euros| euros * 100).to("amounts-in-cents");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let cents = driver.output_topic::<String, i64>("amounts-in-cents");
    /// driver.pipe(&amounts, "ada".into(), 3, 0)?;
    /// assert_eq!(driver.read_key_values(&cents), vec![("ada".to_string(), 300)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let produced = Produced::with(pick_or_default(None, &self.key_serde), pick_or_default(None, &self.value_serde));
        self.to_with(topic, produced)
    }

    /// Writes every record to `topic` with the serdes, partitioner and sink name given.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Produced, StreamsBuilder};
    /// use streams_core::serde::{I64Serde, StringSerde};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let produced = Produced::with(Arc::new(StringSerde), Arc::new(I64Serde)).with_name("totals-out");
    /// builder.stream::<String, i64>("amounts").to_with("totals", produced);
    /// let topology = builder.build()?;
    /// assert!(topology.describe().to_string().contains("Sink: totals-out (topic: totals)"));
    ///
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let totals = driver.output_topic::<String, i64>("totals");
    /// driver.pipe(&amounts, "ada".into(), 3, 0)?;
    /// assert_eq!(driver.read_key_values(&totals), vec![("ada".to_string(), 3)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        self.sink(SinkSpec::Fixed(TopicRef::user(topic)), produced)
    }

    /// Writes each record to the topic `choose` names for it (Kafka Streams' `TopicNameExtractor`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("logs")
    ///     .to_dynamic(|_, line, _| if line.starts_with("ERROR") { "errors".into() } else { "other-logs".into() });
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let logs = driver.input_topic::<String, String>("logs");
    /// driver.pipe(&logs, "web-1".into(), "ERROR disk full".into(), 0)?;
    /// driver.pipe(&logs, "web-1".into(), "GET /".into(), 1)?;
    /// let errors = driver.output_topic::<String, String>("errors");
    /// assert_eq!(driver.read_key_values(&errors), vec![("web-1".to_string(), "ERROR disk full".to_string())]);
    /// assert_eq!(driver.output_topics(), vec!["errors", "other-logs"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_dynamic(&self, choose: impl Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync + 'static)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let produced = Produced::with(pick_or_default(None, &self.key_serde), pick_or_default(None, &self.value_serde));
        self.sink(SinkSpec::Dynamic(Arc::new(choose)), produced)
    }

    /// [`to_dynamic`](Self::to_dynamic) with the serdes, partitioner and sink name given (Kafka Streams'
    /// `to(TopicNameExtractor, Produced)`); serdes not given come from upstream.
    pub fn to_dynamic_with(
        &self,
        choose: impl Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        self.sink(SinkSpec::Dynamic(Arc::new(choose)), produced)
    }

    fn sink(&self, target: SinkSpec<K, V>, produced: Produced<K, V>) {
        let mut b = self.builder.borrow_mut();
        let name = b.name_or(produced.name.or(self.next_name.clone()), "KSTREAM-SINK-");
        let key_serde = pick(produced.key_serde, &self.key_serde);
        let value_serde = pick(produced.value_serde, &self.value_serde);
        match (key_serde, value_serde) {
            (Some(k), Some(v)) => {
                let def = sink_def(&name, vec![self.node.clone()], target, k, v, produced.partitioner);
                b.topology.add_node_deferred(def);
            }
            (key, _) => {
                let target = match &target {
                    SinkSpec::Fixed(topic) => format!("the sink to {}", topic.name),
                    SinkSpec::Dynamic(_) => "a sink to topics chosen per record".to_string(),
                };
                let part = if key.is_none() { RecordPart::Key } else { RecordPart::Value };
                b.topology.deferred.push(missing_serde::<K, V>(name, target, part))
            }
        }
    }

    /// The stream as a table: each record upserts its key, a record whose value the serde writes as null
    /// deletes it, and a record with a null key is dropped (Kafka Streams' `toTable`). A key-changing
    /// operator upstream makes it repartition first, to `<name>-repartition`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let latest = builder.stream::<String, String>("user-regions").to_table();
    /// latest.filter(|_, region| region.as_str() == "EU").to_stream().to("eu-users");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let regions = driver.input_topic::<String, String>("user-regions");
    /// let eu = driver.output_topic::<String, Option<String>>("eu-users");
    /// driver.pipe(&regions, "ada".into(), "EU".into(), 0)?;
    /// driver.pipe(&regions, "ada".into(), "US".into(), 1)?; // ada leaves the EU table: a delete
    /// assert_eq!(driver.read_key_values(&eu), vec![("ada".to_string(), Some("EU".to_string())), ("ada".to_string(), None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_table(&self) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_table_with(Materialized::new())
    }

    /// [`to_table`](Self::to_table) with a store name, serdes, or logging and caching settings. Serdes
    /// left out come from upstream, else from the types.
    pub fn to_table_with(&self, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let key_serde = pick_or_default(materialized.key_serde.clone(), &self.key_serde);
        let value_serde = pick_or_default(materialized.value_serde.clone(), &self.value_serde);
        super::ktable::stream_to_table(self, materialized.with_key_serde(key_serde).with_value_serde(value_serde))
    }

    /// Sends the records through a repartition topic, so that downstream tasks see them partitioned by
    /// their current key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let logins = builder.stream::<String, String>("logins"); // session -> user
    /// logins.select_key(|_, user| user.clone()).repartition().to("logins-by-user");
    /// let topology = builder.build()?;
    /// // The repartition topic cuts the topology in two: the part before it and the part after it.
    /// assert_eq!(topology.describe().subtopologies.len(), 2);
    ///
    /// let mut driver = TopologyTestDriver::new(topology)?;
    /// assert_eq!(driver.input_topics(), vec!["logins", "test-driver-KSTREAM-REPARTITION-0000000002-repartition"]);
    /// let logins = driver.input_topic::<String, String>("logins");
    /// let by_user = driver.output_topic::<String, String>("logins-by-user");
    /// driver.pipe(&logins, "session-9".into(), "ada".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&by_user), vec![("ada".to_string(), "ada".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let key_serde = pick_or_default(None, &self.key_serde);
        let value_serde = pick_or_default(None, &self.value_serde);
        self.repartition_with(Repartitioned::with(key_serde, value_serde))
    }

    /// [`repartition`](Self::repartition) with a topic name, serdes, partition count or partitioner.
    ///
    /// Serdes left out of `repartitioned` are inherited from upstream; unlike `repartition`, this method
    /// does not require a [`DefaultSerde`] to fall back on. A key-changing operator (`select_key`, `map`,
    /// `flat_map`, `process`) leaves the new key's serde unknown, so after one give the serdes with
    /// [`Repartitioned::with`], or use [`repartition`](Self::repartition); otherwise `build()` reports a
    /// missing serde.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Repartitioned, StreamsBuilder};
    /// use streams_core::serde::StringSerde;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let logins = builder.stream::<String, String>("logins"); // session -> user
    /// // Same key, more partitions: more tasks downstream. The serdes are the source's.
    /// logins.repartition_with(Repartitioned::with_name("logins-spread").with_partitions(8)).to("logins-spread");
    /// // A new key: its serde must be given.
    /// let serdes = Repartitioned::with(Arc::new(StringSerde), Arc::new(StringSerde));
    /// logins.select_key(|_, user| user.clone()).repartition_with(serdes).to("logins-by-user");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// assert!(driver.input_topics().contains(&"test-driver-logins-spread-repartition".to_string()));
    /// let input = driver.input_topic::<String, String>("logins");
    /// let by_user = driver.output_topic::<String, String>("logins-by-user");
    /// driver.pipe(&input, "session-9".into(), "ada".into(), 0)?;
    /// assert_eq!(driver.read_key_values(&by_user), vec![("ada".to_string(), "ada".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn repartition_with(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let mut b = self.builder.borrow_mut();
        let base = repartitioned.name.unwrap_or_else(|| b.new_name("KSTREAM-REPARTITION-"));
        let names = RepartitionNames::for_stream(&mut b, &base);
        let key_serde = pick(repartitioned.key_serde, &self.key_serde);
        let value_serde = pick(repartitioned.value_serde, &self.value_serde);
        let (Some(k), Some(v)) = (key_serde, value_serde) else {
            let target = format!("the repartition topic {}", names.topic);
            b.topology.deferred.push(missing_serde::<K, V>(names.sink.clone(), target, RecordPart::KeyOrValue));
            return KStream::new(self.builder.clone(), names.source, None, None, false);
        };
        let source = add_repartition(
            &mut b,
            &self.node,
            names,
            k.clone(),
            v.clone(),
            repartitioned.partitioner,
            repartitioned.partitions,
        );
        KStream::new(self.builder.clone(), source, Some(k), Some(v), false)
    }

    /// Groups by the current key, for an aggregation. Repartitions first if an upstream operator changed
    /// the key (`select_key`, `map`, `flat_map`); `map_values` and `filter` do not.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream::<String, String>("views"); // user -> page
    /// views.group_by_key().count().to_stream().to("views-per-user");
    /// // The key changes before this grouping, so it goes through a repartition topic; the one above does not.
    /// views.select_key(|_, page| page.clone()).group_by_key().count().to_stream().to("views-per-page");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// assert_eq!(driver.input_topics().len(), 2); // "views" and one repartition topic
    /// let views_in = driver.input_topic::<String, String>("views");
    /// let per_user = driver.output_topic::<String, Option<i64>>("views-per-user");
    /// let per_page = driver.output_topic::<String, Option<i64>>("views-per-page");
    /// driver.pipe(&views_in, "ada".into(), "/home".into(), 0)?;
    /// driver.pipe(&views_in, "bob".into(), "/home".into(), 1)?;
    /// assert_eq!(driver.read_key_values(&per_user), vec![("ada".to_string(), Some(1)), ("bob".to_string(), Some(1))]);
    /// assert_eq!(driver.read_key_values(&per_page), vec![
    ///     ("/home".to_string(), Some(1)),
    ///     ("/home".to_string(), Some(2)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// [`group_by_key`](Self::group_by_key) with a repartition topic name or serdes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Grouped, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("views")
    ///     .select_key(|_, page| page.clone())
    ///     .group_by_key_with(Grouped::with_name("by-page"))
    ///     .count()
    ///     .to_stream()
    ///     .to("views-per-page");
    ///
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// assert_eq!(driver.input_topics(), vec!["test-driver-by-page-repartition", "views"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped, self.repartition_required)
    }

    /// Groups by a new key computed from key and value; always repartitions.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("sales") // shop -> amount
    ///     .group_by(|_, amount| if *amount >= 100 { "big" } else { "small" }.to_string())
    ///     .count()
    ///     .to_stream()
    ///     .to("sales-by-size");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let sales = driver.input_topic::<String, i64>("sales");
    /// let by_size = driver.output_topic::<String, Option<i64>>("sales-by-size");
    /// driver.pipe(&sales, "shop-1".into(), 120, 0)?;
    /// driver.pipe(&sales, "shop-2".into(), 30, 1)?;
    /// driver.pipe(&sales, "shop-2".into(), 250, 2)?;
    /// assert_eq!(driver.read_key_values(&by_size), vec![
    ///     ("big".to_string(), Some(1)),
    ///     ("small".to_string(), Some(1)),
    ///     ("big".to_string(), Some(2)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by<K2: Data>(&self, selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KGroupedStream<K2, V> {
        self.group_by_with(selector, Grouped::default())
    }

    /// [`group_by`](Self::group_by) with a repartition topic name or serdes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Grouped, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let size = |_: &String, amount: &i64| if *amount >= 100 { "big" } else { "small" }.to_string();
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("sales")
    ///     .group_by_with(size, Grouped::with_name("by-size"))
    ///     .count()
    ///     .to_stream()
    ///     .to("sales-by-size");
    /// let topology = builder.build()?;
    /// // The name names the key-selecting node as well as the repartition topic.
    /// assert!(topology.describe().to_string().contains("Processor: by-size (stores: [])"));
    ///
    /// let driver = TopologyTestDriver::new(topology)?;
    /// assert_eq!(driver.input_topics(), vec!["sales", "test-driver-by-size-repartition"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by_with<K2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        let selector = Arc::new(selector);
        // As in Kafka Streams, a Grouped name also names the key-selecting node.
        let named = KStream { next_name: grouped.name.clone().or(self.next_name.clone()), ..self.clone() };
        let name = named.add("KSTREAM-KEY-SELECT-", move || SelectKey(selector.clone()));
        let stream = self.derive(name, None, self.value_serde.clone(), true);
        KGroupedStream::new(stream, grouped, true)
    }
}

/// The branches of a split as its node reads them when a task is made: each predicate (none for the
/// default branch) and the child it sends records to.
type SharedBranches<K, V> = Arc<Mutex<Vec<(Option<Predicate<K, V>>, String)>>>;

/// A stream being split into branches; made by [`KStream::split`].
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    split_name: String,
    branches: SharedBranches<K, V>,
    /// The branches among the split's results, in declaration order.
    outputs: Vec<(String, KStream<K, V>)>,
}

/// The branches of a split, by name, in the order they were declared.
///
/// # Examples
///
/// ```
/// use streams_core::dsl::{Branched, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// let branches = builder
///     .stream::<String, i64>("amounts")
///     .named("sign")
///     .split()
///     .branch(|_, v| *v > 0, Branched::with_name("-positive"))
///     .default_branch(Branched::with_name("-other"));
/// assert_eq!(branches.len(), 2);
/// assert!(!branches.is_empty());
/// assert_eq!(branches.names().collect::<Vec<_>>(), ["sign-positive", "sign-other"]);
/// assert_eq!(branches.get("sign-positive").unwrap().node_name(), "sign-positive");
/// assert_eq!(branches.at(1).unwrap().node_name(), "sign-other");
/// assert!(branches.get("positive").is_none()); // the full name, split name first
/// for (branch, topic) in branches.into_vec().into_iter().zip(["positive", "other"]) {
///     branch.to(topic);
/// }
/// assert_eq!(builder.build()?.describe().subtopologies.len(), 1);
/// # Ok::<(), streams_core::TopologyError>(())
/// ```
pub struct Branches<K, V> {
    streams: Vec<(String, KStream<K, V>)>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Adds a branch for records where `predicate` holds (and no earlier branch's did).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Branched, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch(|_, v| *v > 100, Branched::with_name("large"))
    ///     .branch(|_, v| *v > 0, Branched::with_name("positive"))
    ///     .no_default_branch();
    /// branches.at(0).unwrap().to("large");
    /// branches.at(1).unwrap().to("positive");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let large = driver.output_topic::<String, i64>("large");
    /// let positive = driver.output_topic::<String, i64>("positive");
    /// driver.pipe(&amounts, "a".into(), 500, 0)?; // both predicates hold: the first branch takes it
    /// driver.pipe(&amounts, "b".into(), 7, 1)?;
    /// assert_eq!(driver.read_key_values(&large), vec![("a".to_string(), 500)]);
    /// assert_eq!(driver.read_key_values(&positive), vec![("b".to_string(), 7)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn branch(
        mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        branched: Branched<'_, K, V>,
    ) -> Self {
        let position = self.branches.lock_unpoisoned().len() + 1;
        self.add_branch(Some(Arc::new(predicate)), branched, position);
        self
    }

    /// Adds branch `<split name><branch name, or index>` (the default branch's index is 0), then runs its
    /// chain, as Kafka Streams' `BranchedKStreamImpl.createBranch` does; each branch advances the name
    /// counter.
    fn add_branch(&mut self, predicate: Option<Predicate<K, V>>, branched: Branched<'_, K, V>, index: usize) {
        let Branched { name, chain } = branched;
        let child = format!("{}{}", self.split_name, name.unwrap_or_else(|| index.to_string()));
        {
            let mut b = self.stream.builder.borrow_mut();
            b.burn();
            let node = processor_def::<K, V, K, V, _>(&child, vec![self.split_name.clone()], || PassThrough);
            b.topology.add_node_deferred(node);
        }
        self.branches.lock_unpoisoned().push((predicate, child.clone()));
        let s = &self.stream;
        let branch = s.derive(child.clone(), s.key_serde.clone(), s.value_serde.clone(), s.repartition_required);
        match chain {
            BranchChain::Keep => self.outputs.push((child, branch)),
            BranchChain::Function(function) => self.outputs.push((child, function(branch))),
            BranchChain::Consumer(consumer) => consumer(branch),
        }
    }

    /// Ends the split with a branch for every record no predicate took.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Branched, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch(|_, v| *v > 0, Branched::with_name("positive"))
    ///     .default_branch(Branched::new());
    /// // An unnamed default branch is `<split name>0`.
    /// let names: Vec<&str> = branches.names().collect();
    /// assert_eq!(names, ["KSTREAM-BRANCH-0000000001positive", "KSTREAM-BRANCH-00000000010"]);
    /// branches.get("KSTREAM-BRANCH-00000000010").unwrap().to("not-positive");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let rest = driver.output_topic::<String, i64>("not-positive");
    /// driver.pipe(&amounts, "a".into(), 5, 0)?;
    /// driver.pipe(&amounts, "b".into(), -5, 1)?;
    /// assert_eq!(driver.read_key_values(&rest), vec![("b".to_string(), -5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn default_branch(mut self, branched: Branched<'_, K, V>) -> Branches<K, V> {
        self.add_branch(None, branched, 0);
        Branches { streams: self.outputs }
    }

    /// Ends the split; records no predicate took are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Branched, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch(|_, v| *v > 0, Branched::with_name("positive"))
    ///     .no_default_branch();
    /// assert_eq!(branches.len(), 1);
    /// branches.at(0).unwrap().to("positive");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let positive = driver.output_topic::<String, i64>("positive");
    /// driver.pipe(&amounts, "a".into(), -5, 0)?; // no branch takes it: dropped
    /// driver.pipe(&amounts, "b".into(), 5, 1)?;
    /// assert_eq!(driver.read_key_values(&positive), vec![("b".to_string(), 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn no_default_branch(self) -> Branches<K, V> {
        Branches { streams: self.outputs }
    }
}

impl<K: Data, V: Data> Branches<K, V> {
    /// The branch called `name` (`<split name><branch name>`).
    pub fn get(&self, name: &str) -> Option<KStream<K, V>> {
        self.streams.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
    }

    /// The branch at `index`, in declaration order.
    pub fn at(&self, index: usize) -> Option<KStream<K, V>> {
        self.streams.get(index).map(|(_, s)| s.clone())
    }

    /// How many branches there are.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The branch names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.streams.iter().map(|(n, _)| n.as_str())
    }

    /// The branches as a vector, in declaration order.
    pub fn into_vec(self) -> Vec<KStream<K, V>> {
        self.streams.into_iter().map(|(_, s)| s).collect()
    }
}
