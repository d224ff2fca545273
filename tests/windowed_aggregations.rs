//! Windowed aggregations in the test driver: tumbling and hopping time windows, end-exclusive bounds,
//! grace and the dropping (and counting) of late records, count/reduce/aggregate, the store keyed as
//! Kafka Streams keys a window store, Kafka Streams' names, and the build errors for windows that cannot
//! be used. The changelog's layout and topic config are checked on the embedded broker at the end.

use std::time::Duration;

use kstreams::dsl::EmitStrategy;
use kstreams::prelude::*;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn windowed(key: &str, start: i64, end: i64) -> Windowed<String> {
    Windowed::new(key.to_string(), Window { start, end })
}

/// `in` grouped by key, cut by `windows`, counted into store `counts`, written to `out`.
fn counting(windows: TimeWindows) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(windows)
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to("out");
    Ok(builder.build()?)
}

/// Pipes `(key, timestamp)` records and returns what `out` got, read with the window size known.
fn run(
    topology: Topology,
    size: u64,
    records: &[(&str, i64)],
) -> Result<(TopologyTestDriver, Vec<(Windowed<String>, i64, i64)>)> {
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, String>("in");
    let key_serde = std::sync::Arc::new(kstreams::serde::TimeWindowedSerde::new(
        std::sync::Arc::new(kstreams::serde::StringSerde),
        ms(size),
    ));
    let out =
        driver.output_topic_with::<Windowed<String>, Option<i64>>("out", key_serde, Option::<i64>::default_serde());
    for (key, ts) in records {
        driver.pipe(&input, key.to_string(), "v".to_string(), *ts)?;
    }
    let read = driver.read_records(&out)?.into_iter().map(|r| (r.key, r.value.unwrap_or(-1), r.timestamp)).collect();
    Ok((driver, read))
}

#[test]
fn tumbling_windows_are_end_exclusive_and_close_after_the_grace_period() -> Result {
    let windows = TimeWindows::of_size_and_grace(ms(10), ms(5));
    let records = [("a", 0), ("a", 9), ("a", 10), ("b", 3), ("a", 14), ("a", 4), ("a", 15), ("a", 5)];
    let (mut driver, out) = run(counting(windows)?, 10, &records)?;
    assert_eq!(
        out,
        vec![
            (windowed("a", 0, 10), 1, 0),
            (windowed("a", 0, 10), 2, 9),
            (windowed("a", 10, 20), 1, 10),
            (windowed("b", 0, 10), 1, 3),
            (windowed("a", 10, 20), 2, 14),
            // Stream time 14, grace 5: [0, 10) is still open (10 > 14 - 5); the timestamp stays 9.
            (windowed("a", 0, 10), 3, 9),
            (windowed("a", 10, 20), 3, 15),
            // At stream time 15, [0, 10) has closed (10 <= 15 - 5): the record at 5 is dropped.
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    let stored = driver.store_entries::<Windowed<String>, i64>("counts")?;
    assert_eq!(stored, vec![(windowed("a", 0, 10), 3), (windowed("a", 10, 20), 3), (windowed("b", 0, 10), 1)]);
    Ok(())
}

#[test]
fn a_record_falls_in_every_hopping_window_that_covers_it() -> Result {
    let windows = TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(5));
    let (driver, out) = run(counting(windows)?, 10, &[("a", 7), ("a", 12), ("a", 3)])?;
    assert_eq!(
        out,
        vec![
            (windowed("a", 0, 10), 1, 7),
            (windowed("a", 5, 15), 1, 7),
            (windowed("a", 5, 15), 2, 12),
            (windowed("a", 10, 20), 1, 12),
            // Stream time 12, no grace: [0, 10) is closed, so the record at 3 counts nowhere, once dropped.
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

#[test]
fn reduce_and_aggregate_fold_per_window() -> Result {
    let builder = StreamsBuilder::new();
    let windowed_stream =
        builder.stream::<String, i64>("in").group_by_key().windowed_by(TimeWindows::of_size_with_no_grace(ms(100)));
    windowed_stream.reduce(|a, b| a + b).to_stream().to("sums");
    windowed_stream
        .aggregate_with(
            String::new,
            |_, v, acc| format!("{acc}{v}"),
            Materialized::as_store("joined").with_retention(ms(1_000)),
        )
        .to_stream()
        .to("joined");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.input_topic::<String, i64>("in");
    for (value, ts) in [(1, 10), (2, 50), (3, 120)] {
        driver.pipe(&input, "k".to_string(), value, ts)?;
    }
    let sums = driver.output_topic::<Windowed<String>, Option<i64>>("sums");
    let sums: Vec<(i64, Option<i64>)> =
        driver.read_key_values(&sums).into_iter().map(|(k, v)| (k.window.start, v)).collect();
    assert_eq!(sums, vec![(0, Some(1)), (0, Some(3)), (100, Some(3))]);
    assert_eq!(
        driver.store_entries::<Windowed<String>, String>("joined")?,
        vec![(windowed("k", 0, 100), "12".to_string()), (windowed("k", 100, 200), "3".to_string())]
    );
    Ok(())
}

/// Windows older than the store's retention leave it, in memory and on RocksDB: the store is cut into
/// segments of `max(retention / 2, 1 min)` that are dropped whole, and reads hide a window that starts at
/// or before the latest window start less the retention, as Kafka Streams' window stores do.
#[test]
fn windows_past_the_retention_leave_the_store() -> Result {
    use kstreams::config::DslStoreType;
    use kstreams::testing::TestDriverConfig;

    const MINUTE: u64 = 60_000;
    for store in [DslStoreType::InMemory, DslStoreType::RocksDb] {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(ms(MINUTE)))
            .count_with(Materialized::as_store("counts").with_retention(ms(2 * MINUTE)));
        let config = TestDriverConfig { default_dsl_store: store, ..TestDriverConfig::default() };
        let mut driver = TopologyTestDriver::with_config(builder.build()?, config)?;
        let input = driver.input_topic::<String, String>("in");
        let m = MINUTE as i64;
        for ts in [0, m + 1] {
            driver.pipe(&input, "a".to_string(), "v".to_string(), ts)?;
        }
        let starts = |driver: &mut TopologyTestDriver| -> Result<Vec<i64>> {
            let entries = driver.store_entries::<Windowed<String>, i64>("counts")?;
            Ok(entries.into_iter().map(|(k, _)| k.window.start).collect())
        };
        assert_eq!(starts(&mut driver)?, vec![0, m], "{store:?}: both inside the retention");
        // The latest start is 2 min: a window starting at 2 min - 2 min = 0 or before is hidden, though its
        // segment (0 to 1 min) is still there.
        driver.pipe(&input, "a".to_string(), "v".to_string(), 2 * m + 5)?;
        assert_eq!(starts(&mut driver)?, vec![m, 2 * m], "{store:?}");
        // At 3 min the first segment goes.
        driver.pipe(&input, "a".to_string(), "v".to_string(), 3 * m)?;
        assert_eq!(starts(&mut driver)?, vec![2 * m, 3 * m], "{store:?}");
        assert_eq!(driver.metrics().dropped_records, 0);
    }
    Ok(())
}

/// The names and the text of Kafka Streams' `describe()` for the same topology (checked against Kafka
/// Streams 4.x's `TopologyTest`).
#[test]
fn names_are_kafka_streams() -> Result {
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .count();
    assert_eq!(counts.store_name(), Some("KSTREAM-AGGREGATE-STATE-STORE-0000000001"));
    counts.to_stream().to("out");
    let description = builder.build()?.describe().to_string();
    assert!(
        description
            .contains("Processor: KSTREAM-AGGREGATE-0000000002 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])"),
        "{description}"
    );
    assert!(description.contains("Sink: KSTREAM-SINK-0000000004 (topic: out)"), "{description}");
    Ok(())
}

#[test]
fn windows_or_a_retention_that_cannot_be_used_are_build_errors() {
    let build = |windows: TimeWindows, retention: Option<u64>| {
        let builder = StreamsBuilder::new();
        let mut materialized = Materialized::as_store("w");
        if let Some(r) = retention {
            materialized = materialized.with_retention(ms(r));
        }
        builder.stream::<String, String>("in").group_by_key().windowed_by(windows).count_with(materialized);
        builder.build().map(|_| ()).unwrap_err().to_string()
    };
    let error = build(TimeWindows::of_size_with_no_grace(ms(10)).advance_by(ms(20)), None);
    assert!(
        error.contains("Window advancement interval should be more than zero and less than window duration"),
        "{error}"
    );
    let error = build(TimeWindows::of_size_and_grace(ms(10), ms(5)), Some(14));
    assert!(
        error.contains("The retention period of the window store w must be no smaller than its window size plus the grace period. Got size=[10], grace=[5], retention=[14]"),
        "{error}"
    );
}

/// On the embedded broker: the changelog keys are Kafka Streams' window store keys (key, start, a
/// 4-byte sequence number), the output keys Kafka's `TimeWindowedSerializer` bytes, and the changelog
/// topic is `compact,delete` kept for the retention plus one day.
#[test]
fn the_changelog_and_output_use_kafka_s_layouts() -> Result {
    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::{KafkaStreams, State};

    let broker = EmbeddedBroker::new();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let mut config = StreamsConfig::new("win", "embedded");
    config.set("commit.interval.ms", "100")?;
    let mut app = KafkaStreams::with_client_supplier(
        counting(TimeWindows::of_size_and_grace(ms(10), ms(5)))?,
        config.clone(),
        std::sync::Arc::new(broker.clone()),
    )?;
    app.start()?;
    let mut topics = BrokerTopics::new(std::sync::Arc::new(broker.clone()), &config);
    topics.send("in", &"a".to_string(), &"v".to_string(), 1000)?;
    topics.flush()?;
    let out = topics.wait_for::<Vec<u8>, Option<i64>>("out", 1, Duration::from_secs(30))?;
    assert_eq!(out[0].0, Some(vec![b'a', 0, 0, 0, 0, 0, 0, 0x03, 0xE8]));
    let changelog = topics.read_raw("win-counts-changelog")?;
    assert_eq!(changelog[0].key.as_deref(), Some(&[b'a', 0, 0, 0, 0, 0, 0, 0x03, 0xE8, 0, 0, 0, 0][..]));
    app.close()?;
    assert_eq!(app.state(), State::NotRunning);
    Ok(())
}

/// `in`, session-windowed by `windows`, aggregated with a concat aggregator and a `|` merger into store
/// `agg` (optionally with a retention), written to `out`.
fn sessions(windows: SessionWindows, retention: Option<u64>) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let mut materialized = Materialized::as_store("agg");
    if let Some(r) = retention {
        materialized = materialized.with_retention(ms(r));
    }
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(windows)
        .aggregate_with(String::new, |_, v, agg| format!("{agg},{v}"), |_, a, b| format!("{a}|{b}"), materialized)
        .to_stream()
        .to("out");
    Ok(builder.build()?)
}

type SessionOut = Vec<(String, i64, i64, Option<String>, i64)>;

/// Pipes `(key, value, timestamp)` records and returns `out` as (key, start, end, value, timestamp).
fn run_sessions(topology: Topology, records: &[(&str, &str, i64)]) -> Result<(TopologyTestDriver, SessionOut)> {
    use kstreams::serde::{SessionWindowedSerde, StringSerde};
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, String>("in");
    for (key, value, ts) in records {
        let mut record = Record::new(key.to_string(), value.to_string(), *ts);
        record.headers.add("trace", Some(b"1".to_vec()));
        driver.pipe_record(&input, record)?;
    }
    let key_serde = std::sync::Arc::new(SessionWindowedSerde::new(std::sync::Arc::new(StringSerde)));
    let out = driver.output_topic_with::<Windowed<String>, Option<String>>(
        "out",
        key_serde,
        Option::<String>::default_serde(),
    );
    let records = driver.read_records(&out)?;
    assert!(records.iter().all(|r| r.headers.is_empty()), "session results carry no headers, as in Kafka Streams");
    let read = records.into_iter().map(|r| (r.key.key, r.key.window.start, r.key.window.end, r.value, r.timestamp));
    Ok((driver, read.collect()))
}

fn s(start: i64, end: i64, value: Option<&str>, ts: i64) -> (String, i64, i64, Option<String>, i64) {
    ("a".to_string(), start, end, value.map(str::to_string), ts)
}

/// A record within the gap of two sessions merges them: a tombstone for each (stamped with its end), then
/// the merged session, whose aggregate folds the sessions' with the merger from the initializer, oldest
/// first, then the record. A record that would only extend closed sessions is dropped.
#[test]
fn a_record_between_two_sessions_merges_them() -> Result {
    let windows = SessionWindows::of_inactivity_gap_and_grace(ms(10), ms(20));
    let records = [("a", "p", 0), ("a", "q", 20), ("a", "r", 10), ("a", "s", 100), ("a", "t", 60), ("a", "u", 75)];
    let (driver, out) = run_sessions(sessions(windows, Some(30))?, &records)?;
    assert_eq!(
        out,
        vec![
            s(0, 0, Some(",p"), 0),
            s(20, 20, Some(",q"), 20),
            s(0, 0, None, 0),
            s(20, 20, None, 20),
            s(0, 20, Some("|,p|,q,r"), 20),
            s(100, 100, Some(",s"), 100),
            // t@60: stream time 100 less grace 20 less gap 10 closes everything before 70: dropped.
            // u@75: [0, 20] has ended at or before 100 - 30 (the retention): not found, a new session.
            s(75, 75, Some(",u"), 75),
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

/// A session still open for the aggregation (its end is not before the close time) but past the store's
/// retention is not found: the next record within the gap starts a session of its own, as in Kafka
/// Streams, whose store hides it the same way.
#[test]
fn the_store_s_retention_decides_which_sessions_a_record_can_join() -> Result {
    let windows = SessionWindows::of_inactivity_gap_with_no_grace(ms(10));
    let builder_records = [("p", 98), ("r", 105), ("s", 98)];
    let topology = || -> Result<Topology> {
        let builder = StreamsBuilder::new();
        let grouped = builder.stream::<String, String>("in").group_by_key();
        grouped
            .windowed_by(windows)
            .aggregate_with(
                String::new,
                |_, v, agg| format!("{agg},{v}"),
                |_, a, b| format!("{a}|{b}"),
                Materialized::as_store("agg"),
            )
            .to_stream()
            .to("out");
        Ok(builder.build()?)
    };
    let mut driver = TopologyTestDriver::new(topology()?)?;
    let input = driver.input_topic::<String, String>("in");
    driver.pipe(&input, "a".into(), "p".into(), 98)?;
    driver.pipe(&input, "b".into(), "q".into(), 108)?;
    for (value, ts) in &builder_records[1..] {
        driver.pipe(&input, "a".into(), value.to_string(), *ts)?;
    }
    let stored: Vec<(i64, i64, String)> = driver
        .store_entries::<Windowed<String>, String>("agg")?
        .into_iter()
        .filter(|(k, _)| k.key == "a")
        .map(|(k, v)| (k.window.start, k.window.end, v))
        .collect();
    assert_eq!(stored, vec![(98, 105, "|,r,s".to_string())], "[98, 98] was hidden when r came");
    Ok(())
}

/// Kafka Streams' own `SessionWindowedKStreamImplTest.shouldCountSessionWindowed` (caching off).
#[test]
fn session_counts_match_kafka_streams_own_test() -> Result {
    use kstreams::serde::{SessionWindowedSerde, StringSerde};
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(ms(500)))
        .count()
        .to_stream()
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.input_topic::<String, String>("in");
    for (key, ts) in [("1", 10), ("1", 15), ("1", 600), ("2", 600), ("2", 599)] {
        driver.pipe(&input, key.to_string(), "1".to_string(), ts)?;
    }
    let key_serde = std::sync::Arc::new(SessionWindowedSerde::new(std::sync::Arc::new(StringSerde)));
    let out =
        driver.output_topic_with::<Windowed<String>, Option<i64>>("out", key_serde, Option::<i64>::default_serde());
    let read: Vec<(String, i64, i64, Option<i64>, i64)> = driver
        .read_records(&out)?
        .into_iter()
        .map(|r| (r.key.key, r.key.window.start, r.key.window.end, r.value, r.timestamp))
        .collect();
    let k = |key: &str, start, end, count, ts| (key.to_string(), start, end, count, ts);
    assert_eq!(
        read,
        vec![
            k("1", 10, 10, Some(1), 10),
            k("1", 10, 10, None, 10),
            k("1", 10, 15, Some(2), 15),
            k("1", 600, 600, Some(1), 600),
            k("2", 600, 600, Some(1), 600),
            k("2", 600, 600, None, 600),
            k("2", 599, 600, Some(2), 600),
        ]
    );
    Ok(())
}

#[test]
fn a_session_store_retention_below_gap_plus_grace_is_a_build_error() {
    let error = sessions(SessionWindows::of_inactivity_gap_and_grace(ms(100), ms(50)), Some(120))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("The retention period of the session store agg must be no smaller than the session inactivity gap plus the grace period. Got gap=[100], grace=[50], retention=[120]"),
        "{error}"
    );
}

/// Under exactly-once the store's writes wait for the commit; the aggregation still finds (and hides)
/// exactly the sessions it does when every write lands at once: the same records give the same results
/// on the embedded broker, with commits far apart, as in the test driver.
/// Runs `sessions(windows)` under exactly_once_v2 on the embedded broker over `records`, committing
/// once, at the close, with a record cache of `cache_max_bytes`; returns `out` as `run_sessions` does.
fn sessions_in_one_commit(
    windows: SessionWindows,
    records: &[(&str, &str, i64)],
    cache_max_bytes: usize,
) -> Result<SessionOut> {
    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::KafkaStreams;
    use kstreams::serde::{SessionWindowedSerde, StringSerde};

    let broker = EmbeddedBroker::new();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let mut config = StreamsConfig::new("sessions-eos", "embedded");
    config.set("processing.guarantee", "exactly_once_v2")?;
    config.set("commit.interval.ms", "60000")?;
    config.set("statestore.cache.max.bytes", &cache_max_bytes.to_string())?;
    let supplier = std::sync::Arc::new(broker.clone());
    let mut app = KafkaStreams::with_client_supplier(sessions(windows, None)?, config.clone(), supplier.clone())?;
    let mut topics = BrokerTopics::new(supplier, &config);
    for (key, value, ts) in records {
        topics.send("in", &key.to_string(), &value.to_string(), *ts)?;
    }
    topics.flush()?;
    app.start()?;
    // Nothing is committed for a minute; closing commits what was processed.
    std::thread::sleep(Duration::from_secs(2));
    app.close()?;
    let key_serde = SessionWindowedSerde::new(std::sync::Arc::new(StringSerde));
    let out = topics.read_raw("out")?;
    Ok(out
        .iter()
        .map(|r| {
            let key = key_serde.deserialize("out", r.key.as_deref().unwrap()).unwrap();
            let value = r.value.as_ref().map(|v| String::from_utf8(v.clone()).unwrap());
            (key.key, key.window.start, key.window.end, value, r.timestamp)
        })
        .collect())
}

/// Records for the two tests below: r@105 comes when [98, 98] is still open for the aggregation but
/// past the store's retention (b's session moved the store's time to 108), so it must not join it;
/// w@151 likewise.
const RETENTION_EDGE: [(&str, &str, i64); 7] = [
    ("a", "p", 98),
    ("b", "q", 108),
    ("a", "r", 105),
    ("a", "s", 98),
    ("a", "t", 141),
    ("b", "u", 151),
    ("a", "w", 148),
];

#[test]
fn sessions_under_exactly_once_give_the_test_driver_s_results() -> Result {
    let windows = SessionWindows::of_inactivity_gap_with_no_grace(ms(10));
    let (_, expected) = run_sessions(sessions(windows, None)?, &RETENTION_EDGE)?;
    assert!(expected.contains(&s(105, 105, Some(",r"), 105)), "r starts a session of its own: {expected:?}");
    // No record cache: every update goes out, as from the driver.
    assert_eq!(sessions_in_one_commit(windows, &RETENTION_EDGE, 0)?, expected);
    Ok(())
}

/// With the record cache and one commit, a session that was made and merged away before the commit
/// ([105, 105], merged into [98, 105] by s@98) never goes downstream, and neither does its tombstone;
/// the other sessions go out once each, with their final aggregates (Kafka Streams' caching session
/// store).
#[test]
fn with_the_record_cache_a_session_merged_away_before_the_commit_never_goes_out() -> Result {
    let windows = SessionWindows::of_inactivity_gap_with_no_grace(ms(10));
    let out = sessions_in_one_commit(windows, &RETENTION_EDGE, 1 << 20)?;
    let session = |key: &str, start, end, value: &str| (key.to_string(), start, end, Some(value.to_string()), end);
    assert_eq!(
        out,
        vec![
            session("a", 98, 98, ",p"),
            session("b", 108, 108, ",q"),
            session("a", 98, 105, "|,r,s"),
            session("a", 141, 141, ",t"),
            session("b", 151, 151, ",u"),
            session("a", 148, 148, ",w"),
        ]
    );
    Ok(())
}

/// With the record cache the driver commits after each record (`cache_max_bytes`, as Kafka Streams'
/// driver does): a record inside a session sends that session once, with its new aggregate, where
/// without the cache a tombstone and the update go out; cached results carry the headers of the
/// record that made them, stamped with the session's end.
#[test]
fn with_the_record_cache_a_session_merged_into_itself_goes_out_once() -> Result {
    use kstreams::serde::{SessionWindowedSerde, StringSerde};
    let windows = SessionWindows::of_inactivity_gap_with_no_grace(ms(10));
    let config = TestDriverConfig { cache_max_bytes: 1 << 20, ..TestDriverConfig::default() };
    let mut driver = TopologyTestDriver::with_config(sessions(windows, None)?, config)?;
    let input = driver.input_topic::<String, String>("in");
    for (value, ts) in [("p", 0), ("q", 10), ("r", 5)] {
        let mut record = Record::new("a".to_string(), value.to_string(), ts);
        record.headers.add("trace", Some(value.as_bytes().to_vec()));
        driver.pipe_record(&input, record)?;
    }
    let key_serde = std::sync::Arc::new(SessionWindowedSerde::new(std::sync::Arc::new(StringSerde)));
    let out = driver.output_topic_with::<Windowed<String>, Option<String>>(
        "out",
        key_serde,
        Option::<String>::default_serde(),
    );
    let read: Vec<_> = driver
        .read_records(&out)?
        .into_iter()
        .map(|r| {
            let trace = r.headers.last("trace").flatten().map(|v| String::from_utf8(v.to_vec()).unwrap());
            (r.key.window.start, r.key.window.end, r.value, r.timestamp, trace)
        })
        .collect();
    let row = |start, end, value: Option<&str>, trace: &str| {
        (start, end, value.map(str::to_string), end, Some(trace.to_string()))
    };
    assert_eq!(
        read,
        vec![
            row(0, 0, Some(",p"), "p"),
            row(0, 0, None, "q"),
            row(0, 10, Some("|,p,q"), "q"),
            // r@5 deletes [0, 10] and puts it again: one update.
            row(0, 10, Some("||,p,q,r"), "r"),
        ]
    );
    Ok(())
}

/// `in` (string values, or null) counted over sliding windows into store `counts` (retention 1 s), written
/// to `out`; returns `out` as (key, start, end, count, timestamp) and the driver.
fn run_sliding(
    windows: SlidingWindows,
    records: &[(&str, Option<&str>, i64)],
) -> Result<(TopologyTestDriver, Vec<(String, i64, i64, i64, i64)>)> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Option<String>>("in")
        .group_by_key()
        .windowed_by(windows)
        .count_with(Materialized::as_store("counts").with_retention(ms(1_000)))
        .to_stream()
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.input_topic::<String, Option<String>>("in");
    for (key, value, ts) in records {
        driver.pipe(&input, key.to_string(), value.map(str::to_string), *ts)?;
    }
    let key_serde = std::sync::Arc::new(kstreams::serde::TimeWindowedSerde::new(
        std::sync::Arc::new(kstreams::serde::StringSerde),
        ms(windows.time_difference_ms() as u64),
    ));
    let out =
        driver.output_topic_with::<Windowed<String>, Option<i64>>("out", key_serde, Option::<i64>::default_serde());
    let read = driver.read_records(&out)?;
    let read =
        read.into_iter().map(|r| (r.key.key, r.key.window.start, r.key.window.end, r.value.unwrap_or(-1), r.timestamp));
    Ok((driver, read.collect()))
}

fn w(start: i64, end: i64, count: i64, ts: i64) -> (String, i64, i64, i64, i64) {
    ("a".to_string(), start, end, count, ts)
}

/// Kafka Streams' rules, trace by trace: existing windows are updated newest first, then the previous
/// record's right window, the record's left window and its own right window (copied from the window
/// before it, with that window's timestamp).
#[test]
fn sliding_windows_are_made_where_records_are() -> Result {
    let windows = SlidingWindows::of_time_difference_and_grace(ms(10), ms(20));
    let (_, out) = run_sliding(windows, &[("a", Some("x"), 100), ("a", Some("x"), 115), ("a", Some("x"), 108)])?;
    assert_eq!(
        out,
        vec![
            w(90, 100, 1, 100),
            w(105, 115, 1, 115),
            // 108: [105, 115] updated (timestamp stays 115), 100's right window [101, 111] made, the left
            // window [98, 108] seeded with [90, 100], then 108's right window copied from [105, 115].
            w(105, 115, 2, 115),
            w(101, 111, 1, 108),
            w(98, 108, 2, 108),
            w(109, 119, 1, 115),
        ]
    );
    Ok(())
}

/// Records earlier than the difference share `[0, difference]`; a record is dropped once per closed
/// window it would update, and null keys and values are dropped without moving stream time.
#[test]
fn early_records_late_windows_and_nulls_follow_kafka_streams() -> Result {
    let windows = SlidingWindows::of_time_difference_with_no_grace(ms(100));
    let records =
        [("a", Some("x"), 10), ("a", Some("x"), 50), ("a", Some("x"), 30), ("a", Some("x"), 150), ("a", Some("x"), 60)];
    let (driver, out) = run_sliding(windows, &records)?;
    assert_eq!(
        out,
        vec![
            w(0, 100, 1, 10),
            w(11, 111, 1, 50),
            w(0, 100, 2, 50),
            w(11, 111, 2, 50),
            w(31, 131, 1, 50),
            w(0, 100, 3, 50),
            w(51, 151, 1, 150),
            w(50, 150, 2, 150),
            w(50, 150, 3, 150),
            w(51, 151, 2, 150),
            w(61, 161, 1, 150),
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 3, "60 is late for [11, 111], [31, 131] and [0, 100]");

    let windows = SlidingWindows::of_time_difference_with_no_grace(ms(10));
    let (driver, out) = run_sliding(windows, &[("a", Some("x"), 100), ("a", None, 300), ("a", Some("x"), 105)])?;
    assert_eq!(out, vec![w(90, 100, 1, 100), w(101, 111, 1, 105), w(95, 105, 2, 105)], "the null value moved no time");
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

/// A difference of zero builds, as in Kafka Streams, and then fails on the first record: no window can
/// end where it starts.
#[test]
fn a_zero_difference_fails_on_the_first_record() -> Result {
    let error = run_sliding(SlidingWindows::of_time_difference_with_no_grace(ms(0)), &[("a", Some("x"), 5)])
        .map(|_| ())
        .unwrap_err();
    let chain: Vec<String> =
        std::iter::successors(Some(&*error as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain.join(": ").contains("Window endMs must be greater than window startMs."), "{chain:?}");
    Ok(())
}

/// Under exactly-once the store's writes wait for the commit; sliding windows still see (and miss) exactly
/// the windows they see in the test driver, where every write lands at once: a window hidden by the
/// store's retention (moved on by another key) stays hidden.
#[test]
fn sliding_windows_under_exactly_once_give_the_test_driver_s_results() -> Result {
    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::KafkaStreams;
    use kstreams::serde::{StringSerde, TimeWindowedSerde};

    let topology = || -> Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .windowed_by(SlidingWindows::of_time_difference_and_grace(ms(3), ms(2)))
            .count_with(Materialized::as_store("counts").with_retention(ms(8)))
            .to_stream()
            .to("out");
        Ok(builder.build()?)
    };
    let records =
        [("a", 4), ("a", 11), ("a", 15), ("a", 16), ("a", 5), ("a", 14), ("c", 20), ("b", 24), ("b", 26), ("c", 21)];
    let key_serde = TimeWindowedSerde::new(std::sync::Arc::new(StringSerde), ms(3));
    let read = |out: Vec<(Option<Vec<u8>>, Option<Vec<u8>>, i64)>| -> Vec<(Windowed<String>, Option<Vec<u8>>, i64)> {
        out.into_iter().map(|(k, v, ts)| (key_serde.deserialize("out", &k.unwrap()).unwrap(), v, ts)).collect()
    };

    let mut driver = TopologyTestDriver::new(topology()?)?;
    let input = driver.input_topic::<String, String>("in");
    for (key, ts) in records {
        driver.pipe(&input, key.to_string(), "v".to_string(), ts)?;
    }
    let expected = read(driver.peek_raw("out").into_iter().map(|r| (r.key, r.value, r.timestamp)).collect());
    assert!(expected.iter().any(|(w, _, _)| w.key == "a" && w.window.start == 11), "{expected:?}");

    let broker = EmbeddedBroker::new();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let mut config = StreamsConfig::new("sliding-eos", "embedded");
    config.set("processing.guarantee", "exactly_once_v2")?;
    config.set("commit.interval.ms", "60000")?;
    // No record cache: every update goes out, as from the driver (which commits after each record).
    config.set("statestore.cache.max.bytes", "0")?;
    let supplier = std::sync::Arc::new(broker.clone());
    let mut app = KafkaStreams::with_client_supplier(topology()?, config.clone(), supplier.clone())?;
    let mut topics = BrokerTopics::new(supplier, &config);
    for (key, ts) in records {
        topics.send("in", &key.to_string(), &"v".to_string(), ts)?;
    }
    topics.flush()?;
    app.start()?;
    std::thread::sleep(Duration::from_secs(2));
    app.close()?;
    let out = read(topics.read_raw("out")?.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect());
    assert_eq!(out, expected);
    Ok(())
}

/// `in` counted per 10 ms window with 5 ms of grace, final results only, written to `out`.
fn final_counts() -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    Ok(builder.build()?)
}

#[test]
fn final_results_are_emitted_once_when_the_window_closes() -> Result {
    let records = [("a", 1), ("a", 4), ("b", 9), ("a", 12), ("b", 14), ("a", 15), ("a", 3), ("b", 30)];
    let (driver, out) = run(final_counts()?, 10, &records)?;
    // a@15 closes [0, 10) (15 >= 10 + 5); a@3 is late; b@30 closes [10, 20). Each result carries the
    // timestamp of its last update.
    assert_eq!(
        out,
        vec![
            (windowed("a", 0, 10), 2, 4),
            (windowed("b", 0, 10), 1, 9),
            (windowed("a", 10, 20), 2, 15),
            (windowed("b", 10, 20), 1, 14),
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    let described = final_counts()?.describe().to_string();
    assert!(
        described.contains("Processor: KTABLE-SUPPRESS-0000000003 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000004])"),
        "{described}"
    );
    Ok(())
}

#[test]
fn the_window_s_grace_is_found_through_table_operators() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(20)))
        .count()
        .filter(|_, count| *count > 1)
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final"))
        .to_stream()
        .to("out");
    let records = [("a", 1), ("a", 2), ("b", 3), ("b", 29), ("b", 29), ("b", 31), ("b", 31)];
    let (_, out) = run(builder.build()?, 10, &records)?;
    // [0, 10) closes at 30: a's count of 2 passed the filter. b's single record there never did, so the
    // filter forwarded nothing for it. The suppression's stream time is that of the changes it sees, as
    // in Kafka Streams: b@29 (a count of 2) moves it to 29, b@31 (another 2) to 31, which closes [0, 10);
    // the filtered-out counts of 1 moved nothing.
    assert_eq!(out, vec![(windowed("a", 0, 10), 2, 2)]);
    Ok(())
}

#[test]
fn final_results_need_a_windowed_aggregation_above() {
    use kstreams::serde::{I64Serde, TimeWindowedSerde};
    use std::sync::Arc;

    let builder = StreamsBuilder::new();
    let keys = Arc::new(TimeWindowedSerde::new(Arc::new(kstreams::serde::StringSerde), ms(10)));
    builder
        .table_with::<Windowed<String>, i64>("counts", Consumed::with(keys, Arc::new(I64Serde)), Materialized::new())
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let error = builder.build().err().expect("a build error").to_string();
    assert!(
        error.contains(
            "Window close time is only defined for windowed computations. \
             Got [KSTREAM-SOURCE-0000000001->KTABLE-SOURCE-0000000002]."
        ),
        "{error}"
    );
}

/// The buffer is a logged store held apart per commit like every store under exactly-once: an instance
/// that closes with changes held back, and another that takes over from the changelog, emit the same
/// final results as the test driver, each once.
#[test]
fn final_results_under_exactly_once_survive_a_restart_and_match_the_test_driver() -> Result {
    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::KafkaStreams;
    use kstreams::serde::{StringSerde, TimeWindowedSerde};

    let first = [("a", 1), ("a", 4), ("b", 9), ("a", 12), ("b", 14)];
    let second = [("a", 15), ("a", 3), ("b", 30)];
    let all: Vec<_> = first.iter().chain(&second).copied().collect();
    let (_, expected) = run(final_counts()?, 10, &all)?;
    assert_eq!(expected.len(), 4);

    let broker = EmbeddedBroker::new();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let mut config = StreamsConfig::new("final-eos", "embedded");
    config.set("processing.guarantee", "exactly_once_v2")?;
    config.set("commit.interval.ms", "60000")?;
    let supplier = std::sync::Arc::new(broker.clone());
    let mut topics = BrokerTopics::new(supplier.clone(), &config);
    for records in [&first[..], &second[..]] {
        for (key, ts) in records {
            topics.send("in", &key.to_string(), &"v".to_string(), *ts)?;
        }
        topics.flush()?;
        // A new state directory each time: the second instance restores the buffer from its changelog.
        let dir = tempfile::tempdir()?;
        let mut config = config.clone();
        config.set("state.dir", dir.path().to_str().unwrap())?;
        let mut app = KafkaStreams::with_client_supplier(final_counts()?, config, supplier.clone())?;
        app.start()?;
        std::thread::sleep(Duration::from_secs(2));
        app.close()?;
    }
    let key_serde = TimeWindowedSerde::new(std::sync::Arc::new(StringSerde), ms(10));
    let out: Vec<(Windowed<String>, i64, i64)> = topics
        .read_raw("out")?
        .into_iter()
        .map(|r| {
            let key = key_serde.deserialize("out", r.key.as_deref().unwrap()).unwrap();
            let count = i64::from_be_bytes(r.value.unwrap().try_into().unwrap());
            (key, count, r.timestamp)
        })
        .collect();
    assert_eq!(out, expected);
    Ok(())
}

#[test]
fn emit_final_forwards_each_closed_window_once_even_after_a_jump_in_stream_time() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(ms(50)))
        .emit_strategy(EmitStrategy::on_window_close())
        .count()
        .to_stream()
        .to("out");
    let (_, out) = run(builder.build()?, 50, &[("a", 10), ("b", 60), ("a", 210), ("a", 270)])?;
    // b@[50, 100) closes while stream time jumps from 60 to 210, past the store's retention (size plus
    // grace). Kafka Streams without a record cache never emits it (the differential case
    // emit_final_default_retention); this library does.
    assert_eq!(
        out,
        vec![(windowed("a", 0, 50), 1, 10), (windowed("b", 50, 100), 1, 60), (windowed("a", 200, 250), 1, 210)]
    );
    Ok(())
}

/// On the embedded broker, with the wall-clock interval of the setting Kafka Streams names
/// `__emit.interval.ms.kstreams.windowed.aggregation__`: each window is emitted once, when a record
/// closes it, and an open window is not emitted at all.
#[test]
fn emit_final_runs_on_the_embedded_broker() -> Result {
    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::KafkaStreams;
    use kstreams::serde::{StringSerde, TimeWindowedSerde};

    let topology = || -> Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("in")
            .group_by_key()
            .windowed_by(SlidingWindows::of_time_difference_with_no_grace(ms(10)))
            .emit_strategy(EmitStrategy::on_window_close())
            .count()
            .to_stream()
            .to("out");
        Ok(builder.build()?)
    };
    let records = [("a", 10), ("a", 15), ("a", 26), ("a", 40)];
    let broker = EmbeddedBroker::new();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let mut config = StreamsConfig::new("emit-final", "embedded");
    config.set("__emit.interval.ms.kstreams.windowed.aggregation__", "0")?;
    let supplier = std::sync::Arc::new(broker.clone());
    let mut app = KafkaStreams::with_client_supplier(topology()?, config.clone(), supplier.clone())?;
    let mut topics = BrokerTopics::new(supplier, &config);
    for (key, ts) in records {
        topics.send("in", &key.to_string(), &"v".to_string(), ts)?;
    }
    topics.flush()?;
    app.start()?;
    std::thread::sleep(Duration::from_secs(2));
    app.close()?;
    let key_serde = TimeWindowedSerde::new(std::sync::Arc::new(StringSerde), ms(10));
    let out: Vec<(i64, i64, i64)> = topics
        .read_raw("out")?
        .into_iter()
        .map(|r| {
            let key = key_serde.deserialize("out", r.key.as_deref().unwrap()).unwrap();
            (key.window.start, i64::from_be_bytes(r.value.unwrap().try_into().unwrap()), r.timestamp)
        })
        .collect();
    // Kafka Streams' own sequence (difference 10, no grace): A@15 closes [0,10]; A@26 closes [5,15] and
    // [11,21]; A@40 closes [16,26]. [30,40] and [27,37] stay open.
    assert_eq!(out, vec![(0, 1, 10), (5, 2, 15), (11, 1, 15), (16, 1, 26)]);
    Ok(())
}

/// A record at the largest timestamp expires even an empty buffer's minimum (`i64::MAX`): the suppression
/// stops when the buffer is empty instead of looking for more.
#[test]
fn a_record_at_the_end_of_time_empties_the_buffer_and_stops() -> Result {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("prices")
        .suppress(Suppressed::until_time_limit(Duration::ZERO, BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let prices = driver.input_topic::<String, Option<i64>>("prices");
    let out = driver.output_topic::<String, Option<i64>>("out");
    driver.pipe(&prices, "tea".into(), Some(1), 5)?;
    driver.pipe(&prices, "tea".into(), Some(2), i64::MAX)?;
    assert_eq!(driver.read_key_values(&out), vec![("tea".to_string(), Some(1)), ("tea".to_string(), Some(2))]);
    Ok(())
}
