//! RocksDB store figures: put, get and restore records/s, and the memory 64 stores take under one shared
//! budget. Prints figures; asserts nothing about speed.
//!
//! ```text
//! cargo bench --bench state_store -- [--records N] [--value-size B] [--stores S] [--budget-mib M]
//! ```
//! Restore is measured with a peer, the same batches written to a RocksDB database with default options,
//! and a raw rdkafka consumer for the Kafka part: on this noisy machine the ratios are the figures to read.
//! With `KSTREAMS_BOOTSTRAP` set (scripts/bench.sh starts Kafka), restore is also measured end to end:
//! a changelog partition on Kafka read by the restore consumer into the store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kstreams::client::{ClientSupplier, NewTopic, TopicPartition};
use kstreams::config::StreamsConfig;
use kstreams::kafka::RdKafkaSupplier;
use kstreams::record::{Headers, ProducedRecord, RawRecord};
use kstreams::state::{KeyValueStore, ReadOnlyKeyValueStore, RocksDbKeyValueStore, RocksDbMemory, StateStore};
use state_store::SegmentedKeyValueStore;

struct Args {
    /// Only the Kafka restore figures (for profiling them).
    kafka_only: bool,
    records: usize,
    value_size: usize,
    stores: usize,
    budget_mib: usize,
}

fn args() -> Args {
    let mut a = Args { kafka_only: false, records: 1_000_000, value_size: 100, stores: 64, budget_mib: 64 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value =
            || argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{} needs a number", argv[i]));
        match argv[i].as_str() {
            "--records" => a.records = value(),
            "--value-size" => a.value_size = value(),
            "--stores" => a.stores = value(),
            "--budget-mib" => a.budget_mib = value(),
            "--kafka-only" => a.kafka_only = true,
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    a
}

fn key(i: usize) -> [u8; 8] {
    // Scrambled so writes do not arrive in key order.
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes()
}

fn rate(n: usize, elapsed: Duration) -> String {
    format!("{:>10.0} records/s ({:.2} s)", n as f64 / elapsed.as_secs_f64(), elapsed.as_secs_f64())
}

/// CPU seconds this process has used so far (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn open(dir: &Path, name: &str, memory: &RocksDbMemory) -> RocksDbKeyValueStore {
    RocksDbKeyValueStore::open(name, dir.join(name), memory).expect("open store")
}

fn put_get_restore(a: &Args, dir: &Path) {
    let memory = RocksDbMemory::new(a.budget_mib << 20, (a.budget_mib << 20) / 4);
    let value = vec![7u8; a.value_size];
    println!("RocksDB store, {} records, {}-byte values, {} MiB shared budget", a.records, a.value_size, a.budget_mib);

    let mut store = open(dir, "put", &memory);
    let started = Instant::now();
    for i in 0..a.records {
        store.put(&key(i), &value).unwrap();
    }
    store.flush().unwrap();
    println!("  put (one by one, then flush)   {}", rate(a.records, started.elapsed()));

    let started = Instant::now();
    let mut found = 0;
    for i in 0..a.records {
        found += store.get(&key((i * 7) % a.records)).unwrap().is_some() as usize;
    }
    assert_eq!(found, a.records);
    println!("  get (random order)             {}", rate(a.records, started.elapsed()));

    let started = Instant::now();
    let n = store.all().unwrap().count();
    println!("  iterate all                    {}", rate(n, started.elapsed()));

    let mut restored = open(dir, "restore", &memory);
    let records: Vec<([u8; 8], Vec<u8>)> = (0..a.records).map(|i| (key(i), value.clone())).collect();
    let cpu = cpu_seconds();
    let started = Instant::now();
    restored.begin_restore().unwrap();
    for chunk in records.chunks(10_000) {
        let batch: Vec<(&[u8], Option<&[u8]>)> = chunk.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
        restored.restore_batch(&batch).unwrap();
    }
    restored.end_restore().unwrap();
    restored.flush().unwrap();
    let ours = started.elapsed();
    println!("  restore (batches of 10k)       {}  cpu {:.2} s", rate(a.records, ours), cpu_seconds() - cpu);

    // The peer: the same batches into a RocksDB database with the crate's default options (WAL off too),
    // so a slow machine shows as a slow peer rather than as a slow store.
    let plain_dir = dir.join("plain-rocksdb");
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    let plain = rocksdb::DB::open(&options, &plain_dir).unwrap();
    let mut write = rocksdb::WriteOptions::default();
    write.disable_wal(true);
    let cpu = cpu_seconds();
    let started = Instant::now();
    for chunk in records.chunks(10_000) {
        let mut batch = rocksdb::WriteBatch::default();
        chunk.iter().for_each(|(k, v)| batch.put(k, v));
        plain.write_opt(batch, &write).unwrap();
    }
    plain.flush().unwrap();
    let peer = started.elapsed();
    println!("  plain RocksDB, default options {}  cpu {:.2} s", rate(a.records, peer), cpu_seconds() - cpu);
    println!("  restore / plain RocksDB: {:.0}%", 100.0 * peer.as_secs_f64() / ours.as_secs_f64());
    window_restore(a, dir, &memory, &value);
}

/// `records` window-store changelog records: a 4-byte key of 10,000, the window start (a second later
/// every 1,000 records), sequence number 0.
fn window_records(records: usize, value: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..records)
        .map(|i| {
            let k = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 10_000) as u32;
            let start = (i as i64 / 1000) * 1000;
            ([&k.to_be_bytes()[..], &start.to_be_bytes(), &0i32.to_be_bytes()].concat(), value.to_vec())
        })
        .collect()
}

/// A window store's restore: the same number of records as window-store changelog records (a 4-byte key
/// of 10,000, the window start, sequence number 0), their window starts a second apart per 1,000 records
/// over a retention that keeps them all, so that the restore writes into many time segments.
fn window_restore(a: &Args, dir: &Path, memory: &RocksDbMemory, value: &[u8]) {
    let retention_ms = (a.records as i64 / 1000 + 1) * 1000;
    let mut store =
        SegmentedKeyValueStore::rocksdb_window_store("window-restore", dir.join("window"), memory, retention_ms)
            .expect("open the window store");
    let records = window_records(a.records, value);
    let cpu = cpu_seconds();
    let started = Instant::now();
    store.begin_restore().unwrap();
    for chunk in records.chunks(10_000) {
        let batch: Vec<(&[u8], Option<&[u8]>)> = chunk.iter().map(|(k, v)| (&k[..], Some(&v[..]))).collect();
        store.restore_batch(&batch).unwrap();
    }
    store.end_restore().unwrap();
    store.flush().unwrap();
    let elapsed = started.elapsed();
    let segments = std::fs::read_dir(dir.join("window")).map(|d| d.count()).unwrap_or(0);
    println!(
        "  window store restore (10k)     {}  cpu {:.2} s, {segments} segments",
        rate(a.records, elapsed),
        cpu_seconds() - cpu
    );
}

fn restore_from_kafka(a: &Args, dir: &Path, bootstrap: &str) {
    let config = StreamsConfig::new("state-store-bench", bootstrap);
    let topic = format!("state-store-bench-changelog-{}", std::process::id());
    let admin = RdKafkaSupplier.admin(&config).unwrap();
    let mut topic_config = std::collections::BTreeMap::new();
    topic_config.insert("cleanup.policy".to_string(), "compact".to_string());
    admin
        .create_topics(&[NewTopic { name: topic.clone(), partitions: 1, replication_factor: 1, config: topic_config }])
        .unwrap();
    let mut producer = RdKafkaSupplier.producer(&config, "bench-producer", None).unwrap();
    let value = vec![7u8; a.value_size];
    let topic_arc: Arc<str> = topic.as_str().into();
    for i in 0..a.records {
        let record = ProducedRecord {
            topic: topic_arc.clone(),
            partition: Some(0),
            key: Some(key(i).to_vec()),
            value: Some(value.clone()),
            timestamp: 0,
            headers: Headers::new(),
        };
        producer.send(&record).unwrap();
    }
    producer.flush(Duration::from_secs(120)).unwrap();

    // The peer: a plain rdkafka consumer reading the same partition and doing nothing with it.
    let cpu = cpu_seconds();
    let raw = raw_consume(bootstrap, &topic, a.records);
    println!("  raw rdkafka consume, same data {}  cpu {:.2} s", rate(a.records, raw), cpu_seconds() - cpu);

    let mut restorer = RdKafkaSupplier.restore_consumer(&config, "bench-read").unwrap();
    let tp = TopicPartition::new(&topic, 0);
    let cpu = cpu_seconds();
    let started = Instant::now();
    let (low, high) = restorer.watermarks(&tp).unwrap();
    let mut n = 0usize;
    restorer
        .read(&tp, low, high, 10_000, &mut |batch: &[RawRecord]| {
            n += batch.len();
            Ok(())
        })
        .unwrap();
    println!("  restore consumer read only     {}  cpu {:.2} s", rate(n, started.elapsed()), cpu_seconds() - cpu);
    drop(restorer);

    let memory = RocksDbMemory::new(a.budget_mib << 20, (a.budget_mib << 20) / 4);
    let mut store = open(dir, "kafka-restore", &memory);
    let (n, elapsed, cpu) = restore_topic(&config, &topic, &mut store);
    println!("  restore from a Kafka changelog {}  cpu {cpu:.2} s", rate(n, elapsed));
    println!("  restore / raw consume: {:.0}%", 100.0 * raw.as_secs_f64() / elapsed.as_secs_f64());

    // A window store's changelog: window-store keys (see `window_restore`), restored into the segmented
    // store. The part a task's restore adds on top of the read.
    let window_topic = format!("{topic}-window");
    let mut topic_config = std::collections::BTreeMap::new();
    topic_config.insert("cleanup.policy".to_string(), "compact,delete".to_string());
    topic_config.insert("retention.ms".to_string(), "-1".to_string());
    admin
        .create_topics(&[NewTopic {
            name: window_topic.clone(),
            partitions: 1,
            replication_factor: 1,
            config: topic_config,
        }])
        .unwrap();
    let window_arc: Arc<str> = window_topic.as_str().into();
    for (key, value) in window_records(a.records, &value) {
        let record = ProducedRecord {
            topic: window_arc.clone(),
            partition: Some(0),
            key: Some(key),
            value: Some(value),
            timestamp: 0,
            headers: Headers::new(),
        };
        producer.send(&record).unwrap();
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let retention_ms = (a.records as i64 / 1000 + 1) * 1000;
    let mut store =
        SegmentedKeyValueStore::rocksdb_window_store("kafka-window", dir.join("kafka-window"), &memory, retention_ms)
            .expect("open the window store");
    let (n, elapsed, cpu) = restore_topic(&config, &window_topic, &mut store);
    println!("  window store from its changelog {}  cpu {cpu:.2} s", rate(n, elapsed));
}

/// Restores partition 0 of `topic` into `store` as a task restores a changelog: records read, elapsed
/// time, CPU seconds.
fn restore_topic(config: &StreamsConfig, topic: &str, store: &mut dyn KeyValueStore) -> (usize, Duration, f64) {
    let mut restorer = RdKafkaSupplier.restore_consumer(config, "bench-restore").unwrap();
    let tp = TopicPartition::new(topic, 0);
    let cpu = cpu_seconds();
    let started = Instant::now();
    let (low, high) = restorer.watermarks(&tp).unwrap();
    store.begin_restore().unwrap();
    let mut n = 0usize;
    restorer
        .read(&tp, low, high, 10_000, &mut |batch: &[RawRecord]| {
            let entries: Vec<(&[u8], Option<&[u8]>)> =
                batch.iter().map(|r| (r.key.as_deref().unwrap_or_default(), r.value.as_deref())).collect();
            store.restore_batch(&entries)?;
            n += batch.len();
            Ok(())
        })
        .unwrap();
    store.end_restore().unwrap();
    store.flush().unwrap();
    (n, started.elapsed(), cpu_seconds() - cpu)
}

fn raw_consume(bootstrap: &str, topic: &str, expected: usize) -> Duration {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "state-store-bench-raw")
        .set("enable.auto.commit", "false")
        // The same fetch setting the library's consumers use, so the peer is not handicapped.
        .set("fetch.queue.backoff.ms", "5")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&list).unwrap();
    let started = Instant::now();
    let mut n = 0;
    while n < expected {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            message.unwrap();
            n += 1;
        }
    }
    started.elapsed()
}

fn memory_check(a: &Args, dir: &Path) {
    let per_store = a.records / a.stores;
    let value = vec![3u8; a.value_size];
    let budget = a.budget_mib << 20;
    let memory = RocksDbMemory::new(budget, budget / 4);
    let baseline = rss_mib();
    let mut stores: Vec<RocksDbKeyValueStore> =
        (0..a.stores).map(|s| open(dir, &format!("mem-{s}"), &memory)).collect();
    for (s, store) in stores.iter_mut().enumerate() {
        for i in 0..per_store {
            store.put(&key(i * a.stores + s), &value).unwrap();
        }
    }
    let after_writes = rss_mib();
    for (s, store) in stores.iter().enumerate() {
        for i in (0..per_store).step_by(3) {
            assert!(store.get(&key(i * a.stores + s)).unwrap().is_some());
        }
    }
    let after_reads = rss_mib();
    println!(
        "{} stores x {} records ({:.0} MiB of data), shared budget {} MiB:\n  \
         RSS before {:.0} MiB, after writes {:.0} MiB (+{:.0}), after reads {:.0} MiB (+{:.0}); \
         cache in use {:.1} MiB of a capacity of {:.1} MiB (the budget less each store's allowance), memtables {:.1} MiB",
        a.stores,
        per_store,
        (per_store * a.stores * (a.value_size + 8)) as f64 / 1048576.0,
        a.budget_mib,
        baseline,
        after_writes,
        after_writes - baseline,
        after_reads,
        after_reads - baseline,
        memory.usage() as f64 / 1048576.0,
        memory.cache_capacity() as f64 / 1048576.0,
        memory.write_buffer_usage() as f64 / 1048576.0,
    );
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    if !a.kafka_only {
        // Memory first, while the process holds nothing else.
        memory_check(&a, dir.path());
        put_get_restore(&a, dir.path());
    }
    match std::env::var("KSTREAMS_BOOTSTRAP") {
        Ok(bootstrap) => restore_from_kafka(&a, dir.path(), &bootstrap),
        Err(_) => println!("  restore from a Kafka changelog: skipped (KSTREAMS_BOOTSTRAP not set)"),
    }
}
