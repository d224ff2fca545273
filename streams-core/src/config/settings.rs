//! The settings table: every property [`StreamsConfig::set`] knows, with the field it writes, its
//! default, how its value is read and how it is shown. `set`, the "did you mean" of an unknown
//! setting, `Debug for StreamsConfig` and the check of docs/configuration.md all read this one table,
//! so a setting is added in one row and cannot be known to one of them and missing from another.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::{DslStoreType, GroupAssignor, ProcessingGuarantee, RecordingLevel, StreamsConfig};
use crate::handler::{
    ContinueOnProductionError, DeadLetterQueue, FailOnProductionError, HandlerName, LogAndContinue, LogAndFail,
};

/// One row of the table: a property and everything the crate says about it.
pub(crate) struct Setting {
    /// The property: `num.stream.threads`; or, ending in `.`, the prefix of a family of librdkafka
    /// settings (`consumer.`), every key under which this row takes.
    pub(crate) property: &'static str,
    /// The [`StreamsConfig`] field the row writes.
    pub(crate) field: &'static str,
    /// [`StreamsConfig::new`]'s value, written as the property's value (`30000`, `at_least_once`), or in
    /// parentheses where there is no value to write: `(required)`, `(none)`, `(empty)`. The default
    /// column of docs/configuration.md says the same.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the tests that hold the table to `new` and the docs"))]
    pub(crate) default: &'static str,
    /// Sets the field from the trimmed `value` of `key` (the whole key, for a family), or says what
    /// the value may be.
    pub(crate) set: fn(config: &mut StreamsConfig, key: &str, value: &str) -> Result<(), &'static str>,
    /// The field's value as the property would be written, secrets redacted: what `Debug` prints.
    pub(crate) show: fn(config: &StreamsConfig) -> String,
}

impl Setting {
    /// The row's name as `Debug` prints it and the docs write it: `consumer.*` for a family.
    pub(crate) fn label(&self) -> String {
        if self.is_family() {
            format!("{}*", self.property)
        } else {
            self.property.to_string()
        }
    }

    fn is_family(&self) -> bool {
        self.property.ends_with('.')
    }
}

/// The row that takes `key`: the setting of that name, else the family whose prefix it starts with.
pub(crate) fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.property == key)
        .or_else(|| SETTINGS.iter().find(|s| s.is_family() && key.starts_with(s.property)))
}

/// Java clients' settings that librdkafka spells otherwise, with what to set instead. `set` refuses
/// them before it looks at the table, rather than let the client fail later with "no such configuration
/// property"; they are not rows because a `StreamsConfig` holds nothing for them.
pub(crate) const JAVA_ONLY: [(&str, &str); 4] = [
    (
        "sasl.jaas.config",
        "librdkafka takes no JAAS configuration: set `sasl.mechanism`, `sasl.username` and `sasl.password` \
         (OAUTHBEARER: `sasl.oauthbearer.*`); docs/security.md",
    ),
    ("ssl.truststore.location", TRUSTSTORE),
    ("ssl.truststore.password", TRUSTSTORE),
    ("ssl.truststore.type", TRUSTSTORE),
];

const TRUSTSTORE: &str =
    "librdkafka reads trusted CA certificates from `ssl.ca.location` (a PEM file); docs/security.md";

/// The table: every setting `set` takes, in the order of docs/configuration.md's table (and so of
/// `Debug`).
pub(crate) static SETTINGS: [Setting; 46] = [
    Setting {
        property: "application.id",
        field: "application_id",
        default: "(required)",
        set: |c, _, v| {
            c.application_id = v.to_string();
            Ok(())
        },
        show: |c| c.application_id.clone(),
    },
    Setting {
        property: "bootstrap.servers",
        field: "bootstrap_servers",
        default: "(required)",
        set: |c, _, v| {
            c.bootstrap_servers = v.to_string();
            Ok(())
        },
        show: |c| c.bootstrap_servers.clone(),
    },
    Setting {
        property: "client.id",
        field: "client_id",
        default: "(none)",
        set: |c, _, v| {
            c.client_id = Some(v.to_string()).filter(|v| !v.is_empty());
            Ok(())
        },
        show: |c| c.client_id.clone().unwrap_or_else(|| "(none)".into()),
    },
    Setting {
        property: "num.stream.threads",
        field: "num_stream_threads",
        default: "1",
        set: |c, _, v| {
            c.num_stream_threads = at_least(v, 1, "a number from 1")?;
            Ok(())
        },
        show: |c| c.num_stream_threads.to_string(),
    },
    Setting {
        property: "processing.guarantee",
        field: "processing_guarantee",
        default: "at_least_once",
        set: |c, _, v| {
            c.processing_guarantee = match v {
                "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                "exactly_once_v2" => ProcessingGuarantee::ExactlyOnceV2,
                _ => return Err("at_least_once or exactly_once_v2"),
            };
            Ok(())
        },
        show: |c| {
            match c.processing_guarantee {
                ProcessingGuarantee::AtLeastOnce => "at_least_once",
                ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
            }
            .to_string()
        },
    },
    Setting {
        property: "group.assignor",
        field: "group_assignor",
        default: "range",
        set: |c, _, v| {
            c.group_assignor = match v {
                "range" => GroupAssignor::Range,
                "streams" => GroupAssignor::Streams,
                _ => return Err("range or streams"),
            };
            Ok(())
        },
        show: |c| {
            match c.group_assignor {
                GroupAssignor::Range => "range",
                GroupAssignor::Streams => "streams",
            }
            .to_string()
        },
    },
    Setting {
        property: "application.server",
        field: "application_server",
        default: "(none)",
        set: |c, _, v| {
            c.application_server = Some(v.to_string()).filter(|v| !v.is_empty());
            Ok(())
        },
        show: |c| c.application_server.clone().unwrap_or_else(|| "(none)".into()),
    },
    Setting {
        property: "num.standby.replicas",
        field: "num_standby_replicas",
        default: "0",
        set: |c, _, v| {
            c.num_standby_replicas = at_least(v, 0, "a number from 0")?;
            Ok(())
        },
        show: |c| c.num_standby_replicas.to_string(),
    },
    Setting {
        property: "acceptable.recovery.lag",
        field: "acceptable_recovery_lag",
        default: "10000",
        set: |c, _, v| {
            c.acceptable_recovery_lag = at_least(v, 0, "a number of records from 0")?;
            Ok(())
        },
        show: |c| c.acceptable_recovery_lag.to_string(),
    },
    Setting {
        property: "max.warmup.replicas",
        field: "max_warmup_replicas",
        default: "2",
        set: |c, _, v| {
            c.max_warmup_replicas = at_least(v, 1, "a number from 1")?;
            Ok(())
        },
        show: |c| c.max_warmup_replicas.to_string(),
    },
    Setting {
        property: "probing.rebalance.interval.ms",
        field: "probing_rebalance_interval",
        default: "600000",
        set: |c, _, v| {
            c.probing_rebalance_interval = Duration::from_millis(at_least(v, 60_000, "milliseconds, at least 60000")?);
            Ok(())
        },
        show: |c| c.probing_rebalance_interval.as_millis().to_string(),
    },
    Setting {
        property: "commit.interval.ms",
        field: "commit_interval",
        default: "30000",
        set: |c, _, v| {
            c.commit_interval = Some(millis(v)?);
            Ok(())
        },
        // Unset, the interval follows the guarantee: what applies is what is worth seeing.
        show: |c| c.effective_commit_interval().as_millis().to_string(),
    },
    Setting {
        property: "state.dir",
        field: "state_dir",
        default: "<tmp>/kafka-streams",
        set: |c, _, v| {
            c.state_dir = PathBuf::from(v);
            Ok(())
        },
        show: |c| c.state_dir.display().to_string(),
    },
    Setting {
        property: "statestore.cache.max.bytes",
        field: "cache_max_bytes",
        default: "10485760",
        set: |c, _, v| {
            c.cache_max_bytes = bytes(v)?;
            Ok(())
        },
        show: |c| c.cache_max_bytes.to_string(),
    },
    Setting {
        property: "default.dsl.store",
        field: "default_dsl_store",
        default: "rocksDB",
        set: |c, _, v| {
            c.default_dsl_store = match v {
                "rocksDB" | "rocksdb" => DslStoreType::RocksDb,
                "in_memory" => DslStoreType::InMemory,
                _ => return Err("rocksDB or in_memory"),
            };
            Ok(())
        },
        show: |c| {
            match c.default_dsl_store {
                DslStoreType::RocksDb => "rocksDB",
                DslStoreType::InMemory => "in_memory",
            }
            .to_string()
        },
    },
    Setting {
        property: "rocksdb.cache.bytes",
        field: "rocksdb_cache_bytes",
        default: "67108864",
        set: |c, _, v| {
            c.rocksdb_cache_bytes = at_least(v, 1 << 20, "bytes, at least 1 MiB")?;
            Ok(())
        },
        show: |c| c.rocksdb_cache_bytes.to_string(),
    },
    Setting {
        property: "rocksdb.write.buffer.bytes",
        field: "rocksdb_write_buffer_bytes",
        default: "16777216",
        set: |c, _, v| {
            c.rocksdb_write_buffer_bytes = at_least(v, 64 << 10, "bytes, at least 64 KiB")?;
            Ok(())
        },
        show: |c| c.rocksdb_write_buffer_bytes.to_string(),
    },
    Setting {
        property: "statestore.uncommitted.max.bytes",
        field: "statestore_uncommitted_max_bytes",
        default: "67108864",
        set: |c, _, v| {
            c.statestore_uncommitted_max_bytes = bytes(v)?;
            Ok(())
        },
        show: |c| c.statestore_uncommitted_max_bytes.to_string(),
    },
    Setting {
        property: "max.poll.records",
        field: "max_poll_records",
        default: "1000",
        set: |c, _, v| {
            c.max_poll_records = at_least(v, 1, "a number from 1")?;
            Ok(())
        },
        show: |c| c.max_poll_records.to_string(),
    },
    Setting {
        property: "buffered.records.per.partition",
        field: "buffered_records_per_partition",
        default: "1000",
        set: |c, _, v| {
            c.buffered_records_per_partition = at_least(v, 1, "a number from 1")?;
            Ok(())
        },
        show: |c| c.buffered_records_per_partition.to_string(),
    },
    Setting {
        property: "max.task.idle.ms",
        field: "max_task_idle",
        default: "0",
        set: |c, _, v| {
            c.max_task_idle = if v == "-1" {
                None
            } else {
                Some(millis(v).map_err(|_| "milliseconds, a whole number, or -1 (never wait)")?)
            };
            Ok(())
        },
        show: |c| c.max_task_idle.map_or("-1".to_string(), |d| d.as_millis().to_string()),
    },
    Setting {
        property: "task.timeout.ms",
        field: "task_timeout",
        default: "300000",
        set: |c, _, v| {
            c.task_timeout = millis(v)?;
            Ok(())
        },
        show: |c| c.task_timeout.as_millis().to_string(),
    },
    Setting {
        property: "replication.factor",
        field: "replication_factor",
        default: "-1",
        set: |c, _, v| {
            c.replication_factor = v.parse().ok().filter(|n| *n == -1 || *n >= 1).ok_or("-1 or a number from 1")?;
            Ok(())
        },
        show: |c| c.replication_factor.to_string(),
    },
    Setting {
        property: "default.api.timeout.ms",
        field: "default_api_timeout",
        default: "60000",
        set: |c, _, v| {
            c.default_api_timeout = millis(v)?;
            Ok(())
        },
        show: |c| c.default_api_timeout.as_millis().to_string(),
    },
    Setting {
        property: "poll.ms",
        field: "poll_timeout",
        default: "100",
        set: |c, _, v| {
            c.poll_timeout = millis(v)?;
            Ok(())
        },
        show: |c| c.poll_timeout.as_millis().to_string(),
    },
    Setting {
        property: "repartition.purge.interval.ms",
        field: "repartition_purge_interval",
        default: "30000",
        set: |c, _, v| {
            c.repartition_purge_interval = millis(v)?;
            Ok(())
        },
        show: |c| c.repartition_purge_interval.as_millis().to_string(),
    },
    Setting {
        property: "metrics.recording.level",
        field: "metrics_recording_level",
        default: "INFO",
        set: |c, _, v| {
            c.metrics_recording_level = RecordingLevel::parse(v).ok_or("INFO, DEBUG or TRACE")?;
            Ok(())
        },
        show: |c| c.metrics_recording_level.name().to_string(),
    },
    Setting {
        property: "metrics.sample.window.ms",
        field: "metrics_sample_window",
        default: "30000",
        set: |c, _, v| {
            c.metrics_sample_window = Duration::from_millis(at_least(v, 1, "milliseconds, from 1")?);
            Ok(())
        },
        show: |c| c.metrics_sample_window.as_millis().to_string(),
    },
    Setting {
        property: "metrics.num.samples",
        field: "metrics_num_samples",
        default: "2",
        set: |c, _, v| {
            c.metrics_num_samples = at_least(v, 1, "a number from 1")?;
            Ok(())
        },
        show: |c| c.metrics_num_samples.to_string(),
    },
    Setting {
        property: "metrics.prometheus.listen.address",
        field: "metrics_prometheus_listen_address",
        default: "(none)",
        set: |c, _, v| {
            c.metrics_prometheus_listen_address = if v.is_empty() {
                None
            } else {
                Some(v.parse().map_err(|_| "an IP address and port, such as 0.0.0.0:9464")?)
            };
            Ok(())
        },
        show: |c| c.metrics_prometheus_listen_address.map_or_else(|| "(none)".into(), |a| a.to_string()),
    },
    Setting {
        property: "windowstore.changelog.additional.retention.ms",
        field: "windowstore_changelog_additional_retention",
        default: "86400000",
        set: |c, _, v| {
            c.windowstore_changelog_additional_retention = millis(v)?;
            Ok(())
        },
        show: |c| c.windowstore_changelog_additional_retention.as_millis().to_string(),
    },
    Setting {
        property: "__emit.interval.ms.kstreams.windowed.aggregation__",
        field: "windowed_emit_interval",
        default: "1000",
        set: |c, _, v| {
            c.windowed_emit_interval = millis(v)?;
            Ok(())
        },
        show: |c| c.windowed_emit_interval.as_millis().to_string(),
    },
    Setting {
        property: "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__",
        field: "outer_join_emit_interval",
        default: "1000",
        set: |c, _, v| {
            c.outer_join_emit_interval = millis(v)?;
            Ok(())
        },
        show: |c| c.outer_join_emit_interval.as_millis().to_string(),
    },
    Setting {
        property: "default.deserialization.exception.handler",
        field: "deserialization_handler",
        default: "log_and_fail",
        set: |c, _, v| {
            c.deserialization_handler = match v {
                "log_and_fail" | "LogAndFailExceptionHandler" => Arc::new(LogAndFail),
                "log_and_continue" | "LogAndContinueExceptionHandler" => Arc::new(LogAndContinue),
                _ => return Err("log_and_fail, log_and_continue, or set errors.dead.letter.queue.topic.name"),
            };
            Ok(())
        },
        show: |c| handler(c.deserialization_handler.handler_name()),
    },
    Setting {
        property: "processing.exception.handler",
        field: "processing_handler",
        default: "log_and_fail",
        set: |c, _, v| {
            c.processing_handler = match v {
                "log_and_fail" | "LogAndFailProcessingExceptionHandler" => Arc::new(LogAndFail),
                "log_and_continue" | "LogAndContinueProcessingExceptionHandler" => Arc::new(LogAndContinue),
                _ => return Err("log_and_fail, log_and_continue, or set errors.dead.letter.queue.topic.name"),
            };
            Ok(())
        },
        show: |c| handler(c.processing_handler.handler_name()),
    },
    Setting {
        property: "errors.dead.letter.queue.topic.name",
        field: "deserialization_handler",
        default: "(none)",
        set: |c, _, v| {
            let dead_letters = DeadLetterQueue::new(v);
            c.deserialization_handler = Arc::new(dead_letters.clone());
            c.processing_handler = Arc::new(dead_letters.clone());
            c.production_handler = Arc::new(dead_letters);
            Ok(())
        },
        show: |c| match c.deserialization_handler.handler_name() {
            HandlerName::DeadLetters(topic) => topic.to_string(),
            _ => "(none)".to_string(),
        },
    },
    Setting {
        property: "default.production.exception.handler",
        field: "production_handler",
        default: "fail",
        set: |c, _, v| {
            c.production_handler = match v {
                "fail" | "DefaultProductionExceptionHandler" => Arc::new(FailOnProductionError),
                "continue" => Arc::new(ContinueOnProductionError),
                _ => return Err("fail or continue"),
            };
            Ok(())
        },
        show: |c| handler(c.production_handler.handler_name()),
    },
    Setting {
        property: "default.timestamp.extractor",
        field: "default_timestamp_extractor",
        default: "FailOnInvalidTimestamp",
        set: |c, _, v| {
            c.default_timestamp_extractor = crate::timestamp::named(v).ok_or(
                "FailOnInvalidTimestamp, LogAndSkipOnInvalidTimestamp, UsePartitionTimeOnInvalidTimestamp or \
                 WallclockTimestampExtractor (or Kafka Streams' class name of one)",
            )?;
            Ok(())
        },
        show: |c| handler(c.default_timestamp_extractor.handler_name()),
    },
    // Security settings apply to every client, as unprefixed client settings do in Kafka Streams.
    Setting {
        property: "security.protocol",
        field: "client_overrides",
        default: "(none)",
        set: client_setting,
        show: |c| client_settings_under(c, "security.protocol"),
    },
    // A family member with a row of its own, so that a mistyped name of it is suggested.
    Setting {
        property: "sasl.mechanism",
        field: "client_overrides",
        default: "(none)",
        set: client_setting,
        show: |c| client_settings_under(c, "sasl.mechanism"),
    },
    Setting {
        property: "sasl.",
        field: "client_overrides",
        default: "(none)",
        set: client_setting,
        show: |c| client_settings_under(c, "sasl."),
    },
    Setting {
        property: "ssl.",
        field: "client_overrides",
        default: "(none)",
        set: client_setting,
        show: |c| client_settings_under(c, "ssl."),
    },
    Setting {
        property: "client.",
        field: "client_overrides",
        default: "(empty)",
        set: |c, key, v| {
            c.client_overrides.insert(under_prefix(key).to_string(), v.to_string());
            Ok(())
        },
        show: |c| client_settings_under(c, "client."),
    },
    Setting {
        property: "consumer.",
        field: "consumer_overrides",
        default: "(empty)",
        set: |c, key, v| {
            c.consumer_overrides.insert(under_prefix(key).to_string(), v.to_string());
            Ok(())
        },
        show: |c| listing(c.consumer_overrides.iter(), "(empty)"),
    },
    Setting {
        property: "producer.",
        field: "producer_overrides",
        default: "(empty)",
        set: |c, key, v| {
            c.producer_overrides.insert(under_prefix(key).to_string(), v.to_string());
            Ok(())
        },
        show: |c| listing(c.producer_overrides.iter(), "(empty)"),
    },
    Setting {
        property: "admin.",
        field: "admin_overrides",
        default: "(empty)",
        set: |c, key, v| {
            c.admin_overrides.insert(under_prefix(key).to_string(), v.to_string());
            Ok(())
        },
        show: |c| listing(c.admin_overrides.iter(), "(empty)"),
    },
];

/// A whole number of milliseconds, as every `*.ms` setting and override is read.
pub(crate) fn parse_millis(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

/// A `*.ms` setting's value.
fn millis(value: &str) -> Result<Duration, &'static str> {
    parse_millis(value).map(Duration::from_millis).ok_or("milliseconds, a whole number")
}

/// A size in bytes, any whole number.
fn bytes<T: FromStr>(value: &str) -> Result<T, &'static str> {
    value.parse().map_err(|_| "bytes, a whole number")
}

/// A number no smaller than `min`; `reason` says so.
fn at_least<T: FromStr + PartialOrd>(value: &str, min: T, reason: &'static str) -> Result<T, &'static str> {
    value.parse().ok().filter(|n| *n >= min).ok_or(reason)
}

/// The key of a prefixed setting without its prefix: `fetch.min.bytes` for `consumer.fetch.min.bytes`.
fn under_prefix(key: &str) -> &str {
    key.split_once('.').map_or(key, |(_, rest)| rest)
}

/// A security setting given without a prefix: for every client, as is.
fn client_setting(config: &mut StreamsConfig, key: &str, value: &str) -> Result<(), &'static str> {
    config.client_overrides.insert(key.to_string(), value.to_string());
    Ok(())
}

/// A handler by the value that sets it, else by its type's name.
fn handler(name: HandlerName) -> String {
    match name {
        HandlerName::Setting(value) | HandlerName::Type(value) => value.to_string(),
        HandlerName::DeadLetters(_) => "(a dead-letter queue)".to_string(),
    }
}

/// The `client_overrides` that `property`'s row shows: those that the row would take without the
/// `client.` prefix; for `client.` itself, the others. Each is shown once, where it would be set.
fn client_settings_under(config: &StreamsConfig, property: &str) -> String {
    let shown_under = |key: &str| match setting(key) {
        Some(row) if row.field == "client_overrides" => row.property,
        _ => "client.",
    };
    let entries = config.client_overrides.iter().filter(|(key, _)| shown_under(key) == property);
    if property.ends_with('.') {
        let empty = if property == "client." { "(empty)" } else { "(none)" };
        listing(entries, empty)
    } else {
        entries.map(|(_, value)| value.clone()).next().unwrap_or_else(|| "(none)".to_string())
    }
}

/// `key=value` pairs, secrets redacted, or `empty` when there are none.
fn listing<'a>(entries: impl Iterator<Item = (&'a String, &'a String)>, empty: &str) -> String {
    let pairs: Vec<String> = entries
        .map(|(key, value)| if is_secret(key) { format!("{key}=(redacted)") } else { format!("{key}={value}") })
        .collect();
    if pairs.is_empty() {
        empty.to_string()
    } else {
        pairs.join(", ")
    }
}

/// Whether a librdkafka setting's value must not be shown: those librdkafka itself redacts in its
/// configuration dumps (`_RK_SENSITIVE` in its rdkafka_conf.c), and any whose name says password,
/// secret, passphrase or private key, so that such a setting added later is hidden too.
fn is_secret(key: &str) -> bool {
    const SENSITIVE: [&str; 5] =
        ["sasl.username", "sasl.oauthbearer.config", "ssl.key.location", "ssl.key.pem", "ssl.ca.pem"];
    let key = key.to_ascii_lowercase();
    SENSITIVE.contains(&key.as_str())
        || ["password", "secret", "passphrase", "private.key"].iter().any(|word| key.contains(word))
}

/// `" (did you mean `x`?)"` for the known setting closest to `key`, or nothing when none is close: one
/// that differs by a typo or two, or that holds every dot-separated word of `key` (`num.threads`).
pub(crate) fn did_you_mean(key: &str) -> String {
    let words: Vec<&str> = key.split('.').collect();
    SETTINGS
        .iter()
        .filter(|s| !s.is_family())
        .map(|s| (edit_distance(key, s.property), s.property))
        .filter(|(distance, known)| {
            *distance <= 2.max(key.len() / 6)
                || (words.len() > 1 && words.iter().all(|w| known.split('.').any(|k| k == *w)))
        })
        .min()
        .map(|(_, known)| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    //! The table against itself, against `StreamsConfig`, and against docs/configuration.md: its
    //! settings table must have a row for every row here, with the field, the field's type and the
    //! default; and every librdkafka setting the rdkafka clients set must appear on the page.

    use std::collections::BTreeMap;

    use super::*;
    use crate::client_error::ClientError;
    use crate::config::ConfigError;
    use crate::handler::{ProductionExceptionHandler, ProductionResponse};

    const PAGE: &str = include_str!("../../../docs/configuration.md");
    const KAFKA_CLIENTS_SOURCE: &str = include_str!("../kafka/mod.rs");

    fn config() -> StreamsConfig {
        StreamsConfig::new("app", "localhost:9092")
    }

    /// What every row shows for `config`, by property.
    fn shown(config: &StreamsConfig) -> BTreeMap<&'static str, String> {
        SETTINGS.iter().map(|s| (s.property, (s.show)(config))).collect()
    }

    /// A row's default as a value: `<tmp>` is `std::env::temp_dir()`.
    fn expand(default: &str) -> String {
        match default.strip_prefix("<tmp>/") {
            Some(rest) => std::env::temp_dir().join(rest).display().to_string(),
            None => default.to_string(),
        }
    }

    #[test]
    fn set_reaches_every_row() {
        for setting in &SETTINGS {
            let key = if setting.is_family() {
                format!("{}some.setting", setting.property)
            } else {
                setting.property.to_string()
            };
            let result = config().set(&key, "x");
            assert!(!matches!(result, Err(ConfigError::Unknown(_))), "`set` does not know `{key}`");
        }
    }

    #[test]
    fn every_row_s_default_set_through_set_changes_nothing() {
        let defaults = shown(&config());
        for setting in &SETTINGS {
            if setting.default.starts_with('(') || setting.default.contains("<tmp>") {
                continue; // (required), (none), (empty), and a path that depends on the machine
            }
            let mut changed = config();
            changed
                .set(setting.property, setting.default)
                .unwrap_or_else(|e| panic!("`{}={}` is refused: {e}", setting.property, setting.default));
            assert_eq!(shown(&changed), defaults, "`{}={}`", setting.property, setting.default);
        }
    }

    #[test]
    fn every_row_s_default_is_that_of_streams_config_new() {
        let new = config();
        let read = StreamsConfig::from_properties([("application.id", "app"), ("bootstrap.servers", "localhost:9092")])
            .expect("the required settings suffice");
        for setting in SETTINGS.iter().filter(|s| s.default != "(required)") {
            assert_eq!((setting.show)(&new), expand(setting.default), "new's `{}`", setting.property);
            assert_eq!((setting.show)(&read), expand(setting.default), "from_properties' `{}`", setting.property);
        }
    }

    #[test]
    fn debug_shows_every_setting_by_its_property_and_no_secret() {
        struct Skip;
        impl ProductionExceptionHandler for Skip {
            fn handle(&self, _: Option<&crate::record::ProducedRecord>, _: &ClientError) -> ProductionResponse {
                ProductionResponse::Continue(Vec::new())
            }
        }
        let mut config = config();
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.password", "hunter2"),
            ("ssl.key.password", "pem-password"),
            ("client.ssl.keystore.password", "keystore-password"),
            ("consumer.sasl.oauthbearer.client.secret", "oidc-secret"),
            ("client.fetch.min.bytes", "1"),
            ("errors.dead.letter.queue.topic.name", "orders-dlq"),
        ] {
            config.set(key, value).unwrap();
        }
        config.production_handler = Arc::new(Skip);
        let debug = format!("{config:?}");
        for setting in &SETTINGS {
            assert!(debug.contains(&format!(" {}: ", setting.label())), "`{}` is missing: {debug}", setting.label());
        }
        for secret in ["hunter2", "pem-password", "keystore-password", "oidc-secret"] {
            assert!(!debug.contains(secret), "`{secret}` is shown: {debug}");
        }
        assert!(debug.contains(r#"sasl.*: "sasl.password=(redacted)""#), "{debug}");
        assert!(debug.contains(r#"ssl.*: "ssl.key.password=(redacted), ssl.keystore.password=(redacted)""#), "{debug}");
        assert!(debug.contains(r#"consumer.*: "sasl.oauthbearer.client.secret=(redacted)""#), "{debug}");
        // Each client setting once, under the row that takes it without a prefix.
        assert!(debug.contains(r#"security.protocol: "SASL_SSL""#), "{debug}");
        assert!(debug.contains(r#"sasl.mechanism: "SCRAM-SHA-512""#), "{debug}");
        assert!(debug.contains(r#"client.*: "fetch.min.bytes=1""#), "{debug}");
        assert!(debug.contains(r#"errors.dead.letter.queue.topic.name: "orders-dlq""#), "{debug}");
        assert!(
            debug.contains("settings::tests::debug_shows_every_setting_by_its_property_and_no_secret::Skip"),
            "{debug}"
        );
        assert!(format!("{config:#?}").contains("\n    sasl.*: \"sasl.password=(redacted)\",\n"));
    }

    #[test]
    fn secrets_are_what_librdkafka_redacts_and_what_their_names_say() {
        for key in ["sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.username", "ssl.key.pem"] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.oauthbearer.client.secret", "sasl.oauthbearer.assertion.private.key.passphrase", "X.PASSWORD"]
        {
            assert!(is_secret(key), "{key}");
        }
        for key in ["sasl.mechanism", "security.protocol", "ssl.ca.location", "fetch.min.bytes"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    /// One row of the page's settings table.
    #[derive(Debug)]
    struct Row {
        /// `num.stream.threads`, or a prefix such as `consumer.` for `consumer.*`.
        property: String,
        field: String,
        ty: String,
        /// The first backticked value of the default column, or the column as written (`(required)`).
        default: String,
    }

    /// The text between the first pair of backticks in `cell`.
    fn backticked(cell: &str) -> Option<&str> {
        let start = cell.find('`')? + 1;
        let len = cell[start..].find('`')?;
        Some(&cell[start..start + len])
    }

    /// The rows of the table under `## Settings`.
    fn page_rows() -> Vec<Row> {
        let section = PAGE.split("\n## Settings\n").nth(1).expect("docs/configuration.md has a `## Settings` section");
        let mut lines = section.lines().skip_while(|l| !l.starts_with('|'));
        let header = lines.next().expect("a table under `## Settings`");
        assert!(header.starts_with("| property | field | type | default |"), "unexpected table header: {header}");
        lines.next(); // | --- | ...
        lines
            .take_while(|l| l.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
                assert!(cells.len() >= 5, "a settings row needs five cells: {line}");
                let cell = |i: usize| backticked(cells[i]).unwrap_or_else(|| panic!("cell {i} has no `value`: {line}"));
                let property = cell(0).strip_suffix('*').unwrap_or(cell(0)).to_string();
                let default = backticked(cells[3]).unwrap_or(cells[3]).to_string();
                Row { property, field: cell(1).to_string(), ty: cell(2).to_string(), default }
            })
            .collect()
    }

    /// The type of a field's value as the page writes it: `Arc<dyn X>`, without module paths.
    fn short_type<T: ?Sized>(_: &T) -> String {
        crate::error::short_type_name::<T>()
    }

    /// Every field of `StreamsConfig` with its type. The pattern has no `..`, so a field added to the
    /// struct does not compile here until it is listed, and then the page and the table must have it.
    macro_rules! field_types {
        ($config:expr; $($field:ident),* $(,)?) => {{
            let StreamsConfig { $($field),* } = $config;
            BTreeMap::from([$((stringify!($field), short_type($field))),*])
        }};
    }

    fn field_types(config: &StreamsConfig) -> BTreeMap<&'static str, String> {
        field_types!(config;
            application_id, bootstrap_servers, client_id, num_stream_threads, processing_guarantee, group_assignor,
            application_server, num_standby_replicas, acceptable_recovery_lag, max_warmup_replicas, probing_rebalance_interval, commit_interval,
            state_dir, cache_max_bytes, default_dsl_store, rocksdb_cache_bytes, rocksdb_write_buffer_bytes,
            statestore_uncommitted_max_bytes, max_poll_records, buffered_records_per_partition, max_task_idle, task_timeout, replication_factor,
            default_api_timeout, poll_timeout, repartition_purge_interval, metrics_recording_level, metrics_sample_window,
            metrics_num_samples, metrics_prometheus_listen_address, windowstore_changelog_additional_retention,
            windowed_emit_interval, outer_join_emit_interval,
            deserialization_handler,
            processing_handler, production_handler, default_timestamp_extractor, client_overrides, consumer_overrides,
            producer_overrides, admin_overrides,
        )
    }

    #[test]
    fn docs_configuration_has_every_setting_with_its_field_and_default() {
        let rows = page_rows();
        for row in &rows {
            let setting = SETTINGS
                .iter()
                .find(|s| s.property == row.property)
                .unwrap_or_else(|| panic!("docs/configuration.md documents `{}`, which is no setting", row.property));
            assert_eq!(row.field, setting.field, "the field of `{}` in docs/configuration.md", row.property);
            assert_eq!(row.default, setting.default, "the default of `{}` in docs/configuration.md", row.property);
        }
        // `sasl.mechanism` is documented by the `sasl.*` row.
        let documented = |property: &str| {
            rows.iter()
                .any(|r| r.property == property || (r.property.ends_with('.') && property.starts_with(&r.property)))
        };
        for setting in &SETTINGS {
            assert!(documented(setting.property), "`{}` is missing from docs/configuration.md", setting.label());
        }
        for (java, _) in JAVA_ONLY {
            assert!(documented(java), "`{java}`, refused with advice, is missing from docs/configuration.md");
        }
        // The one default that depends on another setting.
        let mut eos = config();
        eos.set("processing.guarantee", "exactly_once_v2").unwrap();
        let written = format!("`{}` under `exactly_once_v2`", eos.effective_commit_interval().as_millis());
        assert!(PAGE.contains(&written), "docs/configuration.md should say {written}");
    }

    #[test]
    fn docs_configuration_lists_every_field_with_its_type() {
        let rows = page_rows();
        let fields = field_types(&config());
        for (field, ty) in &fields {
            let documented: Vec<&Row> = rows.iter().filter(|r| r.field == *field).collect();
            assert!(!documented.is_empty(), "field `{field}` is missing from docs/configuration.md");
            for row in documented {
                assert_eq!(&row.ty, ty, "the type of `{field}` in docs/configuration.md");
            }
            assert!(SETTINGS.iter().any(|s| s.field == *field), "no setting writes field `{field}`, so Debug omits it");
        }
        for field in rows.iter().map(|r| r.field.as_str()).chain(SETTINGS.iter().map(|s| s.field)) {
            assert!(fields.contains_key(field), "`{field}` is named as a field of StreamsConfig, which has none such");
        }
    }

    #[test]
    fn docs_configuration_names_every_client_setting_the_library_sets() {
        let mut names: Vec<&str> = Vec::new();
        for piece in KAFKA_CLIENTS_SOURCE.split(".set(\"").skip(1) {
            names.push(piece.split('"').next().unwrap());
        }
        names.sort_unstable();
        names.dedup();
        assert!(names.len() >= 15, "the source scan found too few client settings: {names:?}");
        let client_section = PAGE.split("\n## Client settings\n").nth(1).expect("a `## Client settings` section");
        let missing: Vec<&&str> = names.iter().filter(|n| !client_section.contains(&format!("`{n}`"))).collect();
        assert!(
            missing.is_empty(),
            "client settings set in streams-core/src/kafka/mod.rs but not documented: {missing:?}"
        );
    }
}
