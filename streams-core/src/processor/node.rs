//! The three kinds of node a task runs (source, processor, sink), and how a typed record reaches a child
//! whose concrete type the parent does not know.
//!
//! Nodes live in the task as `Box<dyn ErasedNode>`. A node that takes records of `(K, V)` is stored as a
//! `Box<dyn TypedNode<K, V>>` inside that box, so a parent forwarding `Record<K, V>` finds it with one
//! `TypeId` check and calls it directly: no per-record allocation, no dynamic typing of records.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use super::state::{forward, TaskState};
use super::{Processor, ProcessorContext, Punctuation};
use crate::handler::DeserializationResponse;
use crate::record::RecordPart;
use crate::record::{ProducedRecord, RawRecord};
use crate::serde::{from_bytes, to_bytes_in, Serde};
use crate::timestamp::{self, TimestampExtractor};
use crate::{Record, RecordMetadata, StreamsError};

/// A node's life besides records: what a processor does at init, punctuation, commit and close. Sources
/// and sinks do nothing then.
pub(crate) trait Lifecycle: Send {
    fn init(&mut self, _task: &mut TaskState) -> Result<(), StreamsError> {
        Ok(())
    }
    fn punctuate(&mut self, _task: &mut TaskState, _punctuation: Punctuation) -> Result<(), StreamsError> {
        Ok(())
    }
    /// At commit, before the stores are flushed: a node that buffers forwards what it holds.
    fn flush(&mut self, _task: &mut TaskState) -> Result<(), StreamsError> {
        Ok(())
    }
    fn close(&mut self, _task: &mut TaskState) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// What the task needs of every node, whatever its types.
pub(crate) trait ErasedNode: Send {
    fn lifecycle(&mut self) -> &mut dyn Lifecycle;
    /// Only sources take raw records.
    fn process_raw(&mut self, task: &mut TaskState, _raw: RawRecord) -> Result<(), StreamsError> {
        let _ = task;
        Err(StreamsError::Internal("a raw record reached a node that is not a source".into()))
    }
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A node that takes typed records.
pub(crate) trait TypedNode<K, V>: Lifecycle {
    fn process(&mut self, task: &mut TaskState, record: Record<K, V>) -> Result<(), StreamsError>;
}

impl<K: 'static, V: 'static> ErasedNode for Box<dyn TypedNode<K, V>> {
    fn lifecycle(&mut self) -> &mut dyn Lifecycle {
        &mut **self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Boxes a typed node so that parents forwarding `(K, V)` can find it.
pub(crate) fn erase<K: 'static, V: 'static>(node: impl TypedNode<K, V> + 'static) -> Box<dyn ErasedNode> {
    let typed: Box<dyn TypedNode<K, V>> = Box::new(node);
    Box::new(typed)
}

/// Runs a user or DSL [`Processor`].
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub(crate) index: usize,
    pub(crate) children: Vec<usize>,
    pub(crate) processor: P,
    pub(crate) _types: PhantomData<fn(KIn, VIn) -> (KOut, VOut)>,
}

impl<P, KIn, VIn, KOut, VOut> TypedNode<KIn, VIn> for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: 'static,
    VIn: 'static,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    fn process(&mut self, task: &mut TaskState, record: Record<KIn, VIn>) -> Result<(), StreamsError> {
        let mut ctx = ProcessorContext::new(task, self.index, &self.children);
        self.processor.process(&mut ctx, record)
    }
}

impl<P, KIn, VIn, KOut, VOut> Lifecycle for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: 'static,
    VIn: 'static,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    fn init(&mut self, task: &mut TaskState) -> Result<(), StreamsError> {
        self.processor.init(&mut ProcessorContext::new(task, self.index, &self.children))
    }

    fn punctuate(&mut self, task: &mut TaskState, punctuation: Punctuation) -> Result<(), StreamsError> {
        self.processor.punctuate(&mut ProcessorContext::new(task, self.index, &self.children), punctuation)
    }

    fn close(&mut self, task: &mut TaskState) -> Result<(), StreamsError> {
        self.processor.close(&mut ProcessorContext::new(task, self.index, &self.children))
    }

    fn flush(&mut self, task: &mut TaskState) -> Result<(), StreamsError> {
        self.processor.flush(&mut ProcessorContext::new(task, self.index, &self.children))
    }
}

/// Reads raw records of its topics, deserializes them, gives them their timestamps and forwards typed
/// records.
pub(crate) struct SourceNode<K, V> {
    pub(crate) index: usize,
    pub(crate) children: Vec<usize>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    /// The source's own extractor; `None`: the task's default.
    pub(crate) extractor: Option<Arc<dyn TimestampExtractor<K, V>>>,
}

impl<K: Send, V: Send> Lifecycle for SourceNode<K, V> {}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> ErasedNode for SourceNode<K, V> {
    fn lifecycle(&mut self) -> &mut dyn Lifecycle {
        self
    }

    fn process_raw(&mut self, task: &mut TaskState, mut raw: RawRecord) -> Result<(), StreamsError> {
        let key = match from_bytes(&*self.key_serde, &raw.topic, raw.key.as_deref()) {
            Ok(key) => key,
            Err(source) => return deserialization_failed(task, raw, RecordPart::Key, source),
        };
        // The value's buffer is handed to the serde (no copy for bytes and strings); it comes back if the
        // value cannot be read, so the handler sees the record whole.
        let value = match raw.value.take() {
            None => self.value_serde.null_value(),
            Some(bytes) => match self.value_serde.deserialize_owned(&raw.topic, bytes) {
                Ok(value) => Some(value),
                Err((source, bytes)) => {
                    raw.value = Some(bytes);
                    return deserialization_failed(task, raw, RecordPart::Value, source);
                }
            },
        };
        let partition_time = task.partition_time(&raw.topic, raw.partition);
        let timestamp = match &self.extractor {
            Some(extractor) => timestamp::extract(&**extractor, &raw, key.as_ref(), value.as_ref(), partition_time)?,
            None => {
                let (key, value) = (key.as_ref().map(|k| k as &dyn Any), value.as_ref().map(|v| v as &dyn Any));
                timestamp::extract(&*task.default_extractor, &raw, key, value, partition_time)?
            }
        };
        if timestamp < 0 {
            // Kafka Streams' RecordQueue skips it before the source node; stream time does not move.
            let mut ctx = ProcessorContext::<K, V>::new(task, self.index, &self.children);
            ctx.record_dropped(&format!("negative extracted timestamp {timestamp}"));
            return Ok(());
        }
        task.advance_time(&raw.topic, raw.partition, timestamp);
        let (Some(key), Some(value)) = (key, value) else {
            // The stream's types cannot hold a null here; Kafka Streams' aggregations drop such records too.
            // Streams that must keep them use `Option<K>` / `Option<V>`.
            let part = if raw.key.is_none() { RecordPart::Key } else { RecordPart::Value };
            let mut ctx = ProcessorContext::<K, V>::new(task, self.index, &self.children);
            ctx.record_dropped(&format!("null {part}, and the stream's {part} type cannot be null"));
            return Ok(());
        };
        let record = Record { key, value, timestamp, headers: raw.headers };
        crate::buffers::recycle(raw.key);
        forward(task, &self.children, record)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn deserialization_failed(
    task: &mut TaskState,
    raw: RawRecord,
    part: RecordPart,
    source: crate::serde::SerdeError,
) -> Result<(), StreamsError> {
    let error = StreamsError::Deserialization {
        topic: raw.topic.to_string(),
        partition: raw.partition,
        offset: raw.offset,
        part,
        source,
    };
    match task.deserialization_handler.clone().handle(&raw, &error) {
        DeserializationResponse::Fail => Err(error),
        DeserializationResponse::Continue(records) => {
            task.metrics.skipped_records += 1;
            task.outbox.extend(records);
            Ok(())
        }
    }
}

/// Where a sink writes.
pub(crate) enum SinkTarget<K, V> {
    /// One topic (already prefixed with the application id if internal).
    Fixed(Arc<str>),
    /// A topic chosen per record.
    Dynamic(Arc<dyn Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync>),
}

/// A custom partitioner (Kafka Streams' `StreamPartitioner`), given the topic, the key, the value and
/// the topic's partition count.
pub(crate) enum StreamPartitioner<K, V> {
    /// One partition, or `None` for the default (murmur2 of the key bytes, as Kafka's Java producer).
    One(Box<dyn Fn(&str, &K, &V, u32) -> Option<i32> + Send + Sync>),
    /// Several partitions (KIP-837): `None` for the default, none to drop the record, or a copy of it
    /// in each partition named.
    Multicast(Box<dyn Fn(&str, &K, &V, u32) -> Option<Vec<i32>> + Send + Sync>),
}

/// Where a record goes, as a partitioner chose.
enum Placement {
    Default,
    One(i32),
    Several(Vec<i32>),
}

impl<K, V> StreamPartitioner<K, V> {
    fn place(&self, topic: &str, key: &K, value: &V, partitions: u32) -> Placement {
        match self {
            StreamPartitioner::One(choose) => {
                choose(topic, key, value, partitions).map_or(Placement::Default, Placement::One)
            }
            StreamPartitioner::Multicast(choose) => match choose(topic, key, value, partitions) {
                None => Placement::Default,
                Some(mut chosen) => {
                    // A set, as in Kafka Streams: each partition once.
                    chosen.sort_unstable();
                    chosen.dedup();
                    Placement::Several(chosen)
                }
            },
        }
    }
}

/// How many partitions a topic has, for partitioners: the runtime asks the broker (once per topic),
/// the test driver says 1, as Kafka Streams' does.
pub(crate) trait PartitionCounts: Send + Sync {
    fn partitions(&self, topic: &str) -> Result<u32, StreamsError>;
}

/// Every topic has one partition: the test driver's answer, as in Kafka Streams' `TopologyTestDriver`.
pub(crate) struct OnePartition;

impl PartitionCounts for OnePartition {
    fn partitions(&self, _topic: &str) -> Result<u32, StreamsError> {
        Ok(1)
    }
}

/// Serializes typed records and hands them to the task's outbox for the transport to produce.
pub(crate) struct SinkNode<K, V> {
    pub(crate) name: Arc<str>,
    pub(crate) target: SinkTarget<K, V>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) partitioner: Option<Arc<StreamPartitioner<K, V>>>,
}

impl<K: Send + 'static, V: Send + 'static> TypedNode<K, V> for SinkNode<K, V> {
    fn process(&mut self, task: &mut TaskState, record: Record<K, V>) -> Result<(), StreamsError> {
        let topic: Arc<str> = match &self.target {
            SinkTarget::Fixed(topic) => topic.clone(),
            SinkTarget::Dynamic(choose) => choose(&record.key, &record.value, task.current.as_ref()).into(),
        };
        let serialization =
            |source| StreamsError::Serialization { node: self.name.to_string(), target: topic.to_string(), source };
        let key = to_bytes_in(&*self.key_serde, &topic, &record.key, crate::buffers::spare()).map_err(serialization)?;
        let value =
            to_bytes_in(&*self.value_serde, &topic, &record.value, crate::buffers::spare()).map_err(serialization)?;
        let placement = match &self.partitioner {
            None => match key.as_deref() {
                // A windowed key goes where its inner key goes (Kafka Streams' WindowedStreamPartitioner).
                Some(key) if self.key_serde.partition_bytes(key).len() < key.len() => {
                    let partitions = task.partition_counts.partitions(&topic)?;
                    let inner = self.key_serde.partition_bytes(key);
                    Placement::One(crate::murmur2::partition_for_key(inner, partitions as i32))
                }
                _ => Placement::Default,
            },
            Some(partitioner) => {
                let partitions = task.partition_counts.partitions(&topic)?;
                partitioner.place(&topic, &record.key, &record.value, partitions)
            }
        };
        let mut produced =
            ProducedRecord { topic, partition: None, key, value, timestamp: record.timestamp, headers: record.headers };
        match placement {
            Placement::Default => task.outbox.push(produced),
            Placement::One(partition) => {
                produced.partition = Some(partition);
                task.outbox.push(produced);
            }
            Placement::Several(partitions) if partitions.is_empty() => {
                tracing::warn!(target: "kstreams::task", node = %self.name, topic = %produced.topic,
                    "skipping a record its partitioner sent to no partition");
                task.metrics.dropped_records += 1;
            }
            Placement::Several(partitions) => {
                for partition in partitions {
                    task.outbox.push(ProducedRecord { partition: Some(partition), ..produced.clone() });
                }
            }
        }
        Ok(())
    }
}

impl<K: Send, V: Send> Lifecycle for SinkNode<K, V> {}
