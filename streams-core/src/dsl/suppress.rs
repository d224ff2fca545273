//! `suppress` (KIP-328): a table's changes held back per key, then emitted when a window closes (its
//! final result) or when a key has waited long enough, within a buffer bounded by records or bytes.
//! The buffer is a store of its own, change-logged, so held-back changes survive a restart and a task
//! move; Kafka Streams' `KTableSuppressProcessorSupplier`.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::builder::{missing_serde, BuilderState};
use super::change::Change;
use super::ktable::{KTable, SendOldValues};
use super::Data;
use crate::processor::{Processor, ProcessorContext};
use crate::record::RecordPart;
use crate::store::{suppression_buffer_def, BufferedContext};
use crate::topology::processor_def;
use crate::window::{millis, Windowed};
use crate::{Record, StreamsError, TopologyError};

/// What to hold back and for how long (Kafka Streams' `Suppressed`): made by
/// [`until_window_closes`](Suppressed::until_window_closes) or
/// [`until_time_limit`](Suppressed::until_time_limit), given to [`KTable::suppress`].
pub struct Suppressed<K> {
    name: Option<String>,
    until: Until<K>,
    buffer: BufferConfig,
}

enum Until<K> {
    /// Each key's buffer time is its window's end; it leaves once stream time reaches that plus the
    /// window's grace (plus the gap, for sessions). Deletes are not emitted.
    WindowCloses(fn(&K) -> i64),
    /// Each key's buffer time is the timestamp of the record that first buffered it.
    TimeLimit(Duration),
}

impl<K> Suppressed<Windowed<K>> {
    /// Emits only the final result of each window, once stream time has passed its end by the grace
    /// period of the windowed aggregation above (Kafka Streams' `untilWindowCloses`). Windows whose
    /// final result is a delete emit nothing. The buffer must be strict, never emitting early: unbounded,
    /// or bounded and shutting down when full.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::dsl::{BufferConfig, StreamsBuilder, Suppressed, TimeWindows};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_millis(10), Duration::from_millis(5)))
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
    ///     .to_stream()
    ///     .map(|w, count| (w.key.clone(), count.unwrap_or_default()))
    ///     .to("final-counts");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let clicks = driver.input_topic::<String, String>("clicks");
    /// let counts = driver.output_topic::<String, i64>("final-counts");
    /// driver.pipe(&clicks, "ada".into(), "a".into(), 1)?;
    /// driver.pipe(&clicks, "ada".into(), "b".into(), 4)?;
    /// driver.pipe(&clicks, "bob".into(), "c".into(), 14)?; // window [0,10) still open: 14 < 10 + 5
    /// assert!(driver.read_key_values(&counts).is_empty());
    /// driver.pipe(&clicks, "bob".into(), "d".into(), 15)?; // closes it: one final count
    /// assert_eq!(driver.read_key_values(&counts), vec![("ada".to_string(), 2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn until_window_closes(buffer: StrictBufferConfig) -> Self {
        Suppressed { name: None, until: Until::WindowCloses(|key| key.window.end), buffer: buffer.0 }
    }
}

impl<K> Suppressed<K> {
    /// Holds each key's changes back until `time_to_wait` after the first of them (by record time,
    /// measured in stream time), then emits the latest (Kafka Streams' `untilTimeLimit`): rate-limits
    /// updates. Deletes are emitted too. An [`EagerBufferConfig`] emits the oldest keys early when the
    /// buffer is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::dsl::{BufferConfig, StreamsBuilder, Suppressed};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("prices")
    ///     .suppress(Suppressed::until_time_limit(Duration::from_millis(100), BufferConfig::max_records(1000)))
    ///     .to_stream()
    ///     .to("prices-limited");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let prices = driver.input_topic::<String, Option<i64>>("prices");
    /// let limited = driver.output_topic::<String, Option<i64>>("prices-limited");
    /// driver.pipe(&prices, "tea".into(), Some(150), 0)?;
    /// driver.pipe(&prices, "tea".into(), Some(160), 50)?;
    /// driver.pipe(&prices, "tea".into(), Some(170), 100)?; // 100 ms after the first: the latest goes out
    /// assert_eq!(driver.read_key_values(&limited), vec![("tea".to_string(), Some(170))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn until_time_limit(time_to_wait: Duration, buffer: impl Into<BufferConfig>) -> Self {
        Suppressed { name: None, until: Until::TimeLimit(time_to_wait), buffer: buffer.into() }
    }

    /// Names the suppression's processor; its buffer store is then `<name>-store`. (A name given with
    /// [`KTable::named`] does the same.)
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How large a suppression buffer may grow and what it does when full (Kafka Streams'
/// `Suppressed.BufferConfig`), and whether it is change-logged (by default it is, so that held-back
/// changes survive a restart). Made by [`unbounded`](BufferConfig::unbounded),
/// [`max_records`](BufferConfig::max_records) or [`max_bytes`](BufferConfig::max_bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: u64,
    max_bytes: u64,
    when_full: WhenFull,
    /// The changelog topic's config; `None`: not logged.
    logging: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    /// Emit the oldest keys early, before their time.
    EmitEarly,
    /// Fail the task (`StreamsException` in Kafka Streams).
    ShutDown,
}

/// A buffer that never emits early: unbounded, or failing its task when full. The only kind
/// [`Suppressed::until_window_closes`] takes, since it promises final results only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictBufferConfig(BufferConfig);

/// A bounded buffer that emits its oldest keys early when full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EagerBufferConfig(BufferConfig);

impl BufferConfig {
    /// No bound on records or bytes (Kafka Streams' `unbounded`): may use all memory.
    pub fn unbounded() -> StrictBufferConfig {
        StrictBufferConfig(BufferConfig {
            max_records: i64::MAX as u64,
            max_bytes: i64::MAX as u64,
            when_full: WhenFull::ShutDown,
            logging: Some(BTreeMap::new()),
        })
    }

    /// At most `records` keys, emitting the oldest early beyond that.
    pub fn max_records(records: u64) -> EagerBufferConfig {
        EagerBufferConfig(BufferConfig { max_records: records, ..Self::eager_unbounded() })
    }

    /// At most `bytes` bytes, by Kafka Streams' estimate (key, values, record context), emitting the
    /// oldest keys early beyond that.
    pub fn max_bytes(bytes: u64) -> EagerBufferConfig {
        EagerBufferConfig(BufferConfig { max_bytes: bytes, ..Self::eager_unbounded() })
    }

    fn eager_unbounded() -> BufferConfig {
        BufferConfig { when_full: WhenFull::EmitEarly, ..Self::unbounded().0 }
    }
}

impl From<StrictBufferConfig> for BufferConfig {
    fn from(config: StrictBufferConfig) -> Self {
        config.0
    }
}

impl From<EagerBufferConfig> for BufferConfig {
    fn from(config: EagerBufferConfig) -> Self {
        config.0
    }
}

/// The builder methods both kinds of buffer share (Kafka Streams' `BufferConfig<BC>`).
macro_rules! buffer_config_methods {
    ($kind:ident) => {
        impl $kind {
            /// Bounds the buffer to `records` keys, keeping what it does when full.
            pub fn with_max_records(mut self, records: u64) -> Self {
                self.0.max_records = records;
                self
            }

            /// Bounds the buffer to `bytes` bytes, keeping what it does when full.
            pub fn with_max_bytes(mut self, bytes: u64) -> Self {
                self.0.max_bytes = bytes;
                self
            }

            /// Removes both bounds.
            pub fn with_no_bound(self) -> StrictBufferConfig {
                StrictBufferConfig(BufferConfig {
                    max_records: i64::MAX as u64,
                    max_bytes: i64::MAX as u64,
                    when_full: WhenFull::ShutDown,
                    ..self.0
                })
            }

            /// When full, fails the task ("buffer exceeded its max capacity") rather than emit early.
            pub fn shut_down_when_full(self) -> StrictBufferConfig {
                StrictBufferConfig(BufferConfig { when_full: WhenFull::ShutDown, ..self.0 })
            }

            /// When full, emits the oldest keys early.
            pub fn emit_early_when_full(self) -> EagerBufferConfig {
                EagerBufferConfig(BufferConfig { when_full: WhenFull::EmitEarly, ..self.0 })
            }

            /// Keeps the buffer in memory only: held-back changes are lost with the task's state.
            pub fn with_logging_disabled(mut self) -> Self {
                self.0.logging = None;
                self
            }

            /// Logs the buffer to a changelog topic created with `config` (the default, with no config).
            pub fn with_logging_enabled(mut self, config: BTreeMap<String, String>) -> Self {
                self.0.logging = Some(config);
                self
            }
        }
    };
}

buffer_config_methods!(StrictBufferConfig);
buffer_config_methods!(EagerBufferConfig);

/// Processor names of `suppress`: `KTABLE-SUPPRESS-0000000004`, its store
/// `KTABLE-SUPPRESS-STATE-STORE-0000000005`.
const SUPPRESS: &str = "KTABLE-SUPPRESS-";

impl<K: Data, V: Data> KTable<K, V> {
    /// Holds this table's changes back as `suppressed` says (Kafka Streams' `suppress`): final results
    /// of windows, or at most one update per key per time limit. The result is a table without a store
    /// of its own; its buffer is a store named `KTABLE-SUPPRESS-STATE-STORE-<n>` (or `<name>-store`),
    /// logged to `<application.id>-<store>-changelog` in Kafka Streams' layout.
    ///
    /// [`Suppressed::until_window_closes`] needs a windowed aggregation above this table, reached through
    /// table and stream operators; the topology fails to build without one, as in Kafka Streams.
    ///
    /// See [`Suppressed::until_window_closes`] and [`Suppressed::until_time_limit`] for examples.
    pub fn suppress(&self, suppressed: Suppressed<K>) -> KTable<K, V> {
        let Suppressed { name, until, buffer } = suppressed;
        let mut b = self.builder.borrow_mut();
        let given = name.or_else(|| self.next_name.clone());
        let name = match &given {
            Some(name) => name.clone(),
            None => b.new_name(SUPPRESS),
        };
        let (buffer_time, wait_ms, drop_deletes): (BufferTime<K>, i64, bool) = match until {
            Until::WindowCloses(window_end) => match window_close_after(&b, &self.node) {
                Ok(grace) => (BufferTime::WindowEnd(window_end), grace, true),
                Err(chain) => {
                    let reason = format!("Window close time is only defined for windowed computations. Got [{chain}].");
                    b.topology.deferred.push(TopologyError::InvalidSuppress { node: name.clone(), reason });
                    return self.suppressed_table(&name);
                }
            },
            Until::TimeLimit(limit) => (BufferTime::RecordTime, millis(limit), false),
        };
        if self.versioned.is_some() {
            // Kafka Streams' message: a buffer of each key's latest change cannot keep a history.
            let reason = "Invalid topology: suppress() is only supported for non-versioned KTables (note that version semantics might be inherited from upstream)";
            b.topology.deferred.push(TopologyError::InvalidSuppress { node: name.clone(), reason: reason.into() });
            return self.suppressed_table(&name);
        }
        // A named suppression's store is named after it; a generated one takes the next number.
        let store = match given {
            Some(_) => format!("{name}-store"),
            None => b.new_store_name(SUPPRESS),
        };
        let (Some(key_serde), Some(value_serde)) = (self.key_serde.clone(), self.value_serde.clone()) else {
            let target = format!("the suppression buffer {store}");
            b.topology.deferred.push(missing_serde::<K, V>(name.clone(), target, RecordPart::KeyOrValue));
            return self.suppressed_table(&name);
        };
        // The buffer keeps the value each key had before it was buffered, so it needs old values.
        self.old_values.enable(true);
        let settings = SuppressSettings {
            store: store.clone(),
            buffer_time,
            wait_ms,
            max_records: buffer.max_records,
            max_bytes: buffer.max_bytes,
            when_full: buffer.when_full,
            drop_deletes,
        };
        let supplier =
            move || TableSuppress::<K, V> { settings: settings.clone(), observed_stream_time: -1, _types: PhantomData };
        b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
        b.topology.add_store_deferred(suppression_buffer_def(&store, key_serde, value_serde, buffer.logging), &name);
        drop(b);
        self.suppressed_table(&name)
    }

    fn suppressed_table(&self, name: &str) -> KTable<K, V> {
        KTable {
            builder: self.builder.clone(),
            node: name.to_string(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: None,
            next_name: None,
            old_values: Arc::new(SendOldValues::below(&self.old_values)),
            // A join cannot look up a suppressed table yet (Kafka Streams reads the buffer, then the
            // table above).
            getter: None,
            versioned: None,
        }
    }
}

/// How long after a window's end its result is final, for the windowed aggregation above `node`: Kafka
/// Streams' `findAndVerifyWindowGrace`, the largest over all parents, each of which must lead to one.
/// The chain of nodes searched when one does not.
fn window_close_after(b: &BuilderState, node: &str) -> Result<i64, String> {
    if let Some(&after) = b.window_close_after.get(node) {
        return Ok(after);
    }
    let parents = b.topology.nodes.iter().find(|n| n.name == node).map(|n| n.parents.as_slice()).unwrap_or(&[]);
    if parents.is_empty() {
        return Err(node.to_string());
    }
    let mut after = -1;
    for parent in parents {
        after = after.max(window_close_after(b, parent).map_err(|chain| format!("{chain}->{node}"))?);
    }
    Ok(after)
}

/// What a key's buffer time is.
enum BufferTime<K> {
    WindowEnd(fn(&K) -> i64),
    RecordTime,
}

impl<K> Clone for BufferTime<K> {
    fn clone(&self) -> Self {
        match self {
            BufferTime::WindowEnd(end) => BufferTime::WindowEnd(*end),
            BufferTime::RecordTime => BufferTime::RecordTime,
        }
    }
}

struct SuppressSettings<K> {
    store: String,
    buffer_time: BufferTime<K>,
    /// How far stream time must pass a buffer time before the key leaves.
    wait_ms: i64,
    max_records: u64,
    max_bytes: u64,
    when_full: WhenFull,
    /// Whether deletes leaving the buffer are dropped (final results: a window that ends empty).
    drop_deletes: bool,
}

impl<K> Clone for SuppressSettings<K> {
    fn clone(&self) -> Self {
        SuppressSettings { store: self.store.clone(), buffer_time: self.buffer_time.clone(), ..*self }
    }
}

/// `KTABLE-SUPPRESS`: buffers each change, then emits what has expired and, when the buffer is over its
/// bounds, the oldest (or fails). Stream time is this processor's own, from the records it has seen
/// since the task opened, as in Kafka Streams: after a restart nothing leaves the restored buffer until
/// a record arrives.
struct TableSuppress<K, V> {
    settings: SuppressSettings<K>,
    observed_stream_time: i64,
    _types: PhantomData<fn() -> V>,
}

impl<K: Data, V: Data> Processor<K, Change<V>, K, Change<V>> for TableSuppress<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let s = &self.settings;
        self.observed_stream_time = self.observed_stream_time.max(record.timestamp);
        let time = match &s.buffer_time {
            BufferTime::WindowEnd(end) => end(&record.key),
            BufferTime::RecordTime => record.timestamp,
        };
        let context = BufferedContext::of(ctx.record_metadata(), record.timestamp, record.headers);
        let buffer = ctx.suppression_buffer::<K, V>(&s.store)?;
        buffer.put(time, &record.key, record.value.new.as_ref(), record.value.old.as_ref(), context)?;

        let expiry = self.observed_stream_time.saturating_sub(s.wait_ms);
        while ctx.suppression_buffer::<K, V>(&s.store)?.min_timestamp()? <= expiry {
            if !self.emit_first(ctx)? {
                break;
            }
        }
        let over = |ctx: &mut ProcessorContext<'_, K, Change<V>>| -> Result<Option<(u64, u64)>, StreamsError> {
            let buffer = ctx.suppression_buffer::<K, V>(&s.store)?;
            let (records, bytes) = (buffer.num_records()?, buffer.size_bytes()?);
            Ok((records > s.max_records || bytes > s.max_bytes).then_some((records, bytes)))
        };
        while let Some((records, bytes)) = over(ctx)? {
            match s.when_full {
                WhenFull::EmitEarly => {
                    if !self.emit_first(ctx)? {
                        break;
                    }
                }
                WhenFull::ShutDown => {
                    let message = format!(
                        "{} buffer exceeded its max capacity. Currently [{records}/{}] records and [{bytes}/{}] bytes.",
                        ctx.node_name(),
                        s.max_records,
                        s.max_bytes
                    );
                    return Err(ctx.error(message));
                }
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data> TableSuppress<K, V> {
    /// Takes the oldest key out of the buffer and forwards its latest change with the timestamp,
    /// headers and record metadata it was buffered with; a delete is dropped when only final results
    /// are wanted. False when the buffer was empty (a stream time of `i64::MAX` expires even an empty
    /// buffer's minimum: the loops above stop on this).
    fn emit_first(&self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<bool, StreamsError> {
        let Some(eviction) = ctx.suppression_buffer::<K, V>(&self.settings.store)?.evict_first()? else {
            return Ok(false);
        };
        if eviction.new.is_none() && self.settings.drop_deletes {
            return Ok(true);
        }
        let metadata = eviction.context.metadata();
        let BufferedContext { timestamp, headers, .. } = eviction.context;
        let change = Change::new(eviction.new, eviction.old);
        ctx.forward_from(metadata, Record { key: eviction.key, value: change, timestamp, headers })?;
        Ok(true)
    }
}
