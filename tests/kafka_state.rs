//! State on real RocksDB files and a real Kafka. The scenarios are shared with the embedded broker
//! (tests/embedded_state.rs); a killed process that comes back needs a broker outside the process, so it
//! lives here.

#[macro_use]
mod kafka;
#[path = "scenarios/state.rs"]
mod scenarios;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use scenarios::{orders, start, task_dirs, totals_topology, wait_for_totals, Restores};

scenario_tests!(
    kafka:
    checkpoints_skip_restoring_what_they_cover_and_a_corrupt_one_restores_in_full,
    damaged_store_files_are_wiped_and_restored_from_the_changelog,
    a_read_only_or_full_state_disk_is_a_clear_error_and_loses_nothing,
    a_state_disk_that_turns_read_only_mid_run_is_a_clear_error_and_loses_nothing,
    the_record_cache_sends_the_latest_total_per_key_at_each_commit,
    a_source_table_with_the_record_cache_sends_the_latest_value_per_key_at_each_commit,
    session_sliding_and_cogrouped_aggregations_with_the_record_cache_end_on_the_uncached_values,
    a_processor_api_store_with_caching_logs_each_key_once_per_commit,
    two_instances_cannot_share_a_state_directory,
    a_former_owners_late_changelog_write_is_skipped_by_restores_and_written_over,
    a_global_table_is_read_whole_before_processing_and_followed,
    an_unreadable_global_record_fails_the_start_naming_it,
    a_global_only_topology_runs_its_global_store_alone,
    a_versioned_store_restores_its_history_from_the_changelog,
    a_grace_buffer_and_a_versioned_table_are_restored_from_their_changelogs,
    a_transaction_left_open_on_a_global_topic_holds_back_only_its_records,
    a_task_runs_while_another_restores,
    interactive_queries_read_every_local_partition_and_global_stores,
    interactive_queries_read_window_and_session_stores,
    a_standby_takes_over_restoring_only_what_it_lagged_behind,
    a_standby_takes_over_restoring_only_what_it_lagged_behind_under_exactly_once,
    an_in_memory_standby_takes_over_restoring_only_what_it_lagged_behind,
    query_metadata_names_the_instance_that_holds_each_key
);

/// Run as a child process by `a_killed_instance_restarts_from_its_files_with_exact_totals`: starts the
/// app and runs until killed. Does nothing in a normal test run.
#[test]
fn child_instance_runs_until_killed() -> anyhow::Result<()> {
    let Ok(app) = std::env::var("KSTREAMS_CHILD_APP") else { return Ok(()) };
    let input = std::env::var("KSTREAMS_CHILD_INPUT")?;
    let output = std::env::var("KSTREAMS_CHILD_OUTPUT")?;
    let state_dir = PathBuf::from(std::env::var("KSTREAMS_CHILD_STATE_DIR")?);
    let _streams = start(totals_topology(&input, &output)?, &app, &state_dir, &Restores::default())?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_killed_instance_restarts_from_its_files_with_exact_totals() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("kill-orders"), kafka::unique("kill-totals"));
    kafka::create_topics(&[(&input, 4), (&output, 4)]);
    let app = kafka::unique("kill-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("kill-state"));
    let mut expected = BTreeMap::new();

    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "child_instance_runs_until_killed", "--nocapture", "--test-threads=1"])
        .env("KSTREAMS_CHILD_APP", &app)
        .env("KSTREAMS_CHILD_INPUT", &input)
        .env("KSTREAMS_CHILD_OUTPUT", &output)
        .env("KSTREAMS_CHILD_STATE_DIR", &state_dir)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    kafka::produce(&input, orders(&input, 0, 1_000, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected);
    // Let a few 100 ms commits pass, so the offsets of everything processed are committed, then kill -9:
    // no close, no final commit or checkpoint. A running task writes a checkpoint only every 10,000
    // changelog records (Kafka Streams' rule), so here none was due: the restart restores the
    // changelogs from their start. (That a checkpoint saves the restore of what it covers is checked
    // with a clean restart in `checkpoints_skip_restoring_what_they_cover...`.)
    std::thread::sleep(Duration::from_secs(2));
    child.kill()?;
    child.wait()?;
    assert!(!task_dirs(&state_dir, &app).is_empty(), "the killed instance left its files");

    // The same state directory (its lock died with the process): restores only past the checkpoints.
    let restores = Restores::default();
    let mut streams = start(totals_topology(&input, &output)?, &app, &state_dir, &restores)?;
    kafka::produce(&input, orders(&input, 1_000, 1_600, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected, "exactly the totals of a plain loop");
    streams.close()?;
    let restored = restores.restored();
    assert!(restored <= 1_000, "restored {restored} records: more than the changelogs hold");
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}
