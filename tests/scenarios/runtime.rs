//! The runtime's behaviour scenarios, run against the real Kafka (tests/kafka_runtime.rs) and against
//! the embedded broker (tests/embedded_runtime.rs): one suite, so the two brokers cannot drift apart.
//! Each scenario uses the broker the calling test chose through `kafka::use_embedded`.

use std::collections::BTreeMap;
use std::time::Duration;

use kstreams::config::GroupAssignor;
use kstreams::prelude::*;
use kstreams::runtime::State;
use kstreams::serde::{from_bytes, to_bytes, DefaultSerde};
use serde::{Deserialize, Serialize};

use crate::kafka;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// Per-customer order totals: the topology both order-totals tests run.
fn order_totals_topology(orders: &str, totals: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, Order>(orders)
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce(|a, b| a + b)
        .to_stream()
        .to(totals);
    Ok(builder.build()?)
}

pub(crate) fn order_totals_end_to_end_match_a_plain_loop() -> anyhow::Result<()> {
    let orders = kafka::unique("orders");
    let totals = kafka::unique("customer-totals");
    kafka::create_topics(&[(&orders, 4), (&totals, 4)]);

    // Input: 2,000 orders over 20 customers; every 7th is invalid.
    let mut expected_updates: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut running: BTreeMap<i64, f64> = BTreeMap::new();
    let mut input = Vec::new();
    for order_id in 0..2_000u64 {
        let customer_id = (order_id * 7919 % 20) as i64;
        let total_value = if order_id % 7 == 0 { -1.0 } else { (order_id % 100) as f64 + 0.5 };
        let order = Order { order_id, customer_id, total_value };
        let key = to_bytes(&*i64::default_serde(), &orders, &customer_id)?;
        let value = to_bytes(&*Order::default_serde(), &orders, &order)?;
        input.push((key, value));
        if total_value > 0.0 {
            let total = running.entry(customer_id).or_insert(0.0);
            *total += total_value;
            expected_updates.entry(customer_id).or_default().push(*total);
        }
    }
    let expected_count: usize = expected_updates.values().map(Vec::len).sum();
    kafka::produce(&orders, input);

    let mut app =
        kafka::streams(order_totals_topology(&orders, &totals)?, kafka::config(&kafka::unique("order-totals")))?;
    app.start()?;
    assert!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never reached RUNNING: {:?}", app.state());

    let records = kafka::consume_until(&totals, Duration::from_secs(60), |r| r.len() >= expected_count);
    app.close()?;
    assert_eq!(app.state(), State::NotRunning);

    let mut actual_updates: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for r in &records {
        let key = from_bytes(&*i64::default_serde(), &totals, r.key.as_deref())?.expect("keyed");
        let value =
            from_bytes(&*<Option<f64>>::default_serde(), &totals, r.value.as_deref())?.flatten().expect("a total");
        actual_updates.entry(key).or_default().push(value);
    }
    assert_eq!(records.len(), expected_count, "every update, once");
    assert_eq!(actual_updates, expected_updates, "per customer, every running total in order");
    assert_eq!(app.metrics().processed_records, 2_000);
    Ok(())
}

fn decode_i64(topic: &str, bytes: Option<&[u8]>) -> i64 {
    from_bytes(&*i64::default_serde(), topic, bytes).unwrap().expect("not null")
}

fn decode_string(topic: &str, bytes: Option<&[u8]>) -> String {
    from_bytes(&*String::default_serde(), topic, bytes).unwrap().expect("not null")
}

/// select_key then group_by_key: records go through `<app>-…-repartition` and are counted per word; what
/// the application has consumed and committed of the repartition topic is deleted from it.
pub(crate) fn repartition_then_count_end_to_end() -> anyhow::Result<()> {
    let lines = kafka::unique("lines");
    let counts = kafka::unique("word-counts");
    kafka::create_topics(&[(&lines, 3), (&counts, 3)]);
    let words = ["apple", "banana", "cherry", "date", "elder"];
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut input = Vec::new();
    for i in 0..600usize {
        let word = words[(i * 31) % words.len()];
        *expected.entry(word.to_string()).or_insert(0) += 1;
        // Keys are spread on purpose: the count must regroup by word.
        input.push((Some(format!("line-{i}").into_bytes()), Some(word.as_bytes().to_vec())));
    }
    kafka::produce(&lines, input);

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&lines)
        .select_key(|_, word| word.clone())
        .group_by_key()
        .count()
        .to_stream()
        .to(&counts);
    let app_id = kafka::unique("word-count");
    let mut config = kafka::config(&app_id);
    config.repartition_purge_interval = Duration::from_millis(200);
    let mut app = kafka::streams(builder.build()?, config)?;
    app.start()?;
    let repartition = format!("{app_id}-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition");
    let partitions = kafka::admin().partition_counts(std::slice::from_ref(&repartition))?;
    assert_eq!(partitions[&repartition], Some(3), "repartition topic created with the source's partition count");

    let records = kafka::consume_until(&counts, Duration::from_secs(60), |r| r.len() >= 600);
    // Purged: every partition's log starts where it ends, and all 600 records went through it.
    let mut reader = kafka::supplier().restore_consumer(&kafka::config(&kafka::unique("watermarks")), "watermarks")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let watermarks = loop {
        let watermarks: Vec<(i64, i64)> = (0..3)
            .map(|p| reader.watermarks(&kstreams::client::TopicPartition::new(&repartition, p)))
            .collect::<Result<_, _>>()?;
        let total: i64 = watermarks.iter().map(|(_, high)| high).sum();
        if (total == 600 && watermarks.iter().all(|(low, high)| low == high)) || std::time::Instant::now() > deadline {
            break watermarks;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    app.close()?;
    assert!(watermarks.iter().all(|(low, high)| low == high), "repartition topic not purged: {watermarks:?}");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for r in &records {
        last.insert(decode_string(&counts, r.key.as_deref()), decode_i64(&counts, r.value.as_deref()));
    }
    assert_eq!(records.len(), 600);
    assert_eq!(last, expected);
    Ok(())
}

fn poison_input(topic: &str) {
    let good = |id: u64| {
        let order = Order { order_id: id, customer_id: 1, total_value: 1.0 };
        to_bytes(&*Order::default_serde(), topic, &order).unwrap()
    };
    let key = to_bytes(&*i64::default_serde(), topic, &1).unwrap();
    kafka::produce(
        topic,
        vec![(key.clone(), good(1)), (key.clone(), Some(b"{ not json".to_vec())), (key.clone(), good(3))],
    );
}

fn values_pipeline(input: &str, output: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder.stream::<i64, Order>(input).map_values(|o| o.order_id as i64).to(output);
    Ok(builder.build()?)
}

pub(crate) fn poison_pill_under_log_and_fail_stops_with_an_error_naming_the_record() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("pp-fail-in"), kafka::unique("pp-fail-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    poison_input(&input);
    let mut app = kafka::streams(values_pipeline(&input, &output)?, kafka::config(&kafka::unique("pp-fail")))?;
    app.start()?;
    assert!(app.wait_for_state(State::Error, Duration::from_secs(60)), "state {:?}", app.state());
    let error = app.take_error().expect("the error is kept");
    assert_eq!(error.to_string(), format!("cannot deserialize the value of the record at {input}-0 offset 1"));
    // What the application reports carries its cause: `{:#}` and `error_chain` print it.
    let chain = kstreams::handler::error_chain(&error);
    assert!(chain.starts_with(&error.to_string()) && chain.contains(": invalid JSON: "), "{chain}");
    assert_eq!(format!("{:#}", anyhow::Error::from(error)), chain);
    app.close()?;
    // The record before the poison pill was processed and committed; nothing after it.
    let out = kafka::consume_until(&output, Duration::from_secs(5), |r| r.len() >= 2);
    assert_eq!(out.len(), 1);
    Ok(())
}

pub(crate) fn poison_pill_under_log_and_continue_is_skipped_and_counted() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("pp-cont-in"), kafka::unique("pp-cont-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    poison_input(&input);
    let mut config = kafka::config(&kafka::unique("pp-cont"));
    config.deserialization_handler = std::sync::Arc::new(kstreams::handler::LogAndContinue);
    let mut app = kafka::streams(values_pipeline(&input, &output)?, config)?;
    app.start()?;
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 2);
    app.close()?;
    let ids: Vec<i64> = out.iter().map(|r| decode_i64(&output, r.value.as_deref())).collect();
    assert_eq!(ids, vec![1, 3]);
    assert_eq!(app.metrics().skipped_records, 1);
    assert_eq!(app.state(), State::NotRunning);
    Ok(())
}

pub(crate) fn poison_pill_under_dead_letter_queue_lands_in_the_dlq_topic() -> anyhow::Result<()> {
    let (input, output, dlq) = (kafka::unique("pp-dlq-in"), kafka::unique("pp-dlq-out"), kafka::unique("pp-dlq"));
    kafka::create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    poison_input(&input);
    let mut config = kafka::config(&kafka::unique("pp-dlq-app"));
    config.deserialization_handler = std::sync::Arc::new(kstreams::handler::DeadLetterQueue::new(dlq.clone()));
    let mut app = kafka::streams(values_pipeline(&input, &output)?, config)?;
    app.start()?;
    let dead = kafka::consume_until(&dlq, Duration::from_secs(60), |r| !r.is_empty());
    let out = kafka::consume_until(&output, Duration::from_secs(30), |r| r.len() >= 2);
    app.close()?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"{ not json"[..]));
    let header = |name| dead[0].headers.last(name).flatten().map(|v| String::from_utf8_lossy(v).to_string());
    assert_eq!(header("__streams.errors.topic"), Some(input.clone()));
    assert_eq!(header("__streams.errors.offset").as_deref(), Some("1"));
    assert_eq!(out.len(), 2);
    Ok(())
}

pub(crate) fn a_missing_source_topic_is_an_error_naming_it() -> anyhow::Result<()> {
    let missing = kafka::unique("does-not-exist");
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>(&missing).to("elsewhere");
    let mut app = kafka::streams(builder.build()?, kafka::config(&kafka::unique("missing")))?;
    let error = app.start().expect_err("the topic is missing");
    assert_eq!(error.to_string(), format!("source topics do not exist: {missing}"));
    Ok(())
}

pub(crate) fn source_topics_of_one_subtopology_must_be_co_partitioned() -> anyhow::Result<()> {
    let (a, b) = (kafka::unique("copart-a"), kafka::unique("copart-b"));
    kafka::create_topics(&[(&a, 2), (&b, 3)]);
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>(&a);
    left.merge(&builder.stream::<String, String>(&b)).to("elsewhere");
    let mut app = kafka::streams(builder.build()?, kafka::config(&kafka::unique("copart")))?;
    let error = app.start().expect_err("2 and 3 partitions");
    assert_eq!(
        error.to_string(),
        format!("the source topics of sub-topology 0 must have the same number of partitions, but have: {a} (2 partitions), {b} (3 partitions)")
    );
    Ok(())
}

/// Orders enriched with their customer's name (a stream-table join), customers joined with their
/// addresses (a table-table left join), under exactly_once_v2: every order of a known customer comes
/// out once, with the name the table held; every customer's contact line ends on its latest address.
/// A table on a topic of another partition count than the stream's is refused at start, naming both.
pub(crate) fn joins_enrich_orders_under_exactly_once() -> anyhow::Result<()> {
    let prefix = kafka::unique("join");
    let (orders, customers, addresses) =
        (format!("{prefix}-orders"), format!("{prefix}-customers"), format!("{prefix}-addresses"));
    let (enriched, contacts, wide) =
        (format!("{prefix}-enriched"), format!("{prefix}-contacts"), format!("{prefix}-wide"));
    kafka::create_topics(&[(&orders, 2), (&customers, 2), (&addresses, 2), (&enriched, 1), (&contacts, 1), (&wide, 3)]);
    let topology = |table_topic: &str| -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        let names = builder.table::<String, String>(table_topic);
        let places = builder.table::<String, String>(&addresses);
        builder.stream::<String, i64>(&orders).join(&names, |cents, name| format!("{name}:{cents}")).to(&enriched);
        names
            .left_join(&places, |name, place| format!("{name}@{}", place.map_or("?", String::as_str)))
            .to_stream()
            .to(&contacts);
        Ok(builder.build()?)
    };
    let bytes = |s: String| Some(s.into_bytes());
    let cents = |n: i64| to_bytes(&*i64::default_serde(), &orders, &n).unwrap();
    kafka::produce(&customers, (0..20).map(|c| (bytes(format!("c{c}")), bytes(format!("name{c}")))));
    kafka::produce(&addresses, (0..20).step_by(2).map(|c| (bytes(format!("c{c}")), bytes(format!("street{c}")))));
    let mut config = kafka::config(&kafka::unique("join-app"));
    config.set("processing.guarantee", "exactly_once_v2")?;
    let mut app = kafka::streams(topology(&customers)?, config)?;
    app.start()?;
    // The tables are loaded once every customer's contact line has come out with its address.
    let expected_contacts: BTreeMap<String, String> = (0..20)
        .map(|c| (format!("c{c}"), format!("name{c}@{}", if c % 2 == 0 { format!("street{c}") } else { "?".into() })))
        .collect();
    let latest = |records: &[kstreams::record::RawRecord]| -> BTreeMap<String, String> {
        records
            .iter()
            .map(|r| (decode_string(&contacts, r.key.as_deref()), decode_string(&contacts, r.value.as_deref())))
            .collect()
    };
    let read = kafka::consume_committed_until(&contacts, Duration::from_secs(60), |r| latest(r) == expected_contacts);
    assert_eq!(latest(&read), expected_contacts, "each customer's contact line ends on its address");
    // Orders of customers c0..c19 and of an unknown customer, which joins nothing.
    let order_list: Vec<(String, i64)> =
        (0..60).map(|i| (format!("c{}", if i % 7 == 6 { 99 } else { i % 20 }), i)).collect();
    kafka::produce(&orders, order_list.iter().map(|(c, n)| (bytes(c.clone()), cents(*n))));
    let mut expected: Vec<(String, String)> = order_list
        .iter()
        .filter(|(c, _)| c != "c99")
        .map(|(c, n)| (c.clone(), format!("name{}:{n}", &c[1..])))
        .collect();
    let out = kafka::consume_committed_until(&enriched, Duration::from_secs(60), |r| r.len() >= expected.len());
    std::thread::sleep(Duration::from_millis(500));
    app.close()?;
    let mut got: Vec<(String, String)> = out
        .iter()
        .map(|r| (decode_string(&enriched, r.key.as_deref()), decode_string(&enriched, r.value.as_deref())))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "each order of a known customer once, with its name");

    let mut refused = kafka::streams(topology(&wide)?, kafka::config(&kafka::unique("join-copart")))?;
    let error = refused.start().expect_err("2 and 3 partitions");
    assert!(
        error.to_string().contains(&format!("{orders} (2 partitions)"))
            && error.to_string().contains(&format!("{wide} (3 partitions)")),
        "{error}"
    );
    Ok(())
}

/// Topics `<prefix>-orders` and `<prefix>-customers` of `partitions` partitions, and `<prefix>-enriched`.
fn order_customer_topics(prefix: &str, partitions: i32) -> (String, String, String) {
    let prefix = kafka::unique(prefix);
    let (orders, customers, enriched) =
        (format!("{prefix}-orders"), format!("{prefix}-customers"), format!("{prefix}-enriched"));
    kafka::create_topics(&[(&orders, partitions), (&customers, partitions), (&enriched, 1)]);
    (orders, customers, enriched)
}

/// Orders (customer id to order id) joined with the customers' names: `<name>:<order>`.
fn named_orders_topology(orders: &str, customers: &str, enriched: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    let names = builder.table::<String, String>(customers);
    builder.stream::<String, String>(orders).join(&names, |order, name| format!("{name}:{order}")).to(enriched);
    Ok(builder.build()?)
}

/// `max.task.idle.ms`: an order arrives while its task's customer partition is empty, here and at the
/// broker; the task waits (3 s here) rather than join the order with no customer. The customer, older
/// than the order, is written 1 s into the wait, and the task takes it first: the order is enriched.
/// As in Kafka Streams, the drained customer partition is then waited for again (it might still get an
/// update older than the order) for 3 s, after which the order goes on alone (enforced processing,
/// counted), and so does a second order at once: the partition has stayed empty past its deadline.
pub(crate) fn a_task_waits_max_task_idle_ms_for_its_empty_partition() -> anyhow::Result<()> {
    let (orders, customers, enriched) = order_customer_topics("idle", 1);
    let mut config = kafka::config(&kafka::unique("idle-app"));
    config.set("max.task.idle.ms", "3000")?;
    let mut app = kafka::streams(named_orders_topology(&orders, &customers, &enriched)?, config)?;
    app.start()?;
    anyhow::ensure!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    let t0 = 1_700_000_000_000;
    let sent = std::time::Instant::now();
    kafka::produce_at(&orders, [(bytes("c1"), bytes("o1"), t0 + 2_000)]);
    std::thread::sleep(Duration::from_millis(1_000));
    kafka::produce_at(&customers, [(bytes("c1"), bytes("ann"), t0 + 1_000)]);
    let values = |records: &[kstreams::record::RawRecord]| -> Vec<String> {
        records.iter().map(|r| decode_string(&enriched, r.value.as_deref())).collect()
    };
    let out = kafka::consume_until(&enriched, Duration::from_secs(30), |r| !r.is_empty());
    let waited = sent.elapsed();
    assert_eq!(values(&out), ["ann:o1"], "the order waited for the older customer record");
    assert!(waited >= Duration::from_millis(3_500), "then for the drained partition, 3 s: {waited:?}");
    let sent = std::time::Instant::now();
    kafka::produce_at(&orders, [(bytes("c1"), bytes("o2"), t0 + 3_000)]);
    let out = kafka::consume_until(&enriched, Duration::from_secs(30), |r| r.len() >= 2);
    let waited = sent.elapsed();
    assert_eq!(values(&out), ["ann:o1", "ann:o2"]);
    assert!(waited < Duration::from_millis(2_500), "the second order did not wait again: {waited:?}");
    std::thread::sleep(Duration::from_millis(1_100));
    let enforced = app.metrics().enforced_processing;
    app.close()?;
    assert_eq!(enforced, 2, "each order went on with the customer partition given up waiting for");
    Ok(())
}

/// `buffered.records.per.partition` of 5: the thread pauses each partition past it and resumes it as
/// its task drains, through 1,500 orders joined with customers written before them (older), on 2
/// partitions. Every order comes out once, enriched: the customers, older, are taken first however the
/// fetches interleave, and pausing loses and repeats nothing.
pub(crate) fn a_small_input_buffer_pauses_partitions_and_loses_nothing() -> anyhow::Result<()> {
    let (orders, customers, enriched) = order_customer_topics("buffer", 2);
    let t0 = 1_700_000_000_000;
    let bytes = |s: String| Some(s.into_bytes());
    // Orders are written first but stamped after every customer.
    kafka::produce_at(
        &orders,
        (0..1_500).map(|i| (bytes(format!("c{}", i % 30)), bytes(format!("o{i}")), t0 + 10_000 + i)),
    );
    kafka::produce_at(&customers, (0..30).map(|c| (bytes(format!("c{c}")), bytes(format!("name{c}")), t0 + c)));
    let mut config = kafka::config(&kafka::unique("buffer-app"));
    config.set("buffered.records.per.partition", "5")?;
    config.set("max.poll.records", "50")?;
    let mut app = kafka::streams(named_orders_topology(&orders, &customers, &enriched)?, config)?;
    app.start()?;
    let out = kafka::consume_until(&enriched, Duration::from_secs(60), |r| r.len() >= 1_500);
    std::thread::sleep(Duration::from_millis(500));
    let processed = app.metrics().processed_records;
    app.close()?;
    let mut got: Vec<String> = out.iter().map(|r| decode_string(&enriched, r.value.as_deref())).collect();
    got.sort();
    let mut expected: Vec<String> = (0..1_500).map(|i| format!("name{}:o{i}", i % 30)).collect();
    expected.sort();
    assert_eq!(got, expected, "every order once, with its customer's name");
    assert_eq!(processed, 1_530, "each input record processed once");
    Ok(())
}

/// Orders (an order's product id) joined by foreign key with products (a product's name), on topics of
/// different partition counts, under exactly_once_v2: orders are placed, moved to other products and
/// cancelled, products renamed and withdrawn, and the result ends, per order, on its current product's
/// name (or deleted when the order or its product is gone), as a plain join of the final tables says.
/// The subscription topic has the products' partition count, the response topic the orders'.
pub(crate) fn a_foreign_key_join_follows_both_tables_under_exactly_once() -> anyhow::Result<()> {
    let prefix = kafka::unique("fkjoin");
    let (orders, products, out) = (format!("{prefix}-orders"), format!("{prefix}-products"), format!("{prefix}-out"));
    kafka::create_topics(&[(&orders, 4), (&products, 2), (&out, 1)]);
    let app_id = kafka::unique("fkjoin-app");
    let builder = StreamsBuilder::new();
    let names = builder.table::<String, String>(&products);
    builder
        .table::<String, String>(&orders)
        .join_on_foreign_key(&names, |_, product| Some(product.clone()), |product, name| format!("{product}:{name}"))
        .to_stream()
        .to(&out);
    let mut config = kafka::config(&app_id);
    config.set("processing.guarantee", "exactly_once_v2")?;
    config.set("commit.interval.ms", "200")?;
    let mut app = kafka::streams(builder.build()?, config)?;
    app.start()?;
    anyhow::ensure!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    let bytes = |s: String| Some(s.into_bytes());
    let mut product_names: BTreeMap<String, String> = BTreeMap::new();
    let mut order_products: BTreeMap<String, String> = BTreeMap::new();
    let mut products_batch = Vec::new();
    for p in 0..10 {
        product_names.insert(format!("p{p}"), format!("name{p}"));
        products_batch.push((bytes(format!("p{p}")), bytes(format!("name{p}"))));
    }
    kafka::produce(&products, products_batch);
    let mut orders_batch = Vec::new();
    for o in 0..60 {
        order_products.insert(format!("o{o}"), format!("p{}", o % 10));
        orders_batch.push((bytes(format!("o{o}")), bytes(format!("p{}", o % 10))));
    }
    kafka::produce(&orders, orders_batch);
    // Orders move to other products (some to one that does not exist), some are cancelled; products are
    // renamed, one is withdrawn.
    let mut changes = Vec::new();
    for o in (0..60).step_by(3) {
        let moved = format!("p{}", (o * 7 + 3) % 12);
        order_products.insert(format!("o{o}"), moved.clone());
        changes.push((bytes(format!("o{o}")), bytes(moved)));
    }
    for o in (1..60).step_by(11) {
        order_products.remove(&format!("o{o}"));
        changes.push((bytes(format!("o{o}")), None));
    }
    kafka::produce(&orders, changes);
    let mut renames = Vec::new();
    for p in (0..10).step_by(2) {
        product_names.insert(format!("p{p}"), format!("renamed{p}"));
        renames.push((bytes(format!("p{p}")), bytes(format!("renamed{p}"))));
    }
    product_names.remove("p5");
    renames.push((bytes("p5".to_string()), None));
    kafka::produce(&products, renames);

    let expected: BTreeMap<String, String> = order_products
        .iter()
        .filter_map(|(o, p)| product_names.get(p).map(|name| (o.clone(), format!("{p}:{name}"))))
        .collect();
    let latest = |records: &[kstreams::record::RawRecord]| -> BTreeMap<String, String> {
        let mut table = BTreeMap::new();
        for r in records {
            let key = decode_string(&out, r.key.as_deref());
            match r.value.as_deref() {
                Some(value) => table.insert(key, decode_string(&out, Some(value))),
                None => table.remove(&key),
            };
        }
        table
    };
    let read = kafka::consume_committed_until(&out, Duration::from_secs(90), |r| latest(r) == expected);
    app.close()?;
    assert_eq!(latest(&read), expected, "each order ends on its current product's name");
    let internal = [
        format!("{app_id}-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-0000000006-topic"),
        format!("{app_id}-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-0000000014-topic"),
    ];
    let counts = kafka::admin().partition_counts(&internal)?;
    assert_eq!(counts.get(&internal[0]).copied().flatten(), Some(2), "subscriptions go where the products are");
    assert_eq!(counts.get(&internal[1]).copied().flatten(), Some(4), "answers go where the orders are");
    Ok(())
}

/// A stream re-keyed before it joins a table goes through a repartition topic with the table's
/// partition count, not its own (Kafka Streams' copartition groups): orders on 2 partitions, keyed by
/// order id, re-keyed by customer and joined with customers on 3 partitions; every order comes out once
/// with its customer's name.
pub(crate) fn a_re_keyed_stream_joins_a_table_of_another_partition_count() -> anyhow::Result<()> {
    let prefix = kafka::unique("rekeyjoin");
    let (orders, customers, out) = (format!("{prefix}-orders"), format!("{prefix}-customers"), format!("{prefix}-out"));
    kafka::create_topics(&[(&orders, 2), (&customers, 3), (&out, 1)]);
    let app_id = kafka::unique("rekeyjoin-app");
    let builder = StreamsBuilder::new();
    let names = builder.table::<String, String>(&customers);
    builder
        .stream::<String, String>(&orders)
        .select_key(|_, order: &String| order.split('@').nth(1).unwrap_or_default().to_string())
        .join_with(&names, |order, name| format!("{order}:{name}"), kstreams::dsl::Joined::as_name("by-customer"))
        .to(&out);
    let bytes = |s: String| Some(s.into_bytes());
    kafka::produce(&customers, (0..6).map(|c| (bytes(format!("c{c}")), bytes(format!("name{c}")))));
    let mut app = kafka::streams(builder.build()?, kafka::config(&app_id))?;
    app.start()?;
    anyhow::ensure!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    // The table is loaded before the orders come: each order meets its customer.
    std::thread::sleep(Duration::from_secs(2));
    // An order's value names its customer: `o7@c1`.
    kafka::produce(&orders, (0..30).map(|o| (bytes(format!("o{o}")), bytes(format!("o{o}@c{}", o % 6)))));
    let read = kafka::consume_until(&out, Duration::from_secs(60), |r| r.len() >= 30);
    app.close()?;
    let mut got: Vec<String> = read.iter().map(|r| decode_string(&out, r.value.as_deref())).collect();
    got.sort();
    let mut expected: Vec<String> = (0..30).map(|o| format!("o{o}@c{}:name{}", o % 6, o % 6)).collect();
    expected.sort();
    assert_eq!(got, expected);
    let repartition = format!("{app_id}-by-customer-repartition");
    let counts = kafka::admin().partition_counts(std::slice::from_ref(&repartition))?;
    assert_eq!(counts.get(&repartition).copied().flatten(), Some(3), "the table's partition count");
    Ok(())
}

/// Orders left-joined with their payments within 100 ms (a stream-stream join) under exactly_once_v2:
/// every paid order comes out once with its payment, every unpaid one once with none, after its window
/// has closed, never both. The join's window stores log to `delete` changelogs, as Kafka Streams' do.
pub(crate) fn a_stream_stream_left_join_answers_each_order_once() -> anyhow::Result<()> {
    use kstreams::dsl::JoinWindows;
    let prefix = kafka::unique("ssjoin");
    let (orders, payments, paid) = (format!("{prefix}-orders"), format!("{prefix}-payments"), format!("{prefix}-paid"));
    kafka::create_topics(&[(&orders, 2), (&payments, 2), (&paid, 1)]);
    let app_id = kafka::unique("ssjoin-app");
    let builder = StreamsBuilder::new();
    let paid_with = builder.stream::<String, String>(&payments);
    builder
        .stream::<String, String>(&orders)
        .left_join_stream(
            &paid_with,
            |order, payment| format!("{order}+{}", payment.map_or("none", String::as_str)),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(100)),
        )
        .to(&paid);
    let mut config = kafka::config(&app_id);
    config.set("processing.guarantee", "exactly_once_v2")?;
    // Unpaid orders are looked for at every record that moves stream time, not once a second (the
    // records below come within a second, and nothing comes after them).
    config.set("__emit.interval.ms.kstreams.outer.join.spurious.results.fix__", "0")?;
    let mut app = kafka::streams(builder.build()?, config)?;
    app.start()?;
    anyhow::ensure!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    let bytes = |s: String| Some(s.into_bytes());
    // `kafka::produce` stamps the i-th record of a call 1_700_000_000_000 + i: orders and payments of
    // one order fall within the window.
    kafka::produce(&orders, (0..20).map(|i| (bytes(format!("o{i}")), bytes(format!("order{i}")))));
    kafka::produce(&payments, (0..20).step_by(2).map(|i| (bytes(format!("o{i}")), bytes(format!("paid{i}")))));
    // Later records move stream time past the unpaid orders' windows.
    kafka::produce(&orders, (0..400).map(|i| (bytes(format!("z{}", i % 4)), bytes("later".to_string()))));
    let expected: BTreeMap<String, String> = (0..20)
        .map(|i| (format!("o{i}"), if i % 2 == 0 { format!("order{i}+paid{i}") } else { format!("order{i}+none") }))
        .collect();
    let orders_only = |records: &[kstreams::record::RawRecord]| -> Vec<(String, String)> {
        records
            .iter()
            .map(|r| (decode_string(&paid, r.key.as_deref()), decode_string(&paid, r.value.as_deref())))
            .filter(|(k, _)| k.starts_with('o'))
            .collect()
    };
    let out = kafka::consume_committed_until(&paid, Duration::from_secs(90), |r| orders_only(r).len() >= 20);
    std::thread::sleep(Duration::from_millis(1_500));
    let again = kafka::consume_committed_until(&paid, Duration::from_secs(2), |r| r.len() > out.len());
    app.close()?;
    let got = orders_only(&again);
    assert_eq!(got.len(), 20, "each order once: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeMap<_, _>>(), expected);
    for store in ["KSTREAM-JOINTHIS-0000000004-store", "KSTREAM-OUTEROTHER-0000000005-store"] {
        if let Some(config) = kafka::topic_config(&format!("{app_id}-{store}-changelog")) {
            assert_eq!(config.get("cleanup.policy").map(String::as_str), Some("delete"), "{store}");
        }
    }
    Ok(())
}

/// Two instances in one group: the second joins mid-stream, the first leaves; every input record comes
/// out exactly once (clean rebalances commit before partitions move).
pub(crate) fn two_instances_share_the_work_through_a_join_and_a_leave() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("scale-in"), kafka::unique("scale-out"));
    kafka::create_topics(&[(&input, 4), (&output, 4)]);
    let app_id = kafka::unique("scale");
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>(&input).map_values(|v| format!("seen:{v}")).to(&output);
        Ok(builder.build()?)
    };
    let batch = |from: usize, to: usize| -> Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        (from..to).map(|i| (Some(format!("k{}", i % 37).into_bytes()), Some(i.to_string().into_bytes()))).collect()
    };
    let mut first = kafka::streams(topology()?, kafka::config(&app_id))?;
    first.start()?;
    kafka::produce(&input, batch(0, 1000));
    kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 1000);

    let mut second = kafka::streams(topology()?, kafka::config(&app_id))?;
    second.start()?;
    assert!(second.wait_for_state(State::Running, Duration::from_secs(60)));
    kafka::produce(&input, batch(1000, 2000));
    kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 2000);

    first.close()?; // leaves: the second takes every partition
    kafka::produce(&input, batch(2000, 3000));
    let records = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3000);
    second.close()?;

    let mut seen: Vec<usize> = records
        .iter()
        .map(|r| decode_string(&output, r.value.as_deref()).trim_start_matches("seen:").parse().unwrap())
        .collect();
    seen.sort_unstable();
    let mut duplicates = seen.clone();
    duplicates.dedup();
    let missing: Vec<usize> = (0..3000).filter(|i| seen.binary_search(i).is_err()).take(10).collect();
    assert_eq!(
        seen,
        (0..3000).collect::<Vec<_>>(),
        "every record exactly once: {} records, {} duplicates, missing (first 10) {missing:?}",
        seen.len(),
        seen.len() - duplicates.len()
    );
    assert!(second.metrics().processed_records > 1000, "the second instance did real work");
    Ok(())
}

/// Orders `ids` of 13 customers, as keyed records for `topic`; `expected` gains each order's value per
/// customer and `updates` counts the totals they change (orders of value 0 are filtered out).
fn order_batch(
    topic: &str,
    ids: std::ops::Range<u64>,
    expected: &mut BTreeMap<i64, f64>,
    updates: &mut usize,
) -> Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    ids.map(|order_id| {
        let customer_id = (order_id % 13) as i64;
        let order = Order { order_id, customer_id, total_value: (order_id % 10) as f64 };
        if order.total_value > 0.0 {
            *expected.entry(customer_id).or_insert(0.0) += order.total_value;
            *updates += 1;
        }
        let key = to_bytes(&*i64::default_serde(), topic, &customer_id).unwrap();
        (key, to_bytes(&*Order::default_serde(), topic, &order).unwrap())
    })
    .collect()
}

/// The last total of each customer in the records read from `topic`.
fn last_totals(topic: &str, records: &[kstreams::record::RawRecord]) -> anyhow::Result<BTreeMap<i64, f64>> {
    let mut last = BTreeMap::new();
    for r in records {
        let key = from_bytes(&*i64::default_serde(), topic, r.key.as_deref())?.expect("keyed");
        let value =
            from_bytes(&*<Option<f64>>::default_serde(), topic, r.value.as_deref())?.flatten().expect("a total");
        last.insert(key, value);
    }
    Ok(last)
}

/// Order totals on two instances: the second joins mid-stream, the first leaves. Tasks that move restore
/// their totals from the changelog, so the final totals are exact and no update is repeated.
pub(crate) fn stateful_app_keeps_exact_totals_through_a_join_and_a_leave() -> anyhow::Result<()> {
    stateful_join_and_leave(GroupAssignor::Range)
}

/// The same under the library's own group member and Kafka Streams' task assignor (`group.assignor=streams`):
/// cooperative rebalances, tasks moved only as far as the balance asks.
pub(crate) fn stateful_app_keeps_exact_totals_through_a_join_and_a_leave_under_the_streams_assignor(
) -> anyhow::Result<()> {
    stateful_join_and_leave(GroupAssignor::Streams)
}

fn stateful_join_and_leave(assignor: GroupAssignor) -> anyhow::Result<()> {
    let config = |app: &str| {
        let mut config = kafka::config(app);
        config.group_assignor = assignor;
        config
    };
    let (orders, totals) = (kafka::unique("st-orders"), kafka::unique("st-totals"));
    kafka::create_topics(&[(&orders, 4), (&totals, 4)]);
    let app_id = kafka::unique("st-totals-app");
    let topology = || order_totals_topology(&orders, &totals);
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    let mut updates = 0usize;
    let batch = |from, to, expected: &mut BTreeMap<i64, f64>, updates: &mut usize| {
        order_batch(&orders, from..to, expected, updates)
    };
    let read_until = |n: usize| kafka::consume_until(&totals, Duration::from_secs(60), |r| r.len() >= n);

    let mut first = kafka::streams(topology()?, config(&app_id))?;
    first.start()?;
    kafka::produce(&orders, batch(0, 500, &mut expected, &mut updates));
    let mut seen = updates;
    read_until(seen);

    let mut second = kafka::streams(topology()?, config(&app_id))?;
    second.start()?;
    assert!(second.wait_for_state(State::Running, Duration::from_secs(60)));
    kafka::produce(&orders, batch(500, 1000, &mut expected, &mut updates));
    seen = updates;
    read_until(seen);

    first.close()?;
    kafka::produce(&orders, batch(1000, 1500, &mut expected, &mut updates));
    seen = updates;
    let records = read_until(seen);
    second.close()?;

    let last = last_totals(&totals, &records)?;
    assert_eq!(records.len(), seen, "every update once: no loss, no duplicate");
    assert_eq!(last, expected, "final totals equal a plain loop");
    let changelog = format!("{app_id}-KSTREAM-REDUCE-STATE-STORE-0000000003-changelog");
    assert_eq!(kafka::admin().partition_counts(std::slice::from_ref(&changelog))?[&changelog], Some(4));
    Ok(())
}

/// Under `group.assignor=streams` with static membership (`consumer.group.instance.id`, one static member
/// per thread): an instance closed and started again within its session timeout gets its tasks back with
/// no rebalance, the other instance never leaving RUNNING; the totals stay exact (KIP-345: a rolling
/// restart moves nothing).
pub(crate) fn a_static_instance_restarted_within_its_session_gets_its_tasks_back_without_a_rebalance(
) -> anyhow::Result<()> {
    let (orders, totals) = (kafka::unique("static-orders"), kafka::unique("static-totals"));
    kafka::create_topics(&[(&orders, 4), (&totals, 4)]);
    let app_id = kafka::unique("static-app");
    let config = |instance: &str| {
        let mut config = kafka::config(&app_id);
        config.group_assignor = GroupAssignor::Streams;
        config.num_stream_threads = 2;
        config.state_dir = std::env::temp_dir().join(kafka::unique("kstreams-state"));
        for (key, value) in
            [("group.instance.id", instance), ("session.timeout.ms", "30000"), ("heartbeat.interval.ms", "500")]
        {
            config.consumer_overrides.insert(key.into(), value.into());
        }
        config
    };
    let topology = || order_totals_topology(&orders, &totals);
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    let mut updates = 0usize;
    let read_until = |n: usize| kafka::consume_until(&totals, Duration::from_secs(60), |r| r.len() >= n);

    let stay_config = config("stays");
    let restart_config = config("restarts");
    let mut stays = kafka::streams(topology()?, stay_config)?;
    let left_running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = left_running.clone();
    stays.set_state_listener(move |old, _| {
        if old == State::Running {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    stays.start()?;
    let mut restarts = kafka::streams(topology()?, restart_config.clone())?;
    restarts.start()?;
    for app in [&stays, &restarts] {
        anyhow::ensure!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    }
    // Both instances in, the group settled (a follow-up rebalance included), before the count starts.
    std::thread::sleep(Duration::from_secs(3));
    kafka::produce(&orders, order_batch(&orders, 0..400, &mut expected, &mut updates));
    read_until(updates);
    let settled = left_running.load(std::sync::atomic::Ordering::SeqCst);

    restarts.close()?;
    // Long enough for a group that lost a member to rebalance (a dynamic member leaves at close, and
    // the other instance would take its tasks, and give them back at the restart); well within the
    // session, which keeps a static member's place.
    std::thread::sleep(Duration::from_secs(3));
    let mut restarted = kafka::streams(topology()?, restart_config)?;
    restarted.start()?;
    anyhow::ensure!(restarted.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING again");
    kafka::produce(&orders, order_batch(&orders, 400..800, &mut expected, &mut updates));
    let records = read_until(updates);
    assert_eq!(
        left_running.load(std::sync::atomic::Ordering::SeqCst),
        settled,
        "the instance that stayed never left RUNNING through the other's restart"
    );
    stays.close()?;
    restarted.close()?;
    assert_eq!(last_totals(&totals, &records)?, expected, "final totals equal a plain loop");
    Ok(())
}

/// `add_stream_thread` and `remove_stream_thread` (Kafka Streams' `addStreamThread`,
/// `removeStreamThread`): a thread added while the instance runs joins the group and takes tasks; a
/// thread removed commits, closes its tasks and leaves, and the others take them over; the totals stay
/// exact through both (every update once). Thread numbers are reused, lowest first.
pub(crate) fn stream_threads_are_added_and_removed_while_running() -> anyhow::Result<()> {
    let (orders, totals) = (kafka::unique("thr-orders"), kafka::unique("thr-totals"));
    kafka::create_topics(&[(&orders, 4), (&totals, 4)]);
    let app_id = kafka::unique("thr-totals-app");
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    let mut updates = 0usize;
    let batch = |from, to, expected: &mut BTreeMap<i64, f64>, updates: &mut usize| {
        order_batch(&orders, from..to, expected, updates)
    };
    let read_until = |n: usize| kafka::consume_until(&totals, Duration::from_secs(60), |r| r.len() >= n);
    // Waits until the instance runs with `threads` threads that each hold a task, and the four tasks.
    let settled = |streams: &kstreams::runtime::KafkaStreams, threads: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let metadata = streams.metadata_for_local_threads();
            let tasks: usize = metadata.iter().map(|t| t.active_tasks.len()).sum();
            let busy = metadata.iter().all(|t| !t.active_tasks.is_empty());
            if streams.state() == State::Running && metadata.len() == threads && tasks == 4 && busy {
                return metadata;
            }
            assert!(std::time::Instant::now() < deadline, "never settled on {threads} threads: {metadata:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let mut streams = kafka::streams(order_totals_topology(&orders, &totals)?, kafka::config(&app_id))?;
    streams.start()?;
    let one = settled(&streams, 1);
    assert!(one[0].thread_name.ends_with("-StreamThread-1"), "{one:?}");
    kafka::produce(&orders, batch(0, 500, &mut expected, &mut updates));
    read_until(updates);

    let added = streams.add_stream_thread()?.expect("running: a thread is added");
    assert!(added.ends_with("-StreamThread-2"), "{added}");
    settled(&streams, 2);
    kafka::produce(&orders, batch(500, 1000, &mut expected, &mut updates));
    read_until(updates);

    let removed = streams.remove_stream_thread(Duration::from_secs(60))?.expect("a thread to remove");
    assert!(removed.ends_with("-StreamThread-1"), "{removed}");
    let left = settled(&streams, 1);
    assert_eq!(left[0].thread_name, added, "the added thread holds every task");
    kafka::produce(&orders, batch(1000, 1500, &mut expected, &mut updates));
    read_until(updates);
    let again = streams.add_stream_thread()?.expect("a thread is added");
    assert!(again.ends_with("-StreamThread-1"), "the lowest free number: {again}");
    settled(&streams, 2);
    kafka::produce(&orders, batch(1500, 2000, &mut expected, &mut updates));
    read_until(updates);

    // Down to no thread at all: the instance stays RUNNING (as Kafka Streams'), and a thread added then
    // takes every task.
    streams.remove_stream_thread(Duration::from_secs(60))?.expect("a thread to remove");
    streams.remove_stream_thread(Duration::from_secs(60))?.expect("the last thread");
    assert_eq!(streams.remove_stream_thread(Duration::from_secs(60))?, None, "no thread left");
    assert!(streams.metadata_for_local_threads().is_empty());
    assert_eq!(streams.state(), State::Running);
    streams.add_stream_thread()?.expect("a thread is added");
    settled(&streams, 1);
    kafka::produce(&orders, batch(2000, 2500, &mut expected, &mut updates));
    let records = read_until(updates);
    streams.close()?;
    assert_eq!(streams.add_stream_thread()?, None, "not running: nothing added");
    // Every thread's counters, those that ended included, once (a reused thread name counts anew).
    assert_eq!(streams.metrics().processed_records, 2500, "each order processed once");

    let last = last_totals(&totals, &records)?;
    assert_eq!(records.len(), updates, "every update once: no loss, no duplicate");
    assert_eq!(last, expected, "final totals equal a plain loop");
    Ok(())
}

/// Records routed to a topic that does not exist (auto-creation is off) are rejected by the broker: the
/// default handler fails the thread naming the topic; `continue` drops them, counts them, and goes on.
pub(crate) fn production_errors_fail_by_default_and_can_be_skipped() -> anyhow::Result<()> {
    #[derive(Debug, PartialEq)]
    enum Handler {
        Fail,
        Continue,
        DeadLetters,
    }
    for handler in [Handler::Fail, Handler::Continue, Handler::DeadLetters] {
        let (input, good) = (kafka::unique("prod-in"), kafka::unique("prod-good"));
        let (missing, dlq) = (kafka::unique("prod-missing"), kafka::unique("prod-dlq"));
        kafka::create_topics(&[(&input, 1), (&good, 1), (&dlq, 1)]);
        let keys = ["a", "bad", "b"];
        kafka::produce(
            &input,
            keys.iter().map(|k| (Some(k.as_bytes().to_vec()), Some(b"v".to_vec()))).collect::<Vec<_>>(),
        );
        let builder = StreamsBuilder::new();
        let (good_topic, missing_topic) = (good.clone(), missing.clone());
        builder.stream::<String, String>(&input).to_dynamic(move |k, _, _| {
            if k == "bad" {
                missing_topic.clone()
            } else {
                good_topic.clone()
            }
        });
        let mut config = kafka::config(&kafka::unique("prod-app"));
        // librdkafka gives up on the missing topic after this long.
        config.producer_overrides.insert("topic.metadata.propagation.max.ms".into(), "1000".into());
        match handler {
            Handler::Fail => {}
            Handler::Continue => {
                config.production_handler = std::sync::Arc::new(kstreams::handler::ContinueOnProductionError)
            }
            Handler::DeadLetters => config.set("errors.dead.letter.queue.topic.name", &dlq)?,
        }
        let mut app = kafka::streams(builder.build()?, config)?;
        app.start()?;
        if handler == Handler::Fail {
            assert!(app.wait_for_state(State::Error, Duration::from_secs(30)), "state {:?}", app.state());
            let error = kstreams::handler::error_chain(&app.take_error().unwrap());
            assert!(error.contains(&missing), "{error}");
        } else {
            let out = kafka::consume_until(&good, Duration::from_secs(30), |r| r.len() >= 2);
            assert_eq!(out.len(), 2);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while app.metrics().production_errors == 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_eq!(app.metrics().production_errors, 1);
            assert_eq!(app.state(), State::Running);
        }
        if handler == Handler::DeadLetters {
            // KIP-1034: the rejected record as produced, with headers naming the error.
            let dead = kafka::consume_until(&dlq, Duration::from_secs(30), |r| !r.is_empty());
            assert_eq!(dead.len(), 1);
            assert_eq!((dead[0].key.as_deref(), dead[0].value.as_deref()), (Some(&b"bad"[..]), Some(&b"v"[..])));
            let header = |name| dead[0].headers.last(name).flatten().map(|v| String::from_utf8_lossy(v).to_string());
            assert_eq!(header("__streams.errors.exception").as_deref(), Some("ProductionException"));
            let message = header("__streams.errors.message").unwrap_or_default();
            assert!(message.contains(&missing), "{message}");
        }
        app.close()?;
    }
    Ok(())
}

/// A record larger than the producer's `message.max.bytes` (librdkafka's 1,000,000 bytes) is refused
/// before it is queued, and goes to the production exception handler as Kafka Streams'
/// `RecordTooLargeException` does: by default the instance stops with an error naming the topic; under
/// `continue` it is skipped and counted, and the records around it go out.
pub(crate) fn a_record_too_large_to_send_goes_to_the_production_handler() -> anyhow::Result<()> {
    for skip in [false, true] {
        let (input, output) = (kafka::unique("big-in"), kafka::unique("big-out"));
        kafka::create_topics(&[(&input, 1), (&output, 1)]);
        let bytes = |s: &str| Some(s.as_bytes().to_vec());
        kafka::produce(&input, ["a", "big", "b"].map(|k| (bytes(k), bytes("v"))));
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .map_values_with_key(|k, v| if k == "big" { "x".repeat(1_500_000) } else { v })
            .to(&output);
        let mut config = kafka::config(&kafka::unique("big-app"));
        if skip {
            config.production_handler = std::sync::Arc::new(kstreams::handler::ContinueOnProductionError);
        }
        let mut app = kafka::streams(builder.build()?, config)?;
        app.start()?;
        the_big_record_was_handled(&mut app, &output, skip);
        app.close()?;
    }
    Ok(())
}

/// After input `a`, `big`, `b` whose `big` record was refused as too large: skipped (`a` and `b` out,
/// one production error counted, still running), or the instance stopped with an error naming
/// `output`. Shared with tests/kafka_runtime.rs's record refused by the broker.
pub(crate) fn the_big_record_was_handled(app: &mut kstreams::runtime::KafkaStreams, output: &str, skipped: bool) {
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    if skipped {
        let out = kafka::consume_until(output, Duration::from_secs(30), |r| r.len() >= 2);
        let keys: Vec<_> = out.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, vec![bytes("a"), bytes("b")]);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while app.metrics().production_errors == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(app.metrics().production_errors, 1);
        assert_eq!(app.state(), State::Running);
    } else {
        assert!(app.wait_for_state(State::Error, Duration::from_secs(30)), "state {:?}", app.state());
        let error = kstreams::handler::error_chain(&app.take_error().unwrap());
        assert!(error.contains(output) && error.contains("too large"), "{error}");
    }
}

/// Timestamps far in the past and far in the future, read from a topic that takes any
/// (`message.timestamp.after.max.ms` at its largest). The epoch's first millisecond passes through unchanged; a record stamped
/// more than an hour ahead (Kafka 4's default `message.timestamp.after.max.ms` of the topics the app
/// writes) is refused by the broker and goes to the production exception handler, as in Kafka Streams:
/// by default the instance stops with an error naming the topic; under `continue` each refused record
/// (output and changelog) is skipped and counted, and the windowed count goes on: the windows of the year
/// 9999 and of `i64::MAX - 1` are computed (the last one's end saturates) and the jump in stream time
/// makes a record of an early window late, dropped and counted.
pub(crate) fn timestamps_far_in_the_past_and_future_go_through_the_handlers_as_kafka_streams_does() -> anyhow::Result<()>
{
    let year_9999 = 253_402_300_799_000;
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    for skip in [false, true] {
        let (input, echo, counts) = (kafka::unique("far-in"), kafka::unique("far-echo"), kafka::unique("far-counts"));
        kafka::create_topics_with(&[(&input, 1)], &[("message.timestamp.after.max.ms", &i64::MAX.to_string())]);
        kafka::create_topics(&[(&echo, 1), (&counts, 1)]);
        // 1 ms after the epoch: librdkafka stamps a record of timestamp 0 with its wall clock instead.
        let stamps = [1, year_9999, i64::MAX - 1, 1_000];
        kafka::produce_at(&input, stamps.map(|t| (bytes("a"), bytes("v"), t)));
        let builder = StreamsBuilder::new();
        let stream = builder.stream::<String, String>(&input);
        stream.to(&echo);
        stream
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
            .count()
            .to_stream()
            .map(|k, v| (format!("{}@{}", k.key, k.window.start), v))
            .to(&counts);
        let mut config = kafka::config(&kafka::unique("far-app"));
        if skip {
            config.production_handler = std::sync::Arc::new(kstreams::handler::ContinueOnProductionError);
            // A batch with a refused record in it fails whole, the other records too (`InvalidDifferentRecord`
            // from librdkafka, an `InvalidRecordException` from Java's producer), and the handler skips them
            // all: one record per batch keeps this test about the refused ones.
            config.producer_overrides.insert("batch.num.messages".into(), "1".into());
        }
        let mut app = kafka::streams(builder.build()?, config)?;
        app.start()?;
        if !skip {
            assert!(app.wait_for_state(State::Error, Duration::from_secs(30)), "state {:?}", app.state());
            let error = kstreams::handler::error_chain(&app.take_error().unwrap());
            // The refused record, or one batched with it (KIP-467: the broker fails the whole batch).
            assert!(error.contains("produce to far-") && error.to_lowercase().contains("invalid"), "{error}");
            app.close()?;
            continue;
        }
        let echoed = kafka::consume_until(&echo, Duration::from_secs(30), |r| r.len() >= 2);
        assert_eq!(echoed.iter().map(|r| r.timestamp).collect::<Vec<_>>(), vec![1, 1_000]);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while app.metrics().dropped_records == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let metrics = app.metrics();
        assert_eq!(metrics.dropped_records, 1, "the record of the closed window at 1 s");
        // Two echoes, two window counts and their two changelog records: each refused, each counted.
        assert_eq!(metrics.production_errors, 6);
        assert_eq!(app.state(), State::Running);
        let out = kafka::consume_until(&counts, Duration::from_secs(10), |r| r.len() >= 2);
        let read: Vec<(String, i64)> = out
            .iter()
            .map(|r| {
                let key = from_bytes(&*String::default_serde(), &counts, r.key.as_deref()).unwrap().unwrap();
                (key, decode_i64(&counts, r.value.as_deref()))
            })
            .collect();
        assert_eq!(read, vec![("a@0".to_string(), 1)]);
        app.close()?;
    }
    Ok(())
}

/// Under at_least_once, a stream thread that did not run for longer than its pause limit (here a
/// processor that blocks that long; a stopped process looks the same to the thread) sends nothing more
/// for its tasks, which another member may own by then: it closes them without committing and rejoins,
/// and their records are processed again from the last commit. Nothing is lost, and the application
/// keeps running.
pub(crate) fn a_thread_stopped_past_the_pause_limit_rejoins_and_loses_nothing() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (input, output) = (kafka::unique("pause-in"), kafka::unique("pause-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    kafka::produce(
        &input,
        (0..20).map(|i| (Some(format!("k{i}").into_bytes()), Some(i.to_string().into_bytes()))).collect::<Vec<_>>(),
    );
    let mut config = kafka::config(&kafka::unique("pause-app"));
    config.consumer_overrides.insert("session.timeout.ms".into(), "6000".into());
    config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1500".into());
    let stall = config.pause_limit() + Duration::from_secs(1);
    let stalled = std::sync::Arc::new(AtomicBool::new(false));
    let once = stalled.clone();
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&input)
        .map_values(move |v| {
            if v == "10" && !once.swap(true, Ordering::SeqCst) {
                std::thread::sleep(stall);
            }
            v
        })
        .to(&output);
    let mut app = kafka::streams(builder.build()?, config)?;
    app.start()?;
    let distinct = |records: &[kstreams::record::RawRecord]| {
        records.iter().filter_map(|r| r.value.clone()).collect::<std::collections::BTreeSet<_>>().len()
    };
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| distinct(r) >= 20);
    assert!(stalled.load(Ordering::SeqCst), "the processor stalled");
    assert_eq!(distinct(&out), 20, "every input record has its output");
    assert!(app.metrics().recoveries >= 1, "the thread gave up its tasks after the stall");
    assert_eq!(app.state(), State::Running, "a pause is recovered from, not fatal");
    app.close()?;
    Ok(())
}

/// Orders 1, 2, 3 whose mapper panics on order 2: a bug in user code on one record.
fn panicking_pipeline(input: &str, output: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, Order>(input)
        .named("order-id")
        .map_values(|o| {
            assert!(o.order_id != 2, "order {} is cursed", o.order_id);
            o.order_id as i64
        })
        .to(output);
    Ok(builder.build()?)
}

fn three_orders(topic: &str) {
    let key = to_bytes(&*i64::default_serde(), topic, &1).unwrap();
    let order = |id: u64| {
        to_bytes(&*Order::default_serde(), topic, &Order { order_id: id, customer_id: 1, total_value: 1.0 }).unwrap()
    };
    kafka::produce(topic, (1..=3).map(|id| (key.clone(), order(id))).collect::<Vec<_>>());
}

/// KIP-1033 and KIP-1034: a panic in a DSL function goes to the processing exception handler, which
/// with `errors.dead.letter.queue.topic.name` set sends the record as read to that topic, with headers
/// naming the error and the record, and goes on.
pub(crate) fn a_panic_in_user_code_is_dead_lettered_and_processing_goes_on() -> anyhow::Result<()> {
    let (input, output, dlq) = (kafka::unique("pe-dlq-in"), kafka::unique("pe-dlq-out"), kafka::unique("pe-dlq"));
    kafka::create_topics(&[(&input, 1), (&output, 1), (&dlq, 1)]);
    three_orders(&input);
    let mut config = kafka::config(&kafka::unique("pe-dlq-app"));
    config.set("errors.dead.letter.queue.topic.name", &dlq)?;
    let mut app = kafka::streams(panicking_pipeline(&input, &output)?, config)?;
    app.start()?;
    let dead = kafka::consume_until(&dlq, Duration::from_secs(60), |r| !r.is_empty());
    let out = kafka::consume_until(&output, Duration::from_secs(30), |r| r.len() >= 2);
    app.close()?;
    assert_eq!(app.state(), State::NotRunning);
    let ids: Vec<i64> = out.iter().map(|r| decode_i64(&output, r.value.as_deref())).collect();
    assert_eq!(ids, vec![1, 3]);
    assert_eq!(dead.len(), 1);
    let order: Order =
        from_bytes(&*Order::default_serde(), &dlq, dead[0].value.as_deref())?.expect("the value as read");
    assert_eq!(order.order_id, 2);
    let header = |name| dead[0].headers.last(name).flatten().map(|v| String::from_utf8_lossy(v).to_string());
    assert_eq!(header("__streams.errors.exception").as_deref(), Some("panic"));
    assert_eq!(header("__streams.errors.topic"), Some(input.clone()));
    assert_eq!(header("__streams.errors.offset").as_deref(), Some("1"));
    let message = header("__streams.errors.message").unwrap_or_default();
    assert!(message.contains("processor `order-id` failed: panicked: order 2 is cursed"), "{message}");
    assert_eq!(app.metrics().processing_errors, 1);
    Ok(())
}

/// By default a processing error fails the thread and the instance (ERROR, the error naming node and
/// record); with an uncaught exception handler that says `ReplaceThread`, a new thread takes the failed
/// one's place and the instance keeps running.
pub(crate) fn a_failed_thread_is_replaced_when_the_uncaught_exception_handler_says_so() -> anyhow::Result<()> {
    use kstreams::runtime::StreamThreadExceptionResponse;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    // Default: the instance goes to ERROR with the error naming the node and the record.
    let (input, output) = (kafka::unique("pe-fail-in"), kafka::unique("pe-fail-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    three_orders(&input);
    let mut app = kafka::streams(panicking_pipeline(&input, &output)?, kafka::config(&kafka::unique("pe-fail")))?;
    app.start()?;
    assert!(app.wait_for_state(State::Error, Duration::from_secs(60)), "state {:?}", app.state());
    let error = app.take_error().expect("the error is kept");
    assert_eq!(
        error.to_string(),
        format!("node `order-id` of task 0_0 failed on the record at {input}-0 offset 1; the processing exception handler said to fail")
    );
    app.close()?;

    // ReplaceThread: the mapper fails once only; the replacement processes everything.
    let (input, output) = (kafka::unique("pe-replace-in"), kafka::unique("pe-replace-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    three_orders(&input);
    let failed = Arc::new(AtomicBool::new(false));
    let builder = StreamsBuilder::new();
    let once = failed.clone();
    builder
        .stream::<i64, Order>(&input)
        .map_values(move |o| {
            assert!(o.order_id != 2 || once.swap(true, Ordering::SeqCst), "order 2 fails once");
            o.order_id as i64
        })
        .to(&output);
    let mut app = kafka::streams(builder.build()?, kafka::config(&kafka::unique("pe-replace")))?;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    app.set_uncaught_exception_handler(move |error| {
        assert!(matches!(error, StreamsError::ProcessingFailed { .. }), "{error:?}");
        counted.fetch_add(1, Ordering::SeqCst);
        StreamThreadExceptionResponse::ReplaceThread
    });
    app.start()?;
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| {
        r.iter().any(|r| decode_i64(&output, r.value.as_deref()) == 3)
    });
    assert!(matches!(app.state(), State::Running | State::Rebalancing), "state {:?}", app.state());
    app.close()?;
    assert_eq!(app.state(), State::NotRunning);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut ids: Vec<i64> = out.iter().map(|r| decode_i64(&output, r.value.as_deref())).collect();
    ids.dedup();
    // Order 1 may come twice (at-least-once: the failed thread had sent it without committing).
    assert_eq!(ids.iter().filter(|&&id| id != 1).copied().collect::<Vec<_>>(), vec![2, 3], "{ids:?}");
    assert!(ids.contains(&1));
    Ok(())
}

/// `ShutdownApplication`: the instance whose thread failed asks the whole application to shut down,
/// and every instance running then goes to ERROR: the failed one with its own error, the other with
/// `ApplicationShutdownRequested` naming the failed thread.
pub(crate) fn shutdown_application_stops_every_instance() -> anyhow::Result<()> {
    use kstreams::runtime::StreamThreadExceptionResponse;

    let (input, output) = (kafka::unique("pe-shutdown-in"), kafka::unique("pe-shutdown-out"));
    kafka::create_topics(&[(&input, 2), (&output, 2)]);
    let app_id = kafka::unique("pe-shutdown");
    let instance = || -> anyhow::Result<kstreams::runtime::KafkaStreams> {
        let mut app = kafka::streams(panicking_pipeline(&input, &output)?, kafka::config(&app_id))?;
        app.set_uncaught_exception_handler(|_| StreamThreadExceptionResponse::ShutdownApplication);
        Ok(app)
    };
    let (mut first, mut second) = (instance()?, instance()?);
    first.start()?;
    assert!(first.wait_for_state(State::Running, Duration::from_secs(60)), "state {:?}", first.state());
    second.start()?;
    assert!(second.wait_for_state(State::Running, Duration::from_secs(60)), "state {:?}", second.state());
    three_orders(&input);
    for app in [&first, &second] {
        assert!(app.wait_for_state(State::Error, Duration::from_secs(60)), "state {:?}", app.state());
    }
    let errors = [first.take_error().expect("an error"), second.take_error().expect("an error")];
    first.close()?;
    second.close()?;
    let failed = errors.iter().filter(|e| matches!(e, StreamsError::ProcessingFailed { .. })).count();
    assert_eq!(failed, 1, "{errors:?}");
    let requested = errors
        .iter()
        .find_map(|e| match e {
            StreamsError::ApplicationShutdownRequested { thread, reason } => Some((thread, reason)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("one instance was asked to shut down: {errors:?}"));
    assert!(
        requested.0.starts_with(&format!("{app_id}-")) && requested.0.ends_with("-StreamThread-1"),
        "{requested:?}"
    );
    assert!(requested.1.contains("order 2 is cursed"), "{requested:?}");
    Ok(())
}

/// The retention of the windowed scenarios' stores. `kafka::produce` stamps records in November 2023, and
/// the changelog of a window or session store is `compact,delete`, kept for the store's retention plus a
/// day: with a shorter retention the broker's time-based deletion (every 5 minutes) would empty it in the
/// middle of a test.
const TEN_YEARS: Duration = Duration::from_secs(3650 * 24 * 3600);

/// A windowed count: its output keys are Kafka's `TimeWindowedSerializer` bytes, its changelog keys
/// Kafka Streams' window store keys (key, start, sequence number 0) in a `compact,delete` topic kept for
/// the retention plus one day, and an instance with no local state restores the windows from it.
pub(crate) fn a_windowed_count_is_logged_as_kafka_streams_logs_it_and_restored() -> anyhow::Result<()> {
    use kstreams::serde::StringSerde;
    use std::sync::Arc;

    let (input, output) = (kafka::unique("win-in"), kafka::unique("win-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app_id = kafka::unique("win");
    let hour = Duration::from_secs(3600);
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(hour))
            .count_with(Materialized::as_store("per-hour").with_retention(TEN_YEARS))
            .to_stream()
            .to(&output);
        Ok(builder.build()?)
    };
    let key = |k: &str| Some(k.as_bytes().to_vec());
    let value = Some(b"v".to_vec());
    kafka::produce(&input, vec![(key("a"), value.clone()), (key("a"), value.clone())]);
    let mut first = kafka::streams(topology()?, kafka::config(&app_id))?;
    first.start()?;
    kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 2);
    first.close()?;

    // A new state directory: the second instance restores the window from the changelog.
    let mut second = kafka::streams(topology()?, kafka::config(&app_id))?;
    second.start()?;
    kafka::produce(&input, vec![(key("a"), value)]);
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3);
    second.close()?;

    // `kafka::produce` stamps records from 1_700_000_000_000 on: all three fall in one hour.
    let start: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000;
    let serde = kstreams::serde::TimeWindowedSerde::new(Arc::new(StringSerde), hour);
    let read: Vec<(Windowed<String>, i64)> = out
        .iter()
        .map(|r| {
            (serde.deserialize(&output, r.key.as_deref().unwrap()).unwrap(), decode_i64(&output, r.value.as_deref()))
        })
        .collect();
    let window = Windowed::new("a".to_string(), Window { start, end: start + 3_600_000 });
    assert_eq!(read, vec![(window.clone(), 1), (window.clone(), 2), (window, 3)]);
    let mut expected_key = b"a".to_vec();
    expected_key.extend_from_slice(&start.to_be_bytes());
    assert_eq!(out[0].key.as_deref(), Some(&expected_key[..]));

    let changelog = format!("{app_id}-per-hour-changelog");
    let logged = kafka::consume_until(&changelog, Duration::from_secs(30), |r| r.len() >= 3);
    expected_key.extend_from_slice(&[0, 0, 0, 0]);
    assert!(logged.iter().all(|r| r.key.as_deref() == Some(&expected_key[..])), "{logged:?}");
    if let Some(config) = kafka::topic_config(&changelog) {
        assert_eq!(config.get("cleanup.policy").map(String::as_str), Some("compact,delete"));
        assert_eq!(config.get("retention.ms").map(String::as_str), Some("315446400000"));
    }
    Ok(())
}

/// A session count: its output and changelog keys are Kafka's session layout (key, end, start), its
/// changelog values the raw counts with tombstones for merged sessions, in a `compact,delete` topic kept
/// for the retention plus one day; an instance with no local state restores the sessions and extends
/// them.
pub(crate) fn a_session_count_is_logged_as_kafka_streams_logs_it_and_restored() -> anyhow::Result<()> {
    use kstreams::serde::{SessionWindowedSerde, StringSerde};
    use std::sync::Arc;

    let (input, output) = (kafka::unique("sess-in"), kafka::unique("sess-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app_id = kafka::unique("sess");
    let hour = Duration::from_secs(3600);
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .group_by_key()
            .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(hour))
            .count_with(Materialized::as_store("visits").with_retention(TEN_YEARS))
            .to_stream()
            .to(&output);
        Ok(builder.build()?)
    };
    let key = |k: &str| Some(k.as_bytes().to_vec());
    let value = Some(b"v".to_vec());
    // `kafka::produce` stamps records from 1_700_000_000_000 on, one millisecond apart.
    kafka::produce(&input, vec![(key("a"), value.clone()), (key("a"), value.clone())]);
    let mut first = kafka::streams(topology()?, kafka::config(&app_id))?;
    first.start()?;
    kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3);
    first.close()?;

    // A new state directory: the second instance restores the session from the changelog, and a record
    // inside it updates it.
    let mut second = kafka::streams(topology()?, kafka::config(&app_id))?;
    second.start()?;
    kafka::produce(&input, vec![(key("a"), value)]);
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 5);
    second.close()?;

    let t0: i64 = 1_700_000_000_000;
    let serde = SessionWindowedSerde::new(Arc::new(StringSerde));
    let read: Vec<(Windowed<String>, Option<i64>, i64)> = out
        .iter()
        .map(|r| {
            let count = r.value.as_deref().map(|v| decode_i64(&output, Some(v)));
            (serde.deserialize(&output, r.key.as_deref().unwrap()).unwrap(), count, r.timestamp)
        })
        .collect();
    let session = |start, end| Windowed::new("a".to_string(), Window { start, end });
    assert_eq!(
        read,
        vec![
            (session(t0, t0), Some(1), t0),
            (session(t0, t0), None, t0),
            (session(t0, t0 + 1), Some(2), t0 + 1),
            (session(t0, t0 + 1), None, t0 + 1),
            (session(t0, t0 + 1), Some(3), t0 + 1),
        ]
    );
    let session_key = |start: i64, end: i64| [&b"a"[..], &end.to_be_bytes(), &start.to_be_bytes()].concat();
    assert_eq!(out[2].key.as_deref(), Some(&session_key(t0, t0 + 1)[..]));

    let changelog = format!("{app_id}-visits-changelog");
    let logged = kafka::consume_until(&changelog, Duration::from_secs(30), |r| r.len() >= 5);
    let logged: Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> = logged.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        logged,
        vec![
            (Some(session_key(t0, t0)), Some(1i64.to_be_bytes().to_vec())),
            (Some(session_key(t0, t0)), None),
            (Some(session_key(t0, t0 + 1)), Some(2i64.to_be_bytes().to_vec())),
            (Some(session_key(t0, t0 + 1)), None),
            (Some(session_key(t0, t0 + 1)), Some(3i64.to_be_bytes().to_vec())),
        ],
        "Kafka Streams' session store keys, raw values, tombstones for merged sessions"
    );
    if let Some(config) = kafka::topic_config(&changelog) {
        assert_eq!(config.get("cleanup.policy").map(String::as_str), Some("compact,delete"));
        assert_eq!(config.get("retention.ms").map(String::as_str), Some("315446400000"));
    }
    Ok(())
}

/// A windowed count with `suppress(until_window_closes)`: nothing is emitted while the window is open,
/// the held-back counts are logged to the buffer's changelog in Kafka Streams' layout (a version header,
/// the buffer time last) and restored by an instance with no local state, which emits each window's
/// final count exactly once when stream time closes it.
pub(crate) fn final_window_counts_survive_a_restart_in_the_suppression_buffer() -> anyhow::Result<()> {
    use kstreams::dsl::{BufferConfig, Suppressed};
    use kstreams::serde::StringSerde;
    use std::sync::Arc;

    let (input, output) = (kafka::unique("supp-in"), kafka::unique("supp-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app_id = kafka::unique("supp");
    let size = Duration::from_millis(100);
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(size))
            .count_with(Materialized::as_store("counts").with_retention(TEN_YEARS))
            .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final"))
            .to_stream()
            .to(&output);
        Ok(builder.build()?)
    };
    let key = |k: &str| Some(k.as_bytes().to_vec());
    let value = Some(b"v".to_vec());
    // `kafka::produce` stamps the i-th record of a call 1_700_000_000_000 + i, a multiple of 100: all
    // of this first call fall in the window [t0, t0 + 100).
    let t0: i64 = 1_700_000_000_000;
    kafka::produce(&input, vec![(key("a"), value.clone()), (key("a"), value.clone()), (key("b"), value.clone())]);
    let changelog = format!("{app_id}-final-store-changelog");
    let mut first = kafka::streams(topology()?, kafka::config(&app_id))?;
    first.start()?;
    let buffered = kafka::consume_until(&changelog, Duration::from_secs(60), |r| {
        r.iter().filter_map(|r| r.key.as_deref()).any(|k| k.starts_with(b"b"))
    });
    first.close()?;
    assert!(kafka::consume_until(&output, Duration::from_secs(2), |r| !r.is_empty()).is_empty(), "emitted early");

    // The buffer's changelog: window keys (key, start), values with Kafka Streams' version header whose
    // last eight bytes are the buffer time, the window's end.
    let last_b = buffered.iter().rev().find(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"b"))).unwrap();
    assert_eq!(last_b.key.as_deref(), Some(&[&b"b"[..], &t0.to_be_bytes()].concat()[..]));
    assert_eq!(last_b.headers.last("v"), Some(Some(&[3u8][..])), "{:?}", last_b.headers);
    let logged = last_b.value.as_deref().expect("a buffered value");
    assert_eq!(logged[logged.len() - 8..], (t0 + 100).to_be_bytes());
    if let Some(config) = kafka::topic_config(&changelog) {
        assert_eq!(config.get("cleanup.policy").map(String::as_str), Some("compact"));
    }

    // A new state directory: the buffer is restored from its changelog. Records of `c` up to t0 + 100
    // close the window; its three final counts go out in key order, each stamped with its last update.
    let mut second = kafka::streams(topology()?, kafka::config(&app_id))?;
    second.start()?;
    kafka::produce(&input, (0..=100).map(|_| (key("c"), value.clone())));
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3);
    second.close()?;
    let out_after = kafka::consume_until(&output, Duration::from_secs(2), |r| r.len() > 3);

    let serde = kstreams::serde::TimeWindowedSerde::new(Arc::new(StringSerde), size);
    let read: Vec<(String, i64, i64, i64)> = out
        .iter()
        .map(|r| {
            let w = serde.deserialize(&output, r.key.as_deref().unwrap()).unwrap();
            (w.key, w.window.start, decode_i64(&output, r.value.as_deref()), r.timestamp)
        })
        .collect();
    assert_eq!(
        read,
        vec![("a".to_string(), t0, 2, t0 + 1), ("b".to_string(), t0, 1, t0 + 2), ("c".to_string(), t0, 100, t0 + 99)]
    );
    assert_eq!(out_after.len(), 3, "each final count exactly once");
    Ok(())
}

/// An emit-final windowed count (`EmitStrategy::on_window_close`) commits the last close time it emitted
/// in its offsets' metadata, as Kafka Streams does: an instance with no local state that takes over
/// emits the windows that close from then on, and no window the first one emitted.
pub(crate) fn emit_final_results_are_not_emitted_again_after_a_restart() -> anyhow::Result<()> {
    use kstreams::dsl::EmitStrategy;
    use kstreams::serde::StringSerde;
    use std::sync::Arc;

    let (input, output) = (kafka::unique("final-in"), kafka::unique("final-out"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app_id = kafka::unique("final");
    let size = Duration::from_millis(10);
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&input)
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(size))
            .emit_strategy(EmitStrategy::on_window_close())
            .count_with(Materialized::as_store("final-counts").with_retention(TEN_YEARS))
            .to_stream()
            .to(&output);
        Ok(builder.build()?)
    };
    let config = || {
        let mut config = kafka::config(&app_id);
        config.windowed_emit_interval = Duration::ZERO;
        config
    };
    let records = |n: usize| (0..n).map(|_| (Some(b"a".to_vec()), Some(b"v".to_vec()))).collect::<Vec<_>>();
    // `kafka::produce` stamps the i-th record of a call t0 + i: records at t0..t0+14, which close [t0, t0+10).
    kafka::produce(&input, records(15));
    let mut first = kafka::streams(topology()?, config())?;
    first.start()?;
    kafka::consume_until(&output, Duration::from_secs(60), |r| !r.is_empty());
    first.close()?;

    // A new state directory; records at t0..t0+30 again: [t0, t0+10) is updated but was emitted already,
    // [t0+10, t0+20) and [t0+20, t0+30) close now.
    let mut second = kafka::streams(topology()?, config())?;
    second.start()?;
    kafka::produce(&input, records(31));
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3);
    second.close()?;
    let out_after = kafka::consume_until(&output, Duration::from_secs(2), |r| r.len() > 3);

    let t0: i64 = 1_700_000_000_000;
    let serde = kstreams::serde::TimeWindowedSerde::new(Arc::new(StringSerde), size);
    let read: Vec<(i64, i64)> = out
        .iter()
        .map(|r| {
            let w = serde.deserialize(&output, r.key.as_deref().unwrap()).unwrap();
            (w.window.start - t0, decode_i64(&output, r.value.as_deref()))
        })
        .collect();
    assert_eq!(read, vec![(0, 10), (10, 15), (20, 10)]);
    assert_eq!(out_after.len(), 3, "no window emitted twice");
    Ok(())
}

/// A windowed table written to a topic without a partitioner: each record goes to the partition of its
/// inner key (Kafka Streams' `WindowedStreamPartitioner`), the one a producer gives the plain key, so every
/// window of a key is in one partition.
pub(crate) fn windowed_keys_are_partitioned_by_their_inner_key() -> anyhow::Result<()> {
    let (input, output, plain) =
        (kafka::unique("winpart-in"), kafka::unique("winpart-out"), kafka::unique("winpart-plain"));
    kafka::create_topics(&[(&input, 1), (&output, 4), (&plain, 4)]);
    let keys: Vec<String> = (0..12).map(|i| format!("customer-{i}")).collect();
    let records = || keys.iter().map(|k| (Some(k.as_bytes().to_vec()), Some(b"v".to_vec()))).collect::<Vec<_>>();
    // The reference: the same keys, placed by the producer's murmur2.
    kafka::produce(&plain, records());
    kafka::produce(&input, records());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(&input)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(5)))
        .count()
        .to_stream()
        .to(&output);
    let mut app = kafka::streams(builder.build()?, kafka::config(&kafka::unique("winpart")))?;
    app.start()?;
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= keys.len());
    app.close()?;
    let placed = kafka::consume_until(&plain, Duration::from_secs(30), |r| r.len() >= keys.len());
    let partition_of = |records: &[kstreams::record::RawRecord], inner: &[u8]| {
        records
            .iter()
            .find(|r| {
                r.key.as_deref().is_some_and(|k| k == inner || (k.len() == inner.len() + 8 && k.starts_with(inner)))
            })
            .map(|r| r.partition)
    };
    assert_eq!(out.len(), keys.len());
    for key in &keys {
        let expected = partition_of(&placed, key.as_bytes()).expect("the reference record");
        assert_eq!(partition_of(&out, key.as_bytes()), Some(expected), "{key}");
    }
    let used: std::collections::BTreeSet<i32> = out.iter().map(|r| r.partition).collect();
    assert!(used.len() > 1, "12 keys over 4 partitions use more than one: {used:?}");
    Ok(())
}

/// `stream_pattern`: one stream of every topic the pattern matches when the application starts, and
/// nothing of the topics it does not match.
pub(crate) fn a_pattern_source_reads_every_matching_topic() -> anyhow::Result<()> {
    let prefix = kafka::unique("pattern");
    let (a, b, other, output) =
        (format!("{prefix}-in-a"), format!("{prefix}-in-b"), format!("{prefix}-other"), format!("{prefix}-out"));
    kafka::create_topics(&[(&a, 2), (&b, 2), (&other, 2), (&output, 1)]);
    let record = |k: &str| (Some(k.as_bytes().to_vec()), Some(b"v".to_vec()));
    kafka::produce(&a, vec![record("a1"), record("a2")]);
    kafka::produce(&b, vec![record("b1")]);
    kafka::produce(&other, vec![record("x")]);
    let builder = StreamsBuilder::new();
    builder.stream_pattern::<String, String>(&format!("{prefix}-in-.*")).to(&output);
    let topology = builder.build()?;
    assert!(topology.describe().to_string().contains(&format!("(topics: {prefix}-in-.*)")), "{}", topology.describe());
    let mut app = kafka::streams(topology, kafka::config(&kafka::unique("pattern-app")))?;
    app.start()?;
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3);
    std::thread::sleep(Duration::from_millis(500));
    app.close()?;
    let mut keys: Vec<String> = out.iter().map(|r| decode_string(&output, r.key.as_deref())).collect();
    keys.sort();
    assert_eq!(keys, ["a1", "a2", "b1"]);
    Ok(())
}

/// A pattern source reads the topics created while the application runs, as Kafka Streams does at
/// its consumers' metadata refresh (`metadata.max.age.ms`, 0.5 s here). No topic matches at start; a
/// count by key (a store with its changelog) runs on two instances. Keys written to both topics count
/// exactly: partition p of both is read by one task, on one instance. A later topic with another
/// partition count (not co-partitioned) is refused, and the application goes on with the others.
pub(crate) fn a_pattern_source_picks_up_topics_created_while_it_runs() -> anyhow::Result<()> {
    let prefix = kafka::unique("live-pattern");
    let (a, b, wide, output) =
        (format!("{prefix}-in-a"), format!("{prefix}-in-b"), format!("{prefix}-in-wide"), format!("{prefix}-out"));
    kafka::create_topics(&[(&output, 1)]);
    let app_id = kafka::unique("live-pattern-app");
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream_pattern::<String, String>(&format!("{prefix}-in-.*"))
            .group_by_key()
            .count()
            .to_stream()
            .to(&output);
        Ok(builder.build()?)
    };
    let config = || {
        let mut config = kafka::config(&app_id);
        config.consumer_overrides.insert("metadata.max.age.ms".into(), "500".into());
        config
    };
    let mut first = kafka::streams(topology()?, config())?;
    first.start()?;
    let mut second = kafka::streams(topology()?, config())?;
    second.start()?;
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let records = |times: usize| {
        keys.iter()
            .flat_map(|k| std::iter::repeat_n((Some(k.as_bytes().to_vec()), Some(b"v".to_vec())), times))
            .collect::<Vec<_>>()
    };
    let last_counts = |records: &[kstreams::record::RawRecord]| -> BTreeMap<String, i64> {
        let mut last = BTreeMap::new();
        for r in records {
            let key = from_bytes(&*String::default_serde(), &output, r.key.as_deref()).ok().flatten();
            let count = from_bytes(&*i64::default_serde(), &output, r.value.as_deref()).ok().flatten();
            if let (Some(key), Some(count)) = (key, count) {
                last.insert(key, count);
            }
        }
        last
    };
    let counted = |n: i64| {
        let out = kafka::consume_until(&output, Duration::from_secs(90), |r| {
            let last = last_counts(r);
            last.len() == keys.len() && last.values().all(|&c| c == n)
        });
        last_counts(&out)
    };
    let all = |n: i64| keys.iter().map(|k| (k.clone(), n)).collect::<BTreeMap<String, i64>>();

    kafka::create_topics(&[(&a, 2)]);
    kafka::produce(&a, records(1));
    assert_eq!(counted(1), all(1), "the first topic, created after the start, is read");
    kafka::create_topics(&[(&b, 2)]);
    kafka::produce(&b, records(2));
    assert_eq!(counted(3), all(3), "each key's records of both topics counted once, by one task");
    // Not co-partitioned with the other two: refused (an error logged at each look), the rest goes on.
    kafka::create_topics(&[(&wide, 3)]);
    kafka::produce(&wide, vec![(Some(b"k0".to_vec()), Some(b"v".to_vec()))]);
    std::thread::sleep(Duration::from_secs(2));
    kafka::produce(&a, records(1));
    assert_eq!(counted(4), all(4), "the others are still read; the refused topic is not");
    assert_eq!(first.state(), State::Running);
    assert_eq!(second.state(), State::Running);
    first.close()?;
    second.close()?;
    let changelog = format!("{app_id}-KSTREAM-AGGREGATE-STATE-STORE-0000000001-changelog");
    let partitions = kafka::admin().partition_counts(std::slice::from_ref(&changelog))?;
    assert_eq!(partitions[&changelog], Some(2), "the changelog, created with the first topic, has its partitions");
    Ok(())
}

/// A partitioner is given the partition count of the topic it writes, as the broker has it, and the
/// records land where it said; several partitions per record write a copy to each (KIP-837).
pub(crate) fn a_partitioner_gets_the_topic_s_partition_count() -> anyhow::Result<()> {
    use kstreams::dsl::Produced;
    let (input, output, copies) = (kafka::unique("part-in"), kafka::unique("part-out"), kafka::unique("part-copies"));
    kafka::create_topics(&[(&input, 1), (&output, 3), (&copies, 2)]);
    let record = |k: &str| (Some(k.as_bytes().to_vec()), Some(b"v".to_vec()));
    kafka::produce(&input, vec![record("a"), record("bb"), record("ccc"), record("dddd")]);
    let builder = StreamsBuilder::new();
    let stream = builder.stream::<String, String>(&input);
    let by_length = Produced::new().with_partitioner(|_, key: &String, _: &String, n| {
        assert_eq!(n, 3, "the partition count of the output topic");
        Some((key.len() as u32 % n) as i32)
    });
    stream.to_with(&output, by_length);
    stream.to_with(&copies, Produced::new().with_multicast_partitioner(|_, _, _, n| Some((0..n as i32).collect())));
    let mut app = kafka::streams(builder.build()?, kafka::config(&kafka::unique("part-app")))?;
    app.start()?;
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 4);
    let copied = kafka::consume_until(&copies, Duration::from_secs(30), |r| r.len() >= 8);
    app.close()?;
    let mut placed: Vec<(String, i32)> =
        out.iter().map(|r| (decode_string(&output, r.key.as_deref()), r.partition)).collect();
    placed.sort();
    assert_eq!(placed, [("a".into(), 1), ("bb".into(), 2), ("ccc".into(), 0), ("dddd".into(), 1)]);
    assert_eq!(copied.len(), 8, "each record once in each of the 2 partitions");
    assert_eq!(copied.iter().filter(|r| r.partition == 1).count(), 4);
    Ok(())
}

/// A source's timestamp extractor gives records their timestamps (here the time in the value): the
/// output carries them, through a repartition topic too, and a record given a negative one is skipped.
pub(crate) fn a_source_s_timestamp_extractor_gives_records_their_timestamps() -> anyhow::Result<()> {
    use kstreams::processor::ConsumedRecord;
    let (input, output, counts) = (kafka::unique("ts-in"), kafka::unique("ts-out"), kafka::unique("ts-counts"));
    kafka::create_topics(&[(&input, 1), (&output, 1), (&counts, 1)]);
    let record = |k: &str, placed_at: i64| (Some(k.as_bytes().to_vec()), Some(placed_at.to_be_bytes().to_vec()));
    kafka::produce(&input, vec![record("a", 1_000), record("b", 3_000), record("c", -5), record("d", 2_000)]);
    let builder = StreamsBuilder::new();
    let placed_at = |r: &ConsumedRecord<String, i64>, _: i64| r.value.copied().unwrap_or(-1);
    let consumed = Consumed::with(String::default_serde(), i64::default_serde()).with_timestamp_extractor(placed_at);
    let stream = builder.stream_with(&input, consumed);
    stream.to(&output);
    stream.group_by(|_, _| "all".to_string()).count().to_stream().to(&counts);
    let mut app = kafka::streams(builder.build()?, kafka::config(&kafka::unique("ts-app")))?;
    app.start()?;
    let out = kafka::consume_until(&output, Duration::from_secs(60), |r| r.len() >= 3);
    let counted = kafka::consume_until(&counts, Duration::from_secs(60), |r| r.len() >= 3);
    app.close()?;
    let stamped: Vec<(String, i64)> =
        out.iter().map(|r| (decode_string(&output, r.key.as_deref()), r.timestamp)).collect();
    assert_eq!(stamped, [("a".into(), 1_000), ("b".into(), 3_000), ("d".into(), 2_000)]);
    // A count's timestamp is the latest of its records' (Kafka Streams' aggregations).
    let count_times: Vec<i64> = counted.iter().map(|r| r.timestamp).collect();
    assert_eq!(count_times, [1_000, 3_000, 3_000]);
    assert_eq!(app.metrics().dropped_records, 1, "the record with a negative time");
    Ok(())
}

/// The metrics an application publishes, read as Prometheus scrapes them (on Kafka, from the
/// exporter of `metrics.prometheus.listen.address`): Kafka Streams' names and tags at each level, and
/// figures that move as the records do. A word count over two partitions at DEBUG: the thread's
/// process total follows the records, each task's adds up to it, polls and commits are counted, the
/// store's gets and puts are timed, the source nodes' end-to-end latency, the restore figures and the
/// RocksDB store's properties are there, the client says one thread alive and RUNNING; on Kafka, the
/// consumer's lag of each input partition goes to 0.
pub(crate) fn metrics_move_with_the_records_under_kafka_streams_names() -> anyhow::Result<()> {
    use kafka::metrics::Sample;
    let (input, output, app_id) =
        (kafka::unique("metrics-in"), kafka::unique("metrics-out"), kafka::unique("metrics-app"));
    kafka::create_topics(&[(&input, 2), (&output, 2)]);
    let words = |n: usize, from: usize| {
        (from..from + n).map(|i| (Some(format!("w{}", i % 10).into_bytes()), Some(b"x".to_vec()))).collect::<Vec<_>>()
    };
    kafka::produce(&input, words(100, 0));
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>(&input).group_by_key().count().to_stream().to(&output);
    let mut config = kafka::config(&app_id);
    config.set("metrics.recording.level", "DEBUG")?;
    let reader = kafka::metrics::reader(&mut config);
    let mut app = kafka::streams(builder.build()?, config)?;
    app.start()?;
    let mine = |s: &Sample| s.labels.values().any(|v| v.starts_with(&app_id));
    let sum = |samples: &[Sample], name: &str| -> f64 {
        samples.iter().filter(|s| s.name == name && mine(s)).map(|s| s.value).sum()
    };
    // Published each second: wait until the figures show `processed` records.
    let wait_for = |processed: f64| -> Vec<Sample> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let samples = reader.scrape();
            let done = sum(&samples, "kafka_streams_stream_thread_metrics_process_total") >= processed
                && sum(&samples, "kafka_streams_stream_task_metrics_process_total") >= processed;
            if done || std::time::Instant::now() > deadline {
                return samples;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let first = wait_for(100.0);
    assert_eq!(sum(&first, "kafka_streams_stream_thread_metrics_process_total"), 100.0);
    assert_eq!(sum(&first, "kafka_streams_stream_task_metrics_process_total"), 100.0);
    let tasks: std::collections::BTreeSet<&str> = first
        .iter()
        .filter(|s| s.name == "kafka_streams_stream_task_metrics_process_total" && mine(s))
        .filter_map(|s| s.labels.get("task_id").map(String::as_str))
        .collect();
    assert_eq!(tasks, ["0_0", "0_1"].into_iter().collect());
    for name in [
        "kafka_streams_stream_thread_metrics_poll_total",
        "kafka_streams_stream_thread_metrics_commit_total",
        "kafka_streams_stream_thread_metrics_process_rate",
        "kafka_streams_stream_thread_metrics_task_created_total",
    ] {
        assert!(sum(&first, name) > 0.0, "{name} should have moved");
    }
    let present = |samples: &[Sample], name: &str| samples.iter().any(|s| s.name == name && mine(s));
    for name in [
        "kafka_streams_stream_thread_metrics_process_latency_avg",
        "kafka_streams_stream_thread_metrics_commit_latency_max",
        "kafka_streams_stream_thread_metrics_poll_records_max",
        "kafka_streams_stream_task_metrics_dropped_records_total",
        "kafka_streams_stream_processor_node_metrics_record_e2e_latency_max",
        "kafka_streams_stream_state_metrics_estimate_num_keys",
        "kafka_streams_stream_state_metrics_block_cache_usage",
        "kafka_streams_stream_task_metrics_restore_remaining_records_total",
        "kafka_streams_stream_task_metrics_restore_total",
    ] {
        assert!(present(&first, name), "{name} is missing");
    }
    // At DEBUG the count's store is metered: each record reads and writes its key (through the store's
    // timestamped layer), timed in nanoseconds.
    let store_figure = |samples: &[Sample], name: &str| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name && mine(s) && s.labels.contains_key("rocksdb_state_id"))
            .map(|s| s.value)
            .filter(|v| !v.is_nan())
            .sum()
    };
    for name in [
        "kafka_streams_stream_state_metrics_get_rate",
        "kafka_streams_stream_state_metrics_put_rate",
        "kafka_streams_stream_state_metrics_put_latency_max",
    ] {
        assert!(store_figure(&first, name) > 0.0, "{name} should have moved");
    }
    let client = |samples: &[Sample], name: &str| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels.get("client_id").is_some_and(|c| c.starts_with(&app_id)))
            .map(|s| s.value)
    };
    assert_eq!(client(&first, "kafka_streams_stream_metrics_alive_stream_threads"), Some(1.0));
    assert_eq!(client(&first, "kafka_streams_stream_metrics_client_state"), Some(2.0), "RUNNING");

    kafka::produce(&input, words(50, 100));
    let second = wait_for(150.0);
    assert_eq!(sum(&second, "kafka_streams_stream_thread_metrics_process_total"), 150.0);
    assert!(
        sum(&second, "kafka_streams_stream_thread_metrics_commit_total")
            > sum(&first, "kafka_streams_stream_thread_metrics_commit_total")
    );
    if kafka::on_kafka() {
        // librdkafka's statistics, every second: each input partition fetched to its end.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let samples = reader.scrape();
            let lags: Vec<f64> = samples
                .iter()
                .filter(|s| s.name == "kafka_consumer_consumer_fetch_manager_metrics_records_lag" && mine(s))
                .filter(|s| s.labels.get("topic").is_some_and(|t| *t == input.replace('.', "_")))
                .map(|s| s.value)
                .collect();
            if lags.len() == 2 && lags.iter().all(|l| *l == 0.0) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "input partitions' lag: {lags:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    app.close()?;
    Ok(())
}
