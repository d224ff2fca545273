//! The restore consumer on rdkafka: reads a changelog partition from an offset to its end and hands the
//! records to the caller in batches.
//!
//! Reading and applying overlap. A scoped reader thread polls librdkafka and fills the next batch while
//! the calling thread applies the one before to its store, so a restore takes about as long as the
//! slower of the two rather than their sum (figures in docs/state.md). Batches go back to the reader once applied, and their
//! records' key and value buffers are refilled in place: a restore reads millions of records through
//! a handful of batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{client_error, headers_of, raw_record, topic_of, LogContext};
use crate::client::{ClientError, ClientErrorKind, RestoreConsumer, TopicPartition};
use crate::record::RawRecord;
use crate::StreamsError;

/// Filled batches that may wait for the applier: enough to ride out a store that stops now and then
/// (a RocksDB store hands each full run of records to its writer thread), without holding much memory
/// (a batch is `max_batch` records). The figures behind 4 are in docs/state.md.
const BATCHES_AHEAD: usize = 4;

pub(super) struct RdKafkaRestoreConsumer {
    consumer: BaseConsumer<LogContext>,
    /// A `read_uncommitted` client for high watermarks, when `consumer` reads `read_committed`.
    end_offsets: Option<BaseConsumer<LogContext>>,
    timeout: Duration,
    /// How long a read goes on through transient errors (`task.timeout.ms`).
    retry_for: Duration,
    topics: Vec<Arc<str>>,
}

impl RdKafkaRestoreConsumer {
    /// `timeout` bounds each call to the broker (`default.api.timeout.ms`); `retry_for` is how long a read
    /// rides out transient errors in place (`task.timeout.ms`).
    pub(super) fn new(
        consumer: BaseConsumer<LogContext>,
        end_offsets: Option<BaseConsumer<LogContext>>,
        timeout: Duration,
        retry_for: Duration,
    ) -> Self {
        RdKafkaRestoreConsumer { consumer, end_offsets, timeout, retry_for, topics: Vec::new() }
    }
}

/// A batch of records on its way to the applier: `records[..len]` are this batch's; records beyond
/// `len` are kept for their buffers.
struct Batch {
    records: Vec<RawRecord>,
    len: usize,
}

impl Batch {
    fn with_capacity(records: usize) -> Self {
        Batch { records: Vec::with_capacity(records), len: 0 }
    }

    fn push(&mut self, topic: Arc<str>, message: &BorrowedMessage<'_>) {
        match self.records.get_mut(self.len) {
            Some(record) => refill_raw_record(record, topic, message),
            None => self.records.push(raw_record(topic, message)),
        }
        self.len += 1;
    }
}

impl RdKafkaRestoreConsumer {
    /// Retries transient errors with back-off until `task.timeout.ms`: right after the runtime creates a
    /// changelog topic, its partitions may have no leader yet (`NOT_LEADER_OR_FOLLOWER`,
    /// `LEADER_NOT_AVAILABLE`), or not be in the client's metadata yet (`UNKNOWN_TOPIC_OR_PARTITION`,
    /// librdkafka's local `Unknown partition`): the runtime checked that the topic exists before it got
    /// here. The same errors come while a broker that led the partition is down and after it is back:
    /// librdkafka can keep the partition unknown for a minute and more until its metadata is refreshed,
    /// so a retry asks for the topic's metadata first.
    fn query_watermarks(
        &self,
        client: &BaseConsumer<LogContext>,
        tp: &TopicPartition,
    ) -> Result<(i64, i64), ClientError> {
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = Duration::from_millis(20);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now()).min(self.timeout);
            match client.fetch_watermarks(&tp.topic, tp.partition, remaining) {
                Ok(watermarks) => return Ok(watermarks),
                Err(e) => {
                    let not_known_yet = matches!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::UnknownTopicOrPartition)
                    );
                    let error = client_error(format!("read the offsets of {tp}"), e);
                    if !(error.is_retriable() || not_known_yet) || Instant::now() + backoff >= deadline {
                        return Err(error);
                    }
                    tracing::debug!(target: "kstreams::kafka::restore", error = %error, "retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    let wait = deadline.saturating_duration_since(Instant::now()).min(self.timeout);
                    if let Err(error) = client.fetch_metadata(Some(&tp.topic), wait) {
                        tracing::debug!(target: "kstreams::kafka::restore", partition = %tp, %error, "refreshing metadata failed");
                    }
                }
            }
        }
    }
}

impl RestoreConsumer for RdKafkaRestoreConsumer {
    fn watermarks(&mut self, tp: &TopicPartition) -> Result<(i64, i64), ClientError> {
        self.query_watermarks(self.end_offsets.as_ref().unwrap_or(&self.consumer), tp)
    }

    /// librdkafka's offset query follows the client's isolation level: the restore consumer's own gives
    /// the last stable offset under `read_committed`.
    fn readable_end(&mut self, tp: &TopicPartition) -> Result<i64, ClientError> {
        self.query_watermarks(&self.consumer, tp).map(|(_, end)| end)
    }

    fn read(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        end: i64,
        max_batch: usize,
        apply: &mut dyn FnMut(&[RawRecord]) -> Result<(), StreamsError>,
    ) -> Result<Option<i64>, StreamsError> {
        if from >= end {
            return Ok(None);
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(from))
            .map_err(|e| client_error(format!("restore {tp}"), e))?;
        self.consumer.assign(&list).map_err(|e| client_error(format!("assign {tp} for restore"), e))?;
        let stopped = AtomicBool::new(false);
        let reader = Reader {
            consumer: &self.consumer,
            tp,
            end,
            max_batch,
            timeout: self.timeout,
            retry_for: self.retry_for,
            stopped: &stopped,
        };
        let topics = &mut self.topics;
        let (filled_tx, filled_rx) = mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
        let (spent_tx, spent_rx) = mpsc::channel::<Batch>();
        let result = std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("restore-reader".into())
                .spawn_scoped(scope, move || reader.run(topics, filled_tx, spent_rx))
                .map_err(|e| {
                    ClientError::new(
                        format!("restore {tp}"),
                        "cannot start a reader thread",
                        ClientErrorKind::Retriable,
                    )
                    .with_source(e)
                })?;
            let mut applied = Ok(());
            // Ends when the reader is done and drops its sender. On an error the reader is told to stop
            // (it may be waiting for records that never come), and the `break` drops the receiver, so a
            // send it is blocked in fails too.
            for batch in filled_rx {
                applied = apply(&batch.records[..batch.len]);
                if applied.is_err() {
                    stopped.store(true, Ordering::Relaxed);
                    break;
                }
                let _ = spent_tx.send(batch);
            }
            let read = thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            applied.and(read)
        });
        let _ = self.consumer.unassign();
        result
    }
}

/// The reader thread's side of [`RdKafkaRestoreConsumer::read`].
struct Reader<'a> {
    consumer: &'a BaseConsumer<LogContext>,
    tp: &'a TopicPartition,
    end: i64,
    max_batch: usize,
    timeout: Duration,
    retry_for: Duration,
    /// Set when the applier failed: nothing more is wanted.
    stopped: &'a AtomicBool,
}

/// A run of transient errors during one read: librdkafka reports a broker it lost (`AllBrokersDown`,
/// a transport failure) as an error event and reconnects by itself, so the read polls on, as Kafka
/// Streams does until `task.timeout.ms`, instead of giving the restore up.
struct Transient {
    since: Option<Instant>,
    errors: u64,
}

impl Transient {
    /// `Ok` when `error` is transient and the run of them is younger than `retry_for`; the error,
    /// saying how long it was retried, otherwise.
    fn tolerate(&mut self, mut error: ClientError, retry_for: Duration) -> Result<(), ClientError> {
        if !error.is_retriable() {
            return Err(error);
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        self.errors += 1;
        if since.elapsed() > retry_for {
            error.message = format!(
                "{} ({} transient errors over {:?}; task.timeout.ms is {retry_for:?})",
                error.message,
                self.errors,
                since.elapsed()
            );
            return Err(error);
        }
        if self.errors == 1 {
            tracing::warn!(target: "kstreams::kafka::restore", error = %error, "transient error during a restore; reading on until task.timeout.ms ({retry_for:?})");
        } else {
            tracing::debug!(target: "kstreams::kafka::restore", error = %error, errors = self.errors, "transient error during a restore");
        }
        Ok(())
    }

    /// How long a read may go without a record: `timeout`, or `retry_for` during a run of transient errors.
    fn patience(&self, timeout: Duration, retry_for: Duration) -> Duration {
        if self.since.is_some() {
            timeout.max(retry_for)
        } else {
            timeout
        }
    }

    /// A record arrived: the broker is back.
    fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(target: "kstreams::kafka::restore", errors = self.errors, after = ?since.elapsed(), "restore reading again after transient errors");
            self.errors = 0;
        }
    }
}

impl Reader<'_> {
    /// Polls until every record before `end` was read, sending full batches to `filled` and reusing
    /// those that come back on `spent`. Returns the offset of the last record read.
    fn run(
        &self,
        topics: &mut Vec<Arc<str>>,
        filled: SyncSender<Batch>,
        spent: Receiver<Batch>,
    ) -> Result<Option<i64>, StreamsError> {
        let (tp, end) = (self.tp, self.end);
        let mut batch = Batch::with_capacity(self.max_batch);
        let mut last = None;
        let mut read = 0u64;
        // When the reader last saw a record arrive, noted on the first empty poll after it (a clock read
        // per record was a twentieth of a restore).
        let (mut progress_at, mut progress_read) = (Instant::now(), 0u64);
        let mut transient = Transient { since: None, errors: 0 };
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return Ok(last);
            }
            // No `enable.partition.eof`: with it, a plain consumer read at half the rate in two of three
            // runs of our bench. The end is the record at `end - 1`, or, when compaction or transaction
            // markers leave none there, a consumer position at `end` once the fetched records run out.
            // Short polls: under exactly-once a changelog's tail is usually one transaction marker, which
            // is never delivered, and only the position says the end was reached (at 50 ms per poll,
            // opening each store of a task took 100 ms).
            let done = match self.consumer.poll(Duration::from_millis(10)) {
                Some(Ok(message)) => {
                    transient.recovered();
                    last = Some(message.offset());
                    read += 1;
                    batch.push(topic_of(topics, message.topic()), &message);
                    message.offset() >= end - 1
                }
                Some(Err(e)) => {
                    transient.tolerate(client_error(format!("restore {tp}"), e), self.retry_for)?;
                    false
                }
                None => match self.position() {
                    Ok(position) if position >= end => true,
                    Ok(_) if read != progress_read => {
                        (progress_at, progress_read) = (Instant::now(), read);
                        false
                    }
                    // Through a run of transient errors the broker may be away for up to task.timeout.ms.
                    Ok(position) if progress_at.elapsed() > transient.patience(self.timeout, self.retry_for) => {
                        let mut message = format!("no progress for {:?} after {read} records", progress_at.elapsed());
                        if self.stable_end() == Some(position) {
                            message.push_str(&held_by_open_transaction(tp, position));
                        }
                        return Err(
                            ClientError::new(format!("restore {tp}"), message, ClientErrorKind::Retriable).into()
                        );
                    }
                    Ok(_) => false,
                    Err(error) => {
                        transient.tolerate(error, self.retry_for)?;
                        false
                    }
                },
            };
            if batch.len > 0 && (done || batch.len >= self.max_batch) {
                let mut next = spent.try_recv().unwrap_or_else(|_| Batch::with_capacity(self.max_batch));
                next.len = 0;
                if filled.send(std::mem::replace(&mut batch, next)).is_err() {
                    // The applier stopped on an error of its own, which is the one reported.
                    return Ok(last);
                }
            }
            if done {
                return Ok(last);
            }
        }
    }

    /// The partition's last stable offset, when the consumer reads `read_committed` (its watermark query
    /// answers with the end a reader of its isolation level may reach); `None` when the broker did not say.
    fn stable_end(&self) -> Option<i64> {
        let tp = self.tp;
        self.consumer.fetch_watermarks(&tp.topic, tp.partition, self.timeout).ok().map(|(_, high)| high)
    }

    /// The offset the consumer will read next (0 before it has read anything).
    fn position(&self) -> Result<i64, ClientError> {
        let tp = self.tp;
        let positions = self.consumer.position().map_err(|e| client_error(format!("read the position on {tp}"), e))?;
        let offset = positions.find_partition(&tp.topic, tp.partition).map(|e| e.offset());
        Ok(match offset {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        })
    }
}

/// What to add to a stalled restore's error when its position is the partition's last stable offset: a
/// transaction that began there is still open, long past any transaction timeout. Either its producer's
/// coordinator cannot reach the partition, or it is a hanging transaction that no marker will ever end.
fn held_by_open_transaction(tp: &TopicPartition, position: i64) -> String {
    format!(
        "; read_committed reads stop at offset {position}, where a transaction is still open. If it stays open \
         longer than the producers' transaction.timeout.ms, it is a hanging transaction (Kafka 4.3 leaves one \
         after a broker restart, KAFKA-20734): abort it with `kafka-transactions.sh --bootstrap-server <broker> \
         abort --topic {} --partition {} --start-offset {position}` (docs/operations.md, Hanging transactions)",
        tp.topic, tp.partition
    )
}

/// Overwrites `record` with `message`, reusing its key and value buffers: allocating and freeing two
/// buffers per record was a tenth of a restore's time.
fn refill_raw_record(record: &mut RawRecord, topic: Arc<str>, message: &BorrowedMessage<'_>) {
    fn copy_into(slot: &mut Option<Vec<u8>>, bytes: Option<&[u8]>) {
        match (slot.as_mut(), bytes) {
            (Some(buffer), Some(bytes)) => {
                buffer.clear();
                buffer.extend_from_slice(bytes);
            }
            (None, Some(bytes)) => *slot = Some(bytes.to_vec()),
            (_, None) => *slot = None,
        }
    }
    record.topic = topic;
    record.partition = message.partition();
    record.offset = message.offset();
    record.timestamp = message.timestamp().to_millis().unwrap_or(-1);
    copy_into(&mut record.key, message.key());
    copy_into(&mut record.value, message.payload());
    if message.headers().is_some() || !record.headers.is_empty() {
        record.headers = headers_of(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker_gone() -> ClientError {
        ClientError::new(
            "restore t-0",
            "AllBrokersDown (Local: All broker connections are down)",
            ClientErrorKind::Retriable,
        )
    }

    #[test]
    fn transient_errors_are_ridden_out_until_the_task_timeout() {
        let mut transient = Transient { since: None, errors: 0 };
        let (timeout, retry_for) = (Duration::from_secs(60), Duration::from_secs(300));
        assert_eq!(transient.patience(timeout, retry_for), timeout, "no errors yet: the usual patience");
        for _ in 0..3 {
            assert!(transient.tolerate(broker_gone(), retry_for).is_ok());
        }
        assert_eq!(transient.patience(timeout, retry_for), retry_for, "through transient errors: task.timeout.ms");
        transient.recovered();
        assert_eq!((transient.since, transient.errors), (None, 0), "a record ends the run");

        let fatal = ClientError::new("restore t-0", "Broker: Topic authorization failed", ClientErrorKind::Fatal);
        assert!(transient.tolerate(fatal, retry_for).is_err(), "a fatal error is never ridden out");
    }

    #[test]
    fn a_restore_held_at_the_last_stable_offset_names_the_abort_command() {
        let tp = TopicPartition::new("app-store-changelog", 4);
        let text = held_by_open_transaction(&tp, 1548);
        assert!(text.contains("read_committed reads stop at offset 1548"), "{text}");
        assert!(text.contains("abort --topic app-store-changelog --partition 4 --start-offset 1548"), "{text}");
    }

    #[test]
    fn a_run_of_transient_errors_longer_than_the_task_timeout_fails_saying_so() {
        let mut transient = Transient { since: Some(Instant::now() - Duration::from_secs(2)), errors: 41 };
        let error = transient.tolerate(broker_gone(), Duration::from_secs(1)).unwrap_err();
        assert!(error.message.contains("42 transient errors over"), "{}", error.message);
        assert!(error.message.contains("task.timeout.ms is 1s"), "{}", error.message);
    }
}
