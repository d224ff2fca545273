//! Per-customer order totals served over HTTP while the application runs: interactive queries of its
//! store, behind an axum server on tokio, across the application's instances.
//!
//! `cargo run --example order_totals_http --features tokio [-- --orders N] [--listen 127.0.0.1:8080]
//! [--instances N]`: produces orders, runs N instances of the totals application (on the embedded
//! broker, or on Kafka with `--bootstrap-servers HOST:PORT`), each with its own HTTP server (the
//! listen port, then the next ones; port 0: any free port) given to the application as its
//! `application.server`, and serves until Ctrl-C. Every server answers for every customer:
//! - `GET /totals/{customer}`: `{"customer":101,"total":218.87}`, or 404 when the customer has none;
//!   asked of an instance that does not hold the customer, it asks the one that does
//!   (`query_metadata_for_key`) for the customer's partition and passes its answer on;
//! - `GET /totals`: every customer's total, gathered partition by partition from the instances that
//!   hold them (`streams_metadata_for_store`), in customer order;
//! - 503 with `Retry-After: 1` while the store cannot be read now (restoring, or moving between
//!   instances during a rebalance): never a wrong answer.
//!
//! With `--check` it asks every server for every customer's total until each matches a plain loop
//! over the orders in the topic, prints them, and closes (what the tests run).

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
use kstreams::config::GroupAssignor;
use kstreams::prelude::*;
use kstreams::runtime::{HostInfo, KafkaStreams, LocalKeyValueStore, QueryableStoreTypes, State, StoreQueryParameters};
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
const PARTITIONS: i32 = 4;

/// How long a question forwarded to another instance may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Where the first instance's HTTP server listens (port 0: any free port, printed at start); the
    /// others listen on the next ports.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// How many instances of the application to run, each with its own server.
    #[arg(long, default_value_t = 1, value_name = "N")]
    instances: u16,
    /// Check every customer's total through every server, then close.
    #[arg(long)]
    check: bool,
}

/// One instance of the application and what its server needs.
struct Instance {
    app: KafkaStreams,
    /// Its own address (`application.server`).
    me: HostInfo,
}

fn main() -> anyhow::Result<()> {
    let Args { common, orders, listen, instances, check } = support::start()?;
    // The blocking work (topics, the orders) is done before the runtime starts: no worker waits on it.
    let cluster = common.cluster()?;
    cluster.create_topics(&[ORDERS, TOTALS], PARTITIONS)?;
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
    // Each instance's server listens before its application starts: the address it is given to
    // announce is the one bound (a port 0 becomes a real one).
    let mut servers = Vec::new();
    for i in 0..instances {
        let port = match listen.port() {
            0 => 0,
            first => first.checked_add(i).context("--listen's port plus --instances goes past 65535")?,
        };
        let address = SocketAddr::new(listen.ip(), port);
        let listener = std::net::TcpListener::bind(address).with_context(|| format!("listen on {address}"))?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let mut config = cluster.config("order-totals-http-example");
        config.commit_interval = Some(Duration::from_millis(200));
        config.group_assignor = GroupAssignor::Streams;
        config.application_server = Some(bound.to_string());
        config.state_dir = config.state_dir.join(format!("instance-{i}"));
        let app = cluster.app(topology()?, config)?;
        let me = HostInfo::new(bound.ip().to_string(), bound.port());
        servers.push((Instance { app, me }, listener));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(servers, check.then_some(expected)))
}

/// Starts the instances, serves their totals, and closes them at Ctrl-C, or once `check` (the
/// expected totals) is answered right by every server.
async fn serve(
    servers: Vec<(Instance, std::net::TcpListener)>,
    check: Option<BTreeMap<i64, f64>>,
) -> anyhow::Result<()> {
    let mut started = Vec::new();
    for (Instance { app, me }, listener) in servers {
        match app.start_async().await {
            Ok(app) => started.push((Arc::new(Instance { app, me }), listener)),
            Err(e) => {
                close_all(started.into_iter().map(|(instance, _)| instance).collect()).await;
                return Err(e.into());
            }
        }
    }
    let instances: Vec<Arc<Instance>> = started.iter().map(|(instance, _)| instance.clone()).collect();
    // Closed on every path: dropping a started instance would close it on this thread, blocking.
    let outcome = serve_running(started, check).await;
    println!("closing: committing and leaving the group");
    close_all(instances).await;
    outcome
}

/// Closes every instance (once its server has let it go).
async fn close_all(instances: Vec<Arc<Instance>>) {
    for instance in instances {
        match Arc::try_unwrap(instance) {
            Ok(Instance { app, .. }) => {
                if let Err(e) = app.close_async().await {
                    eprintln!("closing an instance: {e}");
                }
            }
            Err(_) => eprintln!("an instance is still in use by its server; it closes as it is dropped"),
        }
    }
}

/// Serves the totals of the running instances until Ctrl-C, a failure, or the end of the check.
async fn serve_running(
    started: Vec<(Arc<Instance>, std::net::TcpListener)>,
    check: Option<BTreeMap<i64, f64>>,
) -> anyhow::Result<()> {
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let mut addresses = Vec::new();
    for (instance, listener) in &started {
        let router = Router::new()
            .route("/totals", get(all_totals))
            .route("/totals/{customer}", get(one_total))
            .route("/local/partitions/{partition}/totals", get(local_totals))
            .route("/local/partitions/{partition}/totals/{customer}", get(local_total))
            .with_state(instance.clone());
        let listener = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
        let address = listener.local_addr()?;
        println!("serving the totals on http://{address}/totals/{{customer}} (Ctrl-C to stop)");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(async move { stopped.await.unwrap_or_default() }).await
        }));
        stops.push(stop);
        addresses.push(address);
    }
    let instances: Vec<Arc<Instance>> = started.into_iter().map(|(instance, _)| instance).collect();
    let outcome = match check {
        Some(expected) => check_totals(&instances, &addresses, &expected).await,
        None => loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if support::stop_requested() {
                break Ok(());
            }
            if let Err(e) = running(&instances) {
                break Err(e);
            }
        },
    };
    drop(instances);
    for stop in stops {
        let _ = stop.send(());
    }
    for task in tasks {
        task.await??;
    }
    outcome
}

/// Fails when an instance has failed.
fn running(instances: &[Arc<Instance>]) -> anyhow::Result<()> {
    for instance in instances {
        let app = &instance.app;
        anyhow::ensure!(app.state() != State::Error, "the instance at {} failed: {:?}", instance.me, app.take_error());
    }
    Ok(())
}

/// Partition `partition` of the instance's store of totals: an error (`Migrated`, retriable) when the
/// instance does not hold it now, so that a question asked of the wrong instance is never answered
/// "no orders".
fn local_store(instance: &Instance, partition: i32) -> Result<LocalKeyValueStore<i64, f64>, StreamsError> {
    let params = StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<i64, f64>());
    instance.app.store(params.with_partition(partition))
}

/// `GET /totals/{customer}`: from here when this instance holds the customer's partition, else from
/// the one that does (`query_metadata_for_key`).
async fn one_total(Extract(instance): Extract<Arc<Instance>>, Path(customer): Path<i64>) -> Response {
    let (holder, partition) = match instance.app.query_metadata_for_key("totals", &customer, &*i64::default_serde()) {
        Ok(metadata) => (metadata.active_host, metadata.partition),
        Err(error) => return unavailable(error),
    };
    if holder == instance.me {
        return local_total(Extract(instance), Path((partition, customer))).await;
    }
    // Asked at its local route for that partition: a holder that has meanwhile lost it answers 503,
    // rather than "no orders", or asking on in a circle.
    forward(&holder, &format!("/local/partitions/{partition}/totals/{customer}")).await
}

/// `GET path` of the instance at `holder`, its answer passed on (503 when it does not answer in time).
async fn forward(holder: &HostInfo, path: &str) -> Response {
    match tokio::time::timeout(FORWARD_TIMEOUT, http_get(&holder.to_string(), path)).await {
        Ok(Ok((status, body))) => passed_on(status, body),
        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, format!("asking {holder}: {e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], format!("{holder} did not answer\n"))
            .into_response(),
    }
}

/// `GET /local/partitions/{partition}/totals/{customer}`: from this instance's store only.
async fn local_total(
    Extract(instance): Extract<Arc<Instance>>,
    Path((partition, customer)): Path<(i32, i64)>,
) -> Response {
    // A query waits for the stream thread's current step: on the blocking pool, not on a worker.
    match tokio::task::spawn_blocking(move || local_store(&instance, partition)?.get(&customer)).await {
        Ok(Ok(Some(total))) => Json(Total { customer, total }).into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, format!("no orders of customer {customer}\n")).into_response(),
        Ok(Err(error)) => unavailable(error),
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{panic}\n")).into_response(),
    }
}

/// `GET /totals`: every partition's totals, each asked of the instance that holds it
/// (`streams_metadata_for_store`), merged; 503 while a partition has no holder (a rebalance).
async fn all_totals(Extract(instance): Extract<Arc<Instance>>) -> Response {
    let mut holders: BTreeMap<i32, HostInfo> = BTreeMap::new();
    for metadata in instance.app.streams_metadata_for_store("totals") {
        for tp in metadata.topic_partitions.iter().filter(|tp| &*tp.topic == ORDERS) {
            holders.insert(tp.partition, metadata.host_info.clone());
        }
    }
    if holders.len() != PARTITIONS as usize {
        let message = format!("only partitions {:?} of {PARTITIONS} have an instance now\n", holders.keys());
        return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], message).into_response();
    }
    let mut all: BTreeMap<i64, f64> = BTreeMap::new();
    for (partition, holder) in holders {
        let response = forward(&holder, &format!("/local/partitions/{partition}/totals")).await;
        if response.status() != StatusCode::OK {
            return response;
        }
        let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(body) => body,
            Err(e) => return (StatusCode::BAD_GATEWAY, format!("reading {holder}'s answer: {e}\n")).into_response(),
        };
        match serde_json::from_slice::<Vec<Total>>(&body) {
            Ok(totals) => all.extend(totals.into_iter().map(|t| (t.customer, t.total))),
            Err(e) => return (StatusCode::BAD_GATEWAY, format!("{holder}'s answer: {e}\n")).into_response(),
        }
    }
    Json(all.into_iter().map(|(customer, total)| Total { customer, total }).collect::<Vec<_>>()).into_response()
}

/// `GET /local/partitions/{partition}/totals`: every total of that partition, from this instance.
async fn local_totals(Extract(instance): Extract<Arc<Instance>>, Path(partition): Path<i32>) -> Response {
    match tokio::task::spawn_blocking(move || local_store(&instance, partition)?.all()).await {
        Ok(Ok(all)) => {
            Json(all.into_iter().map(|(customer, total)| Total { customer, total }).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(error)) => unavailable(error),
        Err(panic) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{panic}\n")).into_response(),
    }
}

/// Another instance's answer, passed on as it came.
fn passed_on(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    if status == StatusCode::OK {
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    response
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

/// Asks every server for each customer's total, and for all of them, until all match `expected` (60 s
/// at most).
async fn check_totals(
    instances: &[Arc<Instance>],
    addresses: &[SocketAddr],
    expected: &BTreeMap<i64, f64>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let matches = |answers: &BTreeMap<i64, f64>| {
        answers.len() == expected.len()
            && answers.iter().all(|(customer, total)| (total - expected[customer]).abs() < 1e-6)
    };
    loop {
        running(instances)?;
        let mut right = true;
        let mut first_answers = BTreeMap::new();
        for address in addresses {
            let mut answers = BTreeMap::new();
            for customer in expected.keys() {
                let (address, path) = (address.to_string(), format!("/totals/{customer}"));
                let request = http_get(&address, &path);
                let (status, body) =
                    tokio::time::timeout(Duration::from_secs(10), request).await.context("no answer in 10 s")??;
                if status == 200 {
                    let total: Total = serde_json::from_str(&body).with_context(|| format!("the answer {body}"))?;
                    answers.insert(*customer, total.total);
                }
            }
            let (status, body) = http_get(&address.to_string(), "/totals").await?;
            let all: BTreeMap<i64, f64> = match status {
                200 => serde_json::from_str::<Vec<Total>>(&body)
                    .with_context(|| format!("the answer {body}"))?
                    .into_iter()
                    .map(|t| (t.customer, t.total))
                    .collect(),
                _ => BTreeMap::new(),
            };
            right &= matches(&answers) && matches(&all);
            if first_answers.is_empty() {
                first_answers = answers;
            }
        }
        if right {
            for (customer, total) in &first_answers {
                println!("GET /totals/{customer} -> {total:.2}");
            }
            println!(
                "every customer's total served over HTTP matches a plain loop over the orders (asked of each of {} instances)",
                addresses.len()
            );
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the servers' totals {first_answers:?} never became {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` on `address` (`host:port`) over plain HTTP/1.1: the status and the body.
async fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).context("an HTTP status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok((status, body))
}
