//! Per-customer order totals served over HTTP while the application runs: interactive queries of its
//! store, behind an axum server on tokio.
//!
//! `cargo run --example order_totals_http --features tokio [-- --orders N] [--listen 127.0.0.1:8080]`:
//! produces orders, runs the totals application (on the embedded broker, or on Kafka with
//! `--bootstrap-servers HOST:PORT`), and serves until Ctrl-C:
//! - `GET /totals/{customer}`: `{"customer":101,"total":218.87}`, or 404 when the customer has none;
//! - `GET /totals`: every customer's total, in customer order;
//! - 503 with `Retry-After: 1` while the store cannot be read now (restoring, or moving between
//!   instances during a rebalance): never a wrong answer.
//!
//! With `--check` it asks its own server for every customer's total until each matches a plain loop
//! over the orders in the topic, prints them, and closes (what the tests run).
//!
//! One instance answers for the partitions it holds; routing a question to the instance that holds the
//! key is not there yet (docs/interactive-queries.md).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State as Extract};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, LocalKeyValueStore, QueryableStoreTypes, State, StoreQueryParameters};
use serde::{Deserialize, Serialize};
use support::CommonArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// The example's topics: its own, so that it can run beside `order_totals` on one Kafka.
const ORDERS: &str = "orders-http";
const TOTALS: &str = "customer-totals-http";

/// What `/totals/{customer}` answers.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Total {
    customer: i64,
    total: f64,
}

/// The totals application: valid orders' values summed per customer into the store `totals`.
fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, Order>(ORDERS)
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce_with(|a, b| a + b, Materialized::as_store("totals"))
        .to_stream()
        .to(TOTALS);
    builder.build()
}

/// Per-customer order totals, served over HTTP.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many orders to produce.
    #[arg(long, default_value_t = 30, value_name = "N")]
    orders: u64,
    /// Where the HTTP server listens (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Check every customer's total through the server, then close.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let Args { common, orders, listen, check } = support::start()?;
    // The blocking work (topics, the orders) is done before the runtime starts: no worker waits on it.
    let cluster = common.cluster()?;
    cluster.create_topics(&[ORDERS, TOTALS], 4)?;
    let mut producer = cluster.producer();
    for order_id in 0..orders {
        let total_value = if order_id % 7 == 3 { -1.0 } else { (order_id % 40) as f64 + 0.99 };
        let order = Order { order_id, customer_id: (order_id % 5) as i64 + 100, total_value };
        producer.send(ORDERS, &order.customer_id, &order, -1)?;
    }
    producer.flush()?;
    println!("produced {orders} orders to `{ORDERS}` on {}", cluster.describe());
    // The totals cover every order in the topic, earlier runs' (and other examples') too.
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    for (_, order) in cluster.read::<i64, Order>(ORDERS)? {
        if let Some(order) = order.filter(|o| o.total_value > 0.0) {
            *expected.entry(order.customer_id).or_insert(0.0) += order.total_value;
        }
    }
    let mut config = cluster.config("order-totals-http-example");
    config.commit_interval = Some(Duration::from_millis(200));
    let app = cluster.app(topology()?, config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(app, listen, check.then_some(expected)))
}

/// Starts `app`, serves its totals on `listen`, and closes it at Ctrl-C, or once `check` (the expected
/// totals) is answered right by the server.
async fn serve(app: KafkaStreams, listen: SocketAddr, check: Option<BTreeMap<i64, f64>>) -> anyhow::Result<()> {
    let app = app.start_async().await?;
    // Closed on every path: dropping a started instance would close it on this thread, blocking.
    let outcome = serve_running(&app, listen, check).await;
    println!("closing: committing and leaving the group");
    app.close_async().await?;
    outcome
}

/// Serves the totals of the running `app` until Ctrl-C, its failure, or the end of the check.
async fn serve_running(
    app: &KafkaStreams,
    listen: SocketAddr,
    check: Option<BTreeMap<i64, f64>>,
) -> anyhow::Result<()> {
    let totals =
        app.store(StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<i64, f64>()))?;
    let router = Router::new()
        .route("/totals", get(all_totals))
        .route("/totals/{customer}", get(one_total))
        .with_state(Arc::new(totals));
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen on {listen}"))?;
    let address = listener.local_addr()?;
    println!("serving the totals on http://{address}/totals/{{customer}} (Ctrl-C to stop)");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(async move { stopped.await.unwrap_or_default() }).await
    });
    let mut states = app.state_receiver();
    let outcome = match check {
        Some(expected) => check_totals(app, address, &expected).await,
        None => loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => if support::stop_requested() { break Ok(()) },
                changed = states.changed() => {
                    let state = *states.borrow();
                    println!("state: {state:?}");
                    if changed.is_err() || state == State::Error {
                        break Err(anyhow::anyhow!("the application failed: {:?}", app.take_error()));
                    }
                }
            }
        },
    };
    let _ = stop.send(());
    server.await??;
    outcome
}

/// `GET /totals/{customer}`.
async fn one_total(Extract(totals): Extract<Arc<LocalKeyValueStore<i64, f64>>>, Path(customer): Path<i64>) -> Response {
    // A query waits for the stream thread's current step: on the blocking pool, not on a worker.
    match tokio::task::spawn_blocking(move || totals.get(&customer)).await {
        Ok(Ok(Some(total))) => Json(Total { customer, total }).into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, format!("no orders of customer {customer}\n")).into_response(),
        Ok(Err(error)) => unavailable(error),
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{panic}\n")).into_response(),
    }
}

/// `GET /totals`.
async fn all_totals(Extract(totals): Extract<Arc<LocalKeyValueStore<i64, f64>>>) -> Response {
    match tokio::task::spawn_blocking(move || totals.all()).await {
        Ok(Ok(all)) => {
            Json(all.into_iter().map(|(customer, total)| Total { customer, total }).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(error)) => unavailable(error),
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{panic}\n")).into_response(),
    }
}

/// A store that cannot be read: 503 and "ask again in a second" when that may help, 500 otherwise.
fn unavailable(error: StreamsError) -> Response {
    match &error {
        StreamsError::StoreUnavailable { reason, .. } if reason.is_retriable() => {
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], format!("{error}\n")).into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}

/// Asks the server at `address` for each customer's total until all match `expected` (60 s at most).
async fn check_totals(app: &KafkaStreams, address: SocketAddr, expected: &BTreeMap<i64, f64>) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        anyhow::ensure!(app.state() != State::Error, "the application failed: {:?}", app.take_error());
        let mut answers = BTreeMap::new();
        for customer in expected.keys() {
            let path = format!("/totals/{customer}");
            let request = http_get(address, &path);
            let (status, body) =
                tokio::time::timeout(Duration::from_secs(10), request).await.context("no answer in 10 s")??;
            if status == 200 {
                let total: Total = serde_json::from_str(&body).with_context(|| format!("the answer {body}"))?;
                answers.insert(*customer, total.total);
            }
        }
        let right = answers.len() == expected.len()
            && answers.iter().all(|(customer, total)| (total - expected[customer]).abs() < 1e-6);
        if right {
            for (customer, total) in &answers {
                println!("GET /totals/{customer} -> {total:.2}");
            }
            println!("every customer's total served over HTTP matches a plain loop over the orders");
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the server's totals {answers:?} never became {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` on `address` over plain HTTP/1.1: the status and the body.
async fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).context("an HTTP status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok((status, body))
}
