//! The processor's window on its task: forwarding, stores, record metadata, time and schedules.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::state::{self, TaskState};
use super::{interval_ms, PunctuationId, PunctuationType};
use crate::store::{
    ReadOnlyKeyValueView, SessionStore, SuppressionBuffer, TypedKeyValueStore, VersionedKeyValueStore, VersionedRecord,
    WindowStore,
};
use crate::{Record, RecordMetadata, StreamsError, TaskId};

/// What every piece of user code running at a node can reach, whether it forwards records or not
/// (Kafka Streams' `ProcessingContext`): the state stores it is connected to, the input record's
/// metadata, time, and punctuation schedules. A [`ProcessorContext`] and a
/// [`FixedKeyProcessorContext`](super::FixedKeyProcessorContext) add forwarding to it and dereference
/// to it; a KTable's value transformer gets it alone, as it returns its value instead of forwarding.
pub struct ProcessingContext<'a> {
    pub(crate) task: &'a mut TaskState,
    pub(crate) node: usize,
    pub(crate) children: &'a [usize],
}

/// What a [`Processor`](super::Processor) can do while it runs: forward records to its children, and
/// everything a [`ProcessingContext`] offers (stores, the input record's metadata, time, schedules),
/// which it dereferences to.
///
/// `KOut`/`VOut` are the types the processor forwards; the compiler checks every `forward`.
pub struct ProcessorContext<'a, KOut, VOut> {
    base: ProcessingContext<'a>,
    _out: PhantomData<fn(KOut, VOut)>,
}

impl<'a, KOut, VOut> Deref for ProcessorContext<'a, KOut, VOut> {
    type Target = ProcessingContext<'a>;

    fn deref(&self) -> &ProcessingContext<'a> {
        &self.base
    }
}

impl<KOut, VOut> DerefMut for ProcessorContext<'_, KOut, VOut> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.base
    }
}

/// A store looked up once (typically in `init`) and then used per record without a name look-up.
pub struct StoreHandle<K, V> {
    index: usize,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for StoreHandle<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for StoreHandle<K, V> {}

impl<'a, KOut: Clone + 'static, VOut: Clone + 'static> ProcessorContext<'a, KOut, VOut> {
    pub(crate) fn new(task: &'a mut TaskState, node: usize, children: &'a [usize]) -> Self {
        ProcessorContext { base: ProcessingContext { task, node, children }, _out: PhantomData }
    }

    /// The same window, borrowed for a shorter while: for a wrapper of user code that forwards through
    /// a context of its own (a fixed-key processor's).
    pub(crate) fn reborrow(&mut self) -> ProcessorContext<'_, KOut, VOut> {
        let base = &mut self.base;
        ProcessorContext {
            base: ProcessingContext { task: &mut *base.task, node: base.node, children: base.children },
            _out: PhantomData,
        }
    }

    /// Forwards `record` to every child. Each child (and its descendants) has processed it when this
    /// returns, as in Kafka Streams.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<(), StreamsError> {
        state::forward(self.base.task, self.base.children, record)
    }

    /// Forwards `record` as if it had been read at `metadata` (what the children see as
    /// [`record_metadata`](ProcessingContext::record_metadata)): a suppression emits a change with the
    /// context it was buffered with, as Kafka Streams does.
    pub(crate) fn forward_from(
        &mut self,
        metadata: Option<RecordMetadata>,
        record: Record<KOut, VOut>,
    ) -> Result<(), StreamsError> {
        let current = std::mem::replace(&mut self.base.task.current, metadata);
        let result = self.forward(record);
        self.base.task.current = current;
        result
    }

    /// Forwards `record` to the child called `child` only.
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) -> Result<(), StreamsError> {
        let position = self.child_position(child)?;
        self.forward_to_position(position, record)
    }

    /// Where child `child` is among this processor's children: a processor that routes by name (the
    /// DSL's `split`) looks its children up once, at init, and then forwards by position.
    pub(crate) fn child_position(&self, child: &str) -> Result<usize, StreamsError> {
        self.children
            .iter()
            .position(|&c| &*self.task.node_names[c] == child)
            .ok_or_else(|| StreamsError::UnknownChild { node: self.node_name().to_string(), child: child.to_string() })
    }

    /// Forwards `record` to the child at `position` (see [`child_position`](Self::child_position)).
    pub(crate) fn forward_to_position(
        &mut self,
        position: usize,
        record: Record<KOut, VOut>,
    ) -> Result<(), StreamsError> {
        state::deliver(self.base.task, self.base.children[position], record)
    }
}

impl ProcessingContext<'_> {
    /// The names of this processor's children, in the order they were connected.
    pub fn child_names(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(|&c| &*self.task.node_names[c])
    }

    /// This processor's name.
    pub fn node_name(&self) -> &str {
        &self.task.node_names[self.node]
    }

    /// The task this processor runs in (`<sub-topology>_<partition>`).
    pub fn task_id(&self) -> TaskId {
        self.task.id
    }

    /// The application id (the consumer group, and the prefix of internal topics).
    pub fn application_id(&self) -> &str {
        &self.task.application_id
    }

    /// Where the record being processed came from; `None` during a punctuation.
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.task.current.as_ref()
    }

    /// The task's stream time: the largest record timestamp it has seen (`-1` before the first record).
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }

    /// Wall-clock time in ms, from the task's clock (manual in the test driver).
    pub fn wall_clock_time_ms(&self) -> i64 {
        self.task.clock.now_ms()
    }

    /// Schedules [`Processor::punctuate`](super::Processor::punctuate) every `interval` on the given
    /// clock. Stream-time schedules fire as soon as there is data; wall-clock ones `interval` from now.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> PunctuationId {
        self.task.schedule(self.node, interval_ms(interval), kind)
    }

    /// Asks for a commit as soon as the records of the current poll are processed, instead of at the
    /// next `commit.interval.ms` (Kafka Streams' `ProcessorContext.commit()`): say, after a record
    /// whose effects should not wait. In the test driver it does nothing: there every record's effects
    /// are visible at once.
    pub fn commit(&mut self) {
        self.task.commit_requested = true;
    }

    /// Stops a schedule. Cancelling twice, or another processor's schedule, does nothing.
    pub fn cancel(&mut self, id: PunctuationId) {
        self.task.cancel_schedule(self.node, id);
    }

    /// Looks up a store this processor is connected to, checking its key and value types.
    pub fn store_handle<K: 'static, V: 'static>(&self, name: &str) -> Result<StoreHandle<K, V>, StreamsError> {
        let index = self.store_index_of::<TypedKeyValueStore<K, V>>(name, || {
            format!("({}, {})", std::any::type_name::<K>(), std::any::type_name::<V>())
        })?;
        Ok(StoreHandle { index, _types: PhantomData })
    }

    /// Reads the global store `name` (kept by [`Topology::add_global_store`](crate::Topology::add_global_store)'s
    /// processor, or a global table's: then the values are [`ValueAndTimestamp`](crate::store::ValueAndTimestamp)s)
    /// while its global task holds still, as Kafka Streams' `getStateStore` gives any processor a global
    /// store, read-only and without being connected to it. An error names the store when there is no
    /// such global store or it holds other types, and in a global task's own processor (which reaches its
    /// store with [`store_handle`](Self::store_handle)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::processor::{Processor, ProcessorContext};
    /// use streams_core::serde::StringSerde;
    /// use streams_core::store::{Stores, ValueAndTimestamp};
    /// use streams_core::testing::TopologyTestDriver;
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::{Record, StreamsError};
    ///
    /// /// Appends the colour the global table `colors` holds for each record's value.
    /// struct Paint;
    /// impl Processor<String, String, String, String> for Paint {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, record: Record<String, String>) -> Result<(), StreamsError> {
    ///         let color = ctx.global_store::<String, ValueAndTimestamp<String>, _>("colors", |mut colors| colors.get(&record.value))?;
    ///         let value = format!("{} {}", record.value, color.map_or("?".to_string(), |c| c.value));
    ///         ctx.forward(record.with_value(value))
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.global_table_with("colors", streams_core::dsl::Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde)), streams_core::dsl::Materialized::as_store("colors"));
    /// builder.stream::<String, String>("things").process(|| Paint, &[]).to("painted");
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let colors = driver.input_topic::<String, String>("colors");
    /// let things = driver.input_topic::<String, String>("things");
    /// driver.pipe(&colors, "sky".into(), "blue".into(), 0)?;
    /// driver.pipe(&things, "t1".into(), "sky".into(), 1)?;
    /// let painted = driver.output_topic::<String, String>("painted");
    /// assert_eq!(driver.read_key_values(&painted), vec![("t1".to_string(), "sky blue".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn global_store<K: 'static, V: 'static, R>(
        &self,
        name: &str,
        read: impl FnOnce(ReadOnlyKeyValueView<'_, K, V>) -> Result<R, StreamsError>,
    ) -> Result<R, StreamsError> {
        let access = |reason: String| StreamsError::StoreAccess {
            node: self.node_name().to_string(),
            store: name.to_string(),
            reason,
        };
        let globals =
            self.task.globals.clone().ok_or_else(|| access("this task reads no global stores".to_string()))?;
        let (mut read, mut result) = (Some(read), None);
        globals.with_store(name, &mut |store| {
            if !store.is::<TypedKeyValueStore<K, V>>() {
                let wanted = format!("({}, {})", std::any::type_name::<K>(), std::any::type_name::<V>());
                return Err(access(format!("the global store holds ({}), not {wanted}", store.type_names())));
            }
            let typed = store.downcast_mut::<TypedKeyValueStore<K, V>>().expect("checked above");
            let read = read.take().expect("a store is read once");
            result = Some(read(ReadOnlyKeyValueView::new(typed)));
            Ok(())
        })?;
        result.expect("the store was read")
    }

    /// Where the store `name` of type `S` is among the task's stores; an error naming both types if the
    /// store is of another type.
    fn store_index_of<S: 'static>(&self, name: &str, wanted: impl FnOnce() -> String) -> Result<usize, StreamsError> {
        let index = self.task.store_index_for(self.node, name)?;
        if !self.task.stores[index].is::<S>() {
            return Err(StreamsError::StoreAccess {
                node: self.node_name().to_string(),
                store: name.to_string(),
                reason: format!("the store holds ({}), not {}", self.task.stores[index].type_names(), wanted()),
            });
        }
        Ok(index)
    }

    /// The store `name` this processor is connected to, as an `S` (`wanted` names `S` in the error when
    /// it is not one).
    fn connected_store<S: 'static>(
        &mut self,
        name: &str,
        wanted: impl FnOnce() -> String,
    ) -> Result<&mut S, StreamsError> {
        let index = self.store_index_of::<S>(name, wanted)?;
        self.task.stores[index]
            .downcast_mut::<S>()
            .ok_or_else(|| StreamsError::Internal(format!("the store `{name}` changed type")))
    }

    /// A handle on the store `name` when it is a versioned store of `K` and `V` (`None` when it is a store
    /// of another kind): how a DSL table finds out which kind its store is.
    pub(crate) fn versioned_handle<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<Option<StoreHandle<K, VersionedRecord<V>>>, StreamsError> {
        let index = self.task.store_index_for(self.node, name)?;
        let versioned = self.task.stores[index].is::<VersionedKeyValueStore<K, V>>();
        Ok(versioned.then_some(StoreHandle { index, _types: PhantomData }))
    }

    /// The versioned store behind a handle from [`versioned_handle`](Self::versioned_handle).
    pub(crate) fn versioned_mut<K: 'static, V: 'static>(
        &mut self,
        handle: StoreHandle<K, VersionedRecord<V>>,
    ) -> Result<&mut VersionedKeyValueStore<K, V>, StreamsError> {
        self.task.stores[handle.index]
            .downcast_mut::<VersionedKeyValueStore<K, V>>()
            .ok_or_else(|| StreamsError::Internal("a store handle changed type".into()))
    }

    /// The store behind a handle from [`store_handle`](Self::store_handle).
    pub fn store_mut<K: 'static, V: 'static>(
        &mut self,
        handle: StoreHandle<K, V>,
    ) -> Result<&mut TypedKeyValueStore<K, V>, StreamsError> {
        self.task.stores[handle.index]
            .downcast_mut::<TypedKeyValueStore<K, V>>()
            .ok_or_else(|| StreamsError::Internal("a store handle changed type".into()))
    }

    /// Looks up a window store this processor is connected to (one built with
    /// [`Stores::window_store_builder`](crate::store::Stores::window_store_builder)), checking its types.
    pub fn window_store<K: 'static, V: 'static>(&mut self, name: &str) -> Result<&mut WindowStore<K, V>, StreamsError> {
        self.connected_store::<WindowStore<K, V>>(name, || {
            format!("a window store of {}, {}", std::any::type_name::<K>(), std::any::type_name::<V>())
        })
    }

    /// Looks up a versioned key-value store this processor is connected to (one built with
    /// [`Stores::versioned_key_value_store_builder`](crate::store::Stores::versioned_key_value_store_builder)),
    /// checking its types.
    pub fn versioned_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<&mut VersionedKeyValueStore<K, V>, StreamsError> {
        self.connected_store::<VersionedKeyValueStore<K, V>>(name, || {
            format!("a versioned key-value store of {}, {}", std::any::type_name::<K>(), std::any::type_name::<V>())
        })
    }

    /// Looks up a session store this processor is connected to (one built with
    /// [`Stores::session_store_builder`](crate::store::Stores::session_store_builder)), checking its types.
    pub fn session_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<&mut SessionStore<K, V>, StreamsError> {
        self.connected_store::<SessionStore<K, V>>(name, || {
            format!("a session store of {}, {}", std::any::type_name::<K>(), std::any::type_name::<V>())
        })
    }

    /// The value `key` has in the processor metadata the task committed with its offsets (Kafka Streams'
    /// `processorMetadataForKey`).
    pub(crate) fn processor_metadata(&self, key: &str) -> Option<i64> {
        self.task.processor_metadata.get(key)
    }

    /// Sets `key` in the processor metadata, committed with the task's next offsets.
    pub(crate) fn set_processor_metadata(&mut self, key: &str, value: i64) {
        self.task.processor_metadata.put(key, value);
    }

    /// Looks up the suppression buffer `name` of a DSL `suppress`.
    pub(crate) fn suppression_buffer<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<&mut SuppressionBuffer<K, V>, StreamsError> {
        self.connected_store::<SuppressionBuffer<K, V>>(name, || "a suppression buffer".to_string())
    }

    /// Looks up a store by name and returns it: [`store_handle`](Self::store_handle) then
    /// [`store_mut`](Self::store_mut). Prefer a handle made in `init` on hot paths.
    pub fn store<K: 'static, V: 'static>(&mut self, name: &str) -> Result<&mut TypedKeyValueStore<K, V>, StreamsError> {
        let handle = self.store_handle::<K, V>(name)?;
        self.store_mut(handle)
    }

    /// Wraps an error from user code, naming this processor.
    pub fn error(&self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StreamsError {
        StreamsError::processor(self.node_name(), source)
    }

    /// Counts a record this processor dropped on purpose (a null key in an aggregation), as Kafka Streams'
    /// `dropped-records` metric does, and logs it at warn level with the record's coordinates.
    pub fn record_dropped(&mut self, reason: &str) {
        self.task.metrics.dropped_records += 1;
        match &self.task.current {
            Some(m) => tracing::warn!(
                target: "kstreams::processor::context",
                node = %self.task.node_names[self.node], topic = %m.topic, partition = m.partition, offset = m.offset,
                "dropping record: {reason}"
            ),
            None => {
                tracing::warn!(target: "kstreams::processor::context", node = %self.task.node_names[self.node], "dropping record: {reason}")
            }
        }
    }

    /// [`record_dropped`](Self::record_dropped) for a record dropped as an expected part of its
    /// operator (too late for a window; a foreign-key join's answer to a value its row no longer has):
    /// counted the same, logged at debug level.
    pub(crate) fn record_late(&mut self, reason: &str) {
        self.task.metrics.dropped_records += 1;
        let node = &self.task.node_names[self.node];
        match &self.task.current {
            Some(m) => tracing::debug!(target: "kstreams::processor::context", node = %node, topic = %m.topic,
                partition = m.partition, offset = m.offset, "skipping record for {reason}"),
            None => {
                tracing::debug!(target: "kstreams::processor::context", node = %node, "skipping record for {reason}")
            }
        }
    }
}
