//! A stream thread's one producer, under either processing guarantee.
//!
//! at_least_once: records are sent without waiting and the commit flushes them.
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

use crate::client::{ClientError, ClientErrorKind, ClientSupplier, OffsetCommitter, StreamsProducer, TopicPartition};
use crate::config::StreamsConfig;
use crate::record::ProducedRecord;

pub(super) struct ThreadProducer {
    producer: Box<dyn StreamsProducer>,
    supplier: Arc<dyn ClientSupplier>,
    config: StreamsConfig,
    client_id: String,
    /// Set under exactly_once_v2.
    transactional_id: Option<String>,
    in_transaction: bool,
    timeout: Duration,
}

impl ThreadProducer {
    /// A producer for a thread; under exactly_once_v2 (`transactional_id` given) it is registered
    /// with the broker at once, fencing a previous incarnation.
    pub(super) fn new(
        supplier: Arc<dyn ClientSupplier>,
        config: &StreamsConfig,
        client_id: String,
        transactional_id: Option<String>,
    ) -> Result<Self, ClientError> {
        let timeout = config.default_api_timeout;
        let producer = make(&*supplier, config, &client_id, transactional_id.as_deref(), timeout)?;
        Ok(ThreadProducer {
            producer,
            supplier,
            config: config.clone(),
            client_id,
            transactional_id,
            in_transaction: false,
            timeout,
        })
    }

    pub(super) fn exactly_once(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Sends without waiting; under exactly_once_v2 inside the open transaction, begun here if needed.
    pub(super) fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError> {
        self.begin_if_needed()?;
        self.producer.send(record)
    }

    fn begin_if_needed(&mut self) -> Result<(), ClientError> {
        if self.exactly_once() && !self.in_transaction {
            self.producer.begin_transaction()?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// at_least_once: waits until every record sent is acknowledged.
    pub(super) fn flush(&mut self) -> Result<(), ClientError> {
        self.producer.flush(self.timeout)
    }

    /// The offset of the last acknowledged record on `partition`.
    pub(super) fn acked_offset(&self, partition: &TopicPartition) -> Option<i64> {
        self.producer.acked_offset(partition)
    }

    /// exactly_once_v2: commits what was sent since the last commit together with `offsets`, as the
    /// member `committer` speaks for. Nothing to do when nothing was sent or consumed.
    pub(super) fn commit_transaction(
        &mut self,
        offsets: &[(TopicPartition, i64)],
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
                return Err(ClientError::with_kind("send offsets to transaction", message, ClientErrorKind::Fenced));
            };
            self.producer.send_offsets_to_transaction(offsets, &group, self.timeout)?;
        }
        let offsets_sent = started.elapsed();
        self.producer.commit_transaction(self.timeout)?;
        tracing::debug!(producer = %self.client_id, send_offsets = ?offsets_sent,
            commit = ?(started.elapsed() - offsets_sent), "transaction committed");
        self.in_transaction = false;
        Ok(())
    }

    /// exactly_once_v2: ends the open transaction without committing anything of it. A producer that
    /// cannot abort (fenced, failed, or in doubt after `cause`) is replaced by a new incarnation.
    pub(super) fn abort(&mut self, cause: &ClientError) -> Result<(), ClientError> {
        if !self.exactly_once() {
            return Ok(());
        }
        let aborted = match cause.kind {
            ClientErrorKind::Abortable | ClientErrorKind::Fenced if self.in_transaction => {
                self.producer.abort_transaction(self.timeout)
            }
            ClientErrorKind::Abortable | ClientErrorKind::Fenced => Ok(()),
            // A timeout or a failure: whether the last call took effect is unknown.
            ClientErrorKind::Retriable | ClientErrorKind::Fatal => {
                Err(ClientError::new("abort transaction", format!("the producer is in doubt after: {cause}"), false))
            }
        };
        self.in_transaction = false;
        if let Err(error) = aborted {
            tracing::warn!(producer = %self.client_id, %error, "re-creating the transactional producer");
            self.producer =
                make(&*self.supplier, &self.config, &self.client_id, self.transactional_id.as_deref(), self.timeout)?;
        }
        Ok(())
    }

    /// On the way out after a failure: leave no transaction open behind us.
    pub(super) fn abort_quietly(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            if let Err(error) = self.producer.abort_transaction(self.timeout) {
                tracing::warn!(producer = %self.client_id, %error, "could not abort the open transaction");
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
