//! Grouped streams and tables: [`KGroupedStream`] and [`KGroupedTable`], and their aggregations into
//! a [`KTable`].

use std::sync::Arc;

use super::aggregate::{
    aggregate_step, count_step, reduce_step, AggregateOutput, StreamAggregate, StreamStep, TableAggregate, TableStep,
};
use super::builder::{missing_serde, pick, pick_or_default, BuilderState};
use super::change::{Change, ChangeSerde};
use super::cogroup::{CogroupedKStream, GroupedInput};
use super::options::{Grouped, Materialized};
use super::repartition::{add_repartition, RepartitionNames};
use super::windowed::WindowedBy;
use super::{Data, KStream, KTable};
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, Serde};
use crate::store::{
    DefaultKeyValueBytesStoreSupplier, KeyValueBytesStoreSupplier, Stores, ValueAndTimestamp, ValueAndTimestampSerde,
};
use crate::topology::processor_def;

/// A stream grouped by key, waiting for an aggregation (Kafka Streams' `KGroupedStream`).
pub struct KGroupedStream<K, V> {
    pub(super) stream: KStream<K, V>,
    pub(super) grouped: Grouped<K, V>,
    repartition_required: bool,
    pub(super) next_name: Option<String>,
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            grouped: Grouped {
                name: self.grouped.name.clone(),
                key_serde: self.grouped.key_serde.clone(),
                value_serde: self.grouped.value_serde.clone(),
            },
            repartition_required: self.repartition_required,
            next_name: self.next_name.clone(),
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>, repartition_required: bool) -> Self {
        let next_name = stream.next_name.clone();
        KGroupedStream { stream, grouped, repartition_required, next_name }
    }

    /// Names the aggregation processor (Kafka Streams' `Named`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let clicks = builder.stream::<String, String>("clicks");
    /// clicks.group_by_key().named("count-clicks").count().to_stream().to("clicks-per-user");
    /// let description = builder.build()?.describe().to_string();
    /// assert!(description.contains("Processor: count-clicks (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.next_name = Some(name.into());
        self
    }

    /// Counts records per key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key().count().to_stream().to("clicks-per-user");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// let per_user = driver.output_topic::<String, Option<i64>>("clicks-per-user");
    /// driver.pipe(&clicks, "ada".into(), "/home".into(), 0)?;
    /// driver.pipe(&clicks, "bob".into(), "/home".into(), 1)?;
    /// driver.pipe(&clicks, "ada".into(), "/cart".into(), 2)?;
    /// assert_eq!(driver.read_key_values(&per_user), vec![
    ///     ("ada".to_string(), Some(1)),
    ///     ("bob".to_string(), Some(1)),
    ///     ("ada".to_string(), Some(2)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count(&self) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.count_into(Materialized::new())
    }

    /// Counts records per key into the store described by `materialized`. As in Kafka Streams, a
    /// `Materialized` without a store name uses up one generated name first (`KGroupedStreamImpl.count`
    /// keeps doing so for compatibility), so the store, and the topics named after it, are numbered as
    /// a Java application of the same topology numbers them.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let clicks = builder.stream::<String, String>("clicks");
    /// let counts = clicks.group_by_key().count_with(Materialized::as_store("click-counts"));
    /// assert_eq!(counts.store_name(), Some("click-counts"));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// driver.pipe(&clicks, "ada".into(), "/home".into(), 0)?;
    /// driver.pipe(&clicks, "ada".into(), "/cart".into(), 1)?;
    /// assert_eq!(driver.store_entries::<String, i64>("click-counts")?, vec![("ada".to_string(), 2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        if materialized.store_name.is_none() {
            self.stream.builder.borrow_mut().burn();
        }
        self.count_into(materialized)
    }

    fn count_into(&self, materialized: Materialized<K, i64>) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step = count_step();
        let materialized =
            self.key_serde_into(materialized).with_value_serde_if_missing(Arc::new(crate::serde::I64Serde));
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, materialized, self.value_serde())
    }

    pub(super) fn key_serde_into<VA>(&self, materialized: Materialized<K, VA>) -> Materialized<K, VA>
    where
        K: DefaultSerde,
    {
        fill_key_serde(materialized, &self.grouped, &self.stream.key_serde)
    }

    /// The serde of the values on the repartition topic: the grouping's, else upstream's, else the type's.
    pub(super) fn value_serde(&self) -> Arc<dyn Serde<V>>
    where
        V: DefaultSerde,
    {
        pick_or_default(self.grouped.value_serde.clone(), &self.stream.value_serde)
    }

    /// Combines the values per key with `reducer` (the first value is the start).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let sales = builder.stream::<String, i64>("sales");
    /// sales.group_by_key().reduce(|total, amount| total + amount).to_stream().to("totals");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let sales = driver.input_topic::<String, i64>("sales");
    /// let totals = driver.output_topic::<String, Option<i64>>("totals");
    /// driver.pipe(&sales, "shop-1".into(), 120, 0)?; // the first value is the start
    /// driver.pipe(&sales, "shop-1".into(), 30, 1)?;
    /// assert_eq!(driver.read_key_values(&totals), vec![
    ///     ("shop-1".to_string(), Some(120)),
    ///     ("shop-1".to_string(), Some(150)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.reduce_with(reducer, Materialized::new())
    }

    /// [`reduce`](Self::reduce) into the store described by `materialized`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let sales = builder.stream::<String, i64>("sales");
    /// sales.group_by_key().reduce_with(|a, b| a.max(b), Materialized::as_store("largest-sale"));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let sales = driver.input_topic::<String, i64>("sales");
    /// driver.pipe(&sales, "shop-1".into(), 120, 0)?;
    /// driver.pipe(&sales, "shop-1".into(), 30, 1)?;
    /// assert_eq!(driver.store_entries::<String, i64>("largest-sale")?, vec![("shop-1".to_string(), 120)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reduce_with(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step = reduce_step(reducer);
        let value_serde = pick_or_default(self.grouped.value_serde.clone(), &self.stream.value_serde);
        let materialized = self.key_serde_into(materialized).with_value_serde_if_missing(value_serde);
        self.aggregate_internal("KSTREAM-REDUCE-", step, materialized, self.value_serde())
    }

    /// Folds the values per key into an aggregate that starts at `initializer()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // The aggregate's type differs from the values': the total length of each user's messages.
    /// builder
    ///     .stream::<String, String>("messages")
    ///     .group_by_key()
    ///     .aggregate(|| 0_i64, |_, text, total| total + text.len() as i64)
    ///     .to_stream()
    ///     .to("characters-per-user");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let messages = driver.input_topic::<String, String>("messages");
    /// let per_user = driver.output_topic::<String, Option<i64>>("characters-per-user");
    /// driver.pipe(&messages, "ada".into(), "hello".into(), 0)?;
    /// driver.pipe(&messages, "ada".into(), "bye".into(), 1)?;
    /// assert_eq!(driver.read_key_values(&per_user), vec![("ada".to_string(), Some(5)), ("ada".to_string(), Some(8))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.aggregate_with(initializer, aggregator, Materialized::new())
    }

    /// [`aggregate`](Self::aggregate) into the store described by `materialized`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("messages").group_by_key().aggregate_with(
    ///     || 0_i64,
    ///     |_, text, total| total + text.len() as i64,
    ///     Materialized::as_store("characters"),
    /// );
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let messages = driver.input_topic::<String, String>("messages");
    /// driver.pipe(&messages, "ada".into(), "hello".into(), 0)?;
    /// assert_eq!(driver.store_entries::<String, i64>("characters")?, vec![("ada".to_string(), 5)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate_with<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step = aggregate_step(initializer, aggregator);
        let materialized = self.key_serde_into(materialized).with_value_serde_if_missing(VA::default_serde());
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, materialized, self.value_serde())
    }

    /// Starts a cogroup (KIP-150): this stream's values, folded by `aggregator` into an aggregate that
    /// other grouped streams, of other value types, can fold theirs into too
    /// ([`CogroupedKStream::cogroup`]), before one [`aggregate`](CogroupedKStream::aggregate) makes the
    /// table. [`CogroupedKStream`] has an example.
    pub fn cogroup<VA: Data>(
        &self,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VA>
    where
        V: DefaultSerde,
    {
        CogroupedKStream::new(self.stream.builder.clone(), Box::new(self.cogroup_input(Arc::new(aggregator))))
    }

    /// This grouped stream as one input of a cogroup.
    pub(super) fn cogroup_input<VA>(
        &self,
        aggregator: Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>,
    ) -> GroupedInput<K, V, VA>
    where
        V: DefaultSerde,
    {
        GroupedInput {
            node: self.stream.node.clone(),
            grouped_name: self.grouped.name.clone(),
            repartition_required: self.repartition_required,
            key_serde: pick(self.grouped.key_serde.clone(), &self.stream.key_serde),
            value_serde: self.value_serde(),
            aggregator,
        }
    }

    /// Names in Kafka Streams' order: the store, then the processor, then the repartition nodes.
    fn aggregate_internal<VA: Data>(
        &self,
        prefix: &str,
        step: StreamStep<K, V, VA>,
        materialized: Materialized<K, VA>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> KTable<K, VA> {
        let builder = self.stream.builder.clone();
        let mut b = builder.borrow_mut();
        let setup = match self.setup_aggregation(&mut b, prefix, &materialized, value_serde.clone()) {
            Ok(setup) => setup,
            Err((name, store)) => return KTable::new(builder.clone(), name, None, None, Some(store)),
        };
        let AggregationSetup { store, name, key_serde, agg_serde, parent } = setup;
        let value_serde_for_nulls = Some(value_serde);
        let (store_for_processor, key_for_processor) = (store.clone(), key_serde.clone());
        let caching = materialized.caching_enabled;
        let def = processor_def(&name, vec![parent], move || StreamAggregate {
            output: AggregateOutput::new(store_for_processor.clone(), key_for_processor.clone(), caching),
            step: step.clone(),
            key_serde: key_for_processor.clone(),
            value_serde: value_serde_for_nulls.clone(),
        });
        b.topology.add_node_deferred(def);
        b.topology.add_store_deferred(store_def(&store, &materialized, key_serde.clone(), agg_serde.clone()), &name);
        KTable::new(builder.clone(), name, Some(key_serde), Some(agg_serde), Some(store))
            .with_store_getter()
            .versioned(materialized.versioned_history_ms())
    }

    /// What every aggregation of this stream, windowed or not, does before its processor, in Kafka
    /// Streams' order: names the store (unless given) and the processor, picks the serdes, and adds the
    /// repartition topic when the key changed upstream. A missing serde is recorded for `build()`, and
    /// the processor's and store's names come back as the error.
    pub(super) fn setup_aggregation<VA>(
        &self,
        b: &mut BuilderState,
        prefix: &str,
        materialized: &Materialized<K, VA>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Result<AggregationSetup<K, VA>, (String, String)> {
        let store = match materialized.store_name.clone() {
            Some(name) => name,
            None => b.new_store_name(prefix),
        };
        let name = b.name_or(self.next_name.clone(), prefix);
        let key_serde =
            pick(materialized.key_serde.clone(), &pick(self.grouped.key_serde.clone(), &self.stream.key_serde));
        let Some(key_serde) = key_serde else {
            b.topology.deferred.push(missing_serde::<K, VA>(
                name.clone(),
                format!("the store {store}"),
                RecordPart::Key,
            ));
            return Err((name, store));
        };
        let Some(agg_serde) = materialized.value_serde.clone() else {
            b.topology.deferred.push(missing_serde::<K, VA>(
                name.clone(),
                format!("the store {store}"),
                RecordPart::Value,
            ));
            return Err((name, store));
        };
        let mut parent = self.stream.node.clone();
        if self.repartition_required {
            let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
            let names = RepartitionNames::for_stream(b, &base);
            parent = add_repartition(b, &parent, names, key_serde.clone(), value_serde, None, None);
        }
        Ok(AggregationSetup { store, name, key_serde, agg_serde, parent })
    }

    /// Counts, reduces or aggregates per key and time window (given [`TimeWindows`](crate::dsl::TimeWindows)) or per key and
    /// session of activity (given [`SessionWindows`](crate::dsl::SessionWindows)) from here on (Kafka
    /// Streams' `windowedBy`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::dsl::{StreamsBuilder, TimeWindows, Window, Windowed};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count()
    ///     .to_stream()
    ///     .to("clicks-per-window");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// let counts = driver.output_topic::<Windowed<String>, Option<i64>>("clicks-per-window");
    /// driver.pipe(&clicks, "ada".into(), "/home".into(), 3)?;
    /// driver.pipe(&clicks, "ada".into(), "/cart".into(), 12)?;
    /// driver.pipe(&clicks, "ada".into(), "/late".into(), 8)?; // window [0, 10) closed at 12
    /// let read = driver.read_key_values(&counts);
    /// let window = |start| Windowed::new("ada".to_string(), Window { start, end: i64::MAX });
    /// assert_eq!(read, vec![(window(0), Some(1)), (window(10), Some(1))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn windowed_by<W: WindowedBy<K, V>>(&self, windows: W) -> W::Stream {
        windows.windowed(self.clone())
    }
}

/// The names, serdes and parent node of an aggregation (see [`KGroupedStream::setup_aggregation`]).
pub(super) struct AggregationSetup<K, VA> {
    pub(super) store: String,
    pub(super) name: String,
    pub(super) key_serde: Arc<dyn Serde<K>>,
    pub(super) agg_serde: Arc<dyn Serde<VA>>,
    pub(super) parent: String,
}

/// Fills in a store's key serde: given, else the grouping's, else upstream's, else the type's.
fn fill_key_serde<K: DefaultSerde, V, VA>(
    mut materialized: Materialized<K, VA>,
    grouped: &Grouped<K, V>,
    upstream: &Option<Arc<dyn Serde<K>>>,
) -> Materialized<K, VA> {
    let given = materialized.key_serde.take().or_else(|| grouped.key_serde.clone());
    materialized.key_serde = Some(pick_or_default(given, upstream));
    materialized
}

/// The store behind a DSL aggregation or table: timestamped values, in the `default.dsl.store` (RocksDB
/// unless configured otherwise) unless a supplier is given.
pub(crate) fn store_def<K: Data, MK, V: Data>(
    store: &str,
    materialized: &Materialized<MK, V>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> crate::store::StoreDef {
    if let Some(versioned) = &materialized.versioned {
        let mut builder = Stores::versioned_key_value_store_builder(versioned.clone(), key_serde, value_serde);
        if !materialized.logging_enabled {
            builder = builder.with_logging_disabled();
        }
        return builder.into_def();
    }
    let supplier: Arc<dyn KeyValueBytesStoreSupplier> = match &materialized.supplier {
        Some(supplier) => supplier.clone(),
        None => Arc::new(DefaultKeyValueBytesStoreSupplier { name: store.to_string() }),
    };
    store_def_over(supplier, materialized, key_serde, value_serde)
}

/// [`store_def`] over the given byte stores.
pub(crate) fn store_def_over<K: Data, MK, V: Data>(
    supplier: Arc<dyn KeyValueBytesStoreSupplier>,
    materialized: &Materialized<MK, V>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> crate::store::StoreDef {
    let timestamped: Arc<dyn Serde<ValueAndTimestamp<V>>> = Arc::new(ValueAndTimestampSerde::new(value_serde));
    untimed_store_def(supplier, materialized, key_serde, timestamped)
}

/// [`store_def_over`] with the values as they are, without a timestamp (session stores).
pub(crate) fn untimed_store_def<K: Send + 'static, MK, MV, V: Send + 'static>(
    supplier: Arc<dyn KeyValueBytesStoreSupplier>,
    materialized: &Materialized<MK, MV>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> crate::store::StoreDef {
    let mut builder = Stores::key_value_store_builder(SharedSupplier(supplier), key_serde, value_serde);
    if !materialized.logging_enabled {
        builder = builder.with_logging_disabled();
    }
    // The aggregation caches in its processor (which forwards what leaves the cache), never in the store.
    builder.into_def()
}

/// Lets an `Arc`'d supplier be handed to `Stores::key_value_store_builder`.
struct SharedSupplier(Arc<dyn KeyValueBytesStoreSupplier>);

impl KeyValueBytesStoreSupplier for SharedSupplier {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn get(
        &self,
        ctx: &crate::store::StoreContext<'_>,
    ) -> Result<Box<dyn state_store::KeyValueStore>, crate::StreamsError> {
        self.0.get(ctx)
    }
}

impl<K, V> Materialized<K, V> {
    pub(crate) fn with_value_serde_if_missing(mut self, serde: Arc<dyn Serde<V>>) -> Self {
        if self.value_serde.is_none() {
            self.value_serde = Some(serde);
        }
        self
    }
}

/// A table grouped by a new key, waiting for an aggregation (Kafka Streams' `KGroupedTable`). Its
/// records are `Change`s, so aggregations can subtract what a key no longer contributes.
pub struct KGroupedTable<K, V> {
    pub(crate) builder: std::rc::Rc<std::cell::RefCell<super::builder::BuilderState>>,
    /// The `KTABLE-SELECT` node, which forwards `Change<V>` under the new key.
    pub(crate) node: String,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) grouped: Grouped<K, V>,
    pub(crate) next_name: Option<String>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Names the aggregation processor.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by(|_, region| (region.clone(), 1_i64))
    ///     .named("count-users")
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-region");
    /// assert!(builder.build()?.describe().to_string().contains("Processor: count-users"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.next_name = Some(name.into());
        self
    }

    /// Counts the table rows per new key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // user -> region; users per region
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
    /// driver.pipe(&regions, "ada".into(), Some("eu".into()), 1)?; // same row again: counted once
    /// driver.pipe(&regions, "ada".into(), None, 2)?; // deleted: eu loses it
    /// assert_eq!(driver.read_key_values(&per_region), vec![
    ///     ("eu".to_string(), Some(1)),
    ///     ("eu".to_string(), Some(1)),
    ///     ("eu".to_string(), Some(0)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count(&self) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.count_with(Materialized::new())
    }

    /// [`count`](Self::count) into the store described by `materialized`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by(|_, region| (region.clone(), 1_i64))
    ///     .count_with(Materialized::as_store("users-per-region"));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let regions = driver.input_topic::<String, Option<String>>("user-regions");
    /// driver.pipe(&regions, "ada".into(), Some("eu".into()), 0)?;
    /// driver.pipe(&regions, "ada".into(), Some("us".into()), 1)?;
    /// assert_eq!(driver.store_entries::<String, i64>("users-per-region")?, vec![
    ///     ("eu".to_string(), 0),
    ///     ("us".to_string(), 1),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step: TableStep<K, V, i64> = Arc::new(|_, change, old| {
            let mut count = old.unwrap_or(0);
            if change.old.is_some() {
                count -= 1;
            }
            if change.new.is_some() {
                count += 1;
            }
            Some(count)
        });
        let materialized = materialized.with_value_serde_if_missing(Arc::new(crate::serde::I64Serde));
        self.aggregate_internal("KTABLE-AGGREGATE-", step, self.key_serde_into(materialized), self.value_serde())
    }

    fn key_serde_into<VA>(&self, materialized: Materialized<K, VA>) -> Materialized<K, VA>
    where
        K: DefaultSerde,
    {
        fill_key_serde(materialized, &self.grouped, &self.key_serde)
    }

    /// The serde of the re-grouped values on the repartition topic.
    fn value_serde(&self) -> Arc<dyn Serde<V>>
    where
        V: DefaultSerde,
    {
        pick_or_default(self.grouped.value_serde.clone(), &None)
    }

    /// Combines values per new key: `adder` for rows that arrive, `subtractor` for rows that leave.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // account -> balance; the sum of all balances
    /// builder
    ///     .table::<String, i64>("balances")
    ///     .group_by(|_, balance| ("all".to_string(), *balance))
    ///     .reduce(|sum, arriving| sum + arriving, |sum, leaving| sum - leaving)
    ///     .to_stream()
    ///     .to("total-balance");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let balances = driver.input_topic::<String, Option<i64>>("balances");
    /// let total = driver.output_topic::<String, Option<i64>>("total-balance");
    /// driver.pipe(&balances, "acc-1".into(), Some(100), 0)?;
    /// driver.pipe(&balances, "acc-2".into(), Some(50), 1)?;
    /// driver.pipe(&balances, "acc-1".into(), Some(70), 2)?; // 100 subtracted, 70 added
    /// driver.pipe(&balances, "acc-2".into(), None, 3)?; // closed: 50 subtracted
    /// assert_eq!(driver.read_key_values(&total), vec![
    ///     ("all".to_string(), Some(100)),
    ///     ("all".to_string(), Some(150)),
    ///     ("all".to_string(), Some(120)),
    ///     ("all".to_string(), Some(70)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.reduce_with(adder, subtractor, Materialized::new())
    }

    /// [`reduce`](Self::reduce) into the store described by `materialized` (Kafka Streams'
    /// `reduce(adder, subtractor, Materialized)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let balances = builder.table::<String, i64>("balances"); // account -> balance
    /// balances
    ///     .group_by(|account, balance| (account[..2].to_string(), *balance)) // by country prefix
    ///     .reduce_with(|total, b| total + b, |total, b| total - b, Materialized::as_store("per-country"));
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let input = driver.input_topic::<String, i64>("balances");
    /// driver.pipe(&input, "de-1".into(), 100, 0)?;
    /// driver.pipe(&input, "de-2".into(), 50, 1)?;
    /// driver.pipe(&input, "de-1".into(), 70, 2)?; // 100 subtracted, 70 added
    /// assert_eq!(driver.store_entries::<String, i64>("per-country")?, vec![("de".to_string(), 120)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reduce_with(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step: TableStep<K, V, V> = Arc::new(move |_, change, old| {
            let intermediate = match (change.old, old) {
                (Some(leaving), Some(aggregate)) => Some(subtractor(aggregate, leaving)),
                (_, old) => old,
            };
            match change.new {
                Some(arriving) => Some(match intermediate {
                    Some(aggregate) => adder(aggregate, arriving),
                    None => arriving,
                }),
                None => intermediate,
            }
        });
        let materialized = self.key_serde_into(materialized).with_value_serde_if_missing(self.value_serde());
        self.aggregate_internal_named("KTABLE-AGGREGATE-", "KTABLE-REDUCE-", step, materialized, self.value_serde())
    }

    /// Folds values per new key: `adder` for rows that arrive, `subtractor` for rows that leave (the old
    /// value is subtracted before the new one is added).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // user -> region; the members of each region, following moves
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by(|user, region| (region.clone(), user.clone()))
    ///     .aggregate(
    ///         String::new,
    ///         |_, user, members| if members.is_empty() { user } else { format!("{members},{user}") },
    ///         |_, user, members| members.split(',').filter(|m| *m != user).collect::<Vec<_>>().join(","),
    ///     )
    ///     .to_stream()
    ///     .to("region-members");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let regions = driver.input_topic::<String, Option<String>>("user-regions");
    /// let members = driver.output_topic::<String, Option<String>>("region-members");
    /// driver.pipe(&regions, "ada".into(), Some("eu".into()), 0)?;
    /// driver.pipe(&regions, "bob".into(), Some("eu".into()), 1)?;
    /// driver.pipe(&regions, "ada".into(), Some("us".into()), 2)?; // subtracted from eu, then added to us
    /// assert_eq!(driver.read_key_values(&members), vec![
    ///     ("eu".to_string(), Some("ada".to_string())),
    ///     ("eu".to_string(), Some("ada,bob".to_string())),
    ///     ("eu".to_string(), Some("bob".to_string())),
    ///     ("us".to_string(), Some("ada".to_string())),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.aggregate_with(initializer, adder, subtractor, Materialized::new())
    }

    /// [`aggregate`](Self::aggregate) into the store described by `materialized`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Materialized, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // account -> balance; the sum of all balances, in a store called "total-balance"
    /// builder.table::<String, i64>("balances").group_by(|_, balance| ("all".to_string(), *balance)).aggregate_with(
    ///     || 0_i64,
    ///     |_, arriving, sum| sum + arriving,
    ///     |_, leaving, sum| sum - leaving,
    ///     Materialized::as_store("total-balance"),
    /// );
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let balances = driver.input_topic::<String, Option<i64>>("balances");
    /// driver.pipe(&balances, "acc-1".into(), Some(100), 0)?;
    /// driver.pipe(&balances, "acc-1".into(), Some(70), 1)?;
    /// assert_eq!(driver.store_entries::<String, i64>("total-balance")?, vec![("all".to_string(), 70)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate_with<VA>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
        VA: Data + DefaultSerde,
    {
        let step: TableStep<K, V, VA> = Arc::new(move |key, change, old| {
            let intermediate = match (change.old, old) {
                (Some(leaving), Some(aggregate)) => Some(subtractor(key, leaving, aggregate)),
                (_, old) => old,
            };
            match change.new {
                Some(arriving) => Some(adder(key, arriving, intermediate.unwrap_or_else(&initializer))),
                None => intermediate,
            }
        });
        let materialized = self.key_serde_into(materialized).with_value_serde_if_missing(VA::default_serde());
        self.aggregate_internal("KTABLE-AGGREGATE-", step, materialized, self.value_serde())
    }

    /// `materialized` has both serdes filled in by the caller.
    fn aggregate_internal<VA: Data>(
        &self,
        prefix: &str,
        step: TableStep<K, V, VA>,
        materialized: Materialized<K, VA>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> KTable<K, VA> {
        self.aggregate_internal_named(prefix, prefix, step, materialized, value_serde)
    }

    /// Kafka Streams names every table aggregation's store `KTABLE-AGGREGATE-STATE-STORE-…`, reduce too.
    fn aggregate_internal_named<VA: Data>(
        &self,
        store_prefix: &str,
        prefix: &str,
        step: TableStep<K, V, VA>,
        materialized: Materialized<K, VA>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> KTable<K, VA> {
        let builder = self.builder.clone();
        let mut b = builder.borrow_mut();
        let store = match materialized.store_name.clone() {
            Some(name) => name,
            None => b.new_store_name(store_prefix),
        };
        // Kafka Streams' order here: store, repartition sink and source, then the processor.
        let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
        let names = RepartitionNames::for_table(&mut b, &base, self.next_name.as_deref());
        let name = b.name_or(self.next_name.clone(), prefix);
        let (Some(key_serde), Some(agg_serde)) = (materialized.key_serde.clone(), materialized.value_serde.clone())
        else {
            let target = format!("the store {store}");
            b.topology.deferred.push(missing_serde::<K, VA>(name.clone(), target, RecordPart::KeyOrValue));
            return KTable::new(builder.clone(), name, None, None, Some(store));
        };
        let change_serde: Arc<dyn Serde<Change<V>>> = Arc::new(ChangeSerde(value_serde));
        let parent = add_repartition(&mut b, &self.node, names, key_serde.clone(), change_serde, None, None);
        let (store_for_processor, key_for_processor) = (store.clone(), key_serde.clone());
        let caching = materialized.caching_enabled;
        let def = processor_def(&name, vec![parent], move || TableAggregate {
            output: AggregateOutput::new(store_for_processor.clone(), key_for_processor.clone(), caching),
            step: step.clone(),
            key_serde: key_for_processor.clone(),
        });
        b.topology.add_node_deferred(def);
        b.topology.add_store_deferred(store_def(&store, &materialized, key_serde.clone(), agg_serde.clone()), &name);
        KTable::new(builder.clone(), name, Some(key_serde), Some(agg_serde), Some(store))
            .with_store_getter()
            .versioned(materialized.versioned_history_ms())
    }
}
