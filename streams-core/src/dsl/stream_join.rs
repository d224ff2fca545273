//! Stream-stream joins (Kafka Streams' `KStreamImplJoin` and `KStreamKStreamJoin`): records of two
//! streams with the same key and timestamps close enough ([`JoinWindows`]) are joined.
//!
//! Each side's records pass a `KSTREAM-WINDOWED` node that keeps them in that side's window store
//! (duplicates retained, for `before + after + grace`), then a join node that looks for partners in
//! the other side's store. A left or outer join keeps each record that found no partner in a shared
//! store, keyed by time, side and key, as Kafka Streams does since KIP-633, and emits it joined with
//! `None` only once stream time has passed its window by the grace period, unless a partner arrives
//! first: no spurious `None` results.

use std::sync::{Arc, Mutex};

use super::builder::pick_or_default;
use super::options::StreamJoined;
use super::repartition::{add_repartition, RepartitionNames};
use super::{Data, KStream};
use crate::processor::{Processor, ProcessorContext, StoreHandle};
use crate::serde::{DefaultSerde, Serde, SerdeError};
use crate::store::{join_window_store_def, logged, outer_join_store_def, Stores, WindowBytesStoreSupplier};
use crate::sync::LockUnpoisoned;
use crate::topology::processor_def;
use crate::window::JoinWindows;
use crate::{Record, StreamsError, TopologyError};

/// A stream-stream joiner, both sides optional; `None`: no result for that pair (an inner join answers
/// pairs only, a left join this stream's records).
type Joiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Which records a join answers without a partner.
#[derive(Clone, Copy, PartialEq)]
enum Outer {
    /// Neither side's (an inner join).
    None,
    /// This stream's (a left join).
    Left,
    /// Both streams' (an outer join).
    Both,
}

impl<K: Data + DefaultSerde, V: Data + DefaultSerde> KStream<K, V> {
    /// Joins each record with the records of `other` with the same key whose timestamps are within
    /// `windows` of it (Kafka Streams' `KStream#join(KStream, ValueJoiner, JoinWindows)`): every pair
    /// gives `joiner(value, other value)`, stamped with the later of the two timestamps. Records with a
    /// null key or value are dropped. Both streams must be co-partitioned; a re-keyed one is
    /// repartitioned first. (Named `join_stream` as Rust has no overloading: `join` takes a table.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::dsl::{JoinWindows, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let payments = builder.stream::<String, i64>("payments");
    /// builder
    ///     .stream::<String, String>("orders")
    ///     .join_stream(&payments, |item, cents| format!("{item} paid {cents}"), JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(60)))
    ///     .to("paid-orders");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (orders, paid) = (driver.input_topic::<String, String>("orders"), driver.input_topic::<String, i64>("payments"));
    /// driver.pipe(&orders, "o1".into(), "tea".into(), 0)?;
    /// driver.pipe(&paid, "o1".into(), 350, 30_000)?; // within a minute: joined
    /// driver.pipe(&paid, "o1".into(), 99, 90_000)?; // too late
    /// let out = driver.output_topic::<String, String>("paid-orders");
    /// assert_eq!(driver.read_key_values(&out), vec![("o1".into(), "tea paid 350".into())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_stream<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.join_stream_with(other, joiner, windows, StreamJoined::default())
    }

    /// [`join_stream`](Self::join_stream) with names, serdes and logging (Kafka Streams' `StreamJoined`).
    pub fn join_stream_with<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v?, o?)));
        self.stream_join(other, joiner, windows, joined, Outer::None)
    }

    /// Joins as [`join_stream`](Self::join_stream), and answers each record of this stream that finds
    /// no partner with `joiner(value, None)`, once its window has closed (stream time past its timestamp
    /// plus `after` plus the grace period), so that a partner arriving in time leaves no such result
    /// behind (Kafka Streams' `leftJoin`, KIP-633). A record with a null key and a value is answered at
    /// once.
    pub fn left_join_stream<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.left_join_stream_with(other, joiner, windows, StreamJoined::default())
    }

    /// [`left_join_stream`](Self::left_join_stream) with names, serdes and logging.
    pub fn left_join_stream_with<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        let joiner: Joiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v?, o)));
        self.stream_join(other, joiner, windows, joined, Outer::Left)
    }

    /// Joins as [`join_stream`](Self::join_stream), and answers each record of either stream that
    /// finds no partner, once its window has closed: `joiner(Some(value), None)` or
    /// `joiner(None, Some(other value))` (Kafka Streams' `outerJoin`, KIP-633).
    pub fn outer_join_stream<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.outer_join_stream_with(other, joiner, windows, StreamJoined::default())
    }

    /// [`outer_join_stream`](Self::outer_join_stream) with names, serdes and logging.
    pub fn outer_join_stream_with<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        self.stream_join(other, Arc::new(move |v, o| Some(joiner(v, o))), windows, joined, Outer::Both)
    }

    /// Names, stores and nodes as Kafka Streams' `KStreamImpl.doJoin` and `KStreamImplJoin.join` make
    /// them: a re-keyed side's repartition (`<name>-left`/`-right`, else after the side's node), the
    /// two `KSTREAM-WINDOWED-` nodes, the two join nodes (`KSTREAM-JOINTHIS-`/`-OUTERTHIS-` and
    /// `KSTREAM-JOINOTHER-`/`-OUTEROTHER-`, their generated names always used up), `KSTREAM-MERGE-`; the
    /// stores `<join node>-store` (or `<store name>-this-join-store`, ...) and, for a left or outer join,
    /// `KSTREAM-OUTERSHARED-…-store`.
    fn stream_join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: Joiner<V, VO, VR>,
        windows: JoinWindows,
        joined: StreamJoined<K, V, VO>,
        outer: Outer,
    ) -> KStream<K, VR> {
        let mut b = self.builder.borrow_mut();
        let key_serde = pick_or_default(joined.key_serde.clone(), &self.key_serde);
        let value_serde = pick_or_default(joined.value_serde.clone(), &self.value_serde);
        let other_serde = pick_or_default(joined.other_value_serde.clone(), &other.value_serde);
        let name = joined.name.clone();
        let mut this_parent = self.node.clone();
        if self.repartition_required {
            let base = name.as_ref().map_or_else(|| self.node.clone(), |n| format!("{n}-left"));
            let names = RepartitionNames::for_stream(&mut b, &base);
            this_parent =
                add_repartition(&mut b, &this_parent, names, key_serde.clone(), value_serde.clone(), None, None);
        }
        let mut other_parent = other.node.clone();
        if other.repartition_required {
            let base = name.as_ref().map_or_else(|| other.node.clone(), |n| format!("{n}-right"));
            let names = RepartitionNames::for_stream(&mut b, &base);
            other_parent =
                add_repartition(&mut b, &other_parent, names, key_serde.clone(), other_serde.clone(), None, None);
        }
        let (left_outer, right_outer) = (outer != Outer::None, outer == Outer::Both);
        let this_suffix = if right_outer { "-outer-this-join" } else { "-this-join" };
        let other_suffix = if left_outer { "-outer-other-join" } else { "-other-join" };
        let named = |suffix: &str| name.as_ref().map(|n| format!("{n}{suffix}"));
        let this_windowed = b.name_or(named("-this-windowed"), "KSTREAM-WINDOWED-");
        let other_windowed = b.name_or(named("-other-windowed"), "KSTREAM-WINDOWED-");
        let this_prefix = if right_outer { "KSTREAM-OUTERTHIS-" } else { "KSTREAM-JOINTHIS-" };
        let this_generated = b.new_name(this_prefix);
        let other_generated = b.new_name(if left_outer { "KSTREAM-OUTEROTHER-" } else { "KSTREAM-JOINOTHER-" });
        let this_name = named(this_suffix).unwrap_or_else(|| this_generated.clone());
        let other_name = named(other_suffix).unwrap_or_else(|| other_generated.clone());
        let merge = b.name_or(named("-merge"), "KSTREAM-MERGE-");

        let store = |suffix: &str, generated: &str| match &joined.store_name {
            Some(base) => format!("{base}{suffix}-store"),
            None => format!("{generated}-store"),
        };
        let (this_supplier, other_supplier) = (&joined.this_store_supplier, &joined.other_store_supplier);
        let this_store = this_supplier.as_ref().map_or_else(|| store(this_suffix, &this_generated), |s| s.name.clone());
        let other_store =
            other_supplier.as_ref().map_or_else(|| store(other_suffix, &other_generated), |s| s.name.clone());
        let outer_store = left_outer.then(|| {
            let suffix = if right_outer { "-outer-shared-join" } else { "-left-shared-join" };
            match this_supplier.as_ref().filter(|s| !s.name.is_empty()) {
                Some(supplier) => format!("{}{suffix}-store", supplier.name),
                None => store(suffix, &format!("KSTREAM-OUTERSHARED-{}", &this_generated[this_prefix.len()..])),
            }
        });

        let (size, retention) = (windows.size_ms(), windows.retention_ms());
        for supplier in [this_supplier, other_supplier].into_iter().flatten() {
            if let Err(e) = check_join_store_supplier(supplier, size, retention) {
                b.topology.deferred.push(e);
            }
        }
        if let (Some(this), Some(other)) = (this_supplier, other_supplier)
            && this.name == other.name
        {
            b.topology.deferred.push(TopologyError::InvalidStore {
                store: this.name.clone(),
                reason: "Both StoreSuppliers have the same name.  StoreSuppliers must provide unique names".into(),
            });
        }
        let logging = joined.logging.clone();
        let (keys, this_store_for_node) = (key_serde.clone(), this_store.clone());
        b.topology.add_node_deferred(processor_def(&this_windowed, vec![this_parent], move || JoinWindow::<K, V> {
            store: this_store_for_node.clone(),
            key_serde: keys.clone(),
            _value: std::marker::PhantomData,
        }));
        let (keys, other_store_for_node) = (key_serde.clone(), other_store.clone());
        b.topology.add_node_deferred(processor_def(&other_windowed, vec![other_parent], move || JoinWindow::<K, VO> {
            store: other_store_for_node.clone(),
            key_serde: keys.clone(),
            _value: std::marker::PhantomData,
        }));

        let tracker = format!("the stream time of the join {merge}");
        let this_span = JoinSpan { windows, before: windows.before_ms(), after: windows.after_ms() };
        let this_side = JoinSide::<K, V, VO, V, VO, VR> {
            other_store: other_store.clone(),
            outer_store: outer_store.clone(),
            outer_handle: None,
            span: this_span,
            answers_alone: left_outer,
            this_is_left: true,
            joiner: joiner.clone(),
            wrap: LeftOrRight::Left,
            this_of: LeftOrRight::left,
            other_of: LeftOrRight::right,
            tracker_name: tracker.clone(),
            tracker: None,
            key_serde: key_serde.clone(),
            value_serde: value_serde.clone(),
        };
        b.topology.add_node_deferred(processor_def(&this_name, vec![this_windowed.clone()], move || this_side.clone()));
        let reverse: Joiner<VO, V, VR> = Arc::new(move |o, v| joiner(v, o));
        let other_side = JoinSide::<K, VO, V, V, VO, VR> {
            other_store: this_store.clone(),
            outer_store: outer_store.clone(),
            outer_handle: None,
            span: JoinSpan { windows, before: windows.after_ms(), after: windows.before_ms() },
            answers_alone: right_outer,
            this_is_left: false,
            joiner: reverse,
            wrap: LeftOrRight::Right,
            this_of: LeftOrRight::right,
            other_of: LeftOrRight::left,
            tracker_name: tracker,
            tracker: None,
            key_serde: key_serde.clone(),
            value_serde: other_serde.clone(),
        };
        b.topology
            .add_node_deferred(processor_def(&other_name, vec![other_windowed.clone()], move || other_side.clone()));
        b.topology.add_node_deferred(processor_def::<K, VR, K, VR, _>(
            &merge,
            vec![this_name.clone(), other_name.clone()],
            || PassThrough,
        ));

        let this_def = match this_supplier {
            Some(supplier) => supplied_join_store_def(supplier, key_serde.clone(), value_serde.clone(), &logging),
            None => {
                join_window_store_def(&this_store, size, retention, key_serde.clone(), value_serde.clone(), &logging)
            }
        };
        b.topology.add_store_deferred(this_def, &this_windowed);
        b.connect_stores(&other_name, &[this_store.as_str()]);
        let other_def = match other_supplier {
            Some(supplier) => supplied_join_store_def(supplier, key_serde.clone(), other_serde.clone(), &logging),
            None => {
                join_window_store_def(&other_store, size, retention, key_serde.clone(), other_serde.clone(), &logging)
            }
        };
        b.topology.add_store_deferred(other_def, &other_windowed);
        b.connect_stores(&this_name, &[other_store.as_str()]);
        if let Some(outer_store) = &outer_store {
            let side_keys: Arc<dyn Serde<SideKey<K>>> = Arc::new(SideKeySerde(key_serde.clone()));
            let values: Arc<dyn Serde<Vec<LeftOrRight<V, VO>>>> =
                Arc::new(LeftOrRightListSerde(value_serde.clone(), other_serde.clone()));
            // Of this side's supplied kind, as in Kafka Streams; else the DSL's default kind.
            let persistent = this_supplier.as_ref().map(|s| s.persistent);
            let def = outer_join_store_def(outer_store, side_keys, values, logging, persistent);
            b.topology.add_store_deferred(def, &this_name);
            b.connect_stores(&other_name, &[outer_store.as_str()]);
        }
        KStream::new(self.builder.clone(), merge, Some(key_serde), None, false)
    }
}

/// Kafka Streams' `KStreamImplJoin.assertWindowSettings`: a side's supplied store keeps duplicates and
/// has the join windows' size and retention (size plus grace).
fn check_join_store_supplier(
    supplier: &WindowBytesStoreSupplier,
    size: i64,
    retention: i64,
) -> Result<(), TopologyError> {
    let reason = if !supplier.retain_duplicates {
        "The StoreSupplier must set retainDuplicates=true, found retainDuplicates=false".to_string()
    } else if supplier.window_size_ms != size || supplier.retention_ms != retention {
        format!(
            "Window settings mismatch. The store's window size {}ms and retention {}ms must match the join windows' size {size}ms and size plus grace {retention}ms",
            supplier.window_size_ms, supplier.retention_ms
        )
    } else {
        return Ok(());
    };
    Err(TopologyError::InvalidStore { store: supplier.name.clone(), reason })
}

/// A side's window store from the user's supplier: a window store of duplicates as the supplier makes
/// it, logged as `StreamJoined` says (the window stores' `compact,delete` changelog, as Kafka Streams'
/// `Stores.windowStoreBuilder` gives a supplied store).
fn supplied_join_store_def<K: Data, V: Data>(
    supplier: &WindowBytesStoreSupplier,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    logging: &Option<std::collections::BTreeMap<String, String>>,
) -> crate::store::StoreDef {
    logged(Stores::window_store_builder(supplier.clone(), key_serde, value_serde), logging.clone()).into_def()
}

/// `KSTREAM-WINDOWED`: passes each record on, then keeps it (with a key) in its side's window store
/// (Kafka Streams' `KStreamJoinWindow`).
struct JoinWindow<K, V> {
    store: String,
    key_serde: Arc<dyn Serde<K>>,
    _value: std::marker::PhantomData<fn() -> V>,
}

impl<K: Data, V: Data> Processor<K, V, K, V> for JoinWindow<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) {
            return ctx.forward(record);
        }
        let (key, value, timestamp) = (record.key.clone(), record.value.clone(), record.timestamp);
        ctx.forward(record)?;
        ctx.window_store::<K, V>(&self.store)?.put(&key, &value, timestamp)
    }
}

/// How far one side's record reaches into the other side's store, and the windows themselves.
#[derive(Clone, Copy)]
struct JoinSpan {
    windows: JoinWindows,
    before: i64,
    after: i64,
}

/// The stream time both sides of a join share (Kafka Streams' `TimeTracker`): the largest timestamp
/// either side has seen, the earliest timestamp waiting in the outer store, and when the outer store
/// may next be looked at (wall clock).
#[derive(Debug)]
struct TimeTracker {
    stream_time: i64,
    min_time: i64,
    next_time_to_emit: i64,
}

impl Default for TimeTracker {
    fn default() -> Self {
        TimeTracker { stream_time: -1, min_time: i64::MAX, next_time_to_emit: 0 }
    }
}

/// One side's join node (Kafka Streams' `KStreamKStreamJoinLeftSide` / `RightSide`): `V` is this side's
/// values, `VO` the other's; `VL`, `VR` the left and right stream's, as the outer store holds them.
struct JoinSide<K, V, VO, VL, VR, VOut> {
    other_store: String,
    outer_store: Option<String>,
    outer_handle: Option<StoreHandle<SideKey<K>, Vec<LeftOrRight<VL, VR>>>>,
    span: JoinSpan,
    /// Whether this side's records without a partner are answered (a left join's left side, an outer
    /// join's sides).
    answers_alone: bool,
    this_is_left: bool,
    /// `(this value, other value)`.
    joiner: Joiner<V, VO, VOut>,
    wrap: fn(V) -> LeftOrRight<VL, VR>,
    this_of: fn(&LeftOrRight<VL, VR>) -> Option<&V>,
    other_of: fn(&LeftOrRight<VL, VR>) -> Option<&VO>,
    tracker_name: String,
    tracker: Option<Arc<Mutex<TimeTracker>>>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V, VO, VL, VR, VOut> Clone for JoinSide<K, V, VO, VL, VR, VOut> {
    fn clone(&self) -> Self {
        JoinSide {
            other_store: self.other_store.clone(),
            outer_store: self.outer_store.clone(),
            outer_handle: None,
            span: self.span,
            answers_alone: self.answers_alone,
            this_is_left: self.this_is_left,
            joiner: self.joiner.clone(),
            wrap: self.wrap,
            this_of: self.this_of,
            other_of: self.other_of,
            tracker_name: self.tracker_name.clone(),
            tracker: None,
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: Data, V: Data, VO: Data, VL: Data, VR: Data, VOut: Data> JoinSide<K, V, VO, VL, VR, VOut> {
    fn tracker(&self) -> Result<&Arc<Mutex<TimeTracker>>, StreamsError> {
        self.tracker.as_ref().ok_or_else(|| StreamsError::Internal("a stream-stream join before its init".into()))
    }

    /// Emits the records in the outer store whose window has closed, joined with nothing, oldest first,
    /// and removes them (Kafka Streams' `emitNonJoinedOuterRecords`). Looks at most once per
    /// `__emit.interval.ms.kstreams.outer.join.spurious.results.fix__` of wall-clock time, and only when
    /// a record might be due.
    fn emit_non_joined(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VOut>,
        handle: StoreHandle<SideKey<K>, Vec<LeftOrRight<VL, VR>>>,
        headers: &crate::record::Headers,
    ) -> Result<(), StreamsError> {
        let tracker = self.tracker()?.clone();
        let mut time = tracker.lock_unpoisoned();
        let grace = self.span.windows.grace_ms();
        // Wrapping, as Java's `long` sum in Kafka Streams: with no record waiting since the start (the
        // earliest time still `i64::MAX`) the sum is negative and the store is looked at, so that records
        // restored into it after a restart are found and emitted.
        if time.min_time.wrapping_add(self.span.after).wrapping_add(grace) >= time.stream_time {
            return Ok(());
        }
        let now = ctx.wall_clock_time_ms();
        if now < time.next_time_to_emit {
            return Ok(());
        }
        time.next_time_to_emit = now.saturating_add(ctx.task.outer_join_emit_interval_ms);
        time.min_time = i64::MAX;
        let entries: Vec<(SideKey<K>, Vec<LeftOrRight<VL, VR>>)> =
            ctx.store_mut(handle)?.all()?.collect::<Result<_, StreamsError>>()?;
        let (mut left_open, mut right_open) = (false, false);
        let mut emitted = Vec::new();
        'entries: for (side_key, values) in entries {
            let mut any = false;
            for value in values {
                time.min_time = side_key.timestamp;
                if left_open && right_open {
                    break 'entries;
                }
                // A left record reaches `after` forward; a right one `before` back.
                let reach = if side_key.left { self.span.windows.after_ms() } else { self.span.windows.before_ms() };
                if time.min_time.saturating_add(reach).saturating_add(grace) >= time.stream_time {
                    if side_key.left {
                        left_open = true;
                    } else {
                        right_open = true;
                    }
                    continue;
                }
                if let Some(joined) = (self.joiner)((self.this_of)(&value), (self.other_of)(&value)) {
                    let key = side_key.key.clone();
                    emitted.push(Record {
                        key,
                        value: joined,
                        timestamp: side_key.timestamp,
                        headers: headers.clone(),
                    });
                }
                any = true;
            }
            if any {
                // The whole list goes, as Kafka Streams deletes a key once its values are emitted.
                ctx.store_mut(handle)?.delete(&side_key)?;
            }
        }
        drop(time);
        for record in emitted {
            ctx.forward(record)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VO: Data, VL: Data, VR: Data, VOut: Data> Processor<K, V, K, VOut>
    for JoinSide<K, V, VO, VL, VR, VOut>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        self.tracker = Some(ctx.task.shared(&self.tracker_name, || Mutex::new(TimeTracker::default()))?);
        if let Some(store) = &self.outer_store {
            self.outer_handle = Some(ctx.store_handle(store)?);
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VOut>, record: Record<K, V>) -> Result<(), StreamsError> {
        let ts = record.timestamp;
        let stream_time = {
            let mut time = self.tracker()?.lock_unpoisoned();
            time.stream_time = time.stream_time.max(ts);
            time.stream_time
        };
        let (null_key, null_value) = (self.key_serde.is_null(&record.key), self.value_serde.is_null(&record.value));
        if self.answers_alone && null_key && !null_value {
            let Some(joined) = (self.joiner)(Some(&record.value), None) else { return Ok(()) };
            return ctx.forward(Record { key: record.key, value: joined, timestamp: ts, headers: record.headers });
        }
        if null_key || null_value {
            ctx.record_dropped("null key or value in a stream-stream join");
            return Ok(());
        }
        if ts == stream_time
            && let Some(handle) = self.outer_handle
        {
            self.emit_non_joined(ctx, handle, &record.headers)?;
        }
        let from = ts.saturating_sub(self.span.before).max(0);
        let to = ts.saturating_add(self.span.after).max(0);
        let partners: Vec<(i64, VO)> =
            ctx.window_store::<K, VO>(&self.other_store)?.fetch(&record.key, from, to)?.collect::<Result<_, _>>()?;
        let alone = self.answers_alone && partners.is_empty();
        for (other_ts, other_value) in partners {
            if let Some(handle) = self.outer_handle {
                // The partner no longer waits alone (Kafka Streams' `putIfAbsent(key, null)`).
                let key = SideKey { timestamp: other_ts, left: !self.this_is_left, key: record.key.clone() };
                let store = ctx.store_mut(handle)?;
                if store.get(&key)?.is_some() {
                    store.delete(&key)?;
                }
            }
            if let Some(joined) = (self.joiner)(Some(&record.value), Some(&other_value)) {
                let (key, headers) = (record.key.clone(), record.headers.clone());
                ctx.forward(Record { key, value: joined, timestamp: ts.max(other_ts), headers })?;
            }
        }
        if !alone {
            return Ok(());
        }
        match self.outer_handle {
            // Its window is already past: no partner can come any more.
            Some(handle) if to >= stream_time => {
                {
                    let mut time = self.tracker()?.lock_unpoisoned();
                    time.min_time = time.min_time.min(ts);
                }
                let key = SideKey { timestamp: ts, left: self.this_is_left, key: record.key.clone() };
                let store = ctx.store_mut(handle)?;
                let mut waiting = store.get(&key)?.unwrap_or_default();
                waiting.push((self.wrap)(record.value));
                store.put(&key, &waiting)
            }
            _ => match (self.joiner)(Some(&record.value), None) {
                Some(joined) => {
                    ctx.forward(Record { key: record.key, value: joined, timestamp: ts, headers: record.headers })
                }
                None => Ok(()),
            },
        }
    }
}

/// `KSTREAM-MERGE`: where the two sides' results meet (Kafka Streams' `PassThrough`).
struct PassThrough;

impl<K: Data, V: Data> Processor<K, V, K, V> for PassThrough {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        ctx.forward(record)
    }
}

/// A record waiting in the outer store: of the left stream or of the right (Kafka Streams'
/// `LeftOrRightValue`).
#[derive(Clone, Debug)]
pub(crate) enum LeftOrRight<VL, VR> {
    Left(VL),
    Right(VR),
}

impl<VL, VR> LeftOrRight<VL, VR> {
    fn left(&self) -> Option<&VL> {
        match self {
            LeftOrRight::Left(v) => Some(v),
            LeftOrRight::Right(_) => None,
        }
    }

    fn right(&self) -> Option<&VR> {
        match self {
            LeftOrRight::Right(v) => Some(v),
            LeftOrRight::Left(_) => None,
        }
    }
}

/// The outer store's key (Kafka Streams' `TimestampedKeyAndJoinSide`): the record's timestamp, its side,
/// its key. The store's order is theirs: by time, then right before left, then key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SideKey<K> {
    timestamp: i64,
    left: bool,
    key: K,
}

/// Kafka Streams' `TimestampedKeyAndJoinSideSerializer`: the timestamp (8 bytes, big-endian), 1 for the
/// left side or 0 for the right, then the key's bytes.
struct SideKeySerde<K>(Arc<dyn Serde<K>>);

impl<K: 'static> Serde<SideKey<K>> for SideKeySerde<K> {
    fn serialize(&self, topic: &str, value: &SideKey<K>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&value.timestamp.to_be_bytes());
        out.push(u8::from(value.left));
        self.0.serialize(topic, &value.key, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<SideKey<K>, SerdeError> {
        if bytes.len() < 9 {
            let reason = format!("{} bytes are too few for a timestamped key and join side (9 at least)", bytes.len());
            return Err(SerdeError::new("TimestampedKeyAndJoinSide", topic, reason));
        }
        let timestamp = i64::from_be_bytes(bytes[..8].try_into().expect("eight bytes"));
        let key = self.0.deserialize(topic, &bytes[9..])?;
        Ok(SideKey { timestamp, left: bytes[8] == 1, key })
    }
}

/// The outer store's values: Kafka's `ListSerde` of byte arrays (a strategy byte of 1, the count, then
/// each entry's length and bytes, lengths and count as 4-byte big-endian), each entry a
/// `LeftOrRightValue` (1 for left or 0 for right, then the value's bytes).
struct LeftOrRightListSerde<VL, VR>(Arc<dyn Serde<VL>>, Arc<dyn Serde<VR>>);

impl<VL: 'static, VR: 'static> Serde<Vec<LeftOrRight<VL, VR>>> for LeftOrRightListSerde<VL, VR> {
    fn serialize(&self, topic: &str, value: &Vec<LeftOrRight<VL, VR>>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.push(1);
        let count = i32::try_from(value.len()).map_err(|_| SerdeError::new("List", topic, "too many values"))?;
        out.extend_from_slice(&count.to_be_bytes());
        let mut entry = Vec::new();
        for item in value {
            entry.clear();
            match item {
                LeftOrRight::Left(v) => {
                    entry.push(1);
                    self.0.serialize(topic, v, &mut entry)?;
                }
                LeftOrRight::Right(v) => {
                    entry.push(0);
                    self.1.serialize(topic, v, &mut entry)?;
                }
            }
            let len = i32::try_from(entry.len()).map_err(|_| SerdeError::new("List", topic, "a value too long"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&entry);
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Vec<LeftOrRight<VL, VR>>, SerdeError> {
        let short =
            || SerdeError::new("List", topic, format!("{} bytes end inside a list of join values", bytes.len()));
        let int = |at: usize| -> Result<i32, SerdeError> {
            Ok(i32::from_be_bytes(bytes.get(at..at + 4).ok_or_else(short)?.try_into().expect("four bytes")))
        };
        if bytes.first() != Some(&1) {
            return Err(SerdeError::new("List", topic, "not a list of variable-size values"));
        }
        let count = int(1)?;
        let mut at = 5;
        let mut values = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1024));
        for _ in 0..count {
            let len = usize::try_from(int(at)?).map_err(|_| SerdeError::new("List", topic, "a null join value"))?;
            at += 4;
            let entry = bytes.get(at..at + len).ok_or_else(short)?;
            at += len;
            let (side, raw) = entry.split_first().ok_or_else(|| SerdeError::new("LeftOrRightValue", topic, "empty"))?;
            values.push(match side {
                1 => LeftOrRight::Left(self.0.deserialize(topic, raw)?),
                _ => LeftOrRight::Right(self.1.deserialize(topic, raw)?),
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostile_input::round_trip;
    use crate::serde::{I64Serde, StringSerde};
    use proptest::prelude::*;

    proptest! {
        /// Hostile input (a changelog record of the outer join's store): read or refused, never a panic;
        /// and what is written reads back.
        #[test]
        fn outer_store_formats_are_read_or_refused_and_read_back_as_written(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            timestamp in any::<i64>(),
            left in any::<bool>(),
            key in ".{0,8}",
            values in proptest::collection::vec(prop_oneof![
                ".{0,6}".prop_map(LeftOrRight::Left),
                any::<i64>().prop_map(LeftOrRight::Right),
            ], 0..4),
        ) {
            let keys = SideKeySerde(Arc::new(StringSerde));
            let lists = LeftOrRightListSerde(Arc::new(StringSerde), Arc::new(I64Serde));
            let _ = keys.deserialize("t", &bytes);
            let _ = lists.deserialize("t", &bytes);
            let side_key = SideKey { timestamp, left, key };
            prop_assert_eq!(round_trip(&keys, &side_key), side_key);
            prop_assert_eq!(format!("{:?}", round_trip(&lists, &values)), format!("{values:?}"));
        }
    }
}
