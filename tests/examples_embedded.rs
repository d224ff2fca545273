//! Every example, run briefly on the embedded broker (`tests/kafka_examples.rs`: the same on Kafka).

mod example_runs;

#[test]
fn order_totals() {
    example_runs::order_totals(None);
}

// The example needs the `tokio` feature (its `required-features`).
#[cfg(feature = "tokio")]
#[test]
fn order_totals_over_http() {
    example_runs::order_totals_http(None);
}

#[test]
fn order_totals_through_the_test_driver() {
    example_runs::order_totals_test_driver();
}

#[test]
fn order_pipeline_and_its_crash_demo() {
    example_runs::order_pipeline(None);
}

#[test]
fn word_count() {
    example_runs::word_count(None);
}

#[test]
fn order_windows() {
    example_runs::order_windows(None);
}

#[test]
fn order_joins() {
    example_runs::order_joins(None);
}

#[test]
fn customer_activity() {
    example_runs::customer_activity(None);
}

// The example needs the `kafka` feature (its `required-features`), even for its `--embedded` mode.
#[cfg(feature = "kafka")]
#[test]
fn getting_started_on_the_embedded_broker() {
    example_runs::getting_started();
}

#[test]
fn order_totals_closes_on_sigterm() {
    example_runs::order_totals_until_sigterm();
}

/// docs/getting-started.md shows the program the test above runs, unchanged (from its first `use`).
#[test]
fn getting_started_page_shows_the_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/getting_started.rs")).expect("read the example");
    let page = std::fs::read_to_string(root.join("docs/getting-started.md")).expect("read the page");
    let program = &example[example.find("use std::").expect("the example's first `use`")..];
    assert!(
        page.contains(program),
        "docs/getting-started.md no longer shows examples/getting_started.rs: copy the example's code (from its first `use`) into the page"
    );
}
