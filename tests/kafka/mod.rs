//! Helpers for the tests that run against a broker: the real Kafka by default, or the embedded broker
//! for a test that calls [`use_embedded`] first. Fresh topics and application ids, producing input and
//! reading output, all through the library's own client seam, so one scenario runs on either broker.

#![allow(dead_code, unused_macros)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kstreams::embedded::EmbeddedBroker;

pub(crate) mod metrics;
use kstreams::runtime::KafkaStreams;
use kstreams::{StreamsError, Topology};

/// Declares one `#[test]` per scenario of the calling file's `scenarios` module, on the real Kafka
/// (`scenario_tests!(kafka: ...)`) or on a fresh embedded broker (`scenario_tests!(embedded: ...)`).
macro_rules! scenario_tests {
    (kafka: $($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() -> anyhow::Result<()> {
            scenarios::$name()
        }
    )*};
    (embedded: $($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() -> anyhow::Result<()> {
            kafka::use_embedded();
            scenarios::$name()
        }
    )*};
}

thread_local! {
    /// The embedded broker of the running test, if it chose one (each test runs on its own thread).
    static EMBEDDED: RefCell<Option<EmbeddedBroker>> = const { RefCell::new(None) };
}

/// Runs the calling test on a fresh embedded broker instead of the real Kafka.
pub(crate) fn use_embedded() -> EmbeddedBroker {
    let broker = EmbeddedBroker::new();
    EMBEDDED.with(|b| *b.borrow_mut() = Some(broker.clone()));
    broker
}

fn embedded() -> Option<EmbeddedBroker> {
    EMBEDDED.with(|b| b.borrow().clone())
}

/// Whether the calling test runs on the real Kafka.
pub(crate) fn on_kafka() -> bool {
    embedded().is_none()
}

/// The clients of the test's broker.
pub(crate) fn supplier() -> Arc<dyn ClientSupplier> {
    match embedded() {
        Some(broker) => Arc::new(broker),
        #[cfg(feature = "kafka")]
        None => Arc::new(kstreams::kafka::RdKafkaSupplier),
        // The embedded suites never get here; built without the Kafka client, nothing else can run.
        #[cfg(not(feature = "kafka"))]
        None => panic!("this test needs Apache Kafka, and kstreams was built without its `kafka` feature"),
    }
}

/// An application on the test's broker.
pub(crate) fn streams(topology: Topology, config: StreamsConfig) -> Result<KafkaStreams, StreamsError> {
    KafkaStreams::with_client_supplier(topology, config, supplier())
}

use kstreams::client::{
    ClientSupplier, NewTopic, OffsetCommitter, RebalanceListener, StreamsAdmin, StreamsConsumer, StreamsProducer,
    TopicPartition,
};
use kstreams::config::StreamsConfig;
use kstreams::record::{Headers, ProducedRecord, RawRecord};

/// The broker's address. These tests fail loudly, never skip, when Kafka is not there.
pub(crate) fn bootstrap() -> String {
    if embedded().is_some() {
        return "embedded".into();
    }
    std::env::var("KSTREAMS_BOOTSTRAP").expect(
        "KSTREAMS_BOOTSTRAP is not set: run these tests through ./scripts/test.sh, which starts Kafka \
         (or start it with scripts/kafka.sh start and export KSTREAMS_BOOTSTRAP=<the address it prints>)",
    )
}

/// A name no other test (or earlier run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}-{}", std::process::id(), nanos % 1_000_000_000, COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// With `RUST_LOG` set (`RUST_LOG=kstreams=info`), the library's logs go to the test's output.
pub(crate) fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// Settings for a test application: fast commits, a private state dir, and no record cache, so every
/// update reaches the output (as Kafka Streams advises for tests that check every update; the cache's own
/// test turns it back on).
pub(crate) fn config(app: &str) -> StreamsConfig {
    init_logging();
    let mut config = StreamsConfig::new(app, bootstrap());
    config.commit_interval = Some(Duration::from_millis(100));
    config.cache_max_bytes = 0;
    config.state_dir = std::env::temp_dir().join(unique("kstreams-state"));
    config.default_api_timeout = Duration::from_secs(20);
    // librdkafka's own debug log of the applications' consumers, e.g. `cgrp,fetch` (with
    // RUST_LOG=kstreams::librdkafka=debug): how a group or fetch problem on the real broker shows itself.
    if let Ok(debug) = std::env::var("KSTREAMS_TEST_CONSUMER_DEBUG") {
        config.consumer_overrides.insert("debug".into(), debug);
    }
    config
}

pub(crate) fn admin() -> Box<dyn StreamsAdmin> {
    supplier().admin(&config("admin")).expect("admin client")
}

/// Creates `topics` (name, partitions) and waits until the broker lists them. They keep their records
/// forever (`retention.ms=-1`): test records carry fixed timestamps from 2023 ([`produce`]), and the
/// broker's 7-day time retention, checked every 5 minutes, would otherwise delete them (and the outputs
/// that inherit their timestamps) in the middle of whichever test runs at that moment.
pub(crate) fn create_topics(topics: &[(&str, i32)]) {
    create_topics_with(topics, &[]);
}

/// [`create_topics`] with topic configs of their own.
pub(crate) fn create_topics_with(topics: &[(&str, i32)], configs: &[(&str, &str)]) {
    let mut config = BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]);
    config.extend(configs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let topics: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic {
            name: name.to_string(),
            partitions: *partitions,
            replication_factor: 1,
            config: config.clone(),
        })
        .collect();
    let admin = admin();
    admin.create_topics(&topics).expect("create topics");
    // Kafka answers before every broker's metadata has the new topics; an application started at once
    // could find its source topics missing.
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.partition_counts(&names).expect("describe topics").values().any(Option::is_none) {
        assert!(Instant::now() < deadline, "topics {names:?} not visible 30 s after they were created");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Produces `(key, value)` byte pairs to `topic`, partitioned by murmur2 of the key, and waits for acks.
pub(crate) fn produce(topic: &str, records: impl IntoIterator<Item = (Option<Vec<u8>>, Option<Vec<u8>>)>) {
    let stamped = records.into_iter().enumerate().map(|(i, (key, value))| (key, value, 1_700_000_000_000 + i as i64));
    produce_at(topic, stamped);
}

/// [`produce`] with each record's timestamp given.
pub(crate) fn produce_at(topic: &str, records: impl IntoIterator<Item = (Option<Vec<u8>>, Option<Vec<u8>>, i64)>) {
    send(topic, None, records);
}

/// Produces `(key, value)` records to partition `partition` of `topic`, stamped as [`produce`] does.
pub(crate) fn produce_to(
    topic: &str,
    partition: i32,
    records: impl IntoIterator<Item = (Option<Vec<u8>>, Option<Vec<u8>>)>,
) {
    let stamped = records.into_iter().enumerate().map(|(i, (key, value))| (key, value, 1_700_000_000_000 + i as i64));
    send(topic, Some(partition), stamped);
}

fn send(
    topic: &str,
    partition: Option<i32>,
    records: impl IntoIterator<Item = (Option<Vec<u8>>, Option<Vec<u8>>, i64)>,
) {
    let mut producer: Box<dyn StreamsProducer> =
        supplier().producer(&config("producer"), "test-producer", None).unwrap();
    let topic: Arc<str> = topic.into();
    for (key, value, timestamp) in records {
        let record = ProducedRecord { topic: topic.clone(), partition, key, value, timestamp, headers: Headers::new() };
        producer.send(&record).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

struct NoListener;
impl RebalanceListener for NoListener {
    fn on_partitions_revoked(&self, _: &[TopicPartition], _: &dyn OffsetCommitter) {}
    fn on_partitions_lost(&self, _: &[TopicPartition]) {}
    fn on_partitions_assigned(&self, _: &[TopicPartition], _: &kstreams::client::CommittedOffsets) {}
}

/// Reads `topic` from the beginning until `done` says the records so far are enough, or `timeout`.
pub(crate) fn consume_until(topic: &str, timeout: Duration, done: impl FnMut(&[RawRecord]) -> bool) -> Vec<RawRecord> {
    read_until(topic, timeout, false, done)
}

/// [`consume_until`] as a `read_committed` reader: records of committed transactions only.
pub(crate) fn consume_committed_until(
    topic: &str,
    timeout: Duration,
    done: impl FnMut(&[RawRecord]) -> bool,
) -> Vec<RawRecord> {
    read_until(topic, timeout, true, done)
}

fn read_until(
    topic: &str,
    timeout: Duration,
    read_committed: bool,
    mut done: impl FnMut(&[RawRecord]) -> bool,
) -> Vec<RawRecord> {
    let mut config = config(&unique("reader"));
    let isolation = if read_committed { "read_committed" } else { "read_uncommitted" };
    config.consumer_overrides.insert("isolation.level".into(), isolation.into());
    let mut consumer: Box<dyn StreamsConsumer> =
        supplier().consumer(&config, "test-reader", Arc::new(NoListener)).unwrap();
    consumer.subscribe(&[topic.to_string()]).unwrap();
    let deadline = Instant::now() + timeout;
    let (mut records, mut batch) = (Vec::new(), Vec::new());
    // The reader commits nothing: if its own group rebalances (its session expired in a stall of the
    // machine), it reads its partitions again from the start. A record read twice has the same offset;
    // one the application wrote twice has two.
    let mut seen = std::collections::HashSet::new();
    while Instant::now() < deadline && !done(&records) {
        // `max` bounds what the vector holds in all: a batch at a time.
        consumer.poll_batch(Duration::from_millis(200), 10_000, &mut batch).unwrap();
        batch.retain(|r| seen.insert((r.partition, r.offset)));
        records.append(&mut batch);
    }
    consumer.close();
    records
}

/// The configs of `topic` as the real Kafka describes them (`None` on the embedded broker, which keeps
/// only whether a topic is compacted).
pub(crate) fn topic_config(topic: &str) -> Option<BTreeMap<String, String>> {
    embedded().is_none().then(|| describe_topic_config(topic))
}

#[cfg(feature = "kafka")]
fn describe_topic_config(topic: &str) -> BTreeMap<String, String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).create().expect("an admin client");
    let described =
        futures::executor::block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
            .expect("describe configs");
    let resource = described.into_iter().next().expect("one resource").expect("the topic's configs");
    resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))).collect()
}

#[cfg(not(feature = "kafka"))]
fn describe_topic_config(_topic: &str) -> BTreeMap<String, String> {
    panic!("describing a topic needs Apache Kafka, and kstreams was built without its `kafka` feature")
}
