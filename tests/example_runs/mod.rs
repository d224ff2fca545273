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
    if let Some(bootstrap) = bootstrap {
        command.args(["--bootstrap-servers", bootstrap]);
    }
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

pub(crate) fn customer_activity(bootstrap: Option<&str>) {
    run("customer_activity", bootstrap, &["--orders", "300"], &["orders", "matches a plain loop"]);
}
