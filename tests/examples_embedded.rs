//! Every example, run briefly on the embedded broker (`tests/kafka_examples.rs`: the same on Kafka).

mod example_runs;

#[test]
fn order_totals() {
    example_runs::order_totals(None);
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
fn customer_activity() {
    example_runs::customer_activity(None);
}
