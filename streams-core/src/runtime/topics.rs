//! What the runtime checks and creates before it joins the group: source topics exist, each
//! sub-topology's source topics are co-partitioned, and internal (repartition) topics exist with the
//! right partition counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{NewTopic, StreamsAdmin, TopicPartition};
use crate::config::StreamsConfig;
use crate::processor::node::PartitionCounts;
use crate::sync::LockUnpoisoned;
use crate::topology::plan::TopologyPlan;
use crate::topology::{TopicRef, Topology};
use crate::{StreamsError, TaskId, TopologyError};

/// The partition count of every topic the application reads, after start-up checks.
pub(crate) struct TopicLayout {
    /// Resolved source topic name → the sub-topology that reads it.
    pub(crate) reader: BTreeMap<String, u32>,
    /// The repartition topics among those sources (resolved names): what is committed of them can be
    /// deleted.
    pub(crate) repartition: BTreeSet<String>,
    /// The topics of the global stores, with their partition counts: the global thread reads them all.
    pub(crate) global: BTreeMap<String, i32>,
    /// Each sub-topology with a topic to read: its partition count (its tasks) and its stores'
    /// changelog topics (resolved names; none: a stateless sub-topology). For the group leader's
    /// assignment (`group.assignor=streams`).
    pub(crate) subtopologies: BTreeMap<u32, (i32, Vec<String>)>,
}

impl TopicLayout {
    /// The source topics sub-topology `subtopology` reads (resolved names, in name order).
    pub(crate) fn source_topics(&self, subtopology: u32) -> impl Iterator<Item = &str> {
        self.reader.iter().filter(move |(_, sub)| **sub == subtopology).map(|(topic, _)| topic.as_str())
    }

    /// Every task with its source partitions (the group leader's view of the topology).
    pub(crate) fn tasks(&self) -> BTreeMap<TaskId, Vec<TopicPartition>> {
        let mut tasks: BTreeMap<TaskId, Vec<TopicPartition>> = BTreeMap::new();
        for (&sub, &(partitions, _)) in &self.subtopologies {
            for partition in 0..partitions {
                tasks.insert(TaskId { subtopology: sub, partition }, Vec::new());
            }
        }
        for (topic, &subtopology) in &self.reader {
            for (task, partitions) in
                tasks.range_mut(TaskId { subtopology, partition: 0 }..=TaskId { subtopology, partition: i32::MAX })
            {
                partitions.push(TopicPartition::new(topic, task.partition));
            }
        }
        tasks
    }

    /// The tasks with changelogs, each with its changelog partitions: where the leader reads how far
    /// behind an instance's state is.
    pub(crate) fn changelog_partitions(&self) -> BTreeMap<TaskId, Vec<TopicPartition>> {
        let mut tasks = BTreeMap::new();
        for (&subtopology, (partitions, changelogs)) in &self.subtopologies {
            if changelogs.is_empty() {
                continue;
            }
            for partition in 0..*partitions {
                let task = TaskId { subtopology, partition };
                tasks.insert(task, changelogs.iter().map(|c| TopicPartition::new(c, partition)).collect());
            }
        }
        tasks
    }
}

/// Back-off between tries of the start's checks: Kafka's client defaults (`retry.backoff.ms` 100,
/// doubling up to `retry.backoff.max.ms` 1000).
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// Checks source topics, creates internal topics, and returns the layout. A transient error (a broker
/// not up yet, a controller that moved, one that is still loading) is tried again with back-off until
/// `default.api.timeout.ms` has passed since the first try: an application started beside its Kafka,
/// or during a broker's restart, starts once the broker answers; anything else fails at once.
pub(crate) fn prepare(
    topology: &Topology,
    plan: &TopologyPlan,
    config: &StreamsConfig,
    admin: &dyn StreamsAdmin,
) -> Result<TopicLayout, StreamsError> {
    let deadline = Instant::now() + config.default_api_timeout;
    let mut backoff = BACKOFF.0;
    let layout = loop {
        match prepare_once(topology, plan, config, admin) {
            Err(StreamsError::Client(error)) if error.is_retriable() && Instant::now() + backoff < deadline => {
                tracing::warn!(target: "kstreams::runtime", %error, ?backoff,
                    "the brokers cannot answer the start's topic checks yet; trying again until default.api.timeout.ms");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF.1);
            }
            result => break result?,
        }
    };
    for sub in plan.subtopologies.iter().filter(|s| !s.source_patterns.is_empty()) {
        if !layout.reader.values().any(|&reader| reader == sub.id) {
            let patterns: Vec<&str> = sub.source_patterns.iter().map(|p| p.as_str()).collect();
            tracing::warn!(target: "kstreams::runtime", subtopology = sub.id, ?patterns,
                "no topic matches the source patterns yet; the sub-topology starts reading once one does (looked for every metadata.max.age.ms)");
        }
    }
    Ok(layout)
}

/// The start's checks and topic creation, tried once: also what a running application redoes when its
/// source patterns may match new topics (`runtime::layout`).
pub(crate) fn prepare_once(
    topology: &Topology,
    plan: &TopologyPlan,
    config: &StreamsConfig,
    admin: &dyn StreamsAdmin,
) -> Result<TopicLayout, StreamsError> {
    let app = &config.application_id;
    let mut sources = source_topics(plan, app, admin)?;
    leave_out_dormant(plan, app, &mut sources);
    let mut reader = BTreeMap::new();
    let mut user_sources = BTreeSet::new();
    let mut internal = BTreeSet::new();
    for (sub, topics) in plan.subtopologies.iter().zip(&sources) {
        for t in topics {
            reader.insert(t.resolve(app), sub.id);
            if t.internal {
                internal.insert(t.resolve(app));
            } else {
                user_sources.insert(t.name.clone());
            }
        }
    }
    let global_topics: BTreeSet<String> =
        plan.globals.iter().flat_map(|g| g.source_topics.iter().map(|t| t.name.clone())).collect();
    user_sources.extend(global_topics.iter().cloned());
    // Every topic the application needs, looked up in one metadata request.
    let changelog_names: Vec<String> = plan
        .subtopologies
        .iter()
        .flat_map(|sub| sub.stores.iter().map(|&store| &topology.stores[store]))
        .filter(|def| def.logging_enabled)
        .map(|def| crate::task::changelog_topic(app, &def.name))
        .collect();
    let all: Vec<String> =
        user_sources.iter().chain(internal.iter()).cloned().chain(changelog_names.iter().cloned()).collect();
    let existing = admin.partition_counts(&all)?;
    let missing: Vec<String> =
        user_sources.iter().filter(|t| existing.get(*t).copied().flatten().is_none()).cloned().collect();
    if !missing.is_empty() {
        return Err(StreamsError::MissingSourceTopics { topics: missing });
    }
    let mut partitions: BTreeMap<String, i32> =
        user_sources.iter().map(|t| (t.clone(), existing[t].expect("checked above"))).collect();

    // A repartition topic has the partitions set with `Repartitioned`; else, when it must be
    // co-partitioned with the user topics read beside it (a re-keyed stream joining a table, a
    // foreign-key join's topics: Kafka Streams' copartition groups), as many as they have; else as many
    // as the largest source topic of the sub-topology that writes it (Kafka Streams' rule). Resolve in
    // rounds, because that sub-topology may itself read a repartition topic.
    let explicit: BTreeMap<String, i32> = topology
        .repartition_topics
        .iter()
        .filter_map(|(name, n)| n.map(|n| (format!("{app}-{name}"), n as i32)))
        .collect();
    let mut pending: BTreeSet<String> = internal.clone();
    while !pending.is_empty() {
        let mut progressed = false;
        for topic in pending.clone() {
            let copartitioned = topology.copartitioned_topics.iter().any(|t| format!("{app}-{t}") == topic);
            let read_beside = sources
                .iter()
                .find(|topics| copartitioned && topics.iter().any(|t| t.resolve(app) == topic))
                .and_then(|topics| topics.iter().filter(|t| !t.internal).filter_map(|t| partitions.get(&t.name)).max());
            let count = match (explicit.get(&topic), read_beside) {
                (Some(&n), _) | (None, Some(&n)) => Some(n),
                (None, None) => {
                    let writers = plan
                        .subtopologies
                        .iter()
                        .zip(&sources)
                        .filter(|(s, _)| s.sink_topics.iter().any(|t| t.resolve(app) == topic));
                    let mut max = None;
                    let mut unresolved = false;
                    for (_, writer_sources) in writers {
                        for source in writer_sources {
                            match partitions.get(&source.resolve(app)) {
                                Some(&n) => max = Some(max.map_or(n, |m: i32| m.max(n))),
                                None => unresolved = true,
                            }
                        }
                    }
                    if unresolved {
                        None
                    } else {
                        max
                    }
                }
            };
            if let Some(n) = count {
                partitions.insert(topic.clone(), n);
                pending.remove(&topic);
                progressed = true;
            }
        }
        if !progressed {
            return Err(StreamsError::Internal(format!("cannot size repartition topics {pending:?}")));
        }
    }

    // Before the internal topics' checks: a source topic of another partition count is what to name.
    for (sub, topics) in plan.subtopologies.iter().zip(&sources) {
        let counts: Vec<(String, i32)> = topics.iter().map(|t| (t.resolve(app), partitions[&t.resolve(app)])).collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(StreamsError::CoPartitioning { subtopology: sub.id, counts });
        }
    }
    let mut to_create = Vec::new();
    for topic in &internal {
        let expected = partitions[topic];
        match existing.get(topic).copied().flatten() {
            Some(actual) if actual != expected => {
                return Err(StreamsError::InternalTopicMismatch { topic: topic.clone(), expected, actual });
            }
            Some(_) => {}
            None => to_create.push(NewTopic {
                name: topic.clone(),
                partitions: expected,
                replication_factor: config.replication_factor,
                config: BTreeMap::from([
                    ("cleanup.policy".to_string(), "delete".to_string()),
                    ("retention.ms".to_string(), "-1".to_string()),
                ]),
            }),
        }
    }
    // Changelog topics: compacted, one partition per task of the sub-topology that owns the store.
    let mut changelogs = Vec::new();
    let mut subtopologies = BTreeMap::new();
    for (sub, topics) in plan.subtopologies.iter().zip(&sources) {
        // A sub-topology with no topic to read yet has no tasks: its changelogs are sized when it has.
        let Some(partitions_of_sub) = topics.iter().map(|t| partitions[&t.resolve(app)]).max() else { continue };
        let logged = sub.stores.iter().map(|&store| &topology.stores[store]).filter(|def| def.logging_enabled);
        let names = logged.map(|def| crate::task::changelog_topic(app, &def.name)).collect();
        subtopologies.insert(sub.id, (partitions_of_sub, names));
        for &store in &sub.stores {
            let def = &topology.stores[store];
            if def.logging_enabled {
                let mut config_map = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
                if let Some(retention) = def.window_retention_ms {
                    let additional = crate::window::millis(config.windowstore_changelog_additional_retention);
                    config_map.insert("cleanup.policy".to_string(), "compact,delete".to_string());
                    config_map.insert("retention.ms".to_string(), retention.saturating_add(additional).to_string());
                }
                config_map.extend(def.logging_config.clone());
                changelogs.push(NewTopic {
                    name: crate::task::changelog_topic(app, &def.name),
                    partitions: partitions_of_sub,
                    replication_factor: config.replication_factor,
                    config: config_map,
                });
            }
        }
    }
    for topic in changelogs {
        match existing.get(&topic.name).copied().flatten() {
            Some(actual) if actual != topic.partitions => {
                return Err(StreamsError::InternalTopicMismatch {
                    topic: topic.name,
                    expected: topic.partitions,
                    actual,
                });
            }
            Some(_) => {}
            None => to_create.push(topic),
        }
    }

    admin.create_topics(&to_create)?;
    let global = global_topics.into_iter().filter_map(|t| partitions.get(&t).map(|&n| (t, n))).collect();
    Ok(TopicLayout { reader, repartition: internal, global, subtopologies })
}

/// Each sub-topology's source topics: those its sources name, and those their patterns match among the
/// topics that exist now. A pattern does not match Kafka's own topics (`__consumer_offsets`) nor this
/// application's internal ones; a topic that two sources would read is an error, as at build time.
fn source_topics(plan: &TopologyPlan, app: &str, admin: &dyn StreamsAdmin) -> Result<Vec<Vec<TopicRef>>, StreamsError> {
    let mut sources: Vec<Vec<TopicRef>> = plan.subtopologies.iter().map(|s| s.source_topics.clone()).collect();
    if plan.subtopologies.iter().all(|s| s.source_patterns.is_empty()) {
        return Ok(sources);
    }
    let named: BTreeSet<String> = sources.iter().flatten().map(|t| t.resolve(app)).collect();
    let internal_prefix = format!("{app}-");
    let mut existing = admin.topic_names()?;
    existing.sort();
    let mut matched_by: BTreeMap<String, &str> = BTreeMap::new();
    for (sub, topics) in plan.subtopologies.iter().zip(&mut sources) {
        for pattern in &sub.source_patterns {
            let candidates = existing.iter().filter(|t| !t.starts_with("__") && !t.starts_with(&internal_prefix));
            for topic in candidates.filter(|t| pattern.matches(t)) {
                if let Some(other) = matched_by.insert(topic.clone(), pattern.as_str()) {
                    return Err(StreamsError::Topology(TopologyError::PatternMatchesTopic {
                        pattern: pattern.as_str().to_string(),
                        topic: topic.clone(),
                        first: format!("the source of pattern `{other}`"),
                        second: format!("the source of pattern `{}`", pattern.as_str()),
                    }));
                }
                if named.contains(topic) {
                    return Err(StreamsError::Topology(TopologyError::PatternMatchesTopic {
                        pattern: pattern.as_str().to_string(),
                        topic: topic.clone(),
                        first: "a source that names it".to_string(),
                        second: format!("the source of pattern `{}`", pattern.as_str()),
                    }));
                }
                topics.push(TopicRef::user(topic));
            }
        }
    }
    Ok(sources)
}

/// A sub-topology whose patterns match no topic yet has no tasks, and neither has one that reads only
/// repartition topics that such sub-topologies write: those repartition topics cannot be sized yet.
/// Their sources are left out (and their internal topics not created) until a pattern matches.
fn leave_out_dormant(plan: &TopologyPlan, app: &str, sources: &mut [Vec<TopicRef>]) {
    loop {
        let dormant: Vec<bool> = sources.iter().map(Vec::is_empty).collect();
        let written_only_by_dormant = |topic: &TopicRef| {
            let name = topic.resolve(app);
            let mut writers = plan
                .subtopologies
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sink_topics.iter().any(|t| t.resolve(app) == name))
                .peekable();
            topic.internal && writers.peek().is_some() && writers.all(|(w, _)| dormant[w])
        };
        let mut changed = false;
        for topics in sources.iter_mut() {
            let before = topics.len();
            topics.retain(|t| !written_only_by_dormant(t));
            changed |= topics.len() != before;
        }
        if !changed {
            return;
        }
    }
}

/// Partition counts for partitioners, asked of the broker once per topic and kept: a thread's sinks
/// ask for every record they place.
pub(crate) struct BrokerPartitionCounts {
    admin: Arc<Mutex<Box<dyn StreamsAdmin>>>,
    known: Mutex<HashMap<String, u32>>,
}

impl BrokerPartitionCounts {
    pub(crate) fn new(admin: Arc<Mutex<Box<dyn StreamsAdmin>>>) -> Self {
        BrokerPartitionCounts { admin, known: Mutex::new(HashMap::new()) }
    }
}

impl PartitionCounts for BrokerPartitionCounts {
    fn partitions(&self, topic: &str) -> Result<u32, StreamsError> {
        if let Some(&n) = self.known.lock_unpoisoned().get(topic) {
            return Ok(n);
        }
        let counts = self.admin.lock_unpoisoned().partition_counts(&[topic.to_string()])?;
        match counts.get(topic).copied().flatten() {
            Some(n) if n > 0 => {
                self.known.lock_unpoisoned().insert(topic.to_string(), n as u32);
                Ok(n as u32)
            }
            _ => Err(StreamsError::Client(crate::client::ClientError::new(
                format!("look up the partitions of {topic}"),
                "the topic does not exist; a partitioner needs its partition count",
                crate::client::ClientErrorKind::Fatal,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientSupplier;
    use crate::dsl::StreamsBuilder;
    use crate::embedded::EmbeddedBroker;
    use crate::topology::plan;

    /// The group leader's view: every task with its partitions, and the changelogs of the stateful ones.
    #[test]
    fn the_layout_lists_every_task_with_its_partitions_and_changelogs() {
        let broker = EmbeddedBroker::new();
        broker.create_topic("orders", 3);
        broker.create_topic("clicks", 2);
        let builder = StreamsBuilder::new();
        builder.stream::<String, String>("orders").group_by_key().count().to_stream().to("counts");
        builder.stream::<String, String>("clicks").filter(|_, _| true).to("kept");
        let topology = builder.build().unwrap();
        let plan = plan::plan(&topology).unwrap();
        let config = StreamsConfig::new("app", "embedded");
        let admin = broker.admin(&config).unwrap();
        let layout = prepare(&topology, &plan, &config, &*admin).unwrap();
        let tasks = layout.tasks();
        let task = |subtopology, partition| TaskId { subtopology, partition };
        assert_eq!(tasks.len(), 5, "{tasks:?}");
        assert_eq!(tasks[&task(0, 2)], [TopicPartition::new("orders", 2)]);
        assert_eq!(tasks[&task(1, 1)], [TopicPartition::new("clicks", 1)]);
        let changelogs = layout.changelog_partitions();
        assert_eq!(changelogs.keys().copied().collect::<Vec<_>>(), [task(0, 0), task(0, 1), task(0, 2)]);
        assert_eq!(
            changelogs[&task(0, 1)],
            [TopicPartition::new("app-KSTREAM-AGGREGATE-STATE-STORE-0000000001-changelog", 1)]
        );
    }
}
