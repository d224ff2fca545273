//! docs/getting-started.md's program: a user's own app, the whole `main.rs`. Page views in, per page the
//! number of views that lasted at least a second out, on Kafka with settings from a `.properties` file,
//! or with `--embedded` on an in-process broker with sample views (nothing to install).
//!
//! ```text
//! cargo run --example getting_started -- app.properties
//! cargo run --example getting_started -- --embedded
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kstreams::config::StreamsConfig;
use kstreams::embedded::EmbeddedBroker;
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State};
use kstreams::testing::BrokerTopics;
use serde::{Deserialize, Serialize};

/// A page view, as the web servers write it to `page-views`: JSON, keyed by user.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PageView {
    page: String,
    duration_ms: u64,
}
json_serde!(PageView);

const VIEWS: &str = "page-views";
const LONG_VIEWS: &str = "long-views-per-page";

/// Per page, how many views lasted at least a second (re-keyed by page: a repartition topic).
fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, PageView>(VIEWS)
        .filter(|_user, view| view.duration_ms >= 1_000)
        .group_by(|_user, view| view.page.clone())
        .count()
        .to_stream()
        .to(LONG_VIEWS);
    builder.build()
}

fn main() -> ExitCode {
    // The library logs through `tracing`: RUST_LOG=kstreams=debug shows everything it says.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the error and every cause under it ("...: expected value at line 1 column 1").
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // SIGINT (Ctrl-C) and SIGTERM (`kill`, a container stopping) ask for a clean close.
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst)).context("handle SIGINT and SIGTERM")?;

    let (mut app, scratch_dir) = match std::env::args().nth(1).as_deref() {
        Some("--embedded") => embedded_with_sample_views()?,
        file => {
            let file = file.unwrap_or("app.properties");
            let config = StreamsConfig::from_properties_file(file)?; // errors name the file and the line
            (KafkaStreams::new(topology()?, config)?, None)
        }
    };
    app.set_state_listener(|old, new| eprintln!("state: {old:?} -> {new:?}"));
    app.start()?;
    while !stop.load(Ordering::SeqCst) && app.state() != State::Error {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Commits what was processed, closes the stores and leaves the group; an error if threads are still
    // running after 30 s (the state directory then stays locked until they end).
    app.close_timeout(Duration::from_secs(30))?;
    if let Some(dir) = scratch_dir {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    match app.take_error() {
        Some(error) => Err(error).context("the application failed"),
        None => Ok(()),
    }
}

/// The app on an in-process broker, with the topics made and sample views in them, and a thread that
/// prints each count as it comes out; and its state directory, to remove at the end.
fn embedded_with_sample_views() -> anyhow::Result<(KafkaStreams, Option<PathBuf>)> {
    let broker = Arc::new(EmbeddedBroker::new());
    let mut config = StreamsConfig::new("page-view-stats", "embedded");
    config.state_dir = std::env::temp_dir().join(format!("page-view-stats-{}", std::process::id()));
    config.commit_interval = Some(Duration::from_secs(1)); // counts leave the record cache at commits
    let scratch_dir = Some(config.state_dir.clone());
    let mut topics = BrokerTopics::new(broker.clone(), &config);
    topics.create(&[VIEWS, LONG_VIEWS], 2)?;
    let pages = ["/", "/cart", "/checkout", "/help"];
    for n in 0..40u64 {
        let view = PageView { page: pages[n as usize % 4].to_string(), duration_ms: (n * 337) % 3_000 };
        topics.send(VIEWS, &format!("user-{}", n % 7), &view, -1)?;
    }
    topics.flush()?;
    std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            match topics.wait_for::<String, i64>(LONG_VIEWS, seen + 1, Duration::from_secs(3600)) {
                Ok(counts) => {
                    for (page, count) in &counts[seen..] {
                        println!("{}: {} long views", page.as_deref().unwrap_or("?"), count.unwrap_or(0));
                    }
                    seen = counts.len();
                }
                Err(error) => break eprintln!("cannot read {LONG_VIEWS}: {error:#}"),
            }
        }
    });
    Ok((KafkaStreams::with_client_supplier(topology()?, config, broker)?, scratch_dir))
}
