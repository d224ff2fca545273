//! Word count, the classic first stream: lines of text in, a running count per word out.
//!
//! `stream → flat_map_values (split into words) → group_by (word: a repartition topic) → count →
//! to_stream → to`. The counts live in a RocksDB store with a changelog; with the record cache on (Kafka
//! Streams' default, 10 MiB), a busy word's updates within one commit reach `word-counts` as one record.
//!
//! ```text
//! cargo run --example word_count [-- --lines N] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! Produces lines (fragments of a few well-known opening sentences), runs the application until every
//! word's count is out, prints the most frequent words, and checks every count against a plain loop over
//! all lines in the topic (earlier runs' too).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use kstreams::prelude::*;
use kstreams::runtime::State;
use support::{CommonArgs, Rng};

const LINES: &str = "text-lines";
const COUNTS: &str = "word-counts";

const TEXT: [&str; 6] = [
    "It was the best of times, it was the worst of times",
    "Call me Ishmael",
    "All happy families are alike; each unhappy family is unhappy in its own way",
    "It is a truth universally acknowledged",
    "The sky above the port was the color of television, tuned to a dead channel",
    "Happy families are all alike",
];

/// The words of a line: lower case, split on anything that is not a letter.
fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn topology() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(LINES)
        .flat_map_values(|line| words(&line))
        .group_by(|_, word| word.clone())
        .count()
        .to_stream()
        .to(COUNTS);
    builder.build()
}

/// Word count: lines of text in, a running count per word out.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many lines to produce.
    #[arg(long, default_value_t = 200, value_name = "N")]
    lines: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { common, lines } = support::start()?;
    let cluster = common.cluster()?;
    cluster.create_topics(&[LINES, COUNTS], 4)?;
    let mut rng = Rng::new(lines + 3);
    let mut producer = cluster.producer();
    for n in 0..lines {
        let text = TEXT[rng.below(TEXT.len() as u64) as usize];
        // A fragment of the sentence, so the counts differ from word to word.
        let words: Vec<&str> = text.split(' ').collect();
        let start = rng.below(words.len() as u64) as usize;
        let line = words[start..].join(" ");
        producer.send(LINES, &format!("line-{n}"), &line, -1)?;
    }
    producer.flush()?;
    println!("produced {lines} lines to `{LINES}` on {}", cluster.describe());

    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (_, line) in cluster.read::<String, String>(LINES)? {
        for word in words(&line.unwrap_or_default()) {
            *expected.entry(word).or_default() += 1;
        }
    }

    let topology = topology()?;
    println!("{}", topology.describe());
    let mut config = cluster.config("word-count-example");
    config.commit_interval = Some(Duration::from_millis(200));
    let mut app = cluster.app(topology, config)?;
    app.start()?;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let result = cluster.wait_until(Duration::from_secs(120), "word count", || {
        if app.state() == State::Error {
            bail!("the application failed: {:?}", app.take_error());
        }
        counts.clear();
        for (word, count) in cluster.read::<String, Option<i64>>(COUNTS)? {
            if let (Some(word), Some(Some(count))) = (word, count) {
                counts.insert(word, count); // one word's counts are in one partition, in order
            }
        }
        Ok(counts == expected)
    });
    app.close()?;
    if let Some(error) = app.take_error() {
        bail!(error);
    }
    result?;
    let mut top: Vec<(&String, &i64)> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (word, count) in top.iter().take(10) {
        println!("{word:>14} {count:>6}");
    }
    println!("{} words; every count matches a plain loop over all lines in `{LINES}`", counts.len());
    Ok(())
}
