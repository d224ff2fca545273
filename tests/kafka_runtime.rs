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

/// `kstreams-reset` on a stopped application: a word count (a repartition topic and a changelog) runs
/// over its input and stops; a dry run lists what the reset would do and changes nothing; the reset
/// moves the input offsets back to the start, deletes both internal topics and the local state; the
/// rerun then writes the same counts again, each word's from 1. While the application runs, the reset is
/// refused, naming its members.
#[test]
fn the_reset_tool_makes_a_rerun_reproduce_the_outputs_from_the_start() -> anyhow::Result<()> {
    use kstreams::serde::{from_bytes, DefaultSerde};
    use std::collections::BTreeMap;
    let prefix = kafka::unique("reset");
    let (words, counts) = (format!("{prefix}-words"), format!("{prefix}-counts"));
    kafka::create_topics(&[(&words, 2), (&counts, 1)]);
    let app = kafka::unique("reset-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("reset-state"));
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&words)
            .group_by_with(|_, word| word.clone(), Grouped::with_name("by-word"))
            .count()
            .to_stream()
            .to(&counts);
        Ok(builder.build()?)
    };
    let bytes = |s: String| Some(s.into_bytes());
    kafka::produce(&words, (0..300).map(|i| (bytes(format!("k{i}")), bytes(format!("w{}", i % 7)))));
    // Each word's counts in the order they came out.
    let per_word = |records: &[kstreams::record::RawRecord]| -> BTreeMap<String, Vec<i64>> {
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for r in records {
            let word = from_bytes(&*String::default_serde(), &counts, r.key.as_deref()).unwrap().expect("keyed");
            let count = from_bytes(&*i64::default_serde(), &counts, r.value.as_deref()).unwrap().expect("a count");
            out.entry(word).or_default().push(count);
        }
        out
    };
    let run = |seen: usize| -> anyhow::Result<Vec<kstreams::record::RawRecord>> {
        let mut config = kafka::config(&app);
        config.state_dir = state_dir.clone();
        config.cache_max_bytes = 0; // every update comes out: the runs' outputs can be compared one by one
        let mut streams = KafkaStreams::new(topology()?, config)?;
        streams.start()?;
        let out = kafka::consume_until(&counts, Duration::from_secs(90), |r| r.len() >= seen + 300);
        // While it runs, the reset is refused.
        let refused = reset(&app, &[&words], &["--dry-run"])?;
        assert!(!refused.status.success() && refused.stderr.contains("active member"), "{refused:?}");
        streams.close()?;
        Ok(out)
    };
    let first = run(0)?;
    anyhow::ensure!(first.len() == 300, "the first run wrote {} counts", first.len());
    // An input topic named like an internal one is an input: never deleted (as Kafka's tool, KAFKA-7930).
    let side = format!("{app}-side-repartition");
    kafka::create_topics(&[(&side, 1)]);
    let internal_topics = || -> anyhow::Result<Vec<String>> {
        let mut topics = kafka::admin().topic_names()?;
        topics.retain(|t| t.starts_with(&format!("{app}-")) && *t != side);
        topics.sort();
        Ok(topics)
    };
    let internal = internal_topics()?;
    assert_eq!(internal.len(), 2, "a repartition topic and a changelog after the first run: {internal:?}");

    let dry = reset(&app, &[&words, &side], &["--dry-run", "--state-dir", state_dir.to_str().expect("UTF-8")])?;
    assert!(dry.status.success(), "{dry:?}");
    for topic in &internal {
        assert!(dry.stdout.contains(&format!("internal topic {topic} would be deleted")), "{}", dry.stdout);
    }
    assert!(dry.stdout.contains(&format!("offset of {words}-0 would be set to 0")), "{}", dry.stdout);
    assert_eq!(internal_topics()?, internal, "a dry run deletes nothing");
    // By time: the records carry timestamps of 2023, so 2000 is before them all and an hour ago after.
    let before = reset(&app, &[&words], &["--dry-run", "--to-datetime", "2000-01-01T00:00:00Z"])?;
    assert!(before.stdout.contains(&format!("offset of {words}-1 would be set to 0")), "{before:?}");
    let after = reset(&app, &[&words], &["--dry-run", "--by-duration", "1h"])?;
    let end_of_1 = first_offsets(&after.stdout, &format!("offset of {words}-1 would be set to "));
    assert!(end_of_1.is_some_and(|end| end > 0), "no record that late: the end ({after:?})");

    let done = reset(&app, &[&words, &side], &["--state-dir", state_dir.to_str().expect("UTF-8")])?;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(internal_topics()?, Vec::<String>::new(), "the internal topics are gone: {}", done.stdout);
    assert!(kafka::admin().topic_names()?.contains(&side), "the input named like an internal topic is kept");
    let left: Vec<String> = std::fs::read_dir(state_dir.join(&app))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".lock")
        .collect();
    assert!(left.is_empty(), "the local state is gone but the lock file: {left:?}");

    let both = run(300)?;
    assert_eq!(both.len(), 600, "the rerun wrote every count once more");
    assert_eq!(per_word(&both[300..]), per_word(&first), "the rerun's counts are the first run's, from 1");
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// A record under librdkafka's `message.max.bytes` but over its topic's `max.message.bytes` is refused
/// by the broker, not the client (`MSG_SIZE_TOO_LARGE` in the delivery report), and goes to the
/// production exception handler as Kafka Streams' `RecordTooLargeException` from the broker does: by
/// default the instance stops with an error naming the topic; under `continue` it is skipped and
/// counted, and the records around it go out. Under exactly_once_v2 no handler saves the transaction
/// the broker refused a record of: the instance stops with the same error. Only a real broker: the
/// embedded one has no per-topic size limit.
#[test]
fn a_record_over_its_topic_s_max_message_bytes_goes_to_the_production_handler() -> anyhow::Result<()> {
    use kstreams::config::ProcessingGuarantee::{AtLeastOnce, ExactlyOnceV2};
    for (guarantee, skip) in [(AtLeastOnce, false), (AtLeastOnce, true), (ExactlyOnceV2, true)] {
        let (input, output) = (kafka::unique("topic-big-in"), kafka::unique("topic-big-out"));
        kafka::create_topics(&[(&input, 1)]);
        kafka::create_topics_with(&[(&output, 1)], &[("max.message.bytes", "10000")]);
        let bytes = |s: &str| Some(s.as_bytes().to_vec());
        kafka::produce(&input, ["a", "big", "b"].map(|k| (bytes(k), bytes("v"))));
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .map_values_with_key(|k, v| if k == "big" { "x".repeat(50_000) } else { v })
            .to(&output);
        let mut config = kafka::config(&kafka::unique("topic-big-app"));
        // The broker refuses a batch whole: one record per batch keeps this test about the large one.
        config.producer_overrides.insert("batch.num.messages".into(), "1".into());
        // Uncompressed, or the 50,000 repeated bytes would fit the topic's limit.
        config.producer_overrides.insert("compression.type".into(), "none".into());
        config.processing_guarantee = guarantee;
        if skip {
            config.production_handler = std::sync::Arc::new(kstreams::handler::ContinueOnProductionError);
        }
        let mut app = kafka::streams(builder.build()?, config)?;
        app.start()?;
        scenarios::the_big_record_was_handled(&mut app, &output, skip && guarantee == AtLeastOnce);
        app.close()?;
    }
    Ok(())
}

/// The number after `prefix` in `out`, if `out` has it.
fn first_offsets(out: &str, prefix: &str) -> Option<i64> {
    out.lines().find_map(|line| line.strip_prefix(prefix)).and_then(|rest| rest.trim().parse().ok())
}

/// What `kstreams-reset` printed, and how it ended.
#[derive(Debug)]
struct Reset {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `kstreams-reset` for application `app` with input topics `inputs` and `more` arguments.
fn reset(app: &str, inputs: &[&str], more: &[&str]) -> anyhow::Result<Reset> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kstreams-reset"))
        .args(["--application-id", app, "--bootstrap-server", &kafka::bootstrap(), "--input-topics", &inputs.join(",")])
        .args(more)
        .output()?;
    Ok(Reset {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
