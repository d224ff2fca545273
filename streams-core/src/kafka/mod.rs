//! The rdkafka side of the client seam: the only module that imports rdkafka. [`RdKafkaSupplier`] makes
//! consumers, producers and admin clients that speak to a real Kafka-compatible broker.
//!
//! Settings the runtime always applies (as Kafka Streams overrides its clients): the consumer group is the
//! application id, offsets are committed by the runtime only (`enable.auto.commit=false`), new groups start
//! at the earliest offset, partitions are assigned by range (so co-partitioned partitions land together),
//! and the producer places keyed records with murmur2 (`partitioner=murmur2_random`), as Kafka's Java
//! producer does, so Java and Rust applications agree on where a key lives.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic as RdNewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::client::{
    ClientError, ClientSupplier, NewTopic, OffsetCommitter, RebalanceListener, RestoreConsumer, StreamsAdmin,
    StreamsConsumer, StreamsProducer, TopicPartition,
};
use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::record::{ProducedRecord, RawRecord};
use crate::StreamsError;

/// Makes rdkafka clients: the default [`ClientSupplier`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RdKafkaSupplier;

fn client_error(operation: impl Into<String>, error: KafkaError) -> ClientError {
    let retriable = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::QueueFull
        )
    );
    ClientError::new(operation, error.to_string(), retriable)
}

/// How long librdkafka waits before fetching again once its local queue is full (`queued.min.messages`).
/// Its default, 1000 ms, leaves a consumer that is only a little slower than the broker idle for a
/// second at a time: restores ran at a quarter of the raw consume rate because of it.
const FETCH_QUEUE_BACKOFF_MS: &str = "5";

fn base_config(config: &StreamsConfig, overrides: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in config.client_overrides.iter().chain(overrides) {
        c.set(k, v);
    }
    c
}

impl ClientSupplier for RdKafkaSupplier {
    fn consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<Box<dyn StreamsConsumer>, ClientError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.application_id)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            .set("session.timeout.ms", "45000")
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        if config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
            c.set("isolation.level", "read_committed");
        }
        for (k, v) in config.client_overrides.iter().chain(&config.consumer_overrides) {
            c.set(k, v);
        }
        // The runtime owns these; overriding them would break its guarantees.
        c.set("enable.auto.commit", "false").set("group.id", &config.application_id);
        let consumer: BaseConsumer<RuntimeContext> =
            c.create_with_context(RuntimeContext { listener }).map_err(|e| client_error("create consumer", e))?;
        Ok(Box::new(RdKafkaConsumer { consumer, topics: Vec::new() }))
    }

    fn producer(&self, config: &StreamsConfig, client_id: &str) -> Result<Box<dyn StreamsProducer>, ClientError> {
        let mut c = base_config(config, &BTreeMap::new());
        c.set("client.id", client_id).set("linger.ms", "100").set("partitioner", "murmur2_random");
        for (k, v) in &config.producer_overrides {
            c.set(k, v);
        }
        let context = DeliveryContext { first_error: Arc::new(Mutex::new(None)), acked: Arc::default() };
        let (first_error, acked) = (context.first_error.clone(), context.acked.clone());
        let producer: ThreadedProducer<DeliveryContext> =
            c.create_with_context(context).map_err(|e| client_error("create producer", e))?;
        Ok(Box::new(RdKafkaProducer { producer, first_error, acked }))
    }

    fn restore_consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
    ) -> Result<Box<dyn RestoreConsumer>, ClientError> {
        let mut c = base_config(config, &config.consumer_overrides);
        // Assigned partitions only, never a group member; offsets are never committed.
        c.set("client.id", client_id)
            .set("group.id", format!("{}-restore-consumer", config.application_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        if config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
            c.set("isolation.level", "read_committed");
        }
        let consumer: BaseConsumer = c.create().map_err(|e| client_error("create restore consumer", e))?;
        Ok(Box::new(RdKafkaRestoreConsumer { consumer, timeout: config.default_api_timeout, topics: Vec::new() }))
    }

    fn admin(&self, config: &StreamsConfig) -> Result<Box<dyn StreamsAdmin>, ClientError> {
        let c = base_config(config, &config.admin_overrides);
        let admin: AdminClient<DefaultClientContext> =
            c.create().map_err(|e| client_error("create admin client", e))?;
        let metadata: BaseConsumer = c.create().map_err(|e| client_error("create metadata client", e))?;
        let timeout = config.default_api_timeout;
        Ok(Box::new(RdKafkaAdmin { admin, metadata, timeout, servers: config.bootstrap_servers.clone() }))
    }
}

/// Runs the runtime's rebalance listener inside rdkafka's rebalance callback.
struct RuntimeContext {
    listener: Arc<dyn RebalanceListener>,
}

impl ClientContext for RuntimeContext {}

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let committer = CallbackCommitter { consumer };
                self.listener.on_partitions_revoked(&partitions_of(list), &committer);
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.listener.on_partitions_assigned(&partitions_of(list));
        }
    }
}

fn offset_list(offsets: &[(TopicPartition, i64)]) -> Result<TopicPartitionList, ClientError> {
    let mut list = TopicPartitionList::new();
    for (tp, offset) in offsets {
        list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
            .map_err(|e| client_error(format!("commit offset of {tp}"), e))?;
    }
    Ok(list)
}

struct CallbackCommitter<'a> {
    consumer: &'a BaseConsumer<RuntimeContext>,
}

impl OffsetCommitter for CallbackCommitter<'_> {
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.consumer.commit(&offset_list(offsets)?, CommitMode::Sync).map_err(|e| client_error("commit offsets", e))
    }
}

struct RdKafkaConsumer {
    consumer: BaseConsumer<RuntimeContext>,
    /// Topic names as shared strings, so a record does not allocate its topic's name.
    topics: Vec<Arc<str>>,
}

fn topic_of(topics: &mut Vec<Arc<str>>, name: &str) -> Arc<str> {
    match topics.iter().find(|t| &***t == name) {
        Some(topic) => topic.clone(),
        None => {
            let topic: Arc<str> = name.into();
            topics.push(topic.clone());
            topic
        }
    }
}

fn raw_record(topic: Arc<str>, message: &rdkafka::message::BorrowedMessage<'_>) -> RawRecord {
    let headers = message
        .headers()
        .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
        .unwrap_or_default();
    RawRecord {
        topic,
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis().unwrap_or(-1),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

impl StreamsConsumer for RdKafkaConsumer {
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError> {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics).map_err(|e| client_error("subscribe", e))
    }

    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
        let mut wait = timeout;
        while out.len() < max {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    let topic = topic_of(&mut self.topics, message.topic());
                    out.push(raw_record(topic, &message));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    let error = client_error("poll", e);
                    if error.retriable {
                        tracing::warn!(error = %error, "retriable consumer error; polling on");
                    } else {
                        return Err(error);
                    }
                }
            }
            wait = Duration::ZERO;
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.consumer.commit(&offset_list(offsets)?, CommitMode::Sync).map_err(|e| client_error("commit offsets", e))
    }

    fn close(&mut self) {
        self.consumer.unsubscribe();
        // Serve the revocation callback so the listener commits and closes tasks before we go.
        let _ = self.consumer.poll(Duration::from_millis(100));
    }
}

/// Acknowledged offsets: topic -> partition -> offset of the last acknowledged record.
type Acked = Arc<Mutex<HashMap<String, HashMap<i32, i64>>>>;

/// Keeps the first delivery error for `flush` to report, and the last acknowledged offset per partition.
struct DeliveryContext {
    first_error: Arc<Mutex<Option<ClientError>>>,
    acked: Acked,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    /// Whether to remember the record's offset: only for records sent to an explicit partition
    /// (changelogs), so that sink records do not take a lock each.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, track: usize) {
        if let (Ok(message), 1) = (result, track) {
            let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
            let partitions = match acked.get_mut(message.topic()) {
                Some(partitions) => partitions,
                None => acked.entry(message.topic().to_string()).or_default(),
            };
            let offset = partitions.entry(message.partition()).or_insert(message.offset());
            *offset = (*offset).max(message.offset());
        }
        if let Err((error, message)) = result {
            let operation = format!("produce to {}-{}", message.topic(), message.partition());
            let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            if first.is_none() {
                *first = Some(client_error(operation, error.clone()));
            }
        }
    }
}

struct RdKafkaProducer {
    producer: ThreadedProducer<DeliveryContext>,
    first_error: Arc<Mutex<Option<ClientError>>>,
    acked: Acked,
}

impl StreamsProducer for RdKafkaProducer {
    fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError> {
        // Most records have no headers: skip librdkafka's header list (an allocation) for them.
        let headers = (!record.headers.is_empty()).then(|| {
            record.headers.iter().fold(OwnedHeaders::new_with_capacity(record.headers.len()), |hs, (key, value)| {
                hs.insert(Header { key, value })
            })
        });
        loop {
            let track = usize::from(record.partition.is_some());
            let mut r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(&record.topic, track);
            if let Some(headers) = &headers {
                r = r.headers(headers.clone());
            }
            if let Some(key) = &record.key {
                r = r.key(key.as_slice());
            }
            if let Some(value) = &record.value {
                r = r.payload(value.as_slice());
            }
            if let Some(partition) = record.partition {
                r = r.partition(partition);
            }
            if record.timestamp >= 0 {
                r = r.timestamp(record.timestamp);
            }
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Back-pressure: let deliveries drain, then try again.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(client_error(format!("produce to {}", record.topic), e)),
            }
        }
    }

    fn flush(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.producer.flush(timeout).map_err(|e| client_error("flush producer", e))?;
        match self.first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn acked_offset(&self, partition: &TopicPartition) -> Option<i64> {
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        acked.get(&*partition.topic)?.get(&partition.partition).copied()
    }
}

struct RdKafkaAdmin {
    admin: AdminClient<DefaultClientContext>,
    metadata: BaseConsumer,
    timeout: Duration,
    servers: String,
}

impl StreamsAdmin for RdKafkaAdmin {
    fn partition_counts(&self, topics: &[String]) -> Result<BTreeMap<String, Option<i32>>, ClientError> {
        let metadata = self.metadata.fetch_metadata(None, self.timeout).map_err(|e| {
            let mut error = client_error(format!("fetch metadata from {}", self.servers), e);
            error.message = format!("{} (is a broker running at {}?)", error.message, self.servers);
            error
        })?;
        let mut counts: BTreeMap<String, Option<i32>> = topics.iter().map(|t| (t.clone(), None)).collect();
        for topic in metadata.topics() {
            if let Some(count) = counts.get_mut(topic.name()) {
                if topic.error().is_none() {
                    *count = Some(topic.partitions().len() as i32);
                }
            }
        }
        Ok(counts)
    }

    fn create_topics(&self, topics: &[NewTopic]) -> Result<(), ClientError> {
        if topics.is_empty() {
            return Ok(());
        }
        let specs: Vec<RdNewTopic<'_>> = topics
            .iter()
            .map(|t| {
                let mut spec =
                    RdNewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication_factor.into()));
                for (k, v) in &t.config {
                    spec = spec.set(k, v);
                }
                spec
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
        let results = futures::executor::block_on(self.admin.create_topics(&specs, &options))
            .map_err(|e| client_error("create topics", e))?;
        for result in results {
            if let Err((topic, code)) = result {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(ClientError::new(format!("create topic {topic}"), code.to_string(), false));
                }
            }
        }
        Ok(())
    }
}

struct RdKafkaRestoreConsumer {
    consumer: BaseConsumer,
    timeout: Duration,
    topics: Vec<Arc<str>>,
}

impl RdKafkaRestoreConsumer {
    /// The offset the consumer will read next on `tp` (0 before it has read anything).
    fn position(&self, tp: &TopicPartition) -> Result<i64, ClientError> {
        let positions = self.consumer.position().map_err(|e| client_error(format!("read the position on {tp}"), e))?;
        let offset = positions.find_partition(&tp.topic, tp.partition).map(|e| e.offset());
        Ok(match offset {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        })
    }
}

impl RestoreConsumer for RdKafkaRestoreConsumer {
    fn watermarks(&mut self, tp: &TopicPartition) -> Result<(i64, i64), ClientError> {
        self.consumer
            .fetch_watermarks(&tp.topic, tp.partition, self.timeout)
            .map_err(|e| client_error(format!("read the offsets of {tp}"), e))
    }

    fn read(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        end: i64,
        max_batch: usize,
        apply: &mut dyn FnMut(&[RawRecord]) -> Result<(), StreamsError>,
    ) -> Result<Option<i64>, StreamsError> {
        if from >= end {
            return Ok(None);
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(from))
            .map_err(|e| client_error(format!("restore {tp}"), e))?;
        self.consumer.assign(&list).map_err(|e| client_error(format!("assign {tp} for restore"), e))?;
        let mut batch = Vec::with_capacity(max_batch);
        let mut last = None;
        let mut read = 0u64;
        let mut last_progress = std::time::Instant::now();
        let result = loop {
            // No `enable.partition.eof`: with it, a plain consumer read at half the rate in two of three
            // runs of our bench. The end is the record at `end - 1`, or, when compaction or transaction
            // markers leave none there, a consumer position at `end` once the fetched records run out.
            let done = match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(message)) => {
                    last_progress = std::time::Instant::now();
                    last = Some(message.offset());
                    read += 1;
                    batch.push(raw_record(topic_of(&mut self.topics, message.topic()), &message));
                    message.offset() >= end - 1
                }
                Some(Err(e)) => break Err(client_error(format!("restore {tp}"), e).into()),
                None if self.position(tp)? >= end => true,
                None if last_progress.elapsed() > self.timeout => {
                    let message = format!("no progress for {:?} after {read} records", self.timeout);
                    break Err(ClientError::new(format!("restore {tp}"), message, true).into());
                }
                None => false,
            };
            if !batch.is_empty() && (done || batch.len() >= max_batch) {
                if let Err(e) = apply(&batch) {
                    break Err(e);
                }
                batch.clear();
            }
            if done {
                break Ok(last);
            }
        };
        let _ = self.consumer.unassign();
        result
    }
}
