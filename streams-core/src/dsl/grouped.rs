//! Grouped streams and tables: [`KGroupedStream`] and [`KGroupedTable`], and their aggregations into
//! a [`KTable`].

use std::sync::Arc;

use super::aggregate::{AggregateOutput, StreamAggregate, StreamStep, TableAggregate, TableStep};
use super::builder::{missing_serde, pick, pick_or_default};
use super::change::{Change, ChangeSerde};
use super::options::{Grouped, Materialized};
use super::repartition::{add_repartition, RepartitionNames};
use super::{Data, KStream, KTable};
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, Serde};
use crate::store::{
    DefaultKeyValueBytesStoreSupplier, KeyValueBytesStoreSupplier, Stores, ValueAndTimestamp, ValueAndTimestampSerde,
};
use crate::topology::processor_def;

/// A stream grouped by key, waiting for an aggregation (Kafka Streams' `KGroupedStream`).
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
    repartition_required: bool,
    next_name: Option<String>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>, repartition_required: bool) -> Self {
        let next_name = stream.next_name.clone();
        KGroupedStream { stream, grouped, repartition_required, next_name }
    }

    /// Names the aggregation processor (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.next_name = Some(name.into());
        self
    }

    /// Counts records per key.
    pub fn count(&self) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.count_with(Materialized::new())
    }

    /// Counts records per key into the store described by `materialized`.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step: StreamStep<K, V, i64> = Arc::new(|_, _, old| old.unwrap_or(0) + 1);
        let materialized =
            self.key_serde_into(materialized).with_value_serde_if_missing(Arc::new(crate::serde::I64Serde));
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, materialized, self.value_serde())
    }

    fn key_serde_into<VA>(&self, materialized: Materialized<K, VA>) -> Materialized<K, VA>
    where
        K: DefaultSerde,
    {
        fill_key_serde(materialized, &self.grouped, &self.stream.key_serde)
    }

    /// The serde of the values on the repartition topic: the grouping's, else upstream's, else the type's.
    fn value_serde(&self) -> Arc<dyn Serde<V>>
    where
        V: DefaultSerde,
    {
        pick_or_default(self.grouped.value_serde.clone(), &self.stream.value_serde)
    }

    /// Combines the values per key with `reducer` (the first value is the start).
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.reduce_with(reducer, Materialized::new())
    }

    /// [`reduce`](Self::reduce) into the store described by `materialized`.
    pub fn reduce_with(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step: StreamStep<K, V, V> = Arc::new(move |_, value, old| match old {
            Some(aggregate) => reducer(aggregate, value),
            None => value,
        });
        let value_serde = pick_or_default(self.grouped.value_serde.clone(), &self.stream.value_serde);
        let materialized = self.key_serde_into(materialized).with_value_serde_if_missing(value_serde);
        self.aggregate_internal("KSTREAM-REDUCE-", step, materialized, self.value_serde())
    }

    /// Folds the values per key into an aggregate that starts at `initializer()`.
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
        let step: StreamStep<K, V, VA> =
            Arc::new(move |key, value, old| aggregator(key, value, old.unwrap_or_else(&initializer)));
        let materialized = self.key_serde_into(materialized).with_value_serde_if_missing(VA::default_serde());
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, materialized, self.value_serde())
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
            return KTable::new(builder.clone(), name, None, None, Some(store));
        };
        let Some(agg_serde) = materialized.value_serde.clone() else {
            b.topology.deferred.push(missing_serde::<K, VA>(
                name.clone(),
                format!("the store {store}"),
                RecordPart::Value,
            ));
            return KTable::new(builder.clone(), name, None, None, Some(store));
        };
        let mut parent = self.stream.node.clone();
        if self.repartition_required {
            let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
            let names = RepartitionNames::for_stream(&mut b, &base);
            parent = add_repartition(&mut b, &parent, names, key_serde.clone(), value_serde.clone(), None, None);
        }
        let value_serde_for_nulls = Some(value_serde.clone());
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
    }
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
pub(crate) fn store_def<K: Data, V: Data>(
    store: &str,
    materialized: &Materialized<K, V>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> crate::store::StoreDef {
    let timestamped: Arc<dyn Serde<ValueAndTimestamp<V>>> = Arc::new(ValueAndTimestampSerde::new(value_serde));
    let supplier: Arc<dyn KeyValueBytesStoreSupplier> = match &materialized.supplier {
        Some(supplier) => supplier.clone(),
        None => Arc::new(DefaultKeyValueBytesStoreSupplier { name: store.to_string() }),
    };
    let mut builder = Stores::key_value_store_builder(SharedSupplier(supplier), key_serde, timestamped);
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
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.next_name = Some(name.into());
        self
    }

    /// Counts the table rows per new key.
    pub fn count(&self) -> KTable<K, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.count_with(Materialized::new())
    }

    /// [`count`](Self::count) into the store described by `materialized`.
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
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
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
        let materialized = self.key_serde_into(Materialized::new()).with_value_serde_if_missing(self.value_serde());
        self.aggregate_internal_named("KTABLE-AGGREGATE-", "KTABLE-REDUCE-", step, materialized, self.value_serde())
    }

    /// Folds values per new key: `adder` for rows that arrive, `subtractor` for rows that leave (the old
    /// value is subtracted before the new one is added).
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
    }
}
