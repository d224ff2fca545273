//! The application's local state directory, `<state.dir>/<application.id>`: one sub-directory per task
//! (its RocksDB stores and `.checkpoint`), and a `.lock` file that one running instance holds, so two
//! instances on one machine never share a task's files by mistake.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::StreamsError;

/// The lock file's name in the application directory.
const LOCK_FILE: &str = ".lock";

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
}
