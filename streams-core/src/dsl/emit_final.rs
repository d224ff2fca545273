//! Emit-final for time and sliding windows (`EmitStrategy::on_window_close`, KIP-825; Kafka Streams'
//! `AbstractKStreamTimeWindowAggregateProcessor`): the aggregation writes its windows without forwarding
//! them, and when a record arrives it forwards the windows that have closed since it last looked, read
//! back from the window store, ordered by window start and then key bytes as Kafka Streams' time-ordered
//! store gives them. It looks at most once per `__emit.interval.ms.kstreams.windowed.aggregation__` of
//! wall-clock time.
//!
//! The close time it last emitted is committed with the task's offsets, in the metadata Kafka Streams
//! commits there (keyed by the store's name), so a task that reopens elsewhere emits no window twice.
//!
//! Kafka Streams looks after the record's own writes; this library looks before them. The windows
//! forwarded are the same (a record only writes windows that are still open), but the store then hides
//! no closed window that the record's writes would have pushed past the retention: with caching off
//! (always, for sliding windows), Kafka Streams loses the final results of windows that close while
//! stream time jumps by more than the retention (docs/differences-from-kafka-streams.md).

use super::change::Change;
use super::Data;
use crate::processor::{ProcessorContext, StoreHandle};
use crate::record::Headers;
use crate::serde::WINDOW_STORE_SUFFIX;
use crate::store::ValueAndTimestamp;
use crate::window::{SlidingWindows, TimeWindows, Windowed};
use crate::{Record, StreamsError};

/// The windows whose final results are emitted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FinalWindows {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

/// What an emit-final aggregation remembers between records.
#[derive(Debug)]
pub(crate) struct EmitFinal {
    windows: FinalWindows,
    /// The store's name: the key of the close time in the processor metadata.
    store: String,
    /// The window close time when it last forwarded (Kafka Streams' `lastEmitWindowCloseTime`); -1
    /// before the first time.
    last_close_time: i64,
    /// The wall-clock time before which it does not look again.
    next_look_ms: i64,
}

impl EmitFinal {
    pub(crate) fn new(windows: FinalWindows, store: String) -> Self {
        EmitFinal { windows, store, last_close_time: -1, next_look_ms: 0 }
    }

    /// Takes the close time the task committed last, if any (the processor's `init`).
    pub(crate) fn init<K, V>(&mut self, ctx: &ProcessorContext<'_, K, V>) {
        match ctx.processor_metadata(&self.store) {
            Some(time) if time >= -1 => self.last_close_time = time,
            Some(time) => tracing::warn!(
                target: "kstreams::dsl",
                store = %self.store,
                time,
                "the committed last emitted close time is not a time; starting without it"
            ),
            None => {}
        }
    }

    /// The window starts, both inclusive, whose windows closed since the last look, when it is time to
    /// look and there are any (Kafka Streams' `shouldEmitFinal`, `emitRangeLowerBound`,
    /// `emitRangeUpperBound` and `shouldRangeFetch`). Looking takes up the wall-clock interval even when
    /// nothing is found, as in Kafka Streams.
    pub(crate) fn due<K, V>(&mut self, ctx: &ProcessorContext<'_, K, V>, close_time: i64) -> Option<(i64, i64)> {
        let now = ctx.wall_clock_time_ms();
        if now < self.next_look_ms {
            return None;
        }
        self.next_look_ms = now.saturating_add(ctx.task.windowed_emit_interval_ms);
        let last = self.last_close_time;
        if last != -1 && last >= close_time {
            return None;
        }
        let (lower, upper) = match self.windows {
            FinalWindows::Time(w) => {
                let size = w.size_ms();
                let lower = if last == -1 { 0 } else { last.saturating_sub(size).max(0) + 1 };
                (lower, close_time.saturating_sub(size))
            }
            FinalWindows::Sliding(w) => {
                let d = w.time_difference_ms();
                let lower = if last == -1 { 0 } else { last.saturating_sub(d).max(0) };
                (lower, close_time.saturating_sub(d).saturating_sub(1))
            }
        };
        if upper < 0 {
            return None;
        }
        if let FinalWindows::Time(w) = self.windows {
            // No window starts in (lower - 1, upper]: nothing new has closed.
            if last != -1 && w.windows_for(upper).eq(w.windows_for(lower - 1)) {
                return None;
            }
        }
        Some((lower, upper))
    }

    /// Forwards every window of the store starting in `[lower, upper]` with its aggregate (no old value)
    /// and timestamp, and the headers of the record that made it look; remembers `close_time`.
    pub(crate) fn emit<K: Data, VA: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        store: StoreHandle<Windowed<K>, ValueAndTimestamp<VA>>,
        (lower, upper): (i64, i64),
        close_time: i64,
        headers: &Headers,
    ) -> Result<(), StreamsError> {
        let in_range = move |suffix: &[u8]| {
            let start = i64::from_be_bytes(suffix[..8].try_into().expect("eight bytes"));
            (lower..=upper).contains(&start)
        };
        let mut closed = Vec::new();
        for entry in ctx.store_mut(store)?.all_with_suffix(WINDOW_STORE_SUFFIX, in_range)? {
            let (stored, key, value) = entry?;
            // Time first, then the key's bytes and the sequence number: the time-ordered store's order.
            let split = stored.len() - WINDOW_STORE_SUFFIX;
            let order = [&stored[..split], &stored[split + 8..]].concat();
            closed.push((key.window.start, order, key, value));
        }
        closed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, _, key, stored) in closed {
            let change = Change::new(Some(stored.value), None);
            ctx.forward(Record { key, value: change, timestamp: stored.timestamp, headers: headers.clone() })?;
        }
        self.last_close_time = close_time;
        ctx.set_processor_metadata(&self.store, close_time);
        Ok(())
    }
}
