//! Compressed topics on the project's Kafka: an application reads records a producer wrote with
//! `compression.type=zstd` (a common Java producer setting) and writes its output zstd-compressed. With
//! the broker `scripts/kafka.sh` started, the record batches on disk are checked to be zstd too.

mod kafka;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kafka::*;
use kstreams::client::StreamsProducer;
use kstreams::prelude::*;
use kstreams::record::{Headers, ProducedRecord};

const RECORDS: usize = 500;

/// The codecs of `partition`'s record batches on the disk of the Kafka `scripts/kafka.sh` runs, or
/// `None` when the test's Kafka is another one (a `docker compose` broker, say).
fn codecs_on_disk(partition: &str) -> Option<Vec<String>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let ours = Command::new(script).arg("bootstrap").output().ok()?;
    if String::from_utf8_lossy(&ours.stdout).trim() != bootstrap() {
        return None;
    }
    let dump = Command::new(script).args(["segments", partition]).output().expect("scripts/kafka.sh segments");
    assert!(dump.status.success(), "segments {partition}: {}", String::from_utf8_lossy(&dump.stderr));
    let text = String::from_utf8_lossy(&dump.stdout);
    Some(
        text.split("compresscodec: ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next())
            .map(String::from)
            .collect(),
    )
}

#[test]
fn zstd_compressed_input_is_read_and_output_written_zstd_compressed() -> anyhow::Result<()> {
    let input = unique("zstd-in");
    let output = unique("zstd-out");
    create_topics(&[(&input, 1), (&output, 1)]);

    // Values that compress well, so the producer keeps them compressed.
    let mut producer_config = config("zstd-producer");
    producer_config.producer_overrides.insert("compression.type".into(), "zstd".into());
    let mut producer: Box<dyn StreamsProducer> = supplier().producer(&producer_config, "zstd-producer", None)?;
    let topic: Arc<str> = input.as_str().into();
    for i in 0..RECORDS {
        let value = format!("order {i:05} for customer {} {}", i % 7, "x".repeat(64));
        producer.send(&ProducedRecord {
            topic: topic.clone(),
            partition: None,
            key: Some(format!("k{}", i % 7).into_bytes()),
            value: Some(value.into_bytes()),
            timestamp: 1_700_000_000_000 + i as i64,
            headers: Headers::new(),
        })?;
    }
    producer.flush(Duration::from_secs(30))?;

    let builder = StreamsBuilder::new();
    builder.stream::<String, String>(&input).map_values(|v| v.to_uppercase()).to(&output);
    let mut app_config = config(&unique("zstd-app"));
    app_config.set("producer.compression.type", "zstd")?;
    let mut app = streams(builder.build()?, app_config)?;
    app.start()?;
    let records = consume_until(&output, Duration::from_secs(60), |r| r.len() >= RECORDS);
    app.close()?;
    assert_eq!(records.len(), RECORDS, "output records");
    for (i, record) in records.iter().enumerate() {
        let expected = format!("ORDER {i:05} FOR CUSTOMER {} {}", i % 7, "X".repeat(64));
        assert_eq!(record.value.as_deref(), Some(expected.as_bytes()), "output record {i}");
    }

    match (codecs_on_disk(&format!("{input}-0")), codecs_on_disk(&format!("{output}-0"))) {
        (Some(input_codecs), Some(output_codecs)) => {
            assert!(!input_codecs.is_empty() && input_codecs.iter().all(|c| c == "zstd"), "input: {input_codecs:?}");
            assert!(
                !output_codecs.is_empty() && output_codecs.iter().all(|c| c == "zstd"),
                "output: {output_codecs:?}"
            );
            println!("batches on disk: input {input_codecs:?}, output {output_codecs:?}");
        }
        _ => println!("the codecs on disk were not checked: this Kafka was not started by scripts/kafka.sh"),
    }
    Ok(())
}
