//! The crash-test harness: proves exactly-once (and at-least-once's "nothing lost") against a real Kafka
//! by killing application instances while they work, modelled on Kafka Streams' EOS system test.
//!
//! `./scripts/crash-test.sh [--guarantee exactly_once_v2|at_least_once] [--records N] [--kills N] ...`
//! (starts the project's Kafka unless `KSTREAMS_BOOTSTRAP` is set), or with a Kafka of your own:
//! `cargo run --example crash_test -- --bootstrap-servers HOST:PORT ...`.
//!
//! One run, in this process (the driver):
//! 1. creates fresh topics (`data`, `echo`, `min`, `sum`, `max`, `cnt`, `win`, `joined`, 5 partitions
//!    each);
//! 2. starts application instances as separate OS processes (this binary with `instance`), each with
//!    its own state directory, one stream thread, no record cache;
//! 3. a generator writes `--records` records over `--keys` keys at `--rate` records/s with an idempotent
//!    producer and keeps every acknowledged record (partition and offset);
//! 4. meanwhile a fault schedule runs: `kill -9` (some of them, through a test hook, while the instance
//!    holds an open transaction with records in it), a clean stop and start, scale out and in, and a
//!    zombie (SIGSTOP past the session timeout, then SIGCONT);
//! 5. once the generator is done and the group's committed offsets reach the end of the input, every
//!    instance is stopped cleanly and the verifier reads every output with `read_committed`.
//!
//! The verifier ([`verifier`]) checks, under `exactly_once_v2`: `echo` equals the acknowledged input
//! partition by partition (same records, same order, nothing lost, nothing twice); every record of `min`,
//! `sum` (computed before the repartition), `max` and `cnt` (after it) equals the running aggregate a
//! plain loop computes from the input; every window of `win` (each key's largest amount per 5 s window
//! of the input's timestamps, with 2 s of grace, through `suppress(until_window_closes)`) that has closed
//! by the end of the run has exactly one final result, the model's, and no window still open has one;
//! every record of `joined` (each input record joined with its key's `sum` table, a stream-table join)
//! is, key by key, the input record with the model's running sum after it;
//! and no transaction is left open (each partition's last stable offset equals its high watermark). Under `at_least_once` it counts duplicates (allowed) and losses
//! (never allowed), and checks that every aggregate reached the model's final value (duplicates cannot
//! excuse a lost update), and that no key's last output is below the value it reached (a rolled-back
//! update, which a resumed zombie's late writes would cause); every closed window has at least one final
//! result and every one is the model's; every input record has a `joined` output. The exit status is 0 only if every check
//! passes.
//!
//! With `--soak` ([`soak`]) one instance lives through the whole run while the others take the faults,
//! and the summary adds its memory (RSS sampled every 10 s, the slope after warm-up) and every error
//! the instances logged (`scripts/soak.sh`: 30 minutes).

mod driver;
mod generator;
mod instance;
mod kafka;
mod proxy;
mod soak;
mod topology;
mod verifier;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    about = "Kills kstreams instances while they process, then checks that nothing was lost or duplicated",
    // A later option wins (scripts/soak.sh passes its own, then the caller's).
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: driver::RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// One application instance (started by the driver; not for direct use).
    Instance(instance::InstanceArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Instance(args)) => instance::run(args),
        None => driver::run(cli.run),
    }
}
