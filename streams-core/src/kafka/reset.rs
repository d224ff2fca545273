//! Resetting an application on Kafka so that it processes its input again from a chosen point (Kafka's
//! `kafka-streams-application-reset` tool, which the `kstreams-reset` binary wraps): the group's
//! offsets of the input topics moved to the earliest, the latest, a time or a duration back;
//! intermediate topics skipped to their end; the application's internal topics (changelogs,
//! repartition topics) deleted, so that the next start creates them empty. Refused while the group has
//! active members: a running instance would commit over the reset.
//!
//! The local state directories are not the broker's: each instance cleans its own
//! ([`KafkaStreams::clean_up`](crate::runtime::KafkaStreams::clean_up) before `start`, or the
//! binary's `--state-dir`).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{apply_overrides, client_error, ConnectionContext};
use crate::client::TopicPartition;
use crate::config::StreamsConfig;
use crate::StreamsError;

/// Where the input topics' offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetTo {
    /// Each partition's first offset (the default, as in Kafka's tool).
    Earliest,
    /// Each partition's end: records written so far are skipped.
    Latest,
    /// The first record at or after this time (ms since the epoch); the end where there is none.
    Timestamp(i64),
    /// [`Timestamp`](ResetTo::Timestamp) this long before now.
    Ago(Duration),
}

/// What to reset (Kafka's tool's options).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResetOptions {
    /// The application's input topics: their offsets are moved as `to` says.
    pub input_topics: Vec<String>,
    /// Topics the application writes and reads back itself (`through`-style, not internal): their
    /// offsets go to their end.
    pub intermediate_topics: Vec<String>,
    /// Where the input topics' offsets go.
    pub to: ResetTo,
    /// Only work out what would be done: nothing is committed or deleted.
    pub dry_run: bool,
}

impl ResetOptions {
    /// `input_topics` to their earliest offsets, no intermediate topics, for real.
    pub fn new(input_topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ResetOptions {
            input_topics: input_topics.into_iter().map(Into::into).collect(),
            intermediate_topics: Vec::new(),
            to: ResetTo::Earliest,
            dry_run: false,
        }
    }
}

/// What a reset did, or would do under `dry_run`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetPlan {
    /// The group's new committed offset of each input and intermediate partition.
    pub offsets: Vec<(TopicPartition, i64)>,
    /// The internal topics deleted.
    pub deleted_topics: Vec<String>,
}

/// Whether `topic` is one of application `application_id`'s internal topics (Kafka's tool's rule, and
/// this library's topic of shutdown requests).
pub fn is_internal_topic(application_id: &str, topic: &str) -> bool {
    let Some(rest) = topic.strip_prefix(application_id).and_then(|rest| rest.strip_prefix('-')) else {
        return false;
    };
    let fk_join = |kind: &str| {
        rest.strip_suffix("-topic")
            .and_then(|name| name.rsplit_once(&format!("KTABLE-FK-JOIN-SUBSCRIPTION-{kind}-")))
            .is_some_and(|(_, number)| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
    };
    ["-changelog", "-repartition", "-subscription-registration-topic", "-subscription-response-topic"]
        .iter()
        .any(|suffix| rest.ends_with(suffix))
        || fk_join("REGISTRATION")
        || fk_join("RESPONSE")
        || rest == "shutdown-requests"
}

/// Resets application `config.application_id` on the cluster `config` names (its `client.` and
/// `admin.` settings apply: TLS, SASL), as `options` says. Nothing is changed when the group has
/// active members, when an input or intermediate topic does not exist, or under `dry_run`.
pub fn reset_application(config: &StreamsConfig, options: &ResetOptions) -> Result<ResetPlan, StreamsError> {
    let app = &config.application_id;
    let timeout = config.default_api_timeout;
    let mut settings = ClientConfig::new();
    settings
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("{app}-reset"))
        .set("group.id", app)
        .set("enable.auto.commit", "false");
    apply_overrides(&mut settings, config, &config.admin_overrides);
    // "The end" is the high watermark, as for Kafka's tool (librdkafka's default, read_committed, would
    // give the last stable offset).
    settings.set("group.id", app).set("enable.auto.commit", "false").set("isolation.level", "read_uncommitted");
    let consumer: BaseConsumer<ConnectionContext> = settings
        .create_with_context(ConnectionContext::default())
        .map_err(|e| client_error("create the reset's consumer", e))?;

    let groups = consumer
        .fetch_group_list(Some(app), timeout)
        .map_err(|e| client_error(format!("describe consumer group {app}"), e))?;
    // Only a group that is empty (or not there) may be reset: members, or a state librdkafka could not
    // tell, are refused (a running instance would commit over the reset).
    let active = |g: &&rdkafka::groups::GroupInfo| {
        g.name() == app.as_str() && (!g.members().is_empty() || !matches!(g.state(), "Empty" | "Dead"))
    };
    if let Some(group) = groups.groups().iter().find(active) {
        let members: Vec<String> =
            group.members().iter().map(|m| format!("{} ({})", m.client_id(), m.client_host())).collect();
        let state = if group.state().is_empty() { "in an unknown state" } else { group.state() };
        return Err(StreamsError::IllegalState {
            action: "reset the application",
            state: format!(
                "running: consumer group `{app}` is {state} with {} active member(s): {}; stop every instance first",
                members.len(),
                members.join(", ")
            ),
        });
    }

    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| client_error(format!("fetch metadata from {}", config.bootstrap_servers), e))?;
    let partitions: BTreeMap<&str, i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name(), t.partitions().len() as i32))
        .collect();
    let missing: Vec<&String> = options
        .input_topics
        .iter()
        .chain(&options.intermediate_topics)
        .filter(|topic| !partitions.contains_key(topic.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(StreamsError::MissingSourceTopics { topics: missing.into_iter().cloned().collect() });
    }

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let time = match options.to {
        ResetTo::Timestamp(ms) => Some(ms.max(0)),
        ResetTo::Ago(ago) => Some(now_ms.saturating_sub(ago.as_millis()) as i64),
        ResetTo::Earliest | ResetTo::Latest => None,
    };
    let mut offsets = Vec::new();
    let mut topics: Vec<(&String, bool)> = Vec::new();
    for (topic, input) in
        options.input_topics.iter().map(|t| (t, true)).chain(options.intermediate_topics.iter().map(|t| (t, false)))
    {
        if !topics.iter().any(|(seen, _)| *seen == topic) {
            topics.push((topic, input));
        }
    }
    for (topic, input) in topics {
        let mut by_time = TopicPartitionList::new();
        for partition in 0..partitions[topic.as_str()] {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(|e| client_error(format!("read the offsets of {topic}-{partition}"), e))?;
            let offset = match (input, options.to) {
                (false, _) | (true, ResetTo::Latest) => high,
                (true, ResetTo::Earliest) => low,
                (true, _) => {
                    by_time
                        .add_partition_offset(topic, partition, Offset::Offset(time.unwrap_or_default()))
                        .map_err(|e| client_error("list offsets by time", e))?;
                    high
                }
            };
            offsets.push((TopicPartition::new(topic, partition), offset));
        }
        if by_time.count() > 0 {
            let found = consumer
                .offsets_for_times(by_time, timeout)
                .map_err(|e| client_error(format!("find the offsets of {topic} at {}", time.unwrap_or_default()), e))?;
            for element in found.elements() {
                if let Err(e) = element.error() {
                    let what = format!("find the offset of {topic}-{} at {}", element.partition(), time.unwrap_or(0));
                    return Err(client_error(what, e).into());
                }
                // No record at or after the time: the end, as Kafka's tool does.
                if let Offset::Offset(offset) = element.offset()
                    && let Some(entry) =
                        offsets.iter_mut().find(|(tp, _)| &*tp.topic == topic && tp.partition == element.partition())
                {
                    entry.1 = offset;
                }
            }
        }
    }
    // Kafka's rule, less the topics given as input or intermediate (KAFKA-7930).
    let given = |topic: &str| options.input_topics.iter().chain(&options.intermediate_topics).any(|t| t == topic);
    let internal: Vec<String> =
        partitions.keys().filter(|t| is_internal_topic(app, t) && !given(t)).map(|t| t.to_string()).collect();
    let plan = ResetPlan { offsets, deleted_topics: internal };
    if options.dry_run {
        return Ok(plan);
    }

    // The group's offsets of the internal topics go back to 0 before they are deleted: the broker drops
    // a deleted topic's offsets only some time after, and a restart that found the old offset of a
    // repartition topic created again would skip as many of its new records.
    let mut internal_partitions = TopicPartitionList::new();
    for topic in &plan.deleted_topics {
        for partition in 0..partitions[topic.as_str()] {
            internal_partitions.add_partition(topic, partition);
        }
    }
    if internal_partitions.count() > 0 {
        let committed = consumer
            .committed_offsets(internal_partitions, timeout)
            .map_err(|e| client_error(format!("read the committed offsets of group {app}"), e))?;
        let mut rewound = TopicPartitionList::new();
        for element in committed.elements() {
            if let Offset::Offset(offset) = element.offset()
                && offset > 0
            {
                rewound
                    .add_partition_offset(element.topic(), element.partition(), Offset::Offset(0))
                    .map_err(|e| client_error("rewind the internal topics' offsets", e))?;
            }
        }
        if rewound.count() > 0 {
            consumer
                .commit(&rewound, CommitMode::Sync)
                .map_err(|e| client_error(format!("rewind the internal topics' offsets of group {app}"), e))?;
        }
    }

    if !plan.offsets.is_empty() {
        let mut list = TopicPartitionList::new();
        for (tp, offset) in &plan.offsets {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(|e| client_error("commit the reset offsets", e))?;
        }
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| client_error(format!("commit the reset offsets of group {app}"), e))?;
    }
    if !plan.deleted_topics.is_empty() {
        let admin: AdminClient<ConnectionContext> = settings
            .create_with_context(ConnectionContext::default())
            .map_err(|e| client_error("create the reset's admin client", e))?;
        let names: Vec<&str> = plan.deleted_topics.iter().map(String::as_str).collect();
        let admin_options = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
        let results = futures::executor::block_on(admin.delete_topics(&names, &admin_options))
            .map_err(|e| client_error("delete the internal topics", e))?;
        for result in results {
            if let Err((topic, code)) = result
                && code != rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition
            {
                return Err(crate::client::ClientError::new(
                    format!("delete internal topic {topic}"),
                    code.to_string(),
                    crate::client::ClientErrorKind::Fatal,
                )
                .into());
            }
        }
        wait_until_gone(&consumer, &plan.deleted_topics, timeout)?;
    }
    Ok(plan)
}

/// Waits until none of `topics` is in the cluster's metadata: a start right after the reset would
/// otherwise find them still there, and not create them again empty.
fn wait_until_gone(
    consumer: &BaseConsumer<ConnectionContext>,
    topics: &[String],
    timeout: Duration,
) -> Result<(), StreamsError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| client_error("fetch metadata after deleting topics", e))?;
        let left: Vec<&str> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && topics.iter().any(|d| d == t.name()))
            .map(|t| t.name())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(crate::client::ClientError::new(
                "delete the internal topics",
                format!("still listed after {timeout:?}: {}", left.join(", ")),
                crate::client::ClientErrorKind::Retriable,
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::is_internal_topic;

    #[test]
    fn internal_topics_are_told_by_kafkas_rule() {
        for topic in [
            "app-counts-changelog",
            "app-KSTREAM-AGGREGATE-STATE-STORE-0000000001-changelog",
            "app-by-value-repartition",
            "app-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-0000000006-topic",
            "app-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-0000000012-topic",
            "app-shutdown-requests",
        ] {
            assert!(is_internal_topic("app", topic), "{topic}");
        }
        for topic in ["orders", "app-orders", "other-counts-changelog", "apple-counts-changelog", "app-FK-topic"] {
            assert!(!is_internal_topic("app", topic), "{topic}");
        }
    }
}
