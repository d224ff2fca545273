//! Versioned key-value stores (KIP-889) through the Processor API in the test driver: prices kept with
//! the time each became valid, and looked up as of the time of each order.

use std::sync::Arc;
use std::time::Duration;

use kstreams::prelude::*;
use kstreams::serde::{I64Serde, StringSerde};
use kstreams::store::{Stores, PUT_RETURN_CODE_NOT_PUT};

#[path = "scenarios/versioned_topology.rs"]
mod versioned_topology;
use versioned_topology::prices_topology;

#[test]
fn a_versioned_store_answers_as_of_each_record_s_time() -> Result<(), Box<dyn std::error::Error>> {
    let mut driver = TopologyTestDriver::new(prices_topology("prices", "orders", "put-results", "prices-at")?)?;
    let prices = driver.input_topic::<String, i64>("prices");
    let orders = driver.input_topic::<String, String>("orders");
    let puts = driver.output_topic::<String, i64>("put-results");
    let answers = driver.output_topic::<String, i64>("prices-at");
    driver.pipe(&prices, "tea".into(), 3, 1_000)?;
    driver.pipe(&prices, "tea".into(), 5, 10_000)?;
    driver.pipe(&prices, "tea".into(), 4, 5_000)?; // out of order: valid until 10 s
    driver.pipe(&prices, "tea".into(), 9, 80_000)?;
    driver.pipe(&prices, "tea".into(), 1, 10_000)?; // older than 80 s minus the minute of history
    let put_results: Vec<i64> = driver.read_key_values(&puts).into_iter().map(|(_, v)| v).collect();
    assert_eq!(put_results, vec![-1, -1, 10_000, -1, PUT_RETURN_CODE_NOT_PUT]);

    for (at, _) in [(500, ()), (1_000, ()), (7_000, ()), (30_000, ()), (90_000, ())] {
        driver.pipe(&orders, "tea".into(), "order".into(), at)?;
    }
    driver.pipe(&orders, "coffee".into(), "order".into(), 90_000)?;
    let answers: Vec<i64> = driver.read_key_values(&answers).into_iter().map(|(_, v)| v).collect();
    // At 0.5 s, 1 s and 7 s the lookups are older than the history allows (90 s - 60 s): only the newest
    // version (from 80 s) could answer, and it is newer.
    assert_eq!(answers, vec![-1, -1, -1, 5, 9, -1]);
    Ok(())
}

#[test]
fn a_versioned_store_asked_for_with_other_types_is_an_error_naming_it() -> Result<(), Box<dyn std::error::Error>> {
    struct Wrong;
    impl Processor<String, String, String, String> for Wrong {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, String>,
            _: Record<String, String>,
        ) -> Result<(), StreamsError> {
            ctx.versioned_store::<String, String>("prices").map(drop)
        }
    }
    let mut topology = Topology::new();
    let store = Stores::versioned_key_value_store_builder(
        Stores::persistent_versioned_key_value_store("prices", Duration::from_secs(60)),
        Arc::new(StringSerde),
        Arc::new(I64Serde),
    )
    .with_caching_enabled(); // ignored: a versioned store is never cached
    topology.add_source("in", &["in"], Arc::new(StringSerde), Arc::new(StringSerde))?;
    topology.add_processor("wrong", || Wrong, &["in"])?;
    topology.add_state_store(store, &["wrong"])?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, String>("in");
    let error = kstreams::handler::error_chain(&driver.pipe(&input, "k".into(), "v".into(), 0).unwrap_err());
    assert!(error.contains("prices") && error.contains("versioned"), "{error}");
    Ok(())
}
