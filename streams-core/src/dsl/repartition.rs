//! Repartitioning: a filter that drops null keys, a sink to an internal `…-repartition` topic, and a
//! source reading it back. The sink and the source are not joined by an edge, so this is where a
//! topology splits into sub-topologies.

use std::sync::Arc;

use super::builder::BuilderState;
use super::Data;
use crate::processor::{Processor, ProcessorContext};
use crate::serde::Serde;
use crate::task::node::StreamPartitioner;
use crate::topology::{processor_def, sink_def, source_def, SinkSpec, TopicRef};
use crate::{Record, StreamsError};

/// The names of a repartition's three nodes and its topic (without the application-id prefix).
pub(crate) struct RepartitionNames {
    pub(crate) topic: String,
    pub(crate) filter: String,
    pub(crate) sink: String,
    pub(crate) source: String,
}

impl RepartitionNames {
    /// The nodes of a repartition take the builder's counter in Kafka Streams' order (sink, filter,
    /// source), even when the grouping is named; the topic is `<base>-repartition`, where `base` is the
    /// user's name (`Grouped::with_name`, `Repartitioned::with_name`), else the store's name for a
    /// grouping, or `KSTREAM-REPARTITION-…` for `repartition()`.
    pub(crate) fn generated(b: &mut BuilderState, base: &str) -> Self {
        let sink = b.new_name("KSTREAM-SINK-");
        let filter = b.new_name("KSTREAM-FILTER-");
        let source = b.new_name("KSTREAM-SOURCE-");
        RepartitionNames { topic: format!("{base}-repartition"), filter, sink, source }
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

/// Adds filter → sink → (topic) → source below `parent`; returns the source's name.
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
    let filter_serde = key_serde.clone();
    let filter = processor_def::<K, V, K, V, _>(&names.filter, vec![parent.to_string()], move || DropNullKeys {
        key_serde: filter_serde.clone(),
    });
    b.topology.add_node_deferred(filter);
    let sink = sink_def(
        &names.sink,
        vec![names.filter.clone()],
        SinkSpec::Fixed(topic.clone()),
        key_serde.clone(),
        value_serde.clone(),
        partitioner,
    );
    b.topology.add_node_deferred(sink);
    b.topology.add_node_deferred(source_def(&names.source, vec![topic], key_serde, value_serde));
    b.topology.add_repartition_topic(&names.topic, partitions);
    names.source
}
