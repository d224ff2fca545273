//! The application's local state directory, `<state.dir>/<application.id>`: one sub-directory per task
//! (its RocksDB stores and `.checkpoint`), and a `.lock` file that one running instance holds, so two
//! instances on one machine never share a task's files by mistake.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{StreamsError, TaskId};

/// The lock file's name in the application directory.
const LOCK_FILE: &str = ".lock";

/// The file that keeps the instance's process id across restarts, named as Kafka Streams names it.
const PROCESS_FILE: &str = "kafka-streams-process-metadata";

/// The process file's content, as Kafka Streams writes it: `{"processId":"…"}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProcessFile {
    #[serde(rename = "processId")]
    process_id: String,
}

/// `<state.dir>/<application.id>`, locked while held.
#[derive(Debug)]
pub(crate) struct StateDirectory {
    app_dir: PathBuf,
    /// The open, locked lock file; the OS releases the lock when it is closed (by the last holder of
    /// the `Arc`: the stream threads hold it too), also when the process dies.
    lock: Option<Arc<File>>,
}

impl StateDirectory {
    pub(crate) fn new(state_dir: &Path, application_id: &str) -> Self {
        StateDirectory { app_dir: state_dir.join(application_id), lock: None }
    }

    pub(crate) fn app_dir(&self) -> &Path {
        &self.app_dir
    }

    /// Creates the directory and takes its lock; fails, naming the directory, when another instance (in
    /// this process or another) holds it.
    pub(crate) fn lock(&mut self) -> Result<(), StreamsError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let error = |message: String| StreamsError::StateDir { path: self.app_dir.clone(), message };
        std::fs::create_dir_all(&self.app_dir).map_err(|e| error(format!("cannot create it: {e}")))?;
        let path = self.app_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| error(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                self.lock = Some(Arc::new(file));
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(error(
                "another instance of this application holds its lock; give each instance on one machine its own \
                 `state.dir`"
                    .into(),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(error(format!("cannot lock {}: {e}", path.display()))),
        }
    }

    /// The process id kept in the directory (call it with the lock held), or `new_id` written there
    /// when there is none yet, or an unreadable one. As in Kafka Streams, an instance that restarts on its
    /// state keeps its process id, and so its transactional ids: its first transaction then aborts the one
    /// its previous run left open, instead of leaving it to time out while it holds back `read_committed`
    /// readers (a restore of the changelog among them).
    pub(crate) fn process_id(&self, new_id: impl FnOnce() -> String) -> Result<String, StreamsError> {
        let path = self.app_dir.join(PROCESS_FILE);
        let problem = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(e.to_string()),
            Ok(bytes) => match serde_json::from_slice::<ProcessFile>(&bytes) {
                Ok(file) if !file.process_id.is_empty() => return Ok(file.process_id),
                Ok(_) => Some("an empty process id".to_string()),
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(problem) = problem {
            tracing::warn!(
                target: "kstreams::runtime::state_dir",
                file = %path.display(),
                problem,
                "unreadable process file; this instance takes a new process id"
            );
        }
        let file = ProcessFile { process_id: new_id() };
        let bytes = serde_json::to_vec(&file).map_err(|e| StreamsError::Internal(format!("process file: {e}")))?;
        std::fs::write(&path, bytes).map_err(|e| StreamsError::StateDir {
            path: path.clone(),
            message: format!("cannot write the process id: {e}"),
        })?;
        Ok(file.process_id)
    }

    /// A share of the lock, for a stream thread to hold until it ends; `None` when not locked.
    pub(crate) fn lock_share(&self) -> Option<Arc<File>> {
        self.lock.clone()
    }

    /// Lets go of the instance's share of the lock (on close); the lock is released once no stream
    /// thread holds a share either.
    pub(crate) fn unlock(&mut self) {
        self.lock = None;
    }

    /// Deletes all local state of the application: every task's stores and checkpoints. Takes the lock
    /// first, so it refuses while another instance uses the directory.
    pub(crate) fn clean(&mut self) -> Result<(), StreamsError> {
        if !self.app_dir.exists() {
            return Ok(());
        }
        self.lock()?;
        let entries = std::fs::read_dir(&self.app_dir).map_err(|e| StreamsError::StateDir {
            path: self.app_dir.clone(),
            message: format!("cannot list it: {e}"),
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == LOCK_FILE) {
                continue;
            }
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|e| StreamsError::StateDir {
                path: path.clone(),
                message: format!("cannot delete it: {e}"),
            })?;
        }
        self.unlock();
        tracing::info!(target: "kstreams::runtime::state_dir", dir = %self.app_dir.display(), "local state deleted");
        Ok(())
    }
}

/// Per task directory under `app_dir` (named `<sub-topology>_<partition>`) with a readable checkpoint,
/// the sum of its checkpointed changelog offsets: how much state of the task this instance holds, which
/// the group's leader weighs when it decides where the task goes (Kafka Streams reports the same for
/// the task directories it does not hold). Unreadable entries are passed over: a restore decides later
/// what to trust.
pub(crate) fn checkpointed_offset_sums(app_dir: &Path) -> BTreeMap<TaskId, i64> {
    let Ok(entries) = std::fs::read_dir(app_dir) else { return BTreeMap::new() };
    let mut sums = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((subtopology, partition)) = name.to_str().and_then(|n| n.split_once('_')) else { continue };
        let (Ok(subtopology), Ok(partition)) = (subtopology.parse(), partition.parse()) else { continue };
        let Ok(offsets) = state_store::OffsetCheckpoint::in_dir(&entry.path()).read() else { continue };
        if !offsets.is_empty() {
            sums.insert(
                TaskId { subtopology, partition },
                offsets.values().fold(0, |sum: i64, &o| sum.saturating_add(o)),
            );
        }
    }
    sums
}

/// Deletes application `application_id`'s local state under `state_dir` (what
/// [`KafkaStreams::clean_up`](super::KafkaStreams::clean_up) deletes: every task directory, not the lock
/// file), for tools that reset an application; refused while an instance on this machine holds the
/// directory. False when there was nothing to delete.
pub fn clean_local_state(state_dir: &Path, application_id: &str) -> Result<bool, StreamsError> {
    let plain = !application_id.is_empty()
        && application_id != "."
        && application_id != ".."
        && !application_id.contains(['/', '\\']);
    if !plain {
        return Err(StreamsError::StateDir {
            path: state_dir.to_path_buf(),
            message: format!("`{application_id}` is not an application id whose state can be deleted under it"),
        });
    }
    let mut directory = StateDirectory::new(state_dir, application_id);
    if !directory.app_dir.exists() {
        return Ok(false);
    }
    directory.clean()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instance_at_a_time_holds_the_state_directory() {
        let root = tempfile::tempdir().unwrap();
        let mut first = StateDirectory::new(root.path(), "app");
        let mut second = StateDirectory::new(root.path(), "app");
        first.lock().unwrap();
        let error = second.lock().unwrap_err().to_string();
        assert!(error.contains("app") && error.contains("another instance"), "{error}");
        assert!(second.clean().is_err(), "no wiping under a running instance");
        first.unlock();
        second.lock().unwrap();
    }

    #[test]
    fn task_directories_report_their_checkpointed_offset_sums() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = |pairs: &[(&str, i64)]| pairs.iter().map(|&(t, o)| ((t.to_string(), 3), o)).collect();
        let task = dir.path().join("1_3");
        std::fs::create_dir(&task).unwrap();
        state_store::OffsetCheckpoint::in_dir(&task)
            .write(&offsets(&[("a-changelog", 40), ("b-changelog", 2)]))
            .unwrap();
        std::fs::create_dir(dir.path().join("0_1")).unwrap(); // no checkpoint
        std::fs::create_dir(dir.path().join("global")).unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        let sums = checkpointed_offset_sums(dir.path());
        assert_eq!(sums, BTreeMap::from([(TaskId { subtopology: 1, partition: 3 }, 42)]));
    }

    #[test]
    fn clean_deletes_task_directories_but_not_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let mut dir = StateDirectory::new(root.path(), "app");
        std::fs::create_dir_all(dir.app_dir().join("0_1").join("rocksdb").join("s")).unwrap();
        std::fs::write(dir.app_dir().join("0_1").join(".checkpoint"), "0\n0\n").unwrap();
        dir.clean().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.app_dir()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK_FILE)]);
        dir.lock().unwrap();
    }

    #[test]
    fn the_process_id_is_kept_across_restarts_and_an_unreadable_one_replaced() {
        let root = tempfile::tempdir().unwrap();
        let mut dir = StateDirectory::new(root.path(), "app");
        dir.lock().unwrap();
        assert_eq!(dir.process_id(|| "first".into()).unwrap(), "first");
        assert_eq!(dir.process_id(|| "second".into()).unwrap(), "first", "kept, not made anew");
        let written = std::fs::read_to_string(dir.app_dir().join(PROCESS_FILE)).unwrap();
        assert_eq!(written, r#"{"processId":"first"}"#, "Kafka Streams' file format");
        std::fs::write(dir.app_dir().join(PROCESS_FILE), "not json").unwrap();
        assert_eq!(dir.process_id(|| "third".into()).unwrap(), "third");
        assert_eq!(dir.process_id(|| "fourth".into()).unwrap(), "third");
    }
}
