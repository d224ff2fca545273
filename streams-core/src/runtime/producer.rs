//! A stream thread's one producer, under either processing guarantee.
//!
//! at_least_once: records are sent without waiting and the commit flushes them. Nothing on the broker
//! fences a member that lost its partitions while paused (a stopped process, a frozen VM): what it sends
//! after waking lands after the new owner's writes and can roll a store's changelog back, which the next
//! restore would take as the truth (Kafka Streams has the same hole, KAFKA-12693). So the producer
//! refuses to send once its thread went longer than [`StreamsConfig::pause_limit`] without running
//! (the thread then closes its tasks and rejoins, as when fenced), drops what it still queues when the
//! thread recovers, and its records time out after that same limit instead of going out late. A write
//! thus reaches the broker before the group can have evicted this member, except when the process
//! stops in the microseconds between the last check and librdkafka taking the record, while librdkafka
//! builds the request that carries it, or while a request is in flight: librdkafka may then time it out
//! at resume and send it again, late (`docs/exactly-once.md`, Limits). A changelog write that gets
//! through is skipped by the next restore, by its owner epoch (`crate::task::owner_epoch`).
//!
//! exactly_once_v2: the producer is transactional (`transactional.id` = application id, process id,
//! thread index, as in Kafka Streams). A transaction opens at the first send after a commit; the commit
//! adds the consumed offsets with the consumer's group membership, then commits outputs, changelog
//! writes and offsets together. When a transactional call fails, the transaction is aborted; when the
//! abort fails too, or the failure left the producer unusable or its outcome unknown (a timeout), the
//! producer is replaced by a new one with the same transactional id, whose registration fences the old
//! one and aborts whatever it left open. A timeout is never retried blindly: a retried commit could
//! land after a newer owner's (Jepsen's advice for Kafka transactions).

use std::sync::Arc;
use std::time::Duration;

use crate::client::{
    ClientError, ClientErrorKind, ClientSupplier, OffsetAndMetadata, OffsetCommitter, StreamsProducer, TopicPartition,
};
use crate::config::StreamsConfig;
use crate::record::ProducedRecord;
use crate::time::Clock;

pub(super) struct ThreadProducer {
    producer: Box<dyn StreamsProducer>,
    supplier: Arc<dyn ClientSupplier>,
    config: StreamsConfig,
    client_id: String,
    /// Set under exactly_once_v2.
    transactional_id: Option<String>,
    in_transaction: bool,
    /// The producer was found in doubt and its replacement has not been made yet (see `abort`).
    replace: bool,
    timeout: Duration,
    /// Set under at_least_once.
    pause_guard: Option<PauseGuard>,
}

/// Notices that its thread did not run for longer than the limit: every check compares the time with
/// the previous check's. Checks come at every send, after every poll and between restore batches, so a
/// thread at work or idle in its poll loop never goes that long between two; a longer gap means the
/// process was stopped, or the thread blocked, for long enough that the group may have moved on.
struct PauseGuard {
    clock: Clock,
    limit_ms: i64,
    last_ms: i64,
}

impl PauseGuard {
    fn check(&mut self) -> Result<(), ClientError> {
        let now = self.clock.monotonic_ms();
        let gap = now - std::mem::replace(&mut self.last_ms, now);
        if gap <= self.limit_ms {
            return Ok(());
        }
        let message = format!(
            "the stream thread did not run for {gap} ms, longer than its pause limit of {} ms (from the consumer's \
             session.timeout.ms): its partitions may have moved to another member, so nothing more is sent \
             for them before it rejoins",
            self.limit_ms
        );
        Err(ClientError::new("send", message, ClientErrorKind::Fenced))
    }
}

impl ThreadProducer {
    /// A producer for a thread; under exactly_once_v2 (`transactional_id` given) it is registered
    /// with the broker at once, fencing a previous incarnation. Under at_least_once, `clock` times the
    /// gaps between the thread's checks.
    pub(super) fn new(
        supplier: Arc<dyn ClientSupplier>,
        config: &StreamsConfig,
        client_id: String,
        transactional_id: Option<String>,
        clock: Clock,
    ) -> Result<Self, ClientError> {
        let timeout = config.default_api_timeout;
        let mut producer = supplier.producer(config, &client_id, transactional_id.as_deref())?;
        // A registration that fails for a transient reason (the broker away, its transaction coordinator
        // still loading) is not the start's failure: the producer is made again before the first
        // transaction, as after an abort in doubt, and the thread's recovery bounds that by task.timeout.ms.
        let mut replace = false;
        if transactional_id.is_some() {
            match producer.init_transactions(timeout) {
                Ok(()) => {}
                Err(error) if error.is_retriable() => {
                    tracing::warn!(target: "kstreams::runtime::producer", producer = %client_id, %error,
                        "could not register the transactional producer yet; trying again before the first transaction");
                    replace = true;
                }
                Err(error) => return Err(error),
            }
        }
        let pause_guard = transactional_id.is_none().then(|| PauseGuard {
            limit_ms: config.pause_limit().as_millis() as i64,
            last_ms: clock.monotonic_ms(),
            clock,
        });
        Ok(ThreadProducer {
            producer,
            supplier,
            config: config.clone(),
            client_id,
            transactional_id,
            in_transaction: false,
            replace,
            timeout,
            pause_guard,
        })
    }

    pub(super) fn exactly_once(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Sends without waiting; under exactly_once_v2 inside the open transaction, begun here if needed.
    /// Under at_least_once, fails (fenced) when the thread was stopped past the pause limit.
    pub(super) fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError> {
        self.check_running()?;
        self.begin_if_needed()?;
        self.producer.send(record)
    }

    /// at_least_once: fails (fenced) when the thread went longer than the pause limit without running
    /// since the last check; the thread calls this after each poll and restore batch as well as at
    /// every send. exactly_once_v2 needs none of this: the broker fences a zombie's transaction.
    pub(super) fn check_running(&mut self) -> Result<(), ClientError> {
        match &mut self.pause_guard {
            Some(guard) => guard.check(),
            None => Ok(()),
        }
    }

    fn begin_if_needed(&mut self) -> Result<(), ClientError> {
        if self.exactly_once() && !self.in_transaction {
            self.replace_if_needed()?;
            self.producer.begin_transaction()?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// at_least_once: waits until every record sent is acknowledged.
    pub(super) fn flush(&mut self) -> Result<(), ClientError> {
        self.producer.flush(self.timeout)
    }

    /// The records the broker rejected since the last call (see `StreamsProducer::take_rejected`).
    pub(super) fn take_rejected(&mut self) -> Vec<(ProducedRecord, ClientError)> {
        self.producer.take_rejected()
    }

    /// The offset of the last acknowledged record on `partition`.
    pub(super) fn acked_offset(&self, partition: &TopicPartition) -> Option<i64> {
        self.producer.acked_offset(partition)
    }

    /// exactly_once_v2: commits what was sent since the last commit together with `offsets`, as the
    /// member `committer` speaks for. Nothing to do when nothing was sent or consumed.
    pub(super) fn commit_transaction(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        committer: &dyn OffsetCommitter,
    ) -> Result<(), ClientError> {
        if !self.in_transaction && offsets.is_empty() {
            return Ok(());
        }
        self.begin_if_needed()?;
        let started = std::time::Instant::now();
        // The commit waits for every record of the transaction to be acknowledged; librdkafka's wait
        // inside `commit_transaction` let `linger.ms` (100 ms) pass first. The producer's own flush
        // sends at once.
        self.producer.flush(self.timeout)?;
        if !offsets.is_empty() {
            let Some(group) = committer.group_metadata() else {
                let message = "the consumer is not a member of its group";
                return Err(ClientError::new("send offsets to transaction", message, ClientErrorKind::Fenced));
            };
            self.producer.send_offsets_to_transaction(offsets, &group, self.timeout)?;
        }
        let offsets_sent = started.elapsed();
        self.producer.commit_transaction(self.timeout)?;
        tracing::debug!(target: "kstreams::runtime::producer", producer = %self.client_id, send_offsets = ?offsets_sent,
            commit = ?(started.elapsed() - offsets_sent), "transaction committed");
        self.in_transaction = false;
        Ok(())
    }

    /// Drops the work since the last commit. exactly_once_v2: ends the open transaction without
    /// committing anything of it; a producer that cannot abort (fenced, failed, or in doubt after
    /// `cause`) is replaced by a new incarnation. at_least_once: records not yet sent are dropped, as
    /// their tasks will redo them from the last commit (maybe in another member: sent now, they could
    /// land after its writes).
    pub(super) fn abort(&mut self, cause: &ClientError) -> Result<(), ClientError> {
        if !self.exactly_once() {
            self.producer.purge_unsent();
            return Ok(());
        }
        let aborted = match cause.kind {
            ClientErrorKind::Abortable | ClientErrorKind::Fenced if self.in_transaction => {
                self.producer.abort_transaction(self.timeout)
            }
            ClientErrorKind::Abortable | ClientErrorKind::Fenced => Ok(()),
            // A timeout or a failure: whether the last call took effect is unknown.
            ClientErrorKind::Retriable | ClientErrorKind::Fatal => Err(ClientError::new(
                "abort transaction",
                format!("the producer is in doubt after: {cause}"),
                ClientErrorKind::Fatal,
            )),
        };
        self.in_transaction = false;
        if let Err(error) = aborted {
            tracing::warn!(target: "kstreams::runtime::producer", producer = %self.client_id, %error, "re-creating the transactional producer");
            self.replace = true;
            self.replace_if_needed()?;
        }
        Ok(())
    }

    /// Replaces the producer by a new incarnation if [`abort`](Self::abort) found it in doubt. A
    /// replacement that fails (its `init_transactions` timed out: the broker may be away) is tried again
    /// before the next transaction, so a broker that comes back within `task.timeout.ms` is ridden out,
    /// and before tasks restore (the thread calls it on assignment): the new incarnation's registration
    /// aborts the transaction the old one left open, which would otherwise hold back `read_committed`
    /// reads of the very changelogs it wrote to.
    pub(super) fn replace_if_needed(&mut self) -> Result<(), ClientError> {
        if self.replace {
            self.producer =
                make(&*self.supplier, &self.config, &self.client_id, self.transactional_id.as_deref(), self.timeout)?;
            self.replace = false;
        }
        Ok(())
    }

    /// On the way out after a failure: leave no transaction open behind us.
    pub(super) fn abort_quietly(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            if let Err(error) = self.producer.abort_transaction(self.timeout) {
                tracing::warn!(target: "kstreams::runtime::producer", producer = %self.client_id, %error, "could not abort the open transaction");
            }
        }
    }
}

fn make(
    supplier: &dyn ClientSupplier,
    config: &StreamsConfig,
    client_id: &str,
    transactional_id: Option<&str>,
    timeout: Duration,
) -> Result<Box<dyn StreamsProducer>, ClientError> {
    let mut producer = supplier.producer(config, client_id, transactional_id)?;
    if transactional_id.is_some() {
        producer.init_transactions(timeout)?;
    }
    Ok(producer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_longer_than_the_limit_between_two_checks_fails_one_check() {
        let clock = Clock::manual(1_000);
        let mut guard = PauseGuard { clock: clock.clone(), limit_ms: 2_250, last_ms: clock.monotonic_ms() };
        for _ in 0..10 {
            clock.advance(2_000);
            guard.check().expect("a thread that runs every 2 s is running");
        }
        clock.advance(2_251);
        let error = guard.check().expect_err("2,251 ms without running is a pause");
        assert_eq!(error.kind, ClientErrorKind::Fenced, "the thread gives up its tasks as when fenced");
        assert!(error.message.contains("did not run for 2251 ms"), "{error}");
        guard.check().expect("the next check starts from the failed one");
    }
}
