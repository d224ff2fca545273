//! The driver's and verifier's own Kafka access, through rdkafka directly: they check the library, so
//! they do not go through it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use kstreams::serde::{from_bytes, DefaultSerde};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A client configuration for `bootstrap`.
pub(crate) fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

pub(crate) fn create_topics(bootstrap: &str, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create()?;
    let topics: Vec<NewTopic> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(-1))).collect();
    for result in futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))? {
        result.map_err(|(topic, e)| anyhow!("creating topic {topic}: {e}"))?;
    }
    Ok(())
}

/// Writes `records` (string keys, long values, as the application's serdes write them) to `topic` and
/// waits for every acknowledgement.
pub(crate) fn produce(bootstrap: &str, topic: &str, records: &[(String, i64)]) -> anyhow::Result<()> {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = client(bootstrap).set("acks", "all").create()?;
    for (key, value) in records {
        let value = value.to_be_bytes();
        let record = BaseRecord::to(topic).key(key.as_bytes()).payload(&value[..]);
        producer.send(record).map_err(|(e, _)| anyhow!("sending to {topic}: {e}"))?;
    }
    producer.flush(TIMEOUT).with_context(|| format!("flushing the records of {topic}"))?;
    Ok(())
}

/// A consumer that joins no group: for metadata, watermarks and reading assigned partitions.
/// `read_committed` decides whether transactional records count before their commit (and whether the
/// "end" of a partition is its high watermark or its last stable offset).
pub(crate) fn reader(bootstrap: &str, group: &str, read_committed: bool) -> anyhow::Result<BaseConsumer> {
    Ok(client(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", if read_committed { "read_committed" } else { "read_uncommitted" })
        .create()?)
}

/// Topics whose names start with `prefix`, with their partition counts: the application's internal
/// topics (repartition and changelog topics are named after the application id).
pub(crate) fn topics_with_prefix(consumer: &BaseConsumer, prefix: &str) -> anyhow::Result<BTreeMap<String, i32>> {
    let metadata = consumer.fetch_metadata(None, TIMEOUT).context("fetching topic metadata")?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix))
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// The end of each partition of `topic` as `consumer` sees it: the high watermark, or under
/// `read_committed` the last stable offset (an open transaction holds it back).
pub(crate) fn ends(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<Vec<i64>> {
    (0..partitions)
        .map(|p| {
            let (_, high) =
                consumer.fetch_watermarks(topic, p, TIMEOUT).with_context(|| format!("watermarks of {topic}-{p}"))?;
            Ok(high)
        })
        .collect()
}

/// Partitions of `topic` where a transaction is open: the last stable offset (`committed`, a
/// `read_committed` reader) is behind the high watermark (`uncommitted`, a `read_uncommitted` one).
pub(crate) fn open_transactions(
    committed: &BaseConsumer,
    uncommitted: &BaseConsumer,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<i32>> {
    let stable = ends(committed, topic, partitions)?;
    let high = ends(uncommitted, topic, partitions)?;
    Ok((0..partitions).filter(|p| stable[*p as usize] != high[*p as usize]).collect())
}

/// The offsets `group` has committed for `topic` (-1 where none), read as stable offsets: a pending
/// transactional commit is waited for, not read.
pub(crate) fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<Vec<i64>> {
    let consumer = reader(bootstrap, group, true)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed =
        consumer.committed_offsets(tpl, TIMEOUT).with_context(|| format!("committed offsets of {group}"))?;
    Ok(committed.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { -1 }).collect())
}

/// One record of an output (or the input) topic, decoded as the application's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: String,
    /// `None` for a tombstone (the application writes none; the verifier would report one).
    pub(crate) value: Option<i64>,
    /// The record's timestamp (the producer's create time for the input).
    pub(crate) timestamp: i64,
}

/// Every record of `topic` that `read_committed` (or not) lets a consumer see, partition by partition
/// in offset order.
pub(crate) fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    read_committed: bool,
) -> anyhow::Result<Vec<Vec<Record>>> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", format!("crash-test-verifier-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", if read_committed { "read_committed" } else { "read_uncommitted" })
        .create()?;
    let mut pending: BTreeSet<i32> = BTreeSet::new();
    let mut tpl = TopicPartitionList::new();
    for (p, end) in ends(&consumer, topic, partitions)?.into_iter().enumerate() {
        if end > 0 {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
            pending.insert(p as i32);
        }
    }
    consumer.assign(&tpl)?;
    let mut records: Vec<Vec<Record>> = vec![Vec::new(); partitions as usize];
    let mut last_message = Instant::now();
    // Until every partition reports its end (the last stable offset under read_committed, past any
    // transaction marker). Ten idle seconds end the read too; the caller compares what it got.
    while !pending.is_empty() && last_message.elapsed() < Duration::from_secs(10) {
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
                continue;
            }
            Some(other) => other.with_context(|| format!("reading {topic}"))?,
        };
        last_message = Instant::now();
        let key = from_bytes(&*String::default_serde(), topic, message.key())
            .with_context(|| format!("key of {topic}-{}@{}", message.partition(), message.offset()))?
            .unwrap_or_default();
        let value = from_bytes(&*i64::default_serde(), topic, message.payload())
            .with_context(|| format!("value of {topic}-{}@{}", message.partition(), message.offset()))?;
        records[message.partition() as usize].push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key,
            value,
            timestamp: message.timestamp().to_millis().unwrap_or(-1),
        });
    }
    Ok(records)
}
