//! The Prometheus exporter (`prometheus` feature): `metrics-exporter-prometheus` serving
//! `GET /metrics` on the address of `metrics.prometheus.listen.address`, on a thread of its own with
//! a one-thread tokio runtime (never on the application's runtime: an application that shuts its
//! runtime down would stop the exporter of an instance still running).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::MetricKindMask;

use crate::sync::LockUnpoisoned;

/// The address the process's exporter serves on, once installed (the facade's recorder is
/// process-wide and set once).
static INSTALLED: Mutex<Option<SocketAddr>> = Mutex::new(None);

/// How long a gauge nobody updates stays in the scrape: a closed task's, a revoked partition's lag
/// (the application's own gauges too). Live gauges are published every second; counters stay.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn install(address: SocketAddr) -> Result<(), String> {
    let mut installed = INSTALLED.lock_unpoisoned();
    match *installed {
        Some(current) if current == address => return Ok(()),
        Some(current) => return Err(format!("this process serves its metrics on {current} already")),
        None => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the exporter's runtime: {e}"))?;
    let built = {
        let _entered = runtime.enter();
        PrometheusBuilder::new()
            .with_http_listener(address)
            .idle_timeout(MetricKindMask::GAUGE, Some(IDLE_TIMEOUT))
            .build()
            .map_err(|e| e.to_string())
    };
    let installed_recorder = built.and_then(|(recorder, exporter)| {
        metrics::set_global_recorder(recorder)
            .map(|()| exporter)
            .map_err(|_| "another metrics recorder is installed in this process".to_string())
    });
    let exporter = match installed_recorder {
        Ok(exporter) => exporter,
        Err(reason) => {
            // Dropping a runtime from inside another one's thread (a `start` called on tokio) panics.
            runtime.shutdown_background();
            return Err(reason);
        }
    };
    std::thread::Builder::new()
        .name("kstreams-prometheus".into())
        .spawn(move || {
            if let Err(e) = runtime.block_on(exporter) {
                tracing::error!(target: "kstreams::metrics", error = ?e, "the Prometheus exporter stopped");
            }
        })
        .map_err(|e| format!("cannot start the exporter's thread: {e}"))?;
    tracing::info!(target: "kstreams::metrics", %address, "serving Prometheus metrics at /metrics");
    *installed = Some(address);
    Ok(())
}
