//! The input records of a case: listed by hand, or generated per seed by the generator of
//! tests/differential/README.md, which the Java runner implements bit for bit.

use serde_json::Value as Json;

use crate::case::{Input, InputTopic};
use crate::values::{Fmt, Val};

/// One input record.
#[derive(Debug)]
pub(crate) struct InputRecord {
    pub(crate) topic: String,
    pub(crate) key: Val,
    pub(crate) value: Val,
    pub(crate) timestamp: i64,
}

impl InputRecord {
    /// `[topic,key,value,timestamp]` as compact JSON: the line the input hash is taken over.
    fn line(&self) -> String {
        Json::Array(vec![
            Json::String(self.topic.clone()),
            self.key.to_json(),
            self.value.to_json(),
            Json::from(self.timestamp),
        ])
        .to_string()
    }
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 1) % n
    }
}

/// The seeds a case runs with: 0 alone for records listed by hand, else `1..=seeds`.
pub(crate) fn seeds(input: &Input) -> Vec<u64> {
    if input.records.is_some() {
        vec![0]
    } else {
        (1..=input.seeds.unwrap_or(20)).collect()
    }
}

/// The records of one run, and the formats of their topics.
pub(crate) fn generate(input: &Input, seed: u64) -> Result<Vec<InputRecord>, String> {
    if let Some(records) = &input.records {
        return listed(records);
    }
    if input.topics.is_empty() {
        return Err("input has neither records nor topics".into());
    }
    let mut rng = SplitMix64(seed);
    let [lo, hi] = input.count.unwrap_or([50, 200]);
    let n = lo + rng.below(hi - lo + 1);
    let [step_lo, step_hi] = input.step.unwrap_or([0, 100]);
    let (late, late_by) = (input.late.unwrap_or(0), input.late_by.unwrap_or(500));
    let mut ts: i64 = 1000;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t: &InputTopic = &input.topics[rng.below(input.topics.len() as u64) as usize];
        let key = Val::from_json(&t.keys[rng.below(t.keys.len() as u64) as usize])?;
        let value = if rng.below(100) < t.null_values {
            Val::Null
        } else if let Some([lo, hi]) = t.longs {
            Val::Long(lo + rng.below((hi - lo + 1) as u64) as i64)
        } else if let Some(strings) = &t.strings {
            Val::Str(strings[rng.below(strings.len() as u64) as usize].clone())
        } else {
            return Err(format!("input topic {} has neither longs nor strings", t.topic));
        };
        ts += (step_lo + rng.below(step_hi - step_lo + 1)) as i64;
        let mut timestamp = ts;
        if rng.below(100) < late {
            timestamp = ts - rng.below(late_by + 1) as i64;
        }
        out.push(InputRecord { topic: t.topic.clone(), key, value, timestamp });
    }
    Ok(out)
}

fn listed(records: &Json) -> Result<Vec<InputRecord>, String> {
    let rows = records.as_array().ok_or("input.records is not a list")?;
    rows.iter()
        .map(|row| match row.as_array().map(Vec::as_slice) {
            Some([Json::String(topic), key, value, Json::Number(ts)]) => Ok(InputRecord {
                topic: topic.clone(),
                key: Val::from_json(key)?,
                value: Val::from_json(value)?,
                timestamp: ts.as_i64().ok_or_else(|| format!("{ts} is not a timestamp"))?,
            }),
            _ => Err(format!("input record {row} is not [topic, key, value, timestamp]")),
        })
        .collect()
}

/// The count and the FNV-1a hash of the records' lines, as the expected files hold them.
pub(crate) fn fingerprint(records: &[InputRecord]) -> String {
    let text = records.iter().map(InputRecord::line).collect::<Vec<_>>().join("\n");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The input topics' formats, by topic.
pub(crate) fn topic_format(input: &Input, topic: &str) -> Option<(Fmt, Fmt)> {
    input.topics.iter().find(|t| t.topic == topic).map(|t| (t.key, t.value))
}
