//! `KTable::transform_values`: a value transformer with access to stores, run on both sides of each
//! change of a table (Kafka Streams' `ValueTransformerWithKey` and `KTableTransformValues`).

use std::marker::PhantomData;

use super::change::Change;
use super::ktable::TableOutput;
use super::Data;
use crate::processor::{ProcessingContext, Processor, ProcessorContext, Punctuation};
use crate::{Record, StreamsError};

/// Turns a table's value for a key into a new value, with access to the stores it is connected to
/// (Kafka Streams' `ValueTransformerWithKey`, as `KTable::transformValues` uses it). Each task gets its
/// own instance, made by the supplier given to
/// [`KTable::transform_values`](super::KTable::transform_values).
///
/// It is given a table's values, so a deleted key's value is `None`, and it returns the new value:
/// `None` deletes the key in the result. It cannot forward records; it returns one value per call.
/// When the table below must send old values (a `group_by` after it), the transformer is called for
/// the old value too, after the new one, unless the result has a store to read it from.
pub trait ValueTransformerWithKey<K, V, VR>: Send + 'static {
    /// Called once when the task starts, before any record: look up stores, schedule punctuations.
    fn init(&mut self, _ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError> {
        Ok(())
    }

    /// The new value of `key`, whose value is `value` (`None`: deleted).
    fn transform(
        &mut self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        value: Option<&V>,
    ) -> Result<Option<VR>, StreamsError>;

    /// Called when a schedule made with [`ProcessingContext::schedule`] fires.
    fn punctuate(&mut self, _ctx: &mut ProcessingContext<'_>, _punctuation: Punctuation) -> Result<(), StreamsError> {
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self, _ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// `KTABLE-TRANSFORMVALUES`: transforms the new side of each change; the old side is the store's with a
/// store, else the transformed old value when old values are sent (else none).
pub(super) struct TableTransformValues<K, V, VR, T> {
    pub(super) transformer: T,
    pub(super) output: TableOutput<K, VR>,
    pub(super) send_old: bool,
    pub(super) _input: PhantomData<fn(V)>,
}

impl<K, V, VR, T> Processor<K, Change<V>, K, Change<VR>> for TableTransformValues<K, V, VR, T>
where
    K: Data,
    V: Data,
    VR: Data,
    T: ValueTransformerWithKey<K, V, VR>,
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.transformer.init(ctx)?;
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let is_latest = record.value.is_latest;
        let new = self.transformer.transform(ctx, &record.key, record.value.new.as_ref())?;
        let old = match !self.output.is_stored() && self.send_old {
            true => self.transformer.transform(ctx, &record.key, record.value.old.as_ref())?,
            false => None,
        };
        let update = Record { key: record.key, value: new, timestamp: record.timestamp, headers: record.headers };
        self.output.forward(ctx, update, |_| old, is_latest, false)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        self.transformer.punctuate(ctx, punctuation)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.close();
        self.transformer.close(ctx)
    }
}
