//! The soak's own measurements (`--soak`): the instances' memory over a long run, and what they logged
//! as errors. A sampler thread reads every instance's resident set size from `/proc` every 10 s into
//! `rss.csv` in the work directory; at the end the report gives the RSS slope of instance 0, which the
//! driver never kills or stops in a soak, so its one process lives through every fault of the run.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::verifier::Report;

/// The instance the soak never kills or stops.
pub(crate) const STEADY: u32 = 0;

/// How often the sampler reads the instances' RSS.
const EVERY: Duration = Duration::from_secs(10);

/// One reading of one instance process.
struct Sample {
    at_s: f64,
    instance: u32,
    pid: u32,
    rss_kib: u64,
}

pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Vec<Sample>>>,
}

impl Sampler {
    /// Samples the instances of run `run` (found by their command lines: this binary's `instance`
    /// command with `--run <run>`) until [`Sampler::finish`], writing `rss.csv` into `work_dir`.
    pub(crate) fn start(run: &str, work_dir: &Path) -> anyhow::Result<Sampler> {
        let mut csv = std::fs::File::create(work_dir.join("rss.csv"))?;
        writeln!(csv, "seconds,instance,pid,rss_kib")?;
        let (run, stop) = (run.to_string(), Arc::new(AtomicBool::new(false)));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (started, mut samples) = (Instant::now(), Vec::new());
            while !stopped.load(Ordering::SeqCst) {
                let at_s = started.elapsed().as_secs_f64();
                for (pid, instance) in instances(&run) {
                    if let Some(rss_kib) = rss_kib(pid) {
                        writeln!(csv, "{at_s:.1},{instance},{pid},{rss_kib}")?;
                        samples.push(Sample { at_s, instance, pid, rss_kib });
                    }
                }
                let next = started + EVERY.mul_f64((at_s / EVERY.as_secs_f64()).floor() + 1.0);
                while Instant::now() < next && !stopped.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Ok(samples)
        });
        Ok(Sampler { stop, thread })
    }

    /// Stops sampling and adds the figures to `report`: the steady instance's RSS after warm-up (the
    /// first five minutes, or the first half of a shorter run) and its least-squares slope.
    pub(crate) fn finish(self, report: &mut Report) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.thread.join().map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))??;
        let steady: Vec<&Sample> = samples.iter().filter(|s| s.instance == STEADY).collect();
        let Some(first) = steady.first() else {
            report.fail(format!("no RSS sample of instance {STEADY}"));
            return Ok(());
        };
        if steady.iter().any(|s| s.pid != first.pid) {
            report.fail(format!("instance {STEADY} was restarted during the soak: its RSS is not one process's"));
        }
        let last = steady.last().map_or(first.at_s, |s| s.at_s);
        let warm = first.at_s + (300.0f64).min((last - first.at_s) / 2.0);
        let points: Vec<(f64, f64)> =
            steady.iter().filter(|s| s.at_s >= warm).map(|s| (s.at_s, s.rss_kib as f64 / 1024.0)).collect();
        let mib = |kib: u64| kib as f64 / 1024.0;
        let peak_others = samples.iter().filter(|s| s.instance != STEADY).map(|s| s.rss_kib).max().unwrap_or(0);
        match (points.first(), points.last(), slope_per_hour(&points)) {
            (Some(from), Some(to), Some(slope)) => report.note(format!(
                "RSS of instance {STEADY} (one process through the whole run, {} samples every {} s): after warm-up \
                 ({:.0} s) {:.1} MiB -> {:.1} MiB, max {:.1} MiB; slope {slope:+.2} MiB/hour; the other instances' \
                 processes peaked at {:.1} MiB",
                steady.len(),
                EVERY.as_secs(),
                warm,
                from.1,
                to.1,
                points.iter().map(|p| p.1).fold(0.0, f64::max),
                mib(peak_others)
            )),
            _ => report.fail(format!("too few RSS samples of instance {STEADY} after warm-up for a slope")),
        }
        Ok(())
    }
}

/// The processes of `run`'s instances: pid and instance number (from `--client-id instance-N`).
fn instances(run: &str) -> Vec<(u32, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let after = |flag: &str| {
            args.windows(2).find(|w| w[0] == flag.as_bytes()).map(|w| String::from_utf8_lossy(w[1]).into_owned())
        };
        let ours = args.get(1) == Some(&b"instance".as_slice()) && after("--run").as_deref() == Some(run);
        if let Some(instance) = after("--client-id").and_then(|c| c.strip_prefix("instance-")?.parse().ok())
            && ours
        {
            found.push((pid, instance));
        }
    }
    found
}

/// `VmRSS` of process `pid`, in KiB (none once it is gone).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Least-squares slope of `(seconds, MiB)` points, in MiB per hour (none for fewer than two distinct times).
fn slope_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_m = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if points.len() < 2 || var == 0.0 {
        return None;
    }
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_m)).sum();
    Some(cov / var * 3600.0)
}

/// What the instances logged at ERROR level, and any that went to the ERROR state or panicked: the
/// library's own errors are listed one by one (a soak expects none beyond the injected faults' effects),
/// librdkafka's (connections down while the broker or the network was) are counted by kind. `logs`:
/// each instance's log, by file name.
pub(crate) fn errors(logs: &[(String, String)], report: &mut Report) {
    let (mut library, mut client) = (std::collections::BTreeMap::new(), std::collections::BTreeMap::new());
    for (name, log) in logs {
        for line in log.lines() {
            if line.contains("-> Error") || line.contains("panicked at") {
                report.fail(format!("{name}: {line}"));
            } else if let Some((_, rest)) = line.split_once(" ERROR ") {
                if let Some(message) = rest.strip_prefix("kstreams::librdkafka: librdkafka: ") {
                    // `Global error: AllBrokersDown (...)` or `TXNERR [thrd:...]: ...`: the code or the facility.
                    let message = message.strip_prefix("Global error: ").unwrap_or(message);
                    let kind = message.split_whitespace().next().unwrap_or(message).to_string();
                    *client.entry(kind).or_insert(0u64) += 1;
                } else {
                    *library.entry(rest.to_string()).or_insert(0u64) += 1;
                }
            }
        }
    }
    let kinds: Vec<String> = client.iter().map(|(kind, n)| format!("{kind} x{n}")).collect();
    report.note(format!(
        "errors the instances logged: {} from the library, {} from librdkafka ({})",
        library.values().sum::<u64>(),
        client.values().sum::<u64>(),
        if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") }
    ));
    for (line, n) in library {
        report.note(format!("  library error x{n}: {line}"));
    }
}

#[cfg(test)]
mod tests {
    use super::slope_per_hour;

    #[test]
    fn the_slope_is_in_mib_per_hour() {
        let flat = [(0.0, 10.0), (10.0, 10.0), (20.0, 10.0)];
        assert_eq!(slope_per_hour(&flat), Some(0.0));
        let growing = [(0.0, 10.0), (1800.0, 11.0), (3600.0, 12.0)];
        assert!((slope_per_hour(&growing).unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope_per_hour(&[(5.0, 1.0)]), None);
    }
}
