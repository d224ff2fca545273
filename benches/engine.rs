//! The engine in process, no broker: `cargo bench --bench engine` (criterion; `-- --quick` for a short
//! run). Every figure is per record, through the same tasks, processors and stores the runtime runs,
//! driven by the test driver (`TopologyTestDriver`) on one thread:
//!
//! - `order_totals/{json,postcard}`: the README's topology (`filter → map_values → group_by_key →
//!   reduce → to_stream → to`) over 10,000 customers, with orders in JSON (the project's `JsonSerde`)
//!   or in postcard, a compact binary serde, through a `Serde` impl below;
//! - `operator/*`: one operator between a source and a sink on `i64` keys and values (Kafka's binary
//!   formats), so that `operator/X - operator/source_to_sink` is the cost of X;
//! - `serde/*`: encoding and decoding one order, JSON against postcard, and one `i64`;
//! - `store_cache/*`: the record cache in front of a Processor-API store built `with_caching_enabled()`
//!   (state-store's `CachingKeyValueStore` over an in-memory store), driven directly as a processor
//!   drives it: `count` reads and writes one of 1,000 keys per record, `count_and_range` also scans 10
//!   keys every 10th record; the cache is written out once per batch, as a commit does. `uncached_*` is
//!   the same work on the store alone.
//!
//! The test driver's own work per record (queueing the input, collecting the output) is in every
//! figure; the outputs are taken back with a serde that decodes nothing. `scripts/bench-compare.sh` runs
//! this and puts the figures in docs/benchmarks.md.

use std::hint::black_box;
use std::marker::PhantomData;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kstreams::prelude::*;
use kstreams::serde::{I64Serde, SerdeError};
use kstreams::testing::{TestInputTopic, TestOutputTopic};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Records per measured iteration: the outputs are drained once per batch.
const BATCH: u64 = 10_000;
const CUSTOMERS: i64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// postcard (varint integers, little-endian floats) for any serde type.
struct PostcardSerde<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for PostcardSerde<T> {
    fn serialize(&self, topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let bytes = std::mem::take(out);
        *out = postcard::to_extend(value, bytes)
            .map_err(|e| SerdeError::with_source(std::any::type_name::<T>(), topic, "cannot write postcard", e))?;
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<T, SerdeError> {
        postcard::from_bytes(bytes)
            .map_err(|e| SerdeError::with_source(std::any::type_name::<T>(), topic, "invalid postcard", e))
    }
}

/// Reads nothing: takes the outputs back from the driver without decoding them.
struct Discard;

impl Serde<()> for Discard {
    fn serialize(&self, _: &str, _: &(), _: &mut Vec<u8>) -> Result<(), SerdeError> {
        Ok(())
    }

    fn deserialize(&self, _: &str, _: &[u8]) -> Result<(), SerdeError> {
        Ok(())
    }

    fn null_value(&self) -> Option<()> {
        Some(())
    }
}

fn orders() -> Vec<Order> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    (0..BATCH)
        .map(|order_id| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // About one order in ten is invalid (zero or negative), as in the example.
            let total_value = (seed % 10_000) as f64 / 100.0 - 10.0;
            Order { order_id, customer_id: (seed >> 20) as i64 % CUSTOMERS, total_value }
        })
        .collect()
}

/// A driver for `topology` with the input and a discarding output handle.
struct Rig<K, V> {
    driver: TopologyTestDriver,
    input: TestInputTopic<K, V>,
    output: TestOutputTopic<(), ()>,
}

impl<K: 'static, V: 'static> Rig<K, V> {
    fn new(topology: Topology, key: Arc<dyn Serde<K>>, value: Arc<dyn Serde<V>>) -> Self {
        let driver = TopologyTestDriver::new(topology).expect("the bench topology is valid");
        let input = driver.input_topic_with("in", key, value);
        let output = driver.output_topic_with("out", Arc::new(Discard), Arc::new(Discard));
        Rig { driver, input, output }
    }

    fn pipe_all(&mut self, records: impl Iterator<Item = (K, V)>) {
        for (i, (k, v)) in records.enumerate() {
            self.driver.pipe(&self.input, k, v, i as i64).expect("the bench records are valid");
        }
        black_box(self.driver.read_records(&self.output).expect("discarding cannot fail").len());
    }
}

fn order_totals(c: &mut Criterion) {
    let mut group = c.benchmark_group("order_totals");
    group.throughput(Throughput::Elements(BATCH));
    let orders = orders();
    let serdes: [(&str, Arc<dyn Serde<Order>>); 2] =
        [("json", Arc::new(JsonSerde::<Order>::new())), ("postcard", Arc::new(PostcardSerde(PhantomData)))];
    for (name, serde) in serdes {
        let builder = StreamsBuilder::new();
        builder
            .stream_with::<i64, Order>("in", Consumed::with(Arc::new(I64Serde), serde.clone()))
            .filter(|_, order| order.total_value > 0.0)
            .map_values(|order| order.total_value)
            .group_by_key()
            .reduce(|a, b| a + b)
            .to_stream()
            .to("out");
        let mut rig = Rig::new(builder.build().expect("valid"), Arc::new(I64Serde), serde);
        group.bench_function(name, |b| {
            b.iter_batched(
                || orders.clone(),
                |batch| rig.pipe_all(batch.into_iter().map(|o| (o.customer_id, o))),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn operator(c: &mut Criterion) {
    let mut group = c.benchmark_group("operator");
    group.throughput(Throughput::Elements(BATCH));
    type Shape = fn(&KStream<i64, i64>);
    let shapes: [(&str, Shape); 5] = [
        ("source_to_sink", |s| s.to("out")),
        ("filter", |s| s.filter(|_, v| v % 10 != 0).to("out")),
        ("map_values", |s| s.map_values(|v| v + 1).to("out")),
        ("group_by_key_count", |s| s.group_by_key().count().to_stream().to("out")),
        ("group_by_key_reduce", |s| s.group_by_key().reduce(|a, b| a + b).to_stream().to("out")),
    ];
    for (name, shape) in shapes {
        let builder = StreamsBuilder::new();
        shape(&builder.stream::<i64, i64>("in"));
        let mut rig = Rig::new(builder.build().expect("valid"), Arc::new(I64Serde), Arc::new(I64Serde));
        group.bench_function(name, |b| b.iter(|| rig.pipe_all((0..BATCH as i64).map(|i| (i % CUSTOMERS, i)))));
    }
    group.finish();
}

fn serde(c: &mut Criterion) {
    let mut group = c.benchmark_group("serde");
    group.throughput(Throughput::Elements(BATCH));
    let orders = orders();
    let json = JsonSerde::<Order>::new();
    let postcard = PostcardSerde::<Order>(PhantomData);
    let formats: [(&str, &dyn Serde<Order>); 2] = [("json", &json), ("postcard", &postcard)];
    for (name, serde) in formats {
        let encoded: Vec<Vec<u8>> = orders
            .iter()
            .map(|o| {
                let mut out = Vec::new();
                serde.serialize("t", o, &mut out).expect("encodes");
                out
            })
            .collect();
        let mut buffer = Vec::with_capacity(64);
        group.bench_function(format!("{name}_serialize"), |b| {
            b.iter(|| {
                for o in &orders {
                    buffer.clear();
                    serde.serialize("t", o, &mut buffer).expect("encodes");
                    black_box(&buffer);
                }
            })
        });
        group.bench_function(format!("{name}_deserialize"), |b| {
            b.iter(|| {
                for bytes in &encoded {
                    black_box(serde.deserialize("t", bytes).expect("decodes"));
                }
            })
        });
    }
    let mut buffer = Vec::with_capacity(8);
    group.bench_function("i64_serialize", |b| {
        b.iter(|| {
            for i in 0..BATCH as i64 {
                buffer.clear();
                I64Serde.serialize("t", &black_box(i), &mut buffer).expect("encodes");
                black_box(&buffer);
            }
        })
    });
    let encoded: Vec<[u8; 8]> = (0..BATCH as i64).map(i64::to_be_bytes).collect();
    group.bench_function("i64_deserialize", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(I64Serde.deserialize("t", bytes).expect("decodes"));
            }
        })
    });
    group.finish();
}

fn store_cache(c: &mut Criterion) {
    use state_store::{CacheBudget, CachingKeyValueStore, InMemoryKeyValueStore, KeyValueStore};
    use std::ops::Bound;
    const KEYS: u64 = 1_000;
    let mut group = c.benchmark_group("store_cache");
    group.throughput(Throughput::Elements(BATCH));
    /// One batch of a per-key count; with `scan`, every 10th record also reads 10 keys in order.
    fn batch(store: &mut dyn KeyValueStore, scan: bool) {
        for i in 0..BATCH {
            let key = (i * 7919 % KEYS).to_be_bytes();
            let count = store.get(&key).expect("get").map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")));
            store.put(&key, &(count + 1).to_be_bytes()).expect("put");
            if scan && i % 10 == 0 {
                let to = (i * 7919 % KEYS + 10).to_be_bytes();
                let range = store.range(Bound::Included(&key[..]), Bound::Excluded(&to[..])).expect("range");
                black_box(range.count());
            }
        }
        store.flush_cache().expect("flush");
    }
    for (name, scan) in [("count", false), ("count_and_range", true)] {
        let budget = Arc::new(CacheBudget::new(10 << 20));
        let mut cached = CachingKeyValueStore::new(InMemoryKeyValueStore::new("s"), budget);
        group.bench_function(name, |b| b.iter(|| batch(&mut cached, scan)));
        let mut uncached = InMemoryKeyValueStore::new("s");
        group.bench_function(format!("uncached_{name}"), |b| b.iter(|| batch(&mut uncached, scan)));
    }
    group.finish();
}

criterion_group!(benches, order_totals, operator, serde, store_cache);
criterion_main!(benches);
