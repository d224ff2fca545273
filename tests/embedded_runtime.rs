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
    joins_enrich_orders_under_exactly_once,
    a_task_waits_max_task_idle_ms_for_its_empty_partition,
    a_small_input_buffer_pauses_partitions_and_loses_nothing,
    a_foreign_key_join_follows_both_tables_under_exactly_once,
    a_re_keyed_stream_joins_a_table_of_another_partition_count,
    a_stream_stream_left_join_answers_each_order_once,
    two_instances_share_the_work_through_a_join_and_a_leave,
    stateful_app_keeps_exact_totals_through_a_join_and_a_leave,
    stateful_app_keeps_exact_totals_through_a_join_and_a_leave_under_the_streams_assignor,
    a_static_instance_restarted_within_its_session_gets_its_tasks_back_without_a_rebalance,
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
    a_source_s_timestamp_extractor_gives_records_their_timestamps,
    metrics_move_with_the_records_under_kafka_streams_names
);

/// Fails the first record whose key starts with `boom`, once in the whole process; forwards the rest.
struct FailsOnce(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl kstreams::processor::Processor<String, String, String, String> for FailsOnce {
    fn process(
        &mut self,
        ctx: &mut kstreams::processor::ProcessorContext<'_, String, String>,
        record: kstreams::prelude::Record<String, String>,
    ) -> Result<(), kstreams::StreamsError> {
        if record.key.starts_with("boom") && !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(ctx.error("the one failure of this test"));
        }
        ctx.forward(record)
    }
}

/// One failed stream thread shuts the whole instance down, as Kafka Streams' default
/// (`SHUTDOWN_CLIENT`) does: the other threads commit what they processed and stop, rather than take
/// over the failed thread's partitions (where the failure would not recur here) and go on in an
/// instance that reports ERROR.
#[test]
fn a_failed_thread_stops_the_instance_s_other_threads() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Duration;

    use kstreams::prelude::*;
    use kstreams::runtime::State;
    use kstreams::serde::StringSerde;

    let broker = kafka::use_embedded();
    let (input, output) = (kafka::unique("fail-one-in"), kafka::unique("fail-one-out"));
    kafka::create_topics(&[(&input, 2), (&output, 1)]);
    let append = |batch: &str| {
        for i in 0..20 {
            let key = format!("{batch}-{i}");
            broker.append(&input, None, Some(key.into_bytes()), Some(b"v".to_vec()), 0).expect("the input exists");
        }
    };
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut topology = Topology::new();
    topology
        .add_source("in", &[input.as_str()], Arc::new(StringSerde), Arc::new(StringSerde))?
        .add_processor("fails-once", move || FailsOnce(failed.clone()), &["in"])?
        .add_sink("out", output.as_str(), Arc::new(StringSerde), Arc::new(StringSerde), &["fails-once"])?;
    let mut config = kafka::config(&kafka::unique("fail-one"));
    config.num_stream_threads = 2;
    let mut app = kafka::streams(topology, config)?;
    app.start()?;
    append("a");
    let out = kafka::consume_until(&output, Duration::from_secs(30), |r| r.len() >= 20);
    assert_eq!(out.len(), 20, "both threads process before the failure");

    append("boom");
    assert!(app.wait_for_state(State::Error, Duration::from_secs(30)), "state {:?}", app.state());
    std::thread::sleep(Duration::from_millis(500));
    append("c");
    std::thread::sleep(Duration::from_secs(3));
    let out = kafka::consume_until(&output, Duration::from_secs(1), |_| false);
    let after_the_error = out.iter().filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"c-"))).count();
    assert_eq!(after_the_error, 0, "no thread processes input once the instance is in ERROR");
    app.close()?;
    Ok(())
}

/// Forwards every record; asks for a commit after a record keyed `now`.
struct CommitsOnRequest;

impl kstreams::processor::Processor<String, String, String, String> for CommitsOnRequest {
    fn process(
        &mut self,
        ctx: &mut kstreams::processor::ProcessorContext<'_, String, String>,
        record: kstreams::prelude::Record<String, String>,
    ) -> Result<(), kstreams::StreamsError> {
        if record.key == "now" {
            ctx.commit();
        }
        ctx.forward(record)
    }
}

/// `ProcessorContext::commit` commits after the current poll's records, long before a commit interval
/// of an hour would.
#[test]
fn a_processor_can_ask_for_a_commit() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kstreams::prelude::*;
    use kstreams::serde::StringSerde;

    let broker = kafka::use_embedded();
    let (input, output) = (kafka::unique("commit-req-in"), kafka::unique("commit-req-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let mut topology = Topology::new();
    topology
        .add_source("in", &[input.as_str()], Arc::new(StringSerde), Arc::new(StringSerde))?
        .add_processor("commits", || CommitsOnRequest, &["in"])?
        .add_sink("out", output.as_str(), Arc::new(StringSerde), Arc::new(StringSerde), &["commits"])?;
    let app_id = kafka::unique("commit-req");
    let mut config = kafka::config(&app_id);
    config.commit_interval = Some(Duration::from_secs(3600));
    let mut app = kafka::streams(topology, config)?;
    app.start()?;
    let send = |key: &str| {
        broker.append(&input, None, Some(key.as_bytes().to_vec()), Some(b"v".to_vec()), 0).expect("the input exists");
    };
    for key in ["a", "b", "c"] {
        send(key);
    }
    kafka::consume_until(&output, Duration::from_secs(30), |r| r.len() >= 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(broker.group_lag(&app_id, &input), 3, "nothing committed yet: the interval is an hour");

    send("now");
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.group_lag(&app_id, &input) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(broker.group_lag(&app_id, &input), 0, "committed on request");
    app.close()?;
    Ok(())
}

/// A `close_timeout` that runs out says which threads still run, and the state directory stays locked
/// until they end: a second instance on the same directory is refused until then.
#[test]
fn a_close_that_times_out_names_the_running_threads_and_keeps_the_state_directory_locked() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kstreams::prelude::*;

    let broker = kafka::use_embedded();
    let input = kafka::unique("slow-close-in");
    kafka::create_topics(&[(&input, 1)]);
    let busy = Arc::new(AtomicBool::new(false));
    let topology = |busy: Arc<AtomicBool>| {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .peek(move |key, _| {
                if key == "slow" {
                    busy.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_secs(3));
                }
            })
            .group_by_key()
            .count();
        builder.build()
    };
    let config = kafka::config(&kafka::unique("slow-close"));
    let mut app = kafka::streams(topology(busy.clone())?, config.clone())?;
    app.start()?;
    broker.append(&input, None, Some(b"slow".to_vec()), Some(b"v".to_vec()), 0).expect("the input exists");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !busy.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the slow record was never processed");
        std::thread::sleep(Duration::from_millis(10));
    }

    let error = app.close_timeout(Duration::from_millis(100)).expect_err("a thread is still in its processor");
    assert!(matches!(&error, StreamsError::CloseTimeout { threads, .. } if threads.len() == 1), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("StreamThread-1") && message.contains("stays locked"), "{message}");

    let mut second = kafka::streams(topology(Arc::new(AtomicBool::new(false)))?, config.clone())?;
    let refused = second.start().expect_err("the first instance's thread still holds the state directory");
    assert!(refused.to_string().contains("holds its lock"), "{refused}");

    app.close()?; // waits for the thread, which then lets go of the lock
    let mut third = kafka::streams(topology(Arc::new(AtomicBool::new(false)))?, config)?;
    third.start()?;
    third.close()?;
    Ok(())
}
