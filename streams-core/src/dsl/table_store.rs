//! A DSL table's store as its processors and lookups see it: timestamped (one value and its timestamp
//! per key) or versioned (every version within the history retention, Kafka Streams' KIP-914), found
//! by what the store is when the task starts.

use super::Data;
use crate::processor::{ProcessingContext, StoreHandle};
use crate::store::{ValueAndTimestamp, VersionedRecord, PUT_RETURN_CODE_VALID_TO_UNDEFINED};
use crate::StreamsError;

/// A table's store in one task.
pub(crate) enum TableStore<K, V> {
    /// The newest value per key (every DSL table unless `Materialized::as_versioned`).
    Timestamped(StoreHandle<K, ValueAndTimestamp<V>>),
    /// Each key's versions within the history retention.
    Versioned(StoreHandle<K, VersionedRecord<V>>),
}

impl<K, V> Clone for TableStore<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for TableStore<K, V> {}

impl<K: Data, V: Data> TableStore<K, V> {
    /// The store `name` the context's processor is connected to, of either kind.
    pub(crate) fn find(ctx: &ProcessingContext<'_>, name: &str) -> Result<Self, StreamsError> {
        Ok(match ctx.versioned_handle::<K, V>(name)? {
            Some(handle) => TableStore::Versioned(handle),
            None => TableStore::Timestamped(ctx.store_handle(name)?),
        })
    }

    /// Whether lookups can ask for a past time.
    pub(crate) fn is_versioned(&self) -> bool {
        matches!(self, TableStore::Versioned(_))
    }

    /// The key's newest value and its timestamp.
    pub(crate) fn get(
        &self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
    ) -> Result<Option<ValueAndTimestamp<V>>, StreamsError> {
        match *self {
            TableStore::Timestamped(handle) => ctx.store_mut(handle)?.get(key),
            TableStore::Versioned(handle) => Ok(ctx.versioned_mut(handle)?.get(key)?.map(untimed)),
        }
    }

    /// The key's value at `as_of` in a versioned store; the newest in a timestamped one (which keeps no
    /// other).
    pub(crate) fn get_as_of(
        &self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        as_of: i64,
    ) -> Result<Option<ValueAndTimestamp<V>>, StreamsError> {
        match *self {
            TableStore::Timestamped(handle) => ctx.store_mut(handle)?.get(key),
            TableStore::Versioned(handle) => Ok(ctx.versioned_mut(handle)?.get_as_of(key, as_of)?.map(untimed)),
        }
    }

    /// Writes the key's value as of `timestamp` (`None`: a delete). Returns what a versioned store's put
    /// does ([`PUT_RETURN_CODE_VALID_TO_UNDEFINED`] when it is the newest version, `PUT_RETURN_CODE_NOT_PUT`
    /// when it was refused as too old); a timestamped store always takes it as the newest.
    pub(crate) fn put(
        &self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        value: Option<&V>,
        timestamp: i64,
    ) -> Result<i64, StreamsError> {
        match *self {
            TableStore::Timestamped(handle) => {
                let store = ctx.store_mut(handle)?;
                match value {
                    Some(value) => store.put(key, &ValueAndTimestamp { value: value.clone(), timestamp })?,
                    None => {
                        store.delete(key)?;
                    }
                }
                Ok(PUT_RETURN_CODE_VALID_TO_UNDEFINED)
            }
            TableStore::Versioned(handle) => ctx.versioned_mut(handle)?.put(key, value, timestamp),
        }
    }
}

fn untimed<V>(record: VersionedRecord<V>) -> ValueAndTimestamp<V> {
    ValueAndTimestamp { value: record.value, timestamp: record.timestamp }
}
