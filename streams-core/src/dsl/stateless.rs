//! The stateless operators as processors: filter, map, map_values, flat_map, flat_map_values,
//! select_key, peek/foreach, pass-through (merge), and split. Each forwards the input's timestamp and
//! headers with its output, as Kafka Streams does.

use std::sync::Arc;

use super::Data;
use crate::processor::{Processor, ProcessorContext};
use crate::{Record, StreamsError};

/// `filter` / `filter_not`: forwards records whose predicate result equals `keep_if`.
pub(crate) struct Filter<F> {
    pub(crate) predicate: Arc<F>,
    pub(crate) keep_if: bool,
}

impl<K: Data, V: Data, F: Fn(&K, &V) -> bool + Send + Sync + 'static> Processor<K, V, K, V> for Filter<F> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        if (self.predicate)(&record.key, &record.value) == self.keep_if {
            ctx.forward(record)?;
        }
        Ok(())
    }
}

/// `map`: a new key and value per record.
pub(crate) struct Map<F>(pub(crate) Arc<F>);

impl<K, V, K2, V2, F> Processor<K, V, K2, V2> for Map<F>
where
    K: Data,
    V: Data,
    K2: Data,
    V2: Data,
    F: Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K2, V2>, record: Record<K, V>) -> Result<(), StreamsError> {
        let (key, value) = (self.0)(record.key, record.value);
        ctx.forward(Record { key, value, timestamp: record.timestamp, headers: record.headers })
    }
}

/// `map_values` (with or without the key): a new value per record, same key.
pub(crate) struct MapValues<F>(pub(crate) Arc<F>);

impl<K, V, V2, F> Processor<K, V, K, V2> for MapValues<F>
where
    K: Data,
    V: Data,
    V2: Data,
    F: Fn(&K, V) -> V2 + Send + Sync + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V2>, record: Record<K, V>) -> Result<(), StreamsError> {
        let value = (self.0)(&record.key, record.value);
        ctx.forward(Record { key: record.key, value, timestamp: record.timestamp, headers: record.headers })
    }
}

/// `flat_map`: zero or more `(key, value)` pairs per record.
pub(crate) struct FlatMap<F>(pub(crate) Arc<F>);

impl<K, V, K2, V2, I, F> Processor<K, V, K2, V2> for FlatMap<F>
where
    K: Data,
    V: Data,
    K2: Data,
    V2: Data,
    I: IntoIterator<Item = (K2, V2)>,
    F: Fn(K, V) -> I + Send + Sync + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K2, V2>, record: Record<K, V>) -> Result<(), StreamsError> {
        for (key, value) in (self.0)(record.key, record.value) {
            ctx.forward(Record { key, value, timestamp: record.timestamp, headers: record.headers.clone() })?;
        }
        Ok(())
    }
}

/// `flat_map_values` (with or without the key): zero or more values per record, same key.
pub(crate) struct FlatMapValues<F>(pub(crate) Arc<F>);

impl<K, V, V2, I, F> Processor<K, V, K, V2> for FlatMapValues<F>
where
    K: Data,
    V: Data,
    V2: Data,
    I: IntoIterator<Item = V2>,
    F: Fn(&K, V) -> I + Send + Sync + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V2>, record: Record<K, V>) -> Result<(), StreamsError> {
        for value in (self.0)(&record.key, record.value) {
            let out =
                Record { key: record.key.clone(), value, timestamp: record.timestamp, headers: record.headers.clone() };
            ctx.forward(out)?;
        }
        Ok(())
    }
}

/// `select_key`: a new key computed from key and value.
pub(crate) struct SelectKey<F>(pub(crate) Arc<F>);

impl<K, V, K2, F> Processor<K, V, K2, V> for SelectKey<F>
where
    K: Data,
    V: Data,
    K2: Data,
    F: Fn(&K, &V) -> K2 + Send + Sync + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K2, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        let key = (self.0)(&record.key, &record.value);
        ctx.forward(record.with_key(key))
    }
}

/// `peek` (forwards) and `foreach` (terminal): runs an action per record.
pub(crate) struct Peek<F> {
    pub(crate) action: Arc<F>,
    pub(crate) forward: bool,
}

impl<K: Data, V: Data, F: Fn(&K, &V) + Send + Sync + 'static> Processor<K, V, K, V> for Peek<F> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        (self.action)(&record.key, &record.value);
        if self.forward {
            ctx.forward(record)?;
        }
        Ok(())
    }
}

/// Forwards every record unchanged: `merge`, and the branches of `split`.
pub(crate) struct PassThrough;

impl<K: Data, V: Data> Processor<K, V, K, V> for PassThrough {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        ctx.forward(record)
    }
}

pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// `split`: sends each record to the first branch whose predicate holds, else to the default branch if
/// there is one (else nowhere: that is what the user asked for). The branches are named children,
/// resolved to positions once at init, so routing a record compares no strings.
pub(crate) struct Split<K, V> {
    pub(crate) branches: Vec<(Option<Predicate<K, V>>, String)>,
    pub(crate) positions: Vec<usize>,
}

impl<K: Data, V: Data> Processor<K, V, K, V> for Split<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), StreamsError> {
        self.positions = self.branches.iter().map(|(_, child)| ctx.child_position(child)).collect::<Result<_, _>>()?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, V>, record: Record<K, V>) -> Result<(), StreamsError> {
        for ((predicate, _), &position) in self.branches.iter().zip(&self.positions) {
            if predicate.as_ref().is_none_or(|p| p(&record.key, &record.value)) {
                return ctx.forward_to_position(position, record);
            }
        }
        Ok(())
    }
}
