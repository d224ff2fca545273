//! Runs each example's binary briefly and checks what it printed. The same runs on the embedded broker
//! (`tests/examples_embedded.rs`) and on Kafka (`tests/kafka_examples.rs`).
//!
//! The binaries are the ones `cargo test` builds next to the test binaries (`target/<profile>/examples`);
//! running `cargo run` from a test would wait on the build lock the running `cargo test` holds.

#![allow(dead_code)] // each suite uses a part

use std::path::PathBuf;
use std::process::Command;

/// The example binary `name`, built by `cargo test` (or `cargo build --examples`).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} is missing: build the examples first (`cargo build --examples`)", path.display());
    path
}

/// Runs example `name` with `args` (and `--bootstrap-servers` when given); returns its output, having
/// checked that it succeeded and printed each of `expected`.
pub(crate) fn run(name: &str, bootstrap: Option<&str>, args: &[&str], expected: &[&str]) -> String {
    let mut command = Command::new(binary(name));
    command.args(args);
    match bootstrap {
        Some(bootstrap) => command.args(["--bootstrap-servers", bootstrap]),
        None => command.env_remove("KSTREAMS_BOOTSTRAP"), // the examples' default for --bootstrap-servers
    };
    let output = command.output().expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} {args:?} failed ({}):\n{stdout}\n{stderr}", output.status);
    for line in expected {
        assert!(stdout.contains(line), "{name} {args:?} did not print `{line}`:\n{stdout}\n{stderr}");
    }
    stdout
}

pub(crate) fn order_totals(bootstrap: Option<&str>) {
    let out = run("order_totals", bootstrap, &["--orders", "200"], &["final totals match a plain loop over all"]);
    assert!(out.contains("customer  100  total"), "no totals printed:\n{out}");
}

/// The totals served over HTTP (axum on tokio) by two instances, each customer's asked of each: the
/// one that does not hold the customer asks the one that does (`query_metadata_for_key`).
pub(crate) fn order_totals_http(bootstrap: Option<&str>) {
    let out = run(
        "order_totals_http",
        bootstrap,
        &["--check", "--listen", "127.0.0.1:0", "--orders", "200", "--instances", "2"],
        &["every customer's total served over HTTP matches a plain loop over the orders (asked of each of 2 instances)"],
    );
    assert!(out.contains("GET /totals/100 -> "), "no totals printed:\n{out}");
}

pub(crate) fn order_totals_test_driver() {
    run(
        "order_totals",
        None,
        &["--test-driver", "--orders", "200"],
        &["dropped for a missing customer", "final totals match a plain loop over the same orders"],
    );
}

/// The pipeline, then the crash demo (on Kafka both use the same topics: one after the other).
pub(crate) fn order_pipeline(bootstrap: Option<&str>) {
    let out = run("order_pipeline", bootstrap, &["--orders", "200"], &["no order lost, none duplicated"]);
    assert!(out.contains("validated") && out.contains("paid"), "no events printed:\n{out}");
    run(
        "order_pipeline",
        bootstrap,
        &["--crash-demo", "--orders", "200"],
        &[
            "simulated crash: the process aborts in the middle of a transaction",
            "run 2 continues from the last commit",
            "no order lost, none duplicated",
            "crash demo passed",
        ],
    );
}

pub(crate) fn word_count(bootstrap: Option<&str>) {
    let out = run("word_count", bootstrap, &["--lines", "150"], &["every count matches a plain loop"]);
    assert!(out.contains(" the "), "no word counts printed:\n{out}");
}

pub(crate) fn order_windows(bootstrap: Option<&str>) {
    let out = run("order_windows", bootstrap, &["--orders", "300"], &["each reported once, match a plain loop"]);
    assert!(out.contains("hour 05:00"), "no hourly counts printed:\n{out}");
}

pub(crate) fn order_joins(bootstrap: Option<&str>) {
    let out = run(
        "order_joins",
        bootstrap,
        &["--orders", "200"],
        &["each checked once with its customer and product: match a plain loop"],
    );
    assert!(out.contains("unpaid"), "no unpaid order printed:\n{out}");
}

pub(crate) fn customer_activity(bootstrap: Option<&str>) {
    run("customer_activity", bootstrap, &["--orders", "300"], &["orders", "matches a plain loop"]);
}

/// Starts example `name` with `args`, waits until its output shows each of `expected`, then stops it with
/// SIGTERM: it must close cleanly and exit 0. Returns what it printed.
pub(crate) fn run_until_sigterm(name: &str, args: &[&str], expected: &[&str]) -> String {
    let what = format!("print all of {expected:?}");
    run_until_sigterm_when(name, args, &what, |out| expected.iter().all(|line| out.contains(line)))
}

/// Starts example `name` with `args`, waits until `done(what it printed so far)` (checked at each new
/// output, and every second), then stops it with SIGTERM: it must close cleanly and exit 0. Returns what
/// it printed.
pub(crate) fn run_until_sigterm_when(
    name: &str,
    args: &[&str],
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) -> String {
    use std::io::Read;
    let mut child = Command::new(binary(name))
        .args(args)
        .env_remove("KSTREAMS_BOOTSTRAP")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            all.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if lines.send(all.clone()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut out = String::new();
    while !done(&out) {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} {args:?} did not {what} within 120 s:\n{out}");
        }
        if let Ok(all) = seen.recv_timeout(std::time::Duration::from_secs(1)) {
            out = all;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    let output = child.wait_with_output().expect("wait for the example");
    out = seen.iter().last().unwrap_or(out); // the rest, to the end of its output
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} {args:?} did not exit cleanly on SIGTERM ({}):\n{out}\n{stderr}",
        output.status
    );
    out
}

/// docs/getting-started.md's program on the embedded broker: the last count of each page is what the
/// sample views give, and SIGTERM closes it cleanly.
#[cfg(feature = "kafka")]
pub(crate) fn getting_started() {
    run_until_sigterm(
        "getting_started",
        &["--embedded"],
        &["/: 6 long views", "/cart: 6 long views", "/checkout: 6 long views", "/help: 7 long views"],
    );
}

/// docs/getting-started.md's program on Kafka, with its settings from a `.properties` file: page views
/// produced with `BrokerTopics` before it starts, and SIGTERM once the last count of every page covers
/// every view in `page-views` (those of earlier runs too: each run is a new application that counts the
/// whole topic).
#[cfg(feature = "kafka")]
pub(crate) fn getting_started_on_kafka(bootstrap: &str) {
    use kstreams::config::StreamsConfig;
    use kstreams::testing::BrokerTopics;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct PageView {
        page: String,
        duration_ms: u64,
    }
    kstreams::json_serde!(PageView);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos();
    let app_id = format!("getting-started-{}-{nanos}", std::process::id());
    let settings = format!(
        "application.id={app_id}\nbootstrap.servers={bootstrap}\nprocessing.guarantee=exactly_once_v2\n\
         commit.interval.ms=200\nstate.dir={}\n",
        dir.path().join("state").display()
    );
    let properties = dir.path().join("app.properties");
    std::fs::write(&properties, settings).expect("write app.properties");

    let mut topics = BrokerTopics::kafka(&StreamsConfig::new(&app_id, bootstrap));
    topics.create(&["page-views", "long-views-per-page"], 4).expect("create the topics");
    for n in 0..30u64 {
        let view = PageView { page: format!("/page-{}", n % 3), duration_ms: n * 100 };
        topics.send("page-views", &format!("user-{}", n % 7), &view, -1).expect("send a view");
    }
    topics.flush().expect("flush the views");
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (_, view) in topics.read::<String, PageView>("page-views").expect("read page-views") {
        if let Some(view) = view.filter(|v| v.duration_ms >= 1_000) {
            *expected.entry(view.page).or_default() += 1;
        }
    }
    run_until_sigterm_when(
        "getting_started",
        &[properties.to_str().expect("a UTF-8 path")],
        "count every view",
        |_| {
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            for (page, count) in topics.read::<String, i64>("long-views-per-page").expect("read the counts") {
                if let (Some(page), Some(count)) = (page, count) {
                    last.insert(page, count); // a page's counts are in one partition, in order
                }
            }
            last == expected
        },
    );
}

/// order_totals with --keep-running goes on until SIGTERM, then commits and closes.
pub(crate) fn order_totals_until_sigterm() {
    let out = run_until_sigterm("order_totals", &["--keep-running"], &["Ctrl-C or SIGTERM to stop"]);
    assert!(out.contains("closing: committing and leaving the group"), "no clean close:\n{out}");
}
