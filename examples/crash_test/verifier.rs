//! The verifier: reads the input and every output after all instances are down and compares them with a
//! model computed by a plain loop (Kafka Streams' EosTestDriver's checks, see the module doc of main.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::generator::Acked;
use crate::kafka::{self, Record};
use crate::topology::{amount, joined, joined_input, region, window_key, Aggregate, Names, GRACE, PARTITIONS, WINDOW};

/// Findings: figures for the summary, and failures (a run passes only without any).
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) lines: Vec<String>,
    failures: usize,
}

impl Report {
    pub(crate) fn note(&mut self, line: String) {
        self.lines.push(line);
    }

    pub(crate) fn fail(&mut self, line: String) {
        self.failures += 1;
        self.lines.push(format!("FAIL: {line}"));
    }

    pub(crate) fn passed(&self) -> bool {
        self.failures == 0
    }
}

pub(crate) fn verify(
    bootstrap: &str,
    names: &Names,
    exactly_once: bool,
    acked: Vec<Acked>,
    failed: Vec<String>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let input = kafka::read_all(bootstrap, &names.data, PARTITIONS, false)?;
    check_input(&mut report, &input, acked, failed);
    check_open_transactions(&mut report, bootstrap, names)?;

    let echo = kafka::read_all(bootstrap, &names.echo, PARTITIONS, true)?;
    if exactly_once {
        check_echo_exact(&mut report, &input, &echo);
    } else {
        check_echo_at_least_once(&mut report, &input, &echo);
    }

    // Each key's input in order: a key lives in one partition, so partition order is key order.
    let mut amounts: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for record in input.iter().flatten() {
        amounts.entry(&record.key).or_default().push(record.value.map_or(0, amount));
    }
    for (topic, aggregate) in names.aggregates() {
        let output = kafka::read_all(bootstrap, topic, PARTITIONS, true)?;
        check_aggregate(&mut report, topic, aggregate, &amounts, &output, exactly_once);
    }
    let joins = kafka::read_all(bootstrap, &names.joined, PARTITIONS, true)?;
    check_joined(&mut report, "stream-table join", &names.joined, &sum_join_model(&input), &joins, exactly_once);
    let regional = kafka::read_all(bootstrap, &names.regional, PARTITIONS, true)?;
    let model = global_join_model(&input);
    check_joined(&mut report, "stream-global table join", &names.regional, &model, &regional, exactly_once);
    let windows = kafka::read_all(bootstrap, &names.win, PARTITIONS, true)?;
    check_final_windows(&mut report, &names.win, &input, &windows, exactly_once);
    Ok(report)
}

/// The windowed maximum with `suppress(until_window_closes)`: every window that has closed by the end
/// (its end plus the grace at or before the largest timestamp of its key's input partition, the stream
/// time of the task that aggregates it) has exactly one final result under exactly-once, at least one
/// under at-least-once, and every result is the model's maximum; no window still open has one.
/// The model takes each input partition's timestamps as never decreasing (one generator, the wall
/// clock): no input record is late, so every record counts in its window. A late record, which the
/// application would drop, would show here as a wrong result.
fn check_final_windows(
    report: &mut Report,
    topic: &str,
    input: &[Vec<Record>],
    output: &[Vec<Record>],
    exactly_once: bool,
) {
    let (size, grace) = (WINDOW.as_millis() as i64, GRACE.as_millis() as i64);
    let mut model: BTreeMap<String, i64> = BTreeMap::new();
    let mut open: BTreeSet<String> = BTreeSet::new();
    for partition in input {
        let stream_time = partition.iter().map(|r| r.timestamp).max().unwrap_or(-1);
        for record in partition {
            let start = record.timestamp - record.timestamp % size;
            let key = window_key(&record.key, start);
            let amount = record.value.map_or(0, amount);
            if start + size + grace <= stream_time {
                let max = model.entry(key).or_insert(amount);
                *max = (*max).max(amount);
            } else {
                open.insert(key);
            }
        }
    }
    let mut got: BTreeMap<&str, Vec<Option<i64>>> = BTreeMap::new();
    for record in output.iter().flatten() {
        got.entry(&record.key).or_default().push(record.value);
    }
    let (mut missing, mut duplicated, mut wrong, mut early) = (0usize, 0usize, Vec::new(), 0usize);
    for (key, max) in &model {
        match got.get(key.as_str()) {
            None => missing += 1,
            Some(values) => {
                duplicated += values.len() - 1;
                if let Some(bad) = values.iter().find(|v| **v != Some(*max)) {
                    wrong.push(format!("{key}: {bad:?} where the model has {max}"));
                }
            }
        }
    }
    for key in got.keys() {
        if !model.contains_key(*key) {
            if open.contains(*key) {
                early += 1;
            } else {
                wrong.push(format!("{key}: a window the input never had"));
            }
        }
    }
    let total: usize = got.values().map(Vec::len).sum();
    report.note(format!(
        "final windows ({topic}): {total} records; {} windows closed in the model, {} still open; missing {missing}; duplicated {duplicated}{}",
        model.len(),
        open.len(),
        if exactly_once { "" } else { " (allowed under at_least_once)" }
    ));
    if missing > 0 {
        report.fail(format!("final windows: {missing} closed windows have no final result"));
    }
    if exactly_once && duplicated > 0 {
        report.fail(format!("final windows: {duplicated} final results came more than once"));
    }
    if early > 0 {
        report.fail(format!("final windows: {early} windows still open have a result"));
    }
    if !wrong.is_empty() {
        report.fail(format!("final windows: {} wrong results, e.g. {}", wrong.len(), wrong[0]));
    }
}

/// What each key's records of a join must be.
type JoinModel<'a> = BTreeMap<&'a str, Vec<Option<i64>>>;

/// The stream-table join of each record with its key's running sum, which the record has updated.
fn sum_join_model(input: &[Vec<Record>]) -> JoinModel<'_> {
    let mut model = JoinModel::new();
    let mut sums: BTreeMap<&str, i64> = BTreeMap::new();
    for record in input.iter().flatten() {
        let Some(value) = record.value else { continue };
        let sum = sums.entry(&record.key).or_insert(0);
        *sum += amount(value);
        model.entry(&record.key).or_default().push(Some(joined(value, *sum)));
    }
    model
}

/// The join of each record with its key's region from the global table, written before the start.
fn global_join_model(input: &[Vec<Record>]) -> JoinModel<'_> {
    let mut model = JoinModel::new();
    for record in input.iter().flatten() {
        let Some(value) = record.value else { continue };
        model.entry(&record.key).or_default().push(Some(joined(value, region(&record.key))));
    }
    model
}

/// A join's outputs against `model`: under exactly-once each key's outputs are exactly its inputs, in
/// order, each joined as the model says; under at-least-once every input record has an output
/// (duplicates allowed; a replayed record meets a sum that already counted it, so the joined values are
/// not checked).
fn check_joined(
    report: &mut Report,
    what: &str,
    topic: &str,
    model: &JoinModel<'_>,
    output: &[Vec<Record>],
    exactly_once: bool,
) {
    let mut got: BTreeMap<&str, Vec<Option<i64>>> = BTreeMap::new();
    for record in output.iter().flatten() {
        got.entry(&record.key).or_default().push(record.value);
    }
    let total: usize = got.values().map(Vec::len).sum();
    let (mut lost, mut wrong) = (0usize, Vec::new());
    for (key, want) in model {
        let have = got.get(key).cloned().unwrap_or_default();
        if exactly_once {
            if have != *want {
                let at = have.iter().zip(want).position(|(h, w)| h != w).unwrap_or(have.len().min(want.len()));
                wrong.push(format!(
                    "{key}: {} outputs, model {}; first difference at {at}: {:?} where the model has {:?}",
                    have.len(),
                    want.len(),
                    have.get(at).copied().flatten(),
                    want.get(at).copied().flatten()
                ));
            }
        } else {
            let seen: BTreeSet<i64> = have.iter().flatten().map(|v| joined_input(*v)).collect();
            lost += want.iter().flatten().filter(|v| !seen.contains(&joined_input(**v))).count();
        }
    }
    let unknown = got.keys().filter(|k| !model.contains_key(*k)).count();
    report.note(format!(
        "{what} ({topic}): {total} records for {} keys; {} keys differ from the model; lost {lost}",
        got.len(),
        wrong.len()
    ));
    if !wrong.is_empty() {
        report.fail(format!("{what}: {} keys differ from the model, e.g. {}", wrong.len(), wrong[0]));
    }
    if lost > 0 {
        report.fail(format!("{what}: {lost} input records have no output"));
    }
    if unknown > 0 {
        report.fail(format!("{what}: {unknown} keys that the input never had"));
    }
}

/// Every acknowledged record is in the input topic where the broker said it put it, or, when the
/// acknowledgement carries no offset, somewhere in its partition: librdkafka acknowledges with offset
/// -1001 a record whose batch its idempotent producer sent again after a leader change and the broker
/// answered as a duplicate of the first send, which stored it (CI run on 0c99ba3).
fn check_input(report: &mut Report, input: &[Vec<Record>], acked: Vec<Acked>, failed: Vec<String>) {
    let total: usize = input.iter().map(Vec::len).sum();
    let at: BTreeMap<(i32, i64), &Record> = input.iter().flatten().map(|r| ((r.partition, r.offset), r)).collect();
    let anywhere: BTreeSet<(i32, &str, i64)> =
        input.iter().flatten().filter_map(|r| Some((r.partition, r.key.as_str(), r.value?))).collect();
    let missing: Vec<&Acked> = acked
        .iter()
        .filter(|a| {
            if a.offset < 0 {
                return !anywhere.contains(&(a.partition, a.key.as_str(), a.value));
            }
            at.get(&(a.partition, a.offset)).is_none_or(|r| r.key != a.key || r.value != Some(a.value))
        })
        .collect();
    let unplaced = acked.iter().filter(|a| a.offset < 0).count() - missing.iter().filter(|a| a.offset < 0).count();
    report.note(format!(
        "input: {total} records in the data topic; {} acknowledged to the generator, {} deliveries failed",
        acked.len(),
        failed.len()
    ));
    if unplaced > 0 {
        report.note(format!("  ({unplaced} acknowledged without an offset, found by partition, key and value)"));
    }
    if !missing.is_empty() {
        report.fail(format!(
            "{} acknowledged input records are not in the data topic, e.g. {:?}",
            missing.len(),
            missing[0]
        ));
    }
    if let Some(first) = failed.first() {
        report.note(format!("  (a failed delivery may or may not have landed; the verifier uses the topic: {first})"));
    }
}

/// Exactly once: `echo` holds, partition by partition, exactly the input in the same order.
fn check_echo_exact(report: &mut Report, input: &[Vec<Record>], echo: &[Vec<Record>]) {
    let (mut lost, mut duplicated, mut total) = (0usize, 0usize, 0usize);
    for (p, (want, got)) in input.iter().zip(echo).enumerate() {
        total += got.len();
        let want: Vec<(&str, Option<i64>)> = want.iter().map(|r| (r.key.as_str(), r.value)).collect();
        let got: Vec<(&str, Option<i64>)> = got.iter().map(|r| (r.key.as_str(), r.value)).collect();
        if want == got {
            continue;
        }
        let (l, d) = loss_and_duplicates(&want, &got);
        lost += l;
        duplicated += d;
        let at = want.iter().zip(&got).position(|(w, g)| w != g).unwrap_or(want.len().min(got.len()));
        report.fail(format!(
            "echo partition {p} differs from the input from position {at}: input {:?}, echo {:?} ({l} lost, {d} duplicated)",
            want.get(at),
            got.get(at)
        ));
    }
    report.note(format!("echo: {total} records; lost {lost}; duplicated {duplicated}"));
}

/// At least once: every input record is in `echo`; duplicates are counted, not failed.
fn check_echo_at_least_once(report: &mut Report, input: &[Vec<Record>], echo: &[Vec<Record>]) {
    let want: Vec<(&str, Option<i64>)> = input.iter().flatten().map(|r| (r.key.as_str(), r.value)).collect();
    let got: Vec<(&str, Option<i64>)> = echo.iter().flatten().map(|r| (r.key.as_str(), r.value)).collect();
    let (lost, duplicated) = loss_and_duplicates(&want, &got);
    report.note(format!(
        "echo: {} records; lost {lost}; duplicated {duplicated} (allowed under at_least_once)",
        got.len()
    ));
    if lost > 0 {
        report.fail(format!("echo lost {lost} input records"));
    }
}

/// Records of `want` (all distinct: values carry a per-key sequence number) missing from `got`, and
/// records of `got` beyond one of each (a record not in `want` at all counts as a duplicate too).
fn loss_and_duplicates(want: &[(&str, Option<i64>)], got: &[(&str, Option<i64>)]) -> (usize, usize) {
    let want_set: BTreeSet<_> = want.iter().collect();
    let got_set: BTreeSet<_> = got.iter().collect();
    let lost = want.iter().filter(|r| !got_set.contains(r)).count();
    (lost, got.len() - got_set.len() + got_set.iter().filter(|r| !want_set.contains(*r)).count())
}

/// Exactly once: every key's outputs are exactly the running aggregate after each of its input
/// records. At least once: no update was lost, so the aggregate reached the model's final value (count
/// and sum at least that, as amounts are not negative and duplicates only add; min and max exactly, as
/// duplicates do not move them), and each key's last output is that extreme: a key ending on a lower
/// value had an update rolled back, which is what a paused instance's late writes do when nothing stops
/// them (Kafka Streams under at_least_once, KAFKA-12693; here the runtime's pause limit, and the owner
/// epochs on changelog records, with which a restore skips a former owner's late write).
fn check_aggregate(
    report: &mut Report,
    topic: &str,
    aggregate: Aggregate,
    amounts: &BTreeMap<&str, Vec<i64>>,
    output: &[Vec<Record>],
    exactly_once: bool,
) {
    let name = format!("{aggregate:?}").to_lowercase();
    let mut per_key: BTreeMap<&str, Vec<Option<i64>>> = BTreeMap::new();
    for record in output.iter().flatten() {
        per_key.entry(&record.key).or_default().push(record.value);
    }
    let total: usize = per_key.values().map(Vec::len).sum();
    let mut wrong_keys = Vec::new();
    let mut stale_last = 0usize;
    let mut surplus = 0i64;
    for (key, amounts) in amounts {
        let model: Vec<Option<i64>> = amounts
            .iter()
            .scan(None, |state, a| {
                *state = Some(aggregate.step(*state, *a));
                Some(*state)
            })
            .collect();
        let got = per_key.get(key).cloned().unwrap_or_default();
        surplus += got.len() as i64 - model.len() as i64;
        let ok = if exactly_once {
            got == model
        } else {
            let want = model.last().copied().flatten();
            let values = got.iter().flatten().copied();
            let reached = match aggregate {
                Aggregate::Min => values.min(),
                Aggregate::Sum | Aggregate::Max | Aggregate::Count => values.max(),
            };
            if reached.is_some() && got.last().copied().flatten() != reached {
                stale_last += 1;
            }
            match (aggregate, want, reached) {
                (_, Some(_), None) => false,
                (Aggregate::Count | Aggregate::Sum, Some(w), Some(r)) => r >= w,
                (_, w, r) => w == r,
            }
        };
        if !ok {
            let at = got.iter().zip(&model).position(|(g, m)| g != m).unwrap_or(got.len().min(model.len()));
            wrong_keys.push(format!(
                "{key}: {} outputs, model {}; first difference at update {at}: {:?} where the model has {:?}",
                got.len(),
                model.len(),
                got.get(at).copied().flatten(),
                model.get(at).copied().flatten()
            ));
        }
    }
    let unknown = per_key.keys().filter(|k| !amounts.contains_key(*k)).count();
    report.note(format!(
        "{name} ({topic}): {total} records for {} keys; {} keys differ from the model; {surplus} records beyond the model{}",
        per_key.len(),
        wrong_keys.len(),
        if exactly_once { "" } else { " (duplicates, allowed under at_least_once)" }
    ));
    if stale_last > 0 {
        report.fail(format!("{name}: {stale_last} keys end on a stale value: an update was rolled back"));
    }
    if !wrong_keys.is_empty() {
        report.fail(format!("{name}: {} keys differ from the model, e.g. {}", wrong_keys.len(), wrong_keys[0]));
    }
    if unknown > 0 {
        report.fail(format!("{name}: {unknown} keys that the input never had"));
    }
}

/// No transaction left open: on every partition of the outputs and of the application's internal
/// topics, the last stable offset equals the high watermark. A transaction of a killed instance is
/// aborted by the broker after the transaction timeout, so this waits up to a minute for that.
fn check_open_transactions(report: &mut Report, bootstrap: &str, names: &Names) -> anyhow::Result<()> {
    let committed = kafka::reader(bootstrap, "crash-test-verifier", true)?;
    let uncommitted = kafka::reader(bootstrap, "crash-test-verifier", false)?;
    let mut topics = kafka::topics_with_prefix(&committed, &names.app_id)?;
    for (topic, _) in names.aggregates() {
        topics.insert(topic.to_string(), PARTITIONS);
    }
    topics.insert(names.echo.clone(), PARTITIONS);
    topics.insert(names.joined.clone(), PARTITIONS);
    topics.insert(names.regional.clone(), PARTITIONS);
    let started = Instant::now();
    loop {
        let mut open = Vec::new();
        for (topic, partitions) in &topics {
            let partitions = kafka::open_transactions(&committed, &uncommitted, topic, *partitions)?;
            open.extend(partitions.into_iter().map(|p| format!("{topic}-{p}")));
        }
        if open.is_empty() {
            let partitions: i32 = topics.values().sum();
            report.note(format!(
                "open transactions: none (last stable offset = high watermark on all {partitions} partitions of {} topics, after {:.0} s)",
                topics.len(),
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            report.fail(format!("transactions still open a minute after the last instance stopped, on {open:?}"));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
