//! Kafka Streams' repartition rules: a grouping after a key-changing operator repartitions; after a
//! value-only operator it does not. The split into sub-topologies follows.

use kstreams::prelude::*;
use kstreams::topology::{NodeKindDescription, TopologyDescription};

fn repartition_topics(description: &TopologyDescription) -> Vec<String> {
    let mut topics: Vec<String> = description
        .subtopologies
        .iter()
        .flat_map(|s| &s.nodes)
        .filter_map(|n| match &n.kind {
            NodeKindDescription::Sink { topic: Some(t) } if t.ends_with("-repartition") => Some(t.clone()),
            _ => None,
        })
        .collect();
    topics.sort();
    topics
}

fn shape(build: impl FnOnce(&StreamsBuilder)) -> (usize, Vec<String>) {
    let builder = StreamsBuilder::new();
    build(&builder);
    let description = builder.build().expect("valid").describe();
    (description.subtopologies.len(), repartition_topics(&description))
}

#[test]
fn select_key_then_group_by_key_repartitions() {
    let (subtopologies, topics) = shape(|b| {
        b.stream::<String, String>("in").select_key(|_, v| v.clone()).group_by_key().count();
    });
    assert_eq!(subtopologies, 2);
    assert_eq!(topics.len(), 1);
}

#[test]
fn value_only_operators_do_not_repartition() {
    let (subtopologies, topics) = shape(|b| {
        b.stream::<String, String>("in")
            .map_values(|v| v.len() as i64)
            .flat_map_values(|v| vec![v, v])
            .filter(|_, v| *v > 0)
            .peek(|_, _| {})
            .group_by_key()
            .count();
    });
    assert_eq!((subtopologies, topics.len()), (1, 0));
}

#[test]
fn value_only_operators_after_a_key_change_keep_the_requirement() {
    for rekey in 0..3 {
        let (subtopologies, topics) = shape(|b| {
            let input = b.stream::<String, String>("in");
            let rekeyed = match rekey {
                0 => input.map(|k, v| (v, k)),
                1 => input.flat_map(|k, v| vec![(v, k)]),
                _ => input.select_key(|_, v| v.clone()),
            };
            rekeyed.filter(|_, _| true).map_values(|v| v).peek(|_, _| {}).group_by_key().count();
        });
        assert_eq!((subtopologies, topics.len()), (2, 1), "key-changing operator #{rekey}");
    }
}

#[test]
fn group_by_always_repartitions() {
    let (subtopologies, topics) = shape(|b| {
        b.stream::<String, String>("in").group_by(|k, _| k.clone()).count();
    });
    assert_eq!((subtopologies, topics.len()), (2, 1));
}

#[test]
fn merge_with_a_rekeyed_stream_repartitions() {
    let (subtopologies, topics) = shape(|b| {
        let a = b.stream::<String, String>("a");
        let rekeyed = b.stream::<String, String>("b").select_key(|_, v| v.clone());
        a.merge(&rekeyed).group_by_key().count();
    });
    assert_eq!((subtopologies, topics.len()), (2, 1));
}

#[test]
fn an_explicit_repartition_satisfies_the_grouping() {
    let (subtopologies, topics) = shape(|b| {
        b.stream::<String, String>("in").select_key(|_, v| v.clone()).repartition().group_by_key().count();
    });
    assert_eq!((subtopologies, topics.len()), (2, 1));
    assert!(topics[0].starts_with("KSTREAM-REPARTITION-"), "{topics:?}");
}

#[test]
fn table_group_by_always_repartitions() {
    let (subtopologies, topics) = shape(|b| {
        b.table::<String, String>("t").group_by(|k, v| (v.clone(), k.clone())).count();
    });
    assert_eq!((subtopologies, topics.len()), (2, 1));
}

#[test]
fn named_groupings_name_their_repartition_topic() {
    let (_, topics) = shape(|b| {
        b.stream::<String, String>("in")
            .select_key(|_, v| v.clone())
            .group_by_key_with(Grouped::with_name("by-word"))
            .count();
    });
    assert_eq!(topics, vec!["by-word-repartition".to_string()]);
}

#[test]
fn two_sources_joined_by_a_shared_store_form_one_subtopology_and_disjoint_ones_do_not() {
    let (subtopologies, _) = shape(|b| {
        b.stream::<String, String>("a").to("x");
        b.stream::<String, String>("b").to("y");
    });
    assert_eq!(subtopologies, 2);
}

/// The exact text Kafka Streams 4.x prints for `stream("input").selectKey(..).groupByKey().count()`:
/// store name before processor name, then the repartition's sink, filter and source, from one counter.
#[test]
fn describe_matches_kafka_streams_text_for_a_repartitioned_count() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("input").select_key(|_, v| v.clone()).group_by_key().count();
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [input])
      --> KSTREAM-KEY-SELECT-0000000001
    Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])
      --> KSTREAM-FILTER-0000000005
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-FILTER-0000000005 (stores: [])
      --> KSTREAM-SINK-0000000004
      <-- KSTREAM-KEY-SELECT-0000000001
    Sink: KSTREAM-SINK-0000000004 (topic: KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition)
      <-- KSTREAM-FILTER-0000000005

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000006 (topics: [KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000002])
      --> none
      <-- KSTREAM-SOURCE-0000000006

";
    assert_eq!(builder.build().unwrap().describe().to_string(), expected);
}

/// Kafka Streams' numbering for a table re-grouping (KGroupedTableImpl): select, store, sink, source, then
/// the aggregate; no filter before the sink. And every split branch advances the counter.
#[test]
fn table_regrouping_and_split_branches_number_nodes_like_kafka_streams() {
    let builder = StreamsBuilder::new();
    builder.table::<String, String>("t").group_by(|k, v| (v.clone(), k.clone())).count();
    let text = builder.build().unwrap().describe().to_string();
    for expected in [
        "Source: KSTREAM-SOURCE-0000000001 (topics: [t])",
        "Processor: KTABLE-SOURCE-0000000002 (stores: [t-STATE-STORE-0000000000])",
        "Processor: KTABLE-SELECT-0000000003 (stores: [])",
        "Sink: KSTREAM-SINK-0000000005 (topic: KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition)",
        "Source: KSTREAM-SOURCE-0000000006 (topics: [KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition])",
        "Processor: KTABLE-AGGREGATE-0000000007 (stores: [KTABLE-AGGREGATE-STATE-STORE-0000000004])",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    assert!(!text.contains("KSTREAM-FILTER"), "a table re-grouping has no filter:\n{text}");

    let builder = StreamsBuilder::new();
    let branches = builder
        .stream::<String, String>("in")
        .split()
        .branch(|_, _| true, Branched::new())
        .default_branch(Branched::new());
    branches.at(0).unwrap().to("out");
    let text = builder.build().unwrap().describe().to_string();
    assert!(text.contains("Sink: KSTREAM-SINK-0000000004 (topic: out)"), "{text}");
    assert!(text.contains("Processor: KSTREAM-BRANCH-00000000011 (stores: [])"), "{text}");
    assert!(text.contains("Processor: KSTREAM-BRANCH-00000000010 (stores: [])"), "{text}");
}
