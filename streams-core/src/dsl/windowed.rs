//! Windowed aggregations of a grouped stream (Kafka Streams' `TimeWindowedKStream`): `count`, `reduce`
//! and `aggregate` per key and time window, into a table keyed by [`Windowed`] keys. The store is a
//! key-value store keyed as Kafka Streams keys a window store (the key, the window start, a sequence
//! number), so its changelog can be read by Kafka's tools; the changelog topic is `compact,delete`, kept
//! for the retention plus `windowstore.changelog.additional.retention.ms`.

use std::sync::Arc;

use super::aggregate::{aggregate_step, count_step, reduce_step, AggregateOutput, StreamStep, WindowAggregate};
use super::emit_final::{EmitFinal, FinalWindows};
use super::grouped::{store_def_over, AggregationSetup, KGroupedStream};
use super::options::Materialized;
use super::{Data, KTable};
use crate::serde::{DefaultSerde, Serde, TimeWindowedSerde, WindowStoreKeySerde};
use crate::store::{DefaultWindowBytesStoreSupplier, StoreDef};
use crate::topology::{processor_def, NodeDef};
use crate::window::{millis, EmitStrategy, TimeWindows, Windowed};
use crate::TopologyError;

/// What [`KGroupedStream::windowed_by`] takes: [`TimeWindows`], [`SlidingWindows`](crate::dsl::SlidingWindows)
/// or [`SessionWindows`](crate::dsl::SessionWindows), each making its own kind of windowed stream (Kafka
/// Streams overloads `windowedBy`).
pub trait WindowedBy<K, V>: sealed::Sealed {
    /// The windowed stream these windows make.
    type Stream;

    /// Cuts `grouped` into these windows.
    #[doc(hidden)]
    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Stream;
}

pub(super) mod sealed {
    /// Only the crate's windows can window a grouped stream.
    pub trait Sealed {}
    impl Sealed for crate::window::TimeWindows {}
    impl Sealed for crate::window::SessionWindows {}
    impl Sealed for crate::window::SlidingWindows {}
}

impl<K: Data, V: Data> WindowedBy<K, V> for TimeWindows {
    type Stream = TimeWindowedKStream<K, V>;

    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Stream {
        TimeWindowedKStream { grouped, windows: self, emit_strategy: EmitStrategy::default() }
    }
}

/// A grouped stream cut into time windows, waiting for an aggregation (Kafka Streams'
/// `TimeWindowedKStream`). Made by [`KGroupedStream::windowed_by`], which has an example.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
    emit_strategy: EmitStrategy,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Names the aggregation processor (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.grouped.next_name = Some(name.into());
        self
    }

    /// When the aggregation forwards (Kafka Streams' `emitStrategy`, KIP-825): every update (the
    /// default), or with [`EmitStrategy::on_window_close`] each window once, its final aggregate, when
    /// stream time reaches its end plus the grace period. The final results are read back from the
    /// window store when a record arrives, at most once per `__emit.interval.ms.kstreams.windowed.aggregation__`
    /// of wall-clock time (1 s; 0 in the test driver), ordered by window start, then key; each carries the
    /// timestamp of the window's latest record, the arriving record's headers, and no old value.
    ///
    /// The last close time emitted is committed with the task's offsets, in their metadata as Kafka
    /// Streams commits it, so that a restarted or moved task emits no window twice; under
    /// exactly_once_v2 it commits with the transaction that emitted the windows.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::dsl::{EmitStrategy, StreamsBuilder, TimeWindows, Windowed};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .emit_strategy(EmitStrategy::on_window_close())
    ///     .count()
    ///     .to_stream()
    ///     .map(|w: Windowed<String>, count: Option<i64>| (format!("{}@{}", w.key, w.window.start), count.unwrap_or(0)))
    ///     .to("final-counts");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// let counts = driver.output_topic::<String, i64>("final-counts");
    /// for (user, at) in [("ada", 0), ("ada", 5), ("bob", 7)] {
    ///     driver.pipe(&clicks, user.into(), "click".into(), at)?;
    /// }
    /// assert!(driver.read_key_values(&counts).is_empty());
    /// driver.pipe(&clicks, "ada".into(), "click".into(), 10)?; // closes [0, 10)
    /// assert_eq!(driver.read_key_values(&counts), vec![("ada@0".to_string(), 2), ("bob@0".to_string(), 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit_strategy = strategy;
        self
    }

    /// Counts records per key and window. Records with a null value count, as in Kafka Streams.
    pub fn count(&self) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.count_into(Materialized::new())
    }

    /// [`count`](Self::count) into the store described by `materialized` (a name, serdes, a retention).
    /// Without a store name it uses up one generated name first, as Kafka Streams' `count(Materialized)`.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        if materialized.store_name.is_none() {
            self.grouped.stream.builder.borrow_mut().burn();
        }
        self.count_into(materialized)
    }

    fn count_into(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step = count_step();
        let materialized =
            self.grouped.key_serde_into(materialized).with_value_serde_if_missing(Arc::new(crate::serde::I64Serde));
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, materialized)
    }

    /// Combines the values per key and window with `reducer` (the window's first value is the start).
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V>
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
    ) -> KTable<Windowed<K>, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step = reduce_step(reducer);
        let materialized =
            self.grouped.key_serde_into(materialized).with_value_serde_if_missing(self.grouped.value_serde());
        self.aggregate_internal("KSTREAM-REDUCE-", step, materialized)
    }

    /// Folds the values per key and window into an aggregate that starts at `initializer()` in each
    /// window.
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA>
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
    ) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let step = aggregate_step(initializer, aggregator);
        let materialized = self.grouped.key_serde_into(materialized).with_value_serde_if_missing(VA::default_serde());
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, materialized)
    }

    /// Names as a grouped stream's aggregation does; the table's keys are written with Kafka's
    /// `TimeWindowedSerializer` layout.
    fn aggregate_internal<VA: Data>(
        &self,
        prefix: &str,
        step: StreamStep<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        V: DefaultSerde,
    {
        let builder = self.grouped.stream.builder.clone();
        let mut b = builder.borrow_mut();
        let setup = match self.grouped.setup_aggregation(&mut b, prefix, &materialized, self.grouped.value_serde()) {
            Ok(setup) => setup,
            Err((name, store)) => return KTable::new(builder.clone(), name, None, None, Some(store)),
        };
        let AggregationSetup { store, name, key_serde, agg_serde, parent } = setup;
        let windows = self.windows;
        if let Some(reason) = invalid_time_windows(windows, &store, &materialized) {
            b.topology.deferred.push(TopologyError::InvalidWindows { node: name.clone(), reason });
            return KTable::new(builder.clone(), name, None, None, Some(store));
        }
        let target = AggregationStore::new(store.clone(), key_serde.clone(), agg_serde.clone(), &materialized);
        let emit_final = self.emit_strategy == EmitStrategy::OnWindowClose;
        b.topology.add_node_deferred(time_window_node(&name, parent, &target, windows, emit_final, step));
        b.topology.add_store_deferred(time_window_store(&target, windows, &materialized), &name);
        b.window_close_after.insert(name.clone(), windows.grace_ms());
        let table_key: Arc<dyn Serde<Windowed<K>>> =
            Arc::new(TimeWindowedSerde::with_size_ms(key_serde, windows.size_ms()));
        KTable::new(builder.clone(), name, Some(table_key), Some(agg_serde), Some(store))
    }
}

/// The store an aggregation's nodes write, and how: what a grouped stream's windowed aggregation and a
/// cogroup's nodes (windowed or not) have in common.
#[derive(Clone)]
pub(super) struct AggregationStore<K, VA> {
    pub(super) name: String,
    pub(super) key_serde: Arc<dyn Serde<K>>,
    pub(super) agg_serde: Arc<dyn Serde<VA>>,
    /// Whether the store was declared with caching (Kafka Streams' `Materialized` default: yes).
    pub(super) caching: bool,
}

impl<K, VA> AggregationStore<K, VA> {
    pub(super) fn new<MK, MV>(
        name: String,
        key_serde: Arc<dyn Serde<K>>,
        agg_serde: Arc<dyn Serde<VA>>,
        materialized: &Materialized<MK, MV>,
    ) -> Self {
        AggregationStore { name, key_serde, agg_serde, caching: materialized.caching_enabled }
    }

    /// The aggregation's output to the store: through the record cache when it is on, forwarding unless
    /// only final results go downstream.
    pub(super) fn output<SK: Data>(&self, key_serde: Arc<dyn Serde<SK>>, forwards: bool) -> AggregateOutput<SK, VA>
    where
        VA: Data,
    {
        let output = AggregateOutput::new(self.name.clone(), key_serde, self.caching);
        if forwards {
            output
        } else {
            output.silent()
        }
    }
}

/// The node `name` that aggregates `parent`'s records per key and time window into `store` with `step`
/// (Kafka Streams' `KStreamWindowAggregate`): a grouped stream's, or one of a cogroup's.
pub(super) fn time_window_node<K: Data, V: Data, VA: Data>(
    name: &str,
    parent: String,
    store: &AggregationStore<K, VA>,
    windows: TimeWindows,
    emit_final: bool,
    step: StreamStep<K, V, VA>,
) -> NodeDef {
    let store = store.clone();
    let store_key: Arc<dyn Serde<Windowed<K>>> =
        Arc::new(WindowStoreKeySerde::new(store.key_serde.clone(), windows.size_ms()));
    processor_def(name, vec![parent], move || WindowAggregate {
        output: store.output(store_key.clone(), !emit_final),
        step: step.clone(),
        key_serde: store.key_serde.clone(),
        agg_serde: store.agg_serde.clone(),
        windows,
        observed_stream_time: -1,
        emit_final: emit_final.then(|| EmitFinal::new(FinalWindows::Time(windows), store.name.clone())),
    })
}

/// The window store of a time-windowed aggregation: kept for the retention `materialized` gives, else
/// the window size plus the grace period.
pub(super) fn time_window_store<K: Data, VA: Data, MK>(
    store: &AggregationStore<K, VA>,
    windows: TimeWindows,
    materialized: &Materialized<MK, VA>,
) -> StoreDef {
    let retention = materialized.retention.map_or(windows.least_retention_ms(), millis);
    let store_key: Arc<dyn Serde<Windowed<K>>> =
        Arc::new(WindowStoreKeySerde::new(store.key_serde.clone(), windows.size_ms()));
    let supplier = Arc::new(DefaultWindowBytesStoreSupplier {
        name: store.name.clone(),
        retention_ms: retention,
        sessions: false,
    });
    let mut def = store_def_over(supplier, materialized, store_key, store.agg_serde.clone());
    def.window_retention_ms = Some(retention);
    def
}

/// Why the windows, or the store's retention, cannot be used (Kafka Streams' messages).
pub(super) fn invalid_time_windows<MK, MV>(
    windows: TimeWindows,
    store: &str,
    materialized: &Materialized<MK, MV>,
) -> Option<String> {
    if let Some(reason) = windows.invalid() {
        return Some(reason.to_string());
    }
    if materialized.has_supplier() {
        return Some("a windowed aggregation takes no key-value store supplier".to_string());
    }
    let retention = materialized.retention.map(millis)?;
    let least = windows.least_retention_ms();
    (retention < least).then(|| {
        format!(
            "The retention period of the window store {store} must be no smaller than its window size plus the grace period. Got size=[{}], grace=[{}], retention=[{retention}]",
            windows.size_ms(),
            windows.grace_ms()
        )
    })
}
