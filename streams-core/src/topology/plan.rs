//! Validation, and the split of a topology into sub-topologies: the units that become tasks.
//!
//! Nodes joined by an edge, or by a shared state store, belong to the same sub-topology; repartition
//! topics (a sink in one, a source in another) are where the graph splits.

use std::collections::HashMap;

use super::{NodeDef, NodeKind, TopicPattern, TopicRef, Topology};
use crate::TopologyError;

/// A validated topology, split into sub-topologies.
#[derive(Debug)]
pub(crate) struct TopologyPlan {
    /// The sub-topologies that make tasks, one per input partition.
    pub(crate) subtopologies: Vec<SubtopologyPlan>,
    /// The global sub-topologies (a source and the processor that keeps a global store): run by the
    /// instance's global task over every partition of their topics, never as tasks.
    pub(crate) globals: Vec<SubtopologyPlan>,
}

/// One sub-topology: its nodes (parents before children), stores and topics, and its edges resolved to
/// positions, so that a task is made without looking up a name.
#[derive(Debug)]
pub(crate) struct SubtopologyPlan {
    pub(crate) id: u32,
    /// The topology's nodes in this sub-topology, parents before children.
    pub(crate) nodes: Vec<usize>,
    /// For each of `nodes`, its children as positions in `nodes`, in the order they were added to the
    /// topology (the order Kafka Streams connects them in).
    pub(crate) children: Vec<Vec<usize>>,
    /// The topology's stores that nodes of this sub-topology use.
    pub(crate) stores: Vec<usize>,
    /// For each of `nodes`, the stores it is connected to, as positions in `stores`.
    pub(crate) node_stores: Vec<Vec<usize>>,
    pub(crate) source_topics: Vec<TopicRef>,
    /// The patterns of its sources that read the topics a pattern matches.
    pub(crate) source_patterns: Vec<TopicPattern>,
    pub(crate) sink_topics: Vec<TopicRef>,
}

/// Validates the topology and splits it.
pub(crate) fn plan(topology: &Topology) -> Result<TopologyPlan, TopologyError> {
    match topology.deferred.as_slice() {
        [] => {}
        [one] => return Err(one.clone()),
        several => return Err(TopologyError::Several(several.to_vec())),
    }
    let nodes = &topology.nodes;
    if !nodes.iter().any(|n| matches!(n.kind, NodeKind::Source { .. })) {
        return Err(TopologyError::Empty);
    }
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    for node in nodes {
        let is_source = matches!(node.kind, NodeKind::Source { .. });
        if !is_source && node.parents.is_empty() {
            return Err(TopologyError::NoParent { node: node.name.clone() });
        }
        for parent in &node.parents {
            let Some(&p) = index.get(parent.as_str()) else {
                return Err(TopologyError::UnknownParent { node: node.name.clone(), parent: parent.clone() });
            };
            let parent_def = &nodes[p];
            let Some(out) = parent_def.output else {
                return Err(TopologyError::SinkAsParent { node: node.name.clone(), sink: parent.clone() });
            };
            if let Some(input) = node.input
                && !out.same(&input)
            {
                return Err(TopologyError::TypeMismatch {
                    parent: parent.clone(),
                    parent_types: out.names(),
                    child: node.name.clone(),
                    child_types: input.names(),
                });
            }
        }
        for store in &node.stores {
            if !topology.stores.iter().any(|s| &s.name == store) {
                return Err(TopologyError::UnknownStore { node: node.name.clone(), store: store.clone() });
            }
            if !matches!(node.kind, NodeKind::Processor) {
                return Err(TopologyError::StoreOnNonProcessor { node: node.name.clone(), store: store.clone() });
            }
        }
    }
    for node in nodes {
        // Only the processor that keeps a global store is connected to it.
        let keeper = |store: &String| topology.global_stores.iter().any(|(s, p)| s == store && *p == node.name);
        let foreign = node.stores.iter().find(|s| topology.is_global_store(s) && !keeper(s));
        if let Some(store) = foreign {
            return Err(TopologyError::GlobalStoreConnected { processor: node.name.clone(), store: store.clone() });
        }
    }
    let order = topological_order(topology, &index)?;
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for parent in &node.parents {
            let siblings = &mut children[index[parent.as_str()]];
            if !siblings.contains(&i) {
                siblings.push(i);
            }
        }
    }

    let (globals, subtopologies): (Vec<SubtopologyPlan>, Vec<SubtopologyPlan>) = groups(topology)
        .into_iter()
        .enumerate()
        .map(|(id, members)| {
            let mut in_order: Vec<usize> = order.iter().copied().filter(|n| members.contains(n)).collect();
            in_order.dedup();
            let stores: Vec<usize> = topology
                .stores
                .iter()
                .enumerate()
                .filter(|(_, s)| in_order.iter().any(|&n| nodes[n].stores.contains(&s.name)))
                .map(|(i, _)| i)
                .collect();
            let position = |node: usize| in_order.iter().position(|&n| n == node);
            let node_children =
                in_order.iter().map(|&n| children[n].iter().filter_map(|&c| position(c)).collect()).collect();
            let node_stores = in_order
                .iter()
                .map(|&n| {
                    let store_position = |name: &String| stores.iter().position(|&g| &topology.stores[g].name == name);
                    nodes[n].stores.iter().filter_map(store_position).collect()
                })
                .collect();
            let source_topics = in_order.iter().flat_map(|&n| nodes[n].source_topics().iter().cloned()).collect();
            let source_patterns = in_order.iter().filter_map(|&n| nodes[n].source_pattern().cloned()).collect();
            let sink_topics = in_order
                .iter()
                .filter_map(|&n| match &nodes[n].kind {
                    NodeKind::Sink { topic: Some(t) } => Some(t.clone()),
                    _ => None,
                })
                .collect();
            SubtopologyPlan {
                id: id as u32,
                nodes: in_order,
                children: node_children,
                stores,
                node_stores,
                source_topics,
                source_patterns,
                sink_topics,
            }
        })
        .partition(|sub| is_global(topology, sub.nodes.iter().map(|&n| &nodes[n])));
    for global in &globals {
        if global.nodes.len() != 2 {
            // Something else reads the global source or its processor: connected through an edge.
            let store = global.stores.first().map(|&s| topology.stores[s].name.clone()).unwrap_or_default();
            let other = global.nodes.iter().map(|&n| &nodes[n]).find(|n| n.stores.is_empty() && !n.parents.is_empty());
            let processor = other.map_or_else(String::new, |n| n.name.clone());
            return Err(TopologyError::GlobalStoreConnected { processor, store });
        }
    }
    Ok(TopologyPlan { subtopologies, globals })
}

/// Whether the sub-topology of `members` keeps a global store.
pub(crate) fn is_global<'a>(topology: &Topology, mut members: impl Iterator<Item = &'a NodeDef>) -> bool {
    members.any(|n| n.stores.iter().any(|s| topology.is_global_store(s)))
}

/// Kahn's algorithm over the parent edges; a node left over sits on a cycle.
fn topological_order(topology: &Topology, index: &HashMap<&str, usize>) -> Result<Vec<usize>, TopologyError> {
    let nodes = &topology.nodes;
    let mut pending: Vec<usize> = nodes.iter().map(|n| n.parents.len()).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for parent in &node.parents {
            children[index[parent.as_str()]].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| pending[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(n) = ready.pop() {
        order.push(n);
        for &c in children[n].iter().rev() {
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.push(c);
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len()).find(|&i| pending[i] > 0).expect("a node with pending parents exists");
        return Err(TopologyError::Cycle { node: nodes[stuck].name.clone() });
    }
    Ok(order)
}

/// Groups nodes into sub-topologies (lenient: unknown parents are ignored, so `describe` works on any
/// topology). Groups are numbered in the order of their first node, which for generated names is the
/// order Kafka Streams numbers them.
pub(crate) fn groups(topology: &Topology) -> Vec<Vec<usize>> {
    let nodes = &topology.nodes;
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            parent[hi] = lo;
        }
    };
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    for (i, node) in nodes.iter().enumerate() {
        for p in &node.parents {
            if let Some(&pi) = index.get(p.as_str()) {
                union(&mut parent, i, pi);
            }
        }
    }
    let mut store_owner: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for s in &node.stores {
            match store_owner.get(s.as_str()) {
                Some(&owner) => union(&mut parent, i, owner),
                None => {
                    store_owner.insert(s, i);
                }
            }
        }
    }
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in 0..nodes.len() {
        let root = find(&mut parent, i);
        match groups.iter_mut().find(|(r, _)| *r == root) {
            Some((_, members)) => members.push(i),
            None => groups.push((root, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}
