//! Time windows, as Kafka Streams defines them (`Window`, `Windowed`, `TimeWindows`): the windows a
//! record's timestamp falls in, their bounds, and the grace period after which a window takes no more
//! records. Re-exported from [`dsl`](crate::dsl); it sits below the serdes, which write windowed keys.

use std::fmt;
use std::time::Duration;

/// A window: `[start, end)` for time windows, as Kafka Streams' `TimeWindow` (end exclusive); `[start, end]`
/// for sliding windows and sessions (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The first millisecond in the window.
    pub start: i64,
    /// The end of the window: the first millisecond after it, for time windows.
    pub end: i64,
}

/// A key and the window it was aggregated in: the key type of a windowed aggregation's table (Kafka
/// Streams' `Windowed<K>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `window`.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

/// Kafka Streams' text: `[key@start/end]`.
impl<K: fmt::Display> fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}@{}/{}]", self.key, self.window.start, self.window.end)
    }
}

/// Fixed-size windows by time (Kafka Streams' `TimeWindows`): tumbling when they advance by their size
/// (the default), hopping when they advance by less, so that a record falls in `size / advance`
/// windows. A window is `[start, start + size)`; its starts are multiples of the advance from 0.
///
/// A record is late for a window when the window has closed: its end is at or before the
/// aggregation's stream time minus the grace period. Late records are dropped for that window and
/// counted in `dropped_records`.
///
/// ```
/// use std::time::Duration;
/// use streams_core::dsl::{TimeWindows, Window};
///
/// let hopping = TimeWindows::of_size_with_no_grace(Duration::from_millis(10)).advance_by(Duration::from_millis(5));
/// let windows: Vec<Window> = hopping.windows_for(12).collect();
/// assert_eq!(windows, vec![Window { start: 5, end: 15 }, Window { start: 10, end: 20 }]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

/// Milliseconds of a duration, saturating at `i64::MAX` (Kafka Streams' durations are `long` ms).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl TimeWindows {
    /// Tumbling windows of `size` that close at their end: a record that arrives after stream time has
    /// passed its window's end is dropped (Kafka Streams' `ofSizeWithNoGrace`).
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that take late records until stream time passes their end by `grace`
    /// (Kafka Streams' `ofSizeAndGrace`).
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size_ms = millis(size);
        TimeWindows { size_ms, advance_ms: size_ms, grace_ms: millis(grace) }
    }

    /// Hopping windows: a new window starts every `advance`, which must be above zero and at most the
    /// size (Kafka Streams' `advanceBy`). An advance out of range is reported by `StreamsBuilder::build`.
    pub fn advance_by(self, advance: Duration) -> Self {
        TimeWindows { advance_ms: millis(advance), ..self }
    }

    /// The window size, in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// How far apart window starts are, in milliseconds.
    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    /// The grace period, in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The retention a store of these windows needs at least, and has when none is given: size plus grace
    /// (Kafka Streams' `WindowStoreMaterializer`).
    pub(crate) fn least_retention_ms(&self) -> i64 {
        self.size_ms().saturating_add(self.grace_ms())
    }

    /// Why these windows cannot be used (Kafka Streams' messages), if they cannot.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        if self.size_ms <= 0 {
            Some("Window size (sizeMs) must be larger than zero.")
        } else if self.advance_ms <= 0 || self.advance_ms > self.size_ms {
            Some("Window advancement interval should be more than zero and less than window duration")
        } else {
            None
        }
    }

    /// The windows `timestamp` falls in, by ascending start. Windows that would start before 0 are not
    /// among them, as in Kafka Streams (`TimeWindows.windowsFor`).
    pub fn windows_for(&self, timestamp: i64) -> impl Iterator<Item = Window> + use<> {
        let (size, advance) = (self.size_ms, self.advance_ms.max(1));
        let first = (timestamp.saturating_sub(size).saturating_add(advance)).max(0) / advance * advance;
        std::iter::successors(Some(first), move |start| start.checked_add(advance))
            .take_while(move |&start| start <= timestamp)
            .map(move |start| Window { start, end: start.saturating_add(size) })
    }
}

/// When a time-windowed or sliding-windowed aggregation emits (Kafka Streams' `EmitStrategy`, KIP-825).
///
/// [`on_window_update`](EmitStrategy::on_window_update), the default, forwards every update of a window
/// (through the record cache). [`on_window_close`](EmitStrategy::on_window_close) forwards each window
/// once, its final aggregate, when stream time passes its end by the grace period: like
/// `suppress(Suppressed::until_window_closes(..))` without a buffer of its own, since the final values are
/// read from the window store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EmitStrategy {
    /// Every update (Kafka Streams' `onWindowUpdate`).
    #[default]
    OnWindowUpdate,
    /// Final results only (Kafka Streams' `onWindowClose`).
    OnWindowClose,
}

impl EmitStrategy {
    /// Every update of a window goes downstream.
    pub fn on_window_update() -> Self {
        EmitStrategy::OnWindowUpdate
    }

    /// Each window goes downstream once, when it closes.
    pub fn on_window_close() -> Self {
        EmitStrategy::OnWindowClose
    }
}

/// Windows of a fixed time difference that slide with the records (Kafka Streams' `SlidingWindows`,
/// KIP-450): two records are in a common window when their timestamps are at most the time difference
/// apart. Each window is `[start, start + difference]`, with **both ends inclusive**, and windows exist only
/// where records make them: a record's window ending at it, the window starting just after it once a later
/// record falls there, and, for records earlier than the difference, the window `[0, difference]`.
///
/// A window closes when its end is before stream time minus the grace period; a record is dropped for
/// every closed window it would update, and counted in `dropped_records`.
///
/// ```
/// use std::time::Duration;
/// use streams_core::dsl::SlidingWindows;
///
/// let windows = SlidingWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1));
/// assert_eq!((windows.time_difference_ms(), windows.grace_ms()), (5_000, 1_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlidingWindows {
    difference_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Windows of `difference` that close at their end (Kafka Streams' `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Windows of `difference` that take late records until stream time passes their end by `grace`
    /// (Kafka Streams' `ofTimeDifferenceAndGrace`). A difference of zero builds, as in Kafka Streams, but
    /// every record that is not late then fails, since a window cannot end where it starts.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows { difference_ms: millis(difference), grace_ms: millis(grace) }
    }

    /// The time difference, in milliseconds: the length of every window.
    pub fn time_difference_ms(&self) -> i64 {
        self.difference_ms
    }

    /// The grace period, in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The retention a store of these windows needs at least, and has when none is given: twice the
    /// difference plus the grace (Kafka Streams' `SlidingWindowStoreMaterializer`).
    pub(crate) fn least_retention_ms(&self) -> i64 {
        self.difference_ms.saturating_mul(2).saturating_add(self.grace_ms)
    }
}

/// How far apart in time two records of a stream-stream join may be (Kafka Streams' `JoinWindows`): a
/// record at `t` joins the other stream's records of the same key from `t - before` to `t + after`, both
/// inclusive. Records are kept for `before + after + grace`; a left or outer join's record without a
/// partner is emitted, joined with `None`, once stream time has passed its window by the grace period.
///
/// ```
/// use std::time::Duration;
/// use streams_core::dsl::JoinWindows;
///
/// let windows = JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1))
///     .after(Duration::from_secs(10));
/// assert_eq!((windows.before_ms(), windows.after_ms(), windows.grace_ms()), (5_000, 10_000, 1_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JoinWindows {
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join, and late records are not taken (Kafka Streams'
    /// `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Records at most `difference` apart join; a record's window takes late records until stream time
    /// passes it by `grace` (Kafka Streams' `ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let difference = millis(difference);
        JoinWindows { before_ms: difference, after_ms: difference, grace_ms: millis(grace) }
    }

    /// The same windows, reaching `before` back in time from a record of this stream (Kafka Streams'
    /// `before`).
    pub fn before(self, before: Duration) -> Self {
        JoinWindows { before_ms: millis(before), ..self }
    }

    /// The same windows, reaching `after` forward in time from a record of this stream (Kafka Streams'
    /// `after`).
    pub fn after(self, after: Duration) -> Self {
        JoinWindows { after_ms: millis(after), ..self }
    }

    /// How far back a record of this stream reaches, in milliseconds.
    pub fn before_ms(&self) -> i64 {
        self.before_ms
    }

    /// How far forward a record of this stream reaches, in milliseconds.
    pub fn after_ms(&self) -> i64 {
        self.after_ms
    }

    /// The grace period, in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The window size of the join's stores: `before + after` (Kafka Streams' `size()`), which a store
    /// supplied through `StreamJoined` must have, with a retention of this plus the grace period.
    pub fn size_ms(&self) -> i64 {
        self.before_ms.saturating_add(self.after_ms)
    }

    /// How long the join's stores keep records: the size plus the grace period.
    pub(crate) fn retention_ms(&self) -> i64 {
        self.size_ms().saturating_add(self.grace_ms)
    }
}

/// Sessions of activity per key (Kafka Streams' `SessionWindows`): records of a key less than the
/// inactivity gap apart are in one session, `[first record, last record]` with **both ends inclusive**; a
/// record that falls within the gap of two sessions merges them into one.
///
/// A session closes when its end is before stream time minus the grace period minus the gap; a record
/// that would only make or extend closed sessions is dropped and counted in `dropped_records`.
///
/// ```
/// use std::time::Duration;
/// use streams_core::dsl::SessionWindows;
///
/// let sessions = SessionWindows::of_inactivity_gap_and_grace(Duration::from_secs(300), Duration::from_secs(60));
/// assert_eq!((sessions.inactivity_gap_ms(), sessions.grace_ms()), (300_000, 60_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
}

impl SessionWindows {
    /// Sessions that close as soon as stream time passes their end by the gap (Kafka Streams'
    /// `ofInactivityGapWithNoGrace`).
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions that take late records until stream time passes their end by the gap plus `grace`
    /// (Kafka Streams' `ofInactivityGapAndGrace`). A gap of zero is allowed, as in Kafka Streams 4.3: only
    /// records of the same time share a session.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows { gap_ms: millis(gap), grace_ms: millis(grace) }
    }

    /// The inactivity gap, in milliseconds.
    pub fn inactivity_gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// The grace period, in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// The retention a session store needs at least, and has when none is given: gap plus grace (Kafka
    /// Streams' `SessionStoreMaterializer`).
    pub(crate) fn least_retention_ms(&self) -> i64 {
        self.gap_ms.saturating_add(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn starts(windows: TimeWindows, ts: i64) -> Vec<i64> {
        windows.windows_for(ts).map(|w| w.start).collect()
    }

    #[test]
    fn tumbling_windows_are_end_exclusive() {
        let w = TimeWindows::of_size_with_no_grace(ms(10));
        assert_eq!(w.windows_for(0).collect::<Vec<_>>(), vec![Window { start: 0, end: 10 }]);
        assert_eq!(starts(w, 9), vec![0]);
        assert_eq!(starts(w, 10), vec![10]);
        assert_eq!(starts(w, 25), vec![20]);
    }

    #[test]
    fn hopping_windows_start_at_multiples_of_the_advance_and_never_before_zero() {
        let w = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(3));
        assert_eq!(starts(w, 2), vec![0]);
        assert_eq!(starts(w, 10), vec![3, 6, 9]);
        assert_eq!(starts(w, 12), vec![3, 6, 9, 12]);
        assert_eq!(starts(w, 100), vec![93, 96, 99]);
    }

    #[test]
    fn invalid_windows_say_why_as_kafka_streams_does() {
        assert!(TimeWindows::of_size_with_no_grace(ms(0)).invalid().unwrap().contains("larger than zero"));
        let too_far = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(11));
        assert!(too_far.invalid().unwrap().contains("advancement interval"));
        assert!(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(0)).invalid().is_some());
        assert!(TimeWindows::of_size_and_grace(ms(10), ms(5)).invalid().is_none());
    }

    #[test]
    fn windowed_keys_print_as_in_kafka_streams() {
        assert_eq!(Windowed::new("a", Window { start: 0, end: 10 }).to_string(), "[a@0/10]");
    }
}
