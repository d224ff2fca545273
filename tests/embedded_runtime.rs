//! The runtime on the embedded broker: the same scenarios as on the real Kafka (tests/kafka_runtime.rs),
//! with no infrastructure at all. Runs in every `cargo test`.

#[macro_use]
mod kafka;
#[path = "scenarios/runtime.rs"]
mod scenarios;

scenario_tests!(
    embedded:
    order_totals_end_to_end_match_a_plain_loop,
    repartition_then_count_end_to_end,
    poison_pill_under_log_and_fail_stops_with_an_error_naming_the_record,
    poison_pill_under_log_and_continue_is_skipped_and_counted,
    poison_pill_under_dead_letter_queue_lands_in_the_dlq_topic,
    a_missing_source_topic_is_an_error_naming_it,
    source_topics_of_one_subtopology_must_be_co_partitioned,
    two_instances_share_the_work_through_a_join_and_a_leave,
    stateful_app_keeps_exact_totals_through_a_join_and_a_leave,
    production_errors_fail_by_default_and_can_be_skipped
);
