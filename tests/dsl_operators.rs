//! Every DSL operator through the test driver: what each forwards, with keys, values, timestamps and
//! headers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kstreams::prelude::*;
use kstreams::Headers;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn s(x: &str) -> String {
    x.to_string()
}

/// Runs `input` (key, value) pairs through a topology from "in" and returns what reached "out".
fn run<KO, VO>(builder: StreamsBuilder, input: &[(&str, &str)]) -> Result<Vec<(KO, VO)>>
where
    KO: DefaultSerde,
    VO: DefaultSerde,
{
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    let out = driver.output_topic::<KO, VO>("out");
    for (i, (k, v)) in input.iter().enumerate() {
        driver.pipe(&topic, s(k), s(v), i as i64)?;
    }
    Ok(driver.read_key_values(&out))
}

#[test]
fn filter_and_filter_not_split_records_by_predicate() -> Result {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    input.filter(|_, v| v.len() > 1).to("out");
    input.filter_not(|_, v| v.len() > 1).to("short");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    for v in ["a", "bb", "ccc", "d"] {
        driver.pipe(&topic, s("k"), s(v), 0)?;
    }
    let out = driver.output_topic::<String, String>("out");
    let short = driver.output_topic::<String, String>("short");
    assert_eq!(driver.read_key_values(&out), vec![(s("k"), s("bb")), (s("k"), s("ccc"))]);
    assert_eq!(driver.read_key_values(&short), vec![(s("k"), s("a")), (s("k"), s("d"))]);
    Ok(())
}

#[test]
fn map_changes_key_and_value() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").map(|k, v| (v.len() as i64, format!("{k}:{v}"))).to("out");
    assert_eq!(run::<i64, String>(b, &[("a", "xyz")])?, vec![(3, s("a:xyz"))]);
    Ok(())
}

#[test]
fn map_values_and_map_values_with_key_keep_the_key() -> Result {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    input.map_values(|v| v.len() as i32).to("out");
    input.map_values_with_key(|k, v| format!("{k}{v}")).to("both");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    driver.pipe(&topic, s("k"), s("abcd"), 5)?;
    let out = driver.output_topic::<String, i32>("out");
    let both = driver.output_topic::<String, String>("both");
    assert_eq!(driver.read_key_values(&out), vec![(s("k"), 4)]);
    assert_eq!(driver.read_key_values(&both), vec![(s("k"), s("kabcd"))]);
    Ok(())
}

#[test]
fn flat_map_and_flat_map_values_emit_zero_or_more() -> Result {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    input.flat_map(|k, v| v.split(' ').map(|w| (w.to_string(), k.clone())).collect::<Vec<_>>()).to("out");
    input.flat_map_values(|v| v.split(' ').map(str::to_string).collect::<Vec<_>>()).to("values");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    driver.pipe(&topic, s("k"), s("x y"), 0)?;
    driver.pipe(&topic, s("j"), s(""), 0)?;
    let out = driver.output_topic::<String, String>("out");
    let values = driver.output_topic::<String, String>("values");
    assert_eq!(driver.read_key_values(&out), vec![(s("x"), s("k")), (s("y"), s("k")), (s(""), s("j"))]);
    assert_eq!(driver.read_key_values(&values), vec![(s("k"), s("x")), (s("k"), s("y")), (s("j"), s(""))]);
    Ok(())
}

#[test]
fn select_key_rekeys_records() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").select_key(|_, v| v.to_uppercase()).to("out");
    assert_eq!(run::<String, String>(b, &[("a", "v")])?, vec![(s("V"), s("v"))]);
    Ok(())
}

#[test]
fn peek_passes_records_on_and_foreach_ends_the_stream() -> Result {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let b = StreamsBuilder::new();
    let (seen2, count2) = (seen.clone(), count.clone());
    let input = b.stream::<String, String>("in");
    input.peek(move |k, v| seen2.lock().unwrap().push(format!("{k}={v}"))).to("out");
    input.foreach(move |_, _| {
        count2.fetch_add(1, Ordering::SeqCst);
    });
    let out = run::<String, String>(b, &[("a", "1"), ("b", "2")])?;
    assert_eq!(out.len(), 2);
    assert_eq!(*seen.lock().unwrap(), vec![s("a=1"), s("b=2")]);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    Ok(())
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch() -> Result {
    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, String>("in")
        .split()
        .branch(|_, v| v.starts_with('a'), Branched::with_name("-a"))
        .branch(|_, v| v.starts_with('a') || v.starts_with('b'), Branched::new())
        .default_branch(Branched::with_name("-rest"));
    assert_eq!(
        branches.names().collect::<Vec<_>>(),
        vec!["KSTREAM-BRANCH-0000000001-a", "KSTREAM-BRANCH-00000000012", "KSTREAM-BRANCH-0000000001-rest"]
    );
    branches.at(0).unwrap().to("a");
    branches.at(1).unwrap().to("b");
    branches.get("KSTREAM-BRANCH-0000000001-rest").unwrap().to("rest");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    for v in ["apple", "banana", "cherry", "avocado"] {
        driver.pipe(&topic, s("k"), s(v), 0)?;
    }
    let read = |d: &mut TopologyTestDriver, t: &str| {
        let topic = d.output_topic::<String, String>(t);
        d.read_key_values(&topic).into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    };
    assert_eq!(read(&mut driver, "a"), vec![s("apple"), s("avocado")]);
    assert_eq!(read(&mut driver, "b"), vec![s("banana")]);
    assert_eq!(read(&mut driver, "rest"), vec![s("cherry")]);
    Ok(())
}

#[test]
fn split_without_default_drops_unmatched_records() -> Result {
    let b = StreamsBuilder::new();
    let branches =
        b.stream::<String, String>("in").split().branch(|_, v| v == "keep", Branched::new()).no_default_branch();
    assert_eq!(branches.len(), 1);
    branches.at(0).unwrap().to("out");
    assert_eq!(run::<String, String>(b, &[("k", "keep"), ("k", "drop")])?, vec![(s("k"), s("keep"))]);
    Ok(())
}

#[test]
fn merge_interleaves_two_streams_in_arrival_order() -> Result {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("in");
    let right = b.stream::<String, String>("in2");
    left.merge(&right).to("out");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let (t1, t2) = (driver.input_topic::<String, String>("in"), driver.input_topic::<String, String>("in2"));
    driver.pipe(&t1, s("a"), s("1"), 0)?;
    driver.pipe(&t2, s("b"), s("2"), 1)?;
    driver.pipe(&t1, s("c"), s("3"), 2)?;
    let out = driver.output_topic::<String, String>("out");
    assert_eq!(driver.read_key_values(&out), vec![(s("a"), s("1")), (s("b"), s("2")), (s("c"), s("3"))]);
    Ok(())
}

#[test]
fn to_dynamic_chooses_the_topic_per_record() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to_dynamic(|k, _, _| format!("out-{k}"));
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    driver.pipe(&topic, s("x"), s("1"), 0)?;
    driver.pipe(&topic, s("y"), s("2"), 0)?;
    assert_eq!(driver.output_topics(), vec![s("out-x"), s("out-y")]);
    Ok(())
}

#[test]
fn timestamps_and_headers_flow_through_stateless_operators() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").filter(|_, _| true).map_values(|v| v + "!").select_key(|k, _| k.clone()).to("out");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    let mut record = Record::new(s("k"), s("v"), 1234);
    record.headers.add("trace", Some(b"abc".to_vec()));
    driver.pipe_record(&topic, record)?;
    let out = driver.output_topic::<String, String>("out");
    let read = driver.read_records(&out)?;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].timestamp, 1234);
    assert_eq!(read[0].value, "v!");
    let mut expected = Headers::new();
    expected.add("trace", Some(b"abc".to_vec()));
    assert_eq!(read[0].headers, expected);
    Ok(())
}

#[test]
fn explicit_repartition_goes_through_an_internal_topic() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").select_key(|_, v| v.clone()).repartition().to("out");
    let topology = b.build()?;
    let description = topology.describe().to_string();
    assert!(description.contains("KSTREAM-REPARTITION-0000000002-repartition"), "{description}");
    let mut driver = TopologyTestDriver::new(topology)?;
    let topic = driver.input_topic::<String, String>("in");
    driver.pipe(&topic, s("a"), s("x"), 0)?;
    let out = driver.output_topic::<String, String>("out");
    assert_eq!(driver.read_key_values(&out), vec![(s("x"), s("x"))]);
    assert_eq!(driver.queue_size("test-driver-KSTREAM-REPARTITION-0000000002-repartition"), 1);
    Ok(())
}

#[test]
fn count_reduce_and_aggregate_per_key() -> Result {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    let grouped = input.group_by_key();
    grouped.count().to_stream().to("count");
    grouped.reduce(|a, b| a + &b).to_stream().to("reduce");
    grouped.aggregate(|| 100_i64, |_, v, agg| agg + v.len() as i64).to_stream().to("aggregate");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    for (k, v) in [("a", "x"), ("b", "yy"), ("a", "zzz")] {
        driver.pipe(&topic, s(k), s(v), 0)?;
    }
    let count = driver.output_topic::<String, Option<i64>>("count");
    let reduce = driver.output_topic::<String, Option<String>>("reduce");
    let aggregate = driver.output_topic::<String, Option<i64>>("aggregate");
    assert_eq!(driver.read_key_values(&count), vec![(s("a"), Some(1)), (s("b"), Some(1)), (s("a"), Some(2))]);
    assert_eq!(
        driver.read_key_values(&reduce),
        vec![(s("a"), Some(s("x"))), (s("b"), Some(s("yy"))), (s("a"), Some(s("xzzz")))]
    );
    assert_eq!(driver.read_key_values(&aggregate), vec![(s("a"), Some(101)), (s("b"), Some(102)), (s("a"), Some(104))]);
    Ok(())
}

#[test]
fn aggregate_result_carries_the_largest_contributing_timestamp() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").group_by_key().count().to_stream().to("out");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    driver.pipe(&topic, s("a"), s("1"), 50)?;
    driver.pipe(&topic, s("a"), s("2"), 10)?; // out of order: the aggregate keeps 50
    let out = driver.output_topic::<String, Option<i64>>("out");
    let stamps: Vec<i64> = driver.read_records(&out)?.into_iter().map(|r| r.timestamp).collect();
    assert_eq!(stamps, vec![50, 50]);
    Ok(())
}

#[test]
fn group_by_regroups_through_a_repartition_topic() -> Result {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").group_by(|_, v| v.len() as i64).count().to_stream().to("out");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let topic = driver.input_topic::<String, String>("in");
    for v in ["a", "bb", "c"] {
        driver.pipe(&topic, s("k"), s(v), 0)?;
    }
    let out = driver.output_topic::<i64, Option<i64>>("out");
    assert_eq!(driver.read_key_values(&out), vec![(1, Some(1)), (2, Some(1)), (1, Some(2))]);
    Ok(())
}

#[test]
fn table_source_upserts_and_deletes_on_tombstones() -> Result {
    let b = StreamsBuilder::new();
    let table = b.table::<String, i64>("prices");
    table.to_stream().to("out");
    let store = table.store_name().unwrap().to_string();
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let prices = driver.input_topic::<String, i64>("prices");
    driver.pipe(&prices, s("a"), 1, 0)?;
    driver.pipe(&prices, s("b"), 2, 1)?;
    driver.pipe(&prices, s("a"), 3, 2)?;
    driver.pipe_raw("prices", Some(b"b".to_vec()), None, 3)?; // tombstone
    let out = driver.output_topic::<String, Option<i64>>("out");
    assert_eq!(
        driver.read_key_values(&out),
        vec![(s("a"), Some(1)), (s("b"), Some(2)), (s("a"), Some(3)), (s("b"), None)]
    );
    assert_eq!(driver.store_entries::<String, i64>(&store)?, vec![(s("a"), 3)]);
    Ok(())
}

#[test]
fn table_filter_deletes_rows_that_stop_matching() -> Result {
    let b = StreamsBuilder::new();
    let table = b.table::<String, i64>("t");
    table.filter(|_, v| *v > 10).to_stream().to("out");
    table.filter_not(|_, v| *v > 10).to_stream().to("not");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let t = driver.input_topic::<String, i64>("t");
    driver.pipe(&t, s("a"), 20, 0)?; // passes
    driver.pipe(&t, s("a"), 5, 1)?; // stops passing: delete downstream
    driver.pipe(&t, s("a"), 1, 2)?; // still failing: a delete again
    let out = driver.output_topic::<String, Option<i64>>("out");
    let not = driver.output_topic::<String, Option<i64>>("not");
    // As in Kafka Streams: the source table has no store name, so the filters get no old values and
    // cannot tell a row that left from one that was never there; each failing update is a delete.
    assert_eq!(driver.read_key_values(&out), vec![(s("a"), Some(20)), (s("a"), None), (s("a"), None)]);
    assert_eq!(driver.read_key_values(&not), vec![(s("a"), None), (s("a"), Some(5)), (s("a"), Some(1))]);
    Ok(())
}

#[test]
fn table_filter_below_a_named_store_forwards_only_real_deletes() -> Result {
    let b = StreamsBuilder::new();
    let table = b.table_with::<String, i64>(
        "t",
        Consumed::with(Arc::new(kstreams::serde::StringSerde), Arc::new(kstreams::serde::I64Serde)),
        Materialized::as_store("t-store"),
    );
    table.filter(|_, v| *v > 10).to_stream().to("out");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let t = driver.input_topic::<String, i64>("t");
    driver.pipe(&t, s("b"), 5, 0)?; // never passed: nothing
    driver.pipe(&t, s("a"), 20, 1)?; // passes
    driver.pipe(&t, s("a"), 5, 2)?; // stops passing: delete downstream
    driver.pipe(&t, s("a"), 1, 3)?; // still failing: nothing (the old value is known)
    let out = driver.output_topic::<String, Option<i64>>("out");
    assert_eq!(driver.read_key_values(&out), vec![(s("a"), Some(20)), (s("a"), None)]);
    Ok(())
}

#[test]
fn table_map_values_maps_updates() -> Result {
    let b = StreamsBuilder::new();
    b.table::<String, i64>("t").map_values(|k, v| format!("{k}{v}")).to_stream().to("out");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let t = driver.input_topic::<String, i64>("t");
    driver.pipe(&t, s("a"), 1, 0)?;
    driver.pipe_raw("t", Some(b"a".to_vec()), None, 1)?;
    let out = driver.output_topic::<String, Option<String>>("out");
    assert_eq!(driver.read_key_values(&out), vec![(s("a"), Some(s("a1"))), (s("a"), None)]);
    Ok(())
}

/// Users by region: moving a user to another region subtracts it there and adds it here.
#[test]
fn table_group_by_aggregate_subtracts_the_old_value_before_adding_the_new() -> Result {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("user-regions");
    let by_region = users.group_by(|_user, region| (region.clone(), 1_i64));
    by_region.aggregate(|| 0_i64, |_, v, agg| agg + v, |_, v, agg| agg - v).to_stream().to("region-counts");
    by_region.count().to_stream().to("region-count2");
    by_region.reduce(|a, b| a + b, |a, b| a - b).to_stream().to("region-sums");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    let t = driver.input_topic::<String, String>("user-regions");
    driver.pipe(&t, s("alice"), s("eu"), 0)?;
    driver.pipe(&t, s("bob"), s("eu"), 1)?;
    driver.pipe(&t, s("alice"), s("us"), 2)?; // moves: eu -1, us +1
    driver.pipe(&t, s("bob"), s("eu"), 3)?; // same key: one change, subtract then add
    driver.pipe_raw("user-regions", Some(b"bob".to_vec()), None, 4)?; // deleted: eu -1
    let expected = vec![
        (s("eu"), Some(1)),
        (s("eu"), Some(2)),
        (s("eu"), Some(1)),
        (s("us"), Some(1)),
        (s("eu"), Some(1)),
        (s("eu"), Some(0)),
    ];
    for topic in ["region-counts", "region-count2", "region-sums"] {
        let out = driver.output_topic::<String, Option<i64>>(topic);
        assert_eq!(driver.read_key_values(&out), expected, "{topic}");
    }
    Ok(())
}

#[test]
fn operators_can_be_named() -> Result {
    let b = StreamsBuilder::new();
    b.stream_with::<String, String>(
        "in",
        Consumed::with(Arc::new(kstreams::serde::StringSerde), Arc::new(kstreams::serde::StringSerde))
            .with_name("orders-source"),
    )
    .named("drop-empty")
    .filter(|_, v| !v.is_empty())
    .named("rekey")
    .select_key(|_, v| v.clone())
    .group_by_key_with(Grouped::with_name("by-value"))
    .named("count-them")
    .count_with(Materialized::as_store("value-counts"))
    .to_stream()
    .to_with("out", Produced::new().with_name("write-out"));
    let description = b.build()?.describe().to_string();
    for expected in [
        "Source: orders-source (topics: [in])",
        "Processor: drop-empty (stores: [])",
        "Processor: rekey (stores: [])",
        // As in Kafka Streams (KStreamImpl.createRepartitionedSource): a named grouping names the topic
        // and, after it, the repartition's nodes.
        "Processor: by-value-repartition-filter (stores: [])",
        "Sink: by-value-repartition-sink (topic: by-value-repartition)",
        "Source: by-value-repartition-source (topics: [by-value-repartition])",
        "Processor: count-them (stores: [value-counts])",
        "Sink: write-out (topic: out)",
        // Named operators still advance the counter (source, filter, select, 3 repartition nodes, count),
        // so the first generated name is number 7, as Kafka Streams numbers it.
        "Processor: KTABLE-TOSTREAM-0000000007 (stores: [])",
    ] {
        assert!(description.contains(expected), "missing `{expected}` in\n{description}");
    }
    Ok(())
}
