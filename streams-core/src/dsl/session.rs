//! Session-windowed aggregations of a grouped stream (Kafka Streams' `SessionWindowedKStream` and
//! `KStreamSessionWindowAggregate`): `count`, `reduce` and `aggregate` per key and session of activity,
//! into a table keyed by [`Windowed`] keys whose windows are sessions, `[first, last]` with both ends
//! inclusive.
//!
//! The store is keyed as Kafka Streams keys a session store (the key, the session's end, its start) and
//! holds the aggregates as they are, without a timestamp (a session's timestamp is its end); the changelog
//! is `compact,delete`, kept for the retention plus `windowstore.changelog.additional.retention.ms`.
//! With the record cache, a session's updates and deletes wait in it and go to the store and downstream
//! at commit or eviction (Kafka Streams' caching session store and its flush listener); the processor
//! reads its key's sessions from the store with the cached updates over them.

use std::sync::Arc;

use super::aggregate::{aggregate_step, count_step, reduce_step, StreamStep};
use super::cache::{overlay, CacheBudget, CacheSlot, Pending, RecordCache};
use super::change::Change;
use super::grouped::{untimed_store_def, AggregationSetup, KGroupedStream};
use super::options::Materialized;
use super::windowed::{AggregationStore, WindowedBy};
use super::{Data, KTable};
use crate::processor::{Processor, ProcessorContext, StoreHandle};
use crate::record::Headers;
use crate::serde::{to_bytes, DefaultSerde, Serde, SessionWindowedSerde};
use crate::store::{DefaultWindowBytesStoreSupplier, StoreDef};
use crate::topology::{processor_def, NodeDef};
use crate::window::{millis, SessionWindows, Window, Windowed};
use crate::{Record, StreamsError, TopologyError};

impl<K: Data, V: Data> WindowedBy<K, V> for SessionWindows {
    type Stream = SessionWindowedKStream<K, V>;

    fn windowed(self, grouped: KGroupedStream<K, V>) -> Self::Stream {
        SessionWindowedKStream { grouped, windows: self }
    }
}

/// A grouped stream cut into sessions of activity, waiting for an aggregation (Kafka Streams'
/// `SessionWindowedKStream`). Made by [`KGroupedStream::windowed_by`] with [`SessionWindows`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use streams_core::dsl::{SessionWindows, StreamsBuilder, Window, Windowed};
/// use streams_core::serde::{DefaultSerde, SessionWindowedSerde, StringSerde};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10)))
///     .count()
///     .to_stream()
///     .to("sessions");
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let clicks = driver.input_topic::<String, String>("clicks");
/// let sessions = driver.output_topic_with::<Windowed<String>, Option<i64>>(
///     "sessions",
///     Arc::new(SessionWindowedSerde::new(Arc::new(StringSerde))),
///     Option::<i64>::default_serde(),
/// );
/// for at in [0, 5, 30] {
///     driver.pipe(&clicks, "ada".into(), "/home".into(), at)?;
/// }
/// let session = |start, end| Windowed::new("ada".to_string(), Window { start, end });
/// assert_eq!(
///     driver.read_key_values(&sessions),
///     vec![
///         (session(0, 0), Some(1)),
///         (session(0, 0), None), // merged into [0, 5]
///         (session(0, 5), Some(2)),
///         (session(30, 30), Some(1)),
///     ]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

/// Merges a session's aggregate into the aggregate so far (`None`: nothing merged yet).
pub(super) type Merge<K, VA> = Arc<dyn Fn(&K, Option<VA>, VA) -> VA + Send + Sync>;

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Names the aggregation processor (Kafka Streams' `Named`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.grouped.next_name = Some(name.into());
        self
    }

    /// Counts records per key and session. Records with a null value count, as in Kafka Streams.
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
        let materialized =
            self.grouped.key_serde_into(materialized).with_value_serde_if_missing(Arc::new(crate::serde::I64Serde));
        let merge: Merge<K, i64> = Arc::new(|_, merged, session| merged.unwrap_or(0) + session);
        self.aggregate_internal("KSTREAM-AGGREGATE-", count_step(), merge, materialized)
    }

    /// Combines the values per key and session with `reducer`; merged sessions are combined with it too.
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
        let reducer = Arc::new(reducer);
        let for_merge = reducer.clone();
        let merge: Merge<K, V> = Arc::new(move |_, merged, session| match merged {
            Some(merged) => for_merge(merged, session),
            None => session,
        });
        let materialized =
            self.grouped.key_serde_into(materialized).with_value_serde_if_missing(self.grouped.value_serde());
        self.aggregate_internal("KSTREAM-REDUCE-", reduce_step(move |a, b| reducer(a, b)), merge, materialized)
    }

    /// Folds the values per key and session into an aggregate that starts at `initializer()`; when a
    /// record joins sessions, `merger(key, aggregate so far, session's aggregate)` folds them together,
    /// starting from `initializer()`, oldest session first, before the record is aggregated.
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.aggregate_with(initializer, aggregator, merger, Materialized::new())
    }

    /// [`aggregate`](Self::aggregate) into the store described by `materialized`.
    pub fn aggregate_with<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let initializer = Arc::new(initializer);
        let for_merge = initializer.clone();
        let merge: Merge<K, VA> =
            Arc::new(move |key, merged, session| merger(key, merged.unwrap_or_else(|| for_merge()), session));
        let step = aggregate_step(move || initializer(), aggregator);
        let materialized = self.grouped.key_serde_into(materialized).with_value_serde_if_missing(VA::default_serde());
        self.aggregate_internal("KSTREAM-AGGREGATE-", step, merge, materialized)
    }

    /// Names as a grouped stream's aggregation does; the table's keys and the store's are written with
    /// Kafka's `SessionWindowedSerializer` layout.
    fn aggregate_internal<VA: Data>(
        &self,
        prefix: &str,
        add: StreamStep<K, V, VA>,
        merge: Merge<K, VA>,
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
        if let Some(reason) = invalid_session_windows(windows, &store, &materialized) {
            b.topology.deferred.push(TopologyError::InvalidWindows { node: name.clone(), reason });
            return KTable::new(builder.clone(), name, None, None, Some(store));
        }
        let target = AggregationStore::new(store.clone(), key_serde.clone(), agg_serde.clone(), &materialized);
        let retention_ms = materialized.retention.map_or(windows.least_retention_ms(), millis);
        b.topology.add_node_deferred(session_window_node(&name, parent, &target, windows, retention_ms, add, merge));
        b.topology.add_store_deferred(session_window_store(&target, retention_ms, &materialized), &name);
        b.window_close_after.insert(name.clone(), session_close_after(windows));
        let session_key: Arc<dyn Serde<Windowed<K>>> = Arc::new(SessionWindowedSerde::new(key_serde));
        KTable::new(builder.clone(), name, Some(session_key), Some(agg_serde), Some(store))
    }
}

/// How long after a session's end its result is final: the grace period plus the gap.
pub(super) fn session_close_after(windows: SessionWindows) -> i64 {
    windows.grace_ms().saturating_add(windows.inactivity_gap_ms())
}

/// The node `name` that aggregates `parent`'s records per key and session into `store` with `add`,
/// merging sessions with `merge`, reading the store as kept for `retention_ms` (Kafka Streams'
/// `KStreamSessionWindowAggregate`): a grouped stream's, or one of a cogroup's.
pub(super) fn session_window_node<K: Data, V: Data, VA: Data>(
    name: &str,
    parent: String,
    store: &AggregationStore<K, VA>,
    windows: SessionWindows,
    retention_ms: i64,
    add: StreamStep<K, V, VA>,
    merge: Merge<K, VA>,
) -> NodeDef {
    let store = store.clone();
    processor_def(name, vec![parent], move || SessionAggregate {
        store: store.name.clone(),
        handle: None,
        caching: store.caching,
        budget: None,
        cache: CacheSlot::Own(RecordCache::sorted()),
        key_serde: store.key_serde.clone(),
        agg_serde: store.agg_serde.clone(),
        add: add.clone(),
        merge: merge.clone(),
        windows,
        retention_ms,
        observed_stream_time: -1,
        written_end: -1,
    })
}

/// The session store of a session-windowed aggregation, kept for `retention_ms`.
pub(super) fn session_window_store<K: Data, VA: Data, MK, MV>(
    store: &AggregationStore<K, VA>,
    retention_ms: i64,
    materialized: &Materialized<MK, MV>,
) -> StoreDef {
    let session_key: Arc<dyn Serde<Windowed<K>>> = Arc::new(SessionWindowedSerde::new(store.key_serde.clone()));
    let supplier = Arc::new(DefaultWindowBytesStoreSupplier { name: store.name.clone(), retention_ms, sessions: true });
    let mut def = untimed_store_def(supplier, materialized, session_key, store.agg_serde.clone());
    def.window_retention_ms = Some(retention_ms);
    def
}

/// Why the store's retention cannot be used (Kafka Streams' message).
pub(super) fn invalid_session_windows<MK, MV>(
    windows: SessionWindows,
    store: &str,
    materialized: &Materialized<MK, MV>,
) -> Option<String> {
    if materialized.has_supplier() {
        return Some("a session-windowed aggregation takes no key-value store supplier".to_string());
    }
    let retention = materialized.retention.map(millis)?;
    (retention < windows.least_retention_ms()).then(|| {
        format!(
            "The retention period of the session store {store} must be no smaller than the session inactivity gap plus the grace period. Got gap=[{}], grace=[{}], retention=[{retention}]",
            windows.inactivity_gap_ms(),
            windows.grace_ms()
        )
    })
}

/// The processor of a session-windowed aggregation (Kafka Streams' `KStreamSessionWindowAggregate`).
struct SessionAggregate<K, V, VA> {
    store: String,
    handle: Option<StoreHandle<Windowed<K>, VA>>,
    /// Whether the store was declared with caching (Kafka Streams' `Materialized` default: yes).
    caching: bool,
    /// The thread's cache budget, when caching is on and the budget is not 0.
    budget: Option<Arc<CacheBudget>>,
    /// The sessions' pending updates (`None`: a delete), by store key, readable by range.
    cache: CacheSlot<Windowed<K>, VA>,
    key_serde: Arc<dyn Serde<K>>,
    /// Tells an aggregate written as null (a reduce of a null first value), which deletes the session.
    agg_serde: Arc<dyn Serde<VA>>,
    add: StreamStep<K, V, VA>,
    merge: Merge<K, VA>,
    windows: SessionWindows,
    retention_ms: i64,
    /// The largest timestamp this processor has seen (-1 before the first).
    observed_stream_time: i64,
    /// The latest session end this processor wrote or deleted. Under exactly-once the store's writes wait
    /// for the commit, so the store's own observed time lags behind this one.
    written_end: i64,
}

impl<K: Data, V: Data, VA: Data> SessionAggregate<K, V, VA> {
    fn handle(&self) -> Result<StoreHandle<Windowed<K>, VA>, StreamsError> {
        self.handle.ok_or_else(|| StreamsError::Internal("session aggregation used before init".into()))
    }

    /// The key's bytes, as the store's keys begin.
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StreamsError> {
        let serialization =
            |source| StreamsError::Serialization { node: "(session store)".into(), target: self.store.clone(), source };
        Ok(to_bytes(&*self.key_serde, &self.store, key).map_err(serialization)?.unwrap_or_default())
    }

    /// The key's sessions that end at or after `earliest_end` and start at or before `latest_start`, by
    /// end, then start (Kafka Streams' `findSessions`), leaving out those past the store's retention: the
    /// store's, with the cached updates over them.
    fn find_sessions(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        key_bytes: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, VA)>, StreamsError> {
        let store = ctx.store_mut(self.handle()?)?;
        let observed = self.written_end.max(store.observed_stream_time().unwrap_or(-1));
        let earliest_end = earliest_end.max(observed.saturating_sub(self.retention_ms).saturating_add(1));
        let (from, to) = (
            suffix(Window { start: 0, end: earliest_end.max(0) }),
            suffix(Window { start: latest_start, end: i64::MAX }),
        );
        let keep = move |suffix: &[u8]| {
            let time = |at: usize| i64::from_be_bytes(suffix[at..at + 8].try_into().expect("eight bytes"));
            time(0) >= earliest_end && time(8) <= latest_start
        };
        let by_end = |session: &Windowed<K>| (session.window.end, session.window.start);
        let stored = store
            .range_of_key(key_bytes, &from, &to, keep)?
            .map(|entry| entry.map(|(session, value)| (by_end(&session), (session, value))))
            .collect::<Result<Vec<_>, StreamsError>>()?;
        let cached: Vec<_> = self.cache.read(|cache| {
            let cached = cache.range_of_key(key_bytes, &from, &to, keep);
            cached
                .map(|pending| (by_end(&pending.key), pending.value.clone().map(|value| (pending.key.clone(), value))))
                .collect()
        });
        Ok(overlay(stored, cached).into_iter().map(|(_, session)| session).collect())
    }

    /// Puts (`new`) or deletes a session: through the cache, which forwards it when it leaves, or to the
    /// store and downstream at once, as Kafka Streams forwards session results without a cache: with the
    /// session's end as their time and no headers.
    fn write(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        key_bytes: &[u8],
        session: Windowed<K>,
        change: Change<VA>,
        headers: &Headers,
    ) -> Result<(), StreamsError> {
        self.written_end = self.written_end.max(session.window.end);
        if let Some(budget) = self.budget.clone() {
            let store_key = [key_bytes, &suffix(session.window)].concat();
            let end = session.window.end;
            let update = (session, change.new, end, headers.clone());
            self.cache.with(|cache| cache.put(&budget, store_key, update));
            while let Some(evicted) = self.cache.with(|cache| cache.evict_if_over(&budget)) {
                self.write_through(ctx, evicted)?;
            }
            return Ok(());
        }
        let store = ctx.store_mut(self.handle()?)?;
        match &change.new {
            Some(value) => store.put(&session, value)?,
            None => {
                store.delete(&session)?;
            }
        }
        let timestamp = session.window.end;
        ctx.forward(Record { key: session, value: change, timestamp, headers: Headers::new() })
    }

    /// A cached update leaves the cache: to the store, then downstream as a change from the store's
    /// session, with the session's end as its time and the headers of the record that made it (Kafka
    /// Streams' `CachingSessionStore` and `SessionCacheFlushListener`). A delete of a session the store
    /// does not hold goes nowhere.
    fn write_through(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        pending: Pending<Windowed<K>, VA>,
    ) -> Result<(), StreamsError> {
        let store = ctx.store_mut(self.handle()?)?;
        let old = store.get(&pending.key)?;
        match (&pending.value, &old) {
            (None, None) => return Ok(()),
            (Some(value), _) => store.put(&pending.key, value)?,
            (None, Some(_)) => {
                store.delete(&pending.key)?;
            }
        }
        let timestamp = pending.key.window.end;
        let change = Change::new(pending.value, old);
        ctx.forward(Record { key: pending.key, value: change, timestamp, headers: pending.headers })
    }
}

/// A session's suffix in the store's keys: its end, then its start (Kafka's `SessionKeySchema`).
fn suffix(window: Window) -> Vec<u8> {
    [window.end.to_be_bytes(), window.start.to_be_bytes()].concat()
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>> for SessionAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        self.handle = Some(ctx.store_handle(&self.store)?);
        let budget = ctx.task.cache_budget.clone();
        self.budget = (self.caching && budget.enabled()).then_some(budget);
        if self.budget.is_some() && ctx.task.store_shared(&self.store) {
            self.cache.share(ctx.task, &self.store)?;
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        // Kafka Streams drops null keys only: a null value is aggregated (a count counts it).
        if self.key_serde.is_null(&record.key) {
            ctx.record_dropped("null key in a session-windowed aggregation");
            return Ok(());
        }
        let timestamp = record.timestamp;
        self.observed_stream_time = self.observed_stream_time.max(timestamp);
        let gap = self.windows.inactivity_gap_ms();
        let close_time = self.observed_stream_time.saturating_sub(self.windows.grace_ms()).saturating_sub(gap);
        let key_bytes = self.key_bytes(&record.key)?;
        let found =
            self.find_sessions(ctx, &key_bytes, timestamp.saturating_sub(gap), timestamp.saturating_add(gap))?;
        let own = Window { start: timestamp, end: timestamp };
        let mut merged_window = own;
        let mut merged = None;
        for (session, value) in &found {
            merged = Some((self.merge)(&record.key, merged, value.clone()));
            merged_window.start = merged_window.start.min(session.window.start);
            merged_window.end = merged_window.end.max(session.window.end);
        }
        if merged_window.end < close_time {
            ctx.record_late(&format!(
                "expired window [{},{}] timestamp=[{timestamp}] expiration=[{close_time}] streamTime=[{}]",
                merged_window.start, merged_window.end, self.observed_stream_time
            ));
            return Ok(());
        }
        if merged_window != own {
            for (session, value) in found {
                self.write(ctx, &key_bytes, session, Change::new(None, Some(value)), &record.headers)?;
            }
        }
        let aggregate = (self.add)(&record.key, record.value, merged);
        let session = Windowed::new(record.key, merged_window);
        // An aggregate the serde writes as null deletes the session, and a null goes downstream, as in
        // Kafka Streams.
        let new = (!self.agg_serde.is_null(&aggregate)).then_some(aggregate);
        self.write(ctx, &key_bytes, session, Change::new(new, None), &record.headers)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        let Some(budget) = self.budget.clone() else { return Ok(()) };
        for pending in self.cache.with(|cache| cache.drain(&budget)) {
            self.write_through(ctx, pending)?;
        }
        Ok(())
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        if let Some(budget) = &self.budget {
            self.cache.with(|cache| cache.clear(budget));
        }
        Ok(())
    }
}
