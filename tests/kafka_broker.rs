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
