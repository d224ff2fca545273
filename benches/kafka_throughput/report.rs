//! What the comparison bench writes: the Markdown tables (with the ratios and the goals), the
//! machine, versions and settings they were measured with, and a hand-written SVG chart.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// A stream processor under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum System {
    Kstreams,
    KafkaStreams,
    Quix,
}

impl System {
    pub(crate) fn parse(name: &str) -> Option<System> {
        match name {
            "kstreams" => Some(System::Kstreams),
            "kafka-streams" => Some(System::KafkaStreams),
            "quix" => Some(System::Quix),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Kstreams => "kstreams",
            System::KafkaStreams => "kafka-streams",
            System::Quix => "quix",
        }
    }

    /// The name in tables: the ceilings run the plain clients, not the stream processor.
    fn label(self, workload: &str) -> &'static str {
        let ceiling = matches!(workload, "consume" | "consumeproduce");
        match (self, ceiling) {
            (System::Kstreams, false) => "kstreams",
            (System::Kstreams, true) => "rdkafka (Rust)",
            (System::KafkaStreams, false) => "Kafka Streams",
            (System::KafkaStreams, true) => "Java clients",
            (System::Quix, false) => "Quix Streams",
            (System::Quix, true) => "confluent-kafka (Python)",
        }
    }

    /// The name in the chart's legend: the stream processor and the clients of its ceilings.
    fn legend(self) -> &'static str {
        match self {
            System::Kstreams => "kstreams / rdkafka (Rust)",
            System::KafkaStreams => "Kafka Streams / Java clients",
            System::Quix => "Quix Streams / confluent-kafka (Python)",
        }
    }

    fn color(self) -> &'static str {
        match self {
            System::Kstreams => "#d9480f",
            System::KafkaStreams => "#1c7ed6",
            System::Quix => "#2f9e44",
        }
    }

    /// Whether the system has the workload: SimpleBenchmark's for every system that can express it,
    /// kstreams' own for it only. Quix Streams has no window store to program against, and its joins
    /// (`join_asof`, `join_lookup`, `join_interval`) are not Kafka Streams' left joins.
    pub(crate) fn supports(self, workload: &str) -> bool {
        const SIMPLE_BENCHMARK: [&str; 11] = [
            "consume",
            "consumeproduce",
            "streamprocess",
            "streamprocesswithsink",
            "streamprocesswithstatestore",
            "streamcount",
            "streamcountwindowed",
            "streamprocesswithwindowstore",
            "streamtablejoin",
            "streamstreamjoin",
            "tabletablejoin",
        ];
        match self {
            System::Kstreams => true,
            System::Quix if workload == "streamprocesswithwindowstore" || workload.ends_with("join") => false,
            _ => SIMPLE_BENCHMARK.contains(&workload),
        }
    }
}

/// One run's figures: seconds from assignment to the end, CPU seconds in that time, peak RSS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) secs: f64,
    pub(crate) cpu: f64,
    pub(crate) rss_mib: f64,
}

/// One workload of one system: the median run (by time) and what failed.
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) system: System,
    pub(crate) median: Option<Measured>,
    pub(crate) failures: Vec<String>,
}

/// Every row for one value size.
pub(crate) struct SizeResults {
    pub(crate) value_size: usize,
    pub(crate) key_size: usize,
    pub(crate) records: u64,
    pub(crate) load_secs: f64,
    pub(crate) rows: Vec<Row>,
}

impl SizeResults {
    fn find(&self, workload: &str, system: System) -> Option<&Measured> {
        self.rows.iter().find(|r| r.workload == workload && r.system == system)?.median.as_ref()
    }

    fn rate(&self, m: &Measured) -> f64 {
        self.records as f64 / m.secs
    }

    /// The plain-client ceiling a workload is held against: consume+produce for workloads with a sink,
    /// consume for the others.
    fn ceiling(&self, workload: &str, system: System) -> Option<(&'static str, f64)> {
        let name = match workload.split(':').next().unwrap_or_default() {
            "consume" | "consumeproduce" => return None,
            "streamprocesswithsink" | "stateless" | "count" => "consumeproduce",
            _ => "consume",
        };
        self.find(name, system).map(|m| (name, self.rate(m)))
    }
}

fn rate_text(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}

/// The Markdown table of one value size.
pub(crate) fn table(results: &SizeResults) -> String {
    let record_bytes = (results.key_size + results.value_size) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} records of {} B ({} B key + {} B value), median of the rounds:\n",
        results.records,
        results.key_size + results.value_size,
        results.key_size,
        results.value_size
    );
    out.push_str("| workload | system | records/s | MB/s | CPU s per 1M records | peak RSS MiB | records/s vs Kafka Streams | peak RSS vs Kafka Streams | vs ceiling |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in &results.rows {
        let label = row.system.label(&row.workload);
        let Some(m) = &row.median else {
            let why = row.failures.first().map_or("no run", String::as_str).replace('|', "/");
            let _ = writeln!(out, "| {} | {label} | failed: {why} | | | | | | |", row.workload);
            continue;
        };
        let rate = results.rate(m);
        let peer = results.find(&row.workload, System::KafkaStreams);
        let vs_rate = peer.map_or("-".to_string(), |p| format!("{:.2}×", rate / results.rate(p)));
        let vs_rss = peer.map_or("-".to_string(), |p| format!("{:.2}×", m.rss_mib / p.rss_mib));
        let ceiling = results
            .ceiling(&row.workload, row.system)
            .map_or("-".to_string(), |(name, c)| format!("{:.0}% of {name}", 100.0 * rate / c));
        let failed = if row.failures.is_empty() { String::new() } else { format!(" ({} failed)", row.failures.len()) };
        let _ = writeln!(
            out,
            "| {} | {label}{failed} | {} | {:.1} | {:.2} | {:.0} | {vs_rate} | {vs_rss} | {ceiling} |",
            row.workload,
            rate_text(rate),
            rate * record_bytes / 1e6,
            m.cpu / (results.records as f64 / 1e6),
            m.rss_mib,
        );
    }
    out
}

/// The machine, the versions and the run's settings.
pub(crate) struct Context {
    lines: Vec<(String, String)>,
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    Some(String::from_utf8_lossy(&text).trim().to_string())
}

impl Context {
    pub(crate) fn gather(python: &Path, kafka_streams: &Path, rounds: usize, bootstrap: &str) -> Context {
        let cpu = output_of("lscpu", &[])
            .and_then(|s| s.lines().find(|l| l.starts_with("Model name:")).map(|l| l[11..].trim().to_string()))
            .unwrap_or_else(|| "?".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let ram = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let kb: f64 = s.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "?".into());
        let kernel = output_of("uname", &["-r"]).unwrap_or_default();
        let python_versions = python.to_str().and_then(|p| {
            output_of(
                p,
                &[
                    "-c",
                    "import sys, quixstreams, confluent_kafka as ck; v = ck.version(); print(sys.version.split()[0], quixstreams.__version__, v if isinstance(v, str) else v[0], ck.libversion()[0])",
                ],
            )
        });
        let mut pv = python_versions.as_deref().unwrap_or("? ? ? ?").split_whitespace();
        let (py, quix, ck, ck_lib) = (
            pv.next().unwrap_or("?").to_string(),
            pv.next().unwrap_or("?").to_string(),
            pv.next().unwrap_or("?").to_string(),
            pv.next().unwrap_or("?").to_string(),
        );
        let streams_version = std::fs::read_to_string(kafka_streams.join("target/classpath.txt"))
            .ok()
            .and_then(|cp| {
                cp.split(':')
                    .filter_map(|j| Path::new(j).file_name()?.to_str().map(String::from))
                    .find_map(|j| j.strip_prefix("kafka-streams-")?.strip_suffix(".jar").map(String::from))
            })
            .unwrap_or_else(|| "?".into());
        let java =
            output_of("java", &["-version"]).and_then(|s| s.lines().next().map(String::from)).unwrap_or_default();
        let rustc = output_of("rustc", &["--version"]).unwrap_or_default();
        let (_, rdkafka) = rdkafka::util::get_rdkafka_version();
        let date = output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let jvm_opts = std::env::var("KSTREAMS_BENCH_JVM_OPTS").unwrap_or_default();
        let lines = vec![
            ("run".into(), format!("{date}, {rounds} rounds interleaved, the median reported")),
            ("machine".into(), format!("{cpu}, {cores} cores, {ram} RAM, Linux {kernel}; shared with other work (the figures are medians and ratios of peers run in the same rounds)")),
            ("broker".into(), format!("Apache Kafka {} (scripts/kafka.sh: one KRaft node on this machine, JVM -Xmx1g) at {bootstrap}", std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "4.3.0".into()))),
            ("kstreams".into(), format!("this commit, `cargo bench` profile, {rustc}, librdkafka {rdkafka}")),
            ("Kafka Streams".into(), format!("{streams_version} (benches/peers/kafka-streams), {java}, JVM options: {}", if jvm_opts.is_empty() { "none (defaults: G1, max heap a quarter of the RAM)".to_string() } else { format!("`{jvm_opts}`") })),
            ("Quix Streams".into(), format!("quixstreams {quix} (benches/peers/quix, a venv under ~/.cache/kstreams), Python {py}, confluent-kafka {ck}, librdkafka {ck_lib}")),
            ("settings, every system".into(), "SimpleBenchmark's: commit.interval.ms=30000, max.poll.records=1000 (kstreams' own poll batch; librdkafka has no such setting, so Quix polls one record at a time), auto.offset.reset=earliest, at_least_once; one stream thread; record cache 10 MiB (Kafka Streams' default; Quix has none); RocksDB stores with changelog topics".into()),
            ("data".into(), "keys from a space of 10,000 as 4-byte big-endian ints (Kafka's IntegerSerializer, read natively by all three), random values, 8 partitions, one topic loaded once per value size".into()),
            ("timing".into(), "from partition assignment (kstreams and Kafka Streams: the first RUNNING; plain clients and Quix: the assignment callback) until every input record was seen, or for workloads with a sink until every output record is visible in the sink topic; CPU is the child's user+system time over that window (/proc/<pid>/stat, all threads), peak RSS its VmHWM, the same for every system".into()),
        ];
        Context { lines }
    }
}

/// The in-process engine bench's figures, read from criterion's output directory.
#[derive(Default)]
pub(crate) struct EngineFigures {
    /// (group, bench, nanoseconds per element).
    entries: Vec<(String, String, f64)>,
}

impl EngineFigures {
    pub(crate) fn read(dir: &Path) -> EngineFigures {
        let mut entries = Vec::new();
        for group in ["order_totals", "operator", "serde"] {
            let Ok(benches) = std::fs::read_dir(dir.join(group)) else { continue };
            let mut names: Vec<String> =
                benches.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n != "report").collect();
            names.sort();
            for name in names {
                let base = dir.join(group).join(&name).join("new");
                let read = |file: &str| -> Option<serde_json::Value> {
                    serde_json::from_str(&std::fs::read_to_string(base.join(file)).ok()?).ok()
                };
                let (Some(estimates), Some(benchmark)) = (read("estimates.json"), read("benchmark.json")) else {
                    continue;
                };
                let Some(ns) = estimates["median"]["point_estimate"].as_f64() else { continue };
                let elements = benchmark["throughput"]["Elements"].as_f64().unwrap_or(1.0);
                entries.push((group.to_string(), name, ns / elements));
            }
        }
        EngineFigures { entries }
    }

    fn get(&self, group: &str, bench: &str) -> Option<f64> {
        self.entries.iter().find(|(g, b, _)| g == group && b == bench).map(|e| e.2)
    }

    fn table(&self) -> String {
        let mut out = String::new();
        if self.entries.is_empty() {
            return "(not run: `cargo bench --bench engine`, then this command with `--engine <target>/criterion`)\n"
                .into();
        }
        out.push_str("| group | bench | ns per record | records/s on one core |\n| --- | --- | ---: | ---: |\n");
        for (group, bench, ns) in &self.entries {
            let _ = writeln!(out, "| {group} | {bench} | {ns:.0} | {} |", rate_text(1e9 / ns));
        }
        out
    }
}

/// A goal and whether the figures meet it.
fn goal(out: &mut String, text: &str, figure: Option<(f64, String)>, met: impl Fn(f64) -> bool) {
    match figure {
        Some((x, shown)) => {
            let _ = writeln!(out, "- {text}: {shown}: **{}**", if met(x) { "met" } else { "missed" });
        }
        None => {
            let _ = writeln!(out, "- {text}: not measured in this run");
        }
    }
}

fn goals(results: &[SizeResults], engine: &EngineFigures) -> String {
    let mut out = String::new();
    for r in results {
        let _ = writeln!(out, "{} B values:\n", r.value_size);
        for w in ["streamcount", "streamcountwindowed"] {
            let both = r.find(w, System::Kstreams).zip(r.find(w, System::KafkaStreams));
            goal(
                &mut out,
                &format!("{w} at ≥ 3× Kafka Streams' records/s"),
                both.map(|(o, k)| (r.rate(o) / r.rate(k), format!("{:.2}×", r.rate(o) / r.rate(k)))),
                |x| x >= 3.0,
            );
            goal(
                &mut out,
                &format!("{w} at ≤ 1/4 of Kafka Streams' peak RSS"),
                both.map(|(o, k)| {
                    (
                        o.rss_mib / k.rss_mib,
                        format!("{:.0} MiB vs {:.0} MiB ({:.2}×)", o.rss_mib, k.rss_mib, o.rss_mib / k.rss_mib),
                    )
                }),
                |x| x <= 0.25,
            );
        }
        for w in ["streamprocess", "streamprocesswithsink", "stateless"] {
            let Some(m) = r.find(w, System::Kstreams) else { continue };
            let ratio = r
                .ceiling(w, System::Kstreams)
                .map(|(name, c)| (r.rate(m) / c, format!("{:.0}% of {name}", 100.0 * r.rate(m) / c)));
            goal(&mut out, &format!("{w} within 10% of the ceiling"), ratio, |x| x >= 0.9);
        }
        out.push('\n');
    }
    goal(
        &mut out,
        "in-process order totals at ≥ 5 M records/s on one core with a binary serde",
        engine.get("order_totals", "postcard").map(|ns| (1e9 / ns, format!("{} records/s", rate_text(1e9 / ns)))),
        |x| x >= 5e6,
    );
    out
}

const BEGIN: &str = "<!-- BEGIN GENERATED by scripts/bench-compare.sh: do not edit by hand -->";
const END: &str = "<!-- END GENERATED -->";

/// Writes `benchmarks.md` (the generated part between its markers; the prose around it is kept) and
/// `benchmarks.svg` into `dir`.
pub(crate) fn write_docs(
    dir: &Path,
    context: &Context,
    results: &[SizeResults],
    engine: &EngineFigures,
) -> anyhow::Result<()> {
    let mut generated = String::new();
    generated.push_str(BEGIN);
    generated.push_str("\n\n![records/s per workload and system](benchmarks.svg)\n\n");
    for (k, v) in &context.lines {
        let _ = writeln!(generated, "- {k}: {v}");
    }
    for r in results {
        let _ = writeln!(generated, "\n### {} B values\n\nLoaded in {:.1} s.\n", r.value_size, r.load_secs);
        generated.push_str(&table(r));
    }
    generated.push_str("\n### In-process engine (criterion, `benches/engine.rs`)\n\n");
    generated.push_str(&engine.table());
    generated.push_str("\n### Goals\n\n");
    generated.push_str(&goals(results, engine));
    generated.push('\n');
    generated.push_str(END);

    let md = dir.join("benchmarks.md");
    let old = std::fs::read_to_string(&md).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{generated}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{old}{}# Benchmarks\n\n{generated}\n", if old.is_empty() { "" } else { "\n" }),
    };
    std::fs::write(&md, new)?;
    std::fs::write(dir.join("benchmarks.svg"), svg(results))?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Horizontal bars of records/s, one panel per value size, one group per workload, one bar per system.
fn svg(results: &[SizeResults]) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL: f64 = 230.0;
    const BAR: f64 = 16.0;
    const GAP: f64 = 12.0;
    let mut body = String::new();
    let mut y = 40.0;
    let systems = [System::Kstreams, System::KafkaStreams, System::Quix];
    for r in results {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y}" font-size="15" font-weight="bold">records/s, {} records of {} B ({} B values); label: records/s · peak RSS</text>"#,
            r.records,
            r.key_size + r.value_size,
            r.value_size
        );
        y += 14.0;
        let max = r.rows.iter().filter_map(|row| row.median.as_ref().map(|m| r.rate(m))).fold(1.0, f64::max);
        let mut workloads: Vec<&str> = Vec::new();
        for row in &r.rows {
            if !workloads.contains(&row.workload.as_str()) {
                workloads.push(&row.workload);
            }
        }
        for w in workloads {
            let rows: Vec<&Row> = r.rows.iter().filter(|row| row.workload == w).collect();
            let top = y;
            for row in &rows {
                y += 2.0;
                let (len, text) = match &row.median {
                    Some(m) => {
                        let rate = r.rate(m);
                        (rate / max * (WIDTH - LABEL - 190.0), format!("{} · {:.0} MiB", rate_text(rate), m.rss_mib))
                    }
                    None => (0.0, "failed".to_string()),
                };
                let _ = writeln!(
                    body,
                    r#"<rect x="{LABEL}" y="{y:.1}" width="{len:.1}" height="{BAR}" fill="{}"><title>{} {w}</title></rect><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                    row.system.color(),
                    escape(row.system.label(w)),
                    LABEL + len + 5.0,
                    y + BAR - 4.0,
                    escape(&format!("{} {text}", row.system.label(w)))
                );
                y += BAR;
            }
            let _ = writeln!(
                body,
                r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                (top + y) / 2.0 + 4.0,
                escape(w)
            );
            y += GAP;
        }
        y += 24.0;
    }
    let mut legend = String::new();
    for (i, s) in systems.iter().enumerate() {
        let x = 10.0 + 250.0 * i as f64;
        let _ = writeln!(
            legend,
            r#"<rect x="{x}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            y - 12.0,
            s.color(),
            x + 16.0,
            y - 2.0,
            escape(s.legend())
        );
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{:.0}\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}{legend}</svg>\n",
        y + 10.0
    )
}
