//! A topology that cannot run fails when it is built, with an error that names the node, topic or store.

use std::sync::Arc;

use kstreams::prelude::*;
use kstreams::processor::{Processor, ProcessorContext};
use kstreams::serde::{I64Serde, StringSerde};
use kstreams::store::Stores;

struct Pass;
impl Processor<String, String, String, String> for Pass {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), StreamsError> {
        ctx.forward(r)
    }
}

struct TakesNumbers;
impl Processor<i64, i64, i64, i64> for TakesNumbers {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, i64, i64>, r: Record<i64, i64>) -> Result<(), StreamsError> {
        ctx.forward(r)
    }
}

fn string() -> Arc<StringSerde> {
    Arc::new(StringSerde)
}

#[test]
fn a_processor_using_a_store_never_added_fails_validation() {
    let mut t = Topology::new();
    t.add_source("in", &["a"], string(), string()).unwrap();
    t.add_processor("p", || Pass, &["in"]).unwrap();
    t.connect_processor_and_state_stores("p", &["ghost"]).unwrap();
    assert_eq!(t.validate(), Err(TopologyError::UnknownStore { node: "p".into(), store: "ghost".into() }));
    assert_eq!(
        t.validate().unwrap_err().to_string(),
        "processor `p` uses state store `ghost`, which was never added to the topology"
    );
}

#[test]
fn a_cycle_fails_validation_naming_a_node_on_it() {
    let mut t = Topology::new();
    t.add_source("in", &["a"], string(), string()).unwrap();
    t.add_processor("p1", || Pass, &["in", "p2"]).unwrap();
    t.add_processor("p2", || Pass, &["p1"]).unwrap();
    match t.validate() {
        Err(TopologyError::Cycle { node }) => assert!(node == "p1" || node == "p2"),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn a_sink_without_a_topic_is_rejected() {
    let mut t = Topology::new();
    t.add_source("in", &["a"], string(), string()).unwrap();
    let err = t.add_sink("out", "", string(), string(), &["in"]).err().unwrap();
    assert_eq!(err, TopologyError::SinkWithoutTopic { sink: "out".into() });
}

#[test]
fn two_sources_on_one_topic_are_rejected_naming_both() {
    let mut t = Topology::new();
    t.add_source("first", &["orders"], string(), string()).unwrap();
    let err = t.add_source("second", &["orders"], string(), string()).err().unwrap();
    assert_eq!(
        err,
        TopologyError::TopicReadTwice { topic: "orders".into(), first: "first".into(), second: "second".into() }
    );

    // The DSL defers the same error to build().
    let b = StreamsBuilder::new();
    b.stream::<String, String>("orders").to("x");
    b.stream::<String, String>("orders").to("y");
    match b.build() {
        Err(TopologyError::TopicReadTwice { topic, .. }) => assert_eq!(topic, "orders"),
        other => panic!("expected TopicReadTwice, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn unknown_parents_duplicate_names_and_sinks_as_parents_are_rejected() {
    let mut t = Topology::new();
    t.add_source("in", &["a"], string(), string()).unwrap();
    assert_eq!(
        t.add_source("in", &["b"], string(), string()).err(),
        Some(TopologyError::DuplicateNode { name: "in".into() })
    );
    t.add_processor("p", || Pass, &["nope"]).unwrap();
    assert_eq!(t.validate(), Err(TopologyError::UnknownParent { node: "p".into(), parent: "nope".into() }));

    let mut t = Topology::new();
    t.add_source("in", &["a"], string(), string()).unwrap();
    t.add_sink("out", "o", string(), string(), &["in"]).unwrap();
    t.add_processor("after-sink", || Pass, &["out"]).unwrap();
    assert_eq!(t.validate(), Err(TopologyError::SinkAsParent { node: "after-sink".into(), sink: "out".into() }));
}

#[test]
fn mismatched_types_between_parent_and_child_are_rejected() {
    let mut t = Topology::new();
    t.add_source("in", &["a"], string(), string()).unwrap();
    t.add_processor("numbers", || TakesNumbers, &["in"]).unwrap();
    let err = t.validate().unwrap_err();
    assert!(
        matches!(err, TopologyError::TypeMismatch { ref parent, ref child, .. } if parent == "in" && child == "numbers"),
        "{err}"
    );
    assert!(err.to_string().contains("alloc::string::String"), "{err}");
}

#[test]
fn empty_topologies_invalid_names_and_duplicate_stores_are_rejected() {
    assert_eq!(Topology::new().validate(), Err(TopologyError::Empty));
    assert!(matches!(
        Topology::new().add_source("bad name!", &["a"], string(), string()).err(),
        Some(TopologyError::InvalidName { .. })
    ));
    let mut t = Topology::new();
    let store =
        || Stores::key_value_store_builder(Stores::in_memory_key_value_store("s"), string(), Arc::new(I64Serde));
    t.add_state_store(store(), &[]).unwrap();
    assert_eq!(t.add_state_store(store(), &[]).err(), Some(TopologyError::DuplicateStore { store: "s".into() }));
}

#[test]
fn a_user_name_used_twice_in_the_dsl_fails_at_build() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("a");
    s.named("same").filter(|_, _| true).to("x");
    s.named("same").filter(|_, _| true).to("y");
    assert_eq!(b.build().err(), Some(TopologyError::DuplicateNode { name: "same".into() }));
}

#[test]
fn every_mistake_the_dsl_collected_is_reported_at_once() {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>("a");
    s.named("same").filter(|_, _| true).to("x");
    s.named("same").filter(|_, _| true).to("y");
    s.named("bad name!").filter(|_, _| true).to("z");
    let error = b.build().err().expect("two mistakes");
    let TopologyError::Several(errors) = &error else { panic!("expected both mistakes, got {error}") };
    assert_eq!(errors.len(), 2, "{error}");
    assert_eq!(errors[0], TopologyError::DuplicateNode { name: "same".into() });
    assert!(matches!(&errors[1], TopologyError::InvalidName { .. }), "{error}");
    assert!(error.to_string().starts_with("2 mistakes in the topology: node name `same` is used twice"), "{error}");
}

#[test]
fn connecting_stores_to_an_unknown_processor_names_the_processor() {
    let mut t = Topology::new();
    let err = t.connect_processor_and_state_stores("nope", &["counts"]).err().unwrap();
    assert_eq!(err, TopologyError::UnknownProcessor { processor: "nope".into(), stores: vec!["counts".into()] });
    assert_eq!(err.to_string(), "cannot connect state stores counts to processor `nope`: no such processor");
}

/// A type with no `DefaultSerde`, for the missing-serde message.
#[derive(Clone)]
struct PageView {
    _seconds: u32,
}

#[test]
fn a_missing_serde_names_the_topic_and_the_types() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("page-views")
        .map_values(|_| PageView { _seconds: 90 })
        .to_with("long-views", Produced::new());
    let error = builder.build().err().expect("a missing serde").to_string();
    assert_eq!(
        error,
        "node `KSTREAM-SINK-0000000002` (the sink to long-views) needs a value serde for (String, PageView): give \
         one (Consumed/Produced/Grouped/Materialized/Repartitioned) or use a type with a DefaultSerde"
    );
}
