//! Session stores for the Processor API (Kafka Streams' `SessionStore`), in memory and on RocksDB,
//! through the test driver: finding the sessions a record would touch, point reads, removal, key ranges
//! that do not take in longer keys sharing a prefix, and retention.

use std::sync::Arc;
use std::time::Duration;

use kstreams::prelude::*;
use kstreams::serde::{I64Serde, StringSerde};
use kstreams::store::{SessionBytesStoreSupplier, SessionStore, Stores};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A topology whose processor puts, for each record `key = start` at time `end`, the session
/// `key [start, end]` with the aggregate `end - start` into session store `s`.
fn topology(supplier: SessionBytesStoreSupplier) -> Result<Topology> {
    struct Put;
    impl Processor<String, i64, String, i64> for Put {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            r: Record<String, i64>,
        ) -> std::result::Result<(), StreamsError> {
            let session = Windowed::new(r.key, Window { start: r.value, end: r.timestamp });
            ctx.session_store::<String, i64>("s")?.put(&session, &(r.timestamp - r.value))
        }
    }
    let mut topology = Topology::new();
    topology.add_source("in", &["in"], Arc::new(StringSerde), Arc::new(I64Serde))?;
    topology.add_processor("put", || Put, &["in"])?;
    topology.add_state_store(
        Stores::session_store_builder(supplier, Arc::new(StringSerde), Arc::new(I64Serde)),
        &["put"],
    )?;
    Ok(topology)
}

fn suppliers(retention: Duration) -> Vec<SessionBytesStoreSupplier> {
    vec![
        Stores::in_memory_session_store("s", retention).unwrap(),
        Stores::persistent_session_store("s", retention).unwrap(),
    ]
}

/// A driver whose store holds `(key, start, end)` sessions, put in that order.
fn filled(supplier: SessionBytesStoreSupplier, sessions: &[(&str, i64, i64)]) -> Result<TopologyTestDriver> {
    let mut driver = TopologyTestDriver::new(topology(supplier)?)?;
    let input = driver.input_topic::<String, i64>("in");
    for (key, start, end) in sessions {
        driver.pipe(&input, key.to_string(), *start, *end)?;
    }
    Ok(driver)
}

fn store(driver: &mut TopologyTestDriver) -> &mut SessionStore<String, i64> {
    driver.session_store::<String, i64>("s").expect("the session store")
}

type Found = Vec<(String, i64, i64)>;

fn found(
    sessions: impl IntoIterator<Item = std::result::Result<(Windowed<String>, i64), StreamsError>>,
) -> Result<Found> {
    let mut out = Vec::new();
    for session in sessions {
        let (w, _) = session?;
        out.push((w.key, w.window.start, w.window.end));
    }
    Ok(out)
}

fn s(key: &str, start: i64, end: i64) -> (String, i64, i64) {
    (key.to_string(), start, end)
}

#[test]
fn sessions_are_found_as_kafka_streams_finds_them() -> Result {
    for supplier in suppliers(Duration::from_secs(3600)) {
        let sessions = [("a", 0, 10), ("a", 20, 30), ("a", 50, 50), ("ab", 5, 5), ("b", 12, 18)];
        let mut driver = filled(supplier, &sessions)?;
        let store = store(&mut driver);
        let a = "a".to_string();
        // Ending at or after 10 and starting at or before 20: what a record between 10 and 20 would touch.
        assert_eq!(found(store.find_sessions(&a, 10, 20)?)?, vec![s("a", 0, 10), s("a", 20, 30)]);
        assert_eq!(
            found(store.backward_find_sessions(&a, 10, 20)?.into_iter().map(Ok))?,
            vec![s("a", 20, 30), s("a", 0, 10)]
        );
        assert_eq!(found(store.find_sessions(&a, 31, 100)?)?, vec![s("a", 50, 50)]);
        // `ab` shares a's first byte and is not a's.
        assert_eq!(found(store.fetch(&a)?)?, vec![s("a", 0, 10), s("a", 20, 30), s("a", 50, 50)]);
        assert_eq!(found(store.backward_fetch(&a)?.into_iter().map(Ok))?.first(), Some(&s("a", 50, 50)));
        let ab = "ab".to_string();
        assert_eq!(found(store.fetch_range(&a, &ab)?)?.len(), 4);
        assert_eq!(
            found(store.find_sessions_range(&ab, &"b".to_string(), 0, 12)?)?,
            vec![s("ab", 5, 5), s("b", 12, 18)]
        );
        assert_eq!(store.fetch_session(&a, 20, 30)?, Some(10));
        assert_eq!(store.fetch_session(&a, 20, 31)?, None);
        store.remove(&Windowed::new(a.clone(), Window { start: 20, end: 30 }))?;
        assert_eq!(found(store.fetch(&a)?)?, vec![s("a", 0, 10), s("a", 50, 50)]);
        assert_eq!(found(store.all()?)?.len(), 4, "{}", store.name());
    }
    Ok(())
}

#[test]
fn a_key_range_finds_longer_keys_that_sort_among_its_first_key_s_sessions() -> Result {
    for supplier in suppliers(Duration::from_secs(3600)) {
        // `a\0`'s stored bytes begin with `a`'s and sort among them (the key, then the end; here before
        // them): a range from `a` must not start at `a`'s earliest end and pass over it.
        let mut driver = filled(supplier, &[("a", 0, 10), ("a\u{0}", 5, 5), ("b", 7, 7)])?;
        let store = store(&mut driver);
        let range = store.find_sessions_range(&"a".to_string(), &"b".to_string(), 5, 100)?;
        assert_eq!(found(range)?, vec![s("a\u{0}", 5, 5), s("a", 0, 10), s("b", 7, 7)]);
    }
    Ok(())
}

#[test]
fn sessions_past_the_retention_are_gone() -> Result {
    for supplier in suppliers(Duration::from_millis(100)) {
        let mut driver = filled(supplier, &[("a", 0, 10), ("a", 95, 110), ("b", 200, 200)])?;
        let store = store(&mut driver);
        // The latest end is 200: sessions that ended at or before 100 are hidden.
        assert_eq!(found(store.fetch(&"a".to_string())?)?, vec![s("a", 95, 110)]);
        assert_eq!(store.fetch_session(&"a".to_string(), 0, 10)?, None);
    }
    Ok(())
}

#[test]
fn a_session_store_looked_up_as_a_window_store_is_an_error() -> Result {
    struct Wrong;
    impl Processor<String, i64, String, i64> for Wrong {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, i64>,
            _: Record<String, i64>,
        ) -> std::result::Result<(), StreamsError> {
            ctx.window_store::<String, i64>("s").map(|_| ())
        }
    }
    let mut topology = Topology::new();
    topology.add_source("in", &["in"], Arc::new(StringSerde), Arc::new(I64Serde))?;
    topology.add_processor("wrong", || Wrong, &["in"])?;
    let supplier = Stores::in_memory_session_store("s", Duration::from_secs(60))?;
    topology.add_state_store(
        Stores::session_store_builder(supplier, Arc::new(StringSerde), Arc::new(I64Serde)),
        &["wrong"],
    )?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, i64>("in");
    let error = driver.pipe(&input, "a".into(), 0, 0).unwrap_err();
    let error: Vec<String> =
        std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    let error = error.join(": ");
    assert!(error.contains("the store holds (a session store of alloc::string::String, i64)"), "{error}");
    Ok(())
}
