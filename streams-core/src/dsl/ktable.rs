//! [`KTable`]: a changelog stream read as a table (the latest value per key), and its operators.
//! Table nodes forward [`Change`]s (new and old value), so re-grouping can subtract what moved away.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::aggregate::AggregateOutput;
use super::builder::{missing_serde, pick, pick_or_default, BuilderState, StreamsBuilder};
use super::change::Change;
use super::getter::{GetterStep, GetterSupplier};
use super::grouped::{store_def, KGroupedTable};
use super::options::{Consumed, Grouped, Materialized};
use super::repartition::{add_repartition, RepartitionNames};
use super::transform_values::{TableTransformValues, ValueTransformerWithKey};
use super::{Data, KStream};
use crate::processor::{Processor, ProcessorContext, TimestampExtractor};
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, OptionSerde, Serde};
use crate::store::ValueAndTimestamp;
use crate::timestamp::NullableValue;
use crate::topology::{processor_def, source_def, NodeDef, SourceTopics, TopicRef};
use crate::{Record, StreamsError};

/// A table: the latest value per key (Kafka Streams' `KTable<K, V>`).
pub struct KTable<K, V> {
    pub(crate) builder: Rc<RefCell<BuilderState>>,
    pub(crate) node: String,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    /// The store holding this table's values, when it is materialized.
    pub(crate) store: Option<String>,
    pub(crate) next_name: Option<String>,
    /// Whether this node must forward old values (see [`SendOldValues`]).
    pub(crate) old_values: Arc<SendOldValues>,
    /// How a join reads this table's values, when it can (see [`super::getter`]).
    pub(crate) getter: Option<GetterSupplier<K, V>>,
    /// The history retention of the versioned store this table's values come from, when its output is
    /// versioned (Kafka Streams' `isOutputVersioned`): set by the operators that materialize (a source,
    /// an aggregation, an operator with a `Materialized`, where only `Materialized::as_versioned` makes
    /// it versioned), inherited through the others. The operators below that care only about each key's
    /// newest value then skip out-of-order updates.
    pub(crate) versioned: Option<i64>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            builder: self.builder.clone(),
            node: self.node.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: self.store.clone(),
            next_name: self.next_name.clone(),
            old_values: self.old_values.clone(),
            getter: self.getter.clone(),
            versioned: self.versioned,
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        builder: Rc<RefCell<BuilderState>>,
        node: String,
        key_serde: Option<Arc<dyn Serde<K>>>,
        value_serde: Option<Arc<dyn Serde<V>>>,
        store: Option<String>,
    ) -> Self {
        KTable {
            builder,
            node,
            key_serde,
            value_serde,
            store,
            next_name: None,
            old_values: Arc::default(),
            getter: None,
            versioned: None,
        }
    }

    /// This table, its output versioned with that history retention or not.
    pub(crate) fn versioned(mut self, history_ms: Option<i64>) -> Self {
        self.versioned = history_ms;
        self
    }

    /// This table read from its store by a join (a table keyed by `K` whose store holds values with
    /// timestamps: a source, an aggregation, a materialized operator).
    pub(crate) fn with_store_getter(mut self) -> Self {
        if let (Some(store), Some(key_serde)) = (&self.store, &self.key_serde) {
            self.getter = Some(GetterSupplier::store(store.clone(), key_serde.clone()));
        }
        self
    }

    /// How a join reads this table: its store, or its parent's through the operators in between. Like
    /// Kafka Streams' `valueGetterSupplier()`, it makes the source table above keep its store (which
    /// changes whether it sends old values). An error when the table cannot be read by key.
    pub(crate) fn value_getter(&self) -> Result<GetterSupplier<K, V>, String> {
        let getter = self.getter.clone().ok_or_else(|| {
            format!(
                "the table `{}` cannot be looked up by key: join a table that a source, an aggregation or a materialized operator (`Materialized::as_store`) keeps, or that filters or maps one",
                self.node
            )
        })?;
        self.old_values.materialize();
        Ok(getter)
    }

    /// The name of the node this table comes out of.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// // A source table is a source node and then the `KTABLE-SOURCE` processor that keeps the store.
    /// assert_eq!(users.node_name(), "KTABLE-SOURCE-0000000002");
    /// ```
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The name of the store that holds this table, when it is materialized (aggregations and source
    /// tables are); read it in tests with the test driver.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// assert_eq!(users.store_name(), Some("users-STATE-STORE-0000000000"));
    /// // A filtered table has no store of its own.
    /// assert_eq!(users.filter(|_, name| !name.is_empty()).store_name(), None);
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users_in = driver.input_topic::<String, Option<String>>("users");
    /// driver.pipe(&users_in, "u1".into(), Some("Ada".into()), 0)?;
    /// let store = users.store_name().unwrap();
    /// assert_eq!(driver.store_entries::<String, String>(store)?, vec![("u1".to_string(), "Ada".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Names the next operator applied to this handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let ages = builder.table::<String, i64>("ages");
    /// ages.named("adults").filter(|_, age| *age >= 18).to_stream().to("adults");
    /// assert!(builder.build()?.describe().to_string().contains("Processor: adults"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn named(&self, name: impl Into<String>) -> Self {
        KTable { next_name: Some(name.into()), ..self.clone() }
    }

    /// Keeps the rows for which `predicate` holds; a row that stops matching is deleted downstream. A row
    /// that does not match is forwarded as a delete even if it never matched, as Kafka Streams does
    /// (only a `group_by` below, which asks for old values, lets the filter tell the two apart and
    /// forward nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("prices").filter(|_, cents| *cents >= 100).to_stream().to("expensive");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let prices = driver.input_topic::<String, Option<i64>>("prices");
    /// let expensive = driver.output_topic::<String, Option<i64>>("expensive");
    /// driver.pipe(&prices, "tea".into(), Some(150), 0)?;
    /// driver.pipe(&prices, "tea".into(), Some(50), 1)?; // stops matching: deleted downstream
    /// driver.pipe(&prices, "milk".into(), Some(20), 2)?; // never matched: a delete too, as in Kafka Streams
    /// assert_eq!(driver.read_key_values(&expensive), vec![
    ///     ("tea".to_string(), Some(150)),
    ///     ("tea".to_string(), None),
    ///     ("milk".to_string(), None),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.add_filter(predicate, true, None)
    }

    /// [`filter`](Self::filter) into a store of its own: with a store name, the result is kept in that
    /// store (and can be queried); without one, nothing is stored, as in Kafka Streams.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let prices = builder.table::<String, i64>("prices");
    /// let expensive = prices.filter_with(|_, cents| *cents >= 100, Materialized::as_store("expensive"));
    /// assert_eq!(expensive.store_name(), Some("expensive"));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let input = driver.input_topic::<String, i64>("prices");
    /// driver.pipe(&input, "tea".into(), 150, 0)?;
    /// driver.pipe(&input, "milk".into(), 20, 1)?;
    /// assert_eq!(driver.store_entries::<String, i64>("expensive")?, vec![("tea".to_string(), 150)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter_with(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let materialized = self.fill_serdes(materialized, self.value_serde.clone());
        self.add_filter(predicate, true, Some(materialized))
    }

    /// Drops the rows for which `predicate` holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock").filter_not(|_, count| *count == 0).to_stream().to("in-stock");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let stock = driver.input_topic::<String, Option<i64>>("stock");
    /// let in_stock = driver.output_topic::<String, Option<i64>>("in-stock");
    /// driver.pipe(&stock, "tea".into(), Some(3), 0)?;
    /// driver.pipe(&stock, "tea".into(), Some(0), 1)?; // sold out: deleted downstream
    /// assert_eq!(driver.read_key_values(&in_stock), vec![("tea".to_string(), Some(3)), ("tea".to_string(), None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.add_filter(predicate, false, None)
    }

    /// [`filter_not`](Self::filter_not) into a store of its own, as [`filter_with`](Self::filter_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    ///
    /// let builder = StreamsBuilder::new();
    /// let stock = builder.table::<String, i64>("stock");
    /// let in_stock = stock.filter_not_with(|_, count| *count == 0, Materialized::as_store("in-stock"));
    /// assert_eq!(in_stock.store_name(), Some("in-stock"));
    /// ```
    pub fn filter_not_with(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let materialized = self.fill_serdes(materialized, self.value_serde.clone());
        self.add_filter(predicate, false, Some(materialized))
    }

    fn add_filter(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        keep_if: bool,
        materialized: Option<Materialized<K, V>>,
    ) -> KTable<K, V> {
        let predicate = Arc::new(predicate);
        let keep = predicate.clone();
        let step: GetterStep<K, V, V> =
            Arc::new(move |key, value| (keep(key, &value.value) == keep_if).then_some(value));
        let op = TableOp { prefix: "KTABLE-FILTER-", asks_for_old_values: true, getter_step: Some(step) };
        let versioned_input = self.versioned.is_some();
        self.add_table_op(op, materialized, self.value_serde.clone(), move |output, send_old| TableFilter {
            predicate: predicate.clone(),
            keep_if,
            output,
            send_old,
            versioned_input,
        })
    }

    /// A new value per row.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("users")
    ///     .map_values(|id, name| format!("{name} <{id}@example.com>"))
    ///     .to_stream()
    ///     .to("contacts");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users = driver.input_topic::<String, Option<String>>("users");
    /// let contacts = driver.output_topic::<String, Option<String>>("contacts");
    /// driver.pipe(&users, "ada".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&users, "ada".into(), None, 1)?; // a delete stays a delete
    /// assert_eq!(driver.read_key_values(&contacts), vec![
    ///     ("ada".to_string(), Some("Ada <ada@example.com>".to_string())),
    ///     ("ada".to_string(), None),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_values<V2: Data>(&self, mapper: impl Fn(&K, V) -> V2 + Send + Sync + 'static) -> KTable<K, V2> {
        self.add_map_values(mapper, None)
    }

    /// [`map_values`](Self::map_values) into a store of its own: with a store name, the new values are
    /// kept in that store (and can be queried); without one, nothing is stored, as in Kafka Streams.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::serde::I64Serde;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names");
    /// names.map_values_with(|_, name| name.len() as i64, Materialized::as_store("name-lengths").with_value_serde(Arc::new(I64Serde)));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let input = driver.input_topic::<String, String>("names");
    /// driver.pipe(&input, "u1".into(), "Ada".into(), 0)?;
    /// assert_eq!(driver.store_entries::<String, i64>("name-lengths")?, vec![("u1".to_string(), 3)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_values_with<V2: Data + DefaultSerde>(
        &self,
        mapper: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
        materialized: Materialized<K, V2>,
    ) -> KTable<K, V2>
    where
        K: DefaultSerde,
    {
        let materialized = self.fill_serdes(materialized, None);
        self.add_map_values(mapper, Some(materialized))
    }

    /// Transforms each value with a hand-written [`ValueTransformerWithKey`] (Kafka Streams'
    /// `transformValues`), made once per task by `supplier`, with access to the stores named in `stores`
    /// (added with [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)). The
    /// transformer sees deletes as `None` and may turn them into values, or values into deletes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{StreamsBuilder, ValueTransformerWithKey};
    /// use streams_core::processor::ProcessingContext;
    /// use streams_core::testing::TopologyTestDriver;
    /// use streams_core::StreamsError;
    ///
    /// /// A user's status: their name, or "gone" once deleted.
    /// struct Status;
    ///
    /// impl ValueTransformerWithKey<String, String, String> for Status {
    ///     fn transform(&mut self, _: &mut ProcessingContext<'_>, _: &String, name: Option<&String>)
    ///         -> Result<Option<String>, StreamsError>
    ///     {
    ///         Ok(Some(name.map_or("gone".to_string(), |n| format!("active: {n}"))))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users").transform_values(|| Status, &[]).to_stream().to("statuses");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users = driver.input_topic::<String, Option<String>>("users");
    /// let statuses = driver.output_topic::<String, Option<String>>("statuses");
    /// driver.pipe(&users, "u1".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&users, "u1".into(), None, 1)?;
    /// assert_eq!(driver.read_key_values(&statuses), vec![
    ///     ("u1".to_string(), Some("active: Ada".to_string())),
    ///     ("u1".to_string(), Some("gone".to_string())),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transform_values<V2: Data, T: ValueTransformerWithKey<K, V, V2>>(
        &self,
        supplier: impl Fn() -> T + Send + Sync + 'static,
        stores: &[&str],
    ) -> KTable<K, V2> {
        self.add_transform_values(supplier, None, stores)
    }

    /// [`transform_values`](Self::transform_values) into a store of its own, as
    /// [`map_values_with`](Self::map_values_with) does.
    pub fn transform_values_with<V2: Data + DefaultSerde, T: ValueTransformerWithKey<K, V, V2>>(
        &self,
        supplier: impl Fn() -> T + Send + Sync + 'static,
        materialized: Materialized<K, V2>,
        stores: &[&str],
    ) -> KTable<K, V2>
    where
        K: DefaultSerde,
    {
        let materialized = self.fill_serdes(materialized, None);
        self.add_transform_values(supplier, Some(materialized), stores)
    }

    fn add_transform_values<V2: Data, T: ValueTransformerWithKey<K, V, V2>>(
        &self,
        supplier: impl Fn() -> T + Send + Sync + 'static,
        materialized: Option<Materialized<K, V2>>,
        stores: &[&str],
    ) -> KTable<K, V2> {
        // A transformer may keep state of its own: read only from a store of this table's.
        let op = TableOp { prefix: "KTABLE-TRANSFORMVALUES-", asks_for_old_values: false, getter_step: None };
        let table = self.add_table_op(op, materialized, None, move |output, send_old| TableTransformValues {
            transformer: supplier(),
            output,
            send_old,
            _input: PhantomData,
        });
        self.builder.borrow_mut().connect_stores(&table.node, stores);
        table
    }

    fn add_map_values<V2: Data>(
        &self,
        mapper: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
        materialized: Option<Materialized<K, V2>>,
    ) -> KTable<K, V2> {
        let mapper = Arc::new(mapper);
        let map = mapper.clone();
        let step: GetterStep<K, V, V2> = Arc::new(move |key, value| {
            Some(ValueAndTimestamp { value: map(key, value.value), timestamp: value.timestamp })
        });
        let op = TableOp { prefix: "KTABLE-MAPVALUES-", asks_for_old_values: false, getter_step: Some(step) };
        self.add_table_op(op, materialized, None, move |output, _| TableMapValues { mapper: mapper.clone(), output })
    }

    /// A `Materialized` with both serdes: given, else this table's key serde and `value_serde`, else the
    /// types' defaults.
    fn fill_serdes<V2: DefaultSerde>(
        &self,
        mut materialized: Materialized<K, V2>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
    ) -> Materialized<K, V2>
    where
        K: DefaultSerde,
    {
        let key = materialized.key_serde.take();
        materialized.key_serde = Some(pick_or_default(key, &self.key_serde));
        let value = materialized.value_serde.take();
        materialized.value_serde = Some(pick_or_default(value, &value_serde));
        materialized
    }

    /// Adds a table operator below this table. With a `Materialized` that names a store, its results are
    /// kept in that store; one without a name burns a store name (Kafka Streams' numbering) and stores
    /// nothing. `make` builds the processor from its store output, if any, and whether it must send old
    /// values.
    fn add_table_op<V2: Data, P: Processor<K, Change<V>, K, Change<V2>>>(
        &self,
        op: TableOp<K, V, V2>,
        materialized: Option<Materialized<K, V2>>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
        make: impl Fn(TableOutput<K, V2>, bool) -> P + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let mut b = self.builder.borrow_mut();
        let store = match &materialized {
            Some(m) if m.store_name.is_none() => {
                b.new_store_name(op.prefix);
                None
            }
            Some(m) => m.store_name.clone(),
            None => None,
        };
        let name = b.name_or(self.next_name.clone(), op.prefix);
        let (key_serde, value_serde) = match &materialized {
            Some(m) => (m.key_serde.clone().or(self.key_serde.clone()), m.value_serde.clone().or(value_serde)),
            None => (self.key_serde.clone(), value_serde),
        };
        let mut output = None;
        let mut store_def_for = None;
        if let (Some(store), Some(m)) = (&store, &materialized) {
            let (Some(key_serde), Some(value_serde)) = (&key_serde, &value_serde) else {
                let target = format!("the store {store}");
                b.topology.deferred.push(missing_serde::<K, V2>(name.clone(), target, RecordPart::KeyOrValue));
                return KTable::new(self.builder.clone(), name, None, None, Some(store.clone()));
            };
            store_def_for = Some(store_def(store, m, key_serde.clone(), value_serde.clone()));
            output = Some((store.clone(), key_serde.clone(), m.caching_enabled));
        }
        // A node with a store of its own reads old values from it; one without asks its parent for them.
        let old_values = match &store {
            Some(_) => Arc::new(SendOldValues::default()),
            None => Arc::new(SendOldValues::below(&self.old_values)),
        };
        if op.asks_for_old_values && self.old_values.enable(false) {
            old_values.enabled.store(true, Ordering::Relaxed);
        }
        let flag = old_values.clone();
        let supplier = move || {
            let output =
                output.as_ref().map(|(store, key, caching)| AggregateOutput::new(store.clone(), key.clone(), *caching));
            make(TableOutput(output), flag.enabled())
        };
        b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
        if let Some(def) = store_def_for {
            b.topology.add_store_deferred(def, &name);
        }
        let getter = match (&store, &key_serde) {
            (Some(store), Some(key_serde)) => Some(GetterSupplier::store(store.clone(), key_serde.clone())),
            _ => self.getter.as_ref().zip(op.getter_step).map(|(getter, step)| getter.then(step)),
        };
        KTable {
            builder: self.builder.clone(),
            node: name,
            key_serde,
            value_serde,
            store,
            next_name: None,
            old_values,
            getter,
            // A `Materialized` decides (only a versioned store's makes it versioned); without, inherited.
            versioned: match &materialized {
                Some(m) => m.versioned_history_ms(),
                None => self.versioned,
            },
        }
    }

    /// The table's updates as a stream; a delete is a `None` value (a tombstone on the wire).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users").to_stream().to("user-updates");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users = driver.input_topic::<String, Option<String>>("users");
    /// let updates = driver.output_topic::<String, Option<String>>("user-updates");
    /// driver.pipe(&users, "u1".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&users, "u1".into(), Some("Ada L.".into()), 1)?;
    /// driver.pipe(&users, "u1".into(), None, 2)?;
    /// assert_eq!(driver.peek_raw("user-updates")[2].value, None); // the delete is a tombstone on the wire
    /// assert_eq!(driver.read_key_values(&updates), vec![
    ///     ("u1".to_string(), Some("Ada".to_string())),
    ///     ("u1".to_string(), Some("Ada L.".to_string())),
    ///     ("u1".to_string(), None),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let name = {
            let mut b = self.builder.borrow_mut();
            let name = b.name_or(self.next_name.clone(), "KTABLE-TOSTREAM-");
            b.topology.add_node_deferred(processor_def::<K, Change<V>, K, Option<V>, _>(
                &name,
                vec![self.node.clone()],
                || TableToStream,
            ));
            name
        };
        let value_serde = self.value_serde.clone().map(|s| Arc::new(OptionSerde::new(s)) as Arc<dyn Serde<Option<V>>>);
        KStream::new(self.builder.clone(), name, self.key_serde.clone(), value_serde, false)
    }

    /// Re-groups the rows by a new key (always through a repartition topic), for an aggregation that
    /// adds rows as they arrive and subtracts them as they leave.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // user -> region; count the users per region, following moves
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by(|_, region| (region.clone(), 1_i64))
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-region");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let regions = driver.input_topic::<String, Option<String>>("user-regions");
    /// let per_region = driver.output_topic::<String, Option<i64>>("users-per-region");
    /// driver.pipe(&regions, "ada".into(), Some("eu".into()), 0)?;
    /// driver.pipe(&regions, "bob".into(), Some("eu".into()), 1)?;
    /// driver.pipe(&regions, "ada".into(), Some("us".into()), 2)?; // eu loses one, then us gains one
    /// assert_eq!(driver.read_key_values(&per_region), vec![
    ///     ("eu".to_string(), Some(1)),
    ///     ("eu".to_string(), Some(2)),
    ///     ("eu".to_string(), Some(1)),
    ///     ("us".to_string(), Some(1)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by<K2: Data + PartialEq, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2> {
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
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by_with(|_, region| (region.clone(), 1_i64), Grouped::with_name("by-region"))
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-region");
    ///
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// assert_eq!(driver.input_topics(), vec!["test-driver-by-region-repartition", "user-regions"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by_with<K2: Data + PartialEq, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let selector = Arc::new(selector);
        // The re-grouping subtracts a row's old value from the group it leaves.
        self.old_values.enable(true);
        let name = {
            let mut b = self.builder.borrow_mut();
            // As in Kafka Streams, a Grouped name also names the selecting node.
            let name = b.name_or(grouped.name.clone().or(self.next_name.clone()), "KTABLE-SELECT-");
            let versioned = self.versioned.is_some();
            let supplier = move || TableRepartitionMap { selector: selector.clone(), versioned };
            b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
            name
        };
        let key_serde = grouped.key_serde.clone();
        KGroupedTable { builder: self.builder.clone(), node: name, key_serde, grouped, next_name: None }
    }
}

/// `builder.table(topic)`: a source, then a `KTABLE-SOURCE` processor that keeps the latest value per
/// key in a store and forwards changes. Names in Kafka Streams' order: store, source, processor.
pub(crate) fn table_source<K: Data, V: Data>(
    builder: &StreamsBuilder,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let rc = builder.state.clone();
    let mut b = rc.borrow_mut();
    let (store, source, name) = source_table_names(&mut b, topic, &consumed, &materialized);
    let key_serde = pick(materialized.key_serde.clone(), &consumed.key_serde);
    let value_serde = pick(materialized.value_serde.clone(), &consumed.value_serde);
    let (Some(key_serde), Some(value_serde)) = (key_serde, value_serde) else {
        let target = format!("the table source of {topic}");
        b.topology.deferred.push(missing_serde::<K, V>(source.clone(), target, RecordPart::KeyOrValue));
        return KTable::new(rc.clone(), name, None, None, None);
    };
    // The source reads values as `Option<V>`: a null value is a delete.
    let nullable: Arc<dyn Serde<Option<V>>> = Arc::new(OptionSerde::new(value_serde.clone()));
    let extractor = consumed
        .timestamp_extractor
        .map(|e| -> Arc<dyn TimestampExtractor<K, Option<V>>> { Arc::new(NullableValue(e)) });
    b.topology.add_node_deferred(source_def(
        &source,
        SourceTopics::Names(vec![TopicRef::user(topic)]),
        key_serde.clone(),
        nullable,
        extractor,
    ));
    let store_for_processor = store.clone();
    let (key_for_processor, caching) = (key_serde.clone(), materialized.caching_enabled);
    let def = processor_def(&name, vec![source], move || TableSource::<K, V> {
        output: AggregateOutput::new(store_for_processor.clone(), key_for_processor.clone(), caching),
    });
    add_source_table(&rc, &mut b, def, store, &materialized, (key_serde, value_serde))
}

/// The names of a source table's store, source and processor, in Kafka Streams' order (a global table's
/// too): the store's unless `materialized` names it, then the source and the processor; a `Consumed` name
/// names the processor, and the source after it with `-source` (Kafka Streams still uses up a generated
/// source name first).
pub(super) fn source_table_names<K, V>(
    b: &mut BuilderState,
    topic: &str,
    consumed: &Consumed<K, V>,
    materialized: &Materialized<K, V>,
) -> (String, String, String) {
    let store = match materialized.store_name.clone() {
        Some(name) => name,
        None => b.new_store_name(&format!("{topic}-")),
    };
    let (source, processor) = table_source_node_names(b, consumed.name.clone());
    (store, source, processor)
}

/// The names of a table source's (or a global store's) two nodes, source then processor: with a
/// `Consumed` name, `<name>-source` (an index burnt, as Kafka Streams' `suffixWithOrElseGet` does) and
/// `<name>`; without, `KSTREAM-SOURCE-<n>` and `KTABLE-SOURCE-<n+1>`.
pub(super) fn table_source_node_names(b: &mut BuilderState, consumed_name: Option<String>) -> (String, String) {
    let source = match &consumed_name {
        Some(given) => {
            b.burn();
            format!("{given}-source")
        }
        None => b.new_name("KSTREAM-SOURCE-"),
    };
    (source, b.name_or(consumed_name, "KTABLE-SOURCE-"))
}

/// The tail that a table source and `to_table` share: the processor `def`, its store, and the table they
/// make, which sends old values as Kafka Streams' source table would (with a store only when named).
fn add_source_table<K: Data, V: Data>(
    rc: &Rc<RefCell<BuilderState>>,
    b: &mut BuilderState,
    def: NodeDef,
    store: String,
    materialized: &Materialized<K, V>,
    (key_serde, value_serde): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>),
) -> KTable<K, V> {
    let name = def.name.clone();
    b.topology.add_node_deferred(def);
    b.topology.add_store_deferred(store_def(&store, materialized, key_serde.clone(), value_serde.clone()), &name);
    let mut table = KTable::new(rc.clone(), name, Some(key_serde), Some(value_serde), Some(store))
        .with_store_getter()
        .versioned(materialized.versioned_history_ms());
    if materialized.store_name.is_none() {
        table.old_values = Arc::new(SendOldValues::source());
    }
    table
}

/// `stream.to_table()`: a `KSTREAM-TOTABLE` processor that keeps the latest value per key, as a table
/// source does, after a repartition when the key changed upstream. Names in Kafka Streams' order:
/// processor, store, then the repartition's nodes. `materialized` carries both serdes.
pub(crate) fn stream_to_table<K: Data, V: Data>(
    stream: &KStream<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let rc = stream.builder.clone();
    let mut b = rc.borrow_mut();
    let name = b.name_or(stream.next_name.clone(), "KSTREAM-TOTABLE-");
    let store = match materialized.store_name.clone() {
        Some(name) => name,
        None => b.new_store_name("KSTREAM-TOTABLE-"),
    };
    let (Some(key_serde), Some(value_serde)) = (materialized.key_serde.clone(), materialized.value_serde.clone())
    else {
        let target = format!("the store {store}");
        b.topology.deferred.push(missing_serde::<K, V>(name.clone(), target, RecordPart::KeyOrValue));
        return KTable::new(rc.clone(), name, None, None, None);
    };
    let mut parent = stream.node.clone();
    if stream.repartition_required {
        let names = RepartitionNames::for_stream(&mut b, &name);
        parent = add_repartition(&mut b, &parent, names, key_serde.clone(), value_serde.clone(), None, None);
    }
    let (store_for_processor, key_for_processor) = (store.clone(), key_serde.clone());
    let (value_for_processor, caching) = (value_serde.clone(), materialized.caching_enabled);
    let def = processor_def(&name, vec![parent], move || StreamToTable::<K, V> {
        source: TableSource {
            output: AggregateOutput::new(store_for_processor.clone(), key_for_processor.clone(), caching),
        },
        value_serde: value_for_processor.clone(),
    });
    add_source_table(&rc, &mut b, def, store, &materialized, (key_serde, value_serde))
}

/// `KSTREAM-TOTABLE`: a table source fed by a stream; a value its serde writes as null is a delete.
struct StreamToTable<K, V> {
    source: TableSource<K, V>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K: Data, V: Data> Processor<K, V, K, Change<V>> for StreamToTable<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.source.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        let value = (!self.value_serde.is_null(&record.value)).then_some(record.value);
        let update = Record { key: record.key, value, timestamp: record.timestamp, headers: record.headers };
        self.source.process(ctx, update)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.source.flush(ctx)
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.source.close(ctx)
    }
}

/// `KTABLE-SOURCE`: upserts or deletes, and forwards the change. With the record cache on (Kafka
/// Streams' default for a source table's store), a key's updates within a commit reach the store and
/// downstream as one change, exactly as an aggregation's do: it shares their output path.
pub(super) struct TableSource<K, V> {
    output: AggregateOutput<K, V>,
}

impl<K: Data, V: Data> TableSource<K, V> {
    /// Keeps the store `store`, keyed with `key_serde`, behind the record cache when `caching`.
    pub(super) fn new(store: String, key_serde: Arc<dyn Serde<K>>, caching: bool) -> Self {
        TableSource { output: AggregateOutput::new(store, key_serde, caching) }
    }
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for TableSource<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), StreamsError> {
        if self.output.is_null_key(&record.key) {
            // A table has no row for a null key: Kafka Streams' KTableSource skips the record too.
            ctx.record_dropped("null key in a table's source topic");
            return Ok(());
        }
        write_materialized(&mut self.output, ctx, record, false)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

/// A table operator: its name prefix, whether it asks its parent for old values when it is added
/// (Kafka Streams' `KTableFilter` does, to spare deletes of rows that were never there), and what it
/// does to a value a join reads through it when it has no store of its own (`None`: such a join
/// cannot read through it).
struct TableOp<K, V, V2> {
    prefix: &'static str,
    asks_for_old_values: bool,
    getter_step: Option<GetterStep<K, V, V2>>,
}

/// Whether a table node forwards old values (Kafka Streams' `sendOldValues`), and whether it can.
/// Kafka Streams decides this while the topology is built: a filter asks its parent when it is added
/// (`enableSendingOldValues(false)`: yes if the parent has a store, or can ask one above it), and a
/// `group_by` asks with force (`enableSendingOldValues(true)`: a source table without a store gets one).
/// It decides one thing here: a filter that sends old values forwards nothing when neither side passes;
/// one that does not forwards the delete, since it cannot tell whether the row was there. This library
/// always keeps a source table's store; the model follows whether Kafka Streams would have one, so that
/// the same topology forwards the same records.
#[derive(Debug, Default)]
pub(crate) struct SendOldValues {
    enabled: AtomicBool,
    kind: OldValuesKind,
}

#[derive(Debug, Default)]
enum OldValuesKind {
    /// A node with a store of its own: an aggregation, a source table or operator with a store name.
    #[default]
    Stored,
    /// A source table that Kafka Streams materializes only when asked with force.
    Source { materialized: AtomicBool },
    /// An operator without a store: asks its parent.
    Derived(Arc<SendOldValues>),
}

impl SendOldValues {
    /// A node that has a store only if asked with force (Kafka Streams' source tables, and the result
    /// of a foreign-key join without a store name).
    pub(super) fn source() -> Self {
        SendOldValues {
            enabled: AtomicBool::new(false),
            kind: OldValuesKind::Source { materialized: AtomicBool::new(false) },
        }
    }

    pub(super) fn below(parent: &Arc<SendOldValues>) -> Self {
        SendOldValues { enabled: AtomicBool::new(false), kind: OldValuesKind::Derived(parent.clone()) }
    }

    /// Asks this node to send old values (`force`: a source table gets a store for it); whether it will.
    pub(super) fn enable(&self, force: bool) -> bool {
        if self.enabled() {
            return true;
        }
        let can = match &self.kind {
            OldValuesKind::Stored => true,
            OldValuesKind::Source { materialized } => {
                if force {
                    materialized.store(true, Ordering::Relaxed);
                }
                materialized.load(Ordering::Relaxed)
            }
            OldValuesKind::Derived(parent) => parent.enable(force),
        };
        if can {
            self.enabled.store(true, Ordering::Relaxed);
        }
        can
    }

    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether the node has a store of its own: a stored one always, one that has a store only when
    /// asked with force once it was.
    pub(super) fn is_materialized(&self) -> bool {
        match &self.kind {
            OldValuesKind::Stored => true,
            OldValuesKind::Source { materialized } => materialized.load(Ordering::Relaxed),
            OldValuesKind::Derived(_) => false,
        }
    }

    /// A join reads the table: a source table above without a store of its own in Kafka Streams' model
    /// gets one (Kafka Streams' `KTableSource.materialize`).
    pub(super) fn materialize(&self) {
        match &self.kind {
            OldValuesKind::Stored => {}
            OldValuesKind::Source { materialized } => materialized.store(true, Ordering::Relaxed),
            OldValuesKind::Derived(parent) => parent.materialize(),
        }
    }
}

/// `KTABLE-FILTER`: filters both sides of a change. With a store, the old value is the store's.
struct TableFilter<K, V, F> {
    predicate: Arc<F>,
    keep_if: bool,
    output: TableOutput<K, V>,
    send_old: bool,
    /// Whether the filtered table is versioned (Kafka Streams' versioned semantics).
    versioned_input: bool,
}

impl<K: Data, V: Data, F: Fn(&K, &V) -> bool + Send + Sync + 'static> Processor<K, Change<V>, K, Change<V>>
    for TableFilter<K, V, F>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let is_latest = record.value.is_latest;
        let (new, old) = {
            let key = &record.key;
            let keep = |v: &V| (self.predicate)(key, v) == self.keep_if;
            (record.value.new.filter(|v| keep(v)), record.value.old.filter(|v| keep(v)))
        };
        let update = Record { key: record.key, value: new, timestamp: record.timestamp, headers: record.headers };
        // Under versioned semantics a delete of a row that was not there still goes downstream.
        let skip_empty = self.send_old && !self.versioned_input;
        self.output.forward(ctx, update, |_| old, is_latest, skip_empty)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

/// `KTABLE-MAPVALUES`: maps both sides of a change. With a store, the old value is the store's.
struct TableMapValues<K, V2, F> {
    mapper: Arc<F>,
    output: TableOutput<K, V2>,
}

impl<K: Data, V: Data, V2: Data, F: Fn(&K, V) -> V2 + Send + Sync + 'static> Processor<K, Change<V>, K, Change<V2>>
    for TableMapValues<K, V2, F>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V2>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let is_latest = record.value.is_latest;
        let new = record.value.new.map(|v| (self.mapper)(&record.key, v));
        let update = Record { key: record.key, value: new, timestamp: record.timestamp, headers: record.headers };
        let mapper = &self.mapper;
        // The old value is mapped only when there is no store to read it from.
        self.output.forward(ctx, update, |key| record.value.old.map(|v| mapper(key, v)), is_latest, false)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V2>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<V2>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

/// Where a table operator's results go: into a store of its own and downstream as a change from the
/// store's value (Kafka Streams' operators with a queryable name), or straight downstream as a change
/// from the old value its parent sent.
pub(super) struct TableOutput<K, V>(Option<AggregateOutput<K, V>>);

impl<K: Data, V: Data> TableOutput<K, V> {
    /// Results into `output`'s store (and downstream from it), or, with none, straight downstream.
    pub(super) fn new(output: Option<AggregateOutput<K, V>>) -> Self {
        TableOutput(output)
    }

    /// Whether the results go into a store of their own.
    pub(super) fn is_stored(&self) -> bool {
        self.0.is_some()
    }

    pub(super) fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        match &mut self.0 {
            Some(output) => output.init(ctx),
            None => Ok(()),
        }
    }

    /// Records `update`. `old_from_parent` gives the old value when there is no store, and `is_latest`
    /// whether the parent's change was the key's newest (a store says it itself). `skip_empty`: forward
    /// nothing when the key had no value and still has none.
    pub(super) fn forward(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        update: Record<K, Option<V>>,
        old_from_parent: impl FnOnce(&K) -> Option<V>,
        is_latest: bool,
        skip_empty: bool,
    ) -> Result<(), StreamsError> {
        match &mut self.0 {
            Some(output) => write_materialized(output, ctx, update, skip_empty),
            None => {
                let old = old_from_parent(&update.key);
                if skip_empty && update.value.is_none() && old.is_none() {
                    return Ok(());
                }
                let Record { key, value, timestamp, headers } = update;
                ctx.forward(Record { key, value: Change::new(value, old).latest(is_latest), timestamp, headers })
            }
        }
    }

    pub(super) fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        match &mut self.0 {
            Some(output) => output.flush(ctx),
            None => Ok(()),
        }
    }

    pub(super) fn close(&mut self) {
        if let Some(output) = &mut self.0 {
            output.close();
        }
    }
}

/// An update into the store of `output`, and downstream as a change from the store's value.
/// `skip_empty`: forward nothing when the key had no value and still has none.
fn write_materialized<K: Data, V: Data>(
    output: &mut AggregateOutput<K, V>,
    ctx: &mut ProcessorContext<'_, K, Change<V>>,
    update: Record<K, Option<V>>,
    skip_empty: bool,
) -> Result<(), StreamsError> {
    let key_bytes = output.key_bytes(&update.key)?;
    let (old, _) = output.current(ctx, &update.key, key_bytes.as_deref())?;
    if skip_empty && old.is_none() && update.value.is_none() {
        return Ok(());
    }
    output.update(ctx, key_bytes, update, old)
}

/// `KTABLE-TOSTREAM`: the new side of each change.
struct TableToStream;

impl<K: Data, V: Data> Processor<K, Change<V>, K, Option<V>> for TableToStream {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        ctx.forward(Record {
            key: record.key,
            value: record.value.new,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// `KTABLE-SELECT`: maps each side of a change to its new key. When both sides land on the same key
/// they travel as one change; otherwise the old side goes first (to its key) as a removal, then the new
/// side as an addition, as Kafka Streams' `KTableRepartitionMap`. Out-of-order updates of a versioned
/// table are skipped, silently as in Kafka Streams: the groups hold each row's newest value.
struct TableRepartitionMap<F> {
    selector: Arc<F>,
    versioned: bool,
}

impl<K, V, K2, V2, F> Processor<K, Change<V>, K2, Change<V2>> for TableRepartitionMap<F>
where
    K: Data,
    V: Data,
    K2: Data + PartialEq,
    V2: Data,
    F: Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        if self.versioned && !record.value.is_latest {
            return Ok(());
        }
        let new = record.value.new.as_ref().map(|v| (self.selector)(&record.key, v));
        let old = record.value.old.as_ref().map(|v| (self.selector)(&record.key, v));
        let (ts, headers) = (record.timestamp, record.headers);
        match (new, old) {
            (Some((new_key, new_value)), Some((old_key, old_value))) if new_key == old_key => {
                let change = Change::new(Some(new_value), Some(old_value));
                ctx.forward(Record { key: new_key, value: change, timestamp: ts, headers })
            }
            (new, old) => {
                if let Some((old_key, old_value)) = old {
                    let change = Change::new(None, Some(old_value));
                    ctx.forward(Record { key: old_key, value: change, timestamp: ts, headers: headers.clone() })?;
                }
                if let Some((new_key, new_value)) = new {
                    let change = Change::new(Some(new_value), None);
                    ctx.forward(Record { key: new_key, value: change, timestamp: ts, headers })?;
                }
                Ok(())
            }
        }
    }
}
