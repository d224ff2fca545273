//! `describe()`: the topology's shape as data and as the text Kafka Streams prints, so users can diff it
//! across versions to see whether node, store or internal topic names changed.

use std::fmt;

use super::java_tree_set::{TreeSet, TreeSets};
use super::{plan, NodeKind, Topology};

/// The whole topology: its sub-topologies and global stores, each in id order (the two share the ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// The sub-topologies that make tasks.
    pub subtopologies: Vec<SubtopologyDescription>,
    /// The global stores: each a sub-topology of its own that makes no task.
    pub global_stores: Vec<GlobalStoreDescription>,
}

/// A global store's sub-topology: the source that reads its topic and the processor that keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalStoreDescription {
    /// Its id, from the same sequence as the sub-topologies'.
    pub id: u32,
    /// The source.
    pub source: NodeDescription,
    /// The processor, with the store.
    pub processor: NodeDescription,
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
        /// The topics (internal ones without the application-id prefix); empty for a pattern.
        topics: Vec<String>,
        /// The topic pattern, for a source that reads the topics it matches.
        pattern: Option<String>,
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
    let (globals, subtopologies): (Vec<SubtopologyDescription>, Vec<SubtopologyDescription>) = plan::groups(topology)
        .into_iter()
        .enumerate()
        .map(|(id, members)| {
            let order = java_order(topology, &members);
            let named = |list: &[usize]| list.iter().map(|&p| nodes[members[p]].name.clone()).collect::<Vec<_>>();
            let mut described: Vec<(usize, NodeDescription)> = members
                .iter()
                .enumerate()
                .map(|(pos, &i)| {
                    let def = &nodes[i];
                    let kind = match &def.kind {
                        NodeKind::Source { topics, pattern } => NodeKindDescription::Source {
                            topics: topics.iter().map(|t| t.name.clone()).collect(),
                            pattern: pattern.as_ref().map(|p| p.as_str().to_string()),
                        },
                        NodeKind::Processor => {
                            NodeKindDescription::Processor { stores: java_hash_set_order(&def.stores) }
                        }
                        NodeKind::Sink { topic } => {
                            NodeKindDescription::Sink { topic: topic.as_ref().map(|t| t.name.clone()) }
                        }
                    };
                    let node = NodeDescription {
                        name: def.name.clone(),
                        kind,
                        successors: named(&order.successors[pos]),
                        predecessors: named(&order.predecessors[pos]),
                    };
                    (order.size[pos], node)
                })
                .collect();
            described
                .sort_by(|(sa, a), (sb, b)| sb.cmp(sa).then_with(|| a.name.encode_utf16().cmp(b.name.encode_utf16())));
            SubtopologyDescription { id: id as u32, nodes: described.into_iter().map(|(_, n)| n).collect() }
        })
        .partition(|sub| {
            let member = |name: &String| nodes.iter().find(|n| &n.name == name);
            plan::is_global(topology, sub.nodes.iter().filter_map(|n| member(&n.name)))
        });
    let global_stores = globals
        .into_iter()
        .filter_map(|sub| {
            let is_source = |n: &NodeDescription| matches!(n.kind, NodeKindDescription::Source { .. });
            let source = sub.nodes.iter().find(|n| is_source(n))?.clone();
            let processor = sub.nodes.iter().find(|n| !is_source(n))?.clone();
            Some(GlobalStoreDescription { id: sub.id, source, processor })
        })
        .collect();
    TopologyDescription { subtopologies, global_stores }
}

/// How Kafka Streams' `InternalTopologyBuilder.describeSubtopology` orders a sub-topology: it visits the
/// nodes (`members`, in the order they were added) in `HashMap` order (the bucket of the name's
/// `String.hashCode`, then the order added), connects each to its predecessors, and adds the node's size
/// so far to each predecessor and, transitively, to theirs. A node's predecessors and successors are kept
/// in `TreeSet`s ordered by size (largest first), then name, as the sizes are when each one is inserted
/// (see [`super::java_tree_set`]); the sub-topology's nodes by their final sizes. For a tree the size is that of the sub-graph below a node;
/// where branches meet it depends on the visiting order, which is why the walk is reproduced here rather
/// than computed from the graph.
struct JavaOrder {
    /// Per member: its final size, and its predecessors and successors (member positions) in order.
    size: Vec<usize>,
    predecessors: Vec<Vec<usize>>,
    successors: Vec<Vec<usize>>,
}

fn java_order(topology: &Topology, members: &[usize]) -> JavaOrder {
    let nodes = &topology.nodes;
    let mut capacity = 16;
    while members.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |name: &str| {
        let hash = name.encode_utf16().fold(0_i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit))) as u32;
        ((hash ^ (hash >> 16)) as usize) & (capacity - 1)
    };
    let mut visiting: Vec<(usize, usize)> =
        members.iter().enumerate().map(|(pos, &i)| (bucket(&nodes[i].name), pos)).collect();
    visiting.sort();
    let position: std::collections::HashMap<&str, usize> =
        members.iter().enumerate().map(|(pos, &i)| (nodes[i].name.as_str(), pos)).collect();
    let name = |pos: usize| nodes[members[pos]].name.as_str();
    let mut size = vec![1; members.len()];
    let mut sets = TreeSets::default();
    let (mut predecessors, mut successors) =
        (vec![TreeSet::default(); members.len()], vec![TreeSet::default(); members.len()]);
    // The predecessors connected so far, which `updateSize` walks (their order does not change the sums).
    let mut connected: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    // Kafka Streams' `NODE_COMPARATOR`, against the sizes as they are now: larger first, then the name
    // (`String.compareTo`: UTF-16 code units).
    let compare = |size: &[usize], x: usize, e: usize| {
        if x == e {
            return std::cmp::Ordering::Equal;
        }
        size[e].cmp(&size[x]).then_with(|| name(x).encode_utf16().cmp(name(e).encode_utf16()))
    };
    fn add(size: &mut [usize], connected: &[Vec<usize>], node: usize, delta: usize, depth: usize) {
        if depth > size.len() {
            return; // a cycle; validate() reports it
        }
        size[node] += delta;
        for &p in &connected[node] {
            add(size, connected, p, delta, depth + 1);
        }
    }
    for (_, pos) in visiting {
        for parent in &nodes[members[pos]].parents {
            let Some(&p) = position.get(parent.as_str()) else { continue };
            if sets.insert(&mut predecessors[pos], p, |x, e| compare(&size, x, e)) {
                connected[pos].push(p);
            }
            sets.insert(&mut successors[p], pos, |x, e| compare(&size, x, e));
            let delta = size[pos];
            add(&mut size, &connected, p, delta, 0);
        }
    }
    JavaOrder {
        size,
        predecessors: predecessors.into_iter().map(|set| sets.keys(set)).collect(),
        successors: successors.into_iter().map(|set| sets.keys(set)).collect(),
    }
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
            // A pattern is printed as is, as Kafka Streams prints a `Pattern`.
            NodeKindDescription::Source { topics, pattern } => {
                let topics = pattern.clone().unwrap_or_else(|| format!("[{}]", topics.join(", ")));
                write!(f, "Source: {} (topics: {topics})\n      --> {}", self.name, names(&self.successors))
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

/// As Kafka Streams prints a global store: no blank line after it.
impl fmt::Display for GlobalStoreDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sub-topology: {} for global store (will not generate tasks)", self.id)?;
        writeln!(f, "    {}", self.source)?;
        writeln!(f, "    {}", self.processor)
    }
}

/// Byte for byte Kafka Streams' `TopologyDescription.toString()`: `"Topologies:\n "`, then two spaces
/// before each sub-topology (so the first header is indented by three, the others by two). Sub-topologies
/// and global stores are merged as Kafka Streams merges them: while both are left, the next id's, then
/// the rest of the sub-topologies, then the rest of the global stores.
impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topologies:\n ")?;
        let (mut subs, mut globals) = (self.subtopologies.iter().peekable(), self.global_stores.iter().peekable());
        let mut expected = 0;
        while let (Some(sub), Some(_)) = (subs.peek(), globals.peek()) {
            if sub.id == expected {
                write!(f, "  {}", subs.next().expect("peeked"))?;
            } else {
                write!(f, "  {}", globals.next().expect("peeked"))?;
            }
            expected += 1;
        }
        for sub in subs {
            write!(f, "  {sub}")?;
        }
        for global in globals {
            write!(f, "  {global}")?;
        }
        Ok(())
    }
}

/// `names` in the order a `java.util.HashSet` of them, filled in this order, iterates: Kafka Streams
/// keeps a processor's store names in one, and prints them so. By bucket (the spread `String.hashCode`
/// masked by the capacity, 16 doubled while more than three quarters full), then by insertion.
fn java_hash_set_order(names: &[String]) -> Vec<String> {
    let mut capacity = 16usize;
    while names.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |name: &str| {
        let h = name.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        let spread = (h ^ ((h as u32) >> 16) as i32) as u32;
        spread as usize & (capacity - 1)
    };
    let mut ordered: Vec<(usize, usize, &String)> = names.iter().enumerate().map(|(i, n)| (bucket(n), i, n)).collect();
    ordered.sort();
    ordered.into_iter().map(|(_, _, n)| n.clone()).collect()
}

#[cfg(test)]
mod hash_set_order_tests {
    use super::java_hash_set_order;

    #[test]
    fn store_names_come_in_the_order_kafka_streams_prints_them() {
        // As Kafka Streams 4.x describes a stream-stream outer join's nodes.
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            java_hash_set_order(&names(&[
                "KSTREAM-OUTEROTHER-0000000011-store",
                "KSTREAM-OUTERSHARED-0000000010-store"
            ])),
            names(&["KSTREAM-OUTERSHARED-0000000010-store", "KSTREAM-OUTEROTHER-0000000011-store"])
        );
        assert_eq!(
            java_hash_set_order(&names(&["pay-stores-outer-this-join-store", "pay-stores-outer-shared-join-store"])),
            names(&["pay-stores-outer-shared-join-store", "pay-stores-outer-this-join-store"])
        );
    }
}
