//! Sliding-window aggregations of a grouped stream (Kafka Streams' `SlidingWindows` on a
//! `TimeWindowedKStream`, KIP-450, and `KStreamSlidingWindowAggregate`): `count`, `reduce` and `aggregate`
//! per key over windows `[start, start + difference]` that exist only where records make them.
//!
//! The store is a window store with the difference as its window size, keyed and logged as time windows'
//! are. With the record cache, updates wait in it and go to the store and downstream at commit or
//! eviction, as a time-windowed aggregation's do; the processor reads its key's windows from the store
//! with the cached updates over them.

use std::collections::HashSet;
use std::sync::Arc;

use super::aggregate::{aggregate_step, count_step, reduce_step, AggregateOutput, StreamStep};
use super::cache::overlay;
use super::change::Change;
use super::emit_final::{EmitFinal, FinalWindows};
use super::grouped::{store_def_over, AggregationSetup, KGroupedStream};
use super::options::Materialized;
use super::windowed::AggregationStore;
use super::windowed::WindowedBy;
use super::{Data, KTable};
use crate::processor::{Processor, ProcessorContext, StoreHandle};
use crate::record::Headers;
use crate::serde::{to_bytes, DefaultSerde, Serde, TimeWindowedSerde, WindowStoreKeySerde};
use crate::store::{DefaultWindowBytesStoreSupplier, StoreDef, ValueAndTimestamp};
use crate::topology::{processor_def, NodeDef};
use crate::window::{millis, EmitStrategy, SlidingWindows, Window, Windowed};
use crate::{Record, StreamsError, TopologyError};

impl<K: Data, V: Data> WindowedBy<K, V> for SlidingWindows {
    type Stream = SlidingWindowedKStream<K, V>;

    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Stream {
        SlidingWindowedKStream { grouped, windows: self, emit_strategy: EmitStrategy::default() }
    }
}

/// A grouped stream cut into sliding windows, waiting for an aggregation (Kafka Streams'
/// `windowedBy(SlidingWindows)`). Made by [`KGroupedStream::windowed_by`] with [`SlidingWindows`].
///
/// ```
/// use std::time::Duration;
/// use streams_core::dsl::{Materialized, SlidingWindows, StreamsBuilder, Window, Windowed};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(SlidingWindows::of_time_difference_with_no_grace(Duration::from_secs(5)))
///     .count_with(Materialized::as_store("clicks-within-5s"));
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let clicks = driver.input_topic::<String, String>("clicks");
/// for at in [8_000, 9_200, 12_400] {
///     driver.pipe(&clicks, "ada".into(), "/home".into(), at)?;
/// }
/// let window = |start| Windowed::new("ada".to_string(), Window { start, end: start + 5_000 });
/// assert_eq!(
///     driver.store_entries::<Windowed<String>, i64>("clicks-within-5s")?,
///     vec![(window(3_000), 1), (window(4_200), 2), (window(7_400), 3), (window(8_001), 2), (window(9_201), 1)]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
    emit_strategy: EmitStrategy,
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    /// Names the aggregation processor (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.grouped.next_name = Some(name.into());
        self
    }

    /// When the aggregation forwards (Kafka Streams' `emitStrategy`, KIP-825): every update (the
    /// default), or with [`EmitStrategy::on_window_close`] each window once, when stream time passes its
    /// end by more than the grace period, read back from the store. See
    /// [`TimeWindowedKStream::emit_strategy`](super::TimeWindowedKStream::emit_strategy).
    pub fn emit_strategy(mut self, strategy: EmitStrategy) -> Self {
        self.emit_strategy = strategy;
        self
    }

    /// Counts records per key and window. Records with a null key or value are dropped, as Kafka Streams'
    /// sliding windows do.
    pub fn count(&self) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.count_with(Materialized::new())
    }

    /// [`count`](Self::count) into the store described by `materialized`. Unlike time windows' it uses up
    /// no generated name, as in Kafka Streams.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let materialized =
            self.grouped.key_serde_into(materialized).with_value_serde_if_missing(Arc::new(crate::serde::I64Serde));
        self.aggregate_internal("KSTREAM-AGGREGATE-", count_step(), materialized)
    }

    /// Combines the values per key and window with `reducer`.
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
        let materialized =
            self.grouped.key_serde_into(materialized).with_value_serde_if_missing(self.grouped.value_serde());
        self.aggregate_internal("KSTREAM-REDUCE-", reduce_step(reducer), materialized)
    }

    /// Folds the values per key and window into an aggregate that starts at `initializer()`.
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

    /// Names as a grouped stream's aggregation does; windows are written as time windows of the
    /// difference's size.
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
        let value_serde = self.grouped.value_serde();
        let setup = match self.grouped.setup_aggregation(&mut b, prefix, &materialized, value_serde.clone()) {
            Ok(setup) => setup,
            Err((name, store)) => return KTable::new(builder.clone(), name, None, None, Some(store)),
        };
        let AggregationSetup { store, name, key_serde, agg_serde, parent } = setup;
        let windows = self.windows;
        if let Some(reason) = invalid_sliding_windows(windows, &store, &materialized) {
            b.topology.deferred.push(TopologyError::InvalidWindows { node: name.clone(), reason });
            return KTable::new(builder.clone(), name, None, None, Some(store));
        }
        let target = AggregationStore::new(store.clone(), key_serde.clone(), agg_serde.clone(), &materialized);
        let retention_ms = materialized.retention.map_or(windows.least_retention_ms(), millis);
        let emit_final = self.emit_strategy == EmitStrategy::OnWindowClose;
        let node = sliding_window_node(&name, parent, &target, windows, retention_ms, emit_final, step, value_serde);
        b.topology.add_node_deferred(node);
        b.topology.add_store_deferred(sliding_window_store(&target, windows, retention_ms, &materialized), &name);
        b.window_close_after.insert(name.clone(), windows.grace_ms());
        let table_key: Arc<dyn Serde<Windowed<K>>> =
            Arc::new(TimeWindowedSerde::with_size_ms(key_serde, windows.time_difference_ms()));
        KTable::new(builder.clone(), name, Some(table_key), Some(agg_serde), Some(store))
    }
}

/// The node `name` that aggregates `parent`'s records (values read with `value_serde`, to drop nulls)
/// per key over sliding windows into `store` with `step`, reading the store as kept for `retention_ms`
/// (Kafka Streams' `KStreamSlidingWindowAggregate`): a grouped stream's, or one of a cogroup's.
#[allow(clippy::too_many_arguments)]
pub(super) fn sliding_window_node<K: Data, V: Data, VA: Data>(
    name: &str,
    parent: String,
    store: &AggregationStore<K, VA>,
    windows: SlidingWindows,
    retention_ms: i64,
    emit_final: bool,
    step: StreamStep<K, V, VA>,
    value_serde: Arc<dyn Serde<V>>,
) -> NodeDef {
    let store = store.clone();
    let difference = windows.time_difference_ms();
    let store_key: Arc<dyn Serde<Windowed<K>>> =
        Arc::new(WindowStoreKeySerde::new(store.key_serde.clone(), difference));
    processor_def(name, vec![parent], move || SlidingAggregate {
        store: store.name.clone(),
        output: store.output(store_key.clone(), !emit_final).ranged(),
        key_serde: store.key_serde.clone(),
        value_serde: value_serde.clone(),
        agg_serde: store.agg_serde.clone(),
        step: step.clone(),
        difference,
        grace: windows.grace_ms(),
        retention_ms,
        observed_stream_time: -1,
        written_start: -1,
        emit_final: emit_final.then(|| EmitFinal::new(FinalWindows::Sliding(windows), store.name.clone())),
    })
}

/// The window store of a sliding-window aggregation: windows of the difference's size, kept for
/// `retention_ms`.
pub(super) fn sliding_window_store<K: Data, VA: Data, MK>(
    store: &AggregationStore<K, VA>,
    windows: SlidingWindows,
    retention_ms: i64,
    materialized: &Materialized<MK, VA>,
) -> StoreDef {
    let store_key: Arc<dyn Serde<Windowed<K>>> =
        Arc::new(WindowStoreKeySerde::new(store.key_serde.clone(), windows.time_difference_ms()));
    let supplier =
        Arc::new(DefaultWindowBytesStoreSupplier { name: store.name.clone(), retention_ms, sessions: false });
    let mut def = store_def_over(supplier, materialized, store_key, store.agg_serde.clone());
    def.window_retention_ms = Some(retention_ms);
    def
}

/// Why the store's retention cannot be used (Kafka Streams' message).
pub(super) fn invalid_sliding_windows<MK, MV>(
    windows: SlidingWindows,
    store: &str,
    materialized: &Materialized<MK, MV>,
) -> Option<String> {
    if materialized.has_supplier() {
        return Some("a windowed aggregation takes no key-value store supplier".to_string());
    }
    let retention = materialized.retention.map(millis)?;
    (retention < windows.least_retention_ms()).then(|| {
        format!(
            "The retention period of the window store {store} must be no smaller than 2 * time difference plus the grace period. Got time difference=[{}], grace=[{}], retention=[{retention}]",
            windows.time_difference_ms(),
            windows.grace_ms()
        )
    })
}

/// The processor of a sliding-window aggregation (Kafka Streams' `KStreamSlidingWindowAggregate`, on its
/// backward-fetching path, the one Kafka Streams takes with its own stores).
struct SlidingAggregate<K, V, VA> {
    store: String,
    /// The store's writes and forwards, through the record cache when it is on.
    output: AggregateOutput<Windowed<K>, VA>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    /// Tells an aggregate written as null, which deletes the window.
    agg_serde: Arc<dyn Serde<VA>>,
    step: StreamStep<K, V, VA>,
    difference: i64,
    grace: i64,
    retention_ms: i64,
    /// The largest timestamp this processor has seen (-1 before the first).
    observed_stream_time: i64,
    /// The latest window start this processor wrote. Under exactly-once the store's writes wait for the
    /// commit, so the store's own observed time lags behind this one.
    written_start: i64,
    /// With `EmitStrategy::on_window_close`: the output does not forward; closed windows are.
    emit_final: Option<EmitFinal>,
}

/// A stored window of the record's key: its start, aggregate and timestamp (the latest record in it).
type Stored<VA> = (i64, ValueAndTimestamp<VA>);

/// What one record does to its key's windows: the record, and where its windows go.
struct Update<'a, K, V> {
    key: &'a K,
    value: &'a V,
    timestamp: i64,
    headers: &'a Headers,
    close_time: i64,
}

impl<K: Data, V: Data, VA: Data> SlidingAggregate<K, V, VA> {
    fn handle(&self) -> Result<StoreHandle<Windowed<K>, ValueAndTimestamp<VA>>, StreamsError> {
        self.output.store_handle()
    }

    /// The key's windows that start in `[from, to]`, oldest first, leaving out those the store's retention
    /// hides (Kafka Streams' window store `fetch`): the store's, with the cached updates over them.
    fn windows(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        key_bytes: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<Stored<VA>>, StreamsError> {
        let store = ctx.store_mut(self.handle()?)?;
        let observed = self.written_start.max(store.observed_stream_time().unwrap_or(-1));
        let from = from.max(0).max(observed.saturating_sub(self.retention_ms).saturating_add(1));
        if to < from {
            return Ok(Vec::new());
        }
        let suffix = |start: i64, seq: [u8; 4]| [&start.to_be_bytes()[..], &seq].concat();
        let (low, high) = (suffix(from, [0; 4]), suffix(to, [0xff; 4]));
        let keep = move |suffix: &[u8]| {
            let start = i64::from_be_bytes(suffix[..8].try_into().expect("eight bytes"));
            (from..=to).contains(&start)
        };
        let stored = store
            .range_of_key(key_bytes, &low, &high, keep)?
            .map(|entry| entry.map(|(window, value)| (window.window.start, value)))
            .collect::<Result<Vec<_>, StreamsError>>()?;
        let cached = self.output.cached_range_of_key(key_bytes, &low, &high, keep, |pending| {
            let value = pending.value.clone().map(|value| ValueAndTimestamp { value, timestamp: pending.timestamp });
            (pending.key.window.start, value)
        });
        Ok(overlay(stored, cached))
    }

    fn window(&self, start: i64) -> Window {
        Window { start, end: start.saturating_add(self.difference) }
    }

    /// Aggregates the record into the window starting at `start`, whose aggregate so far is `old` (`None`:
    /// the initializer's) with timestamp `old_timestamp`, unless the window has closed, which drops the
    /// record for it (Kafka Streams' `updateWindowAndForward`).
    fn update(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Update<'_, K, V>,
        start: i64,
        old: Option<VA>,
        old_timestamp: i64,
    ) -> Result<(), StreamsError> {
        let window = self.window(start);
        if window.end < record.close_time {
            ctx.record_late(&format!(
                "expired window [{},{}] timestamp=[{}] expiration=[{}] streamTime=[{}]",
                window.start, window.end, record.timestamp, record.close_time, self.observed_stream_time
            ));
            return Ok(());
        }
        let timestamp = record.timestamp.max(old_timestamp);
        let new = (self.step)(record.key, record.value.clone(), old.clone());
        let new = (!self.agg_serde.is_null(&new)).then_some(new);
        self.write(ctx, record, window, new, old, timestamp)
    }

    /// Puts (or, for `None`, deletes) a window and forwards the change: at once, or through the cache.
    fn write(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Update<'_, K, V>,
        window: Window,
        new: Option<VA>,
        old: Option<VA>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        let key = Windowed::new(record.key.clone(), window);
        let key_bytes = self.output.key_bytes(&key)?;
        self.written_start = self.written_start.max(window.start);
        let update = Record { key, value: new, timestamp, headers: record.headers.clone() };
        self.output.update(ctx, key_bytes, update, old)
    }

    /// The record's own right window, `[ts + 1, ts + 1 + difference]`, made from the window before it,
    /// which holds exactly the later records (Kafka Streams' `createCurrentRecordRightWindow`).
    fn copy_right_window(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Update<'_, K, V>,
        right: ValueAndTimestamp<VA>,
    ) -> Result<(), StreamsError> {
        let window = self.window(record.timestamp.saturating_add(1));
        self.write(ctx, record, window, Some(right.value), None, right.timestamp)
    }

    /// A record at or after the difference: existing windows newest first, then the windows the record
    /// makes (Kafka Streams' `processReverse` and `createWindows`).
    fn process_in_time(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Update<'_, K, V>,
        key_bytes: &[u8],
    ) -> Result<(), StreamsError> {
        let ts = record.timestamp;
        let d = self.difference;
        let mut windows = self.windows(ctx, key_bytes, ts.saturating_sub(d.saturating_mul(2)), ts.saturating_add(1))?;
        windows.reverse();
        let mut starts = HashSet::new();
        let (mut left_aggregate, mut right_aggregate) = (None, None);
        let (mut left_exists, mut right_exists) = (false, false);
        let mut previous = None;
        for (start, stored) in windows {
            starts.insert(start);
            let end = start.saturating_add(d);
            let latest = stored.timestamp;
            if start == ts.saturating_add(1) {
                right_exists = true;
            } else if end > ts {
                right_aggregate.get_or_insert_with(|| stored.clone());
                self.update(ctx, record, start, Some(stored.value), latest)?;
            } else if end == ts {
                left_exists = true;
                self.update(ctx, record, start, Some(stored.value), latest)?;
                if latest < ts {
                    previous = Some(latest);
                } else {
                    // A record of this time came before: every window it needs exists.
                    return Ok(());
                }
            } else {
                left_aggregate = Some(stored.value);
                previous = Some(latest);
                break;
            }
        }
        // The previous record's right window, when it is missing and this record falls in it.
        if let Some(previous) = previous {
            let start = previous.saturating_add(1);
            if !starts.contains(&start) && start.saturating_add(d) >= ts {
                self.update(ctx, record, start, None, ts)?;
            }
        }
        if !left_exists {
            if d == 0 {
                return Err(ctx.error("Window endMs must be greater than window startMs."));
            }
            // Seeded with the window that ends before it when the previous record is inside it.
            let seed = left_aggregate.filter(|_| previous.is_some_and(|p| ts - d <= p));
            self.update(ctx, record, ts - d, seed, ts)?;
        }
        if let Some(right) = right_aggregate.filter(|r| !right_exists && r.timestamp > ts) {
            self.copy_right_window(ctx, record, right)?;
        }
        Ok(())
    }

    /// A record earlier than the difference: its left window would start before 0, so the window
    /// `[0, difference]` stands in for it (Kafka Streams' `processEarly`).
    fn process_early(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: &Update<'_, K, V>,
        key_bytes: &[u8],
    ) -> Result<(), StreamsError> {
        let ts = record.timestamp;
        let mut starts = HashSet::new();
        let (mut combined, mut right_aggregate, mut right_exists, mut previous) = (None, None, false, None);
        for (start, stored) in self.windows(ctx, key_bytes, 0, ts.saturating_add(1))? {
            starts.insert(start);
            if start == 0 {
                if stored.timestamp < ts {
                    previous = Some(stored.timestamp);
                }
                combined = Some(stored);
            } else if start <= ts {
                right_aggregate = Some(stored.clone());
                self.update(ctx, record, start, Some(stored.value), stored.timestamp)?;
            } else {
                right_exists = true;
            }
        }
        if right_aggregate.is_none() {
            right_aggregate = combined.clone().filter(|c: &ValueAndTimestamp<VA>| c.timestamp > ts);
        }
        if let Some(right) = right_aggregate.filter(|r| !right_exists && r.timestamp > ts) {
            self.copy_right_window(ctx, record, right)?;
        }
        if let Some(previous) = previous {
            let start = previous.saturating_add(1);
            if !starts.contains(&start) {
                self.update(ctx, record, start, None, ts)?;
            }
        }
        match combined {
            Some(stored) => self.update(ctx, record, 0, Some(stored.value), stored.timestamp),
            None => self.update(ctx, record, 0, None, ts),
        }
    }
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>> for SlidingAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        if let Some(emit) = &mut self.emit_final {
            emit.init(ctx);
        }
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        // Kafka Streams' sliding windows drop null values too (its time windows aggregate them).
        if self.key_serde.is_null(&record.key) || self.value_serde.is_null(&record.value) {
            ctx.record_dropped("null key or value in a sliding-window aggregation");
            return Ok(());
        }
        let ts = record.timestamp;
        self.observed_stream_time = self.observed_stream_time.max(ts);
        let close_time = self.observed_stream_time.saturating_sub(self.grace);
        if ts.saturating_add(self.difference) < close_time {
            ctx.record_late(&format!(
                "expired window [{ts},{}] timestamp=[{ts}] expiration=[{close_time}] streamTime=[{}]",
                ts.saturating_add(self.difference),
                self.observed_stream_time
            ));
            return Ok(());
        }
        let serialization = |source| StreamsError::Serialization {
            node: "(sliding window store)".into(),
            target: self.store.clone(),
            source,
        };
        let key_bytes =
            to_bytes(&*self.key_serde, &self.store, &record.key).map_err(serialization)?.unwrap_or_default();
        let update =
            Update { key: &record.key, value: &record.value, timestamp: ts, headers: &record.headers, close_time };
        if ts < self.difference {
            // Early records never make an emit-final aggregation look for closed windows.
            return self.process_early(ctx, &update, &key_bytes);
        }
        if let Some(emit) = &mut self.emit_final
            && let Some(range) = emit.due(ctx, close_time)
        {
            // The cache's pending updates go to the store first (without forwarding them).
            self.output.flush(ctx)?;
            emit.emit(ctx, self.output.store_handle()?, range, close_time, &record.headers)?;
        }
        self.process_in_time(ctx, &update, &key_bytes)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}
