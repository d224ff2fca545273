//! What the examples share: the broker they run on, chosen on the command line.
//!
//! Every example runs on the in-process embedded broker by default (nothing to install) and on Kafka
//! with `--bootstrap-servers HOST:PORT`. Both are reached through the library's client seam
//! ([`ClientSupplier`]), so an example's code is the same either way: it creates its topics, produces
//! its input, runs its application, and reads back what the application committed.
//!
//! Not an example itself: cargo only builds `examples/*.rs` and `examples/*/main.rs` as examples; each
//! example includes this file with `#[path = "support/mod.rs"] mod support;`.

#![allow(dead_code)] // each example uses a part

mod rng;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kstreams::client::{ClientSupplier, NewTopic, StreamsProducer, TopicPartition};
use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::embedded::EmbeddedBroker;
use kstreams::kafka::RdKafkaSupplier;
use kstreams::prelude::*;
use kstreams::record::{Headers, ProducedRecord, RawRecord};
use kstreams::runtime::KafkaStreams;
use kstreams::serde::{from_bytes, to_bytes};
pub(crate) use rng::Rng;

/// The broker an example runs on, and where its applications keep their state.
pub(crate) struct Cluster {
    supplier: Arc<dyn ClientSupplier>,
    bootstrap: String,
    /// The settings of `--config FILE`, which every client and application of the example starts from.
    settings: Option<StreamsConfig>,
    state_dir: PathBuf,
    /// Owns the temporary state directory when there is no `--data-dir`.
    _temporary: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Kafka at `bootstrap` if given; otherwise the embedded broker, kept in `data_dir` if given (its
    /// journal: topics, records, offsets and transactions survive the process, even a crash).
    /// With `settings` (from `--config FILE`), every configuration starts from them, and the broker is
    /// Kafka at their `bootstrap.servers` unless `bootstrap` names another.
    pub(crate) fn new(
        bootstrap: Option<&str>,
        data_dir: Option<&Path>,
        settings: Option<StreamsConfig>,
    ) -> anyhow::Result<Self> {
        let bootstrap = bootstrap.or(settings.as_ref().map(|s| s.bootstrap_servers.as_str()));
        let temporary = match data_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().context("create a temporary state directory")?),
        };
        let state_dir = match (data_dir, &temporary) {
            (Some(dir), _) => dir.join("state"),
            (None, Some(temporary)) => temporary.path().to_path_buf(),
            (None, None) => unreachable!("a temporary directory exists when there is no data dir"),
        };
        let (supplier, bootstrap): (Arc<dyn ClientSupplier>, String) = match (bootstrap, data_dir) {
            (Some(bootstrap), _) => (Arc::new(RdKafkaSupplier), bootstrap.to_string()),
            (None, Some(dir)) => (Arc::new(EmbeddedBroker::open(dir.join("broker"))?), "embedded".into()),
            (None, None) => (Arc::new(EmbeddedBroker::new()), "embedded".into()),
        };
        Ok(Cluster { supplier, bootstrap, settings, state_dir, _temporary: temporary })
    }

    /// Where the records live, for the messages an example prints.
    pub(crate) fn describe(&self) -> String {
        match self.bootstrap.as_str() {
            "embedded" => "the embedded broker".to_string(),
            bootstrap => format!("Kafka at {bootstrap}"),
        }
    }

    /// A configuration for `application_id` on this broker, with its state under the cluster's state
    /// directory.
    pub(crate) fn config(&self, application_id: &str) -> StreamsConfig {
        let mut config = self.settings.clone().unwrap_or_else(|| StreamsConfig::new(application_id, ""));
        config.application_id = application_id.to_string();
        config.bootstrap_servers = self.bootstrap.clone();
        config.state_dir = self.state_dir.clone();
        config
    }

    /// Creates `topics` with `partitions` each; existing topics are left as they are.
    pub(crate) fn create_topics(&self, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
        let admin = self.supplier.admin(&self.config("example-admin"))?;
        let new = |name: &&str| NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: -1,
            config: Default::default(),
        };
        admin.create_topics(&topics.iter().map(new).collect::<Vec<_>>())?;
        Ok(())
    }

    /// A plain producer for an example's input.
    pub(crate) fn producer(&self) -> anyhow::Result<Producer> {
        Ok(Producer(self.supplier.producer(&self.config("example-generator"), "example-generator", None)?))
    }

    /// An application running `topology` with `config` on this broker (not started).
    pub(crate) fn app(&self, topology: Topology, config: StreamsConfig) -> anyhow::Result<KafkaStreams> {
        Ok(KafkaStreams::with_client_supplier(topology, config, self.supplier.clone())?)
    }

    /// Every committed record of `topic`, partition by partition, decoded with the types' default
    /// serdes (`read_committed`: what a downstream consumer sees; an aborted transaction's records are
    /// not there).
    pub(crate) fn read<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> anyhow::Result<Vec<(Option<K>, Option<V>)>> {
        let mut out = Vec::new();
        for record in self.read_raw(topic)? {
            let key = from_bytes(&*K::default_serde(), topic, record.key.as_deref())?;
            let value = from_bytes(&*V::default_serde(), topic, record.value.as_deref())?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// The committed records of `topic` as bytes.
    pub(crate) fn read_raw(&self, topic: &str) -> anyhow::Result<Vec<RawRecord>> {
        let mut config = self.config("example-reader");
        config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2; // read_committed
        let partitions = self.supplier.admin(&config)?.partition_counts(&[topic.to_string()])?;
        let partitions = partitions.get(topic).copied().flatten().with_context(|| format!("no topic `{topic}`"))?;
        let mut reader = self.supplier.restore_consumer(&config, "example-reader")?;
        let mut out = Vec::new();
        for partition in 0..partitions {
            let tp = TopicPartition::new(topic, partition);
            let (low, high) = reader.watermarks(&tp)?;
            reader.read(&tp, low, high, 10_000, &mut |batch: &[RawRecord]| {
                out.extend_from_slice(batch);
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// Waits until `done()` holds, checking every 200 ms, for at most `timeout`.
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while !done()? {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("{what}: not done after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// Produces an example's input: typed keys and values through their default serdes.
pub(crate) struct Producer(Box<dyn StreamsProducer>);

impl Producer {
    /// Sends one record (the timestamp in ms; -1 for now).
    pub(crate) fn send<K: DefaultSerde, V: DefaultSerde>(
        &mut self,
        topic: &str,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> anyhow::Result<()> {
        self.0.send(&ProducedRecord {
            topic: topic.into(),
            partition: None,
            key: to_bytes(&*K::default_serde(), topic, key)?,
            value: to_bytes(&*V::default_serde(), topic, value)?,
            timestamp,
            headers: Headers::new(),
        })?;
        Ok(())
    }

    /// Waits until every record sent is acknowledged.
    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        self.0.flush(Duration::from_secs(30))?;
        Ok(())
    }
}

/// The command-line options every example takes.
#[derive(Debug, Default)]
pub(crate) struct CommonArgs {
    /// `--bootstrap-servers HOST:PORT`: run on Kafka.
    pub(crate) bootstrap: Option<String>,
    /// `--data-dir DIR`: keep the embedded broker's records and the applications' state in `DIR`.
    pub(crate) data_dir: Option<PathBuf>,
    /// `--config FILE`: a kstreams `.properties` file (security settings, say) that every client and
    /// application starts from; its `bootstrap.servers` is the Kafka to run on, unless
    /// `--bootstrap-servers` names another; the applications keep their own ids.
    pub(crate) config: Option<PathBuf>,
}

impl CommonArgs {
    /// Takes the common option `arg` (and its value from `rest`); `false` if `arg` is not one.
    pub(crate) fn take(&mut self, arg: &str, rest: &mut impl Iterator<Item = String>) -> anyhow::Result<bool> {
        match arg {
            "--bootstrap-servers" => self.bootstrap = Some(rest.next().context("--bootstrap-servers HOST:PORT")?),
            "--data-dir" => self.data_dir = Some(rest.next().context("--data-dir DIR")?.into()),
            "--config" => self.config = Some(rest.next().context("--config FILE")?.into()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The cluster these options name.
    pub(crate) fn cluster(&self) -> anyhow::Result<Cluster> {
        let settings = match &self.config {
            Some(file) => Some(StreamsConfig::from_properties_file(file)?),
            None => None,
        };
        Cluster::new(self.bootstrap.as_deref(), self.data_dir.as_deref(), settings)
    }
}
