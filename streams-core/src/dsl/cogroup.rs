//! `cogroup` (KIP-150): several grouped streams, of different value types, aggregated into one table
//! through one store, each with its own aggregator (Kafka Streams' `CogroupedKStream`).
//!
//! The topology is Kafka Streams' (`CogroupedStreamAggregateBuilder`): a repartition topic for each
//! grouped stream that needs one (named after its `Grouped`, else after the store), then one
//! `COGROUPKSTREAM-AGGREGATE-` node per stream, all on the one store, then a `COGROUPKSTREAM-MERGE-` node
//! that the table comes out of. Names are made in that order.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::aggregate::{AggregateOutput, StreamAggregate, StreamStep};
use super::builder::{pick_or_default, BuilderState};
use super::change::Change;
use super::grouped::store_def;
use super::options::Materialized;
use super::repartition::{add_repartition, RepartitionNames};
use super::{Data, KTable};
use crate::processor::{Processor, ProcessorContext};
use crate::serde::{DefaultSerde, Serde};
use crate::topology::{processor_def, NodeDef};
use crate::{Record, StreamsError};

/// Grouped streams waiting to be aggregated together (Kafka Streams' `CogroupedKStream`), made by
/// [`KGroupedStream::cogroup`](super::KGroupedStream::cogroup).
///
/// # Examples
///
/// A customer's balance, from payments (in cents) and refunds (as text) alike:
///
/// ```
/// use streams_core::dsl::StreamsBuilder;
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let payments = builder.stream::<String, i64>("payments").group_by_key();
/// let refunds = builder.stream::<String, String>("refunds").group_by_key();
/// payments
///     .cogroup(|_, cents, balance: i64| balance + cents)
///     .cogroup(&refunds, |_, cents, balance| balance - cents.parse::<i64>().unwrap_or(0))
///     .aggregate(|| 0)
///     .to_stream()
///     .to("balances");
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let (pay, refund) = (driver.input_topic::<String, i64>("payments"), driver.input_topic::<String, String>("refunds"));
/// let balances = driver.output_topic::<String, Option<i64>>("balances");
/// driver.pipe(&pay, "ada".into(), 500, 0)?;
/// driver.pipe(&refund, "ada".into(), "120".into(), 1)?;
/// assert_eq!(driver.read_key_values(&balances), vec![("ada".into(), Some(500)), ("ada".into(), Some(380))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CogroupedKStream<K, VA> {
    builder: Rc<RefCell<BuilderState>>,
    inputs: Vec<Box<dyn CogroupInput<K, VA>>>,
    next_name: Option<String>,
}

/// One grouped stream of a cogroup, its value type hidden.
pub(super) trait CogroupInput<K, VA> {
    /// The key serde of the grouping (`Grouped`, else upstream), if it has one.
    fn key_serde(&self) -> Option<Arc<dyn Serde<K>>>;

    /// Adds the stream's repartition topic when it needs one (named after its `Grouped`, else after
    /// `store`); returns the node its records come from.
    fn source(&self, b: &mut BuilderState, store: &str, key_serde: &Arc<dyn Serde<K>>) -> String;

    /// The node `name` that aggregates the stream's records from `parent` into `store`.
    fn aggregator(
        &self,
        name: &str,
        parent: String,
        store: &str,
        key_serde: &Arc<dyn Serde<K>>,
        init: &Init<VA>,
    ) -> NodeDef;
}

/// An aggregation's initializer, shared by the nodes of a cogroup.
pub(super) type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;

/// A grouped stream of values `V`, and its aggregator: what [`CogroupInput`] hides.
pub(super) struct GroupedInput<K, V, VA> {
    pub(super) node: String,
    pub(super) grouped_name: Option<String>,
    pub(super) repartition_required: bool,
    pub(super) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(super) value_serde: Arc<dyn Serde<V>>,
    pub(super) aggregator: Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>,
}

impl<K: Data, V: Data, VA: Data> CogroupInput<K, VA> for GroupedInput<K, V, VA> {
    fn key_serde(&self) -> Option<Arc<dyn Serde<K>>> {
        self.key_serde.clone()
    }

    fn source(&self, b: &mut BuilderState, store: &str, key_serde: &Arc<dyn Serde<K>>) -> String {
        if !self.repartition_required {
            return self.node.clone();
        }
        let base = self.grouped_name.as_deref().unwrap_or(store);
        let names = RepartitionNames::for_stream(b, base);
        let key_serde = self.key_serde.clone().unwrap_or_else(|| key_serde.clone());
        add_repartition(b, &self.node, names, key_serde, self.value_serde.clone(), None, None)
    }

    fn aggregator(
        &self,
        name: &str,
        parent: String,
        store: &str,
        key_serde: &Arc<dyn Serde<K>>,
        init: &Init<VA>,
    ) -> NodeDef {
        let (aggregator, init) = (self.aggregator.clone(), init.clone());
        let step: StreamStep<K, V, VA> =
            Arc::new(move |key, value, old| aggregator(key, value, old.unwrap_or_else(|| init())));
        let (store, key_serde, value_serde) = (store.to_string(), key_serde.clone(), self.value_serde.clone());
        // No record cache: the nodes share the store, and each would keep its own cache of it.
        processor_def(name, vec![parent], move || StreamAggregate {
            output: AggregateOutput::new(store.clone(), key_serde.clone(), false),
            step: step.clone(),
            key_serde: key_serde.clone(),
            value_serde: Some(value_serde.clone()),
        })
    }
}

impl<K: Data, VA: Data> CogroupedKStream<K, VA> {
    pub(super) fn new(builder: Rc<RefCell<BuilderState>>, first: Box<dyn CogroupInput<K, VA>>) -> Self {
        CogroupedKStream { builder, inputs: vec![first], next_name: None }
    }

    /// Adds `grouped`, whose values `aggregator` folds into the same aggregate (Kafka Streams'
    /// `cogroup(KGroupedStream, Aggregator)`). The streams must be co-partitioned (or repartitioned),
    /// as for a join.
    pub fn cogroup<V: Data + DefaultSerde>(
        mut self,
        grouped: &super::KGroupedStream<K, V>,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> Self {
        self.inputs.push(Box::new(grouped.cogroup_input(Arc::new(aggregator))));
        self
    }

    /// Names the aggregation: its nodes become `<name>-cogroup-agg-<i>` and `<name>-cogroup-merge`
    /// (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.next_name = Some(name.into());
        self
    }

    /// Aggregates every stream's records per key into one table, starting each key at `initializer`.
    /// The store's name is generated (`COGROUPKSTREAM-AGGREGATE-STATE-STORE-…`).
    pub fn aggregate(self, initializer: impl Fn() -> VA + Send + Sync + 'static) -> KTable<K, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        self.aggregate_with(initializer, Materialized::new())
    }

    /// [`aggregate`](Self::aggregate) into the store described by `materialized`. The store is not
    /// cached: every update goes downstream (a difference from Kafka Streams, whose caching store is
    /// shared by the cogroup's nodes).
    pub fn aggregate_with(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        let builder = self.builder.clone();
        let mut b = builder.borrow_mut();
        let store = match materialized.store_name.clone() {
            Some(name) => name,
            None => b.new_store_name("COGROUPKSTREAM-AGGREGATE-"),
        };
        let first_key_serde = self.inputs[0].key_serde();
        let key_serde = pick_or_default(materialized.key_serde.clone(), &first_key_serde);
        let agg_serde = pick_or_default(materialized.value_serde.clone(), &None);
        let parents: Vec<String> = self.inputs.iter().map(|input| input.source(&mut b, &store, &key_serde)).collect();
        let init: Init<VA> = Arc::new(initializer);
        let mut aggregators = Vec::new();
        for (i, (input, parent)) in self.inputs.iter().zip(parents).enumerate() {
            let given = self.next_name.as_ref().map(|n| format!("{n}-cogroup-agg-{i}"));
            let name = b.name_or(given, "COGROUPKSTREAM-AGGREGATE-");
            b.topology.add_node_deferred(input.aggregator(&name, parent, &store, &key_serde, &init));
            if i == 0 {
                b.topology
                    .add_store_deferred(store_def(&store, &materialized, key_serde.clone(), agg_serde.clone()), &name);
            } else {
                b.connect_stores(&name, &[&store]);
            }
            aggregators.push(name);
        }
        let given = self.next_name.as_ref().map(|n| format!("{n}-cogroup-merge"));
        let merge = b.name_or(given, "COGROUPKSTREAM-MERGE-");
        let pass_through = processor_def::<K, Change<VA>, K, Change<VA>, _>(&merge, aggregators, || PassThrough);
        b.topology.add_node_deferred(pass_through);
        KTable::new(builder.clone(), merge, Some(key_serde), Some(agg_serde), Some(store))
    }
}

/// `COGROUPKSTREAM-MERGE`: where the cogroup's aggregation nodes meet; forwards their changes as they
/// are (Kafka Streams' `KTablePassThrough`).
struct PassThrough;

impl<K: Data, VA: Data> Processor<K, Change<VA>, K, Change<VA>> for PassThrough {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, Change<VA>>,
    ) -> Result<(), StreamsError> {
        ctx.forward(record)
    }
}
