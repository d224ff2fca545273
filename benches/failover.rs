//! How long a killed instance's tasks stop, with and without standby replicas: `cargo bench --bench
//! failover --features kafka-tests` against `KSTREAMS_BOOTSTRAP` (scripts/kafka.sh's Kafka: `export
//! KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh bootstrap)`). Options: `--keys N` (distinct keys, default
//! 1,000,000), `--value-bytes N` (200), `--partitions N` (6), `--standbys 0,1`, `--session-ms N` (10000).
//!
//! Per `num.standby.replicas`: the input is loaded with one record per key, three instances (processes
//! of this binary, `group.assignor=streams`) keep the latest value of each key in a changelogged RocksDB
//! store (`keys * value-bytes` of state) until they have processed it all; then a steady trickle over
//! every key starts, and one instance is killed with SIGKILL. Each output record says which instance
//! made it and when (wall clock), so every task's (output partition's) history shows when it stopped
//! and where it went on. Printed: for the killed instance's tasks, the time from the kill until each
//! produced again (the longest, and the session timeout it includes), and the changelog records the
//! survivors restored to take them over. A command that prints figures, not a test.

mod common;

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::{bootstrap, create_topics, now_ms, output_ends, producer, read_output, send, wait_until_processed};
use kstreams::client::TopicPartition;
use kstreams::config::{GroupAssignor, StreamsConfig};
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, StateRestoreListener};
use rdkafka::producer::Producer;

/// Set in a child process: the instance to run (see [`run_instance`]).
const INSTANCE_ENV: &str = "KSTREAMS_FAILOVER_INSTANCE";

struct Args {
    keys: u64,
    value_bytes: usize,
    partitions: i32,
    standbys: Vec<u32>,
    session_ms: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args { keys: 1_000_000, value_bytes: 200, partitions: 6, standbys: vec![0, 1], session_ms: 10_000 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--keys" => args.keys = value()?.parse()?,
            "--value-bytes" => args.value_bytes = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            "--session-ms" => args.session_ms = value()?.parse()?,
            "--standbys" => args.standbys = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(args)
}

/// What a child process runs: one instance, until it is killed. Restores go to stdout as
/// `restored <ms> <records>` lines, state changes as `state <ms> <state>`.
fn run_instance(spec: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = spec.split('|').collect();
    let [name, app, bootstrap, input, output, standbys, session_ms, state_dir] = parts[..] else {
        anyhow::bail!("bad {INSTANCE_ENV}: {spec}")
    };
    let builder = StreamsBuilder::new();
    let who = name.to_string();
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .aggregate(String::new, move |_, value: String, _previous: String| format!("{who}:{}:{value}", now_ms()))
        .to_stream()
        .to(output);
    let mut config = StreamsConfig::new(app, bootstrap);
    config.group_assignor = GroupAssignor::Streams;
    config.num_standby_replicas = standbys.parse()?;
    config.commit_interval = Some(Duration::from_secs(1));
    config.state_dir = state_dir.into();
    config.consumer_overrides.insert("session.timeout.ms".into(), session_ms.into());
    config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1000".into());
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.set_global_state_restore_listener(PrintRestores);
    streams.set_state_listener(|_, new| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "state {} {new:?}", now_ms());
        let _ = out.flush();
    });
    streams.start()?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

struct PrintRestores;

impl StateRestoreListener for PrintRestores {
    fn on_restore_end(&self, _: &TopicPartition, _: &str, total_restored: u64) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "restored {} {total_restored}", now_ms());
        let _ = out.flush();
    }
}

/// An instance process; its stdout (restores) goes to `<state dir>.out`.
struct Instance {
    child: Child,
    out: std::path::PathBuf,
}

fn spawn(spec: &str, state_dir: &std::path::Path) -> anyhow::Result<Instance> {
    let out = state_dir.with_extension("out");
    let child = Command::new(std::env::current_exe()?)
        .env(INSTANCE_ENV, spec)
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&out)?)
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(Instance { child, out })
}

/// The lines `<kind> <ms> <value>` the instance printed at or after `since` (ms): (ms, value).
fn printed_since(instance: &Instance, kind: &str, since: i64) -> Vec<(i64, String)> {
    let Ok(file) = std::fs::File::open(&instance.out) else { return Vec::new() };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let mut parts = line.strip_prefix(kind)?.trim_start().split(' ');
            let at: i64 = parts.next()?.parse().ok()?;
            (at >= since).then(|| (at, parts.next().unwrap_or_default().to_string()))
        })
        .collect()
}

/// How long the instance was not RUNNING after `since`: from its first REBALANCING to the RUNNING after
/// it (the rebalance and the restores it brought).
fn rebalancing_after(instance: &Instance, since: i64) -> Option<i64> {
    let states = printed_since(instance, "state", since);
    let began = states.iter().find(|(_, s)| s == "Rebalancing")?.0;
    let running = states.iter().find(|(at, s)| *at >= began && s == "Running")?.0;
    Some(running - began)
}

fn run(args: &Args, bootstrap: &str, standbys: u32) -> anyhow::Result<()> {
    let tag = format!("sb{standbys}-{}", now_ms());
    let (input, output, app) = (format!("fo-in-{tag}"), format!("fo-out-{tag}"), format!("fo-app-{tag}"));
    create_topics(bootstrap, &[&input, &output], args.partitions)?;
    let payload = "x".repeat(args.value_bytes);
    let loading = Instant::now();
    let loader = producer(bootstrap)?;
    for key in 0..args.keys {
        send(&loader, &input, &format!("key{key}"), &payload);
    }
    loader.flush(Duration::from_secs(120))?;

    let dirs: Vec<std::path::PathBuf> =
        ["a", "b", "c"].iter().map(|n| std::env::temp_dir().join(format!("kstreams-failover-{tag}-{n}"))).collect();
    let mut instances = Vec::new();
    for (name, dir) in ["a", "b", "c"].iter().zip(&dirs) {
        let spec =
            format!("{name}|{app}|{bootstrap}|{input}|{output}|{standbys}|{}|{}", args.session_ms, dir.display());
        instances.push(spawn(&spec, dir)?);
    }
    wait_until_processed(bootstrap, &app, &input, args.partitions, 0)?;
    println!("  {} keys of {} B loaded and processed in {:.0?}", args.keys, args.value_bytes, loading.elapsed());
    // The standbys catch up with the changelogs meanwhile.
    std::thread::sleep(Duration::from_secs(15));
    let from = output_ends(bootstrap, &output, args.partitions)?;

    // A trickle over every key: every task has output every few milliseconds.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, input, bootstrap, keys) = (stop.clone(), input.clone(), bootstrap.to_string(), args.keys);
        std::thread::spawn(move || -> anyhow::Result<()> {
            let trickle = producer(&bootstrap)?;
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for _ in 0..10 {
                    n += 1;
                    send(&trickle, &input, &format!("key{}", n.wrapping_mul(7919) % keys), "t");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            trickle.flush(Duration::from_secs(30))?;
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_secs(10));
    let killed_at = now_ms();
    instances[0].child.kill()?;
    instances[0].child.wait()?;
    std::thread::sleep(Duration::from_millis(args.session_ms) + Duration::from_secs(50));
    stop.store(true, Ordering::SeqCst);
    feeder.join().map_err(|_| anyhow::anyhow!("the feeder panicked"))??;
    std::thread::sleep(Duration::from_secs(3));
    let restored: u64 = instances[1..]
        .iter()
        .flat_map(|i| printed_since(i, "restored", killed_at))
        .map(|(_, total)| total.parse::<u64>().unwrap_or(0))
        .sum();
    let rebalancing: Vec<i64> = instances[1..].iter().filter_map(|i| rebalancing_after(i, killed_at)).collect();
    for instance in &mut instances[1..] {
        instance.child.kill()?;
        instance.child.wait()?;
    }

    let outputs = read_output(bootstrap, &output, &from)?;
    let mut back = Vec::new();
    let mut stayed = Vec::new();
    for (partition, history) in &outputs {
        let before = history.iter().rev().find(|(_, at)| *at < killed_at);
        let after = history.iter().find(|(_, at)| *at >= killed_at);
        let (Some((who_before, _)), Some((_, first_after))) = (before, after) else { continue };
        if who_before == "a" {
            back.push((*partition, first_after - killed_at));
        } else {
            stayed.push(first_after - killed_at);
        }
    }
    let longest = back.iter().map(|(_, ms)| *ms).max().unwrap_or(0);
    println!(
        "  num.standby.replicas={standbys}: killed instance's tasks {:?} back after (ms) {:?}; longest {longest} ms \
         (session timeout {} ms + {} ms); the survivors not RUNNING for {rebalancing:?} ms (rebalance and restore); \
         other tasks' first output after the kill within {} ms; {restored} records restored",
        back.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        back.iter().map(|(_, ms)| *ms).collect::<Vec<_>>(),
        args.session_ms,
        longest - args.session_ms as i64,
        stayed.iter().max().unwrap_or(&0),
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("out"));
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(INSTANCE_ENV) {
        return run_instance(&spec);
    }
    let args = args()?;
    let bootstrap = bootstrap()?;
    println!(
        "failover: 3 instances, {} partitions, {} keys of {} B, session timeout {} ms, one instance killed (SIGKILL)",
        args.partitions, args.keys, args.value_bytes, args.session_ms
    );
    for &standbys in &args.standbys {
        run(&args, &bootstrap, standbys)?;
    }
    Ok(())
}
