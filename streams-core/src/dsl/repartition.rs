//! Repartitioning: a filter that drops null keys, a sink to an internal `…-repartition` topic, and a
//! source reading it back. The sink and the source are not joined by an edge, so this is where a
//! topology splits into sub-topologies.

use std::sync::Arc;

use super::builder::BuilderState;
use super::Data;
use crate::processor::node::StreamPartitioner;
use crate::processor::{Processor, ProcessorContext};
use crate::serde::Serde;
use crate::topology::{processor_def, sink_def, source_def, SinkSpec, SourceTopics, TopicRef};
use crate::{Record, StreamsError};

/// The names of a repartition's nodes and its topic (without the application-id prefix).
pub(crate) struct RepartitionNames {
    pub(crate) topic: String,
    /// Stream repartitions have a filter before the sink; table re-groupings do not.
    pub(crate) filter: Option<String>,
    pub(crate) sink: String,
    pub(crate) source: String,
}

/// Whether `base` is a generated name (`KSTREAM…-0000000007`): Kafka Streams' test for naming the
/// repartition's nodes from the counter rather than from the topic.
fn is_generated(base: &str) -> bool {
    let Some(digits) = base.len().checked_sub(10).map(|i| &base[i..]) else { return false };
    base.starts_with("KSTREAM")
        && base.len() > 11
        && base.as_bytes()[base.len() - 11] == b'-'
        && digits.bytes().all(|c| c.is_ascii_digit())
}

impl RepartitionNames {
    /// A stream repartition (Kafka Streams' `createRepartitionedSource`): the topic is
    /// `<base>-repartition`, where `base` is the user's name (`Grouped`, `Repartitioned`), else the store's
    /// name, or `KSTREAM-REPARTITION-…` for `repartition()`. The counter always advances by three (sink,
    /// filter, source); the nodes take those generated names when `base` is generated, else
    /// `<topic>-sink`, `<topic>-filter` and `<topic>-source`.
    pub(crate) fn for_stream(b: &mut BuilderState, base: &str) -> Self {
        let topic = if base.ends_with("-repartition") { base.to_string() } else { format!("{base}-repartition") };
        let (sink, filter, source) =
            (b.new_name("KSTREAM-SINK-"), b.new_name("KSTREAM-FILTER-"), b.new_name("KSTREAM-SOURCE-"));
        if is_generated(base) {
            RepartitionNames { topic, filter: Some(filter), sink, source }
        } else {
            let named = |suffix: &str| format!("{topic}-{suffix}");
            RepartitionNames { filter: Some(named("filter")), sink: named("sink"), source: named("source"), topic }
        }
    }

    /// A table re-grouping (Kafka Streams' `KGroupedTableImpl`): no filter; sink and source take the
    /// aggregation's name with `-sink`/`-source` when it is named, else generated names.
    pub(crate) fn for_table(b: &mut BuilderState, base: &str, named: Option<&str>) -> Self {
        let topic = format!("{base}-repartition");
        let sink = b.name_or(named.map(|n| format!("{n}-sink")), "KSTREAM-SINK-");
        let source = b.name_or(named.map(|n| format!("{n}-source")), "KSTREAM-SOURCE-");
        RepartitionNames { topic, filter: None, sink, source }
    }
}

/// Drops records whose key is null on the wire (a `None` key of an `Option` type): a repartition topic
/// cannot place them, as in Kafka Streams.
struct DropNullKeys<K> {
    key_serde: Arc<dyn Serde<K>>,
}

impl<K: Data, V: Data> Processor<K, V, K, V> for DropNullKeys<K> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) {
            ctx.record_dropped("null key before a repartition");
            return Ok(());
        }
        ctx.forward(record)
    }
}

/// Adds (filter →) sink → (topic) → source below `parent`; returns the source's name.
pub(crate) fn add_repartition<K: Data, V: Data>(
    b: &mut BuilderState,
    parent: &str,
    names: RepartitionNames,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    partitioner: Option<Arc<StreamPartitioner<K, V>>>,
    partitions: Option<u32>,
) -> String {
    let topic = TopicRef { name: names.topic.clone(), internal: true };
    let mut sink_parent = parent.to_string();
    if let Some(filter_name) = &names.filter {
        let filter_serde = key_serde.clone();
        let filter = processor_def::<K, V, K, V, _>(filter_name, vec![sink_parent], move || DropNullKeys {
            key_serde: filter_serde.clone(),
        });
        b.topology.add_node_deferred(filter);
        sink_parent = filter_name.clone();
    }
    let sink = sink_def(
        &names.sink,
        vec![sink_parent],
        SinkSpec::Fixed(topic.clone()),
        key_serde.clone(),
        value_serde.clone(),
        partitioner,
    );
    b.topology.add_node_deferred(sink);
    b.topology.add_node_deferred(source_def(
        &names.source,
        SourceTopics::Names(vec![topic]),
        key_serde,
        value_serde,
        None,
    ));
    b.topology.add_repartition_topic(&names.topic, partitions);
    names.source
}
