//! Broker semantics against a real Apache Kafka (started by scripts/test.sh), the reference the
//! embedded broker is held to: the scenarios are shared with its suite (tests/embedded_broker.rs).

#[macro_use]
mod kafka;
#[path = "scenarios/broker.rs"]
mod scenarios;

scenario_tests!(
    kafka:
    offsets_are_contiguous_from_zero_and_records_keep_key_value_timestamp_and_headers,
    a_new_member_starts_at_the_offset_its_group_committed,
    two_members_share_co_partitioned_topics_by_range,
    read_committed_sees_committed_transactions_only_and_stops_at_the_last_stable_offset,
    a_new_producer_with_the_same_transactional_id_fences_the_old_one,
    offsets_sent_in_a_transaction_commit_only_with_it,
    offsets_sent_with_another_generation_or_member_are_fenced
);

#[path = "scenarios/group.rs"]
mod group_scenarios;

/// The library's own group member on Kafka (classic group protocol).
mod group_member {
    use super::group_scenarios as scenarios;

    scenario_tests!(
        kafka:
        members_join_and_the_leader_assigns_each_its_part,
        a_member_that_leaves_makes_the_others_rejoin_at_once,
        a_static_member_restarted_within_its_session_moves_nothing,
        a_member_that_stops_polling_leaves_and_loses_its_part,
        a_member_commits_offsets_in_its_generation,
        a_transaction_commits_offsets_only_as_a_member_of_the_current_generation,
        an_assigned_consumer_reads_from_the_offsets_it_is_given,
        a_leader_told_to_rejoin_before_it_assigned_stays_in_the_group_and_rejoins
    );
}
