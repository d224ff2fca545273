//! The case files (`cases/*.json`) and the expected files (`expected/<case>.json`), as
//! tests/differential/README.md lays them out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::values::Fmt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) about: String,
    #[serde(default = "string")]
    pub(crate) default_key: Fmt,
    #[serde(default = "string")]
    pub(crate) default_value: Fmt,
    pub(crate) topology: Vec<Step>,
    pub(crate) input: Input,
    #[serde(default)]
    pub(crate) outputs: Vec<TopicFormat>,
    #[serde(default)]
    pub(crate) stores: Vec<StoreFormat>,
    #[serde(default)]
    pub(crate) exceptions: Vec<Exception>,
    /// `statestore.cache.max.bytes` for both drivers (default 0: no record cache).
    #[serde(default)]
    pub(crate) cache_max_bytes: usize,
}

fn string() -> Fmt {
    Fmt::String
}

/// One operator. The fields are the union of what the operators take; each operator reads its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Step {
    pub(crate) op: String,
    pub(crate) from: Option<String>,
    #[serde(rename = "as")]
    pub(crate) id: Option<String>,
    pub(crate) named: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) key: Option<Fmt>,
    pub(crate) value: Option<Fmt>,
    /// A stream-stream join's other value format (`StreamJoined.with(key, value, other_value)`).
    pub(crate) other_value: Option<Fmt>,
    /// A stream-stream join's window store suppliers (`withThisStoreSupplier`, `withOtherStoreSupplier`).
    pub(crate) this_store: Option<JoinStoreSpec>,
    pub(crate) other_store: Option<JoinStoreSpec>,
    pub(crate) topic: Option<String>,
    pub(crate) topics: Option<Vec<String>>,
    pub(crate) pattern: Option<String>,
    pub(crate) partitioner: Option<String>,
    pub(crate) timestamp_extractor: Option<String>,
    #[serde(rename = "fn")]
    pub(crate) function: Option<String>,
    pub(crate) init: Option<String>,
    pub(crate) adder: Option<String>,
    pub(crate) subtractor: Option<String>,
    pub(crate) other: Option<String>,
    pub(crate) partitions: Option<u32>,
    /// `windowed_by`: the window size, advance and grace period, in milliseconds; or the inactivity gap of
    /// session windows (with the grace period).
    pub(crate) size: Option<u64>,
    pub(crate) advance: Option<u64>,
    pub(crate) grace: Option<u64>,
    pub(crate) gap: Option<u64>,
    /// `windowed_by`: the time difference of sliding windows (with the grace period), in milliseconds;
    /// also a stream-stream join's, with `before` and `after` to change one reach.
    pub(crate) difference: Option<u64>,
    pub(crate) before: Option<u64>,
    pub(crate) after: Option<u64>,
    /// `aggregate` of a session-windowed stream: how two sessions' aggregates merge.
    pub(crate) merger: Option<String>,
    /// `suppress`: `window_closes` or `time_limit` (with `time_limit` in milliseconds), and the buffer's
    /// bounds: `max_records`, `max_bytes`, and `when_full` (`emit_early`, the default for a bounded
    /// time-limit buffer, or `shut_down`). `name` names the suppression.
    pub(crate) until: Option<String>,
    pub(crate) time_limit: Option<u64>,
    pub(crate) max_records: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) when_full: Option<String>,
    /// `emit_strategy` of a time- or sliding-windowed stream: `on_window_close` or `on_window_update`.
    pub(crate) strategy: Option<String>,
    pub(crate) materialized: Option<MaterializedSpec>,
    /// `fk_join`, `fk_left_join`: the key selector that finds a row's foreign key (null: none).
    pub(crate) foreign_key: Option<String>,
    /// `global_join`, `global_left_join`: the key selector that finds a record's row (null: none).
    pub(crate) key_selector: Option<String>,
    pub(crate) branches: Option<Vec<BranchSpec>>,
    pub(crate) default: Option<BranchSpec>,
}

/// A window store supplier for one side of a stream-stream join: `Stores.persistentWindowStore` or
/// `inMemoryWindowStore(name, size + grace, size, true)` of the join's windows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinStoreSpec {
    pub(crate) name: String,
    pub(crate) persistent: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaterializedSpec {
    pub(crate) store: Option<String>,
    pub(crate) key: Option<Fmt>,
    pub(crate) value: Option<Fmt>,
    pub(crate) logging: Option<bool>,
    pub(crate) caching: Option<bool>,
    /// A window store's retention, in milliseconds.
    pub(crate) retention: Option<u64>,
    /// A versioned store's history retention, in milliseconds (`Materialized.as(versionedSupplier)`).
    pub(crate) versioned: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BranchSpec {
    #[serde(rename = "fn")]
    pub(crate) function: Option<String>,
    pub(crate) name: Option<String>,
    /// Names the branch, or what its chain made of it.
    #[serde(rename = "as")]
    pub(crate) id: Option<String>,
    /// Steps run on the branch when it is declared (`Branched::with_function`, or `with_consumer` when
    /// `consume`).
    #[serde(default)]
    pub(crate) chain: Vec<Step>,
    #[serde(default)]
    pub(crate) consume: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Input {
    pub(crate) seeds: Option<u64>,
    pub(crate) count: Option<[u64; 2]>,
    pub(crate) records: Option<Json>,
    #[serde(default)]
    pub(crate) topics: Vec<InputTopic>,
    pub(crate) step: Option<[u64; 2]>,
    pub(crate) late: Option<u64>,
    pub(crate) late_by: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputTopic {
    pub(crate) topic: String,
    pub(crate) key: Fmt,
    pub(crate) value: Fmt,
    #[serde(default)]
    pub(crate) keys: Vec<Json>,
    pub(crate) longs: Option<[i64; 2]>,
    pub(crate) strings: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) null_values: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicFormat {
    pub(crate) topic: String,
    pub(crate) key: Fmt,
    pub(crate) value: Fmt,
}

/// A store to compare. Its formats document the case; both runners read the store with its own serdes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreFormat {
    pub(crate) name: String,
    #[allow(dead_code)]
    pub(crate) key: Fmt,
    #[allow(dead_code)]
    pub(crate) value: Fmt,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Exception {
    pub(crate) what: String,
    pub(crate) reason: String,
}

impl Case {
    pub(crate) fn exception(&self, what: &str) -> Option<&str> {
        self.exceptions.iter().find(|e| e.what == what).map(|e| e.reason.as_str())
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Expected {
    pub(crate) case: String,
    #[serde(default)]
    pub(crate) describe: Vec<String>,
    #[serde(default)]
    pub(crate) runs: Vec<Run>,
    pub(crate) error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Run {
    pub(crate) seed: u64,
    pub(crate) inputs: usize,
    pub(crate) input_hash: String,
    pub(crate) outputs: Vec<Json>,
    #[serde(default)]
    pub(crate) stores: BTreeMap<String, Vec<Json>>,
}

/// Every case of every file in `dir`, in file then array order.
pub(crate) fn load_cases(dir: &Path) -> Result<Vec<Case>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut more: Vec<Case> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        cases.append(&mut more);
    }
    Ok(cases)
}

pub(crate) fn load_expected(path: &Path) -> Result<Expected, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e} (run scripts/differential.sh to generate it)", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
