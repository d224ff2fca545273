//! State scenarios on the embedded broker: the same as on the real Kafka (tests/kafka_state.rs), with
//! real RocksDB files and no infrastructure. Runs in every `cargo test`.

#[macro_use]
mod kafka;
#[path = "scenarios/state.rs"]
mod scenarios;

scenario_tests!(
    embedded:
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
