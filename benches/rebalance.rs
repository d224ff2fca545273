//! How long tasks stop when the group changes: `cargo bench --bench rebalance --features kafka-tests`
//! against `KSTREAMS_BOOTSTRAP` (scripts/kafka.sh's Kafka: `export KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh
//! bootstrap)`). Options: `--rate N` (input records/s, default 1200), `--partitions N` (12), `--phase-s N`
//! (seconds between the steps, 12), `--state-keys N` (records of state loaded before the run, one per
//! key, default 0), `--value-bytes N` (their size, 200), `--probing-s N` (`probing.rebalance.interval.ms`
//! of the warm-up run, in seconds, 60), `--runs range,streams,warmup,static`.
//!
//! Per run, in one process: a count per key (`group_by_key().aggregate(..)`, a changelogged RocksDB
//! store, record cache off, commit every second) over an input of N partitions fed at a steady rate,
//! after the state records were loaded and processed. Each output record says which instance made it
//! and when (wall clock), so every task's (output partition's) history shows its pauses and whether it
//! moved. The runs:
//! - `range`, `streams`: two instances, a third joins after a phase (scale out) and leaves after
//!   another (scale in), under `group.assignor=range` and under `streams` with every copy counted as
//!   caught up (`acceptable.recovery.lag` unbounded: a task moves at once and its new instance
//!   restores it whole);
//! - `warmup`: the same under `streams` with Kafka Streams' `acceptable.recovery.lag` (10,000): a
//!   stateful task moves only to an instance that caught up, through a warm-up and the probing
//!   rebalance after it (the scale-out phase lasts one probing interval longer);
//! - `static`: three static members (`group.instance.id`), each closed and started again in turn on
//!   its state directory (a rolling restart); the group's state is asked every 100 ms meanwhile.
//!
//! Printed: per step, the longest pause of a task that moved and of a task that stayed where it was,
//! how many moved, the records restored; the normal gap between two outputs of a task for scale. A
//! command that prints figures, not a test.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use common::{bootstrap, create_topics, now_ms, producer, read_output, send, wait_until_processed};
use kstreams::client::TopicPartition;
use kstreams::config::{GroupAssignor, StreamsConfig};
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State, StateRestoreListener};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Range,
    Streams,
    Warmup,
    Static,
}

impl Run {
    fn name(self) -> &'static str {
        match self {
            Run::Range => "range",
            Run::Streams => "streams",
            Run::Warmup => "warmup",
            Run::Static => "static",
        }
    }
}

struct Args {
    rate: u64,
    partitions: i32,
    phase: Duration,
    state_keys: u64,
    value_bytes: usize,
    probing: Duration,
    runs: Vec<Run>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        rate: 1200,
        partitions: 12,
        phase: Duration::from_secs(12),
        state_keys: 0,
        value_bytes: 200,
        probing: Duration::from_secs(60),
        runs: vec![Run::Range, Run::Streams],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rate" => args.rate = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            "--phase-s" => args.phase = Duration::from_secs(value()?.parse()?),
            "--state-keys" => args.state_keys = value()?.parse()?,
            "--value-bytes" => args.value_bytes = value()?.parse()?,
            "--probing-s" => args.probing = Duration::from_secs(value()?.parse()?),
            "--runs" => {
                args.runs = value()?
                    .split(',')
                    .map(|r| {
                        [Run::Range, Run::Streams, Run::Warmup, Run::Static]
                            .into_iter()
                            .find(|run| run.name() == r)
                            .with_context(|| format!("--runs: `{r}` is none of range, streams, warmup, static"))
                    })
                    .collect::<Result<_, _>>()?
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(args)
}

/// Feeds `input` at `rate` records/s (keys `k0..k999`) until `stop`.
fn feed(bootstrap: String, input: String, rate: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let producer = producer(&bootstrap).expect("producer");
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                send(&producer, &input, &format!("k{}", sent % 1000), "1");
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = producer.flush(Duration::from_secs(30));
        sent
    })
}

/// Records restored by the run's instances: (at ms, records) per finished store restore.
#[derive(Clone, Default)]
struct Restores(Arc<Mutex<Vec<(i64, u64)>>>);

impl StateRestoreListener for Restores {
    fn on_restore_end(&self, _: &TopicPartition, _: &str, total_restored: u64) {
        self.0.lock().expect("restores").push((now_ms(), total_restored));
    }
}

impl Restores {
    fn between(&self, from: i64, to: i64) -> u64 {
        self.0.lock().expect("restores").iter().filter(|(at, _)| (from..to).contains(at)).map(|(_, n)| n).sum()
    }
}

struct Setup<'a> {
    run: Run,
    args: &'a Args,
    app: String,
    bootstrap: String,
    input: String,
    output: String,
    restores: Restores,
}

impl Setup<'_> {
    fn instance(&self, name: &str) -> anyhow::Result<KafkaStreams> {
        let builder = StreamsBuilder::new();
        let who = name.to_string();
        builder
            .stream::<String, String>(&self.input)
            .group_by_key()
            // `<instance>:<ms>:<count>`, and a loaded record's value after it (the state's size).
            .aggregate(String::new, move |_, value: String, previous: String| {
                let count: u64 = previous.split(':').nth(2).and_then(|c| c.parse().ok()).unwrap_or(0);
                let load = if value.len() > 1 { value.as_str() } else { "" };
                format!("{who}:{}:{}:{load}", now_ms(), count + 1)
            })
            .to_stream()
            .to(&self.output);
        let mut config = StreamsConfig::new(&self.app, &self.bootstrap);
        config.group_assignor = if self.run == Run::Range { GroupAssignor::Range } else { GroupAssignor::Streams };
        if self.run == Run::Streams {
            config.acceptable_recovery_lag = i64::MAX;
        }
        config.probing_rebalance_interval = self.args.probing;
        if self.run == Run::Static {
            config.consumer_overrides.insert("group.instance.id".into(), format!("{}-{name}", self.app));
        }
        config.cache_max_bytes = 0;
        config.commit_interval = Some(Duration::from_secs(1));
        config.state_dir = std::env::temp_dir().join(format!("kstreams-rebalance-{}-{name}", self.app));
        config.consumer_overrides.insert("session.timeout.ms".into(), "10000".into());
        config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1000".into());
        let mut streams = KafkaStreams::new(builder.build()?, config)?;
        streams.set_global_state_restore_listener(self.restores.clone());
        streams.start()?;
        Ok(streams)
    }

    fn running(&self, streams: &[&KafkaStreams]) -> anyhow::Result<()> {
        for s in streams {
            anyhow::ensure!(s.wait_for_state(State::Running, Duration::from_secs(300)), "never RUNNING");
        }
        Ok(())
    }

    fn remove_state(&self) {
        for name in ["a", "b", "c"] {
            let _ =
                std::fs::remove_dir_all(std::env::temp_dir().join(format!("kstreams-rebalance-{}-{name}", self.app)));
        }
    }
}

type Outputs = BTreeMap<i32, Vec<(String, i64)>>;

/// Per task in the window `[from, to)` (ms): the longest pause and whether another instance took it. A
/// pause still under way at `to` counts until `to` (the rest of it, if any, is the next step's: the
/// next step's change begins at `to`).
fn pauses(outputs: &Outputs, from: i64, to: i64) -> BTreeMap<i32, (i64, bool)> {
    outputs
        .iter()
        .map(|(task, history)| {
            let mut history: Vec<(i64, &str)> = history.iter().map(|(who, at)| (*at, who.as_str())).collect();
            history.sort();
            let mut window: Vec<(i64, &str)> =
                history.iter().filter(|(at, _)| *at >= from - 2_000 && *at < to).copied().collect();
            window.push((to, window.last().map_or("", |(_, who)| *who)));
            let longest = window.windows(2).filter(|w| w[1].0 >= from).map(|w| w[1].0 - w[0].0).max().unwrap_or(0);
            let moved = window.windows(2).any(|w| w[0].1 != w[1].1 && w[1].0 >= from);
            (*task, (longest, moved))
        })
        .collect()
}

fn report(step: &str, pauses: &BTreeMap<i32, (i64, bool)>, restored: u64) {
    let moved: Vec<i64> = pauses.values().filter(|(_, m)| *m).map(|(p, _)| *p).collect();
    let stayed: Vec<i64> = pauses.values().filter(|(_, m)| !*m).map(|(p, _)| *p).collect();
    println!(
        "  {step:<12} tasks moved {:>2}/{:<2}  longest pause: moved {:>6} ms, stayed {:>6} ms; {restored} records restored",
        moved.len(),
        pauses.len(),
        moved.iter().max().map_or("-".into(), |p| p.to_string()),
        stayed.iter().max().map_or("-".into(), |p| p.to_string()),
    );
}

/// The instance that last produced each task's output before `at`.
fn owners(outputs: &Outputs, at: i64) -> BTreeMap<i32, String> {
    outputs
        .iter()
        .filter_map(|(task, history)| {
            let last = history.iter().filter(|(_, t)| *t < at).max_by_key(|(_, t)| *t)?;
            Some((*task, last.0.clone()))
        })
        .collect()
}

/// The group's states other than Stable seen from the moment the watch starts, asked every 100 ms:
/// (at ms, state).
fn watch_group(bootstrap: &str, app: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(i64, String)>> {
    let (bootstrap, app) = (bootstrap.to_string(), app.to_string());
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let Ok(consumer) = common::client(&bootstrap).create::<BaseConsumer>() else { return seen };
        while !stop.load(Ordering::SeqCst) {
            match consumer.fetch_group_list(Some(&app), Duration::from_secs(5)) {
                Ok(list) => {
                    for group in list.groups().iter().filter(|g| g.state() != "Stable") {
                        seen.push((now_ms(), group.state().to_string()));
                    }
                }
                Err(e) => seen.push((now_ms(), format!("(not asked: {e})"))),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        seen
    })
}

/// The steps of a run, each with its window (ms), and the instances still running at its end.
type Steps = (Vec<(&'static str, i64, i64)>, Vec<KafkaStreams>);

/// Two instances, a third joins, then leaves.
fn scale_out_and_in(r: &Setup<'_>) -> anyhow::Result<Steps> {
    let args = r.args;
    let a = r.instance("a")?;
    let b = r.instance("b")?;
    r.running(&[&a, &b])?;
    wait_until_processed(&r.bootstrap, &r.app, &r.input, args.partitions, 2 * args.rate as i64)?;
    std::thread::sleep(args.phase);
    let scale_out = now_ms();
    let mut c = r.instance("c")?;
    // A warm-up moves its task at the first probing rebalance after it caught up.
    let out_phase = if r.run == Run::Warmup { args.phase + args.probing } else { args.phase };
    std::thread::sleep(out_phase);
    let scale_in = now_ms();
    c.close()?;
    std::thread::sleep(args.phase);
    let steps = vec![
        ("steady", scale_out - args.phase.as_millis() as i64 + 2_000, scale_out),
        ("scale out", scale_out, scale_in),
        ("scale in", scale_in, now_ms()),
    ];
    Ok((steps, vec![a, b]))
}

/// Three static members, each closed and started again in turn. Prints the group's states seen.
fn rolling_restart(r: &Setup<'_>) -> anyhow::Result<Steps> {
    let args = r.args;
    let mut instances = vec![("a", r.instance("a")?), ("b", r.instance("b")?), ("c", r.instance("c")?)];
    r.running(&instances.iter().map(|(_, s)| s).collect::<Vec<_>>())?;
    wait_until_processed(&r.bootstrap, &r.app, &r.input, args.partitions, 2 * args.rate as i64)?;
    std::thread::sleep(args.phase);
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_group(&r.bootstrap, &r.app, stop.clone());
    let mut steps = vec![("steady", now_ms() - args.phase.as_millis() as i64 + 2_000, now_ms())];
    for (i, step) in ["restart a", "restart b", "restart c"].into_iter().enumerate() {
        let started = now_ms();
        let (name, streams) = &mut instances[i];
        streams.close()?;
        *streams = r.instance(name)?;
        r.running(&[streams])?;
        println!("  {step}: RUNNING again {} ms after its close began", now_ms() - started);
        std::thread::sleep(args.phase);
        steps.push((step, started, now_ms()));
    }
    stop.store(true, Ordering::SeqCst);
    let seen = watch.join().map_err(|_| anyhow::anyhow!("the group watch panicked"))?;
    match seen.first() {
        None => println!("  the group was Stable at every look during the restarts (every 100 ms)"),
        Some(_) => println!("  the group's states other than Stable during the restarts: {seen:?}"),
    }
    Ok((steps, instances.into_iter().map(|(_, s)| s).collect()))
}

fn run(args: &Args, bootstrap: &str, run: Run) -> anyhow::Result<()> {
    let tag = format!("{}-{}", run.name(), now_ms());
    let r = Setup {
        run,
        args,
        app: format!("rb-app-{tag}"),
        bootstrap: bootstrap.to_string(),
        input: format!("rb-in-{tag}"),
        output: format!("rb-out-{tag}"),
        restores: Restores::default(),
    };
    create_topics(bootstrap, &[&r.input, &r.output], args.partitions)?;
    if args.state_keys > 0 {
        let loader = producer(bootstrap)?;
        let payload = "x".repeat(args.value_bytes.max(2));
        for key in 0..args.state_keys {
            send(&loader, &r.input, &format!("s{key}"), &payload);
        }
        loader.flush(Duration::from_secs(120))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(bootstrap.to_string(), r.input.clone(), args.rate, stop.clone());
    let steps = if run == Run::Static { rolling_restart(&r) } else { scale_out_and_in(&r) };
    stop.store(true, Ordering::SeqCst);
    let sent = feeder.join().map_err(|_| anyhow::anyhow!("the feeder panicked"))?;
    let (steps, instances) = steps?;
    // The last records fed are processed before the instances close.
    std::thread::sleep(Duration::from_secs(3));
    for mut streams in instances {
        streams.close()?;
    }
    r.remove_state();
    let outputs = read_output(bootstrap, &r.output, &(0..args.partitions).map(|p| (p, 0)).collect())?;
    let out = outputs.values().map(Vec::len).sum::<usize>() as u64;
    println!("{tag}: {} records in, {out} out", sent + args.state_keys);
    for (i, &(step, from, to)) in steps.iter().enumerate() {
        let pauses = pauses(&outputs, from, to);
        // A restore a step brought may end after it: counted until the next step begins.
        let restores_until = steps.get(i + 1).map_or(i64::MAX, |next| next.1);
        if step == "steady" {
            let gap = pauses.values().map(|(p, _)| *p).max().unwrap_or(0);
            println!("  steady       longest gap between two outputs of a task: {gap} ms");
            continue;
        }
        report(step, &pauses, r.restores.between(from, restores_until));
        if run == Run::Static {
            // The restarted instance's own tasks and the others'.
            let who = step.trim_start_matches("restart ");
            let (own, others): (Vec<_>, Vec<_>) =
                owners(&outputs, from).into_iter().partition(|(_, owner)| owner == who);
            let longest = |tasks: &[(i32, String)]| {
                tasks.iter().filter_map(|(t, _)| pauses.get(t)).map(|p| p.0).max().unwrap_or(0)
            };
            println!(
                "               its {} tasks stopped for at most {} ms, the other {} for at most {} ms",
                own.len(),
                longest(&own),
                others.len(),
                longest(&others)
            );
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let bootstrap = bootstrap()?;
    println!(
        "rebalance pauses: {} partitions, {} records/s, {:?} per phase, {} state keys of {} B, commit every 1 s, \
         session 10 s",
        args.partitions, args.rate, args.phase, args.state_keys, args.value_bytes
    );
    for &run in &args.runs {
        self::run(&args, &bootstrap, run)?;
    }
    Ok(())
}
