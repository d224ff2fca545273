//! Timestamp extractors in the test driver: a source's own (DSL and Processor API, stream and table),
//! the application's default (built-in, or a user's that downcasts), what a negative timestamp does
//! under each built-in, and that an extractor's failure fails the task however processing errors are
//! handled. The runtime's side is the scenario
//! `a_source_s_timestamp_extractor_gives_records_their_timestamps`, on both brokers.

use std::any::Any;
use std::sync::Arc;

use kstreams::handler::LogAndContinue;
use kstreams::prelude::*;
use kstreams::processor::{
    AnyTimestampExtractor, ConsumedRecord, ExtractorError, LogAndSkipOnInvalidTimestamp, TimestampExtractor,
    UsePartitionTimeOnInvalidTimestamp,
};
use kstreams::serde::{I64Serde, StringSerde};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The value is the record's time.
fn value_time(record: &ConsumedRecord<String, i64>, _partition_time: i64) -> i64 {
    record.value.copied().unwrap_or(-1)
}

fn driver(topology: Topology, extractor: Arc<AnyTimestampExtractor>) -> Result<TopologyTestDriver> {
    let config = TestDriverConfig { default_timestamp_extractor: extractor, ..TestDriverConfig::default() };
    Ok(TopologyTestDriver::with_config(topology, config)?)
}

/// Pipes `(key, timestamp)` records with the value 0 to `in` and returns `out`'s keys and timestamps.
fn run(driver: &mut TopologyTestDriver, records: &[(&str, i64)]) -> Result<Vec<(String, i64)>> {
    let input = driver.input_topic::<String, i64>("in");
    for &(key, timestamp) in records {
        driver.pipe(&input, key.into(), 0, timestamp)?;
    }
    let out = driver.output_topic::<String, i64>("out");
    Ok(driver.read_records(&out)?.into_iter().map(|r| (r.key, r.timestamp)).collect())
}

fn pass_through() -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder.stream::<String, i64>("in").to("out");
    Ok(builder.build()?)
}

#[test]
fn a_source_s_extractor_stamps_its_records_and_moves_stream_time() -> Result {
    let builder = StreamsBuilder::new();
    let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde)).with_timestamp_extractor(value_time);
    // A count's timestamp is the latest of its records': stream time as the extractor saw it.
    builder.stream_with("in", consumed).group_by(|_, _| "all".to_string()).count().to_stream().to("out");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.input_topic::<String, i64>("in");
    for (key, time) in [("a", 500), ("b", 200), ("c", -3), ("d", 900)] {
        driver.pipe(&input, key.into(), time, 0)?;
    }
    let out = driver.output_topic::<String, i64>("out");
    let counted: Vec<(i64, i64)> = driver.read_records(&out)?.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(counted, [(1, 500), (2, 500), (3, 900)], "the record with a negative time is skipped");
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

#[test]
fn the_default_fails_on_a_negative_timestamp_naming_the_record() -> Result {
    let mut driver = TopologyTestDriver::new(pass_through()?)?;
    let error = run(&mut driver, &[("a", 5), ("b", -1)]).expect_err("a negative timestamp fails");
    let text = error.to_string();
    assert!(text.contains("the record at in-0 offset 1"), "{text}");
    let cause = std::error::Error::source(&*error).expect("a cause").to_string();
    assert!(cause.contains("negative") && cause.contains("LogAndSkipOnInvalidTimestamp"), "{cause}");
    Ok(())
}

#[test]
fn log_and_skip_drops_a_record_with_a_negative_timestamp() -> Result {
    let mut driver = driver(pass_through()?, Arc::new(LogAndSkipOnInvalidTimestamp))?;
    assert_eq!(run(&mut driver, &[("a", 5), ("b", -1), ("c", 7)])?, [("a".into(), 5), ("c".into(), 7)]);
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

#[test]
fn use_partition_time_gives_the_partition_s_highest_timestamp_so_far() -> Result {
    let mut driver = driver(pass_through()?, Arc::new(UsePartitionTimeOnInvalidTimestamp))?;
    assert_eq!(
        run(&mut driver, &[("a", 5), ("b", 9), ("c", 7), ("d", -1)])?,
        [("a".into(), 5), ("b".into(), 9), ("c".into(), 7), ("d".into(), 9)]
    );
    // Before any valid record there is no partition time to use.
    let mut fresh = self::driver(pass_through()?, Arc::new(UsePartitionTimeOnInvalidTimestamp))?;
    let error = run(&mut fresh, &[("a", -1)]).expect_err("no partition time yet");
    assert!(std::error::Error::source(&*error).expect("a cause").to_string().contains("not known yet"));
    Ok(())
}

#[test]
fn an_extractor_s_failure_fails_the_task_even_when_processing_errors_are_skipped() -> Result {
    struct Refuses;
    impl<K: ?Sized, V: ?Sized> TimestampExtractor<K, V> for Refuses {
        fn extract(&self, record: &ConsumedRecord<'_, K, V>, _: i64) -> std::result::Result<i64, ExtractorError> {
            match record.timestamp {
                13 => Err("thirteen is unlucky".into()),
                t => Ok(t),
            }
        }
    }
    let config = TestDriverConfig {
        default_timestamp_extractor: Arc::new(Refuses),
        processing_handler: Arc::new(LogAndContinue),
        ..TestDriverConfig::default()
    };
    let mut driver = TopologyTestDriver::with_config(pass_through()?, config)?;
    let error = run(&mut driver, &[("a", 1), ("b", 13)]).expect_err("the extractor failed");
    assert!(error.to_string().contains("timestamp extractor failed on the record at in-0 offset 1"), "{error}");
    Ok(())
}

#[test]
fn a_default_extractor_sees_keys_and_values_as_any() -> Result {
    /// Values that are longs are times; anything else keeps the record's own timestamp.
    struct LongValues;
    impl TimestampExtractor<dyn Any, dyn Any> for LongValues {
        fn extract(
            &self,
            record: &ConsumedRecord<'_, dyn Any, dyn Any>,
            _: i64,
        ) -> std::result::Result<i64, ExtractorError> {
            Ok(record.value.and_then(|v| v.downcast_ref::<i64>()).copied().unwrap_or(record.timestamp))
        }
    }
    let builder = StreamsBuilder::new();
    builder.stream::<String, i64>("in").to("out");
    builder.stream::<String, String>("names").map_values(|v| v.len() as i64).to("out");
    let mut driver = driver(builder.build()?, Arc::new(LongValues))?;
    let (longs, names) = (driver.input_topic::<String, i64>("in"), driver.input_topic::<String, String>("names"));
    driver.pipe(&longs, "a".into(), 42, 1)?;
    driver.pipe(&names, "b".into(), "bob".into(), 2)?;
    let out = driver.output_topic::<String, i64>("out");
    let stamped: Vec<(String, i64)> = driver.read_records(&out)?.into_iter().map(|r| (r.key, r.timestamp)).collect();
    assert_eq!(stamped, [("a".into(), 42), ("b".into(), 2)]);
    Ok(())
}

#[test]
fn a_table_source_s_extractor_sees_a_delete_as_a_null_value() -> Result {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let extractor = move |record: &ConsumedRecord<String, i64>, _: i64| {
        log.lock().unwrap().push(record.value.copied());
        record.timestamp + 1000
    };
    let builder = StreamsBuilder::new();
    let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde)).with_timestamp_extractor(extractor);
    builder.table_with("prices", consumed, Materialized::as_store("prices")).to_stream().to("out");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    driver.pipe_raw("prices", Some(b"k".to_vec()), Some(7i64.to_be_bytes().to_vec()), 1)?;
    driver.pipe_raw("prices", Some(b"k".to_vec()), None, 2)?;
    assert_eq!(*seen.lock().unwrap(), [Some(7), None]);
    let out = driver.output_topic::<String, Option<i64>>("out");
    let times: Vec<i64> = driver.read_records(&out)?.into_iter().map(|r| r.timestamp).collect();
    assert_eq!(times, [1001, 1002]);
    Ok(())
}

#[test]
fn the_processor_api_source_takes_an_extractor() -> Result {
    let mut topology = Topology::new();
    topology
        .add_source_with_extractor("in", &["in"], Arc::new(StringSerde), Arc::new(I64Serde), value_time)?
        .add_sink("out", "out", Arc::new(StringSerde), Arc::new(I64Serde), &["in"])?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, i64>("in");
    driver.pipe(&input, "a".into(), 123, 0)?;
    let out = driver.output_topic::<String, i64>("out");
    assert_eq!(driver.read_records(&out)?[0].timestamp, 123);
    Ok(())
}

#[test]
fn default_timestamp_extractor_is_a_setting() -> Result {
    let mut config = kstreams::config::StreamsConfig::new("app", "localhost:9092");
    config.set("default.timestamp.extractor", "org.apache.kafka.streams.processor.LogAndSkipOnInvalidTimestamp")?;
    assert!(format!("{config:?}").contains("LogAndSkipOnInvalidTimestamp"));
    let error = config.set("default.timestamp.extractor", "MyExtractor").expect_err("unknown");
    assert!(error.to_string().contains("default.timestamp.extractor"), "{error}");
    Ok(())
}
