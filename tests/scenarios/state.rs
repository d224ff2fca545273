//! State scenarios, run against the real Kafka (tests/kafka_state.rs) and the embedded broker
//! (tests/embedded_state.rs): checkpoints that let a restart skip what they cover, a corrupt checkpoint
//! that falls back to a full restore with identical contents, a fresh instance with an empty state
//! directory, the record cache (of a DSL aggregation and of a Processor-API store), and the state
//! directory lock.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::kafka;

#[path = "versioned_topology.rs"]
mod versioned_topology;

use kstreams::client::TopicPartition;
use kstreams::error::StoreUnavailable;
use kstreams::prelude::*;
use kstreams::record::{ProducedRecord, RawRecord};
use kstreams::runtime::{
    HostInfo, KafkaStreams, QueryableStoreTypes, StandbyUpdateListener, State, StateRestoreListener,
    StoreQueryParameters, SuspendReason,
};
use kstreams::serde::{from_bytes, to_bytes, DefaultSerde, StringSerde};
use kstreams::state::{ReadOnlyKeyValueStore, RocksDbKeyValueStore, RocksDbMemory};
use kstreams::store::Stores;
use kstreams::OWNER_EPOCH_HEADER;

/// Per-customer sums of order values (i64 cents): the stateful app of these tests.
pub(crate) fn totals_topology(orders: &str, totals: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder.stream::<i64, i64>(orders).group_by_key().reduce(|a, b| a + b).to_stream().to(totals);
    Ok(builder.build()?)
}

const STORE: &str = "KSTREAM-REDUCE-STATE-STORE-0000000001";

/// Orders `from..to`: customer `id % 17`, value `id % 50 + 1`; adds them to `expected`.
pub(crate) fn orders(
    topic: &str,
    from: u64,
    to: u64,
    expected: &mut BTreeMap<i64, i64>,
) -> Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    (from..to)
        .map(|id| {
            let (customer, value) = ((id % 17) as i64, (id % 50 + 1) as i64);
            *expected.entry(customer).or_insert(0) += value;
            (
                to_bytes(&*i64::default_serde(), topic, &customer).unwrap(),
                to_bytes(&*i64::default_serde(), topic, &value).unwrap(),
            )
        })
        .collect()
}

/// Reads `totals` until the latest total of every customer equals `expected`; returns those latest totals.
pub(crate) fn wait_for_totals(totals: &str, expected: &BTreeMap<i64, i64>) -> BTreeMap<i64, i64> {
    // Only the records read since the last look are decoded: tens of thousands of totals stay cheap.
    let mut last = BTreeMap::new();
    let mut seen = 0;
    kafka::consume_until(totals, Duration::from_secs(120), |records| {
        for r in &records[seen..] {
            let key = from_bytes(&*i64::default_serde(), totals, r.key.as_deref()).unwrap().expect("keyed");
            let value = from_bytes(&*i64::default_serde(), totals, r.value.as_deref()).unwrap().expect("a total");
            last.insert(key, value);
        }
        seen = records.len();
        last == *expected
    });
    last
}

/// Every restore the runtime reports: (store, start offset, end offset, records restored).
#[derive(Clone, Default)]
pub(crate) struct Restores(pub(crate) Arc<Mutex<Vec<(String, i64, i64, u64)>>>);

impl StateRestoreListener for Restores {
    fn on_restore_start(&self, _: &TopicPartition, store: &str, start: i64, end: i64) {
        self.0.lock().unwrap().push((store.to_string(), start, end, 0));
    }
    fn on_restore_end(&self, _: &TopicPartition, store: &str, total: u64) {
        let mut events = self.0.lock().unwrap();
        let last = events.iter_mut().rev().find(|e| e.0 == store).expect("started");
        last.3 = total;
    }
}

impl Restores {
    pub(crate) fn restored(&self) -> u64 {
        self.0.lock().unwrap().iter().map(|e| e.3).sum()
    }
}

/// What a standby update listener heard: per task, the updates started, the records loaded, and why
/// its standby stopped.
#[derive(Clone, Default)]
struct StandbyUpdates(Arc<Mutex<BTreeMap<kstreams::TaskId, (usize, u64, Vec<SuspendReason>)>>>);

impl StandbyUpdateListener for StandbyUpdates {
    fn on_update_start(&self, _: &TopicPartition, _: &str, task: kstreams::TaskId, _: i64) {
        self.0.lock().unwrap().entry(task).or_default().0 += 1;
    }
    fn on_batch_loaded(&self, _: &TopicPartition, _: &str, task: kstreams::TaskId, _: i64, size: u64, _: i64) {
        self.0.lock().unwrap().entry(task).or_default().1 += size;
    }
    fn on_update_suspended(
        &self,
        _: &TopicPartition,
        _: &str,
        task: kstreams::TaskId,
        _: Option<i64>,
        _: Option<i64>,
        reason: SuspendReason,
    ) {
        self.0.lock().unwrap().entry(task).or_default().2.push(reason);
    }
}

pub(crate) fn start(
    topology: Topology,
    app: &str,
    state_dir: &Path,
    restores: &Restores,
) -> anyhow::Result<KafkaStreams> {
    let mut config = kafka::config(app);
    config.state_dir = state_dir.to_path_buf();
    // A killed member leaves the group after this, not after the default 45 s.
    config.consumer_overrides.insert("session.timeout.ms".into(), "6000".into());
    config.consumer_overrides.insert("heartbeat.interval.ms".into(), "1000".into());
    let mut streams = kafka::streams(topology, config)?;
    streams.set_global_state_restore_listener(restores.clone());
    streams.start()?;
    anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    Ok(streams)
}

pub(crate) fn task_dirs(state_dir: &Path, app: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state_dir.join(app))
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Everything in the store's RocksDB files, over all tasks: (task, key, value).
pub(crate) fn store_contents(state_dir: &Path, app: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let memory = RocksDbMemory::default();
    let mut all = Vec::new();
    for dir in task_dirs(state_dir, app) {
        let path = dir.join("rocksdb").join(STORE);
        if !path.exists() {
            continue;
        }
        let store = RocksDbKeyValueStore::open(STORE, &path, &memory).unwrap();
        let task = dir.file_name().unwrap().to_string_lossy().to_string();
        for kv in store.all().unwrap() {
            let (k, v) = kv.unwrap();
            all.push((task.clone(), k, v));
        }
    }
    all
}

/// What [`first_run`] leaves: the topics, the application, its state directory and the totals so far.
struct FirstRun {
    input: String,
    output: String,
    app: String,
    state_dir: PathBuf,
    expected: BTreeMap<i64, i64>,
}

/// A first run of the totals app on new 4-partition topics named after `prefix`, with an empty state
/// directory (nothing to restore): 1,000 orders, then a clean close.
fn first_run(prefix: &str) -> anyhow::Result<FirstRun> {
    let (input, output) = (kafka::unique(&format!("{prefix}-orders")), kafka::unique(&format!("{prefix}-totals")));
    kafka::create_topics(&[(&input, 4), (&output, 4)]);
    let app = kafka::unique(&format!("{prefix}-app"));
    let state_dir = std::env::temp_dir().join(kafka::unique(&format!("{prefix}-state")));
    let mut expected = BTreeMap::new();
    let restores = Restores::default();
    let mut streams = start(totals_topology(&input, &output)?, &app, &state_dir, &restores)?;
    kafka::produce(&input, orders(&input, 0, 1_000, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected);
    streams.close()?;
    assert_eq!(restores.restored(), 0);
    Ok(FirstRun { input, output, app, state_dir, expected })
}

pub(crate) fn checkpoints_skip_restoring_what_they_cover_and_a_corrupt_one_restores_in_full() -> anyhow::Result<()> {
    // First run: empty state, nothing to restore.
    let FirstRun { input, output, app, state_dir, mut expected } = first_run("ck")?;
    let dirs = task_dirs(&state_dir, &app);
    assert_eq!(dirs.len(), 4, "one directory per task: {dirs:?}");
    for dir in &dirs {
        let checkpoint = std::fs::read_to_string(dir.join(".checkpoint"))?;
        assert!(
            checkpoint.starts_with("0\n1\n") && checkpoint.contains(&format!("{app}-{STORE}-changelog")),
            "{checkpoint}"
        );
    }
    let before = store_contents(&state_dir, &app);
    assert_eq!(before.len(), 17, "one row per customer");

    // Second run on the same files: the checkpoints cover the whole changelog, nothing is replayed.
    let restores = Restores::default();
    let mut streams = start(totals_topology(&input, &output)?, &app, &state_dir, &restores)?;
    kafka::produce(&input, orders(&input, 1_000, 1_500, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected);
    streams.close()?;
    assert_eq!(restores.restored(), 0, "restart restored records the checkpoint covers: {:?}", restores.0);
    let before = store_contents(&state_dir, &app);

    // Corrupt every checkpoint: each store is wiped and restored in full from its changelog.
    for dir in task_dirs(&state_dir, app.as_str()) {
        std::fs::write(dir.join(".checkpoint"), "0\n1\nnot a checkpoint\n")?;
    }
    let restores = Restores::default();
    let mut streams = start(totals_topology(&input, &output)?, &app, &state_dir, &restores)?;
    streams.close()?;
    let events = restores.0.lock().unwrap().clone();
    assert_eq!(events.len(), 4, "every task's store restored: {events:?}");
    assert!(
        events.iter().all(|(_, start, end, total)| *start == 0 && *total > 0 && *total as i64 <= *end),
        "{events:?}"
    );
    assert_eq!(store_contents(&state_dir, &app), before, "a full restore gives identical contents");

    // A second instance with an empty state directory restores everything and carries on exactly.
    let fresh_dir = std::env::temp_dir().join(kafka::unique("ck-state-fresh"));
    let restores = Restores::default();
    let mut streams = start(totals_topology(&input, &output)?, &app, &fresh_dir, &restores)?;
    kafka::produce(&input, orders(&input, 1_500, 2_000, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected);
    streams.close()?;
    assert!(restores.restored() > 0);
    let _ = std::fs::remove_dir_all(&state_dir);
    let _ = std::fs::remove_dir_all(&fresh_dir);
    Ok(())
}

/// The newest SST file of a RocksDB database directory.
fn newest_sst(db: &Path) -> PathBuf {
    let mut ssts: Vec<PathBuf> = std::fs::read_dir(db)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    ssts.sort();
    ssts.pop().unwrap_or_else(|| panic!("no SST file in {}", db.display()))
}

/// A store's files damaged between two runs, a different way in each task: its CURRENT file deleted, its
/// newest SST file cut to half its size, bytes of that file's first data block overwritten (found only
/// when a record reads it), and its whole directory deleted (the checkpoint left vouching for it). Each
/// store is wiped and restored in full from its changelog, and the totals go on exactly.
pub(crate) fn damaged_store_files_are_wiped_and_restored_from_the_changelog() -> anyhow::Result<()> {
    let FirstRun { input, output, app, state_dir, mut expected } = first_run("dmg")?;
    let before = store_contents(&state_dir, &app);

    let dirs = task_dirs(&state_dir, &app);
    assert_eq!(dirs.len(), 4);
    let db = |task: usize| dirs[task].join("rocksdb").join(STORE);
    std::fs::remove_file(db(0).join("CURRENT"))?;
    let cut = newest_sst(&db(1));
    let len = std::fs::metadata(&cut)?.len();
    std::fs::OpenOptions::new().write(true).open(&cut)?.set_len(len / 2)?;
    let flipped = newest_sst(&db(2));
    let mut bytes = std::fs::read(&flipped)?;
    for b in &mut bytes[8..24] {
        *b ^= 0x5a;
    }
    std::fs::write(&flipped, bytes)?;
    std::fs::remove_dir_all(db(3))?;

    let restores = Restores::default();
    let mut streams = start(totals_topology(&input, &output)?, &app, &state_dir, &restores)?;
    kafka::produce(&input, orders(&input, 1_000, 1_500, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected, "totals from the restored stores");
    streams.close()?;
    let events = restores.0.lock().unwrap().clone();
    let full: Vec<_> = events.iter().filter(|(_, start, _, total)| *start == 0 && *total > 0).collect();
    assert!(full.len() >= 4, "every damaged store restored in full: {events:?}");
    assert_eq!(
        store_contents(&state_dir, &app).len(),
        before.len(),
        "one row per customer again, nothing left of the damaged files"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// A small disk of its own: a tmpfs mounted on a new directory, that can be filled up and made
/// read-only, unmounted when dropped. Mounting needs root (`None` otherwise).
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(mib: u32) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(kafka::unique("small-disk"));
        std::fs::create_dir_all(&dir).ok()?;
        let size = format!("size={mib}m");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount -o remount,{options} {}", self.dir.display());
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.dir.join("filler")).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The state directory on a disk that is read-only at the start, then full in the middle of the run
/// (under exactly_once_v2): the start fails naming the directory; the full disk stops the instance with
/// an error naming the store whose files could not be written; once there is room again, a new start
/// restores and the totals go on exactly, nothing lost and nothing counted twice.
pub(crate) fn a_read_only_or_full_state_disk_is_a_clear_error_and_loses_nothing() -> anyhow::Result<()> {
    let Some(disk) = SmallDisk::mount(32) else {
        eprintln!(
            "NOT RUN: a_read_only_or_full_state_disk_is_a_clear_error_and_loses_nothing mounts a tmpfs: run it as root"
        );
        return Ok(());
    };
    let (input, output) = (kafka::unique("disk-orders"), kafka::unique("disk-totals"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app = kafka::unique("disk-app");
    let config = || {
        let mut config = kafka::config(&app);
        config.state_dir = disk.dir.clone();
        config.processing_guarantee = kstreams::config::ProcessingGuarantee::ExactlyOnceV2;
        config
    };
    let mut expected = BTreeMap::new();

    disk.remount("ro");
    let started = kafka::streams(totals_topology(&input, &output)?, config()).and_then(|mut s| s.start());
    let error = kstreams::handler::error_chain(&started.expect_err("a read-only state directory"));
    assert!(error.contains(&*disk.dir.to_string_lossy()), "the error names the directory: {error}");
    disk.remount("rw");

    let mut streams = kafka::streams(totals_topology(&input, &output)?, config())?;
    streams.start()?;
    kafka::produce(&input, orders(&input, 0, 1_000, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected);
    disk.fill();
    // Past a checkpoint's worth of changelog records the store's memtables must go to disk.
    kafka::produce(&input, orders(&input, 1_000, 12_000, &mut expected));
    assert!(streams.wait_for_state(State::Error, Duration::from_secs(120)), "the instance stops on the full disk");
    let error = kstreams::handler::error_chain(&streams.take_error().expect("the error that stopped it"));
    assert!(error.contains(STORE) && error.contains("No space left on device"), "{error}");
    let _ = streams.close();

    disk.free();
    let restores = Restores::default();
    let mut config = config();
    config.consumer_overrides.insert("session.timeout.ms".into(), "6000".into());
    let mut streams = kafka::streams(totals_topology(&input, &output)?, config)?;
    streams.set_global_state_restore_listener(restores.clone());
    streams.start()?;
    kafka::produce(&input, orders(&input, 12_000, 12_500, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected, "exact totals after the full disk");
    streams.close()?;
    Ok(())
}

/// A state directory on an ext4 disk image of its own, mounted with `errors=remount-ro`, whose errors
/// the test raises through ext4's `trigger_fs_error`: the kernel then turns the file system read-only
/// under the open files, as it does on a real disk error (a `mount -o remount,ro` is refused while
/// RocksDB holds files open for writing).
struct FailingDisk {
    dir: PathBuf,
    image: PathBuf,
}

impl FailingDisk {
    /// None when this machine cannot: not root, no loop devices, no ext4 tools.
    fn mount(mib: u32) -> Option<FailingDisk> {
        let dir = std::env::temp_dir().join(kafka::unique("failing-disk"));
        let image = dir.with_extension("img");
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::File::create(&image).ok()?.set_len(u64::from(mib) << 20).ok()?;
        let quiet = |cmd: &mut std::process::Command| {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let made = quiet(std::process::Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
        let disk = FailingDisk { dir, image };
        if !made || !disk.attach() {
            return None;
        }
        Some(disk)
    }

    /// Mounts the image on `dir` and finds its loop device's trigger; false when it cannot.
    fn attach(&self) -> bool {
        let mounted = std::process::Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted && self.device_trigger().is_some()
    }

    fn device_trigger(&self) -> Option<PathBuf> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        let dir = self.dir.to_string_lossy();
        let device = mounts.lines().find(|l| l.split(' ').nth(1) == Some(&*dir))?.split(' ').next()?;
        let trigger = Path::new("/sys/fs/ext4").join(device.strip_prefix("/dev/")?).join("trigger_fs_error");
        trigger.exists().then_some(trigger)
    }

    /// Raises an ext4 error: the file system is read-only from now on, open files included.
    fn fail(&self) {
        let trigger = self.device_trigger().expect("the disk's trigger_fs_error");
        std::fs::write(trigger, "1").expect("trigger_fs_error");
    }

    /// Unmounts, repairs and mounts the disk again, writable.
    fn repair(&self) {
        let unmounted = std::process::Command::new("umount").arg(&self.dir).status().unwrap();
        assert!(unmounted.success(), "umount {}", self.dir.display());
        // e2fsck: 0 clean, 1 errors corrected, 2 corrected and a reboot advised (not for a loop image).
        let checked = std::process::Command::new("e2fsck").arg("-fy").arg(&self.image).output().unwrap();
        assert!(matches!(checked.status.code(), Some(0..=2)), "e2fsck: {}", String::from_utf8_lossy(&checked.stdout));
        assert!(self.attach(), "mount {} again", self.image.display());
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// The state directory's disk fails in the middle of a run under exactly_once_v2 and the kernel makes
/// it read-only: the instance stops with an error naming the store whose files could not be written
/// and the read-only file system; once the disk is repaired, a new start restores and the totals go on
/// exactly, nothing lost and nothing counted twice.
pub(crate) fn a_state_disk_that_turns_read_only_mid_run_is_a_clear_error_and_loses_nothing() -> anyhow::Result<()> {
    let Some(disk) = FailingDisk::mount(64) else {
        eprintln!(
            "NOT RUN: a_state_disk_that_turns_read_only_mid_run_is_a_clear_error_and_loses_nothing mounts an ext4 \
             image on a loop device: run it as root on a machine with loop devices and mkfs.ext4"
        );
        return Ok(());
    };
    let (input, output) = (kafka::unique("rodisk-orders"), kafka::unique("rodisk-totals"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app = kafka::unique("rodisk-app");
    let config = || {
        let mut config = kafka::config(&app);
        config.state_dir = disk.dir.clone();
        config.processing_guarantee = kstreams::config::ProcessingGuarantee::ExactlyOnceV2;
        config.consumer_overrides.insert("session.timeout.ms".into(), "6000".into());
        config
    };
    let mut expected = BTreeMap::new();

    let mut streams = kafka::streams(totals_topology(&input, &output)?, config())?;
    streams.start()?;
    kafka::produce(&input, orders(&input, 0, 1_000, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected);
    disk.fail();
    // Past a checkpoint's worth of changelog records the store's memtables must go to disk.
    kafka::produce(&input, orders(&input, 1_000, 12_000, &mut expected));
    assert!(streams.wait_for_state(State::Error, Duration::from_secs(120)), "the instance stops on the read-only disk");
    let error = kstreams::handler::error_chain(&streams.take_error().expect("the error that stopped it"));
    assert!(error.contains("Read-only file system"), "{error}");
    assert!(
        error.contains(STORE) || error.contains(&*disk.dir.to_string_lossy()),
        "names the store or the directory: {error}"
    );
    let _ = streams.close();
    drop(streams);

    disk.repair();
    let mut streams = kafka::streams(totals_topology(&input, &output)?, config())?;
    streams.start()?;
    kafka::produce(&input, orders(&input, 12_000, 12_500, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected, "exact totals after the disk was repaired");
    streams.close()?;
    Ok(())
}

/// The changelog of the totals store, partition 0, read until it holds `at_least` records.
fn changelog_records(app: &str, at_least: usize) -> Vec<RawRecord> {
    let changelog = format!("{app}-{STORE}-changelog");
    kafka::consume_until(&changelog, Duration::from_secs(60), |records| records.len() >= at_least)
}

fn epoch_of(record: &RawRecord) -> Option<i32> {
    let bytes = record.headers.last(OWNER_EPOCH_HEADER)??;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// at_least_once: a write of a former owner that reaches the changelog after a newer owner's (an instance
/// paused past its session, whose request in flight was sent again at resume) is skipped by the next
/// restore, from a checkpoint and in full, and the new owner writes the key's value again over it; unless
/// nothing else holds the key, when it is all there is.
pub(crate) fn a_former_owners_late_changelog_write_is_skipped_by_restores_and_written_over() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("late-orders"), kafka::unique("late-totals"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app = kafka::unique("late-app");
    let changelog = format!("{app}-{STORE}-changelog");
    let state_dir = std::env::temp_dir().join(kafka::unique("late-state"));
    let mut expected = BTreeMap::new();
    let run = |state_dir: &Path, from: u64, to: u64, expected: &mut BTreeMap<i64, i64>| -> anyhow::Result<u64> {
        let restores = Restores::default();
        let mut streams = start(totals_topology(&input, &output)?, &app, state_dir, &restores)?;
        kafka::produce(&input, orders(&input, from, to, expected));
        assert_eq!(wait_for_totals(&output, expected), *expected);
        streams.close()?;
        Ok(restores.restored())
    };

    // Two owners in turn (a restart opens a new ownership, with a higher epoch).
    run(&state_dir, 0, 170, &mut expected)?;
    run(&state_dir, 170, 340, &mut expected)?;
    let written = changelog_records(&app, 340);
    let epochs: Vec<Option<i32>> = written.iter().map(epoch_of).collect();
    assert_eq!(epochs[0], Some(0), "the first owner stamps epoch 0");
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "one owner after the other: {epochs:?}");
    let newest = epochs.last().unwrap().expect("stamped");
    assert!(newest > 0, "the second owner stamps a higher epoch: {epochs:?}");

    // The first owner's write of customer 3, arriving again now: a late write under epoch 0.
    let customer = to_bytes(&*i64::default_serde(), &input, &3i64).unwrap();
    let late = written.iter().find(|r| r.key == customer).expect("customer 3 was written").clone();
    // And one of a key that nothing else holds (as if compaction had removed the newer owner's record
    // of it): all that is left of that key, so it is applied.
    let orphan = to_bytes(&*i64::default_serde(), &input, &99i64).unwrap();
    let mut producer = kafka::supplier().producer(&kafka::config("late-writer"), "late-writer", None)?;
    for key in [&late.key, &orphan] {
        producer.send(&ProducedRecord {
            topic: changelog.as_str().into(),
            partition: Some(0),
            key: key.clone(),
            value: late.value.clone(),
            timestamp: late.timestamp,
            headers: late.headers.clone(),
        })?;
    }
    producer.flush(Duration::from_secs(30))?;
    let late_offset = changelog_records(&app, written.len() + 2).last().unwrap().offset - 1;

    // Restored from the checkpoint: the two late writes are all there is to replay. Customer 3's is
    // skipped, and the totals carry on from the right value (customer 3 would be short otherwise); the
    // orphan's is applied.
    let restored = run(&state_dir, 340, 510, &mut expected)?;
    assert_eq!(restored, 2, "only the late writes were after the checkpoint");
    let orphan_row = store_contents(&state_dir, &app).into_iter().find(|(_, k, _)| Some(k) == orphan.as_ref());
    assert_eq!(orphan_row.map(|(_, _, v)| Some(v)), Some(late.value.clone()), "the orphan's late write was applied");
    let after = changelog_records(&app, written.len() + 3);
    let rewrite = after.iter().find(|r| r.offset > late_offset && r.key == customer).expect("customer 3 written again");
    assert!(epoch_of(rewrite) > Some(newest), "written again under the third owner's epoch: {:?}", epoch_of(rewrite));
    assert_ne!(rewrite.value, late.value, "the rewrite carries the current total, not the late one");

    // A fresh instance restores the whole changelog, late write included, and is exact too.
    let fresh_dir = std::env::temp_dir().join(kafka::unique("late-state-fresh"));
    let restored = run(&fresh_dir, 510, 680, &mut expected)?;
    assert!(restored > 0);
    let _ = std::fs::remove_dir_all(&state_dir);
    let _ = std::fs::remove_dir_all(&fresh_dir);
    Ok(())
}

pub(crate) fn the_record_cache_sends_the_latest_total_per_key_at_each_commit() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("cache-orders"), kafka::unique("cache-totals"));
    kafka::create_topics(&[(&input, 2), (&output, 2)]);
    let app = kafka::unique("cache-app");
    let mut config = kafka::config(&app);
    config.cache_max_bytes = 10 << 20; // Kafka Streams' default
    config.commit_interval = Some(Duration::from_secs(2));
    let mut streams = kafka::streams(totals_topology(&input, &output)?, config)?;
    streams.start()?;
    anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    let mut expected = BTreeMap::new();
    kafka::produce(&input, orders(&input, 0, 3_000, &mut expected));
    assert_eq!(wait_for_totals(&output, &expected), expected, "the final totals are exact");
    streams.close()?;
    let records = kafka::consume_until(&output, Duration::from_secs(5), |r| r.len() >= 3_000);
    assert!(
        records.len() < 3_000 / 10,
        "3,000 updates of 17 keys within a few commits should leave far fewer records, got {}",
        records.len()
    );
    assert_eq!(streams.metrics().processed_records, 3_000);
    Ok(())
}

/// Session counts (gap 20 ms), sliding-window counts (difference 100 ms) and a cogroup (the orders'
/// values plus 1,000 per order, from two groupings of the orders) of the same orders, each window
/// written as `key@start..end`, each cogrouped key as it is: the app of the record-cache scenario below.
fn cached_aggregations_topology(orders: &str, outputs: &[String; 3]) -> anyhow::Result<Topology> {
    use kstreams::dsl::{SessionWindows, SlidingWindows, Windowed};
    let builder = StreamsBuilder::new();
    let stream = builder.stream::<i64, i64>(orders);
    let grouped = stream.group_by_key();
    let label =
        |w: Windowed<i64>, count: Option<i64>| (format!("{}@{}..{}", w.key, w.window.start, w.window.end), count);
    grouped
        .clone()
        .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(20)))
        .count()
        .to_stream()
        .map(label)
        .to(&outputs[0]);
    grouped
        .clone()
        .windowed_by(SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(100)))
        .count()
        .to_stream()
        .map(label)
        .to(&outputs[1]);
    let orders_again = stream.map_values(|v| v * 2).group_by_key();
    grouped
        .cogroup(|_, value, total: i64| total + value)
        .cogroup(&orders_again, |_, _, total| total + 1_000)
        .aggregate(|| 0)
        .to_stream()
        .map(|key, total| (key.to_string(), total))
        .to(&outputs[2]);
    Ok(builder.build()?)
}

/// Each window's (or key's) latest value among `records`: those whose latest is a value, not a tombstone.
fn windows_ending_on(records: impl IntoIterator<Item = (String, Option<i64>)>) -> BTreeMap<String, i64> {
    let latest: BTreeMap<String, Option<i64>> = records.into_iter().collect();
    latest.into_iter().filter_map(|(window, count)| Some((window, count?))).collect()
}

/// `records` of `topic` decoded as [`cached_aggregations_topology`] writes them.
fn decode_counts<'a>(topic: &'a str, records: &'a [RawRecord]) -> impl Iterator<Item = (String, Option<i64>)> + 'a {
    records.iter().map(move |r| {
        let window = from_bytes(&*String::default_serde(), topic, r.key.as_deref()).unwrap().expect("keyed");
        (window, from_bytes(&*i64::default_serde(), topic, r.value.as_deref()).unwrap())
    })
}

/// Session, sliding-window and cogrouped aggregations keep their updates in the record cache too (the
/// cogroup's two nodes share one): 3,000 orders of 17 customers within a few commits reach the outputs
/// as far fewer records than without the cache (where every session merge is a tombstone and an
/// update), and every window and key ends on the value the test driver, with no cache, computes for
/// the same records.
pub(crate) fn session_sliding_and_cogrouped_aggregations_with_the_record_cache_end_on_the_uncached_values(
) -> anyhow::Result<()> {
    use kstreams::testing::TopologyTestDriver;
    let input = kafka::unique("cache-agg-in");
    let outputs = [kafka::unique("cache-sessions"), kafka::unique("cache-sliding"), kafka::unique("cache-cogroup")];
    kafka::create_topics(&[(&input, 2), (&outputs[0], 1), (&outputs[1], 1), (&outputs[2], 1)]);
    let records = orders(&input, 0, 3_000, &mut BTreeMap::new());

    // The model: the test driver, no cache, the same records with the same timestamps (`kafka::produce`
    // stamps the i-th record 1_700_000_000_000 + i; rising, so no record is late on either side).
    let mut driver = TopologyTestDriver::new(cached_aggregations_topology(&input, &outputs)?)?;
    for (i, (key, value)) in records.iter().enumerate() {
        driver.pipe_raw(&input, key.clone(), value.clone(), 1_700_000_000_000 + i as i64)?;
    }
    let mut expected = Vec::new();
    for output in &outputs {
        let model = driver.read_key_values(&driver.output_topic::<String, Option<i64>>(output));
        expected.push((model.len(), windows_ending_on(model)));
    }

    let mut config = kafka::config(&kafka::unique("cache-agg-app"));
    config.cache_max_bytes = 10 << 20; // Kafka Streams' default
    config.commit_interval = Some(Duration::from_secs(2));
    let mut streams = kafka::streams(cached_aggregations_topology(&input, &outputs)?, config)?;
    streams.start()?;
    anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    kafka::produce(&input, records);
    let mut read = Vec::new();
    for (output, (_, expected)) in outputs.iter().zip(&expected) {
        let ends_on = |r: &[RawRecord]| windows_ending_on(decode_counts(output, r)) == *expected;
        read.push(kafka::consume_until(output, Duration::from_secs(120), ends_on));
    }
    streams.close()?;
    // The uncached figures at most: sessions 1/10 (a tombstone and an update per order), sliding
    // windows 1/2 (each updated several times), the cogroup 1/10 (an update per order).
    for ((output, (uncached, expected)), (records, at_most)) in
        outputs.iter().zip(&expected).zip(read.iter().zip([10, 2, 10]))
    {
        assert_eq!(&windows_ending_on(decode_counts(output, records)), expected, "the final values of {output}");
        assert!(
            records.len() < uncached / at_most,
            "{output}: {} records with the cache, {uncached} without",
            records.len()
        );
    }
    Ok(())
}

/// A source table's store has the record cache in front of it too (Kafka Streams' default): 3,000
/// updates of 17 keys within a few commits reach the output as far fewer records, ending on each key's
/// last value.
pub(crate) fn a_source_table_with_the_record_cache_sends_the_latest_value_per_key_at_each_commit() -> anyhow::Result<()>
{
    let (input, output) = (kafka::unique("cache-table-in"), kafka::unique("cache-table-out"));
    kafka::create_topics(&[(&input, 2), (&output, 2)]);
    let mut config = kafka::config(&kafka::unique("cache-table-app"));
    config.cache_max_bytes = 10 << 20; // Kafka Streams' default
    config.commit_interval = Some(Duration::from_secs(2));
    let builder = StreamsBuilder::new();
    builder.table::<i64, i64>(&input).to_stream().to(&output);
    let mut streams = kafka::streams(builder.build()?, config)?;
    streams.start()?;
    anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    let updates = orders(&input, 0, 3_000, &mut BTreeMap::new());
    let expected: BTreeMap<i64, i64> = (0..3_000u64).map(|id| ((id % 17) as i64, (id % 50 + 1) as i64)).collect();
    kafka::produce(&input, updates);
    assert_eq!(wait_for_totals(&output, &expected), expected, "each key ends on its last value");
    streams.close()?;
    let records = kafka::consume_until(&output, Duration::from_secs(5), |r| r.len() >= 3_000);
    assert!(records.len() < 3_000 / 10, "3,000 updates of 17 keys left {} records", records.len());
    assert_eq!(streams.metrics().processed_records, 3_000);
    Ok(())
}

/// Per-customer totals by a Processor-API processor in a store built with caching: it forwards every
/// new total, and reads its own cached writes.
struct CachedTotals(Option<kstreams::processor::StoreHandle<i64, i64>>);

impl Processor<i64, i64, i64, i64> for CachedTotals {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, i64, i64>) -> Result<(), StreamsError> {
        self.0 = Some(ctx.store_handle("cached-totals")?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, i64, i64>,
        record: Record<i64, i64>,
    ) -> Result<(), StreamsError> {
        let store = ctx.store_mut(self.0.expect("init"))?;
        let total = store.get(&record.key)?.unwrap_or(0) + record.value;
        store.put(&record.key, &total)?;
        ctx.forward(Record::new(record.key, total, record.timestamp))
    }
}

/// A store built `with_caching_enabled()` writes each key to its changelog once per commit, however
/// often the processor updated it, and what the changelog ends on is exact: a second instance with an
/// empty state directory restores it and goes on with exact totals.
pub(crate) fn a_processor_api_store_with_caching_logs_each_key_once_per_commit() -> anyhow::Result<()> {
    use kstreams::serde::I64Serde;
    use kstreams::store::Stores;
    let (input, output) = (kafka::unique("papi-orders"), kafka::unique("papi-totals"));
    kafka::create_topics(&[(&input, 2), (&output, 2)]);
    let app = kafka::unique("papi-cache-app");
    let topology = || -> anyhow::Result<Topology> {
        let mut topology = Topology::new();
        topology
            .add_source("orders", &[input.as_str()], Arc::new(I64Serde), Arc::new(I64Serde))?
            .add_processor("totals", || CachedTotals(None), &["orders"])?
            .add_state_store(
                Stores::key_value_store_builder(
                    Stores::persistent_key_value_store("cached-totals"),
                    Arc::new(I64Serde),
                    Arc::new(I64Serde),
                )
                .with_caching_enabled(),
                &["totals"],
            )?
            .add_sink("out", &output, Arc::new(I64Serde), Arc::new(I64Serde), &["totals"])?;
        Ok(topology)
    };
    // Runs an instance over orders `from..to` on top of `totals`; returns the new totals, checked exact.
    let run = |totals: &BTreeMap<i64, i64>, from: u64, to: u64| -> anyhow::Result<BTreeMap<i64, i64>> {
        let mut config = kafka::config(&app);
        config.cache_max_bytes = 10 << 20;
        config.commit_interval = Some(Duration::from_secs(2));
        let mut streams = kafka::streams(topology()?, config)?;
        streams.start()?;
        anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
        let mut expected = totals.clone();
        kafka::produce(&input, orders(&input, from, to, &mut expected));
        assert_eq!(wait_for_totals(&output, &expected), expected, "every total exact");
        streams.close()?;
        Ok(expected)
    };
    let totals = run(&BTreeMap::new(), 0, 3_000)?;
    let changelog = format!("{app}-cached-totals-changelog");
    let logged = kafka::consume_until(&changelog, Duration::from_secs(5), |r| r.len() >= 3_000);
    assert!(
        !logged.is_empty() && logged.len() < 3_000 / 10,
        "3,000 updates of 17 keys within a few commits should be logged far fewer times, got {}",
        logged.len()
    );
    // A second instance, with a fresh state directory (kafka::config makes one), restores the store from
    // the changelog and goes on from the exact totals.
    run(&totals, 3_000, 4_000)?;
    Ok(())
}

pub(crate) fn two_instances_cannot_share_a_state_directory() -> anyhow::Result<()> {
    let (input, output) = (kafka::unique("lock-orders"), kafka::unique("lock-totals"));
    kafka::create_topics(&[(&input, 1), (&output, 1)]);
    let app = kafka::unique("lock-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("lock-state"));
    let restores = Restores::default();
    let mut first = start(totals_topology(&input, &output)?, &app, &state_dir, &restores)?;
    let mut config = kafka::config(&app);
    config.state_dir = state_dir.clone();
    let mut second = kafka::streams(totals_topology(&input, &output)?, config)?;
    let error = second.start().unwrap_err().to_string();
    assert!(error.contains(&app) && error.contains("another instance"), "{error}");
    assert!(first.clean_up().is_err(), "no wiping while running");
    first.close()?;
    first.clean_up()?;
    assert!(task_dirs(&state_dir, &app).is_empty(), "clean_up deletes the task directories");
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// Orders (order id → product id) left-joined with the global table of `products` (product id → name):
/// `<product>:<name>` on `out`, `?` for a product the table does not have.
fn product_names_topology(orders: &str, products: &str, out: &str) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    let names = builder.global_table::<String, String>(products);
    builder
        .stream::<String, String>(orders)
        .left_join_global(
            &names,
            |_, product| product.clone(),
            |product, name| format!("{product}:{}", name.map_or("?", String::as_str)),
        )
        .to(out);
    Ok(builder.build()?)
}

/// A global table of products (3 partitions) joined with orders (2 partitions, keyed by order id, so not
/// co-partitioned with anything): the instance reads every product before it processes an order (orders
/// written before the start all find their product), keeps following the products (a rename reaches
/// later orders), and a restart of its persistent store reads only what its checkpoint does not cover.
pub(crate) fn a_global_table_is_read_whole_before_processing_and_followed() -> anyhow::Result<()> {
    let prefix = kafka::unique("global");
    let (orders, products, out) = (format!("{prefix}-orders"), format!("{prefix}-products"), format!("{prefix}-out"));
    kafka::create_topics(&[(&orders, 2), (&products, 3), (&out, 1)]);
    let app = kafka::unique("global-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("global-state"));
    let bytes = |s: String| Some(s.into_bytes());
    kafka::produce(&products, (0..30).map(|p| (bytes(format!("p{p}")), bytes(format!("name{p}")))));
    kafka::produce(&orders, (0..30).map(|o| (bytes(format!("o{o}")), bytes(format!("p{o}")))));
    let topology = || product_names_topology(&orders, &products, &out);
    let latest = |records: &[RawRecord]| -> BTreeMap<String, String> {
        let decode = |b: Option<&[u8]>| from_bytes(&*String::default_serde(), &out, b).unwrap().expect("not null");
        records.iter().map(|r| (decode(r.key.as_deref()), decode(r.value.as_deref()))).collect()
    };

    let restores = Restores::default();
    let streams = start(topology()?, &app, &state_dir, &restores)?;
    let expected: BTreeMap<String, String> = (0..30).map(|o| (format!("o{o}"), format!("p{o}:name{o}"))).collect();
    let read = kafka::consume_until(&out, Duration::from_secs(60), |r| latest(r) == expected);
    assert_eq!(latest(&read), expected, "every order found its product: the table was whole before the first order");
    assert_eq!(restores.restored(), 30, "the bootstrap read every product");

    // A rename reaches later orders: the global thread follows the topic.
    kafka::produce(&products, [(bytes("p7".into()), bytes("renamed".into()))]);
    let mut n = 100;
    let found = loop {
        kafka::produce(&orders, [(bytes(format!("o{n}")), bytes("p7".into()))]);
        let key = format!("o{n}");
        let read = kafka::consume_until(&out, Duration::from_secs(10), |r| latest(r).contains_key(&key));
        if latest(&read).get(&key).map(String::as_str) == Some("p7:renamed") {
            break true;
        }
        n += 1;
        if n > 160 {
            break false;
        }
        // The global thread looks for new records every 100 ms when it has read everything.
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(found, "the rename never reached an order");
    drop(streams);

    // Restarted on the same state directory: only the product written since the checkpoint is read.
    kafka::produce(&products, [(bytes("p8".into()), bytes("renamed too".into()))]);
    let restores = Restores::default();
    let streams = start(topology()?, &app, &state_dir, &restores)?;
    assert_eq!(restores.restored(), 1, "the checkpoint covered the rest: {:?}", restores.0.lock().unwrap());
    kafka::produce(&orders, [(bytes("o200".into()), bytes("p8".into()))]);
    let read = kafka::consume_until(&out, Duration::from_secs(60), |r| latest(r).contains_key("o200"));
    assert_eq!(latest(&read).get("o200").map(String::as_str), Some("p8:renamed too"));
    drop(streams);
    Ok(())
}

/// A record of a global table's topic that cannot be read fails the bootstrap under the default
/// `LogAndFail`: `start()` returns the error naming the record, and the instance is in `Error`, as Kafka
/// Streams' is when its global thread dies.
pub(crate) fn an_unreadable_global_record_fails_the_start_naming_it() -> anyhow::Result<()> {
    let prefix = kafka::unique("global-bad");
    let (prices, orders, out) = (format!("{prefix}-prices"), format!("{prefix}-orders"), format!("{prefix}-out"));
    kafka::create_topics(&[(&prices, 1), (&orders, 1), (&out, 1)]);
    // Three bytes are no i64.
    kafka::produce(&prices, [(Some(b"p1".to_vec()), Some(vec![1, 2, 3]))]);
    let builder = StreamsBuilder::new();
    let table = builder.global_table::<String, i64>(&prices);
    builder.stream::<String, String>(&orders).join_global(&table, |_, p| p.clone(), |_, price| *price).to(&out);
    let mut streams = kafka::streams(builder.build()?, kafka::config(&kafka::unique("global-bad-app")))?;
    let error = streams.start().expect_err("the record cannot be read").to_string();
    assert!(error.contains(&format!("the value of the record at {prices}-0 offset 0")), "{error}");
    assert_eq!(streams.state(), State::Error);
    Ok(())
}

/// A topology of nothing but a global store kept by a processor of our own
/// (`StreamsBuilder::add_global_store`): the instance reads every record of the topic through the
/// processor before it is RUNNING, with no stream task and no consumer group to wait for, keeps
/// following the topic, and a restart on the same state directory reads only what the store's
/// checkpoint does not cover.
pub(crate) fn a_global_only_topology_runs_its_global_store_alone() -> anyhow::Result<()> {
    struct Upper(Arc<Mutex<Vec<String>>>);
    impl Processor<String, String, (), ()> for Upper {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, (), ()>,
            record: Record<String, String>,
        ) -> Result<(), StreamsError> {
            self.0.lock().unwrap().push(record.key.clone());
            let store = ctx.store_handle::<String, String>("codes")?;
            ctx.store_mut(store)?.put(&record.key, &record.value.to_uppercase())
        }
    }
    let codes = kafka::unique("global-only-codes");
    kafka::create_topics(&[(&codes, 2)]);
    let app = kafka::unique("global-only-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("global-only-state"));
    let bytes = |s: String| Some(s.into_bytes());
    kafka::produce(&codes, (0..20).map(|c| (bytes(format!("c{c}")), bytes(format!("code{c}")))));
    let topology = |seen: &Arc<Mutex<Vec<String>>>| -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        let store = Stores::key_value_store_builder(
            Stores::persistent_key_value_store("codes"),
            Arc::new(StringSerde),
            Arc::new(StringSerde),
        );
        let seen = seen.clone();
        let serdes = Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde));
        builder.add_global_store(store, &codes, serdes, move || Upper(seen.clone()));
        Ok(builder.build()?)
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let restores = Restores::default();
    let streams = start(topology(&seen)?, &app, &state_dir, &restores)?;
    assert_eq!(seen.lock().unwrap().len(), 20, "the bootstrap ran every record through the processor");
    assert_eq!(restores.restored(), 20);

    kafka::produce(&codes, (20..25).map(|c| (bytes(format!("c{c}")), bytes(format!("code{c}")))));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 25 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen.lock().unwrap().len(), 25, "the global thread follows the topic");
    assert_eq!(streams.state(), State::Running);
    drop(streams);

    kafka::produce(&codes, [(bytes("c99".into()), bytes("late".into()))]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let restores = Restores::default();
    let streams = start(topology(&seen)?, &app, &state_dir, &restores)?;
    assert_eq!(*seen.lock().unwrap(), vec!["c99".to_string()], "only what the checkpoint did not cover");
    drop(streams);
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// A versioned store (KIP-889) through the Processor API: its changelog is compacted and keeps the
/// history for the retention plus a day, and a new instance with no local state restores every version
/// from it, so that lookups as of past times answer as before.
pub(crate) fn a_versioned_store_restores_its_history_from_the_changelog() -> anyhow::Result<()> {
    let prefix = kafka::unique("versioned");
    let topics = ["prices", "orders", "puts", "answers"].map(|t| format!("{prefix}-{t}"));
    let [prices, orders, puts, answers] = &topics;
    kafka::create_topics(&[(prices, 1), (orders, 1), (puts, 1), (answers, 1)]);
    let app = kafka::unique("versioned-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("versioned-state"));
    let tea = || Some(b"tea".to_vec());
    let price = |p: i64| Some(p.to_be_bytes().to_vec());
    // Recent times: the topics' time-based retention must not take the records.
    const T: i64 = 1_700_000_000_000;
    kafka::produce_at(
        prices,
        [
            (tea(), price(3), T + 1_000),
            (tea(), price(5), T + 10_000),
            (tea(), price(4), T + 5_000),
            (tea(), price(9), T + 80_000),
        ],
    );
    let values = |records: &[RawRecord]| -> Vec<i64> {
        records
            .iter()
            .map(|r| from_bytes(&*i64::default_serde(), puts, r.value.as_deref()).unwrap().expect("a value"))
            .collect()
    };
    let topology = || versioned_topology::prices_topology(prices, orders, puts, answers);

    let streams = start(topology()?, &app, &state_dir, &Restores::default())?;
    let written = kafka::consume_until(puts, Duration::from_secs(60), |r| r.len() >= 4);
    assert_eq!(values(&written), vec![-1, -1, T + 10_000, -1], "what each put returned");
    // The embedded broker keeps no topic configs but the cleanup policy.
    if let Some(changelog) = kafka::topic_config(&format!("{app}-prices-changelog")) {
        assert_eq!(changelog.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert_eq!(changelog.get("min.compaction.lag.ms").map(String::as_str), Some("86460000"));
    }
    drop(streams);

    std::fs::remove_dir_all(&state_dir)?;
    let restores = Restores::default();
    let streams = start(topology()?, &app, &state_dir, &restores)?;
    assert!(restores.restored() > 0, "restored from the changelog");
    kafka::produce_at(orders, [(tea(), Some(b"o1".to_vec()), T + 30_000), (tea(), Some(b"o2".to_vec()), T + 90_000)]);
    let read = kafka::consume_until(answers, Duration::from_secs(60), |r| r.len() >= 2);
    assert_eq!(values(&read), vec![5, 9], "the price as of 30 s came from the restored history");
    drop(streams);
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// A versioned table (KIP-914) and a stream-table join with a grace period (KIP-923): an order waits in
/// the join's buffer, the instance goes away with its local state, and a new one restores both the
/// buffer and the table's history from their changelogs; a price that arrives late, after the restart,
/// still prices the order that waited, as of the order's own time.
pub(crate) fn a_grace_buffer_and_a_versioned_table_are_restored_from_their_changelogs() -> anyhow::Result<()> {
    let prefix = kafka::unique("grace");
    let topics = ["prices", "orders", "totals"].map(|t| format!("{prefix}-{t}"));
    let [prices, orders, totals] = &topics;
    kafka::create_topics(&[(prices, 1), (orders, 1), (totals, 1)]);
    let app = kafka::unique("grace-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("grace-state"));
    let tea = || Some(b"tea".to_vec());
    let long = |v: i64| Some(v.to_be_bytes().to_vec());
    const T: i64 = 1_700_000_000_000;
    let topology = || versioned_topology::priced_orders_topology(prices, orders, totals);

    let streams = start(topology()?, &app, &state_dir, &Restores::default())?;
    kafka::produce_at(prices, [(tea(), long(3), T + 1_000)]);
    kafka::produce_at(orders, [(tea(), long(2), T + 5_000)]);
    // The order is buffered: its entry and the buffer's state row reach the changelog.
    let buffer_changelog = format!("{app}-priced-Buffer-changelog");
    let logged = kafka::consume_until(&buffer_changelog, Duration::from_secs(60), |r| r.len() >= 2);
    assert!(logged.len() >= 2, "the buffered order is logged: {logged:?}");
    drop(streams);
    if let Some(config) = kafka::topic_config(&buffer_changelog) {
        assert_eq!(config.get("cleanup.policy").map(String::as_str), Some("compact"));
    }

    std::fs::remove_dir_all(&state_dir)?;
    let restores = Restores::default();
    let streams = start(topology()?, &app, &state_dir, &restores)?;
    assert!(restores.restored() > 0, "restored from the changelogs");
    kafka::produce_at(prices, [(tea(), long(4), T + 4_000)]); // late, within the history
    kafka::produce_at(orders, [(tea(), long(1), T + 20_000)]); // the stream passes 5 s + 10 s
    let read = kafka::consume_until(totals, Duration::from_secs(60), |r| !r.is_empty());
    let values: Vec<(i64, i64)> = read
        .iter()
        .map(|r| (from_bytes(&*i64::default_serde(), totals, r.value.as_deref()).unwrap().unwrap(), r.timestamp))
        .collect();
    assert_eq!(values, vec![(8, T + 5_000)], "the waiting order, priced as of 5 s with the late price");
    drop(streams);
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// Under exactly-once a global table reads its topic `read_committed` up to the last stable offset, as
/// Kafka Streams' global consumer does: a producer of the global topic that keeps a transaction open
/// holds back only its own records, never the instance's start (which would otherwise wait for the
/// transaction to end, or fail once the read timed out); the records come when it commits.
pub(crate) fn a_transaction_left_open_on_a_global_topic_holds_back_only_its_records() -> anyhow::Result<()> {
    let prefix = kafka::unique("global-txn");
    let (orders, products, out) = (format!("{prefix}-orders"), format!("{prefix}-products"), format!("{prefix}-out"));
    kafka::create_topics(&[(&orders, 1), (&products, 1), (&out, 1)]);
    let app = kafka::unique("global-txn-app");
    let state_dir = std::env::temp_dir().join(kafka::unique("global-txn-state"));
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    kafka::produce(&products, [(bytes("p1"), bytes("tea"))]);
    // A transaction that stays open for longer than the test, unless committed.
    let mut producer_config = kafka::config("global-txn-producer");
    producer_config.producer_overrides.insert("transaction.timeout.ms".into(), "120000".into());
    let mut producer =
        kafka::supplier().producer(&producer_config, "global-txn-producer", Some(&format!("{prefix}-txn")))?;
    producer.init_transactions(Duration::from_secs(30))?;
    producer.begin_transaction()?;
    let record = |key: &str, value: &str| ProducedRecord {
        topic: products.as_str().into(),
        partition: None,
        key: bytes(key),
        value: bytes(value),
        timestamp: 1_700_000_000_000,
        headers: Default::default(),
    };
    producer.send(&record("p2", "coffee"))?;
    producer.flush(Duration::from_secs(30))?;

    let mut config = kafka::config(&app);
    config.state_dir = state_dir.clone();
    config.processing_guarantee = kstreams::config::ProcessingGuarantee::ExactlyOnceV2;
    let mut streams = kafka::streams(product_names_topology(&orders, &products, &out)?, config)?;
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, Duration::from_secs(30)), "RUNNING with the transaction open");

    let values = |records: &[RawRecord]| -> Vec<String> {
        let decode = |b: Option<&[u8]>| from_bytes(&*String::default_serde(), &out, b).unwrap().expect("not null");
        records.iter().map(|r| decode(r.value.as_deref())).collect()
    };
    kafka::produce(&orders, [(bytes("o1"), bytes("p1")), (bytes("o2"), bytes("p2"))]);
    let read = kafka::consume_committed_until(&out, Duration::from_secs(60), |r| r.len() >= 2);
    assert_eq!(values(&read), vec!["p1:tea", "p2:?"], "the open transaction's product is not there yet");

    producer.commit_transaction(Duration::from_secs(30))?;
    let mut n = 3;
    let found = loop {
        kafka::produce(&orders, [(bytes(&format!("o{n}")), bytes("p2"))]);
        let read = kafka::consume_committed_until(&out, Duration::from_secs(10), |r| r.len() >= n);
        if values(&read).last().map(String::as_str) == Some("p2:coffee") {
            break true;
        }
        n += 1;
        if n > 60 {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(found, "the committed product never reached an order");
    drop(streams);
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// Hears a restore and makes it slow: each batch applied costs a second more.
#[derive(Clone, Default)]
struct SlowRestore {
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl StateRestoreListener for SlowRestore {
    /// Three seconds a batch: the whole restore (18 s) outlasts, with room to spare on a loaded
    /// machine, the first restore step (two batches) plus the test's reader joining its group and
    /// reading the small task's output. (ci48's failure here was the thread's: a poll that stopped at
    /// librdkafka's statistics events left the small task's record unread until the restore ended.)
    fn on_batch_restored(&self, _: &TopicPartition, _: &str, _: i64, _: u64) {
        std::thread::sleep(Duration::from_secs(3));
    }
    fn on_restore_end(&self, _: &TopicPartition, _: &str, _: u64) {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Restore in the thread's loop: a new instance, with an empty state directory, restores a count of
/// 60,000 keys (6 batches, made to take 3 seconds each), and meanwhile the same thread's other task,
/// which has nothing to restore, already processes: its output comes while the restore goes on and the
/// instance says REBALANCING, and an interactive query of the store says it is restoring (or, with
/// stale stores enabled, reads what is restored so far). That instance is closed before its restore ends: what it restored is
/// checkpointed, and the next instance on the same directory restores only the rest, is RUNNING once
/// done, and its counts go on from where they were.
pub(crate) fn a_task_runs_while_another_restores() -> anyhow::Result<()> {
    let prefix = kafka::unique("loop-restore");
    let (big, small, counts, copies) =
        (format!("{prefix}-big"), format!("{prefix}-small"), format!("{prefix}-counts"), format!("{prefix}-copies"));
    kafka::create_topics(&[(&big, 1), (&small, 1), (&counts, 1), (&copies, 1)]);
    let topology = || -> anyhow::Result<Topology> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>(&big)
            .group_by_key()
            .count_with(Materialized::as_store("big-counts"))
            .to_stream()
            .to(&counts);
        builder.stream::<String, String>(&small).map_values(|v| v.to_uppercase()).to(&copies);
        Ok(builder.build()?)
    };
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    kafka::produce(&big, (0..60_000).map(|i| (bytes(&format!("k{i}")), bytes("v"))));
    let app = kafka::unique("loop-restore-app");
    let config = |dir: &Path| -> anyhow::Result<kstreams::config::StreamsConfig> {
        let mut config = kafka::config(&app);
        config.state_dir = dir.to_path_buf();
        config.set("commit.interval.ms", "200")?;
        Ok(config)
    };
    let first_dir = std::env::temp_dir().join(kafka::unique("loop-restore-first"));
    let mut first = kafka::streams(topology()?, config(&first_dir)?)?;
    first.start()?;
    let counted = kafka::consume_until(&counts, Duration::from_secs(120), |r| r.len() >= 60_000);
    anyhow::ensure!(counted.len() >= 60_000, "the first instance counted {} keys", counted.len());
    first.close()?;

    let second_dir = std::env::temp_dir().join(kafka::unique("loop-restore-second"));
    let mut second = kafka::streams(topology()?, config(&second_dir)?)?;
    let restore = SlowRestore::default();
    second.set_global_state_restore_listener(restore.clone());
    second.start()?;
    kafka::produce(&small, [(bytes("a"), bytes("hello"))]);
    let copied = kafka::consume_until(&copies, Duration::from_secs(60), |r| !r.is_empty());
    let (ended, state) = (restore.ended.load(std::sync::atomic::Ordering::SeqCst), second.state());
    anyhow::ensure!(copied.len() == 1, "the small task's output never came");
    assert!(!ended, "the small task's output came before the restore ended");
    assert_eq!(state, State::Rebalancing, "a task restoring keeps the instance REBALANCING");
    // An interactive query says the store is restoring (ask again later), or reads what is restored so
    // far when stale stores are enabled.
    let query =
        || StoreQueryParameters::from_name_and_type("big-counts", QueryableStoreTypes::key_value::<String, i64>());
    let read = second.store(query())?.get(&"k7".into());
    let Err(StreamsError::StoreUnavailable { reason, .. }) = read else {
        panic!("a restoring store was read: {read:?}")
    };
    assert!(matches!(reason, StoreUnavailable::Restoring { .. }) && reason.is_retriable(), "{reason:?}");
    let restored_so_far = second.store(query().enable_stale_stores())?.all()?.len();
    assert!(
        restored_so_far > 0 && restored_so_far < 60_000,
        "{restored_so_far} keys read while restoring (the read waits for a restore step to end)"
    );
    second.close()?;
    assert!(!restore.ended.load(std::sync::atomic::Ordering::SeqCst), "closed before the restore ended");

    let mut third = kafka::streams(topology()?, config(&second_dir)?)?;
    let restores = Restores::default();
    third.set_global_state_restore_listener(restores.clone());
    third.start()?;
    anyhow::ensure!(third.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    let events = restores.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1, "one store restored: {events:?}");
    let (_, from, to, restored) = events[0].clone();
    assert!(from > 0 && restored < 60_000, "the restore went on from the checkpoint: {events:?}");
    assert_eq!(restored as i64, to - from, "and restored the rest");
    kafka::produce(&big, [(bytes("k7"), bytes("v"))]);
    let out = kafka::consume_until(&counts, Duration::from_secs(60), |r| r.len() > counted.len());
    let view = third.store(query())?;
    assert_eq!((view.get(&"k7".into())?, view.get(&"k8".into())?), (Some(2), Some(1)), "queried after the restore");
    third.close()?;
    let last = out.last().expect("a count");
    assert_eq!(from_bytes(&*String::default_serde(), &counts, last.key.as_deref())?, Some("k7".to_string()));
    assert_eq!(
        from_bytes(&*i64::default_serde(), &counts, last.value.as_deref())?,
        Some(2),
        "restored, then counted on"
    );
    for dir in [first_dir, second_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// Interactive queries on a running instance with two stream threads: per-customer totals (4
/// partitions, exactly_once_v2) read from outside the threads, whole and by partition, every customer
/// found with the total the output topic ends on; a global table read the same way; a store the
/// topology does not have, or asked with other types, is an error that says so; once closed, a
/// clear error.
pub(crate) fn interactive_queries_read_every_local_partition_and_global_stores() -> anyhow::Result<()> {
    let prefix = kafka::unique("iq");
    let (orders, totals, products) =
        (format!("{prefix}-orders"), format!("{prefix}-totals"), format!("{prefix}-products"));
    kafka::create_topics(&[(&orders, 4), (&totals, 1), (&products, 1)]);
    let topology = {
        let builder = StreamsBuilder::new();
        builder
            .stream::<i64, i64>(&orders)
            .group_by_key()
            .reduce_with(|a, b| a + b, Materialized::as_store("totals"))
            .to_stream()
            .to(&totals);
        builder.global_table_with::<String, String>(
            &products,
            Consumed::with(String::default_serde(), String::default_serde()),
            Materialized::as_store("products"),
        );
        builder.build()?
    };
    let bytes = |s: &str| Some(s.as_bytes().to_vec());
    kafka::produce(&products, [(bytes("p1"), bytes("tea")), (bytes("p2"), bytes("cake"))]);
    let mut expected = BTreeMap::new();
    kafka::produce(&orders, self::orders(&orders, 0, 2_000, &mut expected));
    let app = kafka::unique("iq-app");
    let mut config = kafka::config(&app);
    config.state_dir = std::env::temp_dir().join(kafka::unique("iq-state"));
    config.set("num.stream.threads", "2")?;
    config.set("processing.guarantee", "exactly_once_v2")?;
    config.set("commit.interval.ms", "200")?;
    let mut streams = kafka::streams(topology, config.clone())?;
    let not_started =
        streams.store(StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<i64, i64>()));
    assert!(
        matches!(not_started, Err(StreamsError::StoreUnavailable { reason: StoreUnavailable::NotStarted, .. })),
        "before the start"
    );
    streams.start()?;
    // The second thread may join the group a rebalance after the first: the reads below go across both
    // threads' tasks once each holds some (two of the four each, by range).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let threads = streams.metadata_for_local_threads();
        let spread = threads.len() == 2 && threads.iter().all(|t| !t.active_tasks.is_empty());
        if spread && streams.state() == State::Running {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the tasks never spread over both threads: {threads:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_totals(&totals, &expected);

    let view = streams
        .store(StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<i64, i64>()))?;
    // The output is read uncommitted: the last commit may still be on its way to the store's view.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut all = view.all()?;
    while all.iter().cloned().collect::<BTreeMap<_, _>>() != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        all = view.all()?;
    }
    assert_eq!(all, expected.clone().into_iter().collect::<Vec<_>>(), "every customer, in key order");
    for (customer, total) in &expected {
        assert_eq!(view.get(customer)?, Some(*total), "customer {customer}");
    }
    assert_eq!(view.get(&1_000)?, None, "no such customer");
    assert_eq!(view.range(&3, &5)?, expected.range(3..=5).map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
    let mut by_partition = Vec::new();
    for partition in 0..4 {
        let part = streams.store(
            StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<i64, i64>())
                .with_partition(partition),
        )?;
        by_partition.extend(part.all()?);
    }
    by_partition.sort();
    assert_eq!(by_partition, all, "the partitions' parts make the whole");

    let stamped = streams.store(StoreQueryParameters::from_name_and_type(
        "totals",
        QueryableStoreTypes::timestamped_key_value::<i64, i64>(),
    ))?;
    assert_eq!(stamped.get(&3)?.map(|v| v.value), expected.get(&3).copied());

    let names = streams.store(StoreQueryParameters::from_name_and_type(
        "products",
        QueryableStoreTypes::key_value::<String, String>(),
    ))?;
    assert_eq!(names.all()?, vec![("p1".to_string(), "tea".to_string()), ("p2".to_string(), "cake".to_string())]);

    let unknown =
        streams.store(StoreQueryParameters::from_name_and_type("nope", QueryableStoreTypes::key_value::<i64, i64>()));
    let Err(StreamsError::StoreUnavailable { reason, .. }) = unknown else { panic!("an unknown store was found") };
    assert!(matches!(reason, StoreUnavailable::Unknown(_)) && !reason.is_retriable(), "{reason:?}");
    let wrong = streams
        .store(StoreQueryParameters::from_name_and_type("totals", QueryableStoreTypes::key_value::<String, i64>()))?;
    let Err(StreamsError::StoreUnavailable { reason, .. }) = wrong.get(&"3".into()) else {
        panic!("read with other types")
    };
    assert!(matches!(reason, StoreUnavailable::Unknown(_)), "{reason:?}");

    streams.close()?;
    let Err(StreamsError::StoreUnavailable { reason, .. }) = view.get(&3) else { panic!("read after close") };
    assert_eq!(reason, StoreUnavailable::NotRunning { state: "NotRunning".into() });
    let _ = std::fs::remove_dir_all(&config.state_dir);
    Ok(())
}

/// Interactive queries of window and session stores: a windowed count's and a session count's (DSL)
/// and a Processor API window store, read from outside the stream threads across every local
/// partition, by key and time range, forward and backward, and refused when read as the other kind.
pub(crate) fn interactive_queries_read_window_and_session_stores() -> anyhow::Result<()> {
    const BASE: i64 = 1_700_000_000_000;
    const HOUR: Duration = Duration::from_secs(3600);
    let orders = kafka::unique("iqw-orders");
    kafka::create_topics(&[(&orders, 2)]);
    let topology = {
        let builder = StreamsBuilder::new();
        let grouped = builder.stream::<i64, i64>(&orders).group_by_key();
        grouped
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
            .count_with(Materialized::as_store("per-10s").with_retention(HOUR));
        grouped
            .windowed_by(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(7)))
            .count_with(Materialized::as_store("visits").with_retention(HOUR));
        let mut topology = builder.build()?;
        // A Processor API window store beside them: each order's value at its own timestamp.
        struct Put;
        impl Processor<i64, i64, i64, i64> for Put {
            fn process(
                &mut self,
                ctx: &mut ProcessorContext<'_, i64, i64>,
                r: Record<i64, i64>,
            ) -> Result<(), StreamsError> {
                ctx.window_store::<i64, i64>("papi")?.put(&r.key, &r.value, r.timestamp)
            }
        }
        topology.add_processor("put", || Put, &["KSTREAM-SOURCE-0000000000"])?;
        let supplier = Stores::persistent_window_store("papi", HOUR, Duration::from_secs(10), false)?;
        topology.add_state_store(
            Stores::window_store_builder(supplier, i64::default_serde(), i64::default_serde()),
            &["put"],
        )?;
        topology
    };
    // Two bursts of orders, a second apart within each: customer `i % 6`, value `i`. Each customer's
    // orders are 6 s apart, within the sessions' 7 s gap, so each burst is one session per customer.
    let times: Vec<(i64, i64, i64)> =
        (0..60).map(|i| (i % 6, i, BASE + if i < 30 { i * 1_000 } else { 100_000 + (i - 30) * 1_000 })).collect();
    let serde = i64::default_serde();
    let bytes = |v: i64| to_bytes(&*serde, &orders, &v).unwrap();
    kafka::produce_at(&orders, times.iter().map(|&(c, v, t)| (bytes(c), bytes(v), t)));
    let mut windows: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for &(c, _, t) in &times {
        *windows.entry((c, t - t % 10_000)).or_insert(0) += 1;
    }
    let session = |c: i64, second: bool| {
        let start = BASE + c * 1_000 + if second { 100_000 } else { 0 };
        Windowed { key: c, window: Window { start, end: start + 24_000 } }
    };

    let app = kafka::unique("iqw-app");
    let mut config = kafka::config(&app);
    config.state_dir = std::env::temp_dir().join(kafka::unique("iqw-state"));
    config.cache_max_bytes = 0;
    let mut streams = kafka::streams(topology, config.clone())?;
    streams.start()?;
    let per_10s = streams
        .store(StoreQueryParameters::from_name_and_type("per-10s", QueryableStoreTypes::window_store::<i64, i64>()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let counted: BTreeMap<(i64, i64), i64> = match per_10s.all() {
            Ok(all) => all.into_iter().map(|(w, n)| ((w.key, w.window.start), n)).collect(),
            Err(StreamsError::StoreUnavailable { reason, .. }) if reason.is_retriable() => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        if counted == windows {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the windowed counts never showed every order: {counted:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // By key and time range, oldest first; backward, newest first; one window by its start.
    let of = |c: i64, from: i64| -> Vec<(i64, i64)> {
        windows.iter().filter(|((k, s), _)| *k == c && *s >= from).map(|((_, s), n)| (*s, *n)).collect()
    };
    for c in 0..6 {
        assert_eq!(per_10s.fetch(&c, BASE, BASE + 200_000)?, of(c, BASE), "customer {c}");
        let mut backward = of(c, BASE + 100_000);
        backward.reverse();
        assert_eq!(per_10s.backward_fetch(&c, BASE + 100_000, i64::MAX)?, backward, "customer {c}, second burst");
    }
    assert_eq!(per_10s.get(&2, BASE + 10_000)?, windows.get(&(2, BASE + 10_000)).copied());
    assert_eq!(per_10s.get(&2, BASE + 5_000)?, None, "no window starts there");
    let stamped = streams.store(StoreQueryParameters::from_name_and_type(
        "per-10s",
        QueryableStoreTypes::timestamped_window_store::<i64, i64>(),
    ))?;
    let count = stamped.get(&2, BASE + 10_000)?.map(|v| (v.value, v.timestamp));
    assert_eq!(count, Some((1, BASE + 14_000)), "the count with its last order's timestamp");
    let range = per_10s.fetch_range(&1, &3, BASE, BASE + 50_000)?;
    let expected: Vec<(i64, i64, i64)> = windows
        .iter()
        .filter(|((k, s), _)| (1..=3).contains(k) && *s <= BASE + 50_000)
        .map(|((k, s), n)| (*k, *s, *n))
        .collect();
    assert_eq!(range.iter().map(|(w, n)| (w.key, w.window.start, *n)).collect::<Vec<_>>(), expected);
    assert!(range.iter().all(|(w, _)| w.window.end == w.window.start + 10_000), "windows of 10 s");
    let late = per_10s.fetch_all(BASE + 100_000, i64::MAX)?;
    assert_eq!(late.len(), windows.keys().filter(|(_, s)| *s >= BASE + 100_000).count());
    let mut all = per_10s.all()?;
    all.reverse();
    assert_eq!(per_10s.backward_all()?, all);

    let visits = streams
        .store(StoreQueryParameters::from_name_and_type("visits", QueryableStoreTypes::session_store::<i64, i64>()))?;
    for c in 0..6 {
        assert_eq!(visits.fetch(&c)?, vec![(session(c, false), 5), (session(c, true), 5)], "customer {c}'s sessions");
        assert_eq!(visits.backward_fetch(&c)?, vec![(session(c, true), 5), (session(c, false), 5)]);
        let s = session(c, true);
        assert_eq!(visits.fetch_session(&c, s.window.start, s.window.end)?, Some(5));
        assert_eq!(
            visits.find_sessions(&c, BASE + 100_000, i64::MAX)?,
            vec![(s, 5)],
            "sessions ending after the break"
        );
    }
    assert_eq!(visits.fetch_range(&4, &5)?.len(), 4);
    assert_eq!(visits.find_sessions_range(&0, &5, 0, BASE + 50_000)?.len(), 6, "the first burst's");

    let papi = streams
        .store(StoreQueryParameters::from_name_and_type("papi", QueryableStoreTypes::window_store::<i64, i64>()))?;
    let puts: Vec<(i64, i64)> = times.iter().filter(|(c, _, _)| *c == 4).map(|&(_, v, t)| (t, v)).collect();
    assert_eq!(papi.fetch(&4, 0, i64::MAX)?, puts, "the processor's puts");

    // The other kind, or other types: a clear, non-retriable error.
    let as_sessions = streams
        .store(StoreQueryParameters::from_name_and_type("per-10s", QueryableStoreTypes::session_store::<i64, i64>()))?;
    let as_windows = streams
        .store(StoreQueryParameters::from_name_and_type("visits", QueryableStoreTypes::window_store::<i64, i64>()))?;
    let wrong_types = streams.store(StoreQueryParameters::from_name_and_type(
        "per-10s",
        QueryableStoreTypes::window_store::<String, i64>(),
    ))?;
    for wrong in [
        as_sessions.fetch(&1).err(),
        as_windows.fetch(&1, 0, i64::MAX).err(),
        wrong_types.fetch(&"1".into(), 0, 1).err(),
    ] {
        let Some(StreamsError::StoreUnavailable { reason, .. }) = wrong else {
            panic!("read as the wrong kind: {wrong:?}")
        };
        assert!(matches!(reason, StoreUnavailable::Unknown(_)) && !reason.is_retriable(), "{reason:?}");
    }

    streams.close()?;
    let _ = std::fs::remove_dir_all(&config.state_dir);
    Ok(())
}

/// Standby replicas (`num.standby.replicas=1` under `group.assignor=streams`): each task's state is kept
/// on the other instance too, from its changelog, and can be read there as a stale store; when an
/// instance leaves, the other takes its tasks over and restores only what its standbys lagged behind,
/// not the changelogs; the totals stay exact.
pub(crate) fn a_standby_takes_over_restoring_only_what_it_lagged_behind() -> anyhow::Result<()> {
    standby_takes_over(kstreams::config::ProcessingGuarantee::AtLeastOnce, kstreams::config::DslStoreType::RocksDb)
}

/// The same with in-memory stores: the standby becomes its task with its stores open, so what it
/// applied is kept (through a checkpoint it would start empty and restore in full).
pub(crate) fn an_in_memory_standby_takes_over_restoring_only_what_it_lagged_behind() -> anyhow::Result<()> {
    standby_takes_over(kstreams::config::ProcessingGuarantee::AtLeastOnce, kstreams::config::DslStoreType::InMemory)
}

/// Two instances with addresses (`application.server`) and a standby of every task: either instance
/// tells, for every key, which instance holds it and which keeps its standby, and the instance it names
/// answers the key's total from the partition it names (Kafka Streams' `queryMetadataForKey`).
pub(crate) fn query_metadata_names_the_instance_that_holds_each_key() -> anyhow::Result<()> {
    let (input, totals) = (kafka::unique("qm-orders"), kafka::unique("qm-totals"));
    kafka::create_topics(&[(&input, 4), (&totals, 4)]);
    let app = kafka::unique("qm-app");
    let start = |port: u16| -> anyhow::Result<KafkaStreams> {
        let mut config = kafka::config(&app);
        config.group_assignor = kstreams::config::GroupAssignor::Streams;
        config.num_standby_replicas = 1;
        config.application_server = Some(format!("localhost:{port}"));
        config.cache_max_bytes = 0;
        config.state_dir = std::env::temp_dir().join(kafka::unique("qm-instance"));
        let mut streams = kafka::streams(totals_topology(&input, &totals)?, config)?;
        streams.start()?;
        Ok(streams)
    };
    let mut first = start(7001)?;
    let mut second = start(7002)?;
    let hosts = [HostInfo::new("localhost", 7001), HostInfo::new("localhost", 7002)];
    let serde = i64::default_serde();
    let missing = first.query_metadata_for_key("no-such-store", &1, &*serde).unwrap_err();
    assert!(missing.to_string().contains("no-such-store"), "{missing}");
    for streams in [&first, &second] {
        anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    }
    let mut expected = BTreeMap::new();
    kafka::produce(&input, orders(&input, 0, 400, &mut expected));
    wait_for_totals(&totals, &expected);

    // Both instances know both addresses, each running two of the four tasks and a standby of the others.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for streams in [&first, &second] {
        loop {
            let all = streams.streams_metadata_for_store(STORE);
            let partitions: BTreeSet<i32> =
                all.iter().flat_map(|m| m.topic_partitions.iter().map(|tp| tp.partition)).collect();
            let standbys: usize = all.iter().map(|m| m.standby_topic_partitions.len()).sum();
            if all.len() == 2 && partitions.len() == 4 && standbys == 4 {
                assert_eq!(all.iter().map(|m| m.host_info.clone()).collect::<Vec<_>>(), hosts);
                assert!(all.iter().all(|m| m.topic_partitions.iter().all(|tp| *tp.topic == *input)));
                break;
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "the metadata never showed both instances: {all:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let beyond = first.query_metadata_for_key_with_partitioner(STORE, &1, |_, _, partitions| partitions as i32);
    let beyond = beyond.unwrap_err();
    assert!(beyond.to_string().contains("partition 4 of"), "{beyond}");
    assert!(matches!(&beyond, kstreams::StreamsError::StoreUnavailable { reason, .. } if !reason.is_retriable()));
    let holders = [(&hosts[0], &first), (&hosts[1], &second)];
    for (customer, total) in &expected {
        let meta = first.query_metadata_for_key(STORE, customer, &*serde)?;
        assert_eq!(
            meta,
            second.query_metadata_for_key(STORE, customer, &*serde)?,
            "both instances agree on {customer}"
        );
        assert_eq!(meta.standby_hosts.len(), 1, "{meta:?}");
        assert!(!meta.standby_hosts.contains(&meta.active_host), "{meta:?}");
        // Input placed by a partitioner of the producers' own: it is told a source topic and its
        // partition count, and the partition it names is looked up as the default one's.
        let placed = second.query_metadata_for_key_with_partitioner(STORE, customer, |topic, _, partitions| {
            assert_eq!((topic, partitions), (input.as_str(), 4));
            meta.partition
        })?;
        assert_eq!(placed, meta, "customer {customer} placed by a partitioner");
        let (_, holder) = holders.iter().find(|(host, _)| **host == meta.active_host).expect("one of the two");
        let params = StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<i64, i64>());
        let read = holder.store(params.with_partition(meta.partition))?.get(customer)?;
        assert_eq!(read, Some(*total), "customer {customer} on {} partition {}", meta.active_host, meta.partition);
    }

    // A third instance joins. Until the group has settled, each question asked as an application
    // forwards it (where is the key, then ask there) gets the right total or a retriable error.
    let mut third = start(7003)?;
    let all = [(HostInfo::new("localhost", 7001), &first), (HostInfo::new("localhost", 7002), &second)];
    let all: Vec<(HostInfo, &KafkaStreams)> =
        all.into_iter().chain([(HostInfo::new("localhost", 7003), &third)]).collect();
    let (mut answered, mut retried) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let settled = || {
        all.iter().all(|(_, s)| s.state() == State::Running)
            && all.iter().all(|(_, s)| s.streams_metadata_for_store(STORE).len() == 3)
    };
    while !settled() || answered < 3 * expected.len() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the group never settled with three instances");
        for (streams, (customer, total)) in all.iter().map(|(_, s)| s).cycle().zip(&expected) {
            let asked = streams.query_metadata_for_key(STORE, customer, &*serde).and_then(|meta| {
                let (_, holder) = all.iter().find(|(host, _)| *host == meta.active_host).expect("one of the three");
                let params =
                    StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<i64, i64>());
                holder.store(params.with_partition(meta.partition))?.get(customer)
            });
            match asked {
                Ok(read) => {
                    assert_eq!(read, Some(*total), "customer {customer} during the rebalance");
                    answered += 1;
                }
                Err(kstreams::StreamsError::StoreUnavailable { reason, .. }) if reason.is_retriable() => retried += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    println!("during the rebalance: {answered} answers, all right, and {retried} retriable errors");
    // The third leaves: the others' metadata drops it.
    third.close()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while first.streams_metadata_for_store(STORE).iter().any(|m| m.host_info.port == 7003) {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the third instance stayed in the metadata");
        std::thread::sleep(Duration::from_millis(100));
    }
    first.close()?;
    second.close()?;
    Ok(())
}

/// The same under exactly_once_v2: a standby reads its changelogs `read_committed`, up to their last
/// stable offsets, never waiting on its task's open transaction.
pub(crate) fn a_standby_takes_over_restoring_only_what_it_lagged_behind_under_exactly_once() -> anyhow::Result<()> {
    standby_takes_over(kstreams::config::ProcessingGuarantee::ExactlyOnceV2, kstreams::config::DslStoreType::RocksDb)
}

fn standby_takes_over(
    guarantee: kstreams::config::ProcessingGuarantee,
    store: kstreams::config::DslStoreType,
) -> anyhow::Result<()> {
    let (input, totals) = (kafka::unique("sb-orders"), kafka::unique("sb-totals"));
    kafka::create_topics(&[(&input, 4), (&totals, 4)]);
    let app = kafka::unique("sb-app");
    let updates = StandbyUpdates::default();
    let start = |instance: &str, restores: &Restores| -> anyhow::Result<KafkaStreams> {
        let mut config = kafka::config(&app);
        config.group_assignor = kstreams::config::GroupAssignor::Streams;
        config.num_standby_replicas = 1;
        config.processing_guarantee = guarantee;
        config.default_dsl_store = store;
        // Every update reaches the changelog: a full restore would read one record per order.
        config.cache_max_bytes = 0;
        config.state_dir = std::env::temp_dir().join(kafka::unique(instance));
        let mut streams = kafka::streams(totals_topology(&input, &totals)?, config)?;
        streams.set_global_state_restore_listener(restores.clone());
        if instance == "sb-second" {
            streams.set_standby_update_listener(updates.clone());
        }
        streams.start()?;
        Ok(streams)
    };
    let (first_restores, second_restores) = (Restores::default(), Restores::default());
    let mut first = start("sb-first", &first_restores)?;
    let mut second = start("sb-second", &second_restores)?;
    for streams in [&first, &second] {
        anyhow::ensure!(streams.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING");
    }
    let mut expected = BTreeMap::new();
    kafka::produce(&input, orders(&input, 0, 4_000, &mut expected));
    wait_for_totals(&totals, &expected);

    // Every task runs on one instance and has a standby on the other: once the standbys caught up, each
    // instance reads every customer's total, its own tasks' and its standbys'.
    let stale = || {
        StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<i64, i64>())
            .enable_stale_stores()
    };
    for (name, streams) in [("first", &first), ("second", &second)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let read: BTreeMap<i64, i64> = streams.store(stale())?.all()?.into_iter().collect();
            if read == expected {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the {name} instance's standbys never caught up: {read:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Kafka Streams' thread metadata lists them: every task has a standby on the instance that does not
    // run it.
    let tasks = |streams: &KafkaStreams, standby: bool| -> Vec<kstreams::TaskId> {
        let threads = streams.metadata_for_local_threads();
        let mut tasks: Vec<_> = threads
            .iter()
            .flat_map(|t| if standby { t.standby_tasks.clone() } else { t.active_tasks.clone() })
            .collect();
        tasks.sort();
        tasks
    };
    assert_eq!(tasks(&first, true), tasks(&second, false), "the first instance keeps standbys of the second's tasks");
    assert_eq!(tasks(&second, true), tasks(&first, false), "and the second of the first's");
    assert_eq!(tasks(&first, false).len() + tasks(&second, false).len(), 4);
    let restored_before = second_restores.restored();
    let first_tasks = tasks(&first, false);

    first.close()?;
    kafka::produce(&input, orders(&input, 4_000, 5_000, &mut expected));
    wait_for_totals(&totals, &expected);
    let restored = second_restores.restored() - restored_before;
    second.close()?;
    // A full restore of the first instance's tasks would read about 2,000 records (one per order).
    assert!(restored < 200, "the standbys restored {restored} records at the failover: a full restore, not their lag");
    assert_eq!(first_restores.restored() + restored_before, 0, "nothing to restore at the start");
    // The second instance's listener heard its standbys of the first's tasks start, load, and end as
    // their tasks came to it.
    let heard = updates.0.lock().unwrap().clone();
    for task in &first_tasks {
        let (started, loaded, suspended) = heard.get(task).cloned().unwrap_or_default();
        assert!(started >= 1 && loaded > 0, "standby {task}: {started} updates started, {loaded} records loaded");
        assert!(suspended.contains(&SuspendReason::Promoted), "standby {task} suspended for {suspended:?}");
    }
    Ok(())
}
