//! The runtime against a real Apache Kafka (started by scripts/test.sh). The scenarios are shared with
//! the embedded broker's suite (tests/embedded_runtime.rs); what only a real broker can show lives here.

#[macro_use]
mod kafka;
#[path = "scenarios/runtime.rs"]
mod scenarios;

use std::time::Duration;

use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State};

scenario_tests!(
    kafka:
    order_totals_end_to_end_match_a_plain_loop,
    repartition_then_count_end_to_end,
    poison_pill_under_log_and_fail_stops_with_an_error_naming_the_record,
    poison_pill_under_log_and_continue_is_skipped_and_counted,
    poison_pill_under_dead_letter_queue_lands_in_the_dlq_topic,
    a_missing_source_topic_is_an_error_naming_it,
    source_topics_of_one_subtopology_must_be_co_partitioned,
    joins_enrich_orders_under_exactly_once,
    a_task_waits_max_task_idle_ms_for_its_empty_partition,
    a_small_input_buffer_pauses_partitions_and_loses_nothing,
    a_foreign_key_join_follows_both_tables_under_exactly_once,
    a_re_keyed_stream_joins_a_table_of_another_partition_count,
    a_stream_stream_left_join_answers_each_order_once,
    two_instances_share_the_work_through_a_join_and_a_leave,
    stateful_app_keeps_exact_totals_through_a_join_and_a_leave,
    stream_threads_are_added_and_removed_while_running,
    production_errors_fail_by_default_and_can_be_skipped,
    a_record_too_large_to_send_goes_to_the_production_handler,
    timestamps_far_in_the_past_and_future_go_through_the_handlers_as_kafka_streams_does,
    a_thread_stopped_past_the_pause_limit_rejoins_and_loses_nothing,
    a_panic_in_user_code_is_dead_lettered_and_processing_goes_on,
    a_failed_thread_is_replaced_when_the_uncaught_exception_handler_says_so,
    shutdown_application_stops_every_instance,
    a_windowed_count_is_logged_as_kafka_streams_logs_it_and_restored,
    windowed_keys_are_partitioned_by_their_inner_key,
    a_session_count_is_logged_as_kafka_streams_logs_it_and_restored,
    final_window_counts_survive_a_restart_in_the_suppression_buffer,
    emit_final_results_are_not_emitted_again_after_a_restart,
    a_pattern_source_reads_every_matching_topic,
    a_pattern_source_picks_up_topics_created_while_it_runs,
    a_partitioner_gets_the_topic_s_partition_count,
    a_source_s_timestamp_extractor_gives_records_their_timestamps
);

#[test]
fn an_unreachable_broker_is_a_clear_error_at_start() -> anyhow::Result<()> {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("anything").to("elsewhere");
    let mut config = kstreams::config::StreamsConfig::new(kafka::unique("nobody-home"), "127.0.0.1:9");
    config.default_api_timeout = Duration::from_secs(3);
    let mut app = KafkaStreams::new(builder.build()?, config)?;
    let started = std::time::Instant::now();
    let error = app.start().expect_err("nothing listens on port 9");
    let text = kstreams::handler::error_chain(&error);
    assert!(text.contains("127.0.0.1:9"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "gave up after {:?}", started.elapsed());
    assert_eq!(app.state(), State::Created);
    Ok(())
}
