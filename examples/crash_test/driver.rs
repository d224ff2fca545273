//! The driver: starts the instances, runs the generator and the fault schedule, waits for the
//! application to catch up, stops everything, and hands over to the verifier.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::generator::{self, Progress};
use crate::kafka;
use crate::proxy;
use crate::soak;
use crate::topology::{region, Names, PARTITIONS};
use crate::verifier::{self, Report};

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The Kafka to run against.
    #[arg(long, env = "KSTREAMS_BOOTSTRAP")]
    bootstrap_servers: Option<String>,
    /// `exactly_once_v2` or `at_least_once`.
    #[arg(long, default_value = "exactly_once_v2")]
    guarantee: String,
    /// The instances' `group.assignor`: `range` (librdkafka's group) or `streams` (the library's own
    /// group member and Kafka Streams' task assignor).
    #[arg(long, default_value = "range")]
    group_assignor: String,
    /// The instances' `num.standby.replicas` (needs `--group-assignor streams`).
    #[arg(long, default_value_t = 0)]
    num_standby_replicas: u32,
    /// Input records to generate.
    #[arg(long, default_value_t = 50_000)]
    records: u64,
    #[arg(long, default_value_t = 100)]
    keys: u64,
    /// Input records per second: the faults are spread over the generation.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Instances running from the start.
    #[arg(long, default_value_t = 2)]
    instances: u32,
    /// `kill -9`s in all, including those inside an open transaction.
    #[arg(long, default_value_t = 5)]
    kills: u32,
    /// Of the kills, how many go through the crash hook: SIGKILL while the instance's transaction is
    /// open and holds records.
    #[arg(long, default_value_t = 2)]
    kills_in_txn: u32,
    /// Instances paused with SIGSTOP past the session timeout, then resumed.
    #[arg(long, default_value_t = 1)]
    zombies: u32,
    /// Leave out the clean stop-and-start and the scale out and in.
    #[arg(long)]
    no_scaling: bool,
    /// Broker restarts: `scripts/kafka.sh bounce` (kill -9 the broker, start it again on the same data
    /// `--broker-down-s` later). Needs the Kafka that scripts/kafka.sh started.
    #[arg(long, default_value_t = 0)]
    broker_bounces: u32,
    /// How long the broker stays down at each bounce.
    #[arg(long, default_value_t = 5)]
    broker_down_s: u64,
    /// On the three-node cluster of `scripts/kafka.sh cluster` (the bootstrap must be its): kill -9s of
    /// the node leading partition 0 of the input, of `echo` and of a changelog, in turn, each started
    /// again `--broker-down-s` later.
    #[arg(long, default_value_t = 0)]
    leader_kills: u32,
    /// On the cluster: kill -9s of the application's group coordinator and (exactly_once_v2) of its
    /// transaction coordinator, in turn.
    #[arg(long, default_value_t = 0)]
    coordinator_kills: u32,
    /// On the cluster: rolling restarts (each node stopped, started again, and waited for in turn).
    #[arg(long, default_value_t = 0)]
    rolling_restarts: u32,
    /// Network faults through a fault-injecting proxy (examples/crash_test/proxy.rs) between the
    /// instances and the brokers' PROXIED listeners, in turn (on the cluster the node's silence below
    /// comes first, so `--network-faults 1` is that one): one instance silenced for the session
    /// timeout and 5 s more (a partition: the group moves its tasks, and it comes back a zombie), every
    /// connection cut at once, one instance silenced for half the session timeout (a stall), 300 ms
    /// latency on every connection for 10 s, and on the three-node cluster one node (the leader of the
    /// input's partition 0) silenced from every instance for the session timeout and 5 s more, while
    /// it still reaches the other nodes. Needs the Kafka or the cluster that scripts/kafka.sh started.
    #[arg(long, default_value_t = 0)]
    network_faults: u32,
    #[arg(long, default_value_t = 100)]
    commit_interval_ms: u64,
    #[arg(long, default_value_t = 6_000)]
    session_timeout_ms: u64,
    /// Seed of the generator's keys and amounts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long the application may take to catch up once the generator is done.
    #[arg(long, default_value_t = 300)]
    settle_timeout_s: u64,
    /// Where state directories and instance logs go (default: a new directory under the temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// A soak: instance 0 is never killed or stopped, every instance's RSS is sampled every 10 s
    /// (`rss.csv`), and the summary gives instance 0's RSS slope and every error the instances logged.
    /// The length and the faults come from the other options (`scripts/soak.sh` has the 30-minute run).
    #[arg(long)]
    soak: bool,
}

/// One step of the fault schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL, then start again with the same state directory.
    Kill,
    /// Arm the crash hook (SIGUSR1): the instance kills itself inside an open transaction; start again.
    KillInTransaction,
    /// SIGSTOP for longer than the session timeout, then SIGCONT: the instance comes back as a zombie.
    Zombie,
    /// SIGTERM (a clean close: commit, leave the group), then start again.
    CleanRestart,
    /// One more instance.
    ScaleOut,
    /// SIGTERM to the newest instance, not started again.
    ScaleIn,
    /// kill -9 the broker, start it again on the same data.
    BrokerBounce,
    /// kill -9 the cluster node leading partition 0 of a topic, start it again.
    LeaderKill(Led),
    /// kill -9 the cluster node coordinating the application's group, start it again.
    GroupCoordinatorKill,
    /// kill -9 the cluster node coordinating an instance's transactional id, start it again.
    TransactionCoordinatorKill,
    /// Restart every cluster node in turn.
    RollingRestart,
    /// Latency on every connection for a while.
    NetworkLatency,
    /// Every connection closed at once.
    NetworkCut,
    /// One instance's connections silent for `session.timeout.ms` / 2.
    NetworkStall,
    /// One instance's connections silent past `session.timeout.ms`.
    NetworkPartition,
    /// Every connection to the cluster node leading the input's partition 0 silent past
    /// `session.timeout.ms`.
    NetworkBrokerPartition,
}

/// Whose partition leader a [`Fault::LeaderKill`] kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Led {
    Input,
    Output,
    Changelog,
}

impl RunArgs {
    fn cluster_faults(&self) -> u32 {
        self.leader_kills + self.coordinator_kills + self.rolling_restarts
    }
}

/// The faults of the run, in order; `on_cluster`: the bootstrap is the three-node cluster's.
fn schedule(args: &RunArgs, on_cluster: bool) -> Vec<Fault> {
    let mut faults = Vec::new();
    if !args.no_scaling {
        faults.push(Fault::ScaleOut);
    }
    let in_txn = args.kills_in_txn.min(args.kills);
    let plain = args.kills - in_txn;
    for i in 0..in_txn.max(plain) {
        if i < in_txn {
            faults.push(Fault::KillInTransaction);
        }
        if i < plain {
            faults.push(Fault::Kill);
        }
        if i == 0 {
            faults.extend((0..args.zombies).map(|_| Fault::Zombie));
            if !args.no_scaling {
                faults.push(Fault::CleanRestart);
            }
        }
    }
    if args.kills == 0 {
        faults.extend((0..args.zombies).map(|_| Fault::Zombie));
    }
    if !args.no_scaling {
        faults.push(Fault::ScaleIn);
    }
    let led = [Led::Input, Led::Output, Led::Changelog];
    let exactly_once = args.guarantee == "exactly_once_v2";
    let mut network = vec![Fault::NetworkPartition, Fault::NetworkCut, Fault::NetworkStall, Fault::NetworkLatency];
    if on_cluster {
        network.insert(0, Fault::NetworkBrokerPartition);
    }
    let kinds: [Vec<Fault>; 5] = [
        vec![Fault::BrokerBounce; args.broker_bounces as usize],
        (0..args.leader_kills as usize).map(|i| Fault::LeaderKill(led[i % led.len()])).collect(),
        (0..args.coordinator_kills)
            .map(|i| {
                if i % 2 == 1 && exactly_once {
                    Fault::TransactionCoordinatorKill
                } else {
                    Fault::GroupCoordinatorKill
                }
            })
            .collect(),
        vec![Fault::RollingRestart; args.rolling_restarts as usize],
        (0..args.network_faults as usize).map(|i| network[i % network.len()]).collect(),
    ];
    // Each kind spread evenly over the broker faults (a long run meets every kind early and late).
    let mut placed: Vec<(f64, Fault)> = kinds
        .iter()
        .flat_map(|kind| kind.iter().enumerate().map(|(j, f)| ((j as f64 + 0.5) / kind.len() as f64, *f)))
        .collect();
    placed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let broker_faults: Vec<Fault> = placed.into_iter().map(|(_, f)| f).collect();
    // Between the other faults, spread over the run: the first in its first part.
    let n = broker_faults.len();
    for (i, fault) in broker_faults.into_iter().enumerate() {
        let others = faults.len() - i;
        let at = (others * (2 * i + 1) / (2 * n) + i).min(faults.len());
        faults.insert(at, fault);
    }
    faults
}

/// The project's Kafka script, which can restart the broker it started.
const KAFKA_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");

/// Fails unless `bootstrap` is the Kafka `scripts/kafka.sh <which>` prints: the only one its faults can
/// restart.
fn check_bounceable(bootstrap: &str, which: &[&str], option: &str) -> anyhow::Result<()> {
    let ours = kafka_sh(which)?;
    if ours != bootstrap {
        bail!("{option} restarts brokers: it needs the Kafka `scripts/kafka.sh {}` started (that one is at `{ours}`, not {bootstrap})", which.join(" "));
    }
    Ok(())
}

/// What `scripts/kafka.sh <args>` prints (its last line), or its failure.
fn kafka_sh(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(KAFKA_SH).args(args).output().context("running scripts/kafka.sh")?;
    if !output.status.success() {
        bail!("scripts/kafka.sh {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_string())
}

/// The instances: separate OS processes running this binary's `instance` command.
struct Fleet {
    exe: PathBuf,
    common: Vec<String>,
    work_dir: PathBuf,
    running: BTreeMap<u32, Running>,
    next_id: u32,
    /// Round-robin over the running instances for the next victim.
    turn: usize,
    /// An instance never chosen as a victim (a soak's steady one).
    spared: Option<u32>,
    /// Under network faults, the proxy the instances reach the broker through.
    proxy: Option<Arc<proxy::Proxy>>,
    /// Hanging transactions a single broker's restart left behind, and what was done about them.
    hanging: HangingTransactions,
}

/// A single broker restarted after `kill -9` can drop the markers of the transactions open when it died
/// (KAFKA-20734, docs/operations.md "Hanging transactions"): their partitions then hold every
/// `read_committed` reader, the application's restores among them, at the open transaction for good.
/// Once a broker bounce has happened and a wait has seen no progress for a while, the driver does what
/// that page tells an operator to do: `scripts/kafka.sh abort-hanging`, Kafka's own test, aborts only the
/// transactions whose coordinator no longer counts the partition in. A transaction the application left
/// open itself is still ongoing at its coordinator and is left alone, so the verifier still sees it.
#[derive(Default)]
struct HangingTransactions {
    /// Whether the single broker has been bounced in this run.
    armed: bool,
    last_try: Option<Instant>,
    aborted: u32,
}

impl HangingTransactions {
    /// How long a wait goes without progress before the driver looks for hanging transactions.
    const AFTER: Duration = Duration::from_secs(20);

    /// Looks for hanging transactions and aborts them, if armed and nothing has moved since `waiting_since`
    /// (nor since the last look) for [`Self::AFTER`]. A look that fails (the broker not answering yet) is
    /// only reported: the next one comes [`Self::AFTER`] later.
    fn heal(&mut self, waiting_since: Instant, started: Instant) {
        let quiet_since = self.last_try.map_or(waiting_since, |last| last.max(waiting_since));
        if !self.armed || quiet_since.elapsed() < Self::AFTER {
            return;
        }
        let looked = kafka_sh(&["abort-hanging"])
            .and_then(|aborted| aborted.parse::<u32>().context("scripts/kafka.sh abort-hanging printed no count"));
        self.last_try = Some(Instant::now());
        let aborted = looked.unwrap_or_else(|e| {
            println!("          could not look for hanging transactions (again in {:?}): {e:#}", Self::AFTER);
            0
        });
        if aborted > 0 {
            println!(
                "[{:>5.1}s] aborted {aborted} hanging transaction(s) the broker's restart left open (KAFKA-20734)",
                started.elapsed().as_secs_f64()
            );
            self.aborted += aborted;
        }
    }
}

struct Running {
    child: Child,
    /// Where this start's output begins in the instance's log (the log is appended across restarts).
    log_from: u64,
}

impl Fleet {
    fn log_path(&self, id: u32) -> PathBuf {
        self.work_dir.join(format!("instance-{id}.log"))
    }

    fn start(&mut self, id: u32) -> anyhow::Result<()> {
        let path = self.log_path(id);
        let log = OpenOptions::new().create(true).append(true).open(&path)?;
        let log_from = log.metadata()?.len();
        let child = Command::new(&self.exe)
            .arg("instance")
            .args(&self.common)
            .arg("--state-dir")
            .arg(self.work_dir.join(format!("state-{id}")))
            .arg("--client-id")
            .arg(format!("instance-{id}"))
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting an instance")?;
        self.running.insert(id, Running { child, log_from });
        self.next_id = self.next_id.max(id + 1);
        Ok(())
    }

    /// This start's log of instance `id`.
    fn log_since_start(&self, id: u32) -> String {
        let from = self.running.get(&id).map_or(0, |r| r.log_from) as usize;
        let log = std::fs::read(self.log_path(id)).unwrap_or_default();
        String::from_utf8_lossy(log.get(from..).unwrap_or_default()).into_owned()
    }

    /// Waits until instance `id` has reached RUNNING since its start.
    fn wait_running(&mut self, id: u32, timeout: Duration, started: Instant) -> anyhow::Result<()> {
        let since = Instant::now();
        let deadline = since + timeout;
        while !self.log_since_start(id).contains("-> Running") {
            self.hanging.heal(since, started);
            if let Some(status) = self.running.get_mut(&id).and_then(|r| r.child.try_wait().ok().flatten()) {
                bail!("instance {id} exited ({status}) before reaching RUNNING; see {}", self.log_path(id).display());
            }
            if Instant::now() > deadline {
                self.dump_stacks();
                bail!("instance {id} not RUNNING after {timeout:?}; see {}", self.log_path(id).display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// [`wait_progress`], with the instances' thread stacks kept when it gives up.
    fn wait_progress(
        &mut self,
        bootstrap: &str,
        names: &Names,
        before: i64,
        started: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let waited = wait_progress(bootstrap, names, before, started, timeout, &mut self.hanging);
        if waited.is_err() {
            self.dump_stacks();
        }
        waited
    }

    /// For a stall: every running instance's thread stacks (gdb, when installed) into
    /// `instance-N.stacks` beside its log, to see where it waits.
    fn dump_stacks(&self) {
        for (id, running) in &self.running {
            let path = self.work_dir.join(format!("instance-{id}.stacks"));
            let dumped = Command::new("gdb")
                .args(["-p", &running.child.id().to_string(), "-batch", "-ex", "thread apply all bt"])
                .stdin(Stdio::null())
                .output();
            match dumped {
                Ok(out) => match std::fs::write(&path, [out.stdout, out.stderr].concat()) {
                    Ok(()) => println!("          instance {id}'s thread stacks: {}", path.display()),
                    Err(e) => println!("          could not write {}: {e}", path.display()),
                },
                Err(e) => println!("          no thread stacks of instance {id} (gdb: {e})"),
            }
        }
    }

    fn victim(&mut self) -> anyhow::Result<u32> {
        let ids: Vec<u32> = self.running.keys().copied().filter(|id| Some(*id) != self.spared).collect();
        if ids.is_empty() {
            bail!("no instance is running");
        }
        self.turn += 1;
        Ok(ids[self.turn % ids.len()])
    }

    fn signal(&self, id: u32, signal: Signal) -> anyhow::Result<()> {
        let running = self.running.get(&id).ok_or_else(|| anyhow!("instance {id} is not running"))?;
        kill(Pid::from_raw(running.child.id() as i32), signal).with_context(|| format!("{signal} to instance {id}"))?;
        Ok(())
    }

    /// Waits up to `timeout` for instance `id` to exit; `None` if it did not.
    fn wait_exit(&mut self, id: u32, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let running = self.running.get_mut(&id).ok_or_else(|| anyhow!("instance {id} is not running"))?;
        loop {
            if let Some(status) = running.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self, id: u32) -> anyhow::Result<()> {
        if let Some(mut running) = self.running.remove(&id) {
            running.child.kill()?;
            running.child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean close; a close that fails or hangs is an error.
    fn stop(&mut self, id: u32) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGTERM)?;
        let status = self.wait_exit(id, Duration::from_secs(90))?;
        let log = self.log_path(id);
        self.kill9(id)?;
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("instance {id} did not close cleanly ({status}); see {}", log.display()),
            None => bail!("instance {id} did not close within 90 s after SIGTERM; see {}", log.display()),
        }
    }
}

/// Whatever ends the driver, an error included, leaves no instance behind.
impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, mut running) in std::mem::take(&mut self.running) {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// What the fault schedule did, for the report.
#[derive(Debug, Default)]
pub(crate) struct FaultCounts {
    pub(crate) kills: u32,
    pub(crate) kills_in_transaction: u32,
    pub(crate) zombies: u32,
    /// Zombies whose instance then logged a recovery (fenced, tasks closed, group rejoined).
    pub(crate) zombies_fenced: u32,
    pub(crate) clean_restarts: u32,
    pub(crate) scale_outs: u32,
    pub(crate) scale_ins: u32,
    pub(crate) broker_bounces: u32,
    pub(crate) leader_kills: u32,
    pub(crate) coordinator_kills: u32,
    pub(crate) rolling_restarts: u32,
    pub(crate) network_faults: u32,
    /// After each broker or network fault, how long until the application committed input again.
    pub(crate) resumed_after: Vec<Duration>,
    /// Transactions a broker restart left hanging, aborted by the driver.
    pub(crate) hanging_aborted: u32,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
    let bootstrap = args
        .bootstrap_servers
        .clone()
        .ok_or_else(|| anyhow!("no Kafka: pass --bootstrap-servers HOST:PORT or set KSTREAMS_BOOTSTRAP"))?;
    if !matches!(args.guarantee.as_str(), "exactly_once_v2" | "at_least_once") {
        bail!("--guarantee `{}`: expected exactly_once_v2 or at_least_once", args.guarantee);
    }
    let run =
        format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() % 10_000_000_000);
    let names = Names::new(&run);
    let work_dir = args.work_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("crash-test-{run}")));
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {}", work_dir.display()))?;
    if args.broker_bounces > 0 && args.cluster_faults() > 0 {
        bail!("--broker-bounces restarts the single broker of scripts/kafka.sh; the other broker faults need its three-node cluster: not both in one run");
    }
    if args.broker_bounces > 0 {
        check_bounceable(&bootstrap, &["bootstrap"], "--broker-bounces")?;
    }
    if args.cluster_faults() > 0 {
        check_bounceable(
            &bootstrap,
            &["cluster", "bootstrap"],
            "--leader-kills, --coordinator-kills or --rolling-restarts",
        )?;
    }
    let on_cluster = kafka_sh(&["cluster", "bootstrap"]).is_ok_and(|b| b == bootstrap);
    // Under network faults the instances reach the brokers through the proxy; the generator, the
    // verifier and the driver's own checks keep the direct route.
    let proxy = if args.network_faults > 0 {
        let which: &[&str] = if on_cluster { &["cluster", "proxied"] } else { &["proxied"] };
        if !on_cluster {
            check_bounceable(&bootstrap, &["bootstrap"], "--network-faults")?;
        }
        let proxied = kafka_sh(which)?;
        let words: Vec<&str> = proxied.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(2) {
            bail!("scripts/kafka.sh {} printed `{proxied}`: expected PROXY BROKER pairs", which.join(" "));
        }
        let routes = words
            .chunks(2)
            .map(|pair| Ok((pair[0].parse()?, pair[1].parse()?)))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("scripts/kafka.sh {} printed `{proxied}`", which.join(" ")))?;
        Some(Arc::new(proxy::Proxy::start(&routes)?))
    } else {
        None
    };
    let instances_bootstrap = proxy.as_ref().map_or(bootstrap.clone(), |p| p.bootstrap());
    kafka::create_topics(&bootstrap, &names.external(), PARTITIONS)?;
    // The global table, whole before any instance starts (the application joins every record with it).
    let regions: Vec<(String, i64)> =
        (0..args.keys).map(|k| format!("k{k}")).map(|k| (k.clone(), region(&k))).collect();
    kafka::produce(&bootstrap, &names.regions, &regions)?;
    let faults = schedule(&args, on_cluster);
    println!(
        "crash test {run}: {} ({} assignor, {} standbys) on {bootstrap}; {} records over {} keys at {}/s; {} instances; faults: {:?}; logs and state in {}",
        args.guarantee,
        args.group_assignor,
        args.num_standby_replicas,
        args.records,
        args.keys,
        args.rate,
        args.instances,
        faults,
        work_dir.display()
    );

    let started = Instant::now();
    let mut fleet = Fleet {
        exe: std::env::current_exe()?,
        common: vec![
            "--bootstrap-servers".into(),
            instances_bootstrap,
            "--run".into(),
            run.clone(),
            "--guarantee".into(),
            args.guarantee.clone(),
            "--group-assignor".into(),
            args.group_assignor.clone(),
            "--num-standby-replicas".into(),
            args.num_standby_replicas.to_string(),
            "--commit-interval-ms".into(),
            args.commit_interval_ms.to_string(),
            "--session-timeout-ms".into(),
            args.session_timeout_ms.to_string(),
        ],
        work_dir: work_dir.clone(),
        running: BTreeMap::new(),
        next_id: 0,
        turn: 0,
        spared: args.soak.then_some(soak::STEADY),
        proxy,
        hanging: HangingTransactions::default(),
    };
    for id in 0..args.instances {
        fleet.start(id)?;
    }
    for id in 0..args.instances {
        fleet.wait_running(id, Duration::from_secs(120), started)?;
    }
    let sampler = if args.soak { Some(soak::Sampler::start(&run, &work_dir)?) } else { None };

    let progress = Arc::new(Progress::default());
    let generator = {
        let (bootstrap, topic, progress) = (bootstrap.clone(), names.data.clone(), progress.clone());
        let (records, keys, rate, seed) = (args.records, args.keys, args.rate, args.seed);
        std::thread::spawn(move || generator::generate(&bootstrap, &topic, records, keys, rate, seed, progress))
    };

    let mut counts = FaultCounts::default();
    let result = run_faults(&args, &bootstrap, &names, &faults, &mut fleet, &progress, &mut counts);
    if result.is_err() {
        progress.stop.store(true, Ordering::SeqCst);
    }
    let generated = generator.join().map_err(|_| anyhow!("the generator panicked"))?;
    result.and(generated)?;
    println!(
        "[{:>5.1}s] generator done: {} acknowledged",
        started.elapsed().as_secs_f64(),
        progress.acked.lock().unwrap().len()
    );

    let exactly_once = args.guarantee == "exactly_once_v2";
    let timeout = Duration::from_secs(args.settle_timeout_s);
    let settled = settle(&bootstrap, &names, exactly_once, timeout, started, &mut fleet.hanging);
    let mut stop_failures = Vec::new();
    for id in fleet.running.keys().copied().collect::<Vec<_>>() {
        if let Err(e) = fleet.stop(id) {
            stop_failures.push(e.to_string());
        }
    }
    println!("[{:>5.1}s] every instance stopped", started.elapsed().as_secs_f64());

    let acked = std::mem::take(&mut *progress.acked.lock().unwrap());
    let failed = std::mem::take(&mut *progress.failed.lock().unwrap());
    let mut report = verifier::verify(&bootstrap, &names, args.guarantee == "exactly_once_v2", acked, failed)?;
    if let Err(e) = settled {
        report.fail(format!("the application did not catch up: {e}"));
    }
    for failure in stop_failures {
        report.fail(failure);
    }
    let logs = instance_logs(&work_dir);
    if let Some(sampler) = sampler {
        sampler.finish(&mut report)?;
        soak::errors(&logs, &mut report);
    }
    counts.hanging_aborted = fleet.hanging.aborted;
    print_summary(&report, &counts, &args, started.elapsed());
    let (restores, records) = late_writes_skipped(&logs);
    println!("owner epochs: {records} changelog record(s) of former owners skipped in {restores} restore(s)");
    if !report.passed() {
        bail!("the crash test failed; instance logs in {}", work_dir.display());
    }
    Ok(())
}

/// Runs the faults, fault `i` of `n` once the generator has sent `(i + 1) / (n + 1)` of the records.
fn run_faults(
    args: &RunArgs,
    bootstrap: &str,
    names: &Names,
    faults: &[Fault],
    fleet: &mut Fleet,
    progress: &Progress,
    counts: &mut FaultCounts,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let up = Duration::from_secs(120);
    for (i, fault) in faults.iter().enumerate() {
        let due = args.records * (i as u64 + 1) / (faults.len() as u64 + 1);
        while progress.sent.load(Ordering::SeqCst) < due {
            std::thread::sleep(Duration::from_millis(50));
        }
        let at = started.elapsed().as_secs_f64();
        match fault {
            Fault::Kill => {
                let id = fleet.victim()?;
                println!("[{at:>5.1}s] kill -9 instance {id}");
                fleet.kill9(id)?;
                counts.kills += 1;
                fleet.start(id)?;
                fleet.wait_running(id, up, started)?;
            }
            Fault::KillInTransaction => {
                let id = fleet.victim()?;
                println!("[{at:>5.1}s] crash hook on instance {id}: SIGKILL inside an open transaction");
                fleet.signal(id, Signal::SIGUSR1)?;
                let status = fleet.wait_exit(id, Duration::from_secs(60))?;
                let hooked = fleet.log_since_start(id).contains("crash hook:");
                match status {
                    Some(s) if s.signal() == Some(Signal::SIGKILL as i32) && hooked => counts.kills_in_transaction += 1,
                    other => {
                        println!("          the hook did not fire ({other:?}); kill -9 instead");
                        counts.kills += 1;
                    }
                }
                fleet.kill9(id)?;
                fleet.start(id)?;
                fleet.wait_running(id, up, started)?;
            }
            Fault::Zombie => {
                let id = fleet.victim()?;
                let pause = Duration::from_millis(args.session_timeout_ms + 3_000);
                println!("[{at:>5.1}s] SIGSTOP instance {id} for {pause:?}, then SIGCONT");
                let recoveries_before = fleet.log_since_start(id).matches("without committing and rejoining").count();
                fleet.signal(id, Signal::SIGSTOP)?;
                std::thread::sleep(pause);
                fleet.signal(id, Signal::SIGCONT)?;
                counts.zombies += 1;
                // The zombie notices at its next commit or poll; give it a few commit intervals.
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    let log = fleet.log_since_start(id);
                    if log.matches("without committing and rejoining").count() > recoveries_before
                        || log.contains("partitions lost")
                    {
                        counts.zombies_fenced += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Fault::CleanRestart => {
                let id = fleet.victim()?;
                println!("[{at:>5.1}s] clean stop and start of instance {id}");
                fleet.stop(id)?;
                counts.clean_restarts += 1;
                fleet.start(id)?;
                fleet.wait_running(id, up, started)?;
            }
            Fault::BrokerBounce => {
                println!("[{at:>5.1}s] kill -9 the broker, start it again {} s later", args.broker_down_s);
                let before = committed_input(bootstrap, names)?;
                kafka_sh(&["bounce", &args.broker_down_s.to_string()])?;
                counts.broker_bounces += 1;
                fleet.hanging.armed = true;
                println!("[{:>5.1}s] the broker is back", started.elapsed().as_secs_f64());
                counts.resumed_after.push(fleet.wait_progress(bootstrap, names, before, started, up)?);
            }
            Fault::LeaderKill(_) | Fault::GroupCoordinatorKill | Fault::TransactionCoordinatorKill => {
                let (what, node) = match fault {
                    Fault::LeaderKill(Led::Input) => ("the leader of the input's partition 0", leader(&names.data)?),
                    Fault::LeaderKill(Led::Output) => ("the leader of echo's partition 0", leader(&names.echo)?),
                    Fault::LeaderKill(Led::Changelog) => {
                        let reader = kafka::reader(bootstrap, "crash-test-driver", false)?;
                        let changelog = kafka::topics_with_prefix(&reader, &names.app_id)?
                            .into_keys()
                            .find(|t| t.ends_with("-changelog"))
                            .ok_or_else(|| anyhow!("the application has no changelog topic yet"))?;
                        ("the leader of a changelog's partition 0", leader(&changelog)?)
                    }
                    Fault::GroupCoordinatorKill => {
                        ("the group coordinator", kafka_sh(&["cluster", "group-coordinator", &names.app_id])?)
                    }
                    _ => ("the transaction coordinator", kafka_sh(&["cluster", "txn-coordinator", &names.app_id])?),
                };
                println!("[{at:>5.1}s] kill -9 {what} (node {node}), start it again {} s later", args.broker_down_s);
                let before = committed_input(bootstrap, names)?;
                kafka_sh(&["cluster", "bounce", &node, &args.broker_down_s.to_string()])?;
                match fault {
                    Fault::LeaderKill(_) => counts.leader_kills += 1,
                    _ => counts.coordinator_kills += 1,
                }
                println!("[{:>5.1}s] node {node} is back", started.elapsed().as_secs_f64());
                counts.resumed_after.push(fleet.wait_progress(bootstrap, names, before, started, up)?);
            }
            Fault::RollingRestart => {
                println!("[{at:>5.1}s] rolling restart of the cluster, each node down {} s", args.broker_down_s);
                let before = committed_input(bootstrap, names)?;
                kafka_sh(&["cluster", "roll", &args.broker_down_s.to_string()])?;
                counts.rolling_restarts += 1;
                println!("[{:>5.1}s] every node restarted", started.elapsed().as_secs_f64());
                counts.resumed_after.push(fleet.wait_progress(bootstrap, names, before, started, up)?);
            }
            Fault::NetworkLatency
            | Fault::NetworkCut
            | Fault::NetworkStall
            | Fault::NetworkPartition
            | Fault::NetworkBrokerPartition => {
                let proxy = fleet.proxy.clone().ok_or_else(|| anyhow!("a network fault without the proxy"))?;
                let before = committed_input(bootstrap, names)?;
                match fault {
                    Fault::NetworkLatency => {
                        println!("[{at:>5.1}s] 300 ms latency on every connection for 10 s");
                        proxy.set_latency(proxy::Target::All, Duration::from_millis(300));
                        std::thread::sleep(Duration::from_secs(10));
                        proxy.set_latency(proxy::Target::All, Duration::ZERO);
                    }
                    Fault::NetworkCut => {
                        let cut = proxy.cut(proxy::Target::All);
                        println!("[{at:>5.1}s] every connection cut ({cut} sockets)");
                    }
                    Fault::NetworkBrokerPartition => {
                        let node = leader(&names.data)?;
                        let broker = node
                            .parse::<usize>()
                            .ok()
                            .and_then(|n| n.checked_sub(1))
                            .filter(|&b| b < proxy.brokers())
                            .ok_or_else(|| {
                                anyhow!("node `{node}` leads the input's partition 0: not one the proxy fronts")
                            })?;
                        let silent = Duration::from_millis(args.session_timeout_ms + 5_000);
                        println!("[{at:>5.1}s] network partition: node {node} (leading the input's partition 0) cut off from every instance for {silent:?}");
                        proxy.partition(proxy::Target::Broker(broker), true);
                        std::thread::sleep(silent);
                        proxy.partition(proxy::Target::Broker(broker), false);
                    }
                    _ => {
                        let id = fleet.victim()?;
                        let stall = *fault == Fault::NetworkStall;
                        let silent = if stall {
                            Duration::from_millis(args.session_timeout_ms / 2)
                        } else {
                            Duration::from_millis(args.session_timeout_ms + 5_000)
                        };
                        let what = if stall { "stall" } else { "partition" };
                        println!("[{at:>5.1}s] network {what}: instance {id} cut off from the brokers for {silent:?}");
                        proxy.partition(proxy::Target::Instance(id), true);
                        std::thread::sleep(silent);
                        proxy.partition(proxy::Target::Instance(id), false);
                    }
                }
                counts.network_faults += 1;
                println!("[{:>5.1}s] the network is whole again", started.elapsed().as_secs_f64());
                counts.resumed_after.push(fleet.wait_progress(bootstrap, names, before, started, up)?);
            }
            Fault::ScaleOut => {
                let id = fleet.next_id;
                println!("[{at:>5.1}s] scale out: instance {id}");
                fleet.start(id)?;
                fleet.wait_running(id, up, started)?;
                counts.scale_outs += 1;
            }
            Fault::ScaleIn => {
                let id = *fleet.running.keys().last().ok_or_else(|| anyhow!("no instance to stop"))?;
                println!("[{at:>5.1}s] scale in: stopping instance {id}");
                fleet.stop(id)?;
                counts.scale_ins += 1;
            }
        }
    }
    Ok(())
}

/// The cluster node leading partition 0 of `topic`.
fn leader(topic: &str) -> anyhow::Result<String> {
    let node = kafka_sh(&["cluster", "leader", topic, "0"])?;
    if node.is_empty() {
        bail!("no leader found for {topic}-0");
    }
    Ok(node)
}

/// How many input records the application's group has committed past, in all.
fn committed_input(bootstrap: &str, names: &Names) -> anyhow::Result<i64> {
    Ok(kafka::committed(bootstrap, &names.app_id, &names.data, PARTITIONS)?.iter().map(|o| o.max(&0)).sum())
}

/// Waits until the group commits past more input than `before` (the application processes again) or
/// past all of it (nothing was left to do), and says how long that took since the broker was back.
fn wait_progress(
    bootstrap: &str,
    names: &Names,
    before: i64,
    started: Instant,
    timeout: Duration,
    hanging: &mut HangingTransactions,
) -> anyhow::Result<Duration> {
    let since = Instant::now();
    let reader = kafka::reader(bootstrap, "crash-test-driver", false)?;
    loop {
        // The broker may still refuse a moment after it is back: that is part of the wait.
        let committed = committed_input(bootstrap, names).ok();
        let end = kafka::ends(&reader, &names.data, PARTITIONS).ok().map(|ends| ends.iter().sum::<i64>());
        if let (Some(committed), Some(end)) = (committed, end)
            && (committed > before || committed >= end)
        {
            let took = since.elapsed();
            println!(
                "[{:>5.1}s] processing again {:.1} s after ({committed} of {end} input records committed)",
                started.elapsed().as_secs_f64(),
                took.as_secs_f64()
            );
            return Ok(took);
        }
        hanging.heal(since, started);
        if since.elapsed() > timeout {
            bail!(
                "the application committed no input for {timeout:?} after the broker fault ({committed:?} of {end:?} input records committed)"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the application has processed and committed everything: the group's committed offsets
/// reach the end of the input (not transactional: exactly its high watermark), no transaction is open on
/// a repartition topic, and the committed offsets of the repartition topics have not moved for five
/// seconds (their ends also hold transaction markers and aborted records, which no commit passes; so
/// "caught up" there is "nothing left to do"). Under at_least_once the repartition topics hold neither,
/// so their committed offsets must reach their ends too: a task still restoring its stores (restores
/// run beside the processing of other tasks) holds its offsets still, which stability alone took for
/// done. Stopping too early shows in the verifier as missing output.
fn settle(
    bootstrap: &str,
    names: &Names,
    exactly_once: bool,
    timeout: Duration,
    started: Instant,
    hanging: &mut HangingTransactions,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let committed_reader = kafka::reader(bootstrap, "crash-test-settle", true)?;
    let uncommitted_reader = kafka::reader(bootstrap, "crash-test-settle", false)?;
    let (mut last_print, mut previous, mut stable_since) = (Instant::now(), Vec::new(), Instant::now());
    loop {
        let repartition: BTreeMap<String, i32> = kafka::topics_with_prefix(&committed_reader, &names.app_id)?
            .into_iter()
            .filter(|(t, _)| t.ends_with("-repartition"))
            .collect();
        let data_end = kafka::ends(&uncommitted_reader, &names.data, PARTITIONS)?;
        let data_committed = kafka::committed(bootstrap, &names.app_id, &names.data, PARTITIONS)?;
        let behind: i64 = data_end.iter().zip(&data_committed).map(|(end, c)| end - c.max(&0)).sum();
        let mut offsets = data_committed;
        let mut open = false;
        let mut repartition_behind = 0;
        for (topic, partitions) in &repartition {
            open |= !kafka::open_transactions(&committed_reader, &uncommitted_reader, topic, *partitions)?.is_empty();
            let committed = kafka::committed(bootstrap, &names.app_id, topic, *partitions)?;
            if !exactly_once {
                let ends = kafka::ends(&uncommitted_reader, topic, *partitions)?;
                repartition_behind += ends.iter().zip(&committed).map(|(end, c)| end - c.max(&0)).sum::<i64>();
            }
            offsets.extend(committed);
        }
        if offsets != previous {
            stable_since = Instant::now();
            previous = offsets;
        }
        if behind == 0 && repartition_behind == 0 && !open && stable_since.elapsed() > Duration::from_secs(5) {
            println!("[{:>5.1}s] caught up", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            println!(
                "[{:>5.1}s] waiting: {behind} input records uncommitted, {repartition_behind} repartition records{}",
                started.elapsed().as_secs_f64(),
                if open { "; a transaction is open on a repartition topic" } else { "" }
            );
            last_print = Instant::now();
        }
        hanging.heal(stable_since, started);
        if Instant::now() > deadline {
            bail!("{behind} input records still uncommitted after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What the instances' restores skipped as former owners' late writes (at_least_once owner epochs): the
/// restores that skipped any, and the records, from the warnings in the instance logs.
fn late_writes_skipped(logs: &[(String, String)]) -> (u64, u64) {
    let (mut restores, mut records) = (0, 0);
    for (_, log) in logs {
        for line in log.lines().filter(|l| l.contains("skipped changelog records")) {
            restores += 1;
            let count = line.split("skipped=").nth(1).and_then(|rest| rest.split(' ').next());
            records += count.and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    (restores, records)
}

/// Every instance's log in `work_dir` (`instance-N.log`, across its restarts), by file name.
fn instance_logs(work_dir: &std::path::Path) -> Vec<(String, String)> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(work_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("instance-") && name.ends_with(".log") {
            let log = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()).into_owned();
            logs.push((name, log));
        }
    }
    logs
}

fn print_summary(report: &Report, counts: &FaultCounts, args: &RunArgs, elapsed: Duration) {
    println!("\n== crash test: {} ({:.0} s)", args.guarantee, elapsed.as_secs_f64());
    println!(
        "faults: {} kill -9 + {} inside an open transaction; {} zombie(s), {} seen fenced; {} clean restart(s); scale out {} / in {}; {} broker restart(s); {} leader kill(s), {} coordinator kill(s), {} rolling restart(s); {} network fault(s)",
        counts.kills,
        counts.kills_in_transaction,
        counts.zombies,
        counts.zombies_fenced,
        counts.clean_restarts,
        counts.scale_outs,
        counts.scale_ins,
        counts.broker_bounces,
        counts.leader_kills,
        counts.coordinator_kills,
        counts.rolling_restarts,
        counts.network_faults
    );
    if let Some(slowest) = counts.resumed_after.iter().max() {
        let each: Vec<String> = counts.resumed_after.iter().map(|d| format!("{:.1}", d.as_secs_f64())).collect();
        println!(
            "processing again after each broker or network fault within {:.1} s (each: {} s)",
            slowest.as_secs_f64(),
            each.join(", ")
        );
    }
    if counts.hanging_aborted > 0 {
        println!(
            "hanging transactions the broker's restarts left open (KAFKA-20734), aborted by the driver: {}",
            counts.hanging_aborted
        );
    }
    for line in &report.lines {
        println!("{line}");
    }
    println!("{}", if report.passed() { "PASSED" } else { "FAILED" });
}
