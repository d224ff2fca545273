//! Where the application's tasks run, across its instances: each instance's address
//! (`application.server`) travels in its subscription, and every assignment tells each member every
//! address with its active and standby tasks (`group.assignor=streams`). From those, an instance
//! answers which instance holds a store's partitions and which one holds a key (Kafka Streams'
//! `StreamsMetadata`, `KeyQueryMetadata` and `queryMetadataForKey`), for an application that forwards
//! an interactive query to the instance that can answer it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::topics::TopicLayout;
use crate::client::TopicPartition;
use crate::sync::LockUnpoisoned;
use crate::topology::plan::TopologyPlan;
use crate::{TaskId, Topology};

/// An instance's address, as its `application.server` says (Kafka Streams' `HostInfo`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostInfo {
    /// The host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostInfo {
    /// `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostInfo { host: host.into(), port }
    }

    /// Reads `host:port` (the port a number up to 65535, the host not empty; an IPv6 host in
    /// brackets), as Kafka Streams reads `application.server`.
    pub fn parse(endpoint: &str) -> Option<HostInfo> {
        let (host, port) = crate::config::host_and_port(endpoint)?;
        Some(HostInfo::new(host, port))
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// One instance of the application, as the last assignment describes it (Kafka Streams'
/// `StreamsMetadata`): its address, and the stores and source partitions of the tasks it runs and of
/// its standbys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsMetadata {
    /// The instance's `application.server`.
    pub host_info: HostInfo,
    /// The stores of the tasks it runs, and the global stores (every instance holds them whole).
    pub state_store_names: BTreeSet<String>,
    /// The source partitions of the tasks it runs.
    pub topic_partitions: BTreeSet<TopicPartition>,
    /// The stores of its standby tasks.
    pub standby_state_store_names: BTreeSet<String>,
    /// The source partitions of its standby tasks.
    pub standby_topic_partitions: BTreeSet<TopicPartition>,
}

/// Where a key of a store is (Kafka Streams' `KeyQueryMetadata`): the partition it belongs to, the
/// instance whose task holds it, and the instances with a standby of that task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyQueryMetadata {
    /// The instance that runs the key's task.
    pub active_host: HostInfo,
    /// The instances that keep a standby of it (readable with stale stores enabled).
    pub standby_hosts: BTreeSet<HostInfo>,
    /// The key's partition (of the store's source topics).
    pub partition: i32,
}

/// Every instance's address with its active and standby tasks, as the newest assignment a thread of
/// this instance got told it (with that assignment's generation: a thread that hears an older one
/// later does not bring it back).
#[derive(Default)]
pub(crate) struct Endpoints(Mutex<(i32, BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)>)>);

impl Endpoints {
    pub(crate) fn set(&self, generation: i32, endpoints: &BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)>) {
        let mut known = self.0.lock_unpoisoned();
        if generation >= known.0 {
            known.0 = generation;
            known.1.clone_from(endpoints);
        }
    }

    /// Every instance with an address: its tasks as [`StreamsMetadata`], in address order; every
    /// instance holds the global stores whole, so each lists them among its active stores (as Kafka
    /// Streams does). An address that cannot be read (another instance's bad setting) is left out.
    pub(crate) fn all(&self, topology: &Topology, plan: &TopologyPlan, layout: &TopicLayout) -> Vec<StreamsMetadata> {
        let endpoints = self.0.lock_unpoisoned().1.clone();
        let globals = || topology.global_stores.iter().map(|(store, _)| store.clone());
        let stores_of = |tasks: &[TaskId]| -> BTreeSet<String> {
            let subs: BTreeSet<u32> = tasks.iter().map(|t| t.subtopology).collect();
            plan.subtopologies
                .iter()
                .filter(|s| subs.contains(&s.id))
                .flat_map(|s| s.stores.iter().map(|&g| topology.stores[g].name.clone()))
                .collect()
        };
        let partitions_of = |tasks: &[TaskId]| -> BTreeSet<TopicPartition> {
            tasks
                .iter()
                .flat_map(|t| layout.source_topics(t.subtopology).map(|topic| TopicPartition::new(topic, t.partition)))
                .collect()
        };
        endpoints
            .iter()
            .filter_map(|(endpoint, (active, standby))| {
                Some(StreamsMetadata {
                    host_info: HostInfo::parse(endpoint)?,
                    state_store_names: stores_of(active).into_iter().chain(globals()).collect(),
                    topic_partitions: partitions_of(active),
                    standby_state_store_names: stores_of(standby),
                    standby_topic_partitions: partitions_of(standby),
                })
            })
            .collect()
    }

    /// Where partition `partition` of sub-topology `subtopology`'s tasks is: the instance that runs it
    /// and those with a standby of it; `None` when no instance runs it (yet).
    pub(crate) fn task_hosts(&self, task: TaskId) -> Option<(HostInfo, BTreeSet<HostInfo>)> {
        let endpoints = self.0.lock_unpoisoned();
        let mut active = None;
        let mut standbys = BTreeSet::new();
        for (endpoint, (running, standing)) in endpoints.1.iter() {
            let Some(host) = HostInfo::parse(endpoint) else { continue };
            if running.contains(&task) {
                active = Some(host);
            } else if standing.contains(&task) {
                standbys.insert(host);
            }
        }
        active.map(|host| (host, standbys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_host_colon_port() {
        assert_eq!(HostInfo::parse("orders-1.internal:8080"), Some(HostInfo::new("orders-1.internal", 8080)));
        assert_eq!(HostInfo::parse("[::1]:80"), Some(HostInfo::new("::1", 80)));
        assert_eq!(HostInfo::new("::1", 80).to_string(), "[::1]:80");
        for bad in ["", "host", ":80", "host:", "host:65536", "host:x", "a b:1", "http://h:80", "[::1:80", "h:+80"] {
            assert_eq!(HostInfo::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_hosts_of_a_task_are_who_runs_it_and_who_keeps_a_standby() {
        let endpoints = Endpoints::default();
        let t = |p| TaskId { subtopology: 0, partition: p };
        endpoints.set(
            3,
            &BTreeMap::from([
                ("a:1".to_string(), (vec![t(0)], vec![t(1)])),
                ("b:2".to_string(), (vec![t(1)], vec![t(0)])),
                ("not an address".to_string(), (vec![t(2)], vec![])),
            ]),
        );
        assert_eq!(endpoints.task_hosts(t(0)), Some((HostInfo::new("a", 1), BTreeSet::from([HostInfo::new("b", 2)]))));
        assert_eq!(endpoints.task_hosts(t(2)), None, "an unreadable address is no host");
        assert_eq!(endpoints.task_hosts(t(3)), None);
        endpoints.set(2, &BTreeMap::new());
        assert!(endpoints.task_hosts(t(0)).is_some(), "an older generation's assignment heard late changes nothing");
    }

    #[test]
    fn each_instance_lists_its_tasks_stores_and_partitions_and_every_global_store() {
        use crate::dsl::{Consumed, Materialized, StreamsBuilder};
        use crate::serde::DefaultSerde;
        let builder = StreamsBuilder::new();
        let consumed = || Consumed::with(String::default_serde(), String::default_serde());
        builder.table_with("orders", consumed(), Materialized::as_store("totals"));
        builder.global_table_with("rates", consumed(), Materialized::as_store("rates"));
        let topology = builder.build().unwrap();
        let plan = crate::topology::plan::plan(&topology).unwrap();
        let layout = TopicLayout {
            reader: [("orders".to_string(), 0)].into(),
            repartition: Default::default(),
            global: [("rates".to_string(), 1)].into(),
            subtopologies: [(0, (2, vec!["app-totals-changelog".to_string()]))].into(),
        };
        let endpoints = Endpoints::default();
        let t = |p| TaskId { subtopology: 0, partition: p };
        endpoints.set(
            1,
            &BTreeMap::from([
                ("a:1".to_string(), (vec![t(0), t(1)], vec![])),
                ("b:2".to_string(), (vec![], vec![t(1)])),
            ]),
        );
        let all = endpoints.all(&topology, &plan, &layout);
        let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let partitions = |ps: &[i32]| ps.iter().map(|&p| TopicPartition::new("orders", p)).collect::<BTreeSet<_>>();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].host_info.clone(), all[1].host_info.clone()),
            (HostInfo::new("a", 1), HostInfo::new("b", 2))
        );
        assert_eq!(all[0].state_store_names, names(&["rates", "totals"]));
        assert_eq!(all[0].topic_partitions, partitions(&[0, 1]));
        assert_eq!(all[1].state_store_names, names(&["rates"]), "a global store is on every instance");
        assert_eq!(
            (all[1].standby_state_store_names.clone(), all[1].standby_topic_partitions.clone()),
            (names(&["totals"]), partitions(&[1]))
        );
    }
}
