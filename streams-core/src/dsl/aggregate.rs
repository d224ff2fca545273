//! The aggregation processors behind `count`, `reduce` and `aggregate`, for grouped streams and grouped
//! tables. Each keeps `ValueAndTimestamp<VA>` per key in its store and forwards a [`Change`] with the new
//! and the old aggregate; the result's timestamp is the largest timestamp that contributed, as in
//! Kafka Streams. With the record cache on, updates wait in the cache and go to the store and
//! downstream when evicted or at commit (see [`super::cache`]).

use std::sync::Arc;

use super::cache::{CacheBudget, CacheSlot, Pending, RecordCache};
use super::change::Change;
use super::emit_final::EmitFinal;
use super::table_store::TableStore;
use super::Data;
use crate::processor::{Processor, ProcessorContext, StoreHandle};
use crate::serde::{to_bytes, Serde};
use crate::store::{ValueAndTimestamp, PUT_RETURN_CODE_NOT_PUT, PUT_RETURN_CODE_VALID_TO_UNDEFINED};
use crate::window::{TimeWindows, Window, Windowed};
use crate::{Record, StreamsError};

/// Where an aggregation's updates go: to the store and downstream at once, or through the record cache.
pub(crate) struct AggregateOutput<K, VA> {
    store: String,
    handle: Option<TableStore<K, VA>>,
    key_serde: Arc<dyn Serde<K>>,
    /// Whether the store was declared with caching (Kafka Streams' `Materialized` default: yes).
    caching: bool,
    /// The thread's cache budget, when caching is on and the budget is not 0.
    budget: Option<Arc<CacheBudget>>,
    cache: CacheSlot<K, VA>,
    /// Whether updates go downstream (not for a windowed aggregation that emits final results only,
    /// which reads them back from the store when windows close).
    forwards: bool,
}

/// The aggregate a key had: its value (`None`: no aggregate yet) and its timestamp.
type Current<VA> = (Option<VA>, Option<i64>);

impl<K: Data, VA: Data> AggregateOutput<K, VA> {
    pub(crate) fn new(store: String, key_serde: Arc<dyn Serde<K>>, caching: bool) -> Self {
        AggregateOutput {
            store,
            handle: None,
            key_serde,
            caching,
            budget: None,
            cache: CacheSlot::Own(RecordCache::default()),
            forwards: true,
        }
    }

    /// Writes updates to the store (through the cache) without forwarding them.
    pub(crate) fn silent(mut self) -> Self {
        self.forwards = false;
        self
    }

    /// Keeps the cache readable by key range ([`AggregateOutput::cached_range`]), for an aggregation that
    /// reads its store by range.
    pub(crate) fn ranged(mut self) -> Self {
        self.cache = CacheSlot::Own(RecordCache::sorted());
        self
    }

    /// The cached updates of one key, read as the store is by range (see [`RecordCache::range_of_key`]),
    /// each through `f`. Empty without the cache.
    pub(crate) fn cached_range_of_key<T>(
        &self,
        key: &[u8],
        from: &[u8],
        to: &[u8],
        keep: impl Fn(&[u8]) -> bool,
        f: impl FnMut(&Pending<K, VA>) -> T,
    ) -> Vec<T> {
        self.cache.read(|cache| cache.range_of_key(key, from, to, keep).map(f).collect())
    }

    /// The store's handle, once initialized (a timestamped store's: what windowed aggregations keep).
    pub(crate) fn store_handle(&self) -> Result<StoreHandle<K, ValueAndTimestamp<VA>>, StreamsError> {
        match self.handle()? {
            TableStore::Timestamped(handle) => Ok(handle),
            TableStore::Versioned(_) => Err(StreamsError::Internal(format!("`{}` is a versioned store", self.store))),
        }
    }

    pub(super) fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        let store = TableStore::find(ctx, &self.store)?;
        self.handle = Some(store);
        let budget = ctx.task.cache_budget.clone();
        // A versioned store is never cached, whatever `Materialized` said (Kafka Streams logs that it
        // ignores the setting).
        self.budget = (self.caching && !store.is_versioned() && budget.enabled()).then_some(budget);
        // Other nodes reach the store too (a cogroup's, a join's): they read what this one has pending.
        if self.budget.is_some() && ctx.task.store_shared(&self.store) {
            self.cache.share(ctx.task, &self.store)?;
        }
        Ok(())
    }

    fn handle(&self) -> Result<TableStore<K, VA>, StreamsError> {
        self.handle.ok_or_else(|| StreamsError::Internal("aggregate used before init".into()))
    }

    /// Whether the key serde writes `key` as null (a null key has no row).
    pub(super) fn is_null_key(&self, key: &K) -> bool {
        self.key_serde.is_null(key)
    }

    /// The key's bytes, when the cache is in use (it is keyed by them).
    pub(super) fn key_bytes(&self, key: &K) -> Result<Option<Vec<u8>>, StreamsError> {
        if self.budget.is_none() {
            return Ok(None);
        }
        let serialization =
            |source| StreamsError::Serialization { node: "(record cache)".into(), target: self.store.clone(), source };
        Ok(to_bytes(&*self.key_serde, &self.store, key).map_err(serialization)?.or(Some(Vec::new())))
    }

    /// The key's current aggregate: the cached update if there is one, else the store's.
    pub(super) fn current(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        key: &K,
        key_bytes: Option<&[u8]>,
    ) -> Result<Current<VA>, StreamsError> {
        let cached = key_bytes.and_then(|k| self.cache.read(|cache| cache.get(k).map(|(v, t)| (v.cloned(), t))));
        if let Some((value, timestamp)) = cached {
            return Ok((value, Some(timestamp)));
        }
        let stored = self.handle()?.get(ctx, key)?;
        Ok(stored.map_or((None, None), |s| (Some(s.value), Some(s.timestamp))))
    }

    /// One aggregation step for `record`: the key's current aggregate, `step` on it, then the update. The
    /// result's timestamp is the largest that contributed.
    pub(super) fn aggregate<V>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, V>,
        step: impl FnOnce(&K, V, Option<VA>) -> Option<VA>,
    ) -> Result<(), StreamsError> {
        let key_bytes = self.key_bytes(&record.key)?;
        let (old_value, old_timestamp) = self.current(ctx, &record.key, key_bytes.as_deref())?;
        let timestamp = old_timestamp.map_or(record.timestamp, |t| t.max(record.timestamp));
        let new_value = step(&record.key, record.value, old_value.clone());
        let update = Record { key: record.key, value: new_value, timestamp, headers: record.headers };
        self.update(ctx, key_bytes, update, old_value)
    }

    /// Records the key's new aggregate (`None` deletes it): through the cache, or at once.
    pub(super) fn update(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        key_bytes: Option<Vec<u8>>,
        record: Record<K, Option<VA>>,
        old: Option<VA>,
    ) -> Result<(), StreamsError> {
        match (&self.budget, key_bytes) {
            (Some(budget), Some(key_bytes)) => {
                let budget = budget.clone();
                let update = (record.key, record.value, record.timestamp, record.headers);
                self.cache.with(|cache| cache.put(&budget, key_bytes, update));
                while let Some(evicted) = self.cache.with(|cache| cache.evict_if_over(&budget)) {
                    self.write_through(ctx, evicted)?;
                }
                Ok(())
            }
            _ => {
                let written = self.write(ctx, &record.key, record.value.as_ref(), record.timestamp)?;
                if written == PUT_RETURN_CODE_NOT_PUT {
                    // Older than a versioned store's history retention: neither kept nor forwarded.
                    let reason =
                        format!("an update older than the history retention of the versioned store {}", self.store);
                    ctx.record_dropped(&reason);
                    return Ok(());
                }
                if !self.forwards {
                    return Ok(());
                }
                let is_latest = written == PUT_RETURN_CODE_VALID_TO_UNDEFINED;
                let change = Change::new(record.value, old).latest(is_latest);
                ctx.forward(Record {
                    key: record.key,
                    value: change,
                    timestamp: record.timestamp,
                    headers: record.headers,
                })
            }
        }
    }

    /// Writes to the store; returns what [`TableStore::put`] does.
    fn write(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        key: &K,
        value: Option<&VA>,
        timestamp: i64,
    ) -> Result<i64, StreamsError> {
        self.handle()?.put(ctx, key, value, timestamp)
    }

    /// A cached update leaves the cache: to the store, then downstream as a change from the store's value.
    /// (Only timestamped stores are cached, so the write is always taken as the newest.)
    /// A delete of a key the store does not hold goes nowhere, as in Kafka Streams' caching stores.
    fn write_through(
        &self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        pending: Pending<K, VA>,
    ) -> Result<(), StreamsError> {
        if !self.forwards {
            return self.write(ctx, &pending.key, pending.value.as_ref(), pending.timestamp).map(|_| ());
        }
        let old = self.handle()?.get(ctx, &pending.key)?.map(|s| s.value);
        if pending.value.is_none() && old.is_none() {
            return Ok(());
        }
        self.write(ctx, &pending.key, pending.value.as_ref(), pending.timestamp)?;
        let change = Change::new(pending.value, old);
        ctx.forward(Record { key: pending.key, value: change, timestamp: pending.timestamp, headers: pending.headers })
    }

    /// At commit: every cached update leaves the cache, oldest first.
    pub(super) fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        let Some(budget) = self.budget.clone() else { return Ok(()) };
        for pending in self.cache.with(|cache| cache.drain(&budget)) {
            self.write_through(ctx, pending)?;
        }
        Ok(())
    }

    pub(super) fn close(&mut self) {
        if let Some(budget) = &self.budget {
            self.cache.with(|cache| cache.clear(budget));
        }
    }
}

/// One aggregation step for a stream: `(key, value, old aggregate) -> new aggregate`.
pub(crate) type StreamStep<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// `count`'s step: one more.
pub(crate) fn count_step<K, V>() -> StreamStep<K, V, i64> {
    Arc::new(|_, _, old| old.unwrap_or(0) + 1)
}

/// `reduce`'s step: the first value is the start.
pub(crate) fn reduce_step<K, V: 'static>(reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> StreamStep<K, V, V> {
    Arc::new(move |_, value, old| match old {
        Some(aggregate) => reducer(aggregate, value),
        None => value,
    })
}

/// `aggregate`'s step: from `initializer()` when there is no aggregate yet.
pub(crate) fn aggregate_step<K, V, VA: 'static>(
    initializer: impl Fn() -> VA + Send + Sync + 'static,
    aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
) -> StreamStep<K, V, VA> {
    Arc::new(move |key, value, old| aggregator(key, value, old.unwrap_or_else(&initializer)))
}

/// One aggregation step for a table: `(key, change, old aggregate) -> new aggregate` (`None` deletes).
pub(crate) type TableStep<K, V, VA> = Arc<dyn Fn(&K, Change<V>, Option<VA>) -> Option<VA> + Send + Sync>;

/// `KGroupedStream::{count, reduce, aggregate}` (Kafka Streams' `KStreamAggregate` / `KStreamReduce`).
pub(crate) struct StreamAggregate<K, V, VA> {
    pub(crate) output: AggregateOutput<K, VA>,
    pub(crate) step: StreamStep<K, V, VA>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, K, Change<VA>> for StreamAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) || self.value_serde.as_ref().is_some_and(|s| s.is_null(&record.value)) {
            ctx.record_dropped("null key or value in an aggregation");
            return Ok(());
        }
        let step = &self.step;
        self.output.aggregate(ctx, record, |key, value, old| Some(step(key, value, old)))
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

/// `KGroupedTable::{count, reduce, aggregate}` (Kafka Streams' `KTableAggregate` / `KTableReduce`):
/// subtracts the old value, then adds the new one.
pub(crate) struct TableAggregate<K, V, VA> {
    pub(crate) output: AggregateOutput<K, VA>,
    pub(crate) step: TableStep<K, V, VA>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, Change<V>, K, Change<VA>> for TableAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) {
            ctx.record_dropped("null key in a table aggregation");
            return Ok(());
        }
        if record.value.new.is_none() && record.value.old.is_none() {
            // A row whose value became null on its way here (a `None` from `map_values`, read back as no
            // value): nothing to add or subtract. Kafka Streams' repartition map never sends one.
            return Ok(());
        }
        let step = &self.step;
        self.output.aggregate(ctx, record, |key, change, old| step(key, change, old))
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

/// `TimeWindowedKStream::{count, reduce, aggregate}` (Kafka Streams' `KStreamWindowAggregate`): each
/// record is folded into every window it falls in that is still open. The windows' stream time is the
/// processor's own, the largest timestamp it has seen (from -1 at each start, as in Kafka Streams); a
/// window is closed once its end is at or before that time minus the grace period, and a record for a
/// closed window is dropped for it and counted, once per window.
pub(crate) struct WindowAggregate<K, V, VA> {
    pub(crate) output: AggregateOutput<Windowed<K>, VA>,
    pub(crate) step: StreamStep<K, V, VA>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    /// Tells an aggregate written as null (a reduce of a null first value), which deletes the window.
    pub(crate) agg_serde: Arc<dyn Serde<VA>>,
    pub(crate) windows: TimeWindows,
    pub(crate) observed_stream_time: i64,
    /// With `EmitStrategy::on_window_close`: the output does not forward; closed windows are.
    pub(crate) emit_final: Option<EmitFinal>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>> for WindowAggregate<K, V, VA> {
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
        // Kafka Streams drops null keys only: a null value is aggregated (a count counts it).
        if self.key_serde.is_null(&record.key) {
            ctx.record_dropped("null key in a windowed aggregation");
            return Ok(());
        }
        self.observed_stream_time = self.observed_stream_time.max(record.timestamp);
        let close_time = self.observed_stream_time.saturating_sub(self.windows.grace_ms());
        if let Some(emit) = &mut self.emit_final
            && let Some(range) = emit.due(ctx, close_time)
        {
            // The cache's pending updates go to the store first (without forwarding them).
            self.output.flush(ctx)?;
            emit.emit(ctx, self.output.store_handle()?, range, close_time, &record.headers)?;
        }
        let (step, observed) = (&self.step, self.observed_stream_time);
        let open: Vec<Window> = self
            .windows
            .windows_for(record.timestamp)
            .filter(|window| {
                let late = window.end <= close_time;
                if late {
                    ctx.record_late(&format!(
                        "expired window [{},{}) timestamp=[{}] expiration=[{}] streamTime=[{observed}]",
                        window.start, window.end, record.timestamp, close_time
                    ));
                }
                !late
            })
            .collect();
        // The record's key, value and headers are cloned for every window but the last, which takes them.
        let last = open.len().saturating_sub(1);
        let Record { key, value, timestamp, headers } = record;
        let mut parts = Some((key, value, headers));
        for (i, window) in open.into_iter().enumerate() {
            let Some((key, value, headers)) = (if i == last { parts.take() } else { parts.clone() }) else {
                break;
            };
            let windowed = Record { key: Windowed::new(key, window), value, timestamp, headers };
            let agg_serde = &self.agg_serde;
            self.output.aggregate(ctx, windowed, |key, value, old| {
                Some(step(&key.key, value, old)).filter(|new| !agg_serde.is_null(new))
            })?;
        }
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}
