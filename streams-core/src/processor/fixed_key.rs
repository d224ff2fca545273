//! Fixed-key processors (Kafka Streams' `FixedKeyProcessor`, for `KStream::process_values`): processors
//! that may change a record's value, timestamp and headers, and forward any number of records, but
//! never change the key. The types enforce it: a [`FixedKeyRecord`] cannot be made with a new key, and a
//! [`FixedKeyProcessorContext`] forwards only those. So a stream stays partitioned as it was, and a
//! grouping below needs no repartition, which `KStream::process` cannot promise.

use std::ops::{Deref, DerefMut};

use super::{ProcessingContext, Processor, ProcessorContext, Punctuation};
use crate::record::Headers;
use crate::{Record, StreamsError};

/// A record whose key is fixed: its value, timestamp and headers may change, its key may be read but
/// not replaced (Kafka Streams' `FixedKeyRecord`). Only the task makes them, from the records it
/// delivers; a processor forwards the one it was given, or one derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedKeyRecord<K, V> {
    key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The headers.
    pub headers: Headers,
}

impl<K, V> FixedKeyRecord<K, V> {
    /// The key, which no processing of this record may change.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The same record with another value.
    pub fn with_value<V2>(self, value: V2) -> FixedKeyRecord<K, V2> {
        FixedKeyRecord { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The same record with other headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    fn into_record(self) -> Record<K, V> {
        Record { key: self.key, value: self.value, timestamp: self.timestamp, headers: self.headers }
    }
}

impl<K, V> From<Record<K, V>> for FixedKeyRecord<K, V> {
    fn from(record: Record<K, V>) -> Self {
        FixedKeyRecord { key: record.key, value: record.value, timestamp: record.timestamp, headers: record.headers }
    }
}

/// What a [`FixedKeyProcessor`] can do while it runs: forward [`FixedKeyRecord`]s to its children, and
/// everything a [`ProcessingContext`] offers, which it dereferences to.
pub struct FixedKeyProcessorContext<'a, K, VOut> {
    inner: ProcessorContext<'a, K, VOut>,
}

impl<'a, K, VOut> Deref for FixedKeyProcessorContext<'a, K, VOut> {
    type Target = ProcessingContext<'a>;

    fn deref(&self) -> &ProcessingContext<'a> {
        &self.inner
    }
}

impl<K, VOut> DerefMut for FixedKeyProcessorContext<'_, K, VOut> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl<K: Clone + 'static, VOut: Clone + 'static> FixedKeyProcessorContext<'_, K, VOut> {
    /// Forwards `record` to every child. Each child (and its descendants) has processed it when this
    /// returns.
    pub fn forward(&mut self, record: FixedKeyRecord<K, VOut>) -> Result<(), StreamsError> {
        self.inner.forward(record.into_record())
    }

    /// Forwards `record` to the child called `child` only.
    pub fn forward_to(&mut self, child: &str, record: FixedKeyRecord<K, VOut>) -> Result<(), StreamsError> {
        self.inner.forward_to(child, record.into_record())
    }
}

/// A processor that keeps each record's key (Kafka Streams' `FixedKeyProcessor<KIn, VIn, VOut>`), for
/// [`KStream::process_values`](crate::dsl::KStream::process_values). Each task gets its own instance.
///
/// # Examples
///
/// ```
/// use streams_core::dsl::StreamsBuilder;
/// use streams_core::processor::{FixedKeyProcessor, FixedKeyProcessorContext, FixedKeyRecord};
/// use streams_core::testing::TopologyTestDriver;
/// use streams_core::StreamsError;
///
/// /// Numbers each customer's orders as they come (per task: the key decides the task).
/// #[derive(Default)]
/// struct OrderNumbers(std::collections::HashMap<String, i64>);
///
/// impl FixedKeyProcessor<String, String, String> for OrderNumbers {
///     fn process(
///         &mut self,
///         ctx: &mut FixedKeyProcessorContext<'_, String, String>,
///         record: FixedKeyRecord<String, String>,
///     ) -> Result<(), StreamsError> {
///         let n = self.0.entry(record.key().clone()).or_default();
///         *n += 1;
///         let numbered = format!("#{n} {}", record.value);
///         ctx.forward(record.with_value(numbered))
///     }
/// }
///
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("orders").process_values(OrderNumbers::default, &[]).to("numbered");
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let (orders, numbered) = (driver.input_topic::<String, String>("orders"), driver.output_topic::<String, String>("numbered"));
/// driver.pipe(&orders, "ada".into(), "tea".into(), 0)?;
/// driver.pipe(&orders, "ada".into(), "cake".into(), 1)?;
/// assert_eq!(driver.read_key_values(&numbered), vec![("ada".into(), "#1 tea".into()), ("ada".into(), "#2 cake".into())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait FixedKeyProcessor<K, VIn, VOut>: Send + 'static {
    /// Called once when the task starts, before any record: look up stores, schedule punctuations.
    fn init(&mut self, _ctx: &mut FixedKeyProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Processes one record.
    fn process(
        &mut self,
        ctx: &mut FixedKeyProcessorContext<'_, K, VOut>,
        record: FixedKeyRecord<K, VIn>,
    ) -> Result<(), StreamsError>;

    /// Called when a schedule made with [`ProcessingContext::schedule`] fires.
    fn punctuate(
        &mut self,
        _ctx: &mut FixedKeyProcessorContext<'_, K, VOut>,
        _punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Called at each commit, before the stores are flushed (see [`Processor::flush`]).
    fn flush(&mut self, _ctx: &mut FixedKeyProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self, _ctx: &mut FixedKeyProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// A fixed-key processor as the task runs it: a [`Processor`] whose context only forwards fixed-key
/// records.
pub(crate) struct FixedKey<P>(pub(crate) P);

fn fixed<'a, K, V>(ctx: &'a mut ProcessorContext<'_, K, V>) -> FixedKeyProcessorContext<'a, K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    FixedKeyProcessorContext { inner: ctx.reborrow() }
}

impl<K, VIn, VOut, P> Processor<K, VIn, K, VOut> for FixedKey<P>
where
    K: Clone + 'static,
    VOut: Clone + 'static,
    P: FixedKeyProcessor<K, VIn, VOut>,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        self.0.init(&mut fixed(ctx))
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VOut>, record: Record<K, VIn>) -> Result<(), StreamsError> {
        self.0.process(&mut fixed(ctx), record.into())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VOut>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        self.0.punctuate(&mut fixed(ctx), punctuation)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        self.0.flush(&mut fixed(ctx))
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, K, VOut>) -> Result<(), StreamsError> {
        self.0.close(&mut fixed(ctx))
    }
}
