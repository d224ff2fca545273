//! `SHUTDOWN_APPLICATION`: a stream thread whose failure the uncaught exception handler answers with
//! [`ShutdownApplication`](super::StreamThreadExceptionResponse::ShutdownApplication) asks every instance
//! of the application to shut down.
//!
//! Kafka Streams carries the request in the group's assignment (an error code its own assignor writes).
//! The rdkafka consumer group lets us write neither the subscription's user data nor the assignment, so
//! the request travels on a topic of its own instead: `<application.id>-shutdown-requests`, one
//! partition, created at start by an instance that has an uncaught exception handler. Each such instance
//! watches the partition's end offset from where it was at start, and shuts down to ERROR when it moves.
//! An instance started after the request is not affected, as in Kafka Streams, where only the members
//! of the rebalance that carries the error code shut down.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientSupplier, NewTopic, RestoreConsumer, StreamsAdmin, TopicPartition};
use crate::config::StreamsConfig;
use crate::record::{Headers, ProducedRecord, RawRecord};
use crate::sync::LockUnpoisoned;
use crate::StreamsError;

use super::{Shared, State};

/// How often an instance looks for a request: one ListOffsets request per instance each time, which
/// costs the broker nothing that matters, and bounds how long the other instances go on after one failed.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// How long the thread that asked keeps its partitions after asking: long enough for every instance to
/// look twice, so that none of them is handed the failed partitions (and fails on the same record)
/// before it hears.
pub(crate) const HEARING_TIME: Duration = Duration::from_millis(1000);

/// The topic that carries the requests.
pub(crate) fn topic(application_id: &str) -> String {
    format!("{application_id}-shutdown-requests")
}

/// An instance's watch on the requests partition: requests at or above `from` are for it.
pub(crate) struct ShutdownWatch {
    partition: TopicPartition,
    from: i64,
    consumer: Box<dyn RestoreConsumer>,
}

impl ShutdownWatch {
    /// Creates the topic if it does not exist and notes where its partition ends now.
    pub(crate) fn start(
        supplier: &dyn ClientSupplier,
        admin: &dyn StreamsAdmin,
        config: &StreamsConfig,
        client_id: &str,
    ) -> Result<Self, StreamsError> {
        let name = topic(&config.application_id);
        admin.create_topics(&[NewTopic {
            name: name.clone(),
            partitions: 1,
            replication_factor: config.replication_factor,
            // A request matters only to the instances running when it is made: a day is ample.
            config: BTreeMap::from([
                ("cleanup.policy".to_string(), "delete".to_string()),
                ("retention.ms".to_string(), "86400000".to_string()),
            ]),
        }])?;
        let partition = TopicPartition::new(&name, 0);
        let mut consumer = supplier.restore_consumer(config, &format!("{client_id}-shutdown-watch"))?;
        let (_, from) = consumer.watermarks(&partition)?;
        Ok(ShutdownWatch { partition, from, consumer })
    }

    /// Until the instance shuts down: looks for a request every [`WATCH_INTERVAL`], and on one, shuts
    /// the instance down to ERROR with [`StreamsError::ApplicationShutdownRequested`] (unless it already
    /// failed with an error of its own). Its stream threads commit what they processed and stop, as on
    /// `ShutdownClient`.
    pub(crate) fn run(mut self, shared: Arc<Shared>) {
        while !shared.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(WATCH_INTERVAL);
            match self.poll() {
                Ok(None) => {}
                Ok(Some(request)) => {
                    tracing::error!(target: "kstreams::runtime", error = %request, "shutting down: another instance asked the application to");
                    shared.error.lock_unpoisoned().get_or_insert(request);
                    shared.shutdown.store(true, Ordering::SeqCst);
                    shared.state.set(State::Error);
                }
                // Best effort, as the next look may succeed: a watch that cannot reach the broker stops
                // nothing, and the stream threads report the broker's absence themselves.
                Err(e) => tracing::debug!(target: "kstreams::runtime", error = %e, "cannot look for shutdown requests"),
            }
        }
    }

    /// The first request written since the instance started, if any.
    fn poll(&mut self) -> Result<Option<StreamsError>, StreamsError> {
        let (_, end) = self.consumer.watermarks(&self.partition)?;
        if end <= self.from {
            return Ok(None);
        }
        let mut first: Option<RawRecord> = None;
        let mut keep_first = |records: &[RawRecord]| {
            if first.is_none() {
                first = records.first().cloned();
            }
            Ok(())
        };
        // The request's text names the thread and its error; a request deleted by retention in the
        // meantime is still a request.
        let read = self.consumer.read(&self.partition, self.from, end, 16, &mut keep_first);
        let text = |bytes: &Option<Vec<u8>>| bytes.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
        let (thread, reason) = match (read, &first) {
            (Ok(_), Some(record)) => (text(&record.key), text(&record.value)),
            _ => (None, None),
        };
        Ok(Some(StreamsError::ApplicationShutdownRequested {
            thread: thread.unwrap_or_else(|| "unknown".to_string()),
            reason: reason.unwrap_or_else(|| "unknown".to_string()),
        }))
    }
}

/// Writes a request naming `thread` and the error that ended it, and waits until the broker has it.
pub(crate) fn send(
    supplier: &dyn ClientSupplier,
    config: &StreamsConfig,
    thread: &str,
    reason: &str,
    timestamp: i64,
) -> Result<(), StreamsError> {
    let mut producer = supplier.producer(config, &format!("{thread}-shutdown-request"), None)?;
    producer.send(&ProducedRecord {
        topic: topic(&config.application_id).into(),
        partition: Some(0),
        key: Some(thread.as_bytes().to_vec()),
        value: Some(reason.as_bytes().to_vec()),
        timestamp,
        headers: Headers::default(),
    })?;
    producer.flush(config.default_api_timeout)?;
    match producer.take_rejected().into_iter().next() {
        Some((_, error)) => Err(error.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBroker;

    /// A watch hears the requests made after it started, with the thread and error they name, and not
    /// those made before: an instance started after a request runs.
    #[test]
    fn a_watch_hears_requests_made_after_it_started() {
        let broker = EmbeddedBroker::new();
        let config = StreamsConfig::new("app", "embedded");
        let admin = broker.admin(&config).unwrap();
        let mut early = ShutdownWatch::start(&broker, &*admin, &config, "early").unwrap();
        assert!(early.poll().unwrap().is_none());

        send(&broker, &config, "app-1-StreamThread-1", "node `n` failed: boom", 0).unwrap();
        let mut late = ShutdownWatch::start(&broker, &*admin, &config, "late").unwrap();
        match early.poll().unwrap() {
            Some(StreamsError::ApplicationShutdownRequested { thread, reason }) => {
                assert_eq!((thread.as_str(), reason.as_str()), ("app-1-StreamThread-1", "node `n` failed: boom"));
            }
            other => panic!("{other:?}"),
        }
        assert!(late.poll().unwrap().is_none());
        assert_eq!(admin.partition_counts(&[topic("app")]).unwrap()[&topic("app")], Some(1));
    }
}
