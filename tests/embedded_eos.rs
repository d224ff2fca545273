//! Exactly-once on the embedded broker: the same scenarios as on the real Kafka (tests/kafka_eos.rs).

#[macro_use]
mod kafka;
#[path = "scenarios/eos.rs"]
mod scenarios;

scenario_tests!(
    embedded:
    exactly_once_outputs_and_state_match_the_model_across_a_restart,
    exactly_once_zombie_is_fenced_and_its_work_rolled_back,
    at_least_once_zombie_loses_nothing,
    exactly_once_outputs_and_state_match_the_model_across_a_restart_under_the_streams_assignor,
    exactly_once_zombie_is_fenced_and_its_work_rolled_back_under_the_streams_assignor,
    at_least_once_zombie_loses_nothing_under_the_streams_assignor
);
