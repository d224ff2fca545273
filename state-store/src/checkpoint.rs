//! Checkpoint files: how far into its changelog each local store is, so that a restart restores only the
//! tail. The format is Kafka Streams' `.checkpoint` (`OffsetCheckpoint`): a version line (`0`), a count
//! line, then one `topic partition offset` line per changelog partition, where the offset is that of the
//! last changelog record the store reflects.
//!
//! A checkpoint is written after the stores are flushed, through a temporary file and a rename, so it
//! never claims more than the files hold. A file that cannot be parsed is reported as corrupt; the caller
//! then restores from scratch rather than trusting any part of it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The checkpoint file's name inside a task directory, as in Kafka Streams.
const CHECKPOINT_FILE_NAME: &str = ".checkpoint";

const VERSION: u32 = 0;

/// Why a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a checkpoint this version understands.
    #[error("checkpoint {path} is corrupt at line {line}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The 1-based line at fault.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The offsets in one checkpoint file: `(topic, partition) -> offset`.
pub type Offsets = BTreeMap<(String, i32), i64>;

/// One task's checkpoint file.
#[derive(Debug, Clone)]
pub struct OffsetCheckpoint {
    path: PathBuf,
}

impl OffsetCheckpoint {
    /// The checkpoint file in `task_dir`.
    pub fn in_dir(task_dir: &Path) -> Self {
        OffsetCheckpoint { path: task_dir.join(CHECKPOINT_FILE_NAME) }
    }

    /// The file's path.
    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    /// The offsets in the file; empty when there is no file.
    pub fn read(&self) -> Result<Offsets, CheckpointError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Offsets::new()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(self.corrupt(1, "not UTF-8 text".into()));
            }
            Err(source) => return Err(CheckpointError::Io { path: self.path.clone(), source }),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        let version = lines.next().ok_or_else(|| self.corrupt(1, "empty file".into()))?;
        if version.1.parse::<u32>().ok() != Some(VERSION) {
            return Err(self.corrupt(1, format!("unknown version `{}`", version.1)));
        }
        let count = lines.next().ok_or_else(|| self.corrupt(2, "no entry count".into()))?;
        let expected: usize = count.1.parse().map_err(|_| self.corrupt(2, format!("bad entry count `{}`", count.1)))?;
        let mut offsets = Offsets::new();
        for (line, text) in lines.by_ref().take(expected) {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [topic, partition, offset] = fields[..] else {
                return Err(self.corrupt(line, format!("expected `topic partition offset`, found `{text}`")));
            };
            let partition =
                partition.parse().map_err(|_| self.corrupt(line, format!("bad partition `{partition}`")))?;
            let offset: i64 = offset.parse().map_err(|_| self.corrupt(line, format!("bad offset `{offset}`")))?;
            if offset < 0 {
                return Err(self.corrupt(line, format!("negative offset {offset}")));
            }
            offsets.insert((topic.to_string(), partition), offset);
        }
        if offsets.len() != expected {
            return Err(
                self.corrupt(2 + offsets.len(), format!("{expected} entries announced, {} found", offsets.len()))
            );
        }
        if let Some((line, extra)) = lines.find(|(_, l)| !l.is_empty()) {
            return Err(self.corrupt(line, format!("unexpected line `{extra}`")));
        }
        Ok(offsets)
    }

    /// Replaces the file with `offsets`: written to a temporary file, synced, then renamed over the old one.
    pub fn write(&self, offsets: &Offsets) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: self.path.clone(), source };
        let mut text = format!("{VERSION}\n{}\n", offsets.len());
        for ((topic, partition), offset) in offsets {
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    /// Removes the file (a missing file is fine).
    pub fn delete(&self) -> Result<(), CheckpointError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointError::Io { path: self.path.clone(), source: e })
            }
            _ => Ok(()),
        }
    }

    fn corrupt(&self, line: usize, reason: String) -> CheckpointError {
        CheckpointError::Corrupt { path: self.path.clone(), line, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Hostile input: any file reads as offsets or as an error naming it, never a panic.
        #[test]
        fn any_file_is_read_or_refused(file in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let dir = tempfile::tempdir().unwrap();
            let checkpoint = OffsetCheckpoint::in_dir(dir.path());
            std::fs::write(checkpoint.path(), &file).unwrap();
            if let Err(error) = checkpoint.read() {
                proptest::prop_assert!(error.to_string().contains(".checkpoint"), "{}", error);
            }
        }

        #[test]
        fn offsets_read_back_as_written(
            offsets in proptest::collection::btree_map(("[a-zA-Z0-9._-]{1,12}", 0..1000i32), 0..i64::MAX, 0..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let checkpoint = OffsetCheckpoint::in_dir(dir.path());
            checkpoint.write(&offsets).unwrap();
            proptest::prop_assert_eq!(checkpoint.read().unwrap(), offsets);
        }
    }

    #[test]
    fn checkpoint_round_trips_in_kafka_streams_format() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = OffsetCheckpoint::in_dir(dir.path());
        assert!(checkpoint.read().unwrap().is_empty(), "no file: no offsets");
        let offsets: Offsets =
            [(("app-counts-changelog".to_string(), 3), 41), (("app-totals-changelog".to_string(), 3), 7)].into();
        checkpoint.write(&offsets).unwrap();
        let text = std::fs::read_to_string(checkpoint.path()).unwrap();
        assert_eq!(text, "0\n2\napp-counts-changelog 3 41\napp-totals-changelog 3 7\n");
        assert_eq!(checkpoint.read().unwrap(), offsets);
        checkpoint.delete().unwrap();
        assert!(checkpoint.read().unwrap().is_empty());
    }

    #[test]
    fn damaged_checkpoints_are_corrupt_not_partially_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = OffsetCheckpoint::in_dir(dir.path());
        for bad in
            ["", "1\n0\n", "0\n2\nt 0 5\n", "0\n1\nt x 5\n", "0\n1\nt 0 -3\n", "0\n1\nt 0 5\nextra\n", "0\nlots\n"]
        {
            std::fs::write(checkpoint.path(), bad).unwrap();
            let error = checkpoint.read().unwrap_err();
            assert!(matches!(error, CheckpointError::Corrupt { .. }), "{bad:?}: {error}");
            assert!(error.to_string().contains(".checkpoint"), "names the file: {error}");
        }
        std::fs::write(checkpoint.path(), [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(checkpoint.read(), Err(CheckpointError::Corrupt { .. })));
    }
}
