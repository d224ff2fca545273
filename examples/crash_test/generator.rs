//! The input generator: known per-key values at a steady rate through an idempotent producer, keeping
//! every record the broker acknowledged (Kafka Streams' EosTestDriver does the same).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use kstreams::serde::{to_bytes, DefaultSerde};
use rdkafka::client::ClientContext;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::kafka;
use crate::topology::encode;

/// A record the broker acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Acked {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: String,
    pub(crate) value: i64,
}

/// What the generator did, shared with the driver while it runs.
#[derive(Default)]
pub(crate) struct Progress {
    /// Records handed to the producer.
    pub(crate) sent: AtomicU64,
    pub(crate) acked: Mutex<Vec<Acked>>,
    /// Deliveries that failed, with the broker's reason: the records may or may not be in the topic.
    pub(crate) failed: Mutex<Vec<String>>,
    /// Set by the driver when its fault schedule failed: the run has failed, generating on is waiting
    /// for nothing (a soak's generator has half an hour to go).
    pub(crate) stop: std::sync::atomic::AtomicBool,
}

struct Deliveries(Arc<Progress>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
                let value = message.payload().and_then(|v| v.try_into().ok()).map_or(i64::MIN, i64::from_be_bytes);
                let acked = Acked { partition: message.partition(), offset: message.offset(), key, value };
                self.0.acked.lock().unwrap_or_else(|e| e.into_inner()).push(acked);
            }
            Err((error, message)) => {
                let failure = format!("partition {} : {error}", message.partition());
                self.0.failed.lock().unwrap_or_else(|e| e.into_inner()).push(failure);
            }
        }
    }
}

/// Writes `records` records over `keys` keys (`k0`, `k1`, ...) to `topic` at `rate` records/s. Key and
/// amount come from a xorshift seeded with `seed`; the value also carries the record's sequence number
/// within its key ([`encode`]). Keys are partitioned with murmur2, as the application and Java clients do.
pub(crate) fn generate(
    bootstrap: &str,
    topic: &str,
    records: u64,
    keys: u64,
    rate: u64,
    seed: u64,
    progress: Arc<Progress>,
) -> anyhow::Result<()> {
    let producer: ThreadedProducer<Deliveries> = kafka::client(bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create_with_context(Deliveries(progress.clone()))?;
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sequence = vec![0u64; keys as usize];
    let started = Instant::now();
    for i in 0..records {
        if progress.stop.load(Ordering::SeqCst) {
            break;
        }
        // Pace: record i goes out at i / rate seconds.
        let due = Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let k = next() % keys;
        let key = format!("k{k}");
        let value = encode(sequence[k as usize], (next() % 10_000) as i64);
        sequence[k as usize] += 1;
        let key_bytes = to_bytes(&*String::default_serde(), topic, &key)?.unwrap_or_default();
        let value_bytes = to_bytes(&*i64::default_serde(), topic, &value)?.unwrap_or_default();
        let mut record = BaseRecord::to(topic).key(&key_bytes[..]).payload(&value_bytes[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("generator: producing record {i} to {topic}: {e}"),
            }
        }
        progress.sent.fetch_add(1, Ordering::SeqCst);
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}
