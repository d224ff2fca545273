//! Typed records into a real topic and back out: the input a test or a demo needs on a broker, and what an
//! application wrote there, on Kafka or the embedded broker alike (Kafka Streams' tests use
//! `IntegrationTestUtils.produceKeyValuesSynchronously` and `waitUntilMinKeyValueRecordsReceived` for
//! this). It goes through the same client seam as the runtime, so it takes the same settings: a
//! configuration loaded from a `.properties` file with TLS and SASL settings works here as it does there.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use streams_core::config::StreamsConfig;
//! use streams_core::embedded::EmbeddedBroker;
//! use streams_core::testing::BrokerTopics;
//!
//! let config = StreamsConfig::new("my-test", "embedded");
//! let mut topics = BrokerTopics::new(Arc::new(EmbeddedBroker::new()), &config);
//! topics.create(&["clicks"], 2)?;
//! topics.send("clicks", &"alice".to_string(), &3i64, -1)?;
//! topics.flush()?;
//! let read: Vec<(Option<String>, Option<i64>)> = topics.wait_for("clicks", 1, Duration::from_secs(5))?;
//! assert_eq!(read, vec![(Some("alice".to_string()), Some(3))]);
//! # Ok::<(), streams_core::StreamsError>(())
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{
    ClientError, ClientErrorKind, ClientSupplier, NewTopic, RestoreConsumer, StreamsAdmin, StreamsProducer,
    TopicPartition,
};
use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::record::RecordPart;
use crate::record::{Headers, ProducedRecord, RawRecord};
use crate::serde::{from_bytes, to_bytes, DefaultSerde};
use crate::StreamsError;

/// How many records one read of a partition hands over at a time.
const READ_BATCH: usize = 10_000;

/// Produces typed records to topics and reads topics back, through a [`ClientSupplier`] (the embedded
/// broker, or Kafka with [`BrokerTopics::kafka`]). Keys and values go through their types'
/// [`DefaultSerde`]s, as the DSL's do; a record's partition is the producer's choice by key (murmur2, as a
/// Java producer's), so records land where a Kafka Streams application would put them.
pub struct BrokerTopics {
    supplier: Arc<dyn ClientSupplier>,
    config: StreamsConfig,
    producer: Option<Box<dyn StreamsProducer>>,
    /// The admin client and the `read_committed` reader, made at first use and kept: `wait_for` reads
    /// every 100 ms, which must not mean two new broker clients every 100 ms.
    readers: Option<(Box<dyn StreamsAdmin>, Box<dyn RestoreConsumer>)>,
}

impl std::fmt::Debug for BrokerTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTopics").field("bootstrap_servers", &self.config.bootstrap_servers).finish()
    }
}

impl BrokerTopics {
    /// Topics on the broker `supplier` reaches, with the client settings of `config` (its bootstrap
    /// servers, and the `client.`/`producer.`/`consumer.`/`admin.` overrides: TLS, SASL).
    pub fn new(supplier: Arc<dyn ClientSupplier>, config: &StreamsConfig) -> Self {
        BrokerTopics { supplier, config: config.clone(), producer: None, readers: None }
    }

    /// Topics on the Kafka `config` names (`bootstrap.servers`), through rdkafka.
    #[cfg(feature = "kafka")]
    pub fn kafka(config: &StreamsConfig) -> Self {
        Self::new(Arc::new(crate::kafka::RdKafkaSupplier), config)
    }

    /// Creates `topics` with `partitions` each (the broker's default replication); a topic that exists
    /// already is left as it is.
    pub fn create(&mut self, topics: &[&str], partitions: i32) -> Result<(), StreamsError> {
        let new = |name: &&str| NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: -1,
            config: Default::default(),
        };
        self.readers()?.0.create_topics(&topics.iter().map(new).collect::<Vec<_>>())?;
        Ok(())
    }

    /// Sends one record to `topic` (`timestamp` in milliseconds; -1 for now). It may still be on its way
    /// when this returns: [`flush`](Self::flush) waits for every record sent.
    pub fn send<K: DefaultSerde, V: DefaultSerde>(
        &mut self,
        topic: &str,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        let serialization = |source| StreamsError::Serialization {
            node: "BrokerTopics::send".into(),
            target: topic.to_string(),
            source,
        };
        let key = to_bytes(&*K::default_serde(), topic, key).map_err(serialization)?;
        let value = to_bytes(&*V::default_serde(), topic, value).map_err(serialization)?;
        self.send_raw(topic, key, value, timestamp)
    }

    /// Sends one record of bytes (`None`: a null key or a tombstone).
    pub fn send_raw(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        let record =
            ProducedRecord { topic: topic.into(), partition: None, key, value, timestamp, headers: Headers::new() };
        self.producer()?.send(&record)?;
        Ok(())
    }

    /// Waits until every record sent is acknowledged by the broker (at most `default.api.timeout.ms`).
    pub fn flush(&mut self) -> Result<(), StreamsError> {
        let timeout = self.config.default_api_timeout;
        if let Some(producer) = &mut self.producer {
            producer.flush(timeout)?;
        }
        Ok(())
    }

    /// Every committed record of `topic` so far, partition by partition in offset order, decoded with
    /// the types' default serdes. Committed: what a `read_committed` consumer sees, so records of a
    /// transaction that was aborted, or is still open, are not there.
    pub fn read<K: DefaultSerde, V: DefaultSerde>(
        &mut self,
        topic: &str,
    ) -> Result<Vec<(Option<K>, Option<V>)>, StreamsError> {
        let (key_serde, value_serde) = (K::default_serde(), V::default_serde());
        let deserialization = |record: &RawRecord, part, source| StreamsError::Deserialization {
            topic: topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            part,
            source,
        };
        let mut out = Vec::new();
        for record in self.read_raw(topic)? {
            let key = from_bytes(&*key_serde, topic, record.key.as_deref())
                .map_err(|e| deserialization(&record, RecordPart::Key, e))?;
            let value = from_bytes(&*value_serde, topic, record.value.as_deref())
                .map_err(|e| deserialization(&record, RecordPart::Value, e))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// [`read`](Self::read) again every 100 ms until `topic` holds at least `count` committed records, at
    /// most for `timeout`; then every record read. Running out of time is an error that says how many
    /// there were.
    pub fn wait_for<K: DefaultSerde, V: DefaultSerde>(
        &mut self,
        topic: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<(Option<K>, Option<V>)>, StreamsError> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.read::<K, V>(topic)?;
            if records.len() >= count {
                return Ok(records);
            }
            if Instant::now() >= deadline {
                let message = format!("{} records after {timeout:?}, waiting for {count}", records.len());
                return Err(ClientError::new(
                    format!("wait for records in `{topic}`"),
                    message,
                    ClientErrorKind::Retriable,
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The committed records of `topic` as bytes, partition by partition in offset order.
    pub fn read_raw(&mut self, topic: &str) -> Result<Vec<RawRecord>, StreamsError> {
        let (admin, reader) = self.readers()?;
        let counts = admin.partition_counts(&[topic.to_string()])?;
        let Some(partitions) = counts.get(topic).copied().flatten() else {
            return Err(ClientError::new(format!("read `{topic}`"), "no such topic", ClientErrorKind::Fatal).into());
        };
        let mut out = Vec::new();
        for partition in 0..partitions {
            let tp = TopicPartition::new(topic, partition);
            let (low, high) = reader.watermarks(&tp)?;
            reader.read(&tp, low, high, READ_BATCH, &mut |batch: &[RawRecord]| {
                out.extend_from_slice(batch);
                Ok(())
            })?;
        }
        Ok(out)
    }

    fn readers(&mut self) -> Result<&mut (Box<dyn StreamsAdmin>, Box<dyn RestoreConsumer>), StreamsError> {
        let readers = match self.readers.take() {
            Some(readers) => readers,
            None => {
                let mut config = self.config.clone();
                config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2; // the clients read read_committed
                let reader = self.supplier.restore_consumer(&config, &format!("{}-reader", config.application_id))?;
                (self.supplier.admin(&config)?, reader)
            }
        };
        Ok(self.readers.insert(readers))
    }

    fn producer(&mut self) -> Result<&mut Box<dyn StreamsProducer>, StreamsError> {
        let producer = match self.producer.take() {
            Some(producer) => producer,
            None => self.supplier.producer(&self.config, &format!("{}-producer", self.config.application_id), None)?,
        };
        Ok(self.producer.insert(producer))
    }
}
