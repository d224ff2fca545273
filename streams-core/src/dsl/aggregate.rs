//! The aggregation processors behind `count`, `reduce` and `aggregate`, for grouped streams and grouped
//! tables. Each keeps `ValueAndTimestamp<VA>` per key in its store and forwards a [`Change`] with the new
//! and the old aggregate; the result's timestamp is the largest timestamp that contributed, as in
//! Kafka Streams.

use std::sync::Arc;

use super::change::Change;
use super::Data;
use crate::processor::{Processor, ProcessorContext, StoreHandle};
use crate::serde::Serde;
use crate::store::ValueAndTimestamp;
use crate::{Record, StreamsError};

/// One aggregation step for a stream: `(key, value, old aggregate) -> new aggregate`.
pub(crate) type StreamStep<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// One aggregation step for a table: `(key, change, old aggregate) -> new aggregate` (`None` deletes).
pub(crate) type TableStep<K, V, VA> = Arc<dyn Fn(&K, Change<V>, Option<VA>) -> Option<VA> + Send + Sync>;

/// `KGroupedStream::{count, reduce, aggregate}` (Kafka Streams' `KStreamAggregate` / `KStreamReduce`).
pub(crate) struct StreamAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) handle: Option<StoreHandle<K, ValueAndTimestamp<VA>>>,
    pub(crate) step: StreamStep<K, V, VA>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, K, Change<VA>> for StreamAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.handle = Some(ctx.store_handle(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) || self.value_serde.as_ref().is_some_and(|s| s.is_null(&record.value)) {
            ctx.record_dropped("null key or value in an aggregation");
            return Ok(());
        }
        let handle = self.handle.ok_or_else(|| StreamsError::Internal("aggregate used before init".into()))?;
        let store = ctx.store_mut(handle)?;
        let old = store.get(&record.key)?;
        let (old_value, timestamp) = match old {
            Some(ValueAndTimestamp { value, timestamp }) => (Some(value), timestamp.max(record.timestamp)),
            None => (None, record.timestamp),
        };
        let new_value = (self.step)(&record.key, record.value, old_value.clone());
        let stored = ValueAndTimestamp { value: new_value, timestamp };
        store.put(&record.key, &stored)?;
        let change = Change::new(Some(stored.value), old_value);
        ctx.forward(Record { key: record.key, value: change, timestamp, headers: record.headers })
    }
}

/// `KGroupedTable::{count, reduce, aggregate}` (Kafka Streams' `KTableAggregate` / `KTableReduce`):
/// subtracts the old value, then adds the new one.
pub(crate) struct TableAggregate<K, V, VA> {
    pub(crate) store: String,
    pub(crate) handle: Option<StoreHandle<K, ValueAndTimestamp<VA>>>,
    pub(crate) step: TableStep<K, V, VA>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, Change<V>, K, Change<VA>> for TableAggregate<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), StreamsError> {
        self.handle = Some(ctx.store_handle(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) {
            ctx.record_dropped("null key in a table aggregation");
            return Ok(());
        }
        let handle = self.handle.ok_or_else(|| StreamsError::Internal("aggregate used before init".into()))?;
        let store = ctx.store_mut(handle)?;
        let old = store.get(&record.key)?;
        let (old_value, timestamp) = match old {
            Some(ValueAndTimestamp { value, timestamp }) => (Some(value), timestamp.max(record.timestamp)),
            None => (None, record.timestamp),
        };
        let new_value = (self.step)(&record.key, record.value, old_value.clone());
        match &new_value {
            Some(value) => store.put(&record.key, &ValueAndTimestamp { value: value.clone(), timestamp })?,
            None => {
                store.delete(&record.key)?;
            }
        }
        ctx.forward(Record {
            key: record.key,
            value: Change::new(new_value, old_value),
            timestamp,
            headers: record.headers,
        })
    }
}
