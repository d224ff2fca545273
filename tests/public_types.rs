//! The types users move across threads are `Send` (and `Sync` where shared), so a topology built on one
//! thread can run on another.

fn is_send<T: Send>() {}
fn is_sync<T: Sync>() {}

#[test]
fn public_types_are_send_and_sync_where_they_must_be() {
    is_send::<kstreams::Topology>();
    is_sync::<kstreams::Topology>();
    is_send::<kstreams::testing::TopologyTestDriver>();
    is_send::<kstreams::StreamsError>();
    is_sync::<kstreams::StreamsError>();
    is_send::<kstreams::TopologyError>();
    is_send::<kstreams::state::InMemoryKeyValueStore>();
    is_send::<kstreams::dsl::Sink<i64, f64>>();
    is_sync::<kstreams::dsl::Sink<i64, f64>>();
}
