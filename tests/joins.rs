//! Joins with tables in the test driver, beyond what the differential suite compares with Kafka Streams:
//! the tables a join cannot read by key are build errors naming the join, and a table's updates waiting
//! in the record cache are what a join reads.

use std::time::Duration;

use kstreams::dsl::{TimeWindows, ValueTransformerWithKey};
use kstreams::prelude::*;
use kstreams::processor::ProcessingContext;

struct Upper;
impl ValueTransformerWithKey<String, String, String> for Upper {
    fn transform(
        &mut self,
        _ctx: &mut ProcessingContext<'_>,
        _key: &String,
        value: Option<&String>,
    ) -> Result<Option<String>, StreamsError> {
        Ok(value.map(|v| v.to_uppercase()))
    }
}

/// An unmaterialized `transform_values` keeps no store and its transformer may keep state of its own, so
/// a join cannot look it up; materialized, it can.
#[test]
fn a_join_needs_a_table_it_can_read_by_key() -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let upper = builder.table::<String, String>("names").transform_values(|| Upper, &[]);
    builder.stream::<String, String>("orders").join(&upper, |order, name| format!("{name}:{order}")).to("out");
    let Err(error) = builder.build() else { panic!("an unreadable table") };
    assert!(error.to_string().contains("the join `KSTREAM-JOIN-0000000005` cannot be built"), "{error}");
    assert!(error.to_string().contains("cannot be looked up by key"), "{error}");

    let builder = StreamsBuilder::new();
    let upper = builder.table::<String, String>("names").transform_values_with(
        || Upper,
        Materialized::as_store("upper-names"),
        &[],
    );
    builder.stream::<String, String>("orders").join(&upper, |order, name| format!("{name}:{order}")).to("out");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let (names, orders) =
        (driver.input_topic::<String, String>("names"), driver.input_topic::<String, String>("orders"));
    driver.pipe(&names, "c1".into(), "ada".into(), 0)?;
    driver.pipe(&orders, "c1".into(), "tea".into(), 1)?;
    let out = driver.output_topic::<String, String>("out");
    assert_eq!(driver.read_key_values(&out), vec![("c1".to_string(), "ADA:tea".to_string())]);
    Ok(())
}

/// A windowed table is not read by key: joining it is a build error.
#[test]
fn a_windowed_table_cannot_be_joined() {
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream::<String, String>("clicks")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
        .count();
    let other = builder
        .stream::<String, String>("clicks")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
        .count();
    counts.join(&other, |a, b| a + b).to_stream().to("out");
    let Err(error) = builder.build() else { panic!("windowed tables") };
    assert!(error.to_string().contains("cannot be looked up by key"), "{error}");
}

/// With the record cache on, a table's latest value may still be in the cache when a record of the
/// stream arrives: the join reads it there (the table's processor and the join share the cache).
#[test]
fn a_join_reads_the_table_s_updates_in_the_record_cache() -> Result<(), Box<dyn std::error::Error>> {
    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::KafkaStreams;
    use kstreams::testing::BrokerTopics;

    let topology = || -> Result<Topology, Box<dyn std::error::Error>> {
        let builder = StreamsBuilder::new();
        let names = builder.table::<String, String>("names");
        builder.stream::<String, String>("orders").join(&names, |order, name| format!("{name}:{order}")).to("out");
        Ok(builder.build()?)
    };
    let broker = EmbeddedBroker::new();
    for topic in ["names", "orders", "out"] {
        broker.create_topic(topic, 1);
    }
    let mut config = StreamsConfig::new("join-cache", "embedded");
    // One commit, at the close: the table's updates wait in the cache until then.
    config.set("commit.interval.ms", "60000")?;
    config.set("statestore.cache.max.bytes", "1048576")?;
    let supplier = std::sync::Arc::new(broker.clone());
    let mut topics = BrokerTopics::new(supplier.clone(), &config);
    topics.send("names", &"c1".to_string(), &"ada".to_string(), 0)?;
    topics.send("names", &"c1".to_string(), &"ada lovelace".to_string(), 1)?;
    topics.send("orders", &"c1".to_string(), &"tea".to_string(), 2)?;
    topics.flush()?;
    let mut app = KafkaStreams::with_client_supplier(topology()?, config.clone(), supplier)?;
    app.start()?;
    std::thread::sleep(Duration::from_secs(2));
    app.close()?;
    let out: Vec<String> =
        topics.read_raw("out")?.into_iter().map(|r| String::from_utf8(r.value.unwrap_or_default()).unwrap()).collect();
    assert_eq!(out, vec!["ada lovelace:tea".to_string()]);
    Ok(())
}

/// A left join's records still waiting for a partner are kept in a logged store: an instance that
/// restores it into a new state directory emits them, joined with nothing, once their window has closed
/// (as Kafka Streams does, whose first look at the store after a start is not skipped).
#[test]
fn records_waiting_for_a_partner_survive_a_restart() -> Result<(), Box<dyn std::error::Error>> {
    use kstreams::config::StreamsConfig;
    use kstreams::dsl::JoinWindows;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::runtime::KafkaStreams;
    use kstreams::testing::BrokerTopics;

    let topology = || -> Result<Topology, Box<dyn std::error::Error>> {
        let builder = StreamsBuilder::new();
        let payments = builder.stream::<String, String>("payments");
        builder
            .stream::<String, String>("orders")
            .left_join_stream(
                &payments,
                |order, payment| format!("{order}:{}", payment.map_or("unpaid", String::as_str)),
                JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(1)),
            )
            .to("out");
        Ok(builder.build()?)
    };
    let broker = EmbeddedBroker::new();
    for topic in ["orders", "payments", "out"] {
        broker.create_topic(topic, 1);
    }
    let supplier = std::sync::Arc::new(broker.clone());
    let run = |state: &std::path::Path| -> Result<(), Box<dyn std::error::Error>> {
        let mut config = StreamsConfig::new("waiting-join", "embedded");
        config.set("processing.guarantee", "exactly_once_v2")?;
        config.state_dir = state.to_path_buf();
        let mut app = KafkaStreams::with_client_supplier(topology()?, config, supplier.clone())?;
        app.start()?;
        std::thread::sleep(Duration::from_secs(2));
        app.close()?;
        Ok(())
    };
    let config = StreamsConfig::new("waiting-join", "embedded");
    let mut topics = BrokerTopics::new(supplier.clone(), &config);
    topics.send("orders", &"o1".to_string(), &"tea".to_string(), 0)?;
    topics.flush()?;
    let (first, second) = (tempfile::tempdir()?, tempfile::tempdir()?);
    run(first.path())?; // o1 waits in the join's store, logged to its changelog
    topics.send("orders", &"o2".to_string(), &"jam".to_string(), 100_000)?;
    topics.flush()?;
    run(second.path())?; // restored from the changelog; o2 moves stream time past o1's window
    let out: Vec<String> =
        topics.read_raw("out")?.into_iter().map(|r| String::from_utf8(r.value.unwrap_or_default()).unwrap()).collect();
    assert_eq!(out, vec!["tea:unpaid".to_string()]);
    Ok(())
}

/// `StreamJoined`'s store suppliers are checked as Kafka Streams checks them: duplicates kept, the
/// windows' size and retention, two different names; each mistake is a build error naming the store.
#[test]
fn a_join_s_store_suppliers_must_fit_its_windows() -> Result<(), Box<dyn std::error::Error>> {
    use kstreams::dsl::{JoinWindows, StreamJoined};
    use kstreams::store::{Stores, WindowBytesStoreSupplier};
    let ms = Duration::from_millis;
    let windows = JoinWindows::of_time_difference_and_grace(ms(50), ms(20));
    let build = |this: WindowBytesStoreSupplier, other: WindowBytesStoreSupplier| {
        let builder = StreamsBuilder::new();
        let right = builder.stream::<String, String>("right");
        let joined = StreamJoined::with_store_suppliers(this, other);
        builder
            .stream::<String, String>("left")
            .join_stream_with(&right, |l, r| format!("{l}{r}"), windows, joined)
            .to("out");
        builder.build().map(drop).map_err(|e| e.to_string())
    };
    let fits = |name: &str| Stores::in_memory_window_store(name, ms(120), ms(100), true);
    build(fits("a")?, Stores::persistent_window_store("b", ms(120), ms(100), true)?).expect("fits");

    let error = build(Stores::in_memory_window_store("a", ms(120), ms(100), false)?, fits("b")?).unwrap_err();
    assert!(error.contains("`a`") && error.contains("retainDuplicates=true"), "{error}");
    let error = build(fits("a")?, Stores::in_memory_window_store("b", ms(100), ms(100), true)?).unwrap_err();
    assert!(error.contains("`b`") && error.contains("Window settings mismatch"), "{error}");
    let error = build(fits("same")?, fits("same")?).unwrap_err();
    assert!(error.contains("`same`") && error.contains("Both StoreSuppliers have the same name"), "{error}");
    Ok(())
}
