//! Metrics with Kafka Streams' names, published through the [`metrics`](https://docs.rs/metrics)
//! facade: whatever recorder the application installs (Prometheus, StatsD, OpenTelemetry, ...) sees
//! them (without one, the thread still computes them each second: microseconds). With the `prometheus` feature,
//! `metrics.prometheus.listen.address` installs a Prometheus exporter.
//!
//! A metric's facade name is Kafka's MBean name flattened: `kafka.streams.<group>.<name>` (group
//! `stream-thread-metrics`, name `process-rate`), its labels Kafka's tags (`thread-id`, `task-id`,
//! ...). Prometheus shows `kafka_streams_stream_thread_metrics_process_rate{thread_id="..."}`, the
//! name JMX exporters give the Java metric. Kafka's windowed statistics (`-rate`, `-avg`, `-max`) are
//! computed here by a [`sensor::Sensor`] as Kafka computes them, and published as gauges each second
//! with the `-total`s as counters; the list, with levels and meanings, is in docs/operations.md.
//!
//! Counting stays where it was (each thread's and task's own counters, no atomics on the record
//! path); the stream thread publishes its figures from its loop.

#[cfg(feature = "prometheus")]
mod prometheus;
pub(crate) mod sensor;

use std::net::SocketAddr;

use metrics::Label;

use crate::error::ConfigError;

/// `metrics.recording.level`: which metrics are recorded (Kafka Streams' levels). Each level records
/// its own metrics and those of the levels before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordingLevel {
    /// Client, thread and task figures that cost nothing per record (the default).
    Info,
    /// Also per-task processing counts and enforced processing.
    Debug,
    /// Everything (as Debug here: no metric is recorded at TRACE only yet).
    Trace,
}

impl RecordingLevel {
    /// The level as Kafka writes it: `INFO`, `DEBUG`, `TRACE`.
    pub fn name(self) -> &'static str {
        match self {
            RecordingLevel::Info => "INFO",
            RecordingLevel::Debug => "DEBUG",
            RecordingLevel::Trace => "TRACE",
        }
    }

    /// The level of `name` (`INFO`, `DEBUG`, `TRACE`; as Kafka, in upper case).
    pub(crate) fn parse(name: &str) -> Option<RecordingLevel> {
        match name {
            "INFO" => Some(RecordingLevel::Info),
            "DEBUG" => Some(RecordingLevel::Debug),
            "TRACE" => Some(RecordingLevel::Trace),
            _ => None,
        }
    }
}

/// Kafka Streams' metric groups (MBean `type`s).
pub(crate) const CLIENT: &str = "stream-metrics";
pub(crate) const THREAD: &str = "stream-thread-metrics";
pub(crate) const TASK: &str = "stream-task-metrics";
pub(crate) const NODE: &str = "stream-processor-node-metrics";
pub(crate) const STORE: &str = "stream-state-metrics";
/// The Java consumer's group of its fetch metrics, where Kafka has its lag.
pub(crate) const CONSUMER_FETCH: &str = "consumer-fetch-manager-metrics";

/// The facade's name of metric `name` of `group`: Kafka's MBean domain `kafka.streams` (the
/// consumer's `kafka.consumer`), the group, the name.
fn key_name(group: &str, name: &str) -> String {
    let domain = if group == CONSUMER_FETCH { "kafka.consumer" } else { "kafka.streams" };
    format!("{domain}.{group}.{name}")
}

/// The labels of one thing measured: Kafka's tags, in Kafka's order.
#[derive(Debug, Clone)]
pub(crate) struct Tags(Vec<Label>);

impl Tags {
    pub(crate) fn new(tags: &[(&'static str, &str)]) -> Tags {
        Tags(tags.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect())
    }

    /// These tags and one more.
    pub(crate) fn with(&self, key: &'static str, value: &str) -> Tags {
        let mut labels = self.0.clone();
        labels.push(Label::new(key, value.to_string()));
        Tags(labels)
    }

    /// Sets gauge `name` of `group`.
    pub(crate) fn gauge(&self, group: &str, name: &str, value: f64) {
        metrics::gauge!(key_name(group, name), self.0.clone()).set(value);
    }

    /// Adds `added` to counter `name` of `group` (a `-total`). Increments rather than the owner's
    /// total: a recorder keeps a counter's largest value, and a thread replaced under the same name,
    /// or a task opened again, counts from zero.
    pub(crate) fn add(&self, group: &str, name: &str, added: u64) {
        metrics::counter!(key_name(group, name), self.0.clone()).increment(added);
    }

    /// Publishes `sensor` as `<name>-rate` (of the values' sum when `rate_of_sum`, else of the
    /// measurements) and `<name>-total` (likewise), and, when `latency` names it,
    /// `<latency>-avg`/`-max`.
    pub(crate) fn sensor(
        &self,
        group: &str,
        name: &str,
        sensor: &mut sensor::Sensor,
        rate_of_sum: bool,
        latency: Option<&str>,
        now_ms: i64,
    ) {
        let rate = if rate_of_sum { sensor.rate_of_sum(now_ms) } else { sensor.rate_of_count(now_ms) };
        self.gauge(group, &format!("{name}-rate"), rate);
        self.add(group, &format!("{name}-total"), sensor.unpublished(rate_of_sum));
        if let Some(latency) = latency {
            self.avg_max(group, latency, sensor, now_ms);
        }
    }

    /// Publishes `<name>-avg` and `<name>-max` of `sensor`.
    pub(crate) fn avg_max(&self, group: &str, name: &str, sensor: &mut sensor::Sensor, now_ms: i64) {
        self.gauge(group, &format!("{name}-avg"), sensor.avg(now_ms));
        self.gauge(group, &format!("{name}-max"), sensor.max(now_ms));
    }
}

/// Installs the Prometheus exporter on `address` for this process, once: a second instance asking
/// for the same address shares it. Fails, naming the setting, when the address cannot be bound,
/// another address was installed, another metrics recorder is installed, or the crate was built
/// without the `prometheus` feature.
pub(crate) fn install_prometheus(address: SocketAddr) -> Result<(), ConfigError> {
    #[cfg(feature = "prometheus")]
    return prometheus::install(address).map_err(|reason| ConfigError::Invalid {
        key: "metrics.prometheus.listen.address".to_string(),
        value: address.to_string(),
        reason,
    });
    #[cfg(not(feature = "prometheus"))]
    Err(ConfigError::Invalid {
        key: "metrics.prometheus.listen.address".to_string(),
        value: address.to_string(),
        reason: "the Prometheus exporter needs kstreams' `prometheus` feature".to_string(),
    })
}
