//! Custom partitioners in the test driver: the partition count they are given (one per topic there,
//! as in Kafka Streams' driver), several partitions per record (KIP-837), dropping a record, dynamic
//! sinks, and the Processor API's sink. The runtime's side, where the count comes from the broker, is
//! the scenario `a_partitioner_gets_the_topic_s_partition_count`, on both brokers.

use std::sync::Arc;

use kstreams::dsl::Produced;
use kstreams::prelude::*;
use kstreams::serde::StringSerde;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn a_multicast_partitioner_copies_or_drops_records() -> Result {
    let builder = StreamsBuilder::new();
    // "none": dropped; "one": partition 0; "two": partitions 0 and 1 (given twice, written once each).
    let choose = |_: &str, _: &String, v: &String, _: u32| match v.as_str() {
        "none" => Some(vec![]),
        "one" => Some(vec![0]),
        "two" => Some(vec![1, 0, 1]),
        _ => None,
    };
    builder.stream::<String, String>("in").to_with("out", Produced::new().with_multicast_partitioner(choose));
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.input_topic::<String, String>("in");
    for value in ["none", "one", "two", "other"] {
        driver.pipe(&input, "k".into(), value.into(), 0)?;
    }
    let out = driver.output_topic::<String, String>("out");
    let written: Vec<(String, Option<i32>)> =
        driver.read_records(&out)?.into_iter().map(|r| (r.value, r.partition)).collect();
    assert_eq!(
        written,
        [("one".into(), Some(0)), ("two".into(), Some(0)), ("two".into(), Some(1)), ("other".into(), None)]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

#[test]
fn partitioners_see_one_partition_in_the_test_driver_and_work_on_dynamic_and_processor_api_sinks() -> Result {
    let builder = StreamsBuilder::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let produced = Produced::new().with_name("routed").with_partitioner(move |topic, _: &String, _: &String, n| {
        record.lock().unwrap().push((topic.to_string(), n));
        Some(0)
    });
    builder.stream::<String, String>("in").to_dynamic_with(|k, _, _| format!("out-{k}"), produced);
    let topology = builder.build()?;
    assert!(topology.describe().to_string().contains("Sink: routed (extractor class: dynamic)"));
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, String>("in");
    driver.pipe(&input, "a".into(), "v".into(), 0)?;
    assert_eq!(*seen.lock().unwrap(), [("out-a".to_string(), 1)]);
    assert_eq!(driver.peek_raw("out-a")[0].partition, Some(0));

    let mut topology = Topology::new();
    topology.add_source("src", &["in"], Arc::new(StringSerde), Arc::new(StringSerde))?.add_sink_with_partitioner(
        "out",
        "out",
        Arc::new(StringSerde),
        Arc::new(StringSerde),
        |_, key: &String, _: &String, n| Some((key.len() as u32 % n) as i32),
        &["src"],
    )?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, String>("in");
    driver.pipe(&input, "abc".into(), "v".into(), 0)?;
    assert_eq!(driver.peek_raw("out")[0].partition, Some(0));
    Ok(())
}
