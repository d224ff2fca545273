//! Sources that read the topics a pattern matches (`stream_pattern`, `add_source_pattern`): what they
//! read in the test driver, how `describe()` prints them, and the mistakes `build()` reports. The
//! runtime's side is the scenario `a_pattern_source_reads_every_matching_topic`, on both brokers.

use std::sync::Arc;

use kstreams::prelude::*;
use kstreams::serde::StringSerde;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn a_pattern_must_match_the_whole_topic_name() -> Result {
    let builder = StreamsBuilder::new();
    builder.stream_pattern::<String, String>("orders-(eu|us)").to("all-orders");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let eu = driver.input_topic::<String, String>("orders-eu");
    driver.pipe(&eu, "1".into(), "eu".into(), 0)?;
    let us = driver.input_topic::<String, String>("orders-us");
    driver.pipe(&us, "2".into(), "us".into(), 1)?;
    // Java's `matches()`: `orders-eu-archive` contains a match but is not one.
    let archive = driver.input_topic::<String, String>("orders-eu-archive");
    let error = driver.pipe(&archive, "3".into(), "old".into(), 2).expect_err("not read");
    assert!(error.to_string().contains("does not read topic `orders-eu-archive`"), "{error}");
    let all = driver.output_topic::<String, String>("all-orders");
    assert_eq!(driver.read_key_values(&all), [("1".into(), "eu".into()), ("2".into(), "us".into())]);
    Ok(())
}

#[test]
fn the_processor_api_adds_a_pattern_source_described_as_kafka_streams_does() -> Result {
    let mut topology = Topology::new();
    topology.add_source_pattern("logs", "logs-.+", Arc::new(StringSerde), Arc::new(StringSerde))?.add_sink(
        "out",
        "all-logs",
        Arc::new(StringSerde),
        Arc::new(StringSerde),
        &["logs"],
    )?;
    let described = topology.describe().to_string();
    assert!(described.contains("Source: logs (topics: logs-.+)\n      --> out"), "{described}");
    Ok(())
}

#[test]
fn an_invalid_pattern_or_one_overlapping_another_source_is_a_build_error() -> Result {
    let builder = StreamsBuilder::new();
    builder.stream_pattern::<String, String>("orders-(").to("out");
    let error = builder.build().err().expect("invalid");
    assert!(matches!(&error, TopologyError::InvalidPattern { pattern, .. } if pattern == "orders-("), "{error}");

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("orders-eu").to("out-1");
    builder.stream_pattern::<String, String>("orders-.*").to("out-2");
    let error = builder.build().err().expect("overlap");
    assert_eq!(
        error.to_string(),
        "topic `orders-eu` matches pattern `orders-.*` and would be read by two sources, \
         `KSTREAM-SOURCE-0000000000` and `KSTREAM-SOURCE-0000000002`"
    );

    let mut topology = Topology::new();
    topology.add_source_pattern("all", "orders-.*", Arc::new(StringSerde), Arc::new(StringSerde))?;
    let error =
        topology.add_source("eu", &["orders-eu"], Arc::new(StringSerde), Arc::new(StringSerde)).err().expect("overlap");
    assert!(
        matches!(&error, TopologyError::PatternMatchesTopic { first, second, .. } if first == "all" && second == "eu")
    );
    Ok(())
}
