//! End-to-end throughput against a local Kafka: `./scripts/bench.sh [--records N] [--value-size B]`.
//!
//! Loads N records (keys from a space of 10,000 as 8-byte big-endian longs, random values of B bytes, so
//! compression flatters nobody) into an 8-partition topic once, then runs each workload in its own child
//! process, timed from the moment it has its partitions until it has seen (or produced) every record:
//!
//! - `consume`: raw rdkafka `BaseConsumer` reading everything (the I/O ceiling);
//! - `consumeproduce`: raw rdkafka consume, and produce each record to a sink topic (the ceiling with output);
//! - `stateless`: kstreams `stream → filter → map_values → to`;
//! - `count`: kstreams `group_by_key().count().to_stream().to()` on RocksDB, record cache off (every
//!   update goes to the changelog and the output: the most work per record);
//! - `count-cached`: the same with Kafka Streams' default 10 MiB record cache, timed until every input
//!   record is processed (the output then holds one update per key and commit).
//!
//! A kstreams workload may name its processing guarantee and commit interval: `count:eos:100` is `count`
//! under `exactly_once_v2` committing every 100 ms, `stateless:alos:1000` is `stateless` under
//! `at_least_once` every second. Such a workload is timed until a `read_committed` consumer in the same
//! process has seen every output record (committed, so visible downstream), whichever the guarantee, so
//! the two guarantees are measured the same way. The cost of exactly-once:
//! `--workloads count:alos:100,count:eos:100,count:alos:1000,count:eos:1000`.
//!
//! Prints records/s, MB/s, CPU seconds per million records and peak RSS per workload, and the ratio of
//! each to the consume+produce ceiling. A command that prints figures, not a test.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const PARTITIONS: i32 = 8;
const KEYS: u64 = 10_000;

struct Args {
    records: u64,
    rounds: usize,
    value_size: usize,
    workloads: Vec<String>,
    child: Option<(String, String, String, u64)>,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        records: 1_000_000,
        rounds: 3,
        value_size: 100,
        workloads: ["consume", "consumeproduce", "stateless", "count", "count-cached"].map(String::from).to_vec(),
        child: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--records" => out.records = it.next().context("--records N")?.parse()?,
            "--rounds" => out.rounds = it.next().context("--rounds R")?.parse()?,
            "--value-size" => out.value_size = it.next().context("--value-size B")?.parse()?,
            "--workloads" => {
                out.workloads = it.next().context("--workloads a,b")?.split(',').map(String::from).collect()
            }
            "--child" => {
                let w = it.next().context("workload")?;
                let input = it.next().context("input")?;
                let output = it.next().context("output")?;
                let expected = it.next().context("expected")?.parse()?;
                out.child = Some((w, input, output, expected));
            }
            "--bench" => {} // cargo bench passes this
            other => bail!("unknown argument `{other}`"),
        }
    }
    Ok(out)
}

fn bootstrap() -> String {
    std::env::var("KSTREAMS_BOOTSTRAP").expect("KSTREAMS_BOOTSTRAP is not set: run ./scripts/bench.sh")
}

fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}", nanos % 10_000_000_000)
}

fn create_topic(name: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client().create()?;
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1));
    for r in futures::executor::block_on(admin.create_topics([&topic], &AdminOptions::new()))? {
        r.map_err(|(t, e)| anyhow::anyhow!("create {t}: {e}"))?;
    }
    Ok(())
}

/// Loads the data; returns how many records pass the stateless filter (value's first byte not 0).
fn load(topic: &str, records: u64, value_size: usize) -> anyhow::Result<u64> {
    let producer: ThreadedProducer<DefaultProducerContext> = client()
        .set("linger.ms", "50")
        .set("batch.size", "131072")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut value = vec![0u8; value_size];
    let mut passing = 0;
    for _ in 0..records {
        let key = (next() % KEYS).to_be_bytes();
        for chunk in value.chunks_mut(8) {
            let r = next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        if value[0] != 0 {
            passing += 1;
        }
        loop {
            match producer.send(BaseRecord::to(topic).key(&key[..]).payload(&value[..])) {
                Ok(()) => break,
                Err((e, _)) if e.to_string().contains("Queue full") => std::thread::sleep(Duration::from_millis(5)),
                Err((e, _)) => bail!("load: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(passing)
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ
}

/// Peak resident set size in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The records in `topic`: the sum of its partitions' end offsets, asked in one ListOffsets request
/// (`offsets_for_times` at "latest"), so that watching the output every 20 ms costs the broker, which
/// shares the cores with the workload, one request rather than one per partition.
fn output_count(watcher: &BaseConsumer, topic: &str) -> u64 {
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let _ = list.add_partition_offset(topic, p, rdkafka::Offset::End);
    }
    let Ok(ends) = watcher.offsets_for_times(list, Duration::from_secs(10)) else { return 0 };
    ends.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0) as u64).sum()
}

/// When the raw consumer got its partitions: the ceilings are timed from there, as the kstreams workloads
/// are timed from RUNNING (partitions assigned), so that both include finding the start offsets and the
/// first fetch. (Timing the ceilings from their first record instead flattered them by a few hundred
/// milliseconds of a two-second run.)
#[derive(Default)]
struct AssignedAt(std::sync::OnceLock<Instant>);

impl rdkafka::ClientContext for AssignedAt {}

impl rdkafka::consumer::ConsumerContext for AssignedAt {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(_) = rebalance {
            let _ = self.0.set(Instant::now());
        }
    }
}

/// Runs one workload in this process; returns (seconds, bytes seen).
fn run_child(workload: &str, input: &str, output: &str, expected: u64) -> anyhow::Result<(f64, u64)> {
    match workload {
        "consume" | "consumeproduce" => {
            let consumer: BaseConsumer<AssignedAt> = client()
                .set("group.id", unique("bench-raw"))
                // The same fetch setting the library's consumers use, so the ceiling is not handicapped.
                .set("fetch.queue.backoff.ms", "5")
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .create_with_context(AssignedAt::default())?;
            consumer.subscribe(&[input])?;
            let producer: Option<ThreadedProducer<DefaultProducerContext>> = if workload == "consumeproduce" {
                Some(client().set("linger.ms", "100").set("partitioner", "murmur2_random").create()?)
            } else {
                None
            };
            let (mut seen, mut bytes) = (0u64, 0u64);
            while seen < expected {
                let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
                let message = message?;
                seen += 1;
                bytes += (message.key().map_or(0, <[u8]>::len) + message.payload().map_or(0, <[u8]>::len)) as u64;
                if let Some(p) = &producer {
                    let mut record = BaseRecord::to(output).payload(message.payload().unwrap_or_default());
                    if let Some(k) = message.key() {
                        record = record.key(k);
                    }
                    while let Err((e, r)) = p.send(record) {
                        if !e.to_string().contains("Queue full") {
                            bail!("produce: {e}");
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        record = r;
                    }
                }
            }
            if let Some(p) = &producer {
                p.flush(Duration::from_secs(60))?;
            }
            let started = consumer.context().0.get().copied().context("no partitions were assigned")?;
            Ok((started.elapsed().as_secs_f64(), bytes))
        }
        spec => {
            let mut parts = spec.split(':');
            let kind = parts.next().unwrap_or_default();
            if !matches!(kind, "stateless" | "count" | "count-cached") {
                bail!("unknown workload `{spec}`");
            }
            let guarantee = match parts.next() {
                None => None,
                Some("alos") => Some(ProcessingGuarantee::AtLeastOnce),
                Some("eos") => Some(ProcessingGuarantee::ExactlyOnceV2),
                Some(other) => bail!("workload `{spec}`: guarantee `{other}` is neither `alos` nor `eos`"),
            };
            let commit_ms: Option<u64> = parts
                .next()
                .map(|ms| ms.parse().with_context(|| format!("workload `{spec}`: commit interval")))
                .transpose()?;
            let builder = StreamsBuilder::new();
            let source = builder.stream::<i64, Vec<u8>>(input);
            if kind == "stateless" {
                source
                    .filter(|_, v| v.first() != Some(&0))
                    .map_values(|mut v| {
                        v.truncate(v.len() - 1);
                        v
                    })
                    .to(output);
            } else {
                source.group_by_key().count().to_stream().to(output);
            }
            let mut config = StreamsConfig::new(unique("bench-app"), bootstrap());
            config.commit_interval = Duration::from_millis(commit_ms.unwrap_or(30_000)); // SimpleBenchmark's 30 s
            config.state_dir = std::env::temp_dir().join(unique("bench-state"));
            if let Some(guarantee) = guarantee {
                config.processing_guarantee = guarantee;
            }
            if kind == "count" {
                config.cache_max_bytes = 0;
            }
            let mut app = KafkaStreams::new(builder.build()?, config)?;
            app.start()?;
            if !app.wait_for_state(State::Running, Duration::from_secs(60)) {
                bail!("the app never reached RUNNING: {:?} {:?}", app.state(), app.take_error());
            }
            let started = Instant::now();
            let watcher: BaseConsumer = client().create()?;
            let committed = if guarantee.is_some() { Some(CommittedCounter::new(output)?) } else { None };
            let done = |app: &KafkaStreams| match (&committed, kind) {
                (Some(counter), _) => counter.count_for(Duration::from_millis(20)) >= expected,
                // Metrics are published every second: up to a second late, over a run of several.
                (None, "count-cached") => app.metrics().processed_records >= expected,
                (None, _) => output_count(&watcher, output) >= expected,
            };
            while !done(&app) {
                if app.state() == State::Error {
                    bail!("app failed: {:?}", app.take_error());
                }
                if committed.is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            app.close()?;
            Ok((seconds, 0))
        }
    }
}

/// Counts the records of a topic that a `read_committed` consumer sees: what downstream readers of an
/// exactly-once application see (the high watermark would also count transaction markers and records of
/// transactions not yet committed).
struct CommittedCounter {
    consumer: BaseConsumer,
    seen: std::cell::Cell<u64>,
}

impl CommittedCounter {
    fn new(topic: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = client()
            .set("group.id", unique("bench-committed"))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.queue.backoff.ms", "5")
            .create()?;
        consumer.subscribe(&[topic])?;
        Ok(CommittedCounter { consumer, seen: std::cell::Cell::new(0) })
    }

    /// Polls for up to `wait`; returns the records seen so far.
    fn count_for(&self, wait: Duration) -> u64 {
        let deadline = Instant::now() + wait;
        while let Some(Ok(_)) = self.consumer.poll(deadline.saturating_duration_since(Instant::now())) {
            self.seen.set(self.seen.get() + 1);
        }
        self.seen.get()
    }
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    if let Some((workload, input, output, expected)) = &args.child {
        // With RUST_LOG, the library's log of the workload goes to stderr, which the parent passes on.
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        let cpu0 = cpu_seconds();
        let (seconds, _) = run_child(workload, input, output, *expected)?;
        println!("RESULT {seconds:.3} {:.3} {:.1}", cpu_seconds() - cpu0, peak_rss_mib());
        return Ok(());
    }

    let input = unique("bench-input");
    create_topic(&input)?;
    let load_start = Instant::now();
    let passing = load(&input, args.records, args.value_size)?;
    let load_secs = load_start.elapsed().as_secs_f64();
    let record_bytes = (8 + args.value_size) as f64;
    println!(
        "machine: {} cores; broker: Apache Kafka (scripts/kafka.sh) at {}; {} records of {} B ({} key + value) over {PARTITIONS} partitions, {KEYS} keys; loaded in {load_secs:.1} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bootstrap(),
        args.records,
        8 + args.value_size,
        8
    );
    // Every workload runs once per round, rounds interleaved, and the median round is reported: the
    // broker shares this machine's cores, so single runs swing.
    let mut rounds: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for round in 0..args.rounds {
        for workload in &args.workloads {
            // Topic names take letters, digits, `.`, `_` and `-`: `count:eos:100` becomes `count-eos-100`.
            let output = unique(&format!("bench-out-{}", workload.replace(':', "-")));
            create_topic(&output)?;
            let expected = match workload.split(':').next().unwrap_or_default() {
                "stateless" => passing,
                _ => args.records,
            };
            let exe = std::env::current_exe()?;
            let out = Command::new(exe)
                .args(["--child", workload, &input, &output, &expected.to_string()])
                .output()
                .context("run workload")?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if std::env::var_os("RUST_LOG").is_some() {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
            }
            let Some(line) = stdout.lines().find(|l| l.starts_with("RESULT ")) else {
                bail!("workload {workload} failed:\n{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
            };
            let f: Vec<f64> = line[7..].split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
            eprintln!("round {} {workload}: {:.0} records/s", round + 1, args.records as f64 / f[0]);
            rounds.entry(workload.clone()).or_default().push((f[0], f[1], f[2]));
        }
    }
    let results: BTreeMap<String, (f64, f64, f64)> = rounds
        .into_iter()
        .map(|(w, mut runs)| {
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            (w, runs[runs.len() / 2])
        })
        .collect();
    let ceiling = results.get("consumeproduce").map(|r| args.records as f64 / r.0);
    println!("\nmedian of {} rounds:", args.rounds);
    println!("\n| workload | records/s | MB/s | CPU s per 1M records | peak RSS MiB | vs consume+produce |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for workload in &args.workloads {
        let (secs, cpu, rss) = results[workload];
        let rate = args.records as f64 / secs;
        let ratio = ceiling.map_or("-".to_string(), |c| format!("{:.0}%", 100.0 * rate / c));
        println!(
            "| {workload} | {rate:.0} | {:.1} | {:.2} | {rss:.0} | {ratio} |",
            rate * record_bytes / 1e6,
            cpu / (args.records as f64 / 1e6)
        );
    }
    Ok(())
}
