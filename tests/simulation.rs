//! Deterministic simulation (issue #5): many seeds of a stateful topology with a repartition and a join
//! with a global table, run by several instances on the embedded broker through crashes (with and
//! without their state), zombies, joins, leaves, restarts, refused sends and failed commits, under at_least_once
//! and exactly_once_v2. Each run ends by letting the instances catch up and close; then the committed
//! outputs and the stores' changelogs are compared with a model computed by a plain loop.
//!
//! The same again under `group.assignor=streams` with a standby of every task, and static members
//! (`group.instance.id`) on half the seeds (fewer seeds by default).
//!
//! `KSTREAMS_SIM_SEEDS` (default 200, 60 with standbys) seeds per guarantee, from `KSTREAMS_SIM_FIRST_SEED` (default 1);
//! `KSTREAMS_SIM_SEED=N` runs that one seed (a failure prints the seed to replay).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::embedded::EmbeddedBroker;
use kstreams::handler::error_chain;
use kstreams::prelude::*;
use kstreams::record::RawRecord;
use kstreams::serde::{from_bytes, to_bytes};
use kstreams::simulation::{AppFactory, FaultCounts, Simulation};

const APP: &str = "sim";
const PARTITIONS: i32 = 3;
const KEYS: u64 = 12;
/// Steps with input and faults; then the run settles.
const STEPS: u64 = 1_500;
/// A fault every this many steps on average.
const STEPS_PER_FAULT: f64 = 120.0;
const SETTLE_STEPS: u64 = 60_000;

/// Each key's weight, in the global table `weights`, written before the instances start.
fn weight(key: &str) -> i64 {
    key.trim_start_matches('k').parse::<i64>().unwrap_or(0) * 7 + 1
}

/// data -> echo; sum per key -> sum; count per key after a repartition -> cnt; each value joined with
/// its key's weight from the global table -> weighted.
fn topology() -> Result<Topology, StreamsError> {
    let builder = StreamsBuilder::new();
    let weights = builder.global_table::<String, i64>("weights");
    let data = builder.stream::<String, i64>("data");
    data.clone().to("echo");
    data.clone().join_global(&weights, |k, _| k.clone(), |v, w| v * 1_000 + w).to("weighted");
    data.clone().group_by_key().reduce(|a, b| a + b).to_stream().to("sum");
    data.select_key(|k, _| k.clone()).group_by_key().count().to_stream().to("cnt");
    Ok(builder.build()?)
}

/// Who runs the group in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// The default, `group.assignor=range`.
    Range,
    /// `group.assignor=streams` with a standby of every task (`num.standby.replicas=1`); with
    /// `acceptable.recovery.lag=0` on some seeds, so that tasks wait for warm-ups rather than move, and
    /// static members on half of them (a restart keeps its place in the group).
    Standbys,
}

fn app(guarantee: ProcessingGuarantee, threads: usize, group: Group, seed: u64) -> AppFactory {
    Arc::new(move || {
        let mut config = StreamsConfig::new(APP, "embedded");
        config.processing_guarantee = guarantee;
        if group == Group::Standbys {
            config.group_assignor = kstreams::config::GroupAssignor::Streams;
            config.num_standby_replicas = 1;
            if seed.is_multiple_of(3) {
                config.acceptable_recovery_lag = 0;
            }
            if (seed / 2) % 2 == 1 {
                // The simulation appends each slot's number.
                config.consumer_overrides.insert("group.instance.id".into(), "sim".into());
            }
        }
        config.num_stream_threads = threads;
        config.commit_interval = Some(std::time::Duration::from_millis(100));
        config.cache_max_bytes = 0;
        config.consumer_overrides.insert("session.timeout.ms".into(), "1500".into());
        config.producer_overrides.insert("transaction.timeout.ms".into(), "3000".into());
        Ok((topology()?, config))
    })
}

/// What one seed did.
struct Outcome {
    faults: FaultCounts,
    /// Transactions the broker aborted on timeout (a crashed instance's, a zombie's).
    timed_out: u64,
    steps: u64,
    records: usize,
    duplicates: usize,
    fingerprint: u64,
}

fn decode(records: &[RawRecord]) -> Vec<(i32, String, i64)> {
    records
        .iter()
        .map(|r| {
            let key = from_bytes(&*String::default_serde(), &r.topic, r.key.as_deref()).unwrap().unwrap_or_default();
            let value = from_bytes(&*i64::default_serde(), &r.topic, r.value.as_deref()).unwrap().unwrap_or(i64::MIN);
            (r.partition, key, value)
        })
        .collect()
}

/// Each key's values in order (a key lives in one partition).
fn per_key(records: &[(i32, String, i64)]) -> BTreeMap<String, Vec<i64>> {
    let mut keys: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (_, k, v) in records {
        keys.entry(k.clone()).or_default().push(*v);
    }
    keys
}

/// The latest value per key of a store's changelog (timestamped format: 8 bytes of timestamp first).
fn changelog_latest(broker: &EmbeddedBroker, store: &str, read_committed: bool) -> BTreeMap<String, i64> {
    let topic = broker.topics().into_iter().find(|t| t.contains(store) && t.ends_with("-changelog")).unwrap();
    let records = if read_committed { broker.read_committed(&topic) } else { broker.read_all(&topic) };
    let mut latest = BTreeMap::new();
    for r in records {
        let key = from_bytes(&*String::default_serde(), &r.topic, r.key.as_deref()).unwrap().unwrap_or_default();
        let bytes = r.value.unwrap_or_default();
        let value = bytes.get(bytes.len().saturating_sub(8)..).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes);
        latest.insert(key, value.unwrap_or(i64::MIN));
    }
    latest
}

/// Where the instances keep their RocksDB files: a memory file system where there is one, since a run
/// opens and closes stores hundreds of times and waiting for fsync on a disk dominated its time.
fn state_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn run_seed(seed: u64, guarantee: ProcessingGuarantee, group: Group) -> Result<Outcome, String> {
    let exactly_once = guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let root = state_root().join(format!("kstreams-sim-{}-{}-{group:?}-{seed}", std::process::id(), exactly_once));
    let _ = std::fs::remove_dir_all(&root);
    let outcome = simulate(seed, guarantee, group, root.clone());
    if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&root);
    }
    outcome.map_err(|e| format!("{e} (state under {})", root.display()))
}

fn simulate(seed: u64, guarantee: ProcessingGuarantee, group: Group, root: PathBuf) -> Result<Outcome, String> {
    let exactly_once = guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let broker_setup = |broker: &EmbeddedBroker| {
        for topic in ["data", "echo", "sum", "cnt", "weighted", "weights"] {
            broker.create_topic(topic, PARTITIONS);
        }
        for key in 0..KEYS {
            let key = format!("k{key}");
            let k = to_bytes(&*String::default_serde(), "weights", &key).expect("a key");
            let w = to_bytes(&*i64::default_serde(), "weights", &weight(&key)).expect("a weight");
            broker.append("weights", None, k, w, 0).expect("the topic weights");
        }
    };
    // Instances with one or two stream threads, by seed.
    let threads = 1 + (seed % 2) as usize;
    let mut sim = Simulation::new(seed, 3, 2, root, app(guarantee, threads, group, seed), broker_setup)
        .map_err(|e| error_chain(&e))?;

    // The input: each key's values in order, every value distinct (its sequence number).
    let mut input: Vec<(String, i64)> = Vec::new();
    for _ in 0..STEPS {
        if sim.rng().chance(0.3) {
            let key = format!("k{}", sim.rng().below(KEYS));
            let value = input.len() as i64 + 1;
            let bytes =
                (to_bytes(&*String::default_serde(), "data", &key), to_bytes(&*i64::default_serde(), "data", &value));
            let (Ok(k), Ok(v)) = bytes else { return Err("cannot encode the input".into()) };
            let now = sim.clock().now_ms();
            sim.broker().append("data", None, k, v, now).ok_or("no topic data")?;
            input.push((key, value));
        }
        if sim.rng().chance(1.0 / STEPS_PER_FAULT) {
            sim.random_fault().map_err(|e| error_chain(&e))?;
        }
        sim.step().map_err(|e| error_chain(&e))?;
    }
    let caught_up = |broker: &EmbeddedBroker| {
        broker.open_transactions() == 0
            && broker
                .topics()
                .iter()
                .filter(|t| *t == "data" || t.ends_with("-repartition"))
                .all(|t| broker.group_lag(APP, t) == 0)
    };
    sim.settle(SETTLE_STEPS, caught_up).map_err(|e| error_chain(&e))?;
    sim.shutdown();

    let broker = sim.broker();
    let read = |topic: &str| decode(&if exactly_once { broker.read_committed(topic) } else { broker.read_all(topic) });
    let mut model_sum: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut model_cnt: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (k, v) in &input {
        let sums = model_sum.entry(k.clone()).or_default();
        sums.push(sums.last().copied().unwrap_or(0) + v);
        let counts = model_cnt.entry(k.clone()).or_default();
        counts.push(counts.len() as i64 + 1);
    }
    let final_of = |model: &BTreeMap<String, Vec<i64>>| -> BTreeMap<String, i64> {
        model.iter().map(|(k, v)| (k.clone(), *v.last().expect("non-empty"))).collect()
    };

    // Echo: every input record, in each key's order; exactly once under exactly_once_v2.
    let echo = per_key(&read("echo"));
    let want = per_key(&input.iter().map(|(k, v)| (0, k.clone(), *v)).collect::<Vec<_>>());
    let echoed: usize = echo.values().map(Vec::len).sum();
    let mut lost = 0;
    for (key, values) in &want {
        let got = echo.get(key).cloned().unwrap_or_default();
        lost += values.iter().filter(|v| !got.contains(v)).count();
        if exactly_once && &got != values {
            return Err(format!("echo of {key} differs from the input: {got:?} where the input has {values:?}"));
        }
    }
    if lost > 0 {
        return Err(format!("echo lost {lost} of {} records", input.len()));
    }

    // Weighted: every input record joined with its key's weight from the global table (read whole by
    // each instance before it processed anything, after crashes with and without its state directory).
    let weighted = per_key(&read("weighted"));
    for (key, values) in &want {
        let joined: Vec<i64> = values.iter().map(|v| v * 1_000 + weight(key)).collect();
        let got = weighted.get(key).cloned().unwrap_or_default();
        let ok = if exactly_once { got == joined } else { joined.iter().all(|v| got.contains(v)) };
        if !ok {
            return Err(format!("weighted of {key}: {got:?}, the model {joined:?}"));
        }
    }

    // Aggregates: every update exactly under exactly_once_v2; under at_least_once each reached the
    // model's final value (duplicates may add, nothing may be missing).
    for (topic, model) in [("sum", &model_sum), ("cnt", &model_cnt)] {
        let got = per_key(&read(topic));
        for (key, updates) in model {
            let outputs = got.get(key).cloned().unwrap_or_default();
            let ok = if exactly_once { &outputs == updates } else { outputs.iter().max() >= updates.last() };
            if !ok {
                return Err(format!("{topic} of {key}: outputs {outputs:?}, model {updates:?}"));
            }
        }
    }
    // The stores, through their changelogs.
    for (store, model) in [("REDUCE", &model_sum), ("AGGREGATE", &model_cnt)] {
        let latest = changelog_latest(broker, store, exactly_once);
        for (key, want) in final_of(model) {
            let got = latest.get(&key).copied();
            let ok = if exactly_once { got == Some(want) } else { got >= Some(want) };
            if !ok {
                return Err(format!("the {store} store's changelog has {key} = {got:?}, the model {want}"));
            }
        }
    }
    if broker.open_transactions() > 0 {
        return Err(format!("{} transactions left open", broker.open_transactions()));
    }
    Ok(Outcome {
        faults: sim.faults(),
        timed_out: broker.transactions_timed_out(),
        steps: sim.steps(),
        records: input.len(),
        duplicates: echoed - input.len(),
        fingerprint: sim.fingerprint(),
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs the configured seeds (`default_seeds` unless `KSTREAMS_SIM_SEEDS` says); prints what they did,
/// and fails listing every failing seed.
fn run_seeds(guarantee: ProcessingGuarantee, group: Group, default_seeds: u64) {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let seeds: Vec<u64> = match env_u64("KSTREAMS_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("KSTREAMS_SIM_FIRST_SEED").unwrap_or(1);
            (first..first + env_u64("KSTREAMS_SIM_SEEDS").unwrap_or(default_seeds)).collect()
        }
    };
    let started = Instant::now();
    let (mut faults, mut steps, mut records, mut duplicates, mut timed_out) = (FaultCounts::default(), 0, 0, 0, 0);
    let mut failures = Vec::new();
    for &seed in &seeds {
        match run_seed(seed, guarantee, group) {
            Ok(outcome) => {
                let f = outcome.faults;
                faults.crashes += f.crashes;
                faults.state_lost += f.state_lost;
                faults.pauses += f.pauses;
                faults.joins += f.joins;
                faults.leaves += f.leaves;
                faults.restarts += f.restarts;
                faults.refused_sends += f.refused_sends;
                faults.failed_commits += f.failed_commits;
                steps += outcome.steps;
                records += outcome.records;
                duplicates += outcome.duplicates;
                timed_out += outcome.timed_out;
            }
            Err(error) => failures.push(format!("seed {seed}: {error}")),
        }
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "simulation ({guarantee:?}, {group:?}): {} seeds ({} failed) in {:.1} s: {:.0} seeds/min, {:.0} faults/min; {} steps, {} input records, {} duplicates in echo, {} transactions timed out; faults: {faults:?}",
        seeds.len(),
        failures.len(),
        minutes * 60.0,
        seeds.len() as f64 / minutes,
        faults.total() as f64 / minutes,
        steps,
        records,
        duplicates,
        timed_out,
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed (replay one with KSTREAMS_SIM_SEED=<seed> cargo test --test simulation <test>):\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

#[test]
fn simulated_seeds_lose_nothing_under_at_least_once() {
    run_seeds(ProcessingGuarantee::AtLeastOnce, Group::Range, 200);
}

#[test]
fn simulated_seeds_are_exactly_once_under_exactly_once_v2() {
    run_seeds(ProcessingGuarantee::ExactlyOnceV2, Group::Range, 200);
}

/// The same faults under `group.assignor=streams` with standbys: crashed and leaving instances' tasks
/// fail over to their standbys, joining ones warm up.
#[test]
fn simulated_seeds_with_standbys_lose_nothing_under_at_least_once() {
    run_seeds(ProcessingGuarantee::AtLeastOnce, Group::Standbys, 60);
}

#[test]
fn simulated_seeds_with_standbys_are_exactly_once_under_exactly_once_v2() {
    run_seeds(ProcessingGuarantee::ExactlyOnceV2, Group::Standbys, 60);
}

#[test]
fn a_seed_replays_exactly() {
    for guarantee in [ProcessingGuarantee::AtLeastOnce, ProcessingGuarantee::ExactlyOnceV2] {
        for group in [Group::Range, Group::Standbys] {
            let a = run_seed(7, guarantee, group).unwrap();
            let b = run_seed(7, guarantee, group).unwrap();
            assert!(a.faults.total() > 0, "the seed injects faults");
            let (a, b) = ((a.fingerprint, a.steps, a.faults), (b.fingerprint, b.steps, b.faults));
            assert_eq!(a, b, "{guarantee:?} {group:?}");
        }
    }
}
