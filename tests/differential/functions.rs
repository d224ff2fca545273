//! The case files' functions, by name, as tests/differential/README.md defines them (the Java runner's
//! `Functions.java` is the other half). A function given a value of the wrong type panics, as the Java
//! code would throw; the runner reports it as a broken case.

use std::sync::Arc;

use crate::values::Val;

pub(crate) type Predicate = Arc<dyn Fn(&Val, &Val) -> bool + Send + Sync>;
pub(crate) type ValueMapper = Arc<dyn Fn(&Val, Val) -> Val + Send + Sync>;
pub(crate) type KeySelector = Arc<dyn Fn(&Val, &Val) -> Val + Send + Sync>;
pub(crate) type KeyValueMapper = Arc<dyn Fn(Val, Val) -> (Val, Val) + Send + Sync>;
pub(crate) type FlatValues = Arc<dyn Fn(Val) -> Vec<Val> + Send + Sync>;
pub(crate) type FlatKeyValues = Arc<dyn Fn(Val, Val) -> Vec<(Val, Val)> + Send + Sync>;
pub(crate) type Reducer = Arc<dyn Fn(Val, Val) -> Val + Send + Sync>;
pub(crate) type Initializer = Arc<dyn Fn() -> Val + Send + Sync>;
pub(crate) type Aggregator = Arc<dyn Fn(&Val, Val, Val) -> Val + Send + Sync>;
pub(crate) type Merger = Arc<dyn Fn(&Val, Val, Val) -> Val + Send + Sync>;
/// Value joiners `(value, other value) -> result`; a side without a value is `Val::Null`.
pub(crate) type Joiner = Arc<dyn Fn(&Val, &Val) -> Val + Send + Sync>;
pub(crate) type TopicChooser = Arc<dyn Fn(&Val, &Val) -> String + Send + Sync>;
pub(crate) type TimestampExtractor = Arc<dyn Fn(&Val, i64) -> i64 + Send + Sync>;
pub(crate) type Partitioner = Arc<dyn Fn(&Val, &Val, u32) -> Option<Vec<i32>> + Send + Sync>;

/// `name` or `name:arg`.
fn split(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

fn long_arg(spec: &str, arg: &str) -> Result<i64, String> {
    arg.parse().map_err(|_| format!("function {spec}: the argument {arg:?} is not a long"))
}

fn unknown(kind: &str, spec: &str) -> String {
    format!("no {kind} named {spec:?} (tests/differential/README.md lists them)")
}

pub(crate) fn predicate(spec: &str) -> Result<Predicate, String> {
    let (name, arg) = split(spec);
    let arg_s = arg.to_string();
    Ok(match name {
        "always" => Arc::new(|_, _| true),
        "never" => Arc::new(|_, _| false),
        "key_null" => Arc::new(|k, _| *k == Val::Null),
        "value_null" => Arc::new(|_, v| *v == Val::Null),
        "value_even" => Arc::new(|_, v| matches!(v, Val::Long(n) if n % 2 == 0)),
        "value_odd" => Arc::new(|_, v| matches!(v, Val::Long(n) if n % 2 != 0)),
        "value_gt" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| matches!(v, Val::Long(x) if *x > n))
        }
        "value_lt" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| matches!(v, Val::Long(x) if *x < n))
        }
        "key_eq" => Arc::new(move |k, _| matches!(k, Val::Str(s) if *s == arg_s)),
        "key_starts" => Arc::new(move |k, _| matches!(k, Val::Str(s) if s.starts_with(&arg_s))),
        "value_len_gt" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| matches!(v, Val::Str(s) if java_length(s) > n))
        }
        _ => return Err(unknown("predicate", spec)),
    })
}

pub(crate) fn value_mapper(spec: &str) -> Result<ValueMapper, String> {
    let (name, arg) = split(spec);
    let f = spec.to_string();
    Ok(match name {
        "times" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| on_long(v, &f, |x| x.wrapping_mul(n)))
        }
        "plus" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| on_long(v, &f, |x| x.wrapping_add(n)))
        }
        "null_if_gt" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| match v {
                Val::Null => Val::Null,
                v if v.long(&f) > n => Val::Null,
                v => v,
            })
        }
        "to_string" => Arc::new(|_, v| match v {
            Val::Null => Val::Null,
            v => Val::Str(v.java_string()),
        }),
        "length" => Arc::new(move |_, v| match v {
            Val::Null => Val::Null,
            v => Val::Long(java_length(v.str(&f))),
        }),
        "upper" => Arc::new(move |_, v| match v {
            Val::Null => Val::Null,
            v => Val::Str(v.str(&f).to_uppercase()),
        }),
        "to_null" => Arc::new(|_, _| Val::Null),
        "key_value" => Arc::new(|k, v| Val::Str(format!("{}:{}", k.java_string(), v.java_string()))),
        _ => return Err(unknown("value mapper", spec)),
    })
}

pub(crate) fn key_selector(spec: &str) -> Result<KeySelector, String> {
    let (name, arg) = split(spec);
    let f = spec.to_string();
    Ok(match name {
        "value_mod" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| value_mod(v, n, &f))
        }
        "value" => Arc::new(|_, v| v.clone()),
        "key_prefix" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |k, _| prefix(k, n, &f))
        }
        "key_upper" => Arc::new(move |k, _| match k {
            Val::Null => Val::Null,
            k => Val::Str(k.str(&f).to_uppercase()),
        }),
        "to_null" => Arc::new(|_, _| Val::Null),
        "value_unless" => {
            let unless = arg.to_string();
            Arc::new(move |_, v| match v {
                Val::Str(s) if *s == unless => Val::Null,
                v => v.clone(),
            })
        }
        _ => return Err(unknown("key selector", spec)),
    })
}

pub(crate) fn key_value_mapper(spec: &str) -> Result<KeyValueMapper, String> {
    let (name, arg) = split(spec);
    let f = spec.to_string();
    Ok(match name {
        "swap" => Arc::new(|k, v| (v, k)),
        "identity" => Arc::new(|k, v| (k, v)),
        "rekey_value_mod" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| (value_mod(&v, n, &f), v))
        }
        "rekey_key_prefix" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |k, v| (prefix(&k, n, &f), v))
        }
        _ => return Err(unknown("key-value mapper", spec)),
    })
}

pub(crate) fn flat_values(spec: &str) -> Result<FlatValues, String> {
    let (name, arg) = split(spec);
    let f = spec.to_string();
    Ok(match name {
        "repeat_mod" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |v| match v {
                Val::Null => Vec::new(),
                v => vec![v.clone(); v.long(&f).rem_euclid(n) as usize],
            })
        }
        "chars" => Arc::new(move |v| match v {
            Val::Null => Vec::new(),
            v => java_chars(v.str(&f)).into_iter().map(Val::Str).collect(),
        }),
        _ => return Err(unknown("flat value mapper", spec)),
    })
}

pub(crate) fn flat_key_values(spec: &str) -> Result<FlatKeyValues, String> {
    let (name, arg) = split(spec);
    Ok(match name {
        "fan_out" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |k, v| (0..n).map(|i| (Val::Str(format!("{}#{i}", k.java_string())), v.clone())).collect())
        }
        _ => return Err(unknown("flat key-value mapper", spec)),
    })
}

pub(crate) fn reducer(spec: &str) -> Result<Reducer, String> {
    let f = spec.to_string();
    Ok(match spec {
        "sum" => Arc::new(move |a, v| Val::Long(a.long(&f).wrapping_add(v.long(&f)))),
        "sub" => Arc::new(move |a, v| Val::Long(a.long(&f).wrapping_sub(v.long(&f)))),
        "max" => Arc::new(move |a, v| Val::Long(a.long(&f).max(v.long(&f)))),
        "concat" => Arc::new(|a, v| Val::Str(format!("{},{}", a.java_string(), v.java_string()))),
        "latest" => Arc::new(|_, v| v),
        _ => return Err(unknown("reducer", spec)),
    })
}

pub(crate) fn initializer(spec: &str) -> Result<Initializer, String> {
    Ok(match spec {
        "zero" => Arc::new(|| Val::Long(0)),
        "empty" => Arc::new(|| Val::Str(String::new())),
        _ => return Err(unknown("initializer", spec)),
    })
}

pub(crate) fn aggregator(spec: &str) -> Result<Aggregator, String> {
    let f = spec.to_string();
    Ok(match spec {
        "sum" => Arc::new(move |_, v, a| Val::Long(a.long(&f).wrapping_add(v.long(&f)))),
        "sub" => Arc::new(move |_, v, a| Val::Long(a.long(&f).wrapping_sub(v.long(&f)))),
        "count_up" => Arc::new(move |_, _, a| Val::Long(a.long(&f).wrapping_add(1))),
        "count_down" => Arc::new(move |_, _, a| Val::Long(a.long(&f).wrapping_sub(1))),
        "concat" => Arc::new(|_, v, a| Val::Str(format!("{},{}", a.java_string(), v.java_string()))),
        "concat_minus" => Arc::new(|_, v, a| Val::Str(format!("{}-{}", a.java_string(), v.java_string()))),
        _ => return Err(unknown("aggregator", spec)),
    })
}

/// Session mergers `(k, aggregate so far, session's aggregate) -> aggregate`.
pub(crate) fn merger(spec: &str) -> Result<Merger, String> {
    let f = spec.to_string();
    Ok(match spec {
        "sum" => Arc::new(move |_, a, b| Val::Long(a.long(&f).wrapping_add(b.long(&f)))),
        "concat" => Arc::new(|_, a, b| Val::Str(format!("{}|{}", a.java_string(), b.java_string()))),
        _ => return Err(unknown("merger", spec)),
    })
}

/// Value joiners: `pair` writes `<value>+<other>` (Java's string concatenation, `null` for a missing side).
pub(crate) fn joiner(spec: &str) -> Result<Joiner, String> {
    Ok(match spec {
        "pair" => Arc::new(|a, b| Val::Str(format!("{}+{}", a.java_string(), b.java_string()))),
        _ => return Err(unknown("joiner", spec)),
    })
}

fn on_long(v: Val, f: &str, op: impl Fn(i64) -> i64) -> Val {
    match v {
        Val::Null => Val::Null,
        v => Val::Long(op(v.long(f))),
    }
}

/// `"m" + Math.floorMod(v, n)`, null for a null value.
fn value_mod(v: &Val, n: i64, f: &str) -> Val {
    match v {
        Val::Null => Val::Null,
        v => Val::Str(format!("m{}", v.long(f).rem_euclid(n))),
    }
}

/// The first `n` characters (code points) of a string key, all of it when shorter.
fn prefix(k: &Val, n: i64, f: &str) -> Val {
    match k {
        Val::Null => Val::Null,
        k => Val::Str(k.str(f).chars().take(n as usize).collect()),
    }
}

/// A string's length in characters (code points), as the README defines it for both runners.
fn java_length(s: &str) -> i64 {
    s.chars().count() as i64
}

/// One string per character (code point).
fn java_chars(s: &str) -> Vec<String> {
    s.chars().map(String::from).collect()
}

/// Multicast partitioners `(k, v, partitions) -> partitions` (for `to`'s `partitioner`).
pub(crate) fn partitioner(spec: &str) -> Result<Partitioner, String> {
    let (name, arg) = split(spec);
    Ok(match name {
        // v mod n copies, in partitions 0, 1, ...: none (dropped) for 0; the default for a non-long.
        "copies_value_mod" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v, _| match v {
                Val::Long(l) => Some((0..l.rem_euclid(n) as i32).collect()),
                _ => None,
            })
        }
        _ => return Err(unknown("partitioner", spec)),
    })
}

/// Topic choosers `(k, v) -> topic` (for `to_dynamic`).
pub(crate) fn topic_chooser(spec: &str) -> Result<TopicChooser, String> {
    let (name, arg) = split(spec);
    Ok(match name {
        "topic_value_mod" => {
            let n = long_arg(spec, arg)?;
            Arc::new(move |_, v| match v {
                Val::Long(l) => format!("out-{}", l.rem_euclid(n)),
                _ => "out-other".to_string(),
            })
        }
        _ => return Err(unknown("topic chooser", spec)),
    })
}

/// Timestamp extractors `(v, partition time) -> timestamp` (for a source's `timestamp_extractor`).
pub(crate) fn timestamp_extractor(spec: &str) -> Result<TimestampExtractor, String> {
    let owned = spec.to_string();
    Ok(match split(spec).0 {
        // The value; -1 (skipped) for null.
        "value" => Arc::new(move |v, _| match v {
            Val::Null => -1,
            v => v.long(&owned),
        }),
        // The value when it is a long of at least 0, else the partition's time.
        "value_or_partition_time" => Arc::new(move |v, partition_time| match v {
            Val::Null => partition_time,
            v => Some(v.long(&owned)).filter(|&t| t >= 0).unwrap_or(partition_time),
        }),
        _ => return Err(unknown("timestamp extractor", spec)),
    })
}
