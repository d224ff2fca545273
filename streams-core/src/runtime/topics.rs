//! What the runtime checks and creates before it joins the group: source topics exist, each
//! sub-topology's source topics are co-partitioned, and internal (repartition) topics exist with the
//! right partition counts.

use std::collections::{BTreeMap, BTreeSet};

use crate::client::{NewTopic, StreamsAdmin};
use crate::config::StreamsConfig;
use crate::topology::plan::TopologyPlan;
use crate::topology::Topology;
use crate::StreamsError;

/// The partition count of every topic the application reads, after start-up checks.
pub(crate) struct TopicLayout {
    /// Resolved source topic name → the sub-topology that reads it.
    pub(crate) reader: BTreeMap<String, u32>,
    /// The repartition topics among those sources (resolved names): what is committed of them can be
    /// deleted.
    pub(crate) repartition: BTreeSet<String>,
}

/// Checks source topics, creates internal topics, and returns the layout.
pub(crate) fn prepare(
    topology: &Topology,
    plan: &TopologyPlan,
    config: &StreamsConfig,
    admin: &dyn StreamsAdmin,
) -> Result<TopicLayout, StreamsError> {
    let app = &config.application_id;
    let mut reader = BTreeMap::new();
    let mut user_sources = BTreeSet::new();
    let mut internal = BTreeSet::new();
    for sub in &plan.subtopologies {
        for t in &sub.source_topics {
            reader.insert(t.resolve(app), sub.id);
            if t.internal {
                internal.insert(t.resolve(app));
            } else {
                user_sources.insert(t.name.clone());
            }
        }
    }
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

    // A repartition topic has the partitions set with `Repartitioned`, else as many as the largest source
    // topic of the sub-topology that writes it (Kafka Streams' rule). Resolve in rounds, because that
    // sub-topology may itself read a repartition topic.
    let explicit: BTreeMap<String, i32> = topology
        .repartition_topics
        .iter()
        .filter_map(|(name, n)| n.map(|n| (format!("{app}-{name}"), n as i32)))
        .collect();
    let mut pending: BTreeSet<String> = internal.clone();
    while !pending.is_empty() {
        let mut progressed = false;
        for topic in pending.clone() {
            let count = match explicit.get(&topic) {
                Some(&n) => Some(n),
                None => {
                    let writers =
                        plan.subtopologies.iter().filter(|s| s.sink_topics.iter().any(|t| t.resolve(app) == topic));
                    let mut max = None;
                    let mut unresolved = false;
                    for writer in writers {
                        for source in &writer.source_topics {
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
    for sub in &plan.subtopologies {
        let partitions_of_sub = sub.source_topics.iter().map(|t| partitions[&t.resolve(app)]).max().unwrap_or(1);
        for &store in &sub.stores {
            let def = &topology.stores[store];
            if def.logging_enabled {
                let mut config_map = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
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

    for sub in &plan.subtopologies {
        let counts: Vec<(String, i32)> =
            sub.source_topics.iter().map(|t| (t.resolve(app), partitions[&t.resolve(app)])).collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(StreamsError::CoPartitioning { subtopology: sub.id, counts });
        }
    }
    admin.create_topics(&to_create)?;
    Ok(TopicLayout { reader, repartition: internal })
}
