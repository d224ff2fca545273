//! Window stores for the Processor API (Kafka Streams' `WindowStore`), in memory and on RocksDB, through
//! the test driver: point reads, fetches by key and time range (forward and backward), key ranges that do
//! not take in longer keys sharing a prefix, retention, duplicates, and the errors for figures that cannot
//! be used and for a store looked up as the wrong kind.

use std::sync::Arc;
use std::time::Duration;

use kstreams::prelude::*;
use kstreams::serde::{I64Serde, StringSerde};
use kstreams::store::{Stores, WindowBytesStoreSupplier, WindowStore};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MINUTE: Duration = Duration::from_secs(60);

/// A topology whose processor writes each record's value (a number) into window store `w` at the window
/// starting at its timestamp, so that tests fill the store by piping records.
fn topology(supplier: WindowBytesStoreSupplier) -> Result<Topology> {
    struct Put;
    impl Processor<String, i64, String, i64> for Put {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            r: Record<String, i64>,
        ) -> std::result::Result<(), StreamsError> {
            ctx.window_store::<String, i64>("w")?.put(&r.key, &r.value, r.timestamp)
        }
    }
    let mut topology = Topology::new();
    topology.add_source("in", &["in"], Arc::new(StringSerde), Arc::new(I64Serde))?;
    topology.add_processor("put", || Put, &["in"])?;
    topology
        .add_state_store(Stores::window_store_builder(supplier, Arc::new(StringSerde), Arc::new(I64Serde)), &["put"])?;
    Ok(topology)
}

fn suppliers(retention: Duration, size: Duration, duplicates: bool) -> Vec<WindowBytesStoreSupplier> {
    vec![
        Stores::in_memory_window_store("w", retention, size, duplicates).unwrap(),
        Stores::persistent_window_store("w", retention, size, duplicates).unwrap(),
    ]
}

fn filled(supplier: WindowBytesStoreSupplier, records: &[(&str, i64, i64)]) -> Result<TopologyTestDriver> {
    let mut driver = TopologyTestDriver::new(topology(supplier)?)?;
    let input = driver.input_topic::<String, i64>("in");
    for (key, value, start) in records {
        driver.pipe(&input, key.to_string(), *value, *start)?;
    }
    Ok(driver)
}

fn store(driver: &mut TopologyTestDriver) -> &mut WindowStore<String, i64> {
    driver.window_store::<String, i64>("w").expect("the window store")
}

fn key(k: &str) -> String {
    k.to_string()
}

#[test]
fn fetches_by_key_and_time_forward_and_backward() -> Result {
    let records = [("a", 1, 0), ("ab", 2, 10), ("a", 3, 10), ("b", 4, 20), ("a", 5, 20), ("a", 6, 30)];
    for supplier in suppliers(MINUTE * 10, Duration::from_millis(10), false) {
        let label = format!("{supplier:?}");
        let mut driver = filled(supplier, &records)?;
        let store = store(&mut driver);
        assert_eq!(store.get(&key("a"), 10)?, Some(3), "{label}");
        assert_eq!(store.get(&key("a"), 15)?, None);
        let fetched: Vec<(i64, i64)> = store.fetch(&key("a"), 10, 20)?.collect::<std::result::Result<_, _>>()?;
        assert_eq!(fetched, vec![(10, 3), (20, 5)], "only `a`'s windows, not `ab`'s, whose bytes start alike");
        assert_eq!(store.backward_fetch(&key("a"), 0, 100)?, vec![(30, 6), (20, 5), (10, 3), (0, 1)]);
        let ranged: Vec<(String, i64, i64)> = store
            .fetch_range(&key("a"), &key("ab"), 5, 20)?
            .map(|r| r.map(|(w, v)| (w.key, w.window.start, v)))
            .collect::<std::result::Result<_, _>>()?;
        assert_eq!(ranged, vec![(key("a"), 10, 3), (key("a"), 20, 5), (key("ab"), 10, 2)]);
        let backward: Vec<i64> =
            store.backward_fetch_range(&key("a"), &key("b"), 20, 20)?.into_iter().map(|(_, v)| v).collect();
        assert_eq!(backward, vec![4, 5]);
        let at_20: Vec<i64> =
            store.fetch_all(20, 20)?.map(|r| r.map(|(_, v)| v)).collect::<std::result::Result<_, _>>()?;
        assert_eq!(at_20, vec![5, 4]);
        let all: Vec<(Windowed<String>, i64)> = store.all()?.collect::<std::result::Result<_, _>>()?;
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].0, Windowed::new(key("a"), Window { start: 0, end: 10 }), "ends from the window size");
        assert!(store.fetch(&key("a"), 20, 10)?.next().is_none(), "an empty time range");
    }
    Ok(())
}

#[test]
fn a_key_range_finds_longer_keys_that_sort_among_its_first_key_s_windows() -> Result {
    for supplier in suppliers(MINUTE * 10, Duration::from_millis(10), false) {
        // `a\0`'s stored bytes begin with `a`'s and sort among them (the key, then the start).
        let mut driver = filled(supplier, &[("a", 1, 0), ("a\u{0}", 2, 5), ("b", 3, 7)])?;
        let store = store(&mut driver);
        let ranged: Vec<(String, i64)> = store
            .fetch_range(&key("a"), &key("b"), 5, 100)?
            .map(|r| r.map(|(w, v)| (w.key, v)))
            .collect::<std::result::Result<_, _>>()?;
        assert_eq!(ranged, vec![(key("a\u{0}"), 2), (key("b"), 3)]);
    }
    Ok(())
}

#[test]
fn windows_past_the_retention_are_gone_and_nulls_delete() -> Result {
    for supplier in suppliers(MINUTE * 2, MINUTE, false) {
        let m = 60_000;
        let mut driver = filled(supplier, &[("a", 1, 0), ("a", 2, m), ("a", 3, 2 * m + 1)])?;
        let starts = |driver: &mut TopologyTestDriver| -> Result<Vec<i64>> {
            Ok(store(driver).all()?.map(|r| r.map(|(w, _)| w.window.start)).collect::<std::result::Result<_, _>>()?)
        };
        // The latest start is 2 min + 1 ms: the window at 0 is past the 2 minutes kept.
        assert_eq!(starts(&mut driver)?, vec![m, 2 * m + 1]);
        assert_eq!(store(&mut driver).get(&key("a"), 0)?, None);
        store(&mut driver).put(&key("a"), &9, 2 * m + 1)?;
        assert_eq!(store(&mut driver).get(&key("a"), 2 * m + 1)?, Some(9), "a put replaces");
    }
    let builder = Stores::window_store_builder(
        Stores::in_memory_window_store("opt", MINUTE, MINUTE, false)?,
        Arc::new(StringSerde),
        Option::<i64>::default_serde(),
    );
    let mut topology = Topology::new();
    topology.add_source("in", &["in"], Arc::new(StringSerde), Arc::new(I64Serde))?;
    struct Nothing;
    impl Processor<String, i64, String, i64> for Nothing {
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, String, i64>,
            _: Record<String, i64>,
        ) -> std::result::Result<(), StreamsError> {
            Ok(())
        }
    }
    topology.add_processor("p", || Nothing, &["in"])?;
    topology.add_state_store(builder, &["p"])?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let store = driver.window_store::<String, Option<i64>>("opt").expect("the store");
    store.put(&key("a"), &Some(1), 0)?;
    store.put(&key("a"), &None, 0)?;
    assert_eq!(store.get(&key("a"), 0)?, None, "a null value deletes the window");
    Ok(())
}

#[test]
fn retained_duplicates_are_all_kept() -> Result {
    for supplier in suppliers(MINUTE, Duration::from_millis(10), true) {
        let mut driver = filled(supplier, &[("a", 1, 0), ("a", 2, 0), ("a", 3, 10)])?;
        let fetched: Vec<(i64, i64)> =
            store(&mut driver).fetch(&key("a"), 0, 10)?.collect::<std::result::Result<_, _>>()?;
        assert_eq!(fetched, vec![(0, 1), (0, 2), (10, 3)]);
    }
    Ok(())
}

#[test]
fn unusable_figures_and_the_wrong_kind_of_store_are_errors() -> Result {
    let error = Stores::in_memory_window_store("w", Duration::from_secs(1), Duration::from_secs(2), false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "state store `w` cannot be built: The retention period of the window store must be no smaller than its window size. Got size=[2000], retention=[1000]"
    );

    struct AsKeyValue;
    impl Processor<String, i64, String, i64> for AsKeyValue {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            _: Record<String, i64>,
        ) -> std::result::Result<(), StreamsError> {
            ctx.store::<Windowed<String>, i64>("w").map(|_| ())
        }
    }
    let mut topology = Topology::new();
    topology.add_source("in", &["in"], Arc::new(StringSerde), Arc::new(I64Serde))?;
    topology.add_processor("p", || AsKeyValue, &["in"])?;
    let supplier = Stores::in_memory_window_store("w", MINUTE, MINUTE, false)?;
    topology
        .add_state_store(Stores::window_store_builder(supplier, Arc::new(StringSerde), Arc::new(I64Serde)), &["p"])?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, i64>("in");
    let error = driver.pipe(&input, key("a"), 1, 0).unwrap_err();
    let error: Vec<String> =
        std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    let error = error.join(": ");
    assert!(error.contains("the store holds (a window store of alloc::string::String, i64)"), "{error}");
    Ok(())
}
