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

use super::aggregate::{StreamAggregate, StreamStep};
use super::builder::{pick_or_default, BuilderState};
use super::change::Change;
use super::grouped::store_def;
use super::options::Materialized;
use super::repartition::{add_repartition, RepartitionNames};
use super::session::{invalid_session_windows, session_close_after, session_window_node, session_window_store, Merge};
use super::sliding::{invalid_sliding_windows, sliding_window_node, sliding_window_store};
use super::windowed::sealed::Sealed;
use super::windowed::{invalid_time_windows, time_window_node, time_window_store, AggregationStore};
use super::{Data, KTable};
use crate::processor::{Processor, ProcessorContext};
use crate::serde::{DefaultSerde, Serde, SessionWindowedSerde, TimeWindowedSerde};
use crate::store::StoreDef;
use crate::topology::{processor_def, NodeDef};
use crate::window::{millis, SessionWindows, SlidingWindows, TimeWindows, Windowed};
use crate::{Record, StreamsError, TopologyError};

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

    /// The node `name` that aggregates the stream's records from `parent` into `store`, per key or per
    /// key and window.
    fn aggregator(
        &self,
        name: &str,
        parent: String,
        store: &AggregationStore<K, VA>,
        init: &Init<VA>,
        windows: &CogroupWindows<K, VA>,
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
        store: &AggregationStore<K, VA>,
        init: &Init<VA>,
        windows: &CogroupWindows<K, VA>,
    ) -> NodeDef {
        let (aggregator, init) = (self.aggregator.clone(), init.clone());
        let step: StreamStep<K, V, VA> =
            Arc::new(move |key, value, old| aggregator(key, value, old.unwrap_or_else(|| init())));
        let value_serde = self.value_serde.clone();
        match windows {
            CogroupWindows::None => {
                let store = store.clone();
                processor_def(name, vec![parent], move || StreamAggregate {
                    output: store.output(store.key_serde.clone(), true),
                    step: step.clone(),
                    key_serde: store.key_serde.clone(),
                    value_serde: Some(value_serde.clone()),
                })
            }
            CogroupWindows::Time(windows) => time_window_node(name, parent, store, *windows, false, step),
            CogroupWindows::Sliding(windows, retention_ms) => {
                sliding_window_node(name, parent, store, *windows, *retention_ms, false, step, value_serde)
            }
            CogroupWindows::Session(windows, retention_ms, merge) => {
                session_window_node(name, parent, store, *windows, *retention_ms, step, merge.clone())
            }
        }
    }
}

/// How a cogroup aggregates: per key, or per key and window (with what the windows' nodes need: the
/// store's retention, the sessions' merger).
pub(super) enum CogroupWindows<K, VA> {
    None,
    Time(TimeWindows),
    Sliding(SlidingWindows, i64),
    Session(SessionWindows, i64, Merge<K, VA>),
}

/// What [`CogroupedKStream::build`] made: the merge node the table comes out of, and the store.
struct Built<K, VA> {
    merge: String,
    store: AggregationStore<K, VA>,
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

    /// [`aggregate`](Self::aggregate) into the store described by `materialized`. The cogroup's nodes
    /// share the store and its record cache, as in Kafka Streams.
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
        let history = materialized.versioned_history_ms();
        let Built { merge, store } = self.build(Arc::new(initializer), materialized, |_| CogroupWindows::None);
        KTable::new(builder, merge, Some(store.key_serde), Some(store.agg_serde), Some(store.name))
            .with_store_getter()
            .versioned(history)
    }

    /// Cuts the cogroup into windows before aggregating (Kafka Streams' `windowedBy`): [`TimeWindows`]
    /// or [`SlidingWindows`] make a [`TimeWindowedCogroupedKStream`], [`SessionWindows`] a
    /// [`SessionWindowedCogroupedKStream`].
    pub fn windowed_by<W: CogroupWindowedBy<K, VA>>(self, windows: W) -> W::Stream {
        windows.windowed(self)
    }

    /// The cogroup's nodes and store, as Kafka Streams' `CogroupedStreamAggregateBuilder` makes them:
    /// the store's name (generated unless `materialized` gives one), each stream's repartition topic if
    /// it needs one, an aggregation node per stream, all on the one store (the first adds it), and the
    /// merge node the table comes out of. A window or retention that cannot be
    /// used is a build error, reported by the first aggregation node.
    fn build(
        self,
        init: Init<VA>,
        materialized: Materialized<K, VA>,
        windows: impl FnOnce(&Materialized<K, VA>) -> CogroupWindows<K, VA>,
    ) -> Built<K, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        let builder = self.builder.clone();
        let mut b = builder.borrow_mut();
        let name = match materialized.store_name.clone() {
            Some(name) => name,
            None => b.new_store_name("COGROUPKSTREAM-AGGREGATE-"),
        };
        let first_key_serde = self.inputs[0].key_serde();
        let key_serde = pick_or_default(materialized.key_serde.clone(), &first_key_serde);
        let agg_serde = pick_or_default(materialized.value_serde.clone(), &None);
        let store = AggregationStore::new(name, key_serde, agg_serde, &materialized);
        let parents: Vec<String> =
            self.inputs.iter().map(|input| input.source(&mut b, &store.name, &store.key_serde)).collect();
        let windows = windows(&materialized);
        let mut aggregators = Vec::new();
        for (i, (input, parent)) in self.inputs.iter().zip(parents).enumerate() {
            let given = self.next_name.as_ref().map(|n| format!("{n}-cogroup-agg-{i}"));
            let name = b.name_or(given, "COGROUPKSTREAM-AGGREGATE-");
            if i == 0
                && let Some(reason) = windows.invalid(&store.name, &materialized)
            {
                b.topology.deferred.push(TopologyError::InvalidWindows { node: name.clone(), reason });
            }
            b.topology.add_node_deferred(input.aggregator(&name, parent, &store, &init, &windows));
            if i == 0 {
                b.topology.add_store_deferred(windows.store_def(&store, &materialized), &name);
            } else {
                b.connect_stores(&name, &[&store.name]);
            }
            if let Some(after) = windows.close_after() {
                b.window_close_after.insert(name.clone(), after);
            }
            aggregators.push(name);
        }
        let given = self.next_name.as_ref().map(|n| format!("{n}-cogroup-merge"));
        let merge = b.name_or(given, "COGROUPKSTREAM-MERGE-");
        b.topology.add_node_deferred(windows.merge_node(&merge, aggregators));
        Built { merge, store }
    }
}

impl<K: Data, VA: Data> CogroupWindows<K, VA> {
    /// Why these windows, or the store's retention, cannot be used (Kafka Streams' messages).
    fn invalid(&self, store: &str, materialized: &Materialized<K, VA>) -> Option<String> {
        match self {
            CogroupWindows::None => None,
            CogroupWindows::Time(windows) => invalid_time_windows(*windows, store, materialized),
            CogroupWindows::Sliding(windows, _) => invalid_sliding_windows(*windows, store, materialized),
            CogroupWindows::Session(windows, _, _) => invalid_session_windows(*windows, store, materialized),
        }
    }

    /// The store the nodes share: a key-value, window or session store.
    fn store_def(&self, store: &AggregationStore<K, VA>, materialized: &Materialized<K, VA>) -> StoreDef {
        match self {
            CogroupWindows::None => {
                store_def(&store.name, materialized, store.key_serde.clone(), store.agg_serde.clone())
            }
            CogroupWindows::Time(windows) => time_window_store(store, *windows, materialized),
            CogroupWindows::Sliding(windows, retention_ms) => {
                sliding_window_store(store, *windows, *retention_ms, materialized)
            }
            CogroupWindows::Session(_, retention_ms, _) => session_window_store(store, *retention_ms, materialized),
        }
    }

    /// How long after a window's end its result is final (for `suppress`), when there are windows.
    fn close_after(&self) -> Option<i64> {
        match self {
            CogroupWindows::None => None,
            CogroupWindows::Time(windows) => Some(windows.grace_ms()),
            CogroupWindows::Sliding(windows, _) => Some(windows.grace_ms()),
            CogroupWindows::Session(windows, _, _) => Some(session_close_after(*windows)),
        }
    }

    /// The merge node, typed by the table's key: `K`, or `Windowed<K>`.
    fn merge_node(&self, name: &str, aggregators: Vec<String>) -> NodeDef {
        match self {
            CogroupWindows::None => processor_def::<K, Change<VA>, K, Change<VA>, _>(name, aggregators, || PassThrough),
            _ => {
                processor_def::<Windowed<K>, Change<VA>, Windowed<K>, Change<VA>, _>(name, aggregators, || PassThrough)
            }
        }
    }
}

/// What [`CogroupedKStream::windowed_by`] takes: [`TimeWindows`], [`SlidingWindows`] or
/// [`SessionWindows`], each making its own kind of windowed cogroup (Kafka Streams overloads
/// `windowedBy`).
pub trait CogroupWindowedBy<K, VA>: Sealed {
    /// The windowed cogroup these windows make.
    type Stream;

    /// Cuts `cogrouped` into these windows.
    #[doc(hidden)]
    fn windowed(self, cogrouped: CogroupedKStream<K, VA>) -> Self::Stream;
}

impl<K: Data, VA: Data> CogroupWindowedBy<K, VA> for TimeWindows {
    type Stream = TimeWindowedCogroupedKStream<K, VA>;

    fn windowed(self, cogrouped: CogroupedKStream<K, VA>) -> Self::Stream {
        TimeWindowedCogroupedKStream { cogrouped, windows: TimeOrSliding::Time(self) }
    }
}

impl<K: Data, VA: Data> CogroupWindowedBy<K, VA> for SlidingWindows {
    type Stream = TimeWindowedCogroupedKStream<K, VA>;

    fn windowed(self, cogrouped: CogroupedKStream<K, VA>) -> Self::Stream {
        TimeWindowedCogroupedKStream { cogrouped, windows: TimeOrSliding::Sliding(self) }
    }
}

impl<K: Data, VA: Data> CogroupWindowedBy<K, VA> for SessionWindows {
    type Stream = SessionWindowedCogroupedKStream<K, VA>;

    fn windowed(self, cogrouped: CogroupedKStream<K, VA>) -> Self::Stream {
        SessionWindowedCogroupedKStream { cogrouped, windows: self }
    }
}

enum TimeOrSliding {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

/// A cogroup cut into time or sliding windows, waiting for its aggregation (Kafka Streams'
/// `TimeWindowedCogroupedKStream`). Made by [`CogroupedKStream::windowed_by`].
///
/// # Examples
///
/// Net orders (orders less returns) per customer and minute:
///
/// ```
/// use std::time::Duration;
/// use streams_core::dsl::{StreamsBuilder, TimeWindows, Windowed};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let orders = builder.stream::<String, String>("orders").group_by_key();
/// let returns = builder.stream::<String, String>("returns").group_by_key();
/// orders
///     .cogroup(|_, _, net: i64| net + 1)
///     .cogroup(&returns, |_, _, net| net - 1)
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
///     .aggregate(|| 0)
///     .to_stream()
///     .map(|w: Windowed<String>, net: Option<i64>| (format!("{}@{}", w.key, w.window.start), net))
///     .to("net-orders");
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let (o, r) = (driver.input_topic::<String, String>("orders"), driver.input_topic::<String, String>("returns"));
/// let net = driver.output_topic::<String, Option<i64>>("net-orders");
/// driver.pipe(&o, "ada".into(), "book".into(), 1_000)?;
/// driver.pipe(&o, "ada".into(), "pen".into(), 2_000)?;
/// driver.pipe(&r, "ada".into(), "book".into(), 61_000)?;
/// assert_eq!(
///     driver.read_key_values(&net),
///     vec![("ada@0".into(), Some(1)), ("ada@0".into(), Some(2)), ("ada@60000".into(), Some(-1))]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TimeWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    windows: TimeOrSliding,
}

impl<K: Data, VA: Data> TimeWindowedCogroupedKStream<K, VA> {
    /// Names the aggregation: its nodes become `<name>-cogroup-agg-<i>` and `<name>-cogroup-merge`
    /// (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.cogrouped.next_name = Some(name.into());
        self
    }

    /// Aggregates every stream's records per key and window into one table, each window starting at
    /// `initializer`. The store's name is generated (`COGROUPKSTREAM-AGGREGATE-STATE-STORE-…`).
    pub fn aggregate(self, initializer: impl Fn() -> VA + Send + Sync + 'static) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        self.aggregate_with(initializer, Materialized::new())
    }

    /// [`aggregate`](Self::aggregate) into the window store described by `materialized` (a name,
    /// serdes, a retention).
    pub fn aggregate_with(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        let builder = self.cogrouped.builder.clone();
        let windows = self.windows;
        let (size, cogroup_windows): (i64, Box<dyn FnOnce(&Materialized<K, VA>) -> CogroupWindows<K, VA>>) =
            match windows {
                TimeOrSliding::Time(w) => (w.size_ms(), Box::new(move |_| CogroupWindows::Time(w))),
                TimeOrSliding::Sliding(w) => (
                    w.time_difference_ms(),
                    Box::new(move |m| CogroupWindows::Sliding(w, m.retention.map_or(w.least_retention_ms(), millis))),
                ),
            };
        let Built { merge, store } = self.cogrouped.build(Arc::new(initializer), materialized, cogroup_windows);
        let table_key: Arc<dyn Serde<Windowed<K>>> = Arc::new(TimeWindowedSerde::with_size_ms(store.key_serde, size));
        KTable::new(builder, merge, Some(table_key), Some(store.agg_serde), Some(store.name))
    }
}

/// A cogroup cut into sessions, waiting for its aggregation (Kafka Streams'
/// `SessionWindowedCogroupedKStream`). Made by [`CogroupedKStream::windowed_by`] with [`SessionWindows`].
pub struct SessionWindowedCogroupedKStream<K, VA> {
    cogrouped: CogroupedKStream<K, VA>,
    windows: SessionWindows,
}

impl<K: Data, VA: Data> SessionWindowedCogroupedKStream<K, VA> {
    /// Names the aggregation: its nodes become `<name>-cogroup-agg-<i>` and `<name>-cogroup-merge`
    /// (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.cogrouped.next_name = Some(name.into());
        self
    }

    /// Aggregates every stream's records per key and session into one table, each session starting at
    /// `initializer`; when a record joins sessions, `merger(key, aggregate so far, session's aggregate)`
    /// folds them together, starting from `initializer()`, oldest session first.
    pub fn aggregate(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        self.aggregate_with(initializer, merger, Materialized::new())
    }

    /// [`aggregate`](Self::aggregate) into the session store described by `materialized`.
    pub fn aggregate_with(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        VA: DefaultSerde,
    {
        let builder = self.cogrouped.builder.clone();
        let windows = self.windows;
        let init: Init<VA> = Arc::new(initializer);
        let for_merge = init.clone();
        let merge: Merge<K, VA> =
            Arc::new(move |key, merged, session| merger(key, merged.unwrap_or_else(|| for_merge()), session));
        let cogroup_windows = move |m: &Materialized<K, VA>| {
            CogroupWindows::Session(windows, m.retention.map_or(windows.least_retention_ms(), millis), merge)
        };
        let Built { merge, store } = self.cogrouped.build(init, materialized, cogroup_windows);
        let table_key: Arc<dyn Serde<Windowed<K>>> = Arc::new(SessionWindowedSerde::new(store.key_serde));
        KTable::new(builder, merge, Some(table_key), Some(store.agg_serde), Some(store.name))
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
