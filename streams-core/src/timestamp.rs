//! Where a record's timestamp comes from: Kafka Streams' `TimestampExtractor`. Its public items are
//! re-exported from [`processor`](crate::processor), as Kafka Streams has them in its `processor`
//! package; the module stands on its own so that the settings can name the default extractor without
//! depending on the processor layer.
//!
//! A source reads a record, deserializes it, and asks an extractor for its timestamp: the one its
//! `Consumed` (or `Topology::add_source_with_extractor`) gave, else the application's
//! `default.timestamp.extractor`. That timestamp is the record's from then on (downstream processors,
//! sinks, windows) and it drives stream time. As in Kafka Streams:
//!
//! - a negative timestamp skips the record: logged, counted in `dropped_records`, stream time unmoved;
//! - an error (or a panic) from the extractor fails the task, naming the record; it does not go to the
//!   processing exception handler, which is for processors.
//!
//! The built-in extractors all read the timestamp the record carries (its producer's `CreateTime` or the
//! broker's `LogAppendTime`) and differ only in what they do when it is negative:
//! [`FailOnInvalidTimestamp`] (the default), [`LogAndSkipOnInvalidTimestamp`] and
//! [`UsePartitionTimeOnInvalidTimestamp`]. [`WallclockTimestampExtractor`] ignores it and takes the time of
//! processing.

use std::any::Any;
use std::error::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::Panicked;
use crate::handler::HandlerName;
use crate::record::{Headers, RawRecord};
use crate::StreamsError;

/// A record as its source read it, with its key and value deserialized: what a [`TimestampExtractor`]
/// is given (Kafka Streams' `ConsumerRecord<Object, Object>`). A null key or value is `None`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConsumedRecord<'a, K: ?Sized, V: ?Sized> {
    /// The topic read.
    pub topic: &'a str,
    /// The partition read.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The timestamp the record carries: its producer's, or the broker's under `LogAppendTime`.
    /// Negative when it has none.
    pub timestamp: i64,
    /// The key, deserialized; `None` for a null key.
    pub key: Option<&'a K>,
    /// The value, deserialized; `None` for a null value.
    pub value: Option<&'a V>,
    /// The record's headers.
    pub headers: &'a Headers,
}

/// Gives each record read its timestamp (Kafka Streams' `TimestampExtractor`). `K` and `V` are the
/// source's key and value types; the application's default extractor sees them as `dyn Any`
/// ([`AnyTimestampExtractor`]), as Kafka Streams' sees `Object`.
///
/// A closure `Fn(&ConsumedRecord<K, V>, i64) -> i64` is an extractor that never fails.
///
/// # Examples
///
/// An order's time is in its value; orders without one are skipped (a negative timestamp):
///
/// ```
/// use std::sync::Arc;
/// use streams_core::dsl::{Consumed, StreamsBuilder};
/// use streams_core::processor::ConsumedRecord;
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let placed_at = |order: &ConsumedRecord<String, i64>, _partition_time: i64| order.value.copied().unwrap_or(-1);
/// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde)).with_timestamp_extractor(placed_at);
/// builder.stream_with("orders", consumed).to("placed");
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let (orders, placed) = (driver.input_topic::<String, i64>("orders"), driver.output_topic::<String, i64>("placed"));
/// driver.pipe(&orders, "o-1".into(), 1_700_000_000_000, 5)?;
/// driver.pipe(&orders, "o-2".into(), -1, 6)?;
/// let out = driver.read_records(&placed)?;
/// assert_eq!(out.len(), 1);
/// assert_eq!(out[0].timestamp, 1_700_000_000_000);
/// assert_eq!(driver.metrics().dropped_records, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait TimestampExtractor<K: ?Sized, V: ?Sized>: Send + Sync + 'static {
    /// The timestamp of `record`. `partition_time` is the highest timestamp extracted so far from the
    /// record's partition by this task, -1 before the first. A negative result skips the record; an
    /// error fails the task.
    fn extract(&self, record: &ConsumedRecord<'_, K, V>, partition_time: i64) -> Result<i64, ExtractorError>;

    /// How `StreamsConfig`'s `Debug` shows this extractor. Hidden, and sealed by its return type, which
    /// cannot be named outside this crate: not part of the trait users implement.
    #[doc(hidden)]
    fn handler_name(&self) -> HandlerName {
        HandlerName::Type(std::any::type_name::<Self>())
    }
}

/// What an extractor that fails returns: any error, which the task names the record with.
pub type ExtractorError = Box<dyn Error + Send + Sync>;

/// The application's default extractor (`default.timestamp.extractor`), for every source without its
/// own: it sees keys and values as `dyn Any`, whatever the source's types, and may downcast them.
pub type AnyTimestampExtractor = dyn TimestampExtractor<dyn Any, dyn Any>;

impl<K: ?Sized, V: ?Sized, F> TimestampExtractor<K, V> for F
where
    F: Fn(&ConsumedRecord<'_, K, V>, i64) -> i64 + Send + Sync + 'static,
{
    fn extract(&self, record: &ConsumedRecord<'_, K, V>, partition_time: i64) -> Result<i64, ExtractorError> {
        Ok(self(record, partition_time))
    }
}

/// The record's own timestamp; a negative one fails the task (Kafka Streams' default extractor).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailOnInvalidTimestamp;

impl<K: ?Sized, V: ?Sized> TimestampExtractor<K, V> for FailOnInvalidTimestamp {
    fn extract(&self, record: &ConsumedRecord<'_, K, V>, _partition_time: i64) -> Result<i64, ExtractorError> {
        if record.timestamp >= 0 {
            return Ok(record.timestamp);
        }
        Err(format!(
            "the record has an invalid (negative) timestamp {}, perhaps written by a client that sets none; \
             set default.timestamp.extractor (or the source's) to LogAndSkipOnInvalidTimestamp or \
             UsePartitionTimeOnInvalidTimestamp to process such records",
            record.timestamp
        )
        .into())
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("FailOnInvalidTimestamp")
    }
}

/// The record's own timestamp; a record with a negative one is skipped (logged and counted in
/// `dropped_records`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndSkipOnInvalidTimestamp;

impl<K: ?Sized, V: ?Sized> TimestampExtractor<K, V> for LogAndSkipOnInvalidTimestamp {
    fn extract(&self, record: &ConsumedRecord<'_, K, V>, _partition_time: i64) -> Result<i64, ExtractorError> {
        Ok(record.timestamp)
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("LogAndSkipOnInvalidTimestamp")
    }
}

/// The record's own timestamp; a negative one is replaced by the partition's time (the highest
/// timestamp seen on it). Fails the task when the partition has no time yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsePartitionTimeOnInvalidTimestamp;

impl<K: ?Sized, V: ?Sized> TimestampExtractor<K, V> for UsePartitionTimeOnInvalidTimestamp {
    fn extract(&self, record: &ConsumedRecord<'_, K, V>, partition_time: i64) -> Result<i64, ExtractorError> {
        if record.timestamp >= 0 {
            return Ok(record.timestamp);
        }
        if partition_time < 0 {
            return Err(format!(
                "the record has an invalid (negative) timestamp {}, and the partition's time that would replace \
                 it is not known yet (no valid record was read from it before)",
                record.timestamp
            )
            .into());
        }
        Ok(partition_time)
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("UsePartitionTimeOnInvalidTimestamp")
    }
}

/// The wall-clock time when the record is processed, whatever the record carries (processing-time
/// semantics). Read from the system clock, in the test driver too, as in Kafka Streams.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallclockTimestampExtractor;

impl<K: ?Sized, V: ?Sized> TimestampExtractor<K, V> for WallclockTimestampExtractor {
    fn extract(&self, _record: &ConsumedRecord<'_, K, V>, _partition_time: i64) -> Result<i64, ExtractorError> {
        Ok(crate::time::Clock::System.now_ms())
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("WallclockTimestampExtractor")
    }
}

/// A source of `(K, Option<V>)` (a table's, which reads a null value as a delete) with the extractor its
/// `Consumed<K, V>` gave: the extractor sees the inner value, `None` for a null.
pub(crate) struct NullableValue<K: ?Sized, V>(pub(crate) Arc<dyn TimestampExtractor<K, V>>);

impl<K: ?Sized + 'static, V: 'static> TimestampExtractor<K, Option<V>> for NullableValue<K, V> {
    fn extract(&self, record: &ConsumedRecord<'_, K, Option<V>>, partition_time: i64) -> Result<i64, ExtractorError> {
        let inner = ConsumedRecord {
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key,
            value: record.value.and_then(Option::as_ref),
            headers: record.headers,
        };
        self.0.extract(&inner, partition_time)
    }
}

/// The built-in extractor a `default.timestamp.extractor` value names: its simple name or Kafka Streams'
/// class name (`org.apache.kafka.streams.processor.…`).
pub(crate) fn named(value: &str) -> Option<Arc<AnyTimestampExtractor>> {
    let simple = value.strip_prefix("org.apache.kafka.streams.processor.").unwrap_or(value);
    Some(match simple {
        "FailOnInvalidTimestamp" => Arc::new(FailOnInvalidTimestamp),
        "LogAndSkipOnInvalidTimestamp" => Arc::new(LogAndSkipOnInvalidTimestamp),
        "UsePartitionTimeOnInvalidTimestamp" => Arc::new(UsePartitionTimeOnInvalidTimestamp),
        "WallclockTimestampExtractor" => Arc::new(WallclockTimestampExtractor),
        _ => return None,
    })
}

/// Asks `extractor` for the timestamp of `raw` (whose key and value are given deserialized). An error
/// or a panic in the extractor is the task's error, naming the record.
pub(crate) fn extract<K: ?Sized + 'static, V: ?Sized + 'static>(
    extractor: &dyn TimestampExtractor<K, V>,
    raw: &RawRecord,
    key: Option<&K>,
    value: Option<&V>,
    partition_time: i64,
) -> Result<i64, StreamsError> {
    let record = ConsumedRecord {
        topic: &raw.topic,
        partition: raw.partition,
        offset: raw.offset,
        timestamp: raw.timestamp,
        key,
        value,
        headers: &raw.headers,
    };
    match catch_unwind(AssertUnwindSafe(|| extractor.extract(&record, partition_time))) {
        Ok(Ok(timestamp)) => Ok(timestamp),
        Ok(Err(source)) => Err(extraction_failed(raw, source)),
        Err(payload) => Err(extraction_failed(raw, Box::new(Panicked::from_payload(&*payload)))),
    }
}

#[cold]
#[inline(never)]
fn extraction_failed(raw: &RawRecord, source: ExtractorError) -> StreamsError {
    StreamsError::TimestampExtraction {
        topic: raw.topic.to_string(),
        partition: raw.partition,
        offset: raw.offset,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(timestamp: i64) -> RawRecord {
        RawRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 7,
            timestamp,
            key: None,
            value: None,
            headers: Headers::new(),
        }
    }

    fn run(extractor: &AnyTimestampExtractor, timestamp: i64, partition_time: i64) -> Result<i64, StreamsError> {
        extract(extractor, &record(timestamp), None, None, partition_time)
    }

    #[test]
    fn the_built_ins_differ_only_on_a_negative_timestamp() {
        for name in ["FailOnInvalidTimestamp", "LogAndSkipOnInvalidTimestamp", "UsePartitionTimeOnInvalidTimestamp"] {
            let extractor = named(name).expect("a built-in");
            assert_eq!(run(&*extractor, 42, 100).expect("valid"), 42, "{name}");
        }
        let fail = run(&FailOnInvalidTimestamp, -1, 100).expect_err("negative fails");
        assert!(fail.to_string().contains("orders-2 offset 7"), "{fail}");
        assert_eq!(run(&LogAndSkipOnInvalidTimestamp, -1, 100).expect("skipped by the task"), -1);
        assert_eq!(run(&UsePartitionTimeOnInvalidTimestamp, -1, 100).expect("partition time"), 100);
        let unknown = run(&UsePartitionTimeOnInvalidTimestamp, -1, -1).expect_err("no partition time yet");
        assert!(std::error::Error::source(&unknown).expect("cause").to_string().contains("not known yet"), "{unknown}");
    }

    #[test]
    fn java_class_names_are_accepted_and_unknown_names_are_not() {
        assert!(named("org.apache.kafka.streams.processor.WallclockTimestampExtractor").is_some());
        assert!(named("org.apache.kafka.streams.processor.Nope").is_none());
        let before = crate::time::Clock::System.now_ms();
        assert!(run(&WallclockTimestampExtractor, -5, -1).expect("wall clock") >= before);
    }

    #[test]
    fn a_panicking_extractor_fails_with_the_record_named() {
        let panics = |_: &ConsumedRecord<dyn Any, dyn Any>, _: i64| -> i64 { panic!("no time in it") };
        let error = run(&panics, 1, -1).expect_err("a panic is an error");
        assert!(error.to_string().contains("orders-2 offset 7"), "{error}");
        assert!(std::error::Error::source(&error).expect("cause").to_string().contains("no time in it"));
    }
}
