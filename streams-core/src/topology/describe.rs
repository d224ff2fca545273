//! `describe()`: the topology's shape as data and as the text Kafka Streams prints, so users can diff it
//! across versions to see whether node, store or internal topic names changed.

use std::fmt;

use super::{plan, NodeKind, Topology};

/// The whole topology: its sub-topologies in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// The sub-topologies.
    pub subtopologies: Vec<SubtopologyDescription>,
}

/// One sub-topology and its nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// Its id (the first half of a task id).
    pub id: u32,
    /// Its nodes, in Kafka Streams' order (largest downstream sub-graph first, then by name).
    pub nodes: Vec<NodeDescription>,
}

/// One node: its kind, neighbours, and the topics or stores it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    /// Its name.
    pub name: String,
    /// What kind of node it is, with its topics or stores.
    pub kind: NodeKindDescription,
    /// Children (sorted as Kafka Streams prints them, not in forwarding order).
    pub successors: Vec<String>,
    /// Parents.
    pub predecessors: Vec<String>,
}

/// The kind of a node with what it reads, writes or keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKindDescription {
    /// Reads topics.
    Source {
        /// The topics (internal ones without the application-id prefix).
        topics: Vec<String>,
    },
    /// Processes records, with access to stores.
    Processor {
        /// The stores it is connected to.
        stores: Vec<String>,
    },
    /// Writes to a topic, or to a topic chosen per record (`None`).
    Sink {
        /// The topic.
        topic: Option<String>,
    },
}

pub(super) fn describe(topology: &Topology) -> TopologyDescription {
    let nodes = &topology.nodes;
    let successors = |name: &str| -> Vec<String> {
        nodes.iter().filter(|n| n.parents.iter().any(|p| p == name)).map(|n| n.name.clone()).collect()
    };
    // Size of the sub-graph below a node (itself included), Kafka Streams' sort key for describe().
    fn size(topology: &Topology, name: &str, depth: usize) -> usize {
        if depth > topology.nodes.len() {
            return 0; // a cycle; validate() reports it
        }
        1 + topology
            .nodes
            .iter()
            .filter(|n| n.parents.iter().any(|p| p == name))
            .map(|n| size(topology, &n.name, depth + 1))
            .sum::<usize>()
    }
    // Kafka Streams sorts nodes, and each node's successor and predecessor lists, by the size of the
    // sub-graph below the node (largest first), then by name.
    let sizes: std::collections::HashMap<&str, usize> =
        nodes.iter().map(|n| (n.name.as_str(), size(topology, &n.name, 0))).collect();
    let sorted = |mut list: Vec<String>| {
        list.sort_by(|a, b| {
            let (sa, sb) = (sizes.get(a.as_str()).copied().unwrap_or(0), sizes.get(b.as_str()).copied().unwrap_or(0));
            sb.cmp(&sa).then_with(|| a.cmp(b))
        });
        list
    };
    let subtopologies = plan::groups(topology)
        .into_iter()
        .enumerate()
        .map(|(id, members)| {
            let mut described: Vec<(usize, NodeDescription)> = members
                .iter()
                .map(|&i| {
                    let def = &nodes[i];
                    let kind = match &def.kind {
                        NodeKind::Source { topics } => {
                            NodeKindDescription::Source { topics: topics.iter().map(|t| t.name.clone()).collect() }
                        }
                        NodeKind::Processor => NodeKindDescription::Processor { stores: def.stores.clone() },
                        NodeKind::Sink { topic } => {
                            NodeKindDescription::Sink { topic: topic.as_ref().map(|t| t.name.clone()) }
                        }
                    };
                    let node = NodeDescription {
                        name: def.name.clone(),
                        kind,
                        successors: sorted(successors(&def.name)),
                        predecessors: sorted(def.parents.clone()),
                    };
                    (sizes[def.name.as_str()], node)
                })
                .collect();
            described.sort_by(|(sa, a), (sb, b)| sb.cmp(sa).then_with(|| a.name.cmp(&b.name)));
            SubtopologyDescription { id: id as u32, nodes: described.into_iter().map(|(_, n)| n).collect() }
        })
        .collect();
    TopologyDescription { subtopologies }
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

impl fmt::Display for NodeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKindDescription::Source { topics } => {
                write!(
                    f,
                    "Source: {} (topics: [{}])\n      --> {}",
                    self.name,
                    topics.join(", "),
                    names(&self.successors)
                )
            }
            NodeKindDescription::Processor { stores } => write!(
                f,
                "Processor: {} (stores: [{}])\n      --> {}\n      <-- {}",
                self.name,
                stores.join(", "),
                names(&self.successors),
                names(&self.predecessors)
            ),
            NodeKindDescription::Sink { topic } => match topic {
                Some(topic) => {
                    write!(f, "Sink: {} (topic: {})\n      <-- {}", self.name, topic, names(&self.predecessors))
                }
                None => {
                    write!(f, "Sink: {} (extractor class: dynamic)\n      <-- {}", self.name, names(&self.predecessors))
                }
            },
        }
    }
}

impl fmt::Display for SubtopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sub-topology: {}", self.id)?;
        for node in &self.nodes {
            writeln!(f, "    {node}")?;
        }
        writeln!(f)
    }
}

/// Byte for byte Kafka Streams' `TopologyDescription.toString()`: `"Topologies:\n "`, then two spaces
/// before each sub-topology (so the first header is indented by three, the others by two).
impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topologies:\n ")?;
        for sub in &self.subtopologies {
            write!(f, "  {sub}")?;
        }
        Ok(())
    }
}
