//! Versioned tables in the DSL (Kafka Streams' KIP-914) and the stream-table join's grace period
//! (KIP-923), in the test driver: a table materialized with `Materialized::as_versioned` keeps each key's
//! history, forwards out-of-order updates that the newest-value operators skip, and answers a stream
//! join as of each stream record's time; with a grace period the stream side waits for late table
//! updates. The differential suite (`tests/differential/cases/versioned.json`) checks the same against
//! Kafka Streams record by record; these tests name the behaviours.

use std::sync::Arc;
use std::time::Duration;

use kstreams::dsl::{BufferConfig, Consumed, Grouped, Joined, Materialized, StreamsBuilder, Suppressed};
use kstreams::prelude::*;
use kstreams::serde::{I64Serde, OptionSerde, StringSerde};
use kstreams::store::Stores;

type Error = Box<dyn std::error::Error>;

/// `prices` as a table versioned with `history_ms` of history, in a store of the same name.
fn versioned_prices(builder: &StreamsBuilder, history_ms: u64) -> KTable<String, i64> {
    let supplier = Stores::persistent_versioned_key_value_store("prices", Duration::from_millis(history_ms));
    let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde));
    builder.table_with("prices", consumed, Materialized::as_versioned(supplier))
}

#[test]
fn a_versioned_table_forwards_out_of_order_updates_and_drops_expired_ones() -> Result<(), Error> {
    let builder = StreamsBuilder::new();
    versioned_prices(&builder, 10).to_stream().to("price-updates");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let prices = driver.input_topic::<String, Option<i64>>("prices");
    let updates = driver.output_topic::<String, Option<i64>>("price-updates");
    driver.pipe(&prices, "tea".into(), Some(3), 100)?;
    driver.pipe(&prices, "tea".into(), Some(4), 95)?; // out of order, within the history: kept and forwarded
    driver.pipe(&prices, "tea".into(), Some(5), 80)?; // older than 100 - 10: dropped
    driver.pipe(&prices, "tea".into(), None, 120)?;
    assert_eq!(
        driver.read_records(&updates)?.into_iter().map(|r| (r.value, r.timestamp)).collect::<Vec<_>>(),
        vec![(Some(3), 100), (Some(4), 95), (None, 120)]
    );
    assert_eq!(driver.metrics().dropped_records, 1);
    let store = driver.versioned_store::<String, i64>("prices").expect("the table's versioned store");
    assert_eq!(store.get(&"tea".to_string())?, None);
    let at_110 = store.get_as_of(&"tea".to_string(), 110)?.expect("a version at 110");
    assert_eq!((at_110.value, at_110.timestamp, at_110.valid_to), (3, 100, Some(120)));
    // 97 is older than the newest timestamp (120) minus the history: only the newest version could answer.
    assert_eq!(store.get_as_of(&"tea".to_string(), 97)?.map(|r| r.value), None);
    Ok(())
}

#[test]
fn a_stream_joins_a_versioned_table_as_of_each_record_s_time() -> Result<(), Error> {
    let builder = StreamsBuilder::new();
    let prices = versioned_prices(&builder, 1_000);
    let orders = builder.stream::<String, i64>("orders");
    orders.join(&prices, |quantity, price| quantity * price).to("totals");
    orders.left_join(&prices, |quantity, price| price.map_or(-quantity, |p| quantity * p)).to("left-totals");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let (prices_in, orders_in) =
        (driver.input_topic::<String, Option<i64>>("prices"), driver.input_topic::<String, i64>("orders"));
    let totals = driver.output_topic::<String, i64>("totals");
    let left = driver.output_topic::<String, i64>("left-totals");
    driver.pipe(&prices_in, "tea".into(), Some(3), 100)?;
    driver.pipe(&prices_in, "tea".into(), Some(5), 200)?;
    driver.pipe(&orders_in, "tea".into(), 2i64, 150)?; // the price at 150 was 3
    driver.pipe(&orders_in, "tea".into(), 2i64, 250)?;
    driver.pipe(&orders_in, "tea".into(), 2i64, 50)?; // before the first price
    assert_eq!(driver.read_key_values(&totals).into_iter().map(|(_, v)| v).collect::<Vec<_>>(), vec![6, 10]);
    assert_eq!(driver.read_key_values(&left).into_iter().map(|(_, v)| v).collect::<Vec<_>>(), vec![6, 10, -2]);
    Ok(())
}

#[test]
fn a_map_values_of_a_versioned_table_is_read_as_of_the_record_s_time_unless_it_has_a_store_of_its_own(
) -> Result<(), Error> {
    let builder = StreamsBuilder::new();
    let prices = versioned_prices(&builder, 1_000);
    let doubled = prices.map_values(|_, p| p * 2);
    let stored = prices.map_values_with(|_, p| p * 2, Materialized::as_store("doubled-latest"));
    let orders = builder.stream::<String, i64>("orders");
    orders.join(&doubled, |_, p| *p).to("as-of");
    orders.join(&stored, |_, p| *p).to("latest");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let (prices_in, orders_in) =
        (driver.input_topic::<String, Option<i64>>("prices"), driver.input_topic::<String, i64>("orders"));
    let (as_of, latest) = (driver.output_topic::<String, i64>("as-of"), driver.output_topic::<String, i64>("latest"));
    driver.pipe(&prices_in, "tea".into(), Some(3), 100)?;
    driver.pipe(&prices_in, "tea".into(), Some(5), 200)?;
    driver.pipe(&orders_in, "tea".into(), 1i64, 150)?;
    assert_eq!(driver.read_key_values(&as_of), vec![("tea".to_string(), 6)]);
    assert_eq!(driver.read_key_values(&latest), vec![("tea".to_string(), 10)]);
    Ok(())
}

#[test]
fn group_by_and_table_joins_skip_out_of_order_updates_of_a_versioned_table() -> Result<(), Error> {
    let builder = StreamsBuilder::new();
    let prices = versioned_prices(&builder, 1_000);
    let grouped = Grouped::with(Arc::new(StringSerde), Arc::new(I64Serde));
    prices.group_by_with(|_, p| ("all".to_string(), *p), grouped).count().to_stream().to("counts");
    let names = builder.table::<String, String>("names");
    prices.join(&names, |p, n| format!("{n}:{p}")).to_stream().to("joined");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let prices_in = driver.input_topic::<String, Option<i64>>("prices");
    let names_in = driver.input_topic::<String, Option<String>>("names");
    let counts = driver.output_topic::<String, Option<i64>>("counts");
    let joined = driver.output_topic::<String, Option<String>>("joined");
    driver.pipe(&names_in, "tea".into(), Some("Tea".into()), 0)?;
    driver.pipe(&prices_in, "tea".into(), Some(3), 100)?;
    driver.pipe(&prices_in, "tea".into(), Some(4), 90)?; // out of order: skipped by both
    driver.pipe(&prices_in, "coffee".into(), Some(7), 110)?;
    let counts: Vec<Option<i64>> = driver.read_key_values(&counts).into_iter().map(|(_, v)| v).collect();
    assert_eq!(counts, vec![Some(1), Some(2)]);
    assert_eq!(driver.read_key_values(&joined), vec![("tea".to_string(), Some("Tea:3".to_string()))]);
    assert_eq!(driver.metrics().dropped_records, 1, "the join counts what it skips; group_by does not");
    Ok(())
}

#[test]
fn the_grace_period_holds_stream_records_until_late_table_updates_arrive() -> Result<(), Error> {
    let builder = StreamsBuilder::new();
    let prices = versioned_prices(&builder, 100);
    let joined = Joined::as_name("priced").with_grace_period(Duration::from_millis(20));
    builder.stream::<String, i64>("orders").join_with(&prices, |q, p| q * p, joined).to("totals");
    let topology = builder.build()?;
    let described = topology.describe().to_string();
    assert!(described.contains("priced-Buffer"), "{described}");
    let mut driver = TopologyTestDriver::new(topology)?;
    let (prices_in, orders_in) =
        (driver.input_topic::<String, Option<i64>>("prices"), driver.input_topic::<String, i64>("orders"));
    let totals = driver.output_topic::<String, i64>("totals");
    driver.pipe(&orders_in, "tea".into(), 1i64, 100)?; // waits until the stream reaches 120
    driver.pipe(&orders_in, "coffee".into(), 1i64, 100)?;
    driver.pipe(&prices_in, "tea".into(), Some(3), 90)?; // late, still seen by the order at 100
    driver.pipe(&prices_in, "coffee".into(), Some(7), 95)?;
    driver.pipe(&orders_in, "tea".into(), 2i64, 110)?;
    assert!(driver.read_records(&totals)?.is_empty());
    driver.pipe(&orders_in, "tea".into(), 10i64, 130)?; // 130 - 20 = 110: the three records leave
    let out: Vec<(String, i64, i64)> =
        driver.read_records(&totals)?.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
    // By timestamp, then key bytes: coffee before tea at 100.
    assert_eq!(out, vec![("coffee".to_string(), 7, 100), ("tea".to_string(), 3, 100), ("tea".to_string(), 6, 110)]);
    driver.pipe(&orders_in, "tea".into(), 100i64, 105)?; // older than 130 - 20: joins at once
    assert_eq!(driver.read_key_values(&totals), vec![("tea".to_string(), 300)]);
    Ok(())
}

#[test]
fn a_grace_period_needs_a_versioned_table_with_enough_history() {
    let build = |history: Option<u64>, grace: u64| {
        let builder = StreamsBuilder::new();
        let prices = match history {
            Some(history) => versioned_prices(&builder, history),
            None => builder.table::<String, i64>("prices"),
        };
        let joined = Joined::default().with_grace_period(Duration::from_millis(grace));
        builder.stream::<String, i64>("orders").join_with(&prices, |q, p| q * p, joined).to("totals");
        builder.build().map(|_| ()).map_err(|e| e.to_string())
    };
    let error = build(None, 10).unwrap_err();
    assert!(error.contains("KTable must be versioned to use a grace period in a stream table join."), "{error}");
    let error = build(Some(10), 11).unwrap_err();
    assert!(error.contains("History retention must be at least grace period."), "{error}");
    assert_eq!(build(Some(10), 10), Ok(()));
}

#[test]
fn a_versioned_table_cannot_be_suppressed_nor_global() {
    let builder = StreamsBuilder::new();
    let prices = versioned_prices(&builder, 100);
    prices
        .filter(|_, p| *p > 0)
        .suppress(Suppressed::until_time_limit(Duration::from_millis(10), BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let error = builder.build().map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("suppress() is only supported for non-versioned KTables"), "{error}");

    let builder = StreamsBuilder::new();
    let supplier = Stores::persistent_versioned_key_value_store("rates", Duration::from_millis(10));
    let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde));
    let _ = builder.global_table_with("rates", consumed, Materialized::as_versioned(supplier));
    let error = builder.build().map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("Invalid topology: GlobalTables cannot be versioned."), "{error}");
}

#[test]
fn a_left_join_with_a_grace_period_joins_a_record_without_a_key_at_once() -> Result<(), Error> {
    // Kafka Streams fails the task on such a record (its buffer refuses a null key).
    let keys: Arc<OptionSerde<String>> = Arc::new(OptionSerde::new(Arc::new(StringSerde)));
    let builder = StreamsBuilder::new();
    let history = Stores::persistent_versioned_key_value_store("prices", Duration::from_millis(100));
    let prices = builder.table_with(
        "prices",
        Consumed::with(keys.clone(), Arc::new(I64Serde)),
        Materialized::as_versioned(history),
    );
    let joined = Joined::default().with_grace_period(Duration::from_millis(20));
    builder
        .stream_with::<Option<String>, i64>("orders", Consumed::with(keys.clone(), Arc::new(I64Serde)))
        .left_join_with(&prices, |q, p: Option<&i64>| p.map_or(-q, |p| q * p), joined)
        .to("totals");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let orders = driver.input_topic_with("orders", keys.clone(), Arc::new(I64Serde));
    let totals = driver.output_topic_with("totals", keys, Arc::new(I64Serde));
    driver.pipe(&orders, Some("tea".to_string()), 2, 100)?; // waits
    driver.pipe(&orders, None, 5, 100)?; // no key: joins at once
    assert_eq!(driver.read_key_values(&totals), vec![(None, -5)]);
    Ok(())
}
