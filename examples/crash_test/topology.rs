//! The application under test, its topics, and how input values are encoded. Shared by the instances
//! (which run it) and the verifier (which recomputes what it must have produced).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kstreams::prelude::*;

/// Partitions of every topic of a run (Kafka Streams' EOS test uses 5).
pub(crate) const PARTITIONS: i32 = 5;

/// The topics and application id of one run, all named after the run id so runs never share state.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) app_id: String,
    pub(crate) data: String,
    pub(crate) echo: String,
    pub(crate) min: String,
    pub(crate) sum: String,
    pub(crate) max: String,
    pub(crate) cnt: String,
    /// Each key's largest amount per window of [`WINDOW`], final results only (`suppress`).
    pub(crate) win: String,
    /// Each input record joined with its key's running sum (a stream-table join; [`joined`]).
    pub(crate) joined: String,
    /// The global table of each key's [`region`], written by the driver before the instances start.
    pub(crate) regions: String,
    /// Each input record joined with its key's region from the global table ([`joined`]).
    pub(crate) regional: String,
}

impl Names {
    pub(crate) fn new(run: &str) -> Names {
        let topic = |name: &str| format!("crash-{run}-{name}");
        Names {
            app_id: topic("app"),
            data: topic("data"),
            echo: topic("echo"),
            min: topic("min"),
            sum: topic("sum"),
            max: topic("max"),
            cnt: topic("cnt"),
            win: topic("win"),
            joined: topic("joined"),
            regions: topic("regions"),
            regional: topic("regional"),
        }
    }

    /// The topics the driver creates (internal topics are the application's own).
    pub(crate) fn external(&self) -> [&str; 10] {
        [
            &self.data,
            &self.echo,
            &self.min,
            &self.sum,
            &self.max,
            &self.cnt,
            &self.win,
            &self.joined,
            &self.regions,
            &self.regional,
        ]
    }

    /// The aggregate outputs, with the aggregate each holds.
    pub(crate) fn aggregates(&self) -> [(&str, Aggregate); 4] {
        [
            (&self.min, Aggregate::Min),
            (&self.sum, Aggregate::Sum),
            (&self.max, Aggregate::Max),
            (&self.cnt, Aggregate::Count),
        ]
    }
}

/// One of the four aggregates the application computes per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Min,
    Sum,
    Max,
    Count,
}

impl Aggregate {
    /// The aggregate after `amount` is added to `current` (`None`: the key's first record).
    pub(crate) fn step(self, current: Option<i64>, amount: i64) -> i64 {
        match (self, current) {
            (Aggregate::Count, c) => c.unwrap_or(0) + 1,
            (_, None) => amount,
            (Aggregate::Min, Some(c)) => c.min(amount),
            (Aggregate::Max, Some(c)) => c.max(amount),
            (Aggregate::Sum, Some(c)) => c + amount,
        }
    }
}

/// Bits of an input value that carry the amount; the bits above carry the record's sequence number
/// within its key, which makes every input record distinct (so a duplicate or a loss in `echo` is
/// visible) while the aggregates work on amounts in `[0, 10000)` as in Kafka Streams' test.
const AMOUNT_BITS: u32 = 20;

/// The input value of the `seq`-th record of a key, carrying `amount`.
pub(crate) fn encode(seq: u64, amount: i64) -> i64 {
    ((seq as i64) << AMOUNT_BITS) | amount
}

/// The amount an input value carries.
pub(crate) fn amount(value: i64) -> i64 {
    value & ((1 << AMOUNT_BITS) - 1)
}

/// The windows of the windowed aggregate: tumbling, by the input's timestamps (the producer's clock).
pub(crate) const WINDOW: Duration = Duration::from_secs(5);
/// How long after its end a window takes late records; its final result goes out after that.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// The key of a window's final result in `win`: `<key>@<window start>`.
pub(crate) fn window_key(key: &str, start: i64) -> String {
    format!("{key}@{start}")
}

/// Bits of a `joined` value that carry the input value; the running sum is above them.
const JOINED_BITS: u32 = 40;

/// The `joined` value of an input record: the record's value and its key's sum after it.
pub(crate) fn joined(value: i64, sum: i64) -> i64 {
    (sum << JOINED_BITS) | value
}

/// A key's region in the global table: any number below 2^20 that differs between keys.
pub(crate) fn region(key: &str) -> i64 {
    key.bytes().fold(7i64, |h, b| (h * 31 + i64::from(b)) % 1_000_003)
}

/// The input value a `joined` value carries.
pub(crate) fn joined_input(joined: i64) -> i64 {
    joined & ((1 << JOINED_BITS) - 1)
}

/// How long the crash hook lets the open transaction's records reach the broker before the kill.
const HOOK_GRACE: Duration = Duration::from_millis(300);

/// `data → echo`; per key: `min` and `sum` of the amounts; after a repartition: `max` and `cnt`; per
/// key and window of [`WINDOW`]: the largest amount, once the window has closed (`win`); each record
/// joined with its key's sum table, which the record has already updated (`joined`), and with its key's
/// region from a global table (`regional`).
///
/// `crash` is the test hook for a kill inside an open transaction: once set, the next record, after
/// its outputs were sent (they are sent by the branches declared before the hook, so the thread's
/// transaction is open and holds them), waits [`HOOK_GRACE`] for them to reach the broker and then
/// kills the process with SIGKILL, before any commit can close the transaction.
pub(crate) fn build(names: &Names, crash: Arc<AtomicBool>) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let data = builder.stream::<String, i64>(&names.data);
    data.to(&names.echo);
    let amounts = data.map_values(amount);
    amounts.group_by_key().reduce(|a, b| a.min(b)).to_stream().to(&names.min);
    let sums = amounts.group_by_key().reduce(|a, b| a + b);
    sums.to_stream().to(&names.sum);
    let repartitioned = amounts.repartition();
    repartitioned.group_by_key().reduce(|a, b| a.max(b)).to_stream().to(&names.max);
    repartitioned.group_by_key().count().to_stream().to(&names.cnt);
    amounts
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        .reduce(|a, b| a.max(b))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|window: Windowed<String>, max: Option<i64>| (window_key(&window.key, window.window.start), max))
        .to(&names.win);
    // Declared after the sum, so each record reaches the sum's processor first.
    data.join(&sums, |value, sum| joined(value, *sum)).to(&names.joined);
    let regions = builder.global_table::<String, i64>(&names.regions);
    data.join_global(&regions, |key, _| key.clone(), |value, region| joined(value, *region)).to(&names.regional);
    data.foreach(move |key, value| {
        if crash.load(Ordering::SeqCst) {
            eprintln!("crash hook: record {key}={value} sent; killing this process inside its open transaction");
            std::thread::sleep(HOOK_GRACE);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        }
    });
    builder.build()
}
