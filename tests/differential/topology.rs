//! A case's steps, built with this library's DSL: the Rust half of the operator table in
//! tests/differential/README.md (the Java runner's `TopologyFactory.java` is the other).

use std::collections::HashMap;
use std::sync::Arc;

use kstreams::dsl::{
    BufferConfig, CogroupedKStream, EmitStrategy, JoinWindows, Joined, SessionWindowedCogroupedKStream,
    SessionWindowedKStream, SlidingWindowedKStream, StreamJoined, Suppressed, TableJoined,
    TimeWindowedCogroupedKStream, TimeWindowedKStream, ValueTransformerWithKey,
};
use kstreams::prelude::*;
use kstreams::processor::{
    ConsumedRecord, FixedKeyProcessor, FixedKeyProcessorContext, FixedKeyRecord, ProcessingContext,
};
use kstreams::store::{Stores, ValueAndTimestamp, ValueAndTimestampSerde};

use crate::case::{BranchSpec, Case, JoinStoreSpec, MaterializedSpec, Step};
use crate::functions as f;
use crate::values::{key_serde, set_defaults, Dyn, Key, Val};

/// What a step gives the next: the DSL's types over the value types the suite carries.
enum Handle {
    Stream(KStream<Key, Val>),
    LongStream(KStream<Key, i64>),
    OptStream(KStream<Key, Option<Val>>),
    OptLongStream(KStream<Key, Option<i64>>),
    Table(KTable<Key, Val>),
    LongTable(KTable<Key, i64>),
    Global(GlobalKTable<Key, Val>),
    Grouped(KGroupedStream<Key, Val>),
    LongGrouped(KGroupedStream<Key, i64>),
    GroupedTable(KGroupedTable<Key, Val>),
    Cogrouped(CogroupedKStream<Key, Val>),
    CoWindowed(TimeWindowedCogroupedKStream<Key, Val>),
    CoSessions(SessionWindowedCogroupedKStream<Key, Val>),
    Windowed(TimeWindowedKStream<Key, Val>),
    LongWindowed(TimeWindowedKStream<Key, i64>),
    Sliding(SlidingWindowedKStream<Key, Val>),
    LongSliding(SlidingWindowedKStream<Key, i64>),
    Sessions(SessionWindowedKStream<Key, Val>),
    LongSessions(SessionWindowedKStream<Key, i64>),
    WinTable(KTable<Windowed<Key>, Val>),
    WinLongTable(KTable<Windowed<Key>, i64>),
    WinOptStream(KStream<Windowed<Key>, Option<Val>>),
    WinOptLongStream(KStream<Windowed<Key>, Option<i64>>),
    Done,
}

impl Handle {
    fn kind(&self) -> &'static str {
        match self {
            Handle::Stream(_) | Handle::LongStream(_) | Handle::OptStream(_) | Handle::OptLongStream(_) => "a stream",
            Handle::Table(_) | Handle::LongTable(_) => "a table",
            Handle::Global(_) => "a global table",
            Handle::Grouped(_) | Handle::LongGrouped(_) => "a grouped stream",
            Handle::GroupedTable(_) => "a grouped table",
            Handle::Cogrouped(_) => "a cogrouped stream",
            Handle::CoWindowed(_) | Handle::CoSessions(_) => "a windowed cogrouped stream",
            Handle::Windowed(_) | Handle::LongWindowed(_) | Handle::Sliding(_) | Handle::LongSliding(_) => {
                "a windowed stream"
            }
            Handle::Sessions(_) | Handle::LongSessions(_) => "a session-windowed stream",
            Handle::WinTable(_) | Handle::WinLongTable(_) => "a windowed table",
            Handle::WinOptStream(_) | Handle::WinOptLongStream(_) => "a stream of windowed keys",
            Handle::Done => "nothing (a terminal operator)",
        }
    }

    fn clone_handle(&self) -> Handle {
        match self {
            Handle::Stream(s) => Handle::Stream(s.clone()),
            Handle::LongStream(s) => Handle::LongStream(s.clone()),
            Handle::OptStream(s) => Handle::OptStream(s.clone()),
            Handle::OptLongStream(s) => Handle::OptLongStream(s.clone()),
            Handle::Table(t) => Handle::Table(t.clone()),
            Handle::LongTable(t) => Handle::LongTable(t.clone()),
            Handle::Global(t) => Handle::Global(t.clone()),
            Handle::Grouped(g) => Handle::Grouped(g.clone()),
            Handle::LongGrouped(g) => Handle::LongGrouped(g.clone()),
            Handle::WinTable(t) => Handle::WinTable(t.clone()),
            Handle::WinLongTable(t) => Handle::WinLongTable(t.clone()),
            Handle::WinOptStream(s) => Handle::WinOptStream(s.clone()),
            Handle::WinOptLongStream(s) => Handle::WinOptLongStream(s.clone()),
            // Grouped tables, cogroups and windowed streams are not Clone in the DSL; a case uses each once.
            Handle::GroupedTable(_)
            | Handle::Cogrouped(_)
            | Handle::CoWindowed(_)
            | Handle::CoSessions(_)
            | Handle::Windowed(_)
            | Handle::LongWindowed(_)
            | Handle::Sliding(_)
            | Handle::LongSliding(_)
            | Handle::Sessions(_)
            | Handle::LongSessions(_)
            | Handle::Done => Handle::Done,
        }
    }
}

/// Runs `$body` with `$s` bound to the stream of any stream handle; `$wrap` rewraps a result of the same
/// value type (`same`) or takes it as it is (`any`).
macro_rules! on_stream {
    ($h:expr, $s:ident => same $body:expr) => {
        match $h {
            Handle::Stream($s) => Handle::Stream($body),
            Handle::LongStream($s) => Handle::LongStream($body),
            Handle::OptStream($s) => Handle::OptStream($body),
            Handle::OptLongStream($s) => Handle::OptLongStream($body),
            other => return Err(format!("needs a stream, got {}", other.kind())),
        }
    };
    ($h:expr, $s:ident => any $body:expr) => {
        match $h {
            Handle::Stream($s) => $body,
            Handle::LongStream($s) => $body,
            Handle::OptStream($s) => $body,
            Handle::OptLongStream($s) => $body,
            other => return Err(format!("needs a stream, got {}", other.kind())),
        }
    };
}

macro_rules! on_table {
    ($h:expr, $t:ident => same $body:expr) => {
        match $h {
            Handle::Table($t) => Handle::Table($body),
            Handle::LongTable($t) => Handle::LongTable($body),
            other => return Err(format!("needs a table, got {}", other.kind())),
        }
    };
    ($h:expr, $t:ident => any $body:expr) => {
        match $h {
            Handle::Table($t) => $body,
            Handle::LongTable($t) => $body,
            other => return Err(format!("needs a table, got {}", other.kind())),
        }
    };
}

/// Builds the case's topology with the DSL.
pub(crate) fn build(case: &Case) -> Result<Topology, String> {
    set_defaults(case.default_key, case.default_value);
    let builder = StreamsBuilder::new();
    let mut ids: HashMap<String, Handle> = HashMap::new();
    run_steps(&builder, &case.topology, None, &mut ids, true)?;
    builder.build().map_err(|e| format!("build: {e}"))
}

/// Runs `steps` in order, the first on `previous` unless it says `from`; returns the last result. `top`:
/// the case's own steps, whose first result is also `source`.
fn run_steps(
    builder: &StreamsBuilder,
    steps: &[Step],
    mut previous: Option<Handle>,
    ids: &mut HashMap<String, Handle>,
    top: bool,
) -> Result<Option<Handle>, String> {
    for (i, step) in steps.iter().enumerate() {
        let input = match &step.from {
            Some(id) => Some(ids.get(id).ok_or_else(|| format!("step {i}: no step is `as` {id:?}"))?.clone_handle()),
            None => previous.take(),
        };
        let result = apply(builder, step, input, ids).map_err(|e| format!("step {i} ({}): {e}", step.op))?;
        if top && i == 0 && step.id.is_none() {
            ids.insert("source".into(), result.clone_handle());
        }
        if let Some(id) = &step.id {
            ids.insert(id.clone(), result.clone_handle());
        }
        previous = Some(result);
    }
    Ok(previous)
}

fn apply(
    builder: &StreamsBuilder,
    step: &Step,
    input: Option<Handle>,
    ids: &mut HashMap<String, Handle>,
) -> Result<Handle, String> {
    let source_op = matches!(step.op.as_str(), "stream" | "table" | "global_table" | "global_store");
    let input = match (input, source_op) {
        (_, true) => Handle::Done,
        (Some(h), false) => h,
        (None, false) => return Err("has no input".into()),
    };
    let named = step.named.clone();
    Ok(match step.op.as_str() {
        "stream" => {
            let topics: Vec<&str> = step.topics.iter().flatten().map(String::as_str).collect();
            let consumed = consumed::<Val>(step)?;
            match &step.pattern {
                Some(pattern) => Handle::Stream(builder.stream_pattern_with(pattern, consumed)),
                None => Handle::Stream(builder.stream_from(&topics, consumed)),
            }
        }
        "table" => {
            let topic = step.topic.as_deref().ok_or("needs `topic`")?;
            let materialized = materialized::<Val>(step.materialized.as_ref());
            Handle::Table(builder.table_with(topic, consumed::<Val>(step)?, materialized))
        }
        "global_table" => {
            let topic = step.topic.as_deref().ok_or("needs `topic`")?;
            let materialized = materialized::<Val>(step.materialized.as_ref());
            Handle::Global(builder.global_table_with(topic, consumed::<Val>(step)?, materialized))
        }
        "global_store" => {
            let topic = step.topic.as_deref().ok_or("needs `topic`")?;
            let store = step.materialized.as_ref().and_then(|m| m.store.clone()).ok_or("needs `materialized.store`")?;
            let (key, value) = (step.key.ok_or("needs `key`")?, step.value.ok_or("needs `value`")?);
            let builder_of_store = Stores::key_value_store_builder(
                Stores::persistent_key_value_store(store.clone()),
                key_serde(key),
                Arc::new(ValueAndTimestampSerde::new(Val::serde(value))),
            );
            builder
                .add_global_store(builder_of_store, topic, consumed::<Val>(step)?, move || KeepGlobal(store.clone()));
            Handle::Done
        }
        "global_join" | "global_left_join" => {
            let other_id = step.other.as_deref().ok_or("needs `other`")?;
            let Some(Handle::Global(table)) = ids.get(other_id).map(Handle::clone_handle) else {
                return Err(format!("`{other_id}` is not a global table"));
            };
            let j = f::joiner(function(step)?)?;
            let select = f::key_selector(step.key_selector.as_deref().ok_or("needs `key_selector`")?)?;
            let left = step.op == "global_left_join";
            on_stream!(input, s => any Handle::Stream(global_join(with_name(s, &named, |x, n| x.named(n)), &table, select.clone(), j.clone(), left)))
        }
        "filter" | "filter_not" => {
            let p = f::predicate(function(step)?)?;
            let not = step.op == "filter_not";
            match input {
                Handle::Table(_) | Handle::LongTable(_) => on_table!(input, t => same {
                    let t = with_name(t, &named, |x, n| x.named(n));
                    let p = p.clone();
                    let keep = move |k: &Key, v: &_| p(&k.0, &Dyn::to_val(v));
                    match (&step.materialized, not) {
                        (Some(m), false) => t.filter_with(keep, materialized(Some(m))),
                        (Some(m), true) => t.filter_not_with(keep, materialized(Some(m))),
                        (None, false) => t.filter(keep),
                        (None, true) => t.filter_not(keep),
                    }
                }),
                input => on_stream!(input, s => same {
                    let s = with_name(s, &named, |x, n| x.named(n));
                    let p = p.clone();
                    if not { s.filter_not(move |k, v| p(&k.0, &v.to_val())) } else { s.filter(move |k, v| p(&k.0, &v.to_val())) }
                }),
            }
        }
        "map" => {
            let m = f::key_value_mapper(function(step)?)?;
            on_stream!(input, s => any Handle::Stream(with_name(s, &named, |x, n| x.named(n)).map(move |k, v| {
                let (k, v) = m(k.0, v.to_val());
                (Key(k), v)
            })))
        }
        "map_values" => {
            let m = f::value_mapper(function(step)?)?;
            match input {
                Handle::Table(_) | Handle::LongTable(_) => on_table!(input, t => any {
                    let t = with_name(t, &named, |x, n| x.named(n));
                    let map = move |k: &Key, v| m(&k.0, Dyn::to_val(&v));
                    Handle::Table(match &step.materialized {
                        Some(spec) => t.map_values_with(map, materialized(Some(spec))),
                        None => t.map_values(map),
                    })
                }),
                input => on_stream!(input, s => any Handle::Stream(
                    with_name(s, &named, |x, n| x.named(n)).map_values_with_key(move |k, v| m(&k.0, v.to_val()))
                )),
            }
        }
        "process" => {
            let m = f::key_selector(function(step)?)?;
            on_stream!(input, s => same with_name(s, &named, |x, n| x.named(n)).process(move || Rekey(m.clone()), &[]))
        }
        "process_values" => {
            let m = f::value_mapper(function(step)?)?;
            on_stream!(input, s => any Handle::Stream(
                with_name(s, &named, |x, n| x.named(n)).process_values(move || MapValue(m.clone()), &[])
            ))
        }
        "transform_values" => {
            let m = f::value_mapper(function(step)?)?;
            on_table!(input, t => any {
                let t = with_name(t, &named, |x, n| x.named(n));
                let supplier = move || MapValue(m.clone());
                Handle::Table(match &step.materialized {
                    Some(spec) => t.transform_values_with(supplier, materialized(Some(spec)), &[]),
                    None => t.transform_values(supplier, &[]),
                })
            })
        }
        "flat_map" => {
            let m = f::flat_key_values(function(step)?)?;
            on_stream!(input, s => any Handle::Stream(with_name(s, &named, |x, n| x.named(n)).flat_map(move |k, v| {
                m(k.0, v.to_val()).into_iter().map(|(k, v)| (Key(k), v)).collect::<Vec<_>>()
            })))
        }
        "flat_map_values" => {
            let m = f::flat_values(function(step)?)?;
            on_stream!(input, s => any Handle::Stream(with_name(s, &named, |x, n| x.named(n)).flat_map_values(move |v| m(v.to_val()))))
        }
        "select_key" => {
            let m = f::key_selector(function(step)?)?;
            on_stream!(input, s => same with_name(s, &named, |x, n| x.named(n)).select_key(move |k, v| Key(m(&k.0, &v.to_val()))))
        }
        "peek" => on_stream!(input, s => same with_name(s, &named, |x, n| x.named(n)).peek(|_, _| {})),
        "foreach" => on_stream!(input, s => any {
            with_name(s, &named, |x, n| x.named(n)).foreach(|_, _| {});
            Handle::Done
        }),
        "merge" => {
            let other_id = step.other.as_deref().ok_or("needs `other`")?;
            let other = ids.get(other_id).ok_or_else(|| format!("no step is `as` {other_id:?}"))?.clone_handle();
            match (input, other) {
                (Handle::Stream(a), Handle::Stream(b)) => {
                    Handle::Stream(with_name(a, &named, |x, n| x.named(n)).merge(&b))
                }
                (Handle::LongStream(a), Handle::LongStream(b)) => {
                    Handle::LongStream(with_name(a, &named, |x, n| x.named(n)).merge(&b))
                }
                (a, b) => return Err(format!("merges streams of one value type, got {} and {}", a.kind(), b.kind())),
            }
        }
        "join" | "left_join" | "outer_join" => {
            let other_id = step.other.as_deref().ok_or("needs `other`")?;
            let other = ids.get(other_id).ok_or_else(|| format!("no step is `as` {other_id:?}"))?.clone_handle();
            let j = f::joiner(function(step)?)?;
            let op = step.op.as_str();
            match (input, other) {
                (Handle::Stream(s), Handle::Stream(o)) => Handle::Stream(stream_stream_join(s, &o, j, step, op)?),
                (Handle::Stream(s), Handle::LongStream(o)) => Handle::Stream(stream_stream_join(s, &o, j, step, op)?),
                (Handle::LongStream(s), Handle::Stream(o)) => Handle::Stream(stream_stream_join(s, &o, j, step, op)?),
                (Handle::LongStream(s), Handle::LongStream(o)) => {
                    Handle::Stream(stream_stream_join(s, &o, j, step, op)?)
                }
                (Handle::Stream(s), Handle::Table(t)) => {
                    Handle::Stream(stream_table_join(s, &t, j, &named, step.grace, op)?)
                }
                (Handle::Stream(s), Handle::LongTable(t)) => {
                    Handle::Stream(stream_table_join(s, &t, j, &named, step.grace, op)?)
                }
                (Handle::LongStream(s), Handle::Table(t)) => {
                    Handle::Stream(stream_table_join(s, &t, j, &named, step.grace, op)?)
                }
                (Handle::LongStream(s), Handle::LongTable(t)) => {
                    Handle::Stream(stream_table_join(s, &t, j, &named, step.grace, op)?)
                }
                (Handle::Table(a), Handle::Table(b)) => Handle::Table(table_join(a, &b, j, step, &named, op)),
                (Handle::Table(a), Handle::LongTable(b)) => Handle::Table(table_join(a, &b, j, step, &named, op)),
                (Handle::LongTable(a), Handle::Table(b)) => Handle::Table(table_join(a, &b, j, step, &named, op)),
                (Handle::LongTable(a), Handle::LongTable(b)) => Handle::Table(table_join(a, &b, j, step, &named, op)),
                (a, b) => {
                    return Err(format!("joins a stream or a table with a table, got {} and {}", a.kind(), b.kind()))
                }
            }
        }
        "fk_join" | "fk_left_join" => {
            let other_id = step.other.as_deref().ok_or("needs `other`")?;
            let other = ids.get(other_id).ok_or_else(|| format!("no step is `as` {other_id:?}"))?.clone_handle();
            let j = f::joiner(function(step)?)?;
            let fk = f::key_selector(step.foreign_key.as_deref().ok_or("needs `foreign_key`")?)?;
            match (input, other) {
                (Handle::Table(a), Handle::Table(b)) => Handle::Table(fk_join(a, &b, fk, j, step, &named)),
                (Handle::Table(a), Handle::LongTable(b)) => Handle::Table(fk_join(a, &b, fk, j, step, &named)),
                (Handle::LongTable(a), Handle::Table(b)) => Handle::Table(fk_join(a, &b, fk, j, step, &named)),
                (Handle::LongTable(a), Handle::LongTable(b)) => Handle::Table(fk_join(a, &b, fk, j, step, &named)),
                (a, b) => return Err(format!("joins two tables by a foreign key, got {} and {}", a.kind(), b.kind())),
            }
        }
        "split" => {
            on_stream!(input, s => any split(builder, s, step, &named, ids)?)
        }
        "to_dynamic" => {
            let choose = f::topic_chooser(function(step)?)?;
            on_stream!(input, s => any {
                with_name(s, &named, |x, n| x.named(n)).to_dynamic(move |k, v, _| choose(&k.0, &v.to_val()));
                Handle::Done
            })
        }
        "to" if matches!(input, Handle::WinOptStream(_) | Handle::WinOptLongStream(_)) => {
            // A windowed table's stream: written with the serdes it inherits (`to(topic)`).
            let topic = step.topic.as_deref().ok_or("needs `topic`")?;
            match input {
                Handle::WinOptStream(s) => with_name(s, &named, |x, n| x.named(n)).to(topic),
                Handle::WinOptLongStream(s) => with_name(s, &named, |x, n| x.named(n)).to(topic),
                _ => unreachable!("matched above"),
            }
            Handle::Done
        }
        "to" => {
            let topic = step.topic.as_deref().ok_or("needs `topic`")?;
            let partitioner = step.partitioner.as_deref().map(f::partitioner).transpose()?;
            on_stream!(input, s => any {
                let produced = match (produced(step), &partitioner) {
                    (p, Some(choose)) => {
                        let choose = choose.clone();
                        let multicast = move |_: &str, k: &Key, v: &_, n| choose(&k.0, &Dyn::to_val(v), n);
                        Some(p.unwrap_or_default().with_multicast_partitioner(multicast))
                    }
                    (p, None) => p,
                };
                match produced {
                    Some(p) => s.to_with(topic, p),
                    None => s.to(topic),
                }
                Handle::Done
            })
        }
        "repartition" => on_stream!(input, s => same {
            match repartitioned(step) {
                Some(r) => s.repartition_with(r),
                None => s.repartition(),
            }
        }),
        "to_table" => {
            let spec = step.materialized.as_ref();
            match input {
                Handle::Stream(s) => Handle::Table(match spec {
                    Some(m) => with_name(s, &named, |x, n| x.named(n)).to_table_with(materialized::<Val>(Some(m))),
                    None => with_name(s, &named, |x, n| x.named(n)).to_table(),
                }),
                Handle::LongStream(s) => Handle::LongTable(match spec {
                    Some(m) => with_name(s, &named, |x, n| x.named(n)).to_table_with(materialized::<i64>(Some(m))),
                    None => with_name(s, &named, |x, n| x.named(n)).to_table(),
                }),
                other => return Err(format!("needs a stream of strings or longs, got {}", other.kind())),
            }
        }
        "to_stream" => match input {
            Handle::WinTable(t) => Handle::WinOptStream(with_name(t, &named, |x, n| x.named(n)).to_stream()),
            Handle::WinLongTable(t) => Handle::WinOptLongStream(with_name(t, &named, |x, n| x.named(n)).to_stream()),
            Handle::Table(t) => Handle::OptStream(with_name(t, &named, |x, n| x.named(n)).to_stream()),
            Handle::LongTable(t) => Handle::OptLongStream(with_name(t, &named, |x, n| x.named(n)).to_stream()),
            other => return Err(format!("needs a table, got {}", other.kind())),
        },
        "emit_strategy" => {
            let strategy = match step.strategy.as_deref() {
                Some("on_window_close") => EmitStrategy::on_window_close(),
                Some("on_window_update") => EmitStrategy::on_window_update(),
                other => return Err(format!("`strategy` must be on_window_close or on_window_update, got {other:?}")),
            };
            match input {
                Handle::Windowed(w) => Handle::Windowed(w.emit_strategy(strategy)),
                Handle::LongWindowed(w) => Handle::LongWindowed(w.emit_strategy(strategy)),
                Handle::Sliding(w) => Handle::Sliding(w.emit_strategy(strategy)),
                Handle::LongSliding(w) => Handle::LongSliding(w.emit_strategy(strategy)),
                other => return Err(format!("needs a time- or sliding-windowed stream, got {}", other.kind())),
            }
        }
        "suppress" => match input {
            Handle::WinTable(t) => Handle::WinTable(t.suppress(suppressed_windowed(step)?)),
            Handle::WinLongTable(t) => Handle::WinLongTable(t.suppress(suppressed_windowed(step)?)),
            Handle::Table(t) => Handle::Table(t.suppress(suppressed(step)?)),
            Handle::LongTable(t) => Handle::LongTable(t.suppress(suppressed(step)?)),
            other => return Err(format!("needs a table, got {}", other.kind())),
        },
        "group_by_key" => match input {
            Handle::Stream(s) => Handle::Grouped(match grouped(step) {
                Some(g) => s.group_by_key_with(g),
                None => s.group_by_key(),
            }),
            Handle::LongStream(s) => Handle::LongGrouped(match grouped(step) {
                Some(g) => s.group_by_key_with(g),
                None => s.group_by_key(),
            }),
            other => return Err(format!("needs a stream of values or longs, got {}", other.kind())),
        },
        "group_by" => match input {
            Handle::Stream(s) => {
                let m = f::key_selector(function(step)?)?;
                let select = move |k: &Key, v: &Val| Key(m(&k.0, v));
                Handle::Grouped(match grouped(step) {
                    Some(g) => s.group_by_with(select, g),
                    None => s.group_by(select),
                })
            }
            Handle::LongStream(s) => {
                let m = f::key_selector(function(step)?)?;
                let select = move |k: &Key, v: &i64| Key(m(&k.0, &Val::Long(*v)));
                Handle::LongGrouped(match grouped(step) {
                    Some(g) => s.group_by_with(select, g),
                    None => s.group_by(select),
                })
            }
            input => on_table!(input, t => any {
                let m = f::key_value_mapper(function(step)?)?;
                let select = move |k: &Key, v: &_| {
                    let (k, v) = m(k.0.clone(), Dyn::to_val(v));
                    (Key(k), v)
                };
                Handle::GroupedTable(match grouped(step) {
                    Some(g) => t.group_by_with(select, g),
                    None => t.group_by(select),
                })
            }),
        },
        "windowed_by" if step.difference.is_some() => {
            let windows = sliding_windows(step)?;
            match input {
                Handle::Grouped(g) => Handle::Sliding(g.windowed_by(windows)),
                Handle::LongGrouped(g) => Handle::LongSliding(g.windowed_by(windows)),
                Handle::Cogrouped(c) => Handle::CoWindowed(c.windowed_by(windows)),
                other => return Err(format!("needs a grouped stream, got {}", other.kind())),
            }
        }
        "windowed_by" if step.gap.is_some() => {
            let windows = session_windows(step)?;
            match input {
                Handle::Grouped(g) => Handle::Sessions(g.windowed_by(windows)),
                Handle::LongGrouped(g) => Handle::LongSessions(g.windowed_by(windows)),
                Handle::Cogrouped(c) => Handle::CoSessions(c.windowed_by(windows)),
                other => return Err(format!("needs a grouped stream, got {}", other.kind())),
            }
        }
        "windowed_by" => {
            let windows = time_windows(step)?;
            match input {
                Handle::Grouped(g) => Handle::Windowed(g.windowed_by(windows)),
                Handle::LongGrouped(g) => Handle::LongWindowed(g.windowed_by(windows)),
                Handle::Cogrouped(c) => Handle::CoWindowed(c.windowed_by(windows)),
                other => return Err(format!("needs a grouped stream, got {}", other.kind())),
            }
        }
        "count" => match input {
            Handle::Sliding(w) => Handle::WinLongTable(count_sliding(with_name(w, &named, |x, n| x.named(n)), step)),
            Handle::LongSliding(w) => {
                Handle::WinLongTable(count_sliding(with_name(w, &named, |x, n| x.named(n)), step))
            }
            Handle::Sessions(w) => Handle::WinLongTable(count_sessions(with_name(w, &named, |x, n| x.named(n)), step)),
            Handle::LongSessions(w) => {
                Handle::WinLongTable(count_sessions(with_name(w, &named, |x, n| x.named(n)), step))
            }
            Handle::Windowed(w) => Handle::WinLongTable(count_windowed(with_name(w, &named, |x, n| x.named(n)), step)),
            Handle::LongWindowed(w) => {
                Handle::WinLongTable(count_windowed(with_name(w, &named, |x, n| x.named(n)), step))
            }
            Handle::Grouped(g) => Handle::LongTable(count_stream(with_name(g, &named, |x, n| x.named(n)), step)),
            Handle::LongGrouped(g) => Handle::LongTable(count_stream(with_name(g, &named, |x, n| x.named(n)), step)),
            Handle::GroupedTable(g) => {
                let g = with_name(g, &named, |x, n| x.named(n));
                Handle::LongTable(match &step.materialized {
                    Some(m) => g.count_with(materialized::<i64>(Some(m))),
                    None => g.count(),
                })
            }
            other => return Err(format!("needs a grouped stream or table, got {}", other.kind())),
        },
        "reduce" => match input {
            Handle::Sliding(w) => Handle::WinTable(reduce_sliding(with_name(w, &named, |x, n| x.named(n)), step)?),
            Handle::LongSliding(w) => {
                Handle::WinLongTable(reduce_sliding(with_name(w, &named, |x, n| x.named(n)), step)?)
            }
            Handle::Sessions(w) => Handle::WinTable(reduce_sessions(with_name(w, &named, |x, n| x.named(n)), step)?),
            Handle::LongSessions(w) => {
                Handle::WinLongTable(reduce_sessions(with_name(w, &named, |x, n| x.named(n)), step)?)
            }
            Handle::Windowed(w) => Handle::WinTable(reduce_windowed(with_name(w, &named, |x, n| x.named(n)), step)?),
            Handle::LongWindowed(w) => {
                Handle::WinLongTable(reduce_windowed(with_name(w, &named, |x, n| x.named(n)), step)?)
            }
            Handle::Grouped(g) => Handle::Table(reduce_stream(with_name(g, &named, |x, n| x.named(n)), step)?),
            Handle::LongGrouped(g) => Handle::LongTable(reduce_stream(with_name(g, &named, |x, n| x.named(n)), step)?),
            Handle::GroupedTable(g) => {
                let adder = f::reducer(step.adder.as_deref().ok_or("needs `adder`")?)?;
                let subtractor = f::reducer(step.subtractor.as_deref().ok_or("needs `subtractor`")?)?;
                let (add, sub) = (move |a, v| adder(a, v), move |a, v| subtractor(a, v));
                let g = with_name(g, &named, |x, n| x.named(n));
                Handle::Table(match &step.materialized {
                    Some(m) => g.reduce_with(add, sub, materialized(Some(m))),
                    None => g.reduce(add, sub),
                })
            }
            other => return Err(format!("needs a grouped stream or table, got {}", other.kind())),
        },
        "cogroup" => {
            let a = f::aggregator(function(step)?)?;
            match input {
                Handle::Grouped(g) => Handle::Cogrouped(cogroup(g, a)),
                Handle::LongGrouped(g) => Handle::Cogrouped(cogroup(g, a)),
                Handle::Cogrouped(c) => {
                    let other = step.other.as_deref().ok_or("needs `other`")?;
                    let add = move |k: &Key, v: Val, agg| a(&k.0, v, agg);
                    Handle::Cogrouped(match ids.get(other).map(Handle::clone_handle) {
                        Some(Handle::Grouped(g)) => c.cogroup(&g, add),
                        Some(Handle::LongGrouped(g)) => c.cogroup(&g, move |k, v: i64, agg| add(k, Val::Long(v), agg)),
                        _ => return Err(format!("`other` {other:?} is not a grouped stream")),
                    })
                }
                other => return Err(format!("needs a grouped or cogrouped stream, got {}", other.kind())),
            }
        }
        "aggregate" => {
            let init = f::initializer(step.init.as_deref().ok_or("needs `init`")?)?;
            match input {
                Handle::Cogrouped(c) => {
                    let c = with_name(c, &named, |x, n| x.named(n));
                    Handle::Table(match &step.materialized {
                        Some(m) => c.aggregate_with(move || init(), materialized::<Val>(Some(m))),
                        None => c.aggregate(move || init()),
                    })
                }
                Handle::CoWindowed(c) => {
                    let c = with_name(c, &named, |x, n| x.named(n));
                    Handle::WinTable(match &step.materialized {
                        Some(m) => c.aggregate_with(move || init(), materialized::<Val>(Some(m))),
                        None => c.aggregate(move || init()),
                    })
                }
                Handle::CoSessions(c) => {
                    let c = with_name(c, &named, |x, n| x.named(n));
                    let m = f::merger(step.merger.as_deref().ok_or("needs `merger`")?)?;
                    let merger = move |k: &Key, one: Val, two: Val| m(&k.0, one, two);
                    Handle::WinTable(match &step.materialized {
                        Some(ms) => c.aggregate_with(move || init(), merger, materialized::<Val>(Some(ms))),
                        None => c.aggregate(move || init(), merger),
                    })
                }
                Handle::Grouped(g) => {
                    Handle::Table(aggregate_stream(with_name(g, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::Windowed(w) => {
                    Handle::WinTable(aggregate_windowed(with_name(w, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::Sliding(w) => {
                    Handle::WinTable(aggregate_sliding(with_name(w, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::LongSliding(w) => {
                    Handle::WinTable(aggregate_sliding(with_name(w, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::Sessions(w) => {
                    Handle::WinTable(aggregate_sessions(with_name(w, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::LongSessions(w) => {
                    Handle::WinTable(aggregate_sessions(with_name(w, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::LongWindowed(w) => {
                    Handle::WinTable(aggregate_windowed(with_name(w, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::LongGrouped(g) => {
                    Handle::Table(aggregate_stream(with_name(g, &named, |x, n| x.named(n)), step, init)?)
                }
                Handle::GroupedTable(g) => {
                    let g = with_name(g, &named, |x, n| x.named(n));
                    let adder = f::aggregator(step.adder.as_deref().ok_or("needs `adder`")?)?;
                    let subtractor = f::aggregator(step.subtractor.as_deref().ok_or("needs `subtractor`")?)?;
                    let (init, add, sub) = (
                        move || init(),
                        move |k: &Key, v: Val, a| adder(&k.0, v, a),
                        move |k: &Key, v: Val, a| subtractor(&k.0, v, a),
                    );
                    Handle::Table(match &step.materialized {
                        Some(m) => g.aggregate_with(init, add, sub, materialized::<Val>(Some(m))),
                        None => g.aggregate(init, add, sub),
                    })
                }
                other => return Err(format!("needs a grouped stream or table, got {}", other.kind())),
            }
        }
        other => return Err(format!("no operator {other:?} (tests/differential/README.md lists them)")),
    })
}

fn function(step: &Step) -> Result<&str, String> {
    step.function.as_deref().ok_or_else(|| "needs `fn`".to_string())
}

/// `stream.join(other stream, .., JoinWindows)`, `left_join` or `outer_join`: `difference` and `grace`,
/// then `before`/`after`; `StreamJoined` with `named` as its name and `name` as its store name.
fn stream_stream_join<V: Dyn, VO: Dyn>(
    s: KStream<Key, V>,
    o: &KStream<Key, VO>,
    j: f::Joiner,
    step: &Step,
    op: &str,
) -> Result<KStream<Key, Val>, String> {
    let ms = std::time::Duration::from_millis;
    let difference = ms(step.difference.ok_or("a stream-stream join needs `difference`")?);
    let mut windows = match step.grace {
        Some(grace) => JoinWindows::of_time_difference_and_grace(difference, ms(grace)),
        None => JoinWindows::of_time_difference_with_no_grace(difference),
    };
    if let Some(before) = step.before {
        windows = windows.before(ms(before));
    }
    if let Some(after) = step.after {
        windows = windows.after(ms(after));
    }
    let mut joined = StreamJoined::default();
    if let Some(n) = &step.named {
        joined = joined.with_name(n.clone());
    }
    if let Some(n) = &step.name {
        joined = joined.with_store_name(n.clone());
    }
    if let Some(k) = step.key {
        joined = joined.with_key_serde(key_serde(k));
    }
    if let Some(v) = step.value {
        joined = joined.with_value_serde(V::serde(v));
    }
    if let Some(v) = step.other_value {
        joined = joined.with_other_value_serde(VO::serde(v));
    }
    let supplier = |spec: &JoinStoreSpec| {
        let (size, grace) = (windows.size_ms() as u64, windows.grace_ms() as u64);
        let store = if spec.persistent { Stores::persistent_window_store } else { Stores::in_memory_window_store };
        store(spec.name.clone(), ms(size + grace), ms(size), true).map_err(|e| e.to_string())
    };
    if let Some(spec) = &step.this_store {
        joined = joined.with_this_store_supplier(supplier(spec)?);
    }
    if let Some(spec) = &step.other_store {
        joined = joined.with_other_store_supplier(supplier(spec)?);
    }
    let val = |x: Option<&V>| x.map_or(Val::Null, Dyn::to_val);
    let other = |y: Option<&VO>| y.map_or(Val::Null, Dyn::to_val);
    Ok(match op {
        "join" => s.join_stream_with(o, move |x, y| j(&x.to_val(), &y.to_val()), windows, joined),
        "left_join" => s.left_join_stream_with(o, move |x, y| j(&x.to_val(), &other(y)), windows, joined),
        _ => s.outer_join_stream_with(o, move |x, y| j(&val(x), &other(y)), windows, joined),
    })
}

/// `stream.join(table, ..)` or `left_join`, with `Joined.as(named)` when the step names it.
fn stream_table_join<V: Dyn, VT: Dyn>(
    s: KStream<Key, V>,
    t: &KTable<Key, VT>,
    j: f::Joiner,
    named: &Option<String>,
    grace: Option<u64>,
    op: &str,
) -> Result<KStream<Key, Val>, String> {
    let mut joined = named.as_ref().map_or_else(Joined::default, |n| Joined::as_name(n.clone()));
    if let Some(grace) = grace {
        joined = joined.with_grace_period(std::time::Duration::from_millis(grace));
    }
    Ok(match op {
        "join" => s.join_with(t, move |v, t: &VT| j(&v.to_val(), &t.to_val()), joined),
        "left_join" => {
            s.left_join_with(t, move |v, t: Option<&VT>| j(&v.to_val(), &t.map_or(Val::Null, Dyn::to_val)), joined)
        }
        other => return Err(format!("a stream joins a table with join or left_join, not {other}")),
    })
}

/// `stream.join_global(table, ..)` or `left_join_global`: the key selector's null is a null key.
fn global_join<V: Dyn + DefaultSerde>(
    s: KStream<Key, V>,
    table: &GlobalKTable<Key, Val>,
    select: f::KeySelector,
    j: f::Joiner,
    left: bool,
) -> KStream<Key, Val> {
    let key = move |k: &Key, v: &V| Key(select(&k.0, &v.to_val()));
    if left {
        s.left_join_global(table, key, move |v, t: Option<&Val>| j(&v.to_val(), t.unwrap_or(&Val::Null)))
    } else {
        s.join_global(table, key, move |v, t: &Val| j(&v.to_val(), t))
    }
}

/// `table.join(other, ..)`, `left_join` or `outer_join`, named and materialized as the step says.
fn table_join<V: Dyn, VO: Dyn>(
    a: KTable<Key, V>,
    b: &KTable<Key, VO>,
    j: f::Joiner,
    step: &Step,
    named: &Option<String>,
    op: &str,
) -> KTable<Key, Val> {
    let a = with_name(a, named, |x, n| x.named(n));
    let val = |x: Option<&V>| x.map_or(Val::Null, Dyn::to_val);
    let other = |y: Option<&VO>| y.map_or(Val::Null, Dyn::to_val);
    let m = step.materialized.as_ref();
    match (op, m) {
        ("join", None) => a.join(b, move |x, y| j(&x.to_val(), &y.to_val())),
        ("join", Some(m)) => a.join_with(b, move |x, y| j(&x.to_val(), &y.to_val()), materialized::<Val>(Some(m))),
        ("left_join", None) => a.left_join(b, move |x, y| j(&x.to_val(), &other(y))),
        ("left_join", Some(m)) => {
            a.left_join_with(b, move |x, y| j(&x.to_val(), &other(y)), materialized::<Val>(Some(m)))
        }
        (_, None) => a.outer_join(b, move |x, y| j(&val(x), &other(y))),
        (_, Some(m)) => a.outer_join_with(b, move |x, y| j(&val(x), &other(y)), materialized::<Val>(Some(m))),
    }
}

/// `table.join_on_foreign_key(other, ..)` or `left_join_on_foreign_key`, named (`TableJoined::as_name`) and
/// materialized as the step says.
fn fk_join<V: Dyn, VO: Dyn>(
    a: KTable<Key, V>,
    b: &KTable<Key, VO>,
    fk: f::KeySelector,
    j: f::Joiner,
    step: &Step,
    named: &Option<String>,
) -> KTable<Key, Val> {
    let foreign_key = move |k: &Key, v: &V| match fk(&k.0, &v.to_val()) {
        Val::Null => None,
        fk => Some(Key(fk)),
    };
    let other = |y: Option<&VO>| y.map_or(Val::Null, Dyn::to_val);
    let joined = || named.clone().map_or_else(TableJoined::default, TableJoined::as_name);
    let m = || materialized::<Val>(step.materialized.as_ref());
    match step.op.as_str() {
        "fk_join" => {
            let joiner = move |x: &V, y: &VO| j(&x.to_val(), &y.to_val());
            if named.is_none() && step.materialized.is_none() {
                a.join_on_foreign_key(b, foreign_key, joiner)
            } else {
                a.join_on_foreign_key_with(b, foreign_key, joiner, joined(), m())
            }
        }
        _ => {
            let joiner = move |x: &V, y: Option<&VO>| j(&x.to_val(), &other(y));
            if named.is_none() && step.materialized.is_none() {
                a.left_join_on_foreign_key(b, foreign_key, joiner)
            } else {
                a.left_join_on_foreign_key_with(b, foreign_key, joiner, joined(), m())
            }
        }
    }
}

/// `named(..)` before the operator, when the step names it.
fn with_name<T>(x: T, name: &Option<String>, named: impl FnOnce(T, String) -> T) -> T {
    match name {
        Some(n) => named(x, n.clone()),
        None => x,
    }
}

fn consumed<V: Dyn>(step: &Step) -> Result<Consumed<Key, V>, String> {
    let key = step.key.map_or_else(Key::default_serde, key_serde);
    let value = step.value.map_or_else(V::default_serde, V::serde);
    let mut consumed = Consumed::with(key, value);
    if let Some(name) = &step.named {
        consumed = consumed.with_name(name.clone());
    }
    if let Some(spec) = &step.timestamp_extractor {
        let extract = f::timestamp_extractor(spec)?;
        consumed = consumed.with_timestamp_extractor(move |r: &ConsumedRecord<Key, V>, partition_time: i64| {
            extract(&r.value.map_or(Val::Null, Dyn::to_val), partition_time)
        });
    }
    Ok(consumed)
}

fn produced<V: Dyn>(step: &Step) -> Option<Produced<Key, V>> {
    if step.key.is_none() && step.value.is_none() && step.named.is_none() {
        return None;
    }
    // Kafka Streams takes a serde left null from upstream; Produced::with takes both, so the other one is
    // the default serde (the same unless upstream changed it).
    let p = if step.key.is_none() && step.value.is_none() {
        Produced::new()
    } else {
        Produced::with(
            step.key.map_or_else(Key::default_serde, key_serde),
            step.value.map_or_else(V::default_serde, V::serde),
        )
    };
    Some(match &step.named {
        Some(name) => p.with_name(name.clone()),
        None => p,
    })
}

fn repartitioned<V: Dyn>(step: &Step) -> Option<Repartitioned<Key, V>> {
    if step.name.is_none() && step.key.is_none() && step.value.is_none() && step.partitions.is_none() {
        return None;
    }
    let mut r = match &step.name {
        Some(name) => Repartitioned::with_name(name.clone()),
        None => Repartitioned::default(),
    };
    if let Some(k) = step.key {
        r = r.with_key_serde(key_serde(k));
    }
    if let Some(v) = step.value {
        r = r.with_value_serde(V::serde(v));
    }
    if let Some(n) = step.partitions {
        r = r.with_partitions(n);
    }
    Some(r)
}

fn grouped<V: Dyn>(step: &Step) -> Option<Grouped<Key, V>> {
    if step.name.is_none() && step.key.is_none() && step.value.is_none() {
        return None;
    }
    let mut g = match &step.name {
        Some(name) => Grouped::with_name(name.clone()),
        None => Grouped::default(),
    };
    if let Some(k) = step.key {
        g = g.with_key_serde(key_serde(k));
    }
    if let Some(v) = step.value {
        g = g.with_value_serde(V::serde(v));
    }
    Some(g)
}

fn materialized<V: Dyn>(spec: Option<&MaterializedSpec>) -> Materialized<Key, V> {
    let Some(spec) = spec else { return Materialized::new() };
    let mut m = match (&spec.store, spec.versioned) {
        (Some(store), Some(history)) => Materialized::as_versioned(Stores::persistent_versioned_key_value_store(
            store.clone(),
            std::time::Duration::from_millis(history),
        )),
        (Some(store), None) => Materialized::as_store(store.clone()),
        (None, None) => Materialized::new(),
        (None, Some(_)) => panic!("a versioned `materialized` needs a `store`"),
    };
    if let Some(k) = spec.key {
        m = m.with_key_serde(key_serde(k));
    }
    if let Some(v) = spec.value {
        m = m.with_value_serde(V::serde(v));
    }
    if spec.logging == Some(false) {
        m = m.with_logging_disabled();
    }
    if spec.caching == Some(false) {
        m = m.with_caching_disabled();
    }
    if let Some(retention) = spec.retention {
        m = m.with_retention(std::time::Duration::from_millis(retention));
    }
    m
}

/// `TimeWindows.ofSizeWithNoGrace(size)` (or `ofSizeAndGrace(size, grace)`), `.advanceBy(advance)`.
fn time_windows(step: &Step) -> Result<TimeWindows, String> {
    let ms = std::time::Duration::from_millis;
    let size = ms(step.size.ok_or("needs `size`")?);
    let windows = match step.grace {
        Some(grace) => TimeWindows::of_size_and_grace(size, ms(grace)),
        None => TimeWindows::of_size_with_no_grace(size),
    };
    Ok(match step.advance {
        Some(advance) => windows.advance_by(ms(advance)),
        None => windows,
    })
}

/// `Suppressed.untilWindowCloses(..)` or [`suppressed`] for a windowed table.
fn suppressed_windowed<K>(step: &Step) -> Result<Suppressed<Windowed<K>>, String> {
    if step.until.as_deref() != Some("window_closes") {
        return suppressed(step);
    }
    if step.time_limit.is_some() || step.when_full.is_some() {
        return Err("`window_closes` takes a strict buffer: no `time_limit` or `when_full`".into());
    }
    let mut buffer = BufferConfig::unbounded();
    if let Some(records) = step.max_records {
        buffer = buffer.with_max_records(records);
    }
    if let Some(bytes) = step.max_bytes {
        buffer = buffer.with_max_bytes(bytes);
    }
    Ok(named_suppressed(Suppressed::until_window_closes(buffer), step))
}

/// `Suppressed.untilTimeLimit(time_limit, buffer)`: unbounded, or bounded and emitting early (or shutting
/// down, with `when_full: shut_down`).
fn suppressed<K>(step: &Step) -> Result<Suppressed<K>, String> {
    if step.until.as_deref() != Some("time_limit") {
        return Err(format!("`until` must be `window_closes` (windowed tables) or `time_limit`, got {:?}", step.until));
    }
    let limit = std::time::Duration::from_millis(step.time_limit.ok_or("needs `time_limit`")?);
    let bounded = match (step.max_records, step.max_bytes) {
        (None, None) => None,
        (Some(records), bytes) => {
            Some(BufferConfig::max_records(records).with_max_bytes(bytes.unwrap_or(i64::MAX as u64)))
        }
        (None, Some(bytes)) => Some(BufferConfig::max_bytes(bytes)),
    };
    let buffer: BufferConfig = match (bounded, step.when_full.as_deref()) {
        (None, None) => BufferConfig::unbounded().into(),
        (Some(eager), None | Some("emit_early")) => eager.into(),
        (Some(eager), Some("shut_down")) => eager.shut_down_when_full().into(),
        (_, other) => {
            return Err(format!("`when_full` needs a bound and is `emit_early` or `shut_down`, got {other:?}"))
        }
    };
    Ok(named_suppressed(Suppressed::until_time_limit(limit, buffer), step))
}

fn named_suppressed<K>(suppressed: Suppressed<K>, step: &Step) -> Suppressed<K> {
    match &step.name {
        Some(name) => suppressed.with_name(name),
        None => suppressed,
    }
}

/// `SlidingWindows.ofTimeDifferenceWithNoGrace(difference)` (or `ofTimeDifferenceAndGrace(difference, grace)`).
fn sliding_windows(step: &Step) -> Result<SlidingWindows, String> {
    let ms = std::time::Duration::from_millis;
    if step.size.is_some() || step.advance.is_some() || step.gap.is_some() {
        return Err("sliding windows take `difference` (and `grace`), not `size`, `advance` or `gap`".into());
    }
    let difference = ms(step.difference.ok_or("needs `difference`")?);
    Ok(match step.grace {
        Some(grace) => SlidingWindows::of_time_difference_and_grace(difference, ms(grace)),
        None => SlidingWindows::of_time_difference_with_no_grace(difference),
    })
}

fn count_sliding<V: Dyn>(w: SlidingWindowedKStream<Key, V>, step: &Step) -> KTable<Windowed<Key>, i64> {
    match &step.materialized {
        Some(m) => w.count_with(materialized::<i64>(Some(m))),
        None => w.count(),
    }
}

fn reduce_sliding<V: Dyn>(w: SlidingWindowedKStream<Key, V>, step: &Step) -> Result<KTable<Windowed<Key>, V>, String> {
    let r = f::reducer(function(step)?)?;
    let reducer = move |a: V, v: V| V::from_val(r(a.to_val(), v.to_val()));
    Ok(match &step.materialized {
        Some(m) => w.reduce_with(reducer, materialized::<V>(Some(m))),
        None => w.reduce(reducer),
    })
}

fn aggregate_sliding<V: Dyn>(
    w: SlidingWindowedKStream<Key, V>,
    step: &Step,
    init: f::Initializer,
) -> Result<KTable<Windowed<Key>, Val>, String> {
    let a = f::aggregator(function(step)?)?;
    let aggregator = move |k: &Key, v: V, agg: Val| a(&k.0, v.to_val(), agg);
    Ok(match &step.materialized {
        Some(m) => w.aggregate_with(move || init(), aggregator, materialized::<Val>(Some(m))),
        None => w.aggregate(move || init(), aggregator),
    })
}

/// `SessionWindows.ofInactivityGapWithNoGrace(gap)` (or `ofInactivityGapAndGrace(gap, grace)`).
fn session_windows(step: &Step) -> Result<SessionWindows, String> {
    let ms = std::time::Duration::from_millis;
    if step.size.is_some() || step.advance.is_some() {
        return Err("session windows take `gap` (and `grace`), not `size` or `advance`".into());
    }
    let gap = ms(step.gap.ok_or("needs `gap`")?);
    Ok(match step.grace {
        Some(grace) => SessionWindows::of_inactivity_gap_and_grace(gap, ms(grace)),
        None => SessionWindows::of_inactivity_gap_with_no_grace(gap),
    })
}

fn count_sessions<V: Dyn>(w: SessionWindowedKStream<Key, V>, step: &Step) -> KTable<Windowed<Key>, i64> {
    match &step.materialized {
        Some(m) => w.count_with(materialized::<i64>(Some(m))),
        None => w.count(),
    }
}

fn reduce_sessions<V: Dyn>(w: SessionWindowedKStream<Key, V>, step: &Step) -> Result<KTable<Windowed<Key>, V>, String> {
    let r = f::reducer(function(step)?)?;
    let reducer = move |a: V, v: V| V::from_val(r(a.to_val(), v.to_val()));
    Ok(match &step.materialized {
        Some(m) => w.reduce_with(reducer, materialized::<V>(Some(m))),
        None => w.reduce(reducer),
    })
}

fn aggregate_sessions<V: Dyn>(
    w: SessionWindowedKStream<Key, V>,
    step: &Step,
    init: f::Initializer,
) -> Result<KTable<Windowed<Key>, Val>, String> {
    let a = f::aggregator(function(step)?)?;
    let m = f::merger(step.merger.as_deref().ok_or("needs `merger`")?)?;
    let aggregator = move |k: &Key, v: V, agg: Val| a(&k.0, v.to_val(), agg);
    let merger = move |k: &Key, one: Val, two: Val| m(&k.0, one, two);
    Ok(match &step.materialized {
        Some(m) => w.aggregate_with(move || init(), aggregator, merger, materialized::<Val>(Some(m))),
        None => w.aggregate(move || init(), aggregator, merger),
    })
}

fn count_windowed<V: Dyn>(w: TimeWindowedKStream<Key, V>, step: &Step) -> KTable<Windowed<Key>, i64> {
    match &step.materialized {
        Some(m) => w.count_with(materialized::<i64>(Some(m))),
        None => w.count(),
    }
}

fn reduce_windowed<V: Dyn>(w: TimeWindowedKStream<Key, V>, step: &Step) -> Result<KTable<Windowed<Key>, V>, String> {
    let r = f::reducer(function(step)?)?;
    let reducer = move |a: V, v: V| V::from_val(r(a.to_val(), v.to_val()));
    Ok(match &step.materialized {
        Some(m) => w.reduce_with(reducer, materialized::<V>(Some(m))),
        None => w.reduce(reducer),
    })
}

fn aggregate_windowed<V: Dyn>(
    w: TimeWindowedKStream<Key, V>,
    step: &Step,
    init: f::Initializer,
) -> Result<KTable<Windowed<Key>, Val>, String> {
    let a = f::aggregator(function(step)?)?;
    let aggregator = move |k: &Key, v: V, agg: Val| a(&k.0, v.to_val(), agg);
    Ok(match &step.materialized {
        Some(m) => w.aggregate_with(move || init(), aggregator, materialized::<Val>(Some(m))),
        None => w.aggregate(move || init(), aggregator),
    })
}

fn count_stream<V: Dyn>(g: KGroupedStream<Key, V>, step: &Step) -> KTable<Key, i64> {
    match &step.materialized {
        Some(m) => g.count_with(materialized::<i64>(Some(m))),
        None => g.count(),
    }
}

fn reduce_stream<V: Dyn>(g: KGroupedStream<Key, V>, step: &Step) -> Result<KTable<Key, V>, String> {
    let r = f::reducer(function(step)?)?;
    let reducer = move |a: V, v: V| V::from_val(r(a.to_val(), v.to_val()));
    Ok(match &step.materialized {
        Some(m) => g.reduce_with(reducer, materialized::<V>(Some(m))),
        None => g.reduce(reducer),
    })
}

/// `g.cogroup(aggregator)`: the first stream of a cogroup.
fn cogroup<V: Dyn>(g: KGroupedStream<Key, V>, a: f::Aggregator) -> CogroupedKStream<Key, Val> {
    g.cogroup(move |k: &Key, v: V, agg: Val| a(&k.0, v.to_val(), agg))
}

fn aggregate_stream<V: Dyn>(
    g: KGroupedStream<Key, V>,
    step: &Step,
    init: f::Initializer,
) -> Result<KTable<Key, Val>, String> {
    let a = f::aggregator(function(step)?)?;
    let aggregator = move |k: &Key, v: V, agg: Val| a(&k.0, v.to_val(), agg);
    Ok(match &step.materialized {
        Some(m) => g.aggregate_with(move || init(), aggregator, materialized::<Val>(Some(m))),
        None => g.aggregate(move || init(), aggregator),
    })
}

fn split<V: Dyn>(
    builder: &StreamsBuilder,
    s: KStream<Key, V>,
    step: &Step,
    named: &Option<String>,
    ids: &mut HashMap<String, Handle>,
) -> Result<Handle, String>
where
    KStream<Key, V>: IntoHandle + FromHandle,
{
    let specs = step.branches.as_ref().ok_or("needs `branches`")?;
    let mut error = None;
    let mut b = with_name(s, named, |x, n| x.named(n)).split();
    for spec in specs {
        let p = f::predicate(spec.function.as_deref().ok_or("a branch needs `fn`")?)?;
        b = b.branch(move |k, v| p(&k.0, &v.to_val()), branched(builder, spec, ids, &mut error));
    }
    match &step.default {
        Some(d) => drop(b.default_branch(branched(builder, d, ids, &mut error))),
        None => drop(b.no_default_branch()),
    }
    match error {
        Some(e) => Err(e),
        None => Ok(Handle::Done),
    }
}

/// A branch's `Branched`: its name, and its chain run on the branch as it is declared (with a function,
/// or a consumer when `consume`); `as` names the branch or what its chain made of it. An error in the
/// chain is kept in `error`.
fn branched<'a, V: Dyn>(
    builder: &'a StreamsBuilder,
    spec: &'a BranchSpec,
    ids: &'a mut HashMap<String, Handle>,
    error: &'a mut Option<String>,
) -> Branched<'a, Key, V>
where
    KStream<Key, V>: IntoHandle + FromHandle,
{
    let name = spec.name.clone();
    if spec.consume {
        let consume = move |branch: KStream<Key, V>| {
            if let Err(e) = run_steps(builder, &spec.chain, Some(branch.into_handle()), ids, false) {
                *error = Some(format!("a branch's chain: {e}"));
            }
        };
        return match name {
            Some(n) => Branched::with_consumer_named(consume, n),
            None => Branched::with_consumer(consume),
        };
    }
    let function = move |branch: KStream<Key, V>| {
        let out = match spec.chain.is_empty() {
            true => Ok(branch.clone()),
            false => run_steps(builder, &spec.chain, Some(branch.clone().into_handle()), ids, false)
                .and_then(|h| KStream::from_handle(h.ok_or("an empty chain")?)),
        };
        let out = out.unwrap_or_else(|e| {
            *error = Some(format!("a branch's chain: {e}"));
            branch
        });
        if let Some(id) = &spec.id {
            ids.insert(id.clone(), out.clone().into_handle());
        }
        out
    };
    match name {
        Some(n) => Branched::with_function_named(function, n),
        None => Branched::with_function(function),
    }
}

/// A stream of the branch's value type back out of a chain's result.
trait FromHandle: Sized {
    fn from_handle(handle: Handle) -> Result<Self, String>;
}

macro_rules! from_handle {
    ($v:ty, $variant:ident) => {
        impl FromHandle for KStream<Key, $v> {
            fn from_handle(handle: Handle) -> Result<Self, String> {
                match handle {
                    Handle::$variant(s) => Ok(s),
                    other => {
                        Err(format!("a branch's chain must end in a stream of the branch's type, not {}", other.kind()))
                    }
                }
            }
        }
    };
}

from_handle!(Val, Stream);
from_handle!(i64, LongStream);
from_handle!(Option<Val>, OptStream);
from_handle!(Option<i64>, OptLongStream);

trait IntoHandle {
    fn into_handle(self) -> Handle;
}

impl IntoHandle for KStream<Key, Val> {
    fn into_handle(self) -> Handle {
        Handle::Stream(self)
    }
}

impl IntoHandle for KStream<Key, i64> {
    fn into_handle(self) -> Handle {
        Handle::LongStream(self)
    }
}

impl IntoHandle for KStream<Key, Option<Val>> {
    fn into_handle(self) -> Handle {
        Handle::OptStream(self)
    }
}

impl IntoHandle for KStream<Key, Option<i64>> {
    fn into_handle(self) -> Handle {
        Handle::OptLongStream(self)
    }
}

/// A global store's processor (`global_store`): puts each record's value with its timestamp, deletes on
/// a null value, skips a null key.
struct KeepGlobal(String);

impl Processor<Key, Val, (), ()> for KeepGlobal {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<Key, Val>,
    ) -> Result<(), StreamsError> {
        if record.key.0 == Val::Null {
            return Ok(());
        }
        let handle = ctx.store_handle::<Key, ValueAndTimestamp<Val>>(&self.0)?;
        let store = ctx.store_mut(handle)?;
        match record.value {
            Val::Null => store.delete(&record.key).map(drop),
            value => store.put(&record.key, &ValueAndTimestamp { value, timestamp: record.timestamp }),
        }
    }
}

/// A value mapper as a fixed-key processor (`process_values`) and as a table's value transformer
/// (`transform_values`, which maps deletes too: a null in and out is a delete).
struct MapValue(f::ValueMapper);

impl<V: Dyn> FixedKeyProcessor<Key, V, Val> for MapValue {
    fn process(
        &mut self,
        ctx: &mut FixedKeyProcessorContext<'_, Key, Val>,
        record: FixedKeyRecord<Key, V>,
    ) -> Result<(), StreamsError> {
        let value = (self.0)(&record.key().0, record.value.to_val());
        ctx.forward(record.with_value(value))
    }
}

impl<V: Dyn> ValueTransformerWithKey<Key, V, Val> for MapValue {
    fn transform(
        &mut self,
        _: &mut ProcessingContext<'_>,
        key: &Key,
        value: Option<&V>,
    ) -> Result<Option<Val>, StreamsError> {
        Ok(match (self.0)(&key.0, value.map_or(Val::Null, Dyn::to_val)) {
            Val::Null => None,
            value => Some(value),
        })
    }
}

/// A key selector as a processor (`process`): forwards each record with the selected key.
struct Rekey(f::KeySelector);

impl<V: Dyn> Processor<Key, V, Key, V> for Rekey {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, Key, V>, record: Record<Key, V>) -> Result<(), StreamsError> {
        let key = Key((self.0)(&record.key.0, &record.value.to_val()));
        ctx.forward(record.with_key(key))
    }
}
