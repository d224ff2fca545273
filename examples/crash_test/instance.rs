//! One application instance, a separate OS process: runs the topology until SIGTERM (then closes
//! cleanly: commits and leaves the group) and arms the crash hook on SIGUSR1.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use kstreams::config::StreamsConfig;
use kstreams::runtime::{KafkaStreams, State};

use crate::topology::{self, Names};

#[derive(clap::Args, Debug)]
pub(crate) struct InstanceArgs {
    #[arg(long)]
    bootstrap_servers: String,
    /// The run id the topics and application id are named after.
    #[arg(long)]
    run: String,
    /// `at_least_once` or `exactly_once_v2`.
    #[arg(long)]
    guarantee: String,
    /// `range` or `streams`.
    #[arg(long)]
    group_assignor: String,
    #[arg(long)]
    num_standby_replicas: u32,
    #[arg(long)]
    state_dir: PathBuf,
    #[arg(long)]
    commit_interval_ms: u64,
    #[arg(long)]
    session_timeout_ms: u64,
    /// Every client id of the instance starts with it (the network fault proxy tells instances apart
    /// by it).
    #[arg(long)]
    client_id: String,
}

pub(crate) fn run(args: InstanceArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kstreams::runtime=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let crash = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, crash.clone())?;

    let names = Names::new(&args.run);
    let heartbeat = (args.session_timeout_ms / 4).to_string();
    let config = StreamsConfig::from_properties([
        ("application.id", names.app_id.clone()),
        ("client.id", format!("{}-{}", args.run, args.client_id)),
        ("bootstrap.servers", args.bootstrap_servers.clone()),
        ("processing.guarantee", args.guarantee.clone()),
        ("group.assignor", args.group_assignor.clone()),
        ("num.standby.replicas", args.num_standby_replicas.to_string()),
        ("commit.interval.ms", args.commit_interval_ms.to_string()),
        ("statestore.cache.max.bytes", "0".into()),
        ("state.dir", args.state_dir.display().to_string()),
        ("consumer.session.timeout.ms", args.session_timeout_ms.to_string()),
        ("consumer.heartbeat.interval.ms", heartbeat),
    ])?;
    let mut app = KafkaStreams::new(topology::build(&names, crash)?, config)?;
    app.set_state_listener(|old, new| eprintln!("state: {old:?} -> {new:?}"));
    app.start()?;

    let mut last_report = Instant::now();
    while !stop.load(Ordering::SeqCst) && app.state() != State::Error {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() > Duration::from_secs(5) {
            let m = app.metrics();
            eprintln!("progress: processed {} recoveries {}", m.processed_records, m.recoveries);
            last_report = Instant::now();
        }
    }
    eprintln!("closing");
    app.close()?;
    let m = app.metrics();
    eprintln!("closed: processed {} recoveries {}", m.processed_records, m.recoveries);
    if let Some(error) = app.take_error() {
        bail!("the application failed: {error}");
    }
    Ok(())
}
