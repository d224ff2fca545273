//! What happens to a record that cannot be read (the deserialization exception handler), that user code
//! fails on (the processing exception handler, KIP-1033), or that cannot be written (the production
//! exception handler).
//!
//! Kafka Streams' default is to log and fail; the alternatives are to log, count and skip the record, or
//! to send it to a dead-letter topic and skip it. Whatever the choice, the record is named by topic,
//! partition and offset: nothing is dropped without a trace.

use std::sync::Arc;

use crate::record::{Headers, ProducedRecord, RawRecord};
use crate::{RecordMetadata, StreamsError, TaskId};

pub(crate) use naming::HandlerName;

mod naming {
    use std::sync::Arc;

    /// A handler as the settings show it, for `StreamsConfig`'s `Debug`. Its module is private and it
    /// implements nothing, so outside this crate the handlers' `handler_name` can be neither overridden
    /// nor inspected.
    pub enum HandlerName {
        /// A handler that a property value sets, by that value: `log_and_fail`, `fail`.
        Setting(&'static str),
        /// A `DeadLetterQueue`, by its topic (the value of `errors.dead.letter.queue.topic.name`).
        DeadLetters(Arc<str>),
        /// Any other handler, by its type's name.
        Type(&'static str),
    }
}

/// What to do with a record that could not be deserialized.
#[derive(Debug, Clone, PartialEq)]
pub enum DeserializationResponse {
    /// Stop processing: the task fails with the deserialization error.
    Fail,
    /// Skip the record and go on; the records given (for instance a copy to a dead-letter topic) are
    /// produced in its place.
    Continue(Vec<ProducedRecord>),
}

/// Decides what happens to a record that cannot be deserialized (Kafka Streams'
/// `DeserializationExceptionHandler`).
pub trait DeserializationExceptionHandler: Send + Sync + 'static {
    /// Called with the raw record and the error that names it.
    fn handle(&self, record: &RawRecord, error: &StreamsError) -> DeserializationResponse;

    /// How `StreamsConfig`'s `Debug` shows this handler. Hidden, and sealed by its return type, which
    /// cannot be named outside this crate: not part of the trait users implement.
    #[doc(hidden)]
    fn handler_name(&self) -> HandlerName {
        HandlerName::Type(std::any::type_name::<Self>())
    }
}

/// Logs the error and fails the task (the default, as in Kafka Streams).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndFail;

impl DeserializationExceptionHandler for LogAndFail {
    fn handle(&self, _record: &RawRecord, error: &StreamsError) -> DeserializationResponse {
        tracing::error!(target: "kstreams::handler", error = %error_chain(error), "deserialization failed; failing the task");
        DeserializationResponse::Fail
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("log_and_fail")
    }
}

/// Logs the error at warn level, counts the record as skipped, and goes on.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogAndContinue;

impl DeserializationExceptionHandler for LogAndContinue {
    fn handle(&self, _record: &RawRecord, error: &StreamsError) -> DeserializationResponse {
        tracing::warn!(target: "kstreams::handler", error = %error_chain(error), "skipping a record that cannot be deserialized");
        DeserializationResponse::Continue(Vec::new())
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("log_and_continue")
    }
}

/// Sends the raw record, unchanged, to a dead-letter topic with headers that say what failed
/// (`__streams.errors.*`, as Kafka Streams' KIP-1034 dead-letter queue), and goes on.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    topic: Arc<str>,
}

impl DeadLetterQueue {
    /// Dead letters go to `topic`.
    pub fn new(topic: impl Into<String>) -> Self {
        DeadLetterQueue { topic: topic.into().into() }
    }
}

impl DeadLetterQueue {
    /// The dead letter: the source record's raw key, value, timestamp and headers, plus Kafka Streams'
    /// `__streams.errors.*` headers naming the error and where the record came from (null topic,
    /// partition -1 and offset -1 for a punctuation, as in Kafka Streams).
    fn dead_letter(
        &self,
        exception: &str,
        message: String,
        source: Option<&RecordMetadata>,
        record: (Option<&[u8]>, Option<&[u8]>, i64, &Headers),
    ) -> ProducedRecord {
        let (key, value, timestamp, headers) = record;
        let mut headers = headers.clone();
        let (topic, partition, offset) = match source {
            Some(m) => (Some(m.topic.as_bytes().to_vec()), m.partition, m.offset),
            None => (None, -1, -1),
        };
        headers
            .add("__streams.errors.exception", Some(exception.as_bytes().to_vec()))
            .add("__streams.errors.message", Some(message.into_bytes()))
            .add("__streams.errors.topic", topic)
            .add("__streams.errors.partition", Some(partition.to_string().into_bytes()))
            .add("__streams.errors.offset", Some(offset.to_string().into_bytes()));
        ProducedRecord {
            topic: self.topic.clone(),
            partition: None,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers,
        }
    }
}

impl DeserializationExceptionHandler for DeadLetterQueue {
    fn handle(&self, record: &RawRecord, error: &StreamsError) -> DeserializationResponse {
        tracing::warn!(target: "kstreams::handler", error = %error_chain(error), dead_letter_topic = %self.topic, "sending an unreadable record to the dead-letter topic");
        let source = RecordMetadata { topic: record.topic.clone(), partition: record.partition, offset: record.offset };
        let raw = (record.key.as_deref(), record.value.as_deref(), record.timestamp, &record.headers);
        DeserializationResponse::Continue(vec![self.dead_letter(
            "DeserializationException",
            error_chain(error),
            Some(&source),
            raw,
        )])
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::DeadLetters(self.topic.clone())
    }
}

/// Where a record failed in user code: the node, the task, and the source record it came from (Kafka
/// Streams' `ErrorHandlerContext`).
#[derive(Debug)]
#[non_exhaustive]
pub struct ErrorContext<'a> {
    /// The node whose processor, DSL function or serde failed.
    pub node: &'a str,
    /// The task running it.
    pub task: TaskId,
    /// Where the source record was read; `None` in a punctuation.
    pub source: Option<&'a RecordMetadata>,
    /// The source record's timestamp, or the punctuation's time.
    pub timestamp: i64,
    /// The source record's headers as read (empty in a punctuation, and when the handler does not
    /// [`need the source record`](ProcessingExceptionHandler::needs_source_record)).
    pub headers: &'a Headers,
    /// The source record's key as read, before deserialization (`None` when null, in a punctuation, or
    /// when the handler does not need the source record).
    pub source_key: Option<&'a [u8]>,
    /// The source record's value as read, likewise.
    pub source_value: Option<&'a [u8]>,
}

/// What to do after user code failed on a record.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessingResponse {
    /// Stop: the task fails, naming the node and the record; nothing after the last commit is
    /// committed, so the record is processed again after a restart.
    Fail,
    /// Drop the record at the node that failed (counted in `processing_errors`) and go on with the next;
    /// the records given (for instance a dead letter) are produced in its place.
    Continue(Vec<ProducedRecord>),
}

/// Decides what happens when a processor, a DSL function (a mapper, a predicate, an aggregator) or a
/// punctuation returns an error or panics (Kafka Streams' `ProcessingExceptionHandler`, KIP-1033).
/// Called at the node that failed; the nodes above it go on with their other children.
pub trait ProcessingExceptionHandler: Send + Sync + 'static {
    /// Called with where the record failed and the error, which names the node.
    fn handle(&self, context: &ErrorContext<'_>, error: &StreamsError) -> ProcessingResponse;

    /// Whether [`ErrorContext`] must carry the source record's raw key, value and headers. Keeping them
    /// costs a copy of every input record, so the built-in log handlers say no; a dead-letter handler
    /// needs them.
    fn needs_source_record(&self) -> bool {
        true
    }

    /// How `StreamsConfig`'s `Debug` shows this handler. Hidden, and sealed by its return type, which
    /// cannot be named outside this crate: not part of the trait users implement.
    #[doc(hidden)]
    fn handler_name(&self) -> HandlerName {
        HandlerName::Type(std::any::type_name::<Self>())
    }
}

impl ProcessingExceptionHandler for LogAndFail {
    fn handle(&self, context: &ErrorContext<'_>, error: &StreamsError) -> ProcessingResponse {
        tracing::error!(target: "kstreams::handler", node = context.node, task = %context.task, source = ?context.source,
            error = %error_chain(error), "processing failed; failing the task");
        ProcessingResponse::Fail
    }

    fn needs_source_record(&self) -> bool {
        false
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("log_and_fail")
    }
}

impl ProcessingExceptionHandler for LogAndContinue {
    fn handle(&self, context: &ErrorContext<'_>, error: &StreamsError) -> ProcessingResponse {
        tracing::warn!(target: "kstreams::handler", node = context.node, task = %context.task, source = ?context.source,
            error = %error_chain(error), "skipping a record that processing failed on");
        ProcessingResponse::Continue(Vec::new())
    }

    fn needs_source_record(&self) -> bool {
        false
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("log_and_continue")
    }
}

impl ProcessingExceptionHandler for DeadLetterQueue {
    fn handle(&self, context: &ErrorContext<'_>, error: &StreamsError) -> ProcessingResponse {
        tracing::warn!(target: "kstreams::handler", node = context.node, task = %context.task, source = ?context.source,
            error = %error_chain(error), dead_letter_topic = %self.topic, "sending a record that processing failed on to the dead-letter topic");
        let raw = (context.source_key, context.source_value, context.timestamp, context.headers);
        ProcessingResponse::Continue(vec![self.dead_letter(error.kind_name(), error_chain(error), context.source, raw)])
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::DeadLetters(self.topic.clone())
    }
}

/// An error with its causes, `a: b: c`, for logs and headers.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

/// What to do when the broker rejects a record the application produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductionResponse {
    /// Stop: the stream thread fails with the error (nothing after the last commit is committed).
    Fail,
    /// Count the rejected record (`production_errors`) and go on: it is lost, and the records given
    /// (for instance a dead letter) are produced in its place.
    Continue(Vec<ProducedRecord>),
}

/// Decides what happens when the broker rejects a record for good: its topic does not exist, it is too
/// large, it is not authorized (Kafka Streams' `ProductionExceptionHandler`). Timeouts and fencing are
/// never handed to it: the thread redoes its work from the last commit instead.
pub trait ProductionExceptionHandler: Send + Sync + 'static {
    /// Called with the rejected record, when the producer could say which it was, and the error, which
    /// names the topic and partition.
    fn handle(&self, record: Option<&ProducedRecord>, error: &crate::client_error::ClientError) -> ProductionResponse;

    /// How `StreamsConfig`'s `Debug` shows this handler. Hidden, and sealed by its return type, which
    /// cannot be named outside this crate: not part of the trait users implement.
    #[doc(hidden)]
    fn handler_name(&self) -> HandlerName {
        HandlerName::Type(std::any::type_name::<Self>())
    }
}

/// Fails the thread (the default, as in Kafka Streams).
#[derive(Debug, Clone, Copy, Default)]
pub struct FailOnProductionError;

impl ProductionExceptionHandler for FailOnProductionError {
    fn handle(&self, _: Option<&ProducedRecord>, error: &crate::client_error::ClientError) -> ProductionResponse {
        tracing::error!(target: "kstreams::handler", error = %error, "producing failed; failing the stream thread");
        ProductionResponse::Fail
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("fail")
    }
}

/// Logs at warn level and goes on; the record is lost.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContinueOnProductionError;

impl ProductionExceptionHandler for ContinueOnProductionError {
    fn handle(&self, _: Option<&ProducedRecord>, error: &crate::client_error::ClientError) -> ProductionResponse {
        tracing::warn!(target: "kstreams::handler", error = %error, "producing failed; the record is dropped and processing goes on");
        ProductionResponse::Continue(Vec::new())
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::Setting("continue")
    }
}

/// The rejected record as it was produced, with `__streams.errors.*` headers naming the error. It is
/// not known which input record it came from (the broker answers long after), so the source headers
/// are those of a punctuation: no topic, partition and offset -1. A record rejected on its way to the
/// dead-letter topic itself fails the thread, rather than go round in circles.
impl ProductionExceptionHandler for DeadLetterQueue {
    fn handle(&self, record: Option<&ProducedRecord>, error: &crate::client_error::ClientError) -> ProductionResponse {
        let Some(record) = record.filter(|r| r.topic != self.topic) else {
            tracing::error!(target: "kstreams::handler", error = %error, dead_letter_topic = %self.topic,
                "producing failed and the record cannot be dead-lettered; failing the stream thread");
            return ProductionResponse::Fail;
        };
        tracing::warn!(target: "kstreams::handler", error = %error, dead_letter_topic = %self.topic, "sending a record the broker rejected to the dead-letter topic");
        let raw = (record.key.as_deref(), record.value.as_deref(), record.timestamp, &record.headers);
        ProductionResponse::Continue(vec![self.dead_letter("ProductionException", error_chain(error), None, raw)])
    }

    fn handler_name(&self) -> HandlerName {
        HandlerName::DeadLetters(self.topic.clone())
    }
}
