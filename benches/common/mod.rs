//! What the benches that run instances on Kafka share (`benches/failover.rs`, `benches/rebalance.rs`):
//! the broker's address, topics, a producer that sends until the queue takes the record, the
//! application's progress through its committed offsets, and the output records, each of which says
//! which instance made it and when (`<instance>:<ms>:...`).

// Each bench binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

pub(crate) fn bootstrap() -> anyhow::Result<String> {
    std::env::var("KSTREAMS_BOOTSTRAP")
        .context("set KSTREAMS_BOOTSTRAP (export KSTREAMS_BOOTSTRAP=$(./scripts/kafka.sh bootstrap))")
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

pub(crate) fn create_topics(bootstrap: &str, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create()?;
    let topics: Vec<NewTopic<'_>> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    for result in futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))? {
        result.map_err(|(topic, e)| anyhow::anyhow!("create {topic}: {e}"))?;
    }
    Ok(())
}

pub(crate) fn producer(bootstrap: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    // murmur2, as the application's sink: a key's input and output partitions are the same, so an output
    // partition is one task's history.
    Ok(client(bootstrap).set("linger.ms", "5").set("partitioner", "murmur2_random").create()?)
}

/// Sends, waiting while the producer's queue is full.
pub(crate) fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, value: &str) {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
        }
    }
}

/// Waits until the application's group has committed all of `input` but at most `behind` records.
pub(crate) fn wait_until_processed(
    bootstrap: &str,
    app: &str,
    input: &str,
    partitions: i32,
    behind: i64,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client(bootstrap).set("group.id", app).create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(input, p);
    }
    let started = Instant::now();
    loop {
        let committed = consumer.committed_offsets(list.clone(), Duration::from_secs(10))?;
        let mut left = 0i64;
        for p in 0..partitions {
            let (_, end) = consumer.fetch_watermarks(input, p, Duration::from_secs(10))?;
            let at = match committed.find_partition(input, p).map(|e| e.offset()) {
                Some(Offset::Offset(at)) => at,
                _ => 0,
            };
            left += end - at;
        }
        if left <= behind {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "still {left} records to process");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The output's end offset per partition: where a later [`read_output`] starts.
pub(crate) fn output_ends(bootstrap: &str, output: &str, partitions: i32) -> anyhow::Result<BTreeMap<i32, i64>> {
    let reader: BaseConsumer = client(bootstrap).create()?;
    (0..partitions).map(|p| Ok((p, reader.fetch_watermarks(output, p, Duration::from_secs(10))?.1))).collect()
}

/// Per output partition from `from` (its offsets) until nothing more comes for 5 s, every output:
/// (instance, processed at ms), in the partition's order.
pub(crate) fn read_output(
    bootstrap: &str,
    output: &str,
    from: &BTreeMap<i32, i64>,
) -> anyhow::Result<BTreeMap<i32, Vec<(String, i64)>>> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", format!("bench-reader-{}", now_ms()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for (&p, &offset) in from {
        list.add_partition_offset(output, p, Offset::Offset(offset))?;
    }
    consumer.assign(&list)?;
    let mut out: BTreeMap<i32, Vec<(String, i64)>> = BTreeMap::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                let mut parts = value.split(':');
                let (Some(who), Some(at)) = (parts.next(), parts.next().and_then(|a| a.parse().ok())) else { continue };
                out.entry(m.partition()).or_default().push((who.to_string(), at));
            }
            Some(Err(e)) => anyhow::bail!("reading {output}: {e}"),
            None => {}
        }
    }
    Ok(out)
}
