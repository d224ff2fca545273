//! Deterministic simulation: several instances of an application, the embedded broker and a fault
//! injector in one OS thread, driven by a seeded scheduler on a virtual clock, so that one seed always
//! replays the same run (the approach of FoundationDB's and TigerBeetle's simulators, on the runtime's
//! own code: the stream threads stepped here are the ones `KafkaStreams::start` runs on Kafka).
//!
//! Each [`step`](Simulation::step) picks one running instance and one of its stream threads by the
//! seed, runs one turn of its loop (poll without waiting, process, commit when due), and moves the
//! clock on by a few milliseconds. Session timeouts, commit intervals and transaction timeouts all
//! follow that clock. Faults ([`Fault`]) come from the caller or from [`Simulation::random_fault`]:
//! - a crash: the instance's threads are dropped where they stand (no commit, no flush, no leave);
//!   its open transaction stays open until the broker's transaction timeout aborts it, its member
//!   stays in the group until the session timeout, and its state directory survives or is deleted;
//! - a pause past the session timeout: the instance comes back as a zombie and must be fenced;
//! - a join (an instance starts in an empty slot) and a leave (a clean close);
//! - a restart: the instance closes as a process that stops and starts again on its state directory
//!   (a static member, with `group.instance.id`, keeps its place in the group: no rebalance);
//! - the broker refuses a send, or a commit times out (with or without taking effect).
//!
//! Nothing here reads the wall clock or spawns a thread; the broker's maps are ordered; the one
//! random source is [`SimRng`]. [`Simulation::fingerprint`] hashes everything the broker holds, so a
//! test can check that a seed replays exactly.

mod rng;

pub use rng::SimRng;

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::embedded::EmbeddedBroker;
use crate::runtime::global::GlobalUpdater;
use crate::runtime::thread::StreamThread;
use crate::runtime::KafkaStreams;
use crate::time::Clock;
use crate::{StreamsError, Topology};

/// Builds one life of an instance: the topology and its config (the simulation sets the state
/// directory, the clock and the process id, and makes a `group.instance.id` the slot's own by
/// appending `-<slot>`).
pub type AppFactory = Arc<dyn Fn() -> Result<(Topology, StreamsConfig), StreamsError> + Send + Sync>;

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are named for what the variant's doc says
pub enum Fault {
    /// The instance in `slot` dies; with `state_lost` its state directory goes with it.
    Crash { slot: usize, state_lost: bool },
    /// The instance in `slot` stops being scheduled for `ms` of simulated time.
    Pause { slot: usize, ms: i64 },
    /// A new instance starts in the empty `slot`.
    Join { slot: usize },
    /// The instance in `slot` closes cleanly.
    Leave { slot: usize },
    /// The instance in `slot` closes cleanly and starts again at once on its state directory.
    Restart { slot: usize },
    /// The broker refuses the next send.
    RefuseSend,
    /// The next commit times out; with `takes_effect` it happened all the same.
    FailCommit { takes_effect: bool },
}

/// How many faults of each kind a simulation injected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // one count per kind of fault
pub struct FaultCounts {
    pub crashes: u64,
    /// Crashes that lost the instance's state directory too.
    pub state_lost: u64,
    pub pauses: u64,
    pub joins: u64,
    pub leaves: u64,
    pub restarts: u64,
    pub refused_sends: u64,
    pub failed_commits: u64,
}

impl FaultCounts {
    /// All faults together.
    pub fn total(&self) -> u64 {
        self.crashes + self.pauses + self.joins + self.leaves + self.restarts + self.refused_sends + self.failed_commits
    }
}

/// Why a simulated run stopped. Each names the seed, so that the run can be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are what the messages print
pub enum SimulationError {
    /// An instance could not start.
    #[error("seed {seed}: instance {slot} could not start at {at_ms} ms")]
    Start {
        seed: u64,
        slot: usize,
        at_ms: i64,
        #[source]
        source: Box<StreamsError>,
    },
    /// A stream thread failed with an error the runtime did not recover from.
    #[error("seed {seed}: a stream thread of instance {slot} failed at step {step} ({at_ms} ms)")]
    ThreadFailed {
        seed: u64,
        slot: usize,
        step: u64,
        at_ms: i64,
        #[source]
        source: Box<StreamsError>,
    },
    /// [`Simulation::settle`] ran out of steps.
    #[error("seed {seed}: not settled after {steps} steps: {what}")]
    NotSettled { seed: u64, steps: u64, what: String },
}

/// One running instance.
struct Instance {
    app: KafkaStreams,
    threads: Vec<StreamThread>,
    /// The global stores' updater, stepped as one more thread (its bootstrap ran at the start).
    global: Option<GlobalUpdater>,
    /// Not scheduled before this time (a pause).
    paused_until_ms: i64,
}

/// Several instances of one application on one embedded broker, stepped in a seeded order.
pub struct Simulation {
    seed: u64,
    rng: SimRng,
    clock: Clock,
    broker: EmbeddedBroker,
    app: AppFactory,
    slots: Vec<Option<Instance>>,
    state_root: PathBuf,
    lives: u64,
    steps: u64,
    faults: FaultCounts,
    /// The session timeout of the instances' consumers, for pauses that outlast it.
    session_timeout_ms: i64,
    /// The largest step of the clock, in ms.
    max_tick_ms: i64,
}

impl Simulation {
    /// A simulation of `seed` with room for `slots` instances, `initial` of them started once `setup`
    /// has prepared the broker (created the source topics). Each instance keeps its state under
    /// `state_root/instance-<slot>`.
    pub fn new(
        seed: u64,
        slots: usize,
        initial: usize,
        state_root: PathBuf,
        app: AppFactory,
        setup: impl FnOnce(&EmbeddedBroker),
    ) -> Result<Self, SimulationError> {
        let clock = Clock::manual(1_700_000_000_000);
        let session_timeout_ms = match app() {
            Ok((_, config)) => config.session_timeout_ms() as i64,
            Err(source) => return Err(SimulationError::Start { seed, slot: 0, at_ms: 0, source: Box::new(source) }),
        };
        let mut sim = Simulation {
            seed,
            rng: SimRng::new(seed),
            broker: EmbeddedBroker::with_clock(clock.clone()),
            clock,
            app,
            slots: (0..slots.max(1)).map(|_| None).collect(),
            state_root,
            lives: 0,
            steps: 0,
            faults: FaultCounts::default(),
            session_timeout_ms,
            max_tick_ms: 5,
        };
        setup(&sim.broker);
        for slot in 0..initial.min(sim.slots.len()) {
            sim.start(slot)?;
        }
        Ok(sim)
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The broker every instance uses.
    pub fn broker(&self) -> &EmbeddedBroker {
        &self.broker
    }

    /// The virtual clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The run's random source, for the caller's input generator: drawing from it is part of the replay.
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The faults injected so far.
    pub fn faults(&self) -> FaultCounts {
        self.faults
    }

    /// How many instances are running (paused ones included).
    pub fn running(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// One turn of one stream thread of one running instance, chosen by the seed; then the clock moves
    /// on by 0 to 5 ms. When every instance is paused the clock jumps to the first one's return; when
    /// none is running, one starts (an operator restarting the application).
    pub fn step(&mut self) -> Result<(), SimulationError> {
        self.steps += 1;
        let now = self.clock.now_ms();
        let runnable: Vec<usize> = (0..self.slots.len())
            .filter(|&s| self.slots[s].as_ref().is_some_and(|i| i.paused_until_ms <= now))
            .collect();
        if runnable.is_empty() {
            let next = self.slots.iter().flatten().map(|i| i.paused_until_ms).min();
            match next {
                Some(at) => self.clock.advance(at - now),
                None => self.start(0)?,
            }
            return Ok(());
        }
        let slot = runnable[self.rng.below(runnable.len() as u64) as usize];
        let instance = self.slots[slot].as_mut().expect("runnable");
        let index = self.rng.below((instance.threads.len() + usize::from(instance.global.is_some())) as u64) as usize;
        let stepped = match instance.threads.get_mut(index) {
            Some(thread) => thread.step(Duration::ZERO),
            None => instance.global.as_mut().expect("the one past the threads").poll().map(drop),
        };
        if let Err(source) = stepped {
            // The thread would stop here; the instance is of no more use to the run.
            return Err(SimulationError::ThreadFailed {
                seed: self.seed,
                slot,
                step: self.steps,
                at_ms: now,
                source: Box::new(source),
            });
        }
        let tick = self.rng.between(0, self.max_tick_ms);
        self.clock.advance(tick);
        Ok(())
    }

    /// A fault chosen by the seed among those that make sense now (a crash, pause, leave or restart
    /// needs a running instance, a join an empty slot), applied.
    pub fn random_fault(&mut self) -> Result<Fault, SimulationError> {
        let running: Vec<usize> = (0..self.slots.len()).filter(|&s| self.slots[s].is_some()).collect();
        let empty: Vec<usize> = (0..self.slots.len()).filter(|&s| self.slots[s].is_none()).collect();
        let fault = loop {
            let pick_running = |rng: &mut SimRng| running[rng.below(running.len() as u64) as usize];
            let fault = match self.rng.below(7) {
                0 if !running.is_empty() => {
                    Fault::Crash { slot: pick_running(&mut self.rng), state_lost: self.rng.chance(0.5) }
                }
                1 if !running.is_empty() => {
                    // Past the session timeout, and sometimes past the transaction timeout too: the
                    // zombie is then fenced by its transaction's abort as well as by the group.
                    let ms = self.session_timeout_ms + self.rng.between(1, 2 * self.session_timeout_ms);
                    Fault::Pause { slot: pick_running(&mut self.rng), ms }
                }
                2 if !empty.is_empty() => Fault::Join { slot: empty[self.rng.below(empty.len() as u64) as usize] },
                3 if !running.is_empty() => Fault::Leave { slot: pick_running(&mut self.rng) },
                4 => Fault::RefuseSend,
                5 => Fault::FailCommit { takes_effect: self.rng.chance(0.5) },
                6 if !running.is_empty() => Fault::Restart { slot: pick_running(&mut self.rng) },
                _ => continue,
            };
            break fault;
        };
        self.inject(fault)?;
        Ok(fault)
    }

    /// Applies `fault` now. A fault on a slot that has no instance (or, for a join, one that has)
    /// changes nothing.
    pub fn inject(&mut self, fault: Fault) -> Result<(), SimulationError> {
        tracing::info!(target: "kstreams::simulation", seed = self.seed, step = self.steps, at_ms = self.clock.now_ms(), ?fault, "injecting a fault");
        match fault {
            Fault::Crash { slot, state_lost } => {
                let Some(instance) = self.slots.get_mut(slot).and_then(Option::take) else { return Ok(()) };
                self.faults.crashes += 1;
                instance.threads.into_iter().for_each(StreamThread::crash);
                // The global stores close without a checkpoint, as a process that dies leaves them.
                drop(instance.global);
                drop(instance.app);
                if state_lost {
                    self.faults.state_lost += 1;
                    let _ = std::fs::remove_dir_all(self.state_dir(slot));
                }
            }
            Fault::Pause { slot, ms } => {
                let now = self.clock.now_ms();
                let Some(instance) = self.slots.get_mut(slot).and_then(Option::as_mut) else { return Ok(()) };
                self.faults.pauses += 1;
                instance.paused_until_ms = now + ms;
            }
            Fault::Join { slot } => {
                if self.slots.get(slot).is_some_and(Option::is_none) {
                    self.faults.joins += 1;
                    self.start(slot)?;
                }
            }
            Fault::Leave { slot } => {
                let Some(instance) = self.slots.get_mut(slot).and_then(Option::take) else { return Ok(()) };
                self.faults.leaves += 1;
                close(instance);
            }
            Fault::Restart { slot } => {
                let Some(instance) = self.slots.get_mut(slot).and_then(Option::take) else { return Ok(()) };
                self.faults.restarts += 1;
                close(instance);
                self.start(slot)?;
            }
            Fault::RefuseSend => {
                self.faults.refused_sends += 1;
                self.broker.refuse_next_send();
            }
            Fault::FailCommit { takes_effect } => {
                self.faults.failed_commits += 1;
                match takes_effect {
                    true => self.broker.time_out_next_commit_after_applying_it(),
                    false => self.broker.fail_next_commit(),
                }
            }
        }
        Ok(())
    }

    /// The end of the faults: paused instances come back (the clock moves past the last pause) and, if
    /// none is running, one starts; then steps until `done` holds, at most `max_steps` times.
    pub fn settle(
        &mut self,
        max_steps: u64,
        mut done: impl FnMut(&EmbeddedBroker) -> bool,
    ) -> Result<(), SimulationError> {
        let now = self.clock.now_ms();
        if let Some(last) = self.slots.iter().flatten().map(|i| i.paused_until_ms).max() {
            self.clock.advance((last - now).max(0));
        }
        if self.running() == 0 {
            self.start(0)?;
        }
        for _ in 0..max_steps {
            if done(&self.broker) {
                return Ok(());
            }
            self.step()?;
        }
        if done(&self.broker) {
            return Ok(());
        }
        Err(SimulationError::NotSettled {
            seed: self.seed,
            steps: max_steps,
            what: format!(
                "{} instances running, {} transactions open at {} ms",
                self.running(),
                self.broker.open_transactions(),
                self.clock.now_ms()
            ),
        })
    }

    /// Closes every instance cleanly (each commits what it processed and leaves the group).
    pub fn shutdown(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(instance) = self.slots[slot].take() {
                close(instance);
            }
        }
    }

    /// A hash of everything every topic holds (records with offsets, keys, values, timestamps, and
    /// transaction markers' places), of the clock and of the faults: equal for two runs of one seed.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        for topic in self.broker.topics() {
            topic.hash(&mut hasher);
            for record in self.broker.read_all(&topic) {
                (record.partition, record.offset, record.timestamp, &record.key, &record.value).hash(&mut hasher);
            }
            self.broker.end_offsets(&topic).hash(&mut hasher);
        }
        self.clock.now_ms().hash(&mut hasher);
        self.faults.hash(&mut hasher);
        hasher.finish()
    }

    fn state_dir(&self, slot: usize) -> PathBuf {
        self.state_root.join(format!("instance-{slot}"))
    }

    /// Starts a new life of an instance in `slot`.
    fn start(&mut self, slot: usize) -> Result<(), SimulationError> {
        let (seed, at_ms) = (self.seed, self.clock.now_ms());
        let error = |source| SimulationError::Start { seed, slot, at_ms, source: Box::new(source) };
        let (topology, mut config) = (self.app)().map_err(error)?;
        config.state_dir = self.state_dir(slot);
        if let Some(id) = config.consumer_setting("group.instance.id").map(str::to_string) {
            config.consumer_overrides.insert("group.instance.id".into(), format!("{id}-{slot}"));
        }
        self.lives += 1;
        let mut app =
            KafkaStreams::with_client_supplier(topology, config, Arc::new(self.broker.clone())).map_err(error)?;
        app.set_simulated(format!("sim{slot}.{}", self.lives), self.clock.clone());
        let (mut threads, global) = app.start_stepped().map_err(error)?;
        for thread in &mut threads {
            thread.subscribe().map_err(error)?;
        }
        self.slots[slot] = Some(Instance { app, threads, global, paused_until_ms: at_ms });
        Ok(())
    }
}

/// A clean close: every thread commits, closes its tasks and leaves the group (a static member keeps
/// its place until its session times out).
fn close(mut instance: Instance) {
    for thread in instance.threads {
        thread.finish(Ok(()));
    }
    if let Some(global) = instance.global {
        global.close();
    }
    let _ = instance.app.close();
}
