//! How long tasks stop when the group changes, under each `group.assignor`: `cargo bench --bench rebalance
//! --features kafka-tests` against `KSTREAMS_BOOTSTRAP` (scripts/kafka.sh's Kafka: `export
//! KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh bootstrap)`). Options: `--rate N` (input records/s, default
//! 1200), `--partitions N` (12), `--phase-s N` (seconds between the steps, 12), `--assignors range,streams`.
//!
//! Per assignor, in one process: a count per key (`group_by_key().aggregate(..)`, a changelogged RocksDB
//! store, record cache off, commit every second) over an input of N partitions fed at a steady rate; two
//! instances start, a third joins after a phase (scale out) and leaves after another (scale in). Each
//! output record says which instance made it and when (wall clock), so every task's (output
//! partition's) history shows its pauses and whether it moved. Printed: per step, the longest pause of a
//! task that moved, the longest pause of a task that stayed where it was, and how many moved; the normal
//! gap between two outputs of a task for scale. A command that prints figures, not a test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use kstreams::config::{GroupAssignor, StreamsConfig};
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

struct Args {
    rate: u64,
    partitions: i32,
    phase: Duration,
    assignors: Vec<GroupAssignor>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        rate: 1200,
        partitions: 12,
        phase: Duration::from_secs(12),
        assignors: vec![GroupAssignor::Range, GroupAssignor::Streams],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rate" => args.rate = value()?.parse()?,
            "--partitions" => args.partitions = value()?.parse()?,
            "--phase-s" => args.phase = Duration::from_secs(value()?.parse()?),
            "--assignors" => {
                args.assignors = value()?
                    .split(',')
                    .map(|a| match a {
                        "range" => Ok(GroupAssignor::Range),
                        "streams" => Ok(GroupAssignor::Streams),
                        other => anyhow::bail!("--assignors: `{other}` is neither range nor streams"),
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

fn bootstrap() -> anyhow::Result<String> {
    std::env::var("KSTREAMS_BOOTSTRAP")
        .context("set KSTREAMS_BOOTSTRAP (export KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh bootstrap))")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn create_topics(bootstrap: &str, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let topics: Vec<NewTopic<'_>> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    for result in futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))? {
        result.map_err(|(topic, e)| anyhow::anyhow!("create {topic}: {e}"))?;
    }
    Ok(())
}

/// Feeds `input` at `rate` records/s (keys `k0..k999`) until `stop`.
fn feed(bootstrap: String, input: String, rate: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let producer: ThreadedProducer<DefaultProducerContext> =
            // murmur2, as the application's sink: a key's input and output partitions are the same, so
            // an output partition is one task's history.
            ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("linger.ms", "5")
                .set("partitioner", "murmur2_random")
                .create()
                .expect("producer");
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let key = format!("k{}", sent % 1000);
                let record = BaseRecord::to(&input).key(&key).payload("1");
                if producer.send(record).is_err() {
                    producer.poll(Duration::from_millis(10));
                    continue;
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = producer.flush(Duration::from_secs(30));
        sent
    })
}

fn instance(
    name: &str,
    app: &str,
    bootstrap: &str,
    input: &str,
    output: &str,
    assignor: GroupAssignor,
) -> anyhow::Result<KafkaStreams> {
    let builder = StreamsBuilder::new();
    let who = name.to_string();
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .aggregate(String::new, move |_, _, previous: String| {
            let count: u64 = previous.rsplit(':').next().and_then(|c| c.parse().ok()).unwrap_or(0);
            format!("{who}:{}:{}", now_ms(), count + 1)
        })
        .to_stream()
        .to(output);
    let mut config = StreamsConfig::new(app, bootstrap);
    config.group_assignor = assignor;
    config.cache_max_bytes = 0;
    config.commit_interval = Some(Duration::from_secs(1));
    config.state_dir = std::env::temp_dir().join(format!("kstreams-rebalance-{app}-{name}"));
    config.consumer_overrides.insert("session.timeout.ms".into(), "10000".into());
    config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1000".into());
    let mut streams = KafkaStreams::new(builder.build()?, config)?;
    streams.start()?;
    Ok(streams)
}

/// Every output record: (partition, instance, processed at ms).
fn read_output(bootstrap: &str, output: &str) -> anyhow::Result<Vec<(i32, String, i64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("rebalance-reader-{}", now_ms()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[output])?;
    let mut records = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                let mut parts = value.split(':');
                let (Some(who), Some(at)) = (parts.next(), parts.next().and_then(|a| a.parse().ok())) else { continue };
                records.push((m.partition(), who.to_string(), at));
            }
            Some(Err(e)) => anyhow::bail!("reading {output}: {e}"),
            None => {}
        }
    }
    Ok(records)
}

/// Per task in the window `[from, to)` (ms): the longest pause and whether another instance took it.
fn pauses(records: &[(i32, String, i64)], from: i64, to: i64) -> BTreeMap<i32, (i64, bool)> {
    let mut by_task: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for (p, who, at) in records {
        by_task.entry(*p).or_default().push((*at, who));
    }
    by_task
        .into_iter()
        .map(|(task, mut history)| {
            history.sort();
            let window: Vec<&(i64, &str)> = history.iter().filter(|(at, _)| *at >= from - 2_000 && *at < to).collect();
            let longest = window.windows(2).filter(|w| w[1].0 >= from).map(|w| w[1].0 - w[0].0).max().unwrap_or(0);
            let moved = window.windows(2).any(|w| w[0].1 != w[1].1 && w[1].0 >= from);
            (task, (longest, moved))
        })
        .collect()
}

fn report(step: &str, pauses: &BTreeMap<i32, (i64, bool)>) {
    let moved: Vec<i64> = pauses.values().filter(|(_, m)| *m).map(|(p, _)| *p).collect();
    let stayed: Vec<i64> = pauses.values().filter(|(_, m)| !*m).map(|(p, _)| *p).collect();
    println!(
        "  {step:<10} tasks moved {:>2}/{:<2}  longest pause: moved {:>6} ms, stayed {:>6} ms",
        moved.len(),
        pauses.len(),
        moved.iter().max().map_or("-".into(), |p| p.to_string()),
        stayed.iter().max().map_or("-".into(), |p| p.to_string()),
    );
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let bootstrap = bootstrap()?;
    println!(
        "rebalance pauses: {} partitions, {} records/s, {:?} per phase, commit every 1 s, session 10 s",
        args.partitions, args.rate, args.phase
    );
    for assignor in &args.assignors {
        let tag = format!("{}-{}", if *assignor == GroupAssignor::Range { "range" } else { "streams" }, now_ms());
        let (input, output, app) = (format!("rb-in-{tag}"), format!("rb-out-{tag}"), format!("rb-app-{tag}"));
        create_topics(&bootstrap, &[&input, &output], args.partitions)?;
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = feed(bootstrap.clone(), input.clone(), args.rate, stop.clone());
        let mut a = instance("a", &app, &bootstrap, &input, &output, *assignor)?;
        let mut b = instance("b", &app, &bootstrap, &input, &output, *assignor)?;
        for s in [&a, &b] {
            anyhow::ensure!(s.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
        }
        std::thread::sleep(args.phase);
        let scale_out = now_ms();
        let mut c = instance("c", &app, &bootstrap, &input, &output, *assignor)?;
        std::thread::sleep(args.phase);
        let scale_in = now_ms();
        c.close()?;
        std::thread::sleep(args.phase);
        let end = now_ms();
        stop.store(true, Ordering::SeqCst);
        let sent = feeder.join().expect("the feeder");
        std::thread::sleep(Duration::from_secs(3));
        a.close()?;
        b.close()?;
        let records = read_output(&bootstrap, &output)?;
        println!("{tag}: {sent} records in, {} out", records.len());
        let steady = pauses(&records, scale_out - args.phase.as_millis() as i64 + 2_000, scale_out);
        println!(
            "  steady     longest gap between two outputs of a task: {} ms",
            steady.values().map(|(p, _)| *p).max().unwrap_or(0)
        );
        report("scale out", &pauses(&records, scale_out, scale_in));
        report("scale in", &pauses(&records, scale_in, end));
    }
    Ok(())
}
