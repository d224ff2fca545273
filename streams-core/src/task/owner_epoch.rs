//! Owner epochs on changelog records (at_least_once): which ownership of a task wrote a record, so that a
//! restore can tell a late write of a former owner from the current owner's writes.
//!
//! Under at_least_once nothing on the broker stops an instance that lost its tasks while paused (a
//! SIGSTOP, a frozen VM) from writing once it resumes; the pause limit (runtime/producer.rs) makes that
//! rare, not impossible: a produce request in flight at the pause can still be sent again at resume. Such
//! a write lands in the changelog after the new owner's, and a plain restore would take it as the latest
//! value of its key: the updates since would be lost. Kafka Streams has the same hole (KAFKA-12693).
//!
//! So every changelog record written under at_least_once carries its owner's epoch: one more than the
//! highest epoch the task's state had seen when it was opened. A new owner restores its predecessor's
//! writes before it writes anything, so its epoch is higher. A restore keeps the highest epoch seen so far
//! in the partition and skips a record stamped below it; the task then writes the current value of each
//! such key again, under its own epoch, so that the newest record of the key in the compacted changelog
//! is right again. Records without a stamp (exactly_once_v2, older versions, other writers) are always
//! applied.
//!
//! A restore that starts after a checkpoint does not read the records before it, so the epoch the local
//! state had reached is kept beside the checkpoint (`.owner_epoch`), written before it. Without that
//! file a new owner could pick an epoch below earlier owners' stamps, and a later restore would skip its
//! writes. A checkpoint without the file is one from a version that stamped nothing.
//!
//! A skipped record whose key nothing else restored holds is applied after all (the restore's call):
//! compaction may have removed the newer owner's record of the key, and an old value beats none.
//!
//! Not covered: a former owner whose every write of the task reached the broker only after its successor
//! had restored (it was paused right after taking the task). The successor then picks the same epoch, and
//! the late writes are applied.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use crate::record::RawRecord;

/// The header that carries a changelog record's owner epoch: a big-endian `i32`.
pub const OWNER_EPOCH_HEADER: &str = "__kstreams.owner.epoch";

/// The header value for `epoch`.
pub(crate) fn encode(epoch: i32) -> Vec<u8> {
    epoch.to_be_bytes().to_vec()
}

/// The file beside a task's checkpoint that keeps the owner epoch its state had reached.
pub(crate) const FILE_NAME: &str = ".owner_epoch";

/// The owner epoch recorded in `task_dir`; `Ok(None)` without the file, an error naming the file when it
/// cannot be read or parsed.
pub(crate) fn read_recorded(task_dir: &Path) -> Result<Option<i32>, String> {
    let path = task_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{}: not an owner epoch: `{}`", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Records `epoch` in `task_dir`: a temporary file, synced, renamed over the old one (as the checkpoint).
pub(crate) fn write_recorded(task_dir: &Path, epoch: i32) -> std::io::Result<()> {
    let path = task_dir.join(FILE_NAME);
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(format!("{epoch}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// The owner epoch `record` was stamped with; `None` when it has no (well-formed) stamp.
pub(crate) fn of(record: &RawRecord) -> Option<i32> {
    let bytes = record.headers.last(OWNER_EPOCH_HEADER)??;
    Some(i32::from_be_bytes(bytes.try_into().ok()?))
}

/// Follows the owner epochs of one changelog partition while it is replayed, in offset order.
#[derive(Debug, Default)]
pub(crate) struct EpochFence {
    /// The highest epoch seen so far.
    highest: Option<i32>,
    /// Keys of the records skipped: their latest value in the changelog is a former owner's late write.
    stale_keys: BTreeSet<Vec<u8>>,
    /// How many records were skipped.
    skipped: u64,
}

impl EpochFence {
    /// A fence for a partition whose records up to a checkpoint reached epoch `floor`.
    pub(crate) fn after(floor: Option<i32>) -> Self {
        EpochFence { highest: floor, ..Default::default() }
    }

    /// Whether `record` is to be applied: unstamped, or stamped at least as high as every record before
    /// it. A record that is not is counted and its key kept for [`EpochFence::into_stale_keys`].
    pub(crate) fn admit(&mut self, record: &RawRecord) -> bool {
        match (of(record), self.highest) {
            (Some(epoch), Some(highest)) if epoch < highest => {
                self.skipped += 1;
                self.stale_keys.insert(record.key.clone().unwrap_or_default());
                false
            }
            (epoch, highest) => {
                self.highest = highest.max(epoch);
                true
            }
        }
    }

    /// Takes back the skip of the latest record of `key`: it is applied after all (the restore found no
    /// other value of the key).
    pub(crate) fn readmit(&mut self, key: &[u8]) {
        if self.stale_keys.remove(key) {
            self.skipped -= 1;
        }
    }

    /// The highest epoch seen.
    pub(crate) fn highest(&self) -> Option<i32> {
        self.highest
    }

    /// How many records were skipped.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The keys whose newest changelog record was skipped, to be written again by the new owner.
    pub(crate) fn into_stale_keys(self) -> BTreeSet<Vec<u8>> {
        self.stale_keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Headers;

    fn record(offset: i64, key: &str, epoch: Option<i32>) -> RawRecord {
        let mut headers = Headers::new();
        if let Some(epoch) = epoch {
            headers.add(OWNER_EPOCH_HEADER, Some(encode(epoch)));
        }
        RawRecord {
            topic: "app-store-changelog".into(),
            partition: 0,
            offset,
            timestamp: 0,
            key: Some(key.as_bytes().to_vec()),
            value: Some(offset.to_string().into_bytes()),
            headers,
        }
    }

    #[test]
    fn a_record_stamped_below_an_earlier_one_is_skipped_and_its_key_kept() {
        let mut fence = EpochFence::default();
        let admitted: Vec<bool> = [
            record(0, "a", Some(3)),
            record(1, "b", None),
            record(2, "a", Some(5)), // the new owner
            record(3, "a", Some(3)), // the former owner, late
            record(4, "c", Some(3)),
            record(5, "b", Some(5)),
            record(6, "a", None), // unstamped: always applied
        ]
        .iter()
        .map(|r| fence.admit(r))
        .collect();
        assert_eq!(admitted, [true, true, true, false, false, true, true]);
        assert_eq!(fence.highest(), Some(5));
        assert_eq!(fence.skipped(), 2);
        fence.readmit(b"c");
        assert_eq!(fence.skipped(), 1);
        assert_eq!(fence.into_stale_keys().into_iter().collect::<Vec<_>>(), [b"a".to_vec()]);
    }

    #[test]
    fn a_restore_after_a_checkpoint_starts_from_the_recorded_epoch() {
        let mut fence = EpochFence::after(Some(7));
        assert!(!fence.admit(&record(10, "a", Some(6))));
        assert!(fence.admit(&record(11, "a", Some(7))));
        assert!(fence.admit(&record(12, "a", Some(8))));
        assert_eq!(fence.highest(), Some(8));
    }

    #[test]
    fn the_recorded_epoch_survives_a_reopen_and_a_bad_file_is_named() {
        let dir = std::env::temp_dir().join(format!("owner-epoch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_recorded(&dir), Ok(None));
        write_recorded(&dir, 41).unwrap();
        write_recorded(&dir, 42).unwrap();
        assert_eq!(read_recorded(&dir), Ok(Some(42)));
        std::fs::write(dir.join(FILE_NAME), "forty-two").unwrap();
        let error = read_recorded(&dir).unwrap_err();
        assert!(error.contains(FILE_NAME) && error.contains("forty-two"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_malformed_stamp_counts_as_none() {
        let mut r = record(0, "a", None);
        r.headers.add(OWNER_EPOCH_HEADER, Some(vec![1, 2, 3]));
        assert_eq!(of(&r), None);
        r.headers.add(OWNER_EPOCH_HEADER, None);
        assert_eq!(of(&r), None);
        assert_eq!(of(&record(0, "a", Some(-2))), Some(-2));
    }
}
