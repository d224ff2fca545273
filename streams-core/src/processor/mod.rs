//! The Processor API: what the DSL cannot say, said by hand. A [`Processor`] receives typed records one at
//! a time through [`Processor::process`] and forwards new ones through its [`ProcessorContext`], which also
//! gives access to the task's state stores, the input record's metadata, and punctuation schedules.
//!
//! Every DSL operator is a `Processor` too: the DSL, hand-written processors, the test driver and the
//! runtime all run through the same code.
//!
//! ```
//! use streams_core::processor::{Processor, ProcessorContext};
//! use streams_core::{Record, StreamsError};
//!
//! /// Forwards each word of a line as its own record.
//! struct SplitWords;
//!
//! impl Processor<String, String, String, String> for SplitWords {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, record: Record<String, String>)
//!         -> Result<(), StreamsError>
//!     {
//!         for word in record.value.split_whitespace() {
//!             ctx.forward(Record::new(record.key.clone(), word.to_string(), record.timestamp))?;
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Difference from Kafka Streams: a punctuation is not a closure handed to `schedule` (it could not borrow
//! the processor's fields in Rust); instead `schedule` returns a [`PunctuationId`] and the task calls
//! [`Processor::punctuate`] with it.
//!
//! Inside the crate, this module also holds what processors run on: the task's nodes (`node`) and the
//! state they share (`state`), below the topology that creates them and the task that owns them.

mod context;
pub(crate) mod fixed_key;
pub(crate) mod node;
pub(crate) mod offset_metadata;
pub(crate) mod state;

use std::time::Duration;

pub use crate::timestamp::{
    AnyTimestampExtractor, ConsumedRecord, ExtractorError, FailOnInvalidTimestamp, LogAndSkipOnInvalidTimestamp,
    TimestampExtractor, UsePartitionTimeOnInvalidTimestamp, WallclockTimestampExtractor,
};
pub use context::{ProcessingContext, ProcessorContext, StoreHandle};
pub use fixed_key::{FixedKeyProcessor, FixedKeyProcessorContext, FixedKeyRecord};

use crate::{Record, StreamsError};

/// A record processor (Kafka Streams' `Processor<KIn, VIn, KOut, VOut>`). Each task gets its own instance,
/// made by the supplier given to `Topology::add_processor`, so a processor may keep per-task state in
/// its fields without locks.
pub trait Processor<KIn, VIn, KOut, VOut>: Send + 'static {
    /// Called once when the task starts, before any record: look up stores, schedule punctuations.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Processes one record. Records forwarded here reach every child before `forward` returns.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<(), StreamsError>;

    /// Called when a schedule made with [`ProcessingContext::schedule`] fires.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, KOut, VOut>,
        _punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Called at each commit, before the stores are flushed: a processor that holds records back (as the
    /// DSL's aggregations do with the record cache) writes and forwards them here. Most processors need
    /// not implement it. (Not in Kafka Streams' `Processor`, where the cache's flush listener does this.)
    fn flush(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self, _ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// Which clock a punctuation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. Fires as records arrive; at most once
    /// per check, skipping intervals that were jumped over, as in Kafka Streams.
    StreamTime,
    /// Wall-clock time. Fires as real (or, in tests, manual) time passes.
    WallClockTime,
}

/// Names one schedule of one processor; returned by [`ProcessingContext::schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PunctuationId(pub(crate) u64);

/// A punctuation firing: which schedule, on which clock, and the time it fired at (the stream time or the
/// wall-clock time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punctuation {
    /// The schedule.
    pub id: PunctuationId,
    /// Its clock.
    pub kind: PunctuationType,
    /// The current time on that clock, in ms.
    pub timestamp: i64,
}

/// The schedule interval must be at least one millisecond.
pub(crate) fn interval_ms(interval: Duration) -> i64 {
    (interval.as_millis() as i64).max(1)
}
