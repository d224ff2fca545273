//! `kstreams-reset`: resets an application so that its next run processes the input again (Kafka's
//! `kafka-streams-application-reset`, with its option names). Stop every instance first: the reset is
//! refused while the application's consumer group has members.
//!
//! ```text
//! kstreams-reset --application-id order-totals --bootstrap-server localhost:9092 \
//!     --input-topics orders [--to-earliest | --to-latest | --to-datetime 2026-12-01T00:00:00Z | --by-duration 2h] \
//!     [--intermediate-topics t1,t2] [--config-file client.properties] [--state-dir /var/lib/kstreams] [--dry-run]
//! ```
//!
//! It moves the group's offsets of the input topics, skips intermediate topics to their end, deletes the
//! application's internal topics (changelogs, repartition topics), and with `--state-dir` deletes the
//! application's local state under it (run it on each machine that ran an instance, or call
//! `KafkaStreams::clean_up` there before the next start). `--dry-run` prints what it would do and does
//! nothing. docs/operations.md has the details.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kstreams::config::StreamsConfig;
use kstreams::kafka::reset::{reset_application, ResetOptions, ResetTo};

/// Resets a kstreams application's offsets and internal topics (Kafka's application reset tool).
#[derive(Parser)]
#[command(name = "kstreams-reset", version)]
struct Args {
    /// The application's `application.id` (its consumer group, and the prefix of its internal topics).
    #[arg(long)]
    application_id: String,
    /// The cluster, as `bootstrap.servers` (or give it in `--config-file`).
    #[arg(long, alias = "bootstrap-servers", value_name = "HOST:PORT[,...]")]
    bootstrap_server: Option<String>,
    /// A `.properties` file of client settings (`bootstrap.servers`, TLS, SASL: docs/security.md).
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// The application's input topics: their offsets are reset.
    #[arg(long, value_delimiter = ',', value_name = "TOPICS")]
    input_topics: Vec<String>,
    /// Topics the application writes and reads back itself (not internal): skipped to their end.
    #[arg(long, value_delimiter = ',', value_name = "TOPICS")]
    intermediate_topics: Vec<String>,
    /// Input offsets to each partition's first offset (the default).
    #[arg(long, group = "to")]
    to_earliest: bool,
    /// Input offsets to each partition's end.
    #[arg(long, group = "to")]
    to_latest: bool,
    /// Input offsets to the first record at or after this time, in UTC (RFC 3339 with `Z` or no zone:
    /// `2026-12-01T00:00:00Z`).
    #[arg(long, group = "to", value_name = "TIME")]
    to_datetime: Option<String>,
    /// Input offsets to the first record at or after this long ago (`2h`, `1day 30min`).
    #[arg(long, group = "to", value_name = "DURATION")]
    by_duration: Option<String>,
    /// Also delete the application's local state: `<DIR>/<application id>` (its `state.dir`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print what would be done, and do nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kstreams-reset: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // The file's settings, then the command line's: the application id, the cluster.
    let mut settings = Vec::new();
    if let Some(file) = &args.config_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        settings = properties(&text);
    }
    settings.retain(|(key, _)| key != "application.id");
    settings.push(("application.id".into(), args.application_id.clone()));
    if let Some(servers) = &args.bootstrap_server {
        settings.retain(|(key, _)| key != "bootstrap.servers");
        settings.push(("bootstrap.servers".into(), servers.clone()));
    }
    anyhow::ensure!(
        settings.iter().any(|(key, _)| key == "bootstrap.servers"),
        "give the cluster: --bootstrap-server, or bootstrap.servers in --config-file"
    );
    let config = StreamsConfig::from_properties(settings).context("the client settings")?;
    let to = if args.to_latest {
        ResetTo::Latest
    } else if let Some(time) = &args.to_datetime {
        let at = humantime::parse_rfc3339_weak(time)
            .with_context(|| format!("--to-datetime {time}: not a UTC time such as 2026-12-01T00:00:00Z"))?;
        let ms = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        ResetTo::Timestamp(ms)
    } else if let Some(ago) = &args.by_duration {
        let ago: Duration = humantime::parse_duration(ago)
            .with_context(|| format!("--by-duration {ago}: not a duration such as 2h or 1day 30min"))?;
        ResetTo::Ago(ago)
    } else {
        ResetTo::Earliest
    };
    let mut options = ResetOptions::new(args.input_topics.clone());
    options.intermediate_topics = args.intermediate_topics.clone();
    options.to = to;
    options.dry_run = args.dry_run;

    let (set, deleted) = if args.dry_run { ("would be set", "would be deleted") } else { ("set", "deleted") };
    if args.dry_run {
        println!("dry run: nothing is changed");
    }
    let plan = reset_application(&config, &options)
        .with_context(|| format!("resetting application {} on {}", args.application_id, config.bootstrap_servers))?;
    if plan.offsets.is_empty() {
        println!("no input or intermediate topics given: no offsets to reset");
    }
    for (partition, offset) in &plan.offsets {
        println!("offset of {partition} {set} to {offset}");
    }
    if plan.deleted_topics.is_empty() {
        println!("no internal topics to delete");
    }
    for topic in &plan.deleted_topics {
        println!("internal topic {topic} {deleted}");
    }
    if let Some(dir) = &args.state_dir {
        let app_dir = dir.join(&args.application_id);
        let there = if args.dry_run {
            app_dir.exists()
        } else {
            // As `KafkaStreams::clean_up`: refused while an instance here holds the directory.
            kstreams::runtime::clean_local_state(dir, &args.application_id)?
        };
        match there {
            true => println!("local state {} {deleted}", app_dir.display()),
            false => println!("no local state in {}", app_dir.display()),
        }
    }
    println!("done");
    Ok(())
}

/// The `key=value` (or `key: value`) lines of a client `.properties` file; `#` and `!` start comments
/// (no continuation lines).
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| {
            let at = line.find(['=', ':'])?;
            Some((line[..at].trim().to_string(), line[at + 1..].trim().to_string()))
        })
        .collect()
}
