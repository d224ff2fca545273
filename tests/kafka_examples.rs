//! Every example, run briefly on the local Kafka (`KSTREAMS_BOOTSTRAP`, which `scripts/test.sh` sets).
//! Each example checks its outputs against all the input in its topics, so runs can repeat on one broker.

mod example_runs;

fn bootstrap() -> String {
    std::env::var("KSTREAMS_BOOTSTRAP")
        .expect("KSTREAMS_BOOTSTRAP=host:port (scripts/test.sh starts Kafka and sets it)")
}

#[test]
fn order_totals_on_kafka() {
    example_runs::order_totals(Some(&bootstrap()));
}

#[test]
fn order_totals_over_http_on_kafka() {
    example_runs::order_totals_http(Some(&bootstrap()));
}

#[test]
fn order_pipeline_and_its_crash_demo_on_kafka() {
    example_runs::order_pipeline(Some(&bootstrap()));
}

#[test]
fn word_count_on_kafka() {
    example_runs::word_count(Some(&bootstrap()));
}

#[test]
fn order_windows_on_kafka() {
    example_runs::order_windows(Some(&bootstrap()));
}

#[test]
fn order_joins_on_kafka() {
    example_runs::order_joins(Some(&bootstrap()));
}

#[test]
fn customer_activity_on_kafka() {
    example_runs::customer_activity(Some(&bootstrap()));
}

#[test]
fn getting_started_on_kafka() {
    example_runs::getting_started_on_kafka(&bootstrap());
}
