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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kstreams::client::ClientSupplier;
use kstreams::config::StreamsConfig;
use kstreams::embedded::EmbeddedBroker;
use kstreams::prelude::*;
use kstreams::record::RawRecord;
use kstreams::runtime::KafkaStreams;
use kstreams::testing::BrokerTopics;
#[allow(unused_imports)] // each example uses a part
pub(crate) use rng::Rng;

/// Set on SIGINT or SIGTERM (Ctrl-C, `kill`, a container stopping): the example stops waiting, closes its
/// applications cleanly and exits.
static STOP: AtomicBool = AtomicBool::new(false);

/// An example's start: its arguments parsed (`--help` lists them), logs to stderr (`RUST_LOG`, by default
/// the library's warnings: `RUST_LOG=kstreams=debug` shows all of them), and SIGINT and SIGTERM heard.
pub(crate) fn start<A: clap::Parser>() -> anyhow::Result<A> {
    let args = A::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)).context("handle SIGINT and SIGTERM")?;
    Ok(args)
}

/// Whether SIGINT or SIGTERM has come.
pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

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
            (Some(bootstrap), _) => (kafka()?, bootstrap.to_string()),
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

    /// The example's typed view of the broker's topics: create, produce, read back.
    pub(crate) fn topics(&self, client: &str) -> BrokerTopics {
        BrokerTopics::new(self.supplier.clone(), &self.config(client))
    }

    /// Creates `topics` with `partitions` each; existing topics are left as they are.
    pub(crate) fn create_topics(&self, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
        Ok(self.topics("example-admin").create(topics, partitions)?)
    }

    /// A producer for an example's input: typed keys and values through their default serdes.
    pub(crate) fn producer(&self) -> BrokerTopics {
        self.topics("example-generator")
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
        Ok(self.topics("example-reader").read(topic)?)
    }

    /// The committed records of `topic` as bytes.
    pub(crate) fn read_raw(&self, topic: &str) -> anyhow::Result<Vec<RawRecord>> {
        Ok(self.topics("example-reader").read_raw(topic)?)
    }

    /// Waits until `done()` holds, checking every 200 ms, for at most `timeout`, or until SIGINT or
    /// SIGTERM (an error, so that the example closes its applications and exits non-zero).
    pub(crate) fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while !done()? {
            if stop_requested() {
                anyhow::bail!("{what}: stopped by a signal before it was done");
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("{what}: not done after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }
}

/// The Kafka client (the `kafka` cargo feature, on by default).
#[cfg(feature = "kafka")]
fn kafka() -> anyhow::Result<Arc<dyn ClientSupplier>> {
    Ok(Arc::new(kstreams::kafka::RdKafkaSupplier))
}

#[cfg(not(feature = "kafka"))]
fn kafka() -> anyhow::Result<Arc<dyn ClientSupplier>> {
    anyhow::bail!("this build has no Kafka client: build with the `kafka` cargo feature (on by default)")
}

/// The command-line options every example takes.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct CommonArgs {
    /// Run on Kafka at HOST:PORT rather than on the in-process embedded broker.
    #[arg(long = "bootstrap-servers", value_name = "HOST:PORT", env = "KSTREAMS_BOOTSTRAP")]
    pub(crate) bootstrap: Option<String>,
    /// Keep the embedded broker's records and the applications' state in DIR (they survive the process).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A kstreams `.properties` file (security settings, say) that every client and application starts
    /// from; its `bootstrap.servers` is the Kafka to run on unless --bootstrap-servers names another.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

impl CommonArgs {
    /// The cluster these options name.
    pub(crate) fn cluster(&self) -> anyhow::Result<Cluster> {
        let settings = match &self.config {
            Some(file) => Some(StreamsConfig::from_properties_file(file)?),
            None => None,
        };
        Cluster::new(self.bootstrap.as_deref(), self.data_dir.as_deref(), settings)
    }

    /// These options as arguments again, for a child process of the example.
    pub(crate) fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        if let Some(bootstrap) = &self.bootstrap {
            args.extend(["--bootstrap-servers".into(), bootstrap.into()]);
        }
        if let Some(dir) = &self.data_dir {
            args.extend(["--data-dir".into(), dir.into()]);
        }
        if let Some(file) = &self.config {
            args.extend(["--config".into(), file.into()]);
        }
        args
    }
}
