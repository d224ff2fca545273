//! The stream side's buffer of a stream-table join with a grace period (Kafka Streams' KIP-923,
//! `RocksDBTimeOrderedKeyValueBuffer`): a stream record waits until the buffer has seen a timestamp
//! `grace` past its own, then joins the versioned table as of its timestamp, so that table updates
//! arriving a little late still meet the records they belong to. Records leave in timestamp order,
//! then key bytes, then arrival, as in Kafka Streams.
//!
//! Entries live in a byte store `<join>-Buffer` (logged, held apart per commit under exactly-once like
//! every store), keyed as Kafka Streams keys them: `0x00`, the timestamp (8 bytes big-endian), the key's
//! bytes, a sequence number (4 bytes big-endian); so the store's order is the order records leave in.
//! Values are laid out as Kafka Streams logs them (see `write_join_buffer_value`). One more row, `0x01`,
//! keeps the buffer's observed stream time and sequence number: a restored buffer decides what is late
//! and numbers records as the lost one would have (Kafka Streams keeps both in memory only).

use crate::processor::{ProcessingContext, StoreHandle};
use crate::store::{read_join_buffer_value, write_join_buffer_value, BufferedContext};
use crate::StreamsError;

const ENTRY: u8 = 0x00;
const STATE: &[u8] = &[0x01];

/// A record that left the buffer: its key's and value's bytes and where it came from.
pub(crate) struct Buffered {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) context: BufferedContext,
}

/// One task's buffer.
pub(crate) struct JoinBuffer {
    store: String,
    grace_ms: i64,
    handle: Option<StoreHandle<Vec<u8>, Vec<u8>>>,
    /// The largest timestamp buffered, -1 before any (Kafka Streams' `observedStreamTime` of the store).
    observed: i64,
    sequence: u32,
}

impl JoinBuffer {
    pub(crate) fn new(store: String, grace_ms: i64) -> Self {
        JoinBuffer { store, grace_ms, handle: None, observed: -1, sequence: 0 }
    }

    /// The buffer store's name.
    pub(crate) fn name(&self) -> &str {
        &self.store
    }

    pub(crate) fn init(&mut self, ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError> {
        let handle = ctx.store_handle::<Vec<u8>, Vec<u8>>(&self.store)?;
        self.handle = Some(handle);
        if let Some(state) = ctx.store_mut(handle)?.get(&STATE.to_vec())? {
            let (observed, sequence) = state.split_at_checked(8).ok_or_else(|| self.corrupt("its state row"))?;
            self.observed = i64::from_be_bytes(observed.try_into().map_err(|_| self.corrupt("its state row"))?);
            self.sequence =
                u32::from_be_bytes(sequence.try_into().map_err(|_| self.corrupt("its state row"))?) & 0x7FFF_FFFF;
        }
        Ok(())
    }

    fn handle(&self) -> Result<StoreHandle<Vec<u8>, Vec<u8>>, StreamsError> {
        self.handle.ok_or_else(|| StreamsError::Internal("a join buffer used before its init".into()))
    }

    fn corrupt(&self, what: &str) -> StreamsError {
        StreamsError::StoreAccess {
            node: "(store)".into(),
            store: self.store.clone(),
            reason: format!("{what} cannot be read"),
        }
    }

    /// Whether a record at `timestamp` is too late to wait (older than the buffer's stream time minus
    /// the grace period): it joins at once, as in Kafka Streams.
    pub(crate) fn is_late(&self, timestamp: i64) -> bool {
        self.observed.saturating_sub(self.grace_ms) > timestamp
    }

    /// Buffers a record: its key's and value's bytes and its context (timestamp, headers, origin).
    pub(crate) fn put(
        &mut self,
        ctx: &mut ProcessingContext<'_>,
        key: &[u8],
        value: Vec<u8>,
        context: BufferedContext,
    ) -> Result<(), StreamsError> {
        self.sequence = self.sequence.wrapping_add(1) & 0x7FFF_FFFF;
        let mut row = Vec::with_capacity(13 + key.len());
        row.push(ENTRY);
        row.extend_from_slice(&context.timestamp.to_be_bytes());
        row.extend_from_slice(key);
        row.extend_from_slice(&self.sequence.to_be_bytes());
        self.observed = self.observed.max(context.timestamp);
        let mut state = self.observed.to_be_bytes().to_vec();
        state.extend_from_slice(&self.sequence.to_be_bytes());
        let store = ctx.store_mut(self.handle()?)?;
        store.put(&row, &write_join_buffer_value(context, value))?;
        store.put(&STATE.to_vec(), &state)
    }

    /// Takes out the records whose time has come (at or before the stream time minus the grace
    /// period), in the order they leave.
    pub(crate) fn evict(&mut self, ctx: &mut ProcessingContext<'_>) -> Result<Vec<Buffered>, StreamsError> {
        let bound = self.observed.saturating_sub(self.grace_ms);
        if bound < 0 {
            return Ok(Vec::new());
        }
        // Every entry row of a timestamp up to `bound` sorts before this key, which no entry has (each
        // ends with a sequence number); up to `i64::MAX`, every row but the state row.
        let past = match bound.checked_add(1) {
            Some(next) => [&[ENTRY][..], &next.to_be_bytes()].concat(),
            None => STATE.to_vec(),
        };
        let store = ctx.store_mut(self.handle()?)?;
        let rows = store.range(&vec![ENTRY], &past)?.filter(|row| !matches!(row, Ok((key, _)) if key == STATE));
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        let mut records = Vec::with_capacity(rows.len());
        for (row, bytes) in rows {
            let key = row.get(9..row.len().saturating_sub(4)).filter(|_| row.len() >= 13);
            let key = key.ok_or_else(|| self.corrupt(&format!("the buffered record {row:02x?}")))?.to_vec();
            let (context, value) = read_join_buffer_value(&bytes)
                .map_err(|why| self.corrupt(&format!("the buffered record {row:02x?} ({why})")))?;
            records.push(Buffered { key, value, context });
            ctx.store_mut(self.handle()?)?.delete(&row)?;
        }
        Ok(records)
    }
}
