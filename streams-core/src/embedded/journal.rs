//! Optional persistence for the embedded broker: every change to its logs and committed offsets is
//! appended to one journal file (a JSON line per event) as it happens, and a broker opened on the same
//! directory replays the journal. An example run can so be stopped, even killed, and continued.
//!
//! What is kept: topics, records (with their transaction), transaction markers, committed offsets and
//! compactions. What is not: group membership and producer registrations, which belong to processes
//! that are gone after a restart; a transaction left open by them is aborted when the journal is
//! replayed, as Kafka's coordinator aborts it after its timeout. Each event is written with one
//! `write` call and no fsync: it survives the process being killed, not the machine losing power.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::{ClientError, ClientErrorKind};

/// The journal's file name inside the broker's directory.
const FILE: &str = "broker.journal";

/// The most partitions a journal's topic may have: more is a damaged line, not a topic to allocate.
const MAX_PARTITIONS: i32 = 100_000;

/// One change to the broker's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    Topic {
        name: String,
        partitions: i32,
        compacted: bool,
        /// `message.timestamp.after.max.ms`, when not the broker's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp_after_max_ms: Option<i64>,
    },
    Record {
        topic: String,
        partition: i32,
        timestamp: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, Option<Vec<u8>>)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        txn: Option<u64>,
    },
    /// A transaction's marker on one partition.
    EndTxn {
        topic: String,
        partition: i32,
        txn: u64,
        commit: bool,
        timestamp: i64,
    },
    Offset {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        /// The metadata committed with the offset; absent (empty) in journals written before it was kept.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        metadata: String,
    },
    Compact,
    /// Records below `offset` deleted from one partition.
    DeleteRecords {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

/// The open journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// The first write error; every later client call fails with it.
    failed: Option<String>,
}

fn error(operation: String, message: String) -> ClientError {
    ClientError::new(operation, message, ClientErrorKind::Fatal)
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and reads the events it holds. A last line cut
    /// short by a crash is dropped with a warning; any other unreadable line is an error naming it.
    pub(crate) fn open(dir: &Path) -> Result<(Journal, Vec<Event>), ClientError> {
        let path = dir.join(FILE);
        let operation = format!("open the embedded broker's journal {}", path.display());
        std::fs::create_dir_all(dir).map_err(|e| error(operation.clone(), e.to_string()))?;
        let mut events = Vec::new();
        let mut valid_len = 0u64;
        if path.exists() {
            let file = File::open(&path).map_err(|e| error(operation.clone(), e.to_string()))?;
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            let mut number = 0;
            loop {
                line.clear();
                let read = reader.read_line(&mut line).map_err(|e| error(operation.clone(), e.to_string()))?;
                if read == 0 {
                    break;
                }
                number += 1;
                if !line.ends_with('\n') {
                    tracing::warn!(target: "kstreams::embedded::journal", journal = %path.display(), line = number, "dropping an incomplete last event");
                    break;
                }
                let event: Event = serde_json::from_str(line.trim_end())
                    .map_err(|e| error(operation.clone(), format!("line {number} is not a journal event: {e}")))?;
                if let Event::Topic { name, partitions, .. } = &event
                    && !(1..=MAX_PARTITIONS).contains(partitions)
                {
                    let message = format!("line {number}: topic `{name}` cannot have {partitions} partitions");
                    return Err(error(operation, message));
                }
                events.push(event);
                valid_len += read as u64;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| error(operation.clone(), e.to_string()))?;
        // Cut an incomplete last event off, so the next one starts on a line of its own.
        file.set_len(valid_len).map_err(|e| error(operation, e.to_string()))?;
        Ok((Journal { file, path, failed: None }, events))
    }

    /// Appends `event`. A failure is remembered (see [`check`](Self::check)) and logged.
    pub(crate) fn write(&mut self, event: &Event) {
        if self.failed.is_some() {
            return;
        }
        let mut line = serde_json::to_vec(event).expect("journal events always serialize");
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            tracing::error!(target: "kstreams::embedded::journal", journal = %self.path.display(), error = %e, "cannot write the embedded broker's journal");
            self.failed = Some(e.to_string());
        }
    }

    /// Fails `operation` if a write to the journal has failed: what the broker holds is no longer what
    /// it would replay.
    pub(crate) fn check(&self, operation: &str) -> Result<(), ClientError> {
        match &self.failed {
            Some(e) => Err(error(
                operation.to_string(),
                format!("the embedded broker could not write its journal {}: {e}", self.path.display()),
            )),
            None => Ok(()),
        }
    }
}
