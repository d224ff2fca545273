//! Reading the metrics an application publishes, as a scrape would: from its Prometheus endpoint when
//! kstreams is built with the `prometheus` feature (the Kafka suites), else from a recorder of this
//! test process that renders what it holds the same way (the embedded suite, built without it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use kstreams::config::StreamsConfig;

/// Where the metrics of `config`'s application can be read: its settings get what the reader needs.
pub(crate) fn reader(config: &mut StreamsConfig) -> MetricsReader {
    if cfg!(feature = "prometheus") {
        // One address for the process: the exporter is installed once.
        static ADDRESS: OnceLock<SocketAddr> = OnceLock::new();
        let address = *ADDRESS.get_or_init(|| {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address")
        });
        config.metrics_prometheus_listen_address = Some(address);
        MetricsReader::Prometheus(address)
    } else {
        static RECORDER: OnceLock<Arc<Captured>> = OnceLock::new();
        let captured = RECORDER.get_or_init(|| {
            let captured = Arc::new(Captured::default());
            metrics::set_global_recorder(CapturingRecorder(captured.clone())).expect("no other recorder");
            captured
        });
        MetricsReader::Captured(captured.clone())
    }
}

pub(crate) enum MetricsReader {
    Prometheus(SocketAddr),
    Captured(Arc<Captured>),
}

/// One sample of a scrape: name, labels, value.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

impl MetricsReader {
    /// Every sample now, in Prometheus' names (`kafka_streams_stream_thread_metrics_process_total`).
    pub(crate) fn scrape(&self) -> Vec<Sample> {
        match self {
            MetricsReader::Prometheus(address) => parse(&http_get(*address, "/metrics")),
            MetricsReader::Captured(captured) => captured.samples(),
        }
    }
}

fn http_get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("the exporter listens");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Prometheus' text format: `name{k="v",...} value`, comments skipped.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        let value = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect("a number"),
        };
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// Prometheus' sanitizing of a name or label key: what is not a letter, a digit or `_` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// What the process's recorder holds: each metric's value (a gauge's as its bits).
#[derive(Default)]
pub(crate) struct Captured {
    metrics: Mutex<BTreeMap<(String, Vec<(String, String)>), (bool, Arc<AtomicU64>)>>,
}

impl Captured {
    fn handle(&self, key: &metrics::Key, gauge: bool) -> Arc<AtomicU64> {
        let labels = key.labels().map(|l| (sanitize(l.key()), l.value().to_string())).collect();
        let mut metrics = self.metrics.lock().unwrap();
        metrics.entry((sanitize(key.name()), labels)).or_insert_with(|| (gauge, Arc::default())).1.clone()
    }

    fn samples(&self) -> Vec<Sample> {
        let metrics = self.metrics.lock().unwrap();
        metrics
            .iter()
            .map(|((name, labels), (gauge, value))| {
                let raw = value.load(Ordering::SeqCst);
                Sample {
                    name: name.clone(),
                    labels: labels.iter().cloned().collect(),
                    value: if *gauge { f64::from_bits(raw) } else { raw as f64 },
                }
            })
            .collect()
    }
}

struct CapturingRecorder(Arc<Captured>);

impl metrics::Recorder for CapturingRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.handle(key, false))
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.0.handle(key, true))
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
