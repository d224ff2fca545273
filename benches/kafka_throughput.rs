//! End-to-end throughput against a local Kafka, kstreams side by side with Apache Kafka Streams and Quix
//! Streams: `./scripts/bench-compare.sh [--records N]` (every system, written to docs/benchmarks.md and
//! docs/benchmarks.svg), or `./scripts/bench.sh [--records N] [--value-size B]` (kstreams only, printed).
//!
//! Loads N records (keys from a space of 10,000 as 4-byte big-endian ints, Kafka's `IntegerSerializer`
//! and SimpleBenchmark's key type; random values of B bytes, so compression flatters nobody) into an
//! 8-partition topic once per value size, then runs each workload of each system in its own child process.
//! Rounds are interleaved (every workload of every system once per round, the systems' order rotating)
//! and the median round is reported: the broker shares the machine's cores, so single runs swing.
//!
//! Kafka's SimpleBenchmark workloads, for every system (`--systems kstreams,kafka-streams,quix`):
//!
//! - `consume`, `consumeproduce`: the plain clients each system is built on (rdkafka's `BaseConsumer`
//!   and `ThreadedProducer`; the Java `KafkaConsumer`/`KafkaProducer`; confluent-kafka for Python): the
//!   I/O ceilings, without and with output to a sink topic;
//! - `streamprocess`: `stream().peek(count)`;
//! - `streamprocesswithsink`: `stream().peek(count).to(sink)`;
//! - `streamprocesswithstatestore`: a Processor-API processor on a persistent (RocksDB) key-value store
//!   with caching and logging, `get(key)` then `put(key, value)` per record;
//! - `streamcount`: `stream().peek(count).group_by_key().count()` with the default 10 MiB record cache;
//! - `streamcountwindowed`: the same over hopping windows of 1 s advancing by 500 ms
//!   (`windowed_by(TimeWindows::of_size_with_no_grace(1 s).advance_by(500 ms)).count()`);
//! - `streamprocesswithwindowstore`: a Processor-API processor on a persistent window store (retention
//!   3 s, windows of 1 s) with caching and logging, per record a `fetch_range(key - 10, key + 10, t - 1 s,
//!   t + 1 s)` read to the end, then `put(key, value, t)` (Kafka Streams and kstreams only: Quix Streams
//!   has no window store of its own to program against);
//! - `streamtablejoin`, `streamstreamjoin`, `tabletablejoin`: SimpleBenchmark's left joins of the input
//!   with a second topic loaded with the same records (`stream.left_join(table)`,
//!   `stream.left_join_stream(stream, JoinWindows::of_time_difference_with_no_grace(10 s))`,
//!   `table.left_join(table).to_stream()`), the joiner keeping the left value; done, as in
//!   SimpleBenchmark, when N results have come out (Kafka Streams and kstreams: Quix Streams' joins are
//!   not these). `tabletablejoin` runs without the record cache in both systems: with it, the tables'
//!   updates reach the join only at each commit.
//!
//! And kstreams' own, kept from before: `stateless` (`filter → map_values → to`), `count`
//! (`group_by_key().count().to_stream().to()`, record cache off: every update reaches the changelog and the
//! output), `count-cached` (the same with the default cache). A kstreams workload may name its processing
//! guarantee and commit interval: `count:eos:100` is `count` under `exactly_once_v2` committing every
//! 100 ms; such a workload is timed until a `read_committed` consumer in the child has seen every output
//! record, whichever the guarantee. The cost of exactly-once:
//! `--workloads count:alos:100,count:eos:100,count:alos:1000,count:eos:1000`.
//!
//! How every run is measured, the same for every system: the child prints `ASSIGNED` when it has its
//! partitions and `DONE` when it has seen every input record; the parent takes the time and the child's
//! CPU time (`/proc/<pid>/stat`, all threads) at each line, and the peak RSS (`VmHWM`) at the end, then
//! kills the child. For workloads with a sink the end is when every output record is visible in the sink
//! topic (the parent asks for its end offsets every 20 ms) instead of `DONE`. A command that prints
//! figures, not a test. To profile a child by hand, `--rounds 0 --keep-input` loads the input and leaves
//! it in place.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::dsl::JoinWindows;
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State};
use kstreams::serde::{BytesSerde, I32Serde};
use kstreams::store::Stores;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

#[path = "kafka_throughput/report.rs"]
mod report;

use report::{Measured, Row, SizeResults, System};

const PARTITIONS: i32 = 8;
const KEYS: u64 = 10_000;
/// The key's size on the wire: a 4-byte int.
const KEY_BYTES: usize = 4;

struct Args {
    records: u64,
    rounds: usize,
    value_sizes: Vec<usize>,
    workloads: Vec<String>,
    systems: Vec<System>,
    /// The Maven project of the Kafka Streams peer, built (`target/classes`, `target/classpath.txt`).
    kafka_streams: PathBuf,
    /// The Python of the venv with quixstreams.
    python: PathBuf,
    /// Where `docs/benchmarks.md` and `.svg` go; nothing is written without it.
    docs: Option<PathBuf>,
    /// Criterion's output directory, to put the engine bench's figures in the doc.
    engine: Option<PathBuf>,
    /// The longest one run may take before it counts as failed (SimpleBenchmark caps at 3 minutes).
    timeout: Duration,
    /// Leave the loaded input topics in place (their names are printed), to run a child on them by hand
    /// under a profiler.
    keep_input: bool,
    child: Option<(String, String, String, u64)>,
}

fn args() -> anyhow::Result<Args> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Args {
        records: 1_000_000,
        rounds: 3,
        value_sizes: vec![100],
        workloads: ["consume", "consumeproduce", "stateless", "count", "count-cached"].map(String::from).to_vec(),
        systems: vec![System::Kstreams],
        kafka_streams: here.join("benches/peers/kafka-streams"),
        python: dirs_cache().join("quix-venv/bin/python"),
        docs: None,
        engine: None,
        timeout: Duration::from_secs(300),
        keep_input: false,
        child: None,
    };
    let list = |s: String| s.split(',').map(String::from).collect::<Vec<_>>();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--records" => out.records = it.next().context("--records N")?.parse()?,
            "--rounds" => out.rounds = it.next().context("--rounds R")?.parse()?,
            "--value-size" | "--value-sizes" => {
                out.value_sizes =
                    list(it.next().context("--value-sizes B,B")?).iter().map(|s| s.parse()).collect::<Result<_, _>>()?
            }
            "--workloads" => out.workloads = list(it.next().context("--workloads a,b")?),
            "--systems" => {
                out.systems = list(it.next().context("--systems a,b")?)
                    .iter()
                    .map(|s| System::parse(s).with_context(|| format!("unknown system `{s}`")))
                    .collect::<Result<_, _>>()?
            }
            "--kafka-streams" => out.kafka_streams = it.next().context("--kafka-streams DIR")?.into(),
            "--python" => out.python = it.next().context("--python PATH")?.into(),
            "--docs" => out.docs = Some(it.next().context("--docs DIR")?.into()),
            "--engine" => out.engine = Some(it.next().context("--engine DIR")?.into()),
            "--timeout" => out.timeout = Duration::from_secs(it.next().context("--timeout SECONDS")?.parse()?),
            "--keep-input" => out.keep_input = true,
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

fn dirs_cache() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/kstreams")
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

/// The application id (consumer group) of a child: the parent's run id, so that the parent can delete
/// the internal topics the run made; a fresh one when run by hand.
fn app_id(prefix: &str) -> String {
    std::env::var("KSTREAMS_BENCH_APP_ID").unwrap_or_else(|_| unique(prefix))
}

/// Deletes the topics of one run: its sink and every topic named after its application id (changelogs),
/// so that runs of 1 KiB records do not fill the disk. Other work's topics on the same broker are left
/// alone.
fn delete_run_topics(output: &str, app_id: &str) -> anyhow::Result<()> {
    let lister: BaseConsumer = client().create()?;
    let metadata = lister.fetch_metadata(None, Duration::from_secs(10))?;
    let doomed: Vec<&str> =
        metadata.topics().iter().map(|t| t.name()).filter(|n| *n == output || n.contains(app_id)).collect();
    let admin: AdminClient<DefaultClientContext> = client().create()?;
    for r in futures::executor::block_on(admin.delete_topics(&doomed, &AdminOptions::new()))? {
        r.map_err(|(t, e)| anyhow::anyhow!("delete {t}: {e}"))?;
    }
    Ok(())
}

/// The second input of the join workloads: `<input>-2`, loaded with the same records.
fn second_input(input: &str) -> String {
    format!("{input}-2")
}

/// Whether a workload joins the input with the second input.
fn is_join(workload: &str) -> bool {
    matches!(workload, "streamtablejoin" | "streamstreamjoin" | "tabletablejoin")
}

/// Loads the data, each record into every topic of `topics`; returns how many records pass the
/// `stateless` filter (value's first byte not 0).
fn load(topics: &[&str], records: u64, value_size: usize) -> anyhow::Result<u64> {
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
        let key = ((next() % KEYS) as i32).to_be_bytes();
        for chunk in value.chunks_mut(8) {
            let r = next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        if value[0] != 0 {
            passing += 1;
        }
        for topic in topics {
            loop {
                match producer.send(BaseRecord::to(topic).key(&key[..]).payload(&value[..])) {
                    Ok(()) => break,
                    Err((e, _)) if e.to_string().contains("Queue full") => std::thread::sleep(Duration::from_millis(5)),
                    Err((e, _)) => bail!("load: {e}"),
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(passing)
}

/// CPU seconds (user + system, every thread) of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ
}

/// Peak resident set size of process `pid` in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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

/// Whether the parent times a workload by its sink topic rather than by the child's `DONE`.
fn watched_by_parent(workload: &str) -> bool {
    matches!(workload, "consumeproduce" | "streamprocesswithsink" | "stateless" | "count")
}

/// Tells the parent a line of the protocol: `ASSIGNED` or `DONE`.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Counts records and says `DONE` at the expected count (SimpleBenchmark's `CountDownAction`).
#[derive(Clone)]
struct Counter {
    seen: Arc<AtomicU64>,
    expected: u64,
}

impl Counter {
    fn new(expected: u64) -> Self {
        Counter { seen: Arc::new(AtomicU64::new(0)), expected }
    }

    fn record(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            say("DONE");
        }
    }
}

/// Says `ASSIGNED` when the raw consumer gets its partitions: the ceilings are timed from there, as the
/// stream processors are timed from RUNNING (partitions assigned), so that both include finding the start
/// offsets and the first fetch.
struct SayAssigned;

impl rdkafka::ClientContext for SayAssigned {}

impl rdkafka::consumer::ConsumerContext for SayAssigned {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(list) = rebalance
            && list.count() > 0
        {
            say("ASSIGNED");
        }
    }
}

/// SimpleBenchmark's state-store processor: count, get the key, put the value.
struct GetThenPut {
    counter: Counter,
    store: Option<kstreams::processor::StoreHandle<i32, Vec<u8>>>,
}

const STORE: &str = "store";

/// SimpleBenchmark's `streamprocesswithwindowstore` processor: a key-range fetch over two seconds around
/// the record, read to the end, then a put.
struct FetchThenPut {
    counter: Counter,
}

impl Processor<i32, Vec<u8>, (), ()> for FetchThenPut {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<i32, Vec<u8>>,
    ) -> Result<(), StreamsError> {
        self.counter.record();
        let store = ctx.window_store::<i32, Vec<u8>>(STORE)?;
        let t = record.timestamp;
        for window in store.fetch_range(&(record.key - 10), &(record.key + 10), t - 1000, t + 1000)? {
            window?;
        }
        store.put(&record.key, &record.value, t)
    }
}

impl Processor<i32, Vec<u8>, (), ()> for GetThenPut {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<(), StreamsError> {
        self.store = Some(ctx.store_handle(STORE)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<i32, Vec<u8>>,
    ) -> Result<(), StreamsError> {
        self.counter.record();
        let store = ctx.store_mut(self.store.expect("init looked the store up"))?;
        store.get(&record.key)?;
        store.put(&record.key, &record.value)
    }
}

/// Runs one kstreams workload in this process, saying `ASSIGNED` and `DONE`; returns only on failure
/// (the parent kills it once it has its figures).
fn run_child(workload: &str, input: &str, output: &str, expected: u64) -> anyhow::Result<()> {
    let counter = Counter::new(expected);
    if matches!(workload, "consume" | "consumeproduce") {
        let consumer: BaseConsumer<SayAssigned> = client()
            .set("group.id", app_id("bench-raw"))
            // The same fetch setting the library's consumers use, so the ceiling is not handicapped.
            .set("fetch.queue.backoff.ms", "5")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create_with_context(SayAssigned)?;
        consumer.subscribe(&[input])?;
        let producer: Option<ThreadedProducer<DefaultProducerContext>> = if workload == "consumeproduce" {
            Some(client().set("linger.ms", "100").set("partitioner", "murmur2_random").create()?)
        } else {
            None
        };
        loop {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                if let Some(p) = &producer {
                    p.flush(Duration::from_secs(60))?;
                }
                continue;
            };
            let message = message?;
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
            counter.record();
        }
    }

    let mut parts = workload.split(':');
    let kind = parts.next().unwrap_or_default();
    let guarantee = match parts.next() {
        None => None,
        Some("alos") => Some(ProcessingGuarantee::AtLeastOnce),
        Some("eos") => Some(ProcessingGuarantee::ExactlyOnceV2),
        Some(other) => bail!("workload `{workload}`: guarantee `{other}` is neither `alos` nor `eos`"),
    };
    let commit_ms: Option<u64> = parts
        .next()
        .map(|ms| ms.parse().with_context(|| format!("workload `{workload}`: commit interval")))
        .transpose()?;
    let topology = match kind {
        "streamprocesswithstatestore" => {
            let mut topology = Topology::new();
            let supplier = {
                let counter = counter.clone();
                move || GetThenPut { counter: counter.clone(), store: None }
            };
            topology
                .add_source("source", &[input], Arc::new(I32Serde), Arc::new(BytesSerde))?
                .add_processor("get-then-put", supplier, &["source"])?
                .add_state_store(
                    Stores::key_value_store_builder(
                        Stores::persistent_key_value_store(STORE),
                        Arc::new(I32Serde),
                        Arc::new(BytesSerde),
                    )
                    .with_caching_enabled(),
                    &["get-then-put"],
                )?;
            topology
        }
        "streamprocesswithwindowstore" => {
            let mut topology = Topology::new();
            let supplier = {
                let counter = counter.clone();
                move || FetchThenPut { counter: counter.clone() }
            };
            let window = Duration::from_millis(1000);
            topology
                .add_source("source", &[input], Arc::new(I32Serde), Arc::new(BytesSerde))?
                .add_processor("fetch-then-put", supplier, &["source"])?
                .add_state_store(
                    Stores::window_store_builder(
                        Stores::persistent_window_store(STORE, 3 * window, window, false)?,
                        Arc::new(I32Serde),
                        Arc::new(BytesSerde),
                    )
                    .with_caching_enabled(),
                    &["fetch-then-put"],
                )?;
            topology
        }
        "streamtablejoin" | "streamstreamjoin" | "tabletablejoin" => {
            // SimpleBenchmark's joiner: the left value (the right one where there is no left).
            let builder = StreamsBuilder::new();
            let second = second_input(input);
            let count = {
                let counter = counter.clone();
                move |_: &i32, _: &Vec<u8>| counter.record()
            };
            match kind {
                "streamtablejoin" => {
                    let table = builder.table::<i32, Vec<u8>>(&second);
                    builder.stream::<i32, Vec<u8>>(input).left_join(&table, |v, _| v).peek(count);
                }
                "streamstreamjoin" => {
                    let other = builder.stream::<i32, Vec<u8>>(&second);
                    let windows = JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(10));
                    builder
                        .stream::<i32, Vec<u8>>(input)
                        .left_join_stream(&other, |v, _| v.clone(), windows)
                        .peek(count);
                }
                _ => {
                    let other = builder.table::<i32, Vec<u8>>(&second);
                    let joined = builder.table::<i32, Vec<u8>>(input).left_join(&other, |v, _| v.clone());
                    joined.to_stream().peek(move |k, v: &Option<Vec<u8>>| count(k, v.as_ref().unwrap_or(&Vec::new())));
                }
            }
            builder.build()?
        }
        _ => {
            let builder = StreamsBuilder::new();
            let counted = {
                let counter = counter.clone();
                builder.stream::<i32, Vec<u8>>(input).peek(move |_, _| counter.record())
            };
            match kind {
                "streamprocess" => {}
                "streamprocesswithsink" => counted.to(output),
                "streamcount" => {
                    counted.group_by_key().count();
                }
                "streamcountwindowed" => {
                    let windows = TimeWindows::of_size_with_no_grace(Duration::from_millis(1000))
                        .advance_by(Duration::from_millis(500));
                    counted.group_by_key().windowed_by(windows).count();
                }
                "stateless" => counted
                    .filter(|_, v| v.first() != Some(&0))
                    .map_values(|mut v| {
                        v.truncate(v.len() - 1);
                        v
                    })
                    .to(output),
                "count" | "count-cached" => counted.group_by_key().count().to_stream().to(output),
                _ => bail!("unknown workload `{workload}`"),
            }
            builder.build()?
        }
    };
    let mut config = StreamsConfig::new(app_id("bench-app"), bootstrap());
    config.commit_interval = Some(Duration::from_millis(commit_ms.unwrap_or(30_000))); // SimpleBenchmark's 30 s
    config.max_poll_records = 1000;
    // The parent names the directory and removes it after the run (it kills this process).
    config.state_dir = std::env::var_os("KSTREAMS_BENCH_STATE")
        .map_or_else(|| std::env::temp_dir().join(unique("bench-state")), PathBuf::from);
    if let Some(guarantee) = guarantee {
        config.processing_guarantee = guarantee;
    }
    // `count` forwards every update; so does `tabletablejoin`: with the record cache, both tables' updates
    // would reach the join only at each 30 s commit (10,000 keys fit in it), and 3 M results would take
    // hours, in either system.
    if kind == "count" || kind == "tabletablejoin" {
        config.cache_max_bytes = 0;
    }
    let mut app = KafkaStreams::new(topology, config)?;
    let running = std::sync::atomic::AtomicBool::new(false);
    app.set_state_listener(move |_, new| {
        if new == State::Running && !running.swap(true, Ordering::Relaxed) {
            say("ASSIGNED");
        }
    });
    app.start()?;
    // Under a named guarantee the child itself watches the output, as a downstream `read_committed`
    // consumer would see it.
    let committed = if guarantee.is_some() { Some(CommittedCounter::new(output)?) } else { None };
    loop {
        if app.state() == State::Error {
            bail!("app failed: {:?}", app.take_error());
        }
        match &committed {
            Some(c) if c.seen.get() < expected => {
                if c.count_for(Duration::from_millis(20)) >= expected {
                    say("DONE");
                }
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
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

/// The command that runs `workload` of `system` as a child process.
fn child_command(
    args: &Args,
    system: System,
    workload: &str,
    topics: (&str, &str),
    expected: u64,
    state: &Path,
) -> anyhow::Result<Command> {
    let (input, output) = topics;
    let expected = expected.to_string();
    let mut command = match system {
        System::Kstreams => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["--child", workload, input, output, &expected]).env("KSTREAMS_BENCH_STATE", state);
            return Ok(c);
        }
        System::KafkaStreams => {
            let target = args.kafka_streams.join("target");
            let deps = std::fs::read_to_string(target.join("classpath.txt")).with_context(|| {
                format!("the Kafka Streams peer is not built in {}: run scripts/bench-compare.sh", target.display())
            })?;
            let mut c = Command::new("java");
            // JVM defaults unless told otherwise (the default heap limit is a quarter of the RAM).
            if let Ok(opts) = std::env::var("KSTREAMS_BENCH_JVM_OPTS") {
                c.args(opts.split_whitespace());
            }
            c.arg("-cp")
                .arg(format!("{}:{}", target.join("classes").display(), deps.trim()))
                .arg("kstreams.bench.Peer");
            c
        }
        System::Quix => {
            let mut c = Command::new(&args.python);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/quix/peer.py"));
            c
        }
    };
    command.args([workload, &bootstrap(), input, output, &expected]).arg(state);
    Ok(command)
}

/// Kills the child when dropped, so that no failure path leaves one running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one child to the end and measures it; see the module docs for how.
fn measure(mut command: Command, log: &Path, sink: Option<(&str, u64)>, timeout: Duration) -> anyhow::Result<Measured> {
    let stderr = std::fs::File::create(log)?;
    let mut child =
        Running(command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn().context("start the child")?);
    let pid = child.0.id();
    let stdout = child.0.stdout.take().context("the child's stdout")?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let fail = |child: &mut Running, what: &str| -> anyhow::Error {
        let status = child.0.try_wait().ok().flatten();
        let tail: String = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        anyhow::anyhow!("{what} (exit status {status:?}; log {}):\n{tail}", log.display())
    };
    // Waits for a protocol line, failing when the child exits or time runs out.
    let wait_for = |child: &mut Running, word: &str| -> anyhow::Result<Instant> {
        loop {
            match lines.recv_timeout(Duration::from_millis(200)) {
                Ok((at, line)) if line.trim() == word => return Ok(at),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(fail(child, &format!("the child exited before {word}")))
                }
            }
            if started.elapsed() > timeout {
                return Err(fail(child, &format!("no {word} within {} s", timeout.as_secs())));
            }
        }
    };
    let assigned = wait_for(&mut child, "ASSIGNED")?;
    let cpu0 = cpu_seconds(pid);
    let done = match sink {
        None => wait_for(&mut child, "DONE")?,
        Some((topic, expected)) => {
            let watcher: BaseConsumer = client().create()?;
            loop {
                if output_count(&watcher, topic) >= expected {
                    break Instant::now();
                }
                if child.0.try_wait()?.is_some() {
                    return Err(fail(&mut child, "the child exited before its output was complete"));
                }
                if started.elapsed() > timeout {
                    return Err(fail(&mut child, &format!("output incomplete after {} s", timeout.as_secs())));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let cpu = cpu_seconds(pid) - cpu0;
    let rss_mib = peak_rss_mib(pid);
    drop(child);
    Ok(Measured { secs: done.duration_since(assigned).as_secs_f64(), cpu, rss_mib })
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    if let Some((workload, input, output, expected)) = &args.child {
        // With RUST_LOG, the library's log of the workload goes to stderr, which the parent keeps.
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        return run_child(workload, input, output, *expected);
    }

    let scratch = tempfile::Builder::new().prefix("kstreams-bench-").tempdir()?;
    let mut results = Vec::new();
    for &value_size in &args.value_sizes {
        let input = unique("bench-input");
        create_topic(&input)?;
        // The joins read a second topic with the same records.
        let second = second_input(&input);
        let joins = args.workloads.iter().any(|w| is_join(w));
        let mut topics = vec![input.as_str()];
        if joins {
            create_topic(&second)?;
            topics.push(&second);
        }
        let load_start = Instant::now();
        let passing = load(&topics, args.records, value_size)?;
        let load_secs = load_start.elapsed().as_secs_f64();
        eprintln!(
            "loaded {} records of {} B ({KEY_BYTES} B key + value) over {PARTITIONS} partitions, {KEYS} keys, into {input} in {load_secs:.1} s",
            args.records,
            KEY_BYTES + value_size
        );
        let mut runs: BTreeMap<(String, System), (Vec<Measured>, Vec<String>)> = BTreeMap::new();
        for round in 0..args.rounds {
            for workload in &args.workloads {
                let mut systems: Vec<System> = args.systems.iter().copied().filter(|s| s.supports(workload)).collect();
                let n = systems.len().max(1);
                systems.rotate_left(round % n);
                for system in systems {
                    // Topic names take letters, digits, `.`, `_` and `-`: `count:eos:100` becomes `count-eos-100`.
                    let output = unique(&format!("bench-out-{}", workload.replace(':', "-")));
                    let app = unique(&format!("bench-{}", system.name()));
                    create_topic(&output)?;
                    let expected = match workload.split(':').next().unwrap_or_default() {
                        "stateless" => passing,
                        _ => args.records,
                    };
                    let state = scratch.path().join(unique("state"));
                    let log =
                        scratch.path().join(format!("{}-{}.log", system.name(), unique(&workload.replace(':', "-"))));
                    let mut command = child_command(&args, system, workload, (&input, &output), expected, &state)?;
                    command.env("KSTREAMS_BENCH_APP_ID", &app);
                    let sink = (watched_by_parent(workload)).then_some((output.as_str(), expected));
                    let entry = runs.entry((workload.clone(), system)).or_default();
                    match measure(command, &log, sink, args.timeout) {
                        Ok(m) => {
                            eprintln!(
                                "{value_size} B round {} {workload} {}: {:.0} records/s, {:.1} CPU s, {:.0} MiB",
                                round + 1,
                                system.name(),
                                args.records as f64 / m.secs,
                                m.cpu,
                                m.rss_mib
                            );
                            entry.0.push(m);
                        }
                        Err(e) => {
                            eprintln!("{value_size} B round {} {workload} {}: failed: {e:#}", round + 1, system.name());
                            entry.1.push(format!("{e:#}").split(" (exit").next().unwrap_or_default().to_string());
                        }
                    }
                    let _ = std::fs::remove_dir_all(&state);
                    if let Err(e) = delete_run_topics(&output, &app) {
                        eprintln!("could not delete the topics of {app}: {e:#}");
                    }
                }
            }
        }
        if args.keep_input {
            eprintln!("kept the input: {}", topics.join(", "));
        } else if let Err(e) = delete_run_topics(&input, &input) {
            eprintln!("could not delete {input}: {e:#}");
        }
        let rows = args
            .workloads
            .iter()
            .flat_map(|w| args.systems.iter().map(move |s| (w, *s)))
            .filter_map(|(w, s)| {
                let (mut ok, failed) = runs.remove(&(w.clone(), s))?;
                ok.sort_by(|a, b| a.secs.total_cmp(&b.secs));
                let median = (!ok.is_empty()).then(|| ok[ok.len() / 2]);
                Some(Row { workload: w.clone(), system: s, median, failures: failed })
            })
            .collect();
        let sized = SizeResults { value_size, key_size: KEY_BYTES, records: args.records, load_secs, rows };
        println!("\n{}", report::table(&sized));
        results.push(sized);
    }
    if let Some(docs) = &args.docs {
        let context = report::Context::gather(&args.python, &args.kafka_streams, args.rounds, &bootstrap());
        let engine = args.engine.as_deref().map(report::EngineFigures::read).unwrap_or_default();
        report::write_docs(docs, &context, &results, &engine)?;
        eprintln!("wrote {} and {}", docs.join("benchmarks.md").display(), docs.join("benchmarks.svg").display());
    }
    Ok(())
}
