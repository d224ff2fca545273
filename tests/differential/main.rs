//! The differential suite: every case of `tests/differential/cases/`, built with this library's DSL and
//! run through its `TopologyTestDriver`, compared with what Apache Kafka Streams did with the same case
//! (`tests/differential/expected/`, written by the Java runner). `tests/differential/README.md` has the
//! formats; `DIFF_CASE=<substring>` runs only the matching cases.

mod case;
mod functions;
mod generator;
mod topology;
mod values;

use std::collections::{BTreeSet, HashMap};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kstreams::prelude::*;
use kstreams::serde::{SessionWindowedSerde, TimeWindowedSerde};
use kstreams::store::{TypedKeyValueStore, ValueAndTimestamp};
use kstreams::testing::TestInputTopic;
use kstreams::Headers;
use serde_json::Value as Json;

use case::{Case, Expected, StoreFormat};
use values::{key_serde, Key, Val, ValSerde};

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/differential")
}

#[test]
fn kstreams_agrees_with_kafka_streams() {
    let started = Instant::now();
    let cases = case::load_cases(&suite_dir().join("cases")).unwrap_or_else(|e| panic!("{e}"));
    let filter = std::env::var("DIFF_CASE").ok();
    let (mut failures, mut skipped, mut ran) = (Vec::new(), Vec::new(), 0);
    for case in cases.iter().filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f))) {
        ran += 1;
        match panic::catch_unwind(AssertUnwindSafe(|| run_case(case))) {
            Ok(Ok(notes)) => skipped.extend(notes.into_iter().map(|n| format!("{}: {n}", case.name))),
            Ok(Err(e)) => failures.push(format!("{} ({}): {e}", case.name, case.about)),
            Err(panic) => failures.push(format!("{}: panicked: {}", case.name, panic_message(&panic))),
        }
    }
    println!("differential: {ran} cases in {:.1?}, {} failed", started.elapsed(), failures.len());
    for note in &skipped {
        println!("  exception  {note}");
    }
    assert!(ran > 0, "no case matches DIFF_CASE={filter:?}");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases differ from Kafka Streams:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every case has a unique name and an expected file, and every expected file a case.
#[test]
fn cases_and_expected_files_match() {
    let cases = case::load_cases(&suite_dir().join("cases")).unwrap_or_else(|e| panic!("{e}"));
    let mut names = BTreeSet::new();
    for case in &cases {
        assert!(names.insert(case.name.clone()), "two cases are named {}", case.name);
    }
    let files: BTreeSet<String> = std::fs::read_dir(suite_dir().join("expected"))
        .expect("tests/differential/expected")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .collect();
    let missing: Vec<_> = names.difference(&files).collect();
    let stale: Vec<_> = files.difference(&names).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "run scripts/differential.sh: cases without expected files {missing:?}, expected files without cases {stale:?}"
    );
}

/// Runs one case against its expected file; gives the comparisons it skipped for listed exceptions.
fn run_case(case: &Case) -> Result<Vec<String>, String> {
    let expected = case::load_expected(&suite_dir().join("expected").join(format!("{}.json", case.name)))?;
    if expected.case != case.name {
        return Err(format!("the expected file is for case {}", expected.case));
    }
    if let Some(error) = &expected.error {
        return match fails(case) {
            Some(_) => Ok(Vec::new()),
            None => Err(format!("Kafka Streams fails ({error}) and this library does not")),
        };
    }
    run_all(case, &expected)
}

/// Kafka Streams failed on the case (its runner keeps no runs then): this library's error in building
/// the topology or in piping some seed's inputs, if it fails too. Unlike the seeds' bookkeeping, which
/// has nothing to check then, a case the harness cannot build still counts as failing: keep error cases
/// to operators other cases build.
fn fails(case: &Case) -> Option<String> {
    let topology = match topology::build(case) {
        Ok(topology) => topology,
        Err(e) => return Some(e),
    };
    drop(topology);
    for seed in generator::seeds(&case.input) {
        let inputs = generator::generate(&case.input, seed).ok()?;
        let config = driver_config(case);
        let mut driver = match TopologyTestDriver::with_config(topology::build(case).ok()?, config) {
            Ok(driver) => driver,
            Err(e) => return Some(e.to_string()),
        };
        for record in &inputs {
            let (k, v) = generator::topic_format(&case.input, &record.topic)?;
            let topic = driver.input_topic_with(&record.topic, key_serde(k), Arc::new(ValSerde(v)));
            if let Err(e) = driver.pipe(&topic, Key(record.key.clone()), record.value.clone(), record.timestamp) {
                return Some(format!("seed {seed}: piping {record:?}: {e}"));
            }
        }
    }
    None
}

/// The driver's settings for a case: Kafka Streams' runner uses the same (README.md, "Expected files").
fn driver_config(case: &Case) -> TestDriverConfig {
    TestDriverConfig {
        application_id: "diff".into(),
        cache_max_bytes: case.cache_max_bytes,
        ..TestDriverConfig::default()
    }
}

fn run_all(case: &Case, expected: &Expected) -> Result<Vec<String>, String> {
    let mut skipped = Vec::new();
    let topology = topology::build(case)?;
    let describe = topology.describe().to_string();
    match case.exception("describe") {
        Some(reason) => skipped.push(format!("describe: {reason}")),
        None => compare_lines("describe()", &expected.describe, &lines(&describe))?,
    }
    for what in ["outputs", "stores"] {
        if let Some(reason) = case.exception(what) {
            skipped.push(format!("{what}: {reason}"));
        }
    }
    let seeds: Vec<u64> = expected.runs.iter().map(|r| r.seed).collect();
    if seeds != generator::seeds(&case.input) {
        return Err(format!(
            "the expected file has runs for seeds {seeds:?}, the case asks for {:?}",
            generator::seeds(&case.input)
        ));
    }
    for run in &expected.runs {
        let inputs = generator::generate(&case.input, run.seed)?;
        let hash = generator::fingerprint(&inputs);
        if inputs.len() != run.inputs || hash != run.input_hash {
            return Err(format!(
                "seed {}: generated {} inputs hashing to {hash}, Kafka Streams' runner {} hashing to {}: the two generators differ",
                run.seed,
                inputs.len(),
                run.inputs,
                run.input_hash
            ));
        }
        let config = driver_config(case);
        let mut driver = TopologyTestDriver::with_config(topology::build(case)?, config).map_err(|e| e.to_string())?;
        let mut topics: HashMap<&str, TestInputTopic<Key, Val>> = HashMap::new();
        for record in &inputs {
            if !topics.contains_key(record.topic.as_str()) {
                let (k, v) = generator::topic_format(&case.input, &record.topic)
                    .ok_or_else(|| format!("input topic {} has no formats in input.topics", record.topic))?;
                topics
                    .insert(&record.topic, driver.input_topic_with(&record.topic, key_serde(k), Arc::new(ValSerde(v))));
            }
            let topic = &topics[record.topic.as_str()];
            driver
                .pipe(topic, Key(record.key.clone()), record.value.clone(), record.timestamp)
                .map_err(|e| format!("seed {}: piping {record:?}: {e}", run.seed))?;
        }
        let seed = run.seed;
        if case.exception("outputs").is_none() {
            let mut outputs = Vec::new();
            for o in &case.outputs {
                let reading = |e: StreamsError| format!("seed {seed}: reading {}: {e}", o.topic);
                let value_serde = Arc::new(ValSerde(o.value));
                if let Some(inner) = o.key.windowed() {
                    // Kafka's layout has no window end: shown as `[key, start]`.
                    let key_serde = Arc::new(TimeWindowedSerde::new(key_serde(inner), Duration::MAX));
                    let topic = driver.output_topic_with::<Windowed<Key>, Val>(&o.topic, key_serde, value_serde);
                    for r in driver.read_records(&topic).map_err(reading)? {
                        let key = Json::Array(vec![r.key.key.0.to_json(), Json::from(r.key.window.start)]);
                        outputs.push(output_line(&o.topic, key, r.value, r.timestamp, &r.headers));
                    }
                    continue;
                }
                if let Some(inner) = o.key.session() {
                    // Kafka's layout has both ends: shown as `[key, start, end]`.
                    let key_serde = Arc::new(SessionWindowedSerde::new(key_serde(inner)));
                    let topic = driver.output_topic_with::<Windowed<Key>, Val>(&o.topic, key_serde, value_serde);
                    for r in driver.read_records(&topic).map_err(reading)? {
                        let key = session_key(&r.key);
                        outputs.push(output_line(&o.topic, key, r.value, r.timestamp, &r.headers));
                    }
                    continue;
                }
                let topic = driver.output_topic_with::<Key, Val>(&o.topic, key_serde(o.key), value_serde);
                for r in driver.read_records(&topic).map_err(reading)? {
                    outputs.push(output_line(&o.topic, r.key.0.to_json(), r.value, r.timestamp, &r.headers));
                }
            }
            compare_records(&format!("seed {seed}: outputs"), &run.outputs, &outputs)?;
        }
        if case.exception("stores").is_none() {
            for store in &case.stores {
                let actual = store_lines(&mut driver, store).map_err(|e| format!("seed {seed}: {e}"))?;
                let expected = run.stores.get(&store.name).map(Vec::as_slice).unwrap_or_default();
                compare_records(&format!("seed {seed}: store {}", store.name), expected, &actual)?;
            }
        }
    }
    Ok(skipped)
}

fn output_line(topic: &str, key: Json, value: Val, timestamp: i64, headers: &Headers) -> Json {
    let mut line = vec![Json::from(topic), key, value.to_json(), Json::from(timestamp)];
    if !headers.is_empty() {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                Json::Array(vec![Json::from(k), v.map_or(Json::Null, |v| Json::from(String::from_utf8_lossy(v)))])
            })
            .collect();
        line.push(Json::Array(headers));
    }
    Json::Array(line)
}

/// A session-windowed key: `[key, start, end]`.
fn session_key(key: &Windowed<Key>) -> Json {
    Json::Array(vec![key.key.0.to_json(), Json::from(key.window.start), Json::from(key.window.end)])
}

/// The store's entries as `[key, value, timestamp]`, whichever of the suite's value types it holds.
fn store_lines(driver: &mut TopologyTestDriver, store: &StoreFormat) -> Result<Vec<Json>, String> {
    fn rows<V: values::Dyn>(entries: Vec<(Key, ValueAndTimestamp<V>)>) -> Vec<Json> {
        entries
            .into_iter()
            .map(|(k, v)| Json::Array(vec![k.0.to_json(), v.value.to_val().to_json(), Json::from(v.timestamp)]))
            .collect()
    }
    /// A window store's rows: `[[key, start, end], value, timestamp]`.
    fn windowed_rows<V: values::Dyn>(entries: Vec<(Windowed<Key>, ValueAndTimestamp<V>)>) -> Vec<Json> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let key = Json::Array(vec![k.key.0.to_json(), Json::from(k.window.start), Json::from(k.window.end)]);
                Json::Array(vec![key, v.value.to_val().to_json(), Json::from(v.timestamp)])
            })
            .collect()
    }
    /// A session store's rows: `[[key, start, end], value, null]` (a session store keeps no timestamp).
    fn session_rows<V: values::Dyn>(entries: Vec<(Windowed<Key>, V)>) -> Vec<Json> {
        entries.into_iter().map(|(k, v)| Json::Array(vec![session_key(&k), v.to_val().to_json(), Json::Null])).collect()
    }
    let name = store.name.as_str();
    let read = |e: StreamsError| format!("store {name}: {e}");
    if store.key.session().is_some() {
        if let Some(s) = driver.key_value_store::<Windowed<Key>, Val>(name) {
            return Ok(session_rows(s.all().and_then(Iterator::collect).map_err(read)?));
        }
        if let Some(s) = driver.key_value_store::<Windowed<Key>, i64>(name) {
            return Ok(session_rows(s.all().and_then(Iterator::collect).map_err(read)?));
        }
        return Err(format!("no session store {name} holding the suite's types"));
    }
    if let Some(s) = driver.key_value_store::<Windowed<Key>, ValueAndTimestamp<Val>>(name) {
        return Ok(windowed_rows(s.all().and_then(Iterator::collect).map_err(read)?));
    }
    if let Some(s) = driver.key_value_store::<Windowed<Key>, ValueAndTimestamp<i64>>(name) {
        return Ok(windowed_rows(s.all().and_then(Iterator::collect).map_err(read)?));
    }
    // A task's store or a global one.
    let all = |s: &mut TypedKeyValueStore<Key, ValueAndTimestamp<Val>>| s.all().and_then(Iterator::collect);
    if let Some(entries) = driver.with_key_value_store(name, all) {
        return Ok(rows(entries.map_err(read)?));
    }
    let all = |s: &mut TypedKeyValueStore<Key, ValueAndTimestamp<i64>>| s.all().and_then(Iterator::collect);
    if let Some(entries) = driver.with_key_value_store(name, all) {
        return Ok(rows(entries.map_err(read)?));
    }
    Err(format!("no store {name} holding timestamped values of the suite's types"))
}

fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn compare_lines(what: &str, expected: &[String], actual: &[String]) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let at = expected.iter().zip(actual).position(|(e, a)| e != a).unwrap_or(expected.len().min(actual.len()));
    Err(format!(
        "{what} differs at line {}:\n  Kafka Streams: {}\n  kstreams:      {}\n--- Kafka Streams\n{}\n--- kstreams\n{}",
        at + 1,
        expected.get(at).map_or("(ends)", String::as_str),
        actual.get(at).map_or("(ends)", String::as_str),
        expected.join("\n"),
        actual.join("\n")
    ))
}

fn compare_records(what: &str, expected: &[Json], actual: &[Json]) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let at = expected.iter().zip(actual).position(|(e, a)| e != a).unwrap_or(expected.len().min(actual.len()));
    let show = |records: &[Json]| {
        records[at.saturating_sub(2)..records.len().min(at + 3)]
            .iter()
            .map(|r| format!("    {r}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Err(format!(
        "{what}: Kafka Streams has {} records, kstreams {}; the first difference is record {at}:\n  Kafka Streams:\n{}\n  kstreams:\n{}",
        expected.len(),
        actual.len(),
        show(expected),
        show(actual)
    ))
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
