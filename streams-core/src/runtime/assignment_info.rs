//! What the members of an application's group tell the leader, and what the leader sends back: the
//! user data of the classic protocol's subscription and assignment (Kafka Streams' `SubscriptionInfo`
//! and `AssignmentInfo`, docs/architecture.md "Task assignment"). Only members of this library join a
//! group of this library's application, so the encoding is ours: versioned, compact, and read without
//! trusting a byte of it (a decode error names what was being read and where).
//!
//! Tasks travel as task ids, not partitions: a member derives a task's partitions from its own
//! topology, as every member has the same one.

use std::collections::BTreeMap;

use super::assignor::ProcessId;
use crate::task_id::TaskId;

/// The version this library writes, and the newest it reads. Each encoding starts with it and the
/// newest version its writer reads, so that a reader of an older version can still tell a newer
/// writer's (Kafka Streams' version probing, for a rolling upgrade that changes the encoding).
const VERSION: u16 = 1;

/// One member's (stream thread's) subscription user data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SubscriptionInfo {
    /// The instance the member belongs to: the leader groups members by it.
    pub(crate) process_id: ProcessId,
    /// `application.server` (host:port), where interactive queries reach the instance.
    pub(crate) endpoint: Option<String>,
    /// `client.tag.*`: for rack-aware standbys.
    pub(crate) client_tags: BTreeMap<String, String>,
    /// Per task whose state the member has: the sum of its changelog offsets there, or
    /// `assignor::LATEST_OFFSET` for a task it runs as active.
    pub(crate) task_offset_sums: BTreeMap<TaskId, i64>,
    /// Kafka Streams' `errorCode`: 0, or what the member asks of the group (shutting the application
    /// down).
    pub(crate) error_code: i32,
}

/// One member's assignment user data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AssignmentInfo {
    /// The tasks it runs.
    pub(crate) active: Vec<TaskId>,
    /// The tasks it keeps a copy of (standbys and warm-ups).
    pub(crate) standby: Vec<TaskId>,
    /// Every instance's endpoint with the tasks it runs and those it keeps a copy of: where interactive
    /// queries find a key's owner.
    pub(crate) endpoints: BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)>,
    /// When the group should rebalance again (milliseconds since the epoch): warm-ups are out, a
    /// probing rebalance will move them once caught up.
    pub(crate) next_rebalance_ms: Option<i64>,
    /// Kafka Streams' `errCode`: 0, or why the leader could not assign (missing source topics, ...) or
    /// that the application is to shut down.
    pub(crate) error_code: i32,
}

/// User data that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UserDataError {
    /// It ends before what it says it holds.
    #[error("{kind} user data ends at byte {at} while reading {field}")]
    Truncated { kind: &'static str, field: &'static str, at: usize },
    /// A version this library cannot read, from a writer that reads up to `latest_supported`.
    #[error("{kind} user data has version {version} (its writer reads up to {latest_supported}); this library reads up to {VERSION}")]
    Version { kind: &'static str, version: u16, latest_supported: u16 },
    /// A string that is not UTF-8, or bytes left over at the end.
    #[error("{kind} user data is malformed at byte {at}: {what}")]
    Malformed { kind: &'static str, what: &'static str, at: usize },
}

impl SubscriptionInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Writer::new();
        out.u16(VERSION);
        out.u16(VERSION);
        out.u128(self.process_id.0);
        out.optional_string(self.endpoint.as_deref());
        out.u32(self.client_tags.len());
        for (key, value) in &self.client_tags {
            out.string(key);
            out.string(value);
        }
        out.u32(self.task_offset_sums.len());
        for (&task, &sum) in &self.task_offset_sums {
            out.task(task);
            out.i64(sum);
        }
        out.i32(self.error_code);
        out.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, UserDataError> {
        let mut r = Reader::new("subscription", bytes);
        r.version()?;
        let process_id = ProcessId(r.u128("the process id")?);
        let endpoint = r.optional_string("the endpoint")?;
        let mut client_tags = BTreeMap::new();
        for _ in 0..r.count("the client tags", 4)? {
            client_tags.insert(r.string("a client tag")?, r.string("a client tag")?);
        }
        let mut task_offset_sums = BTreeMap::new();
        for _ in 0..r.count("the task offset sums", 16)? {
            task_offset_sums.insert(r.task("the task offset sums")?, r.i64("the task offset sums")?);
        }
        let error_code = r.i32("the error code")?;
        r.end()?;
        Ok(SubscriptionInfo { process_id, endpoint, client_tags, task_offset_sums, error_code })
    }
}

impl AssignmentInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Writer::new();
        out.u16(VERSION);
        out.u16(VERSION);
        out.tasks(&self.active);
        out.tasks(&self.standby);
        out.u32(self.endpoints.len());
        for (endpoint, (active, standby)) in &self.endpoints {
            out.string(endpoint);
            out.tasks(active);
            out.tasks(standby);
        }
        out.i64(self.next_rebalance_ms.unwrap_or(-1));
        out.i32(self.error_code);
        out.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, UserDataError> {
        let mut r = Reader::new("assignment", bytes);
        r.version()?;
        let active = r.tasks("the active tasks")?;
        let standby = r.tasks("the standby tasks")?;
        let mut endpoints = BTreeMap::new();
        for _ in 0..r.count("the endpoints", 10)? {
            let endpoint = r.string("an endpoint")?;
            let tasks = (r.tasks("an endpoint's active tasks")?, r.tasks("an endpoint's standby tasks")?);
            endpoints.insert(endpoint, tasks);
        }
        let next = r.i64("the next rebalance")?;
        let error_code = r.i32("the error code")?;
        r.end()?;
        Ok(AssignmentInfo { active, standby, endpoints, next_rebalance_ms: (next >= 0).then_some(next), error_code })
    }
}

/// Big-endian fields; strings and lists prefixed with their length.
struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(Vec::with_capacity(64))
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: usize) {
        self.0.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn optional_string(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.string(s);
            }
        }
    }
    fn task(&mut self, task: TaskId) {
        self.0.extend_from_slice(&task.subtopology.to_be_bytes());
        self.0.extend_from_slice(&task.partition.to_be_bytes());
    }
    fn tasks(&mut self, tasks: &[TaskId]) {
        self.u32(tasks.len());
        for &task in tasks {
            self.task(task);
        }
    }
}

struct Reader<'a> {
    kind: &'static str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(kind: &'static str, bytes: &'a [u8]) -> Self {
        Reader { kind, bytes, at: 0 }
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], UserDataError> {
        let end = self.at.checked_add(N).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(UserDataError::Truncated { kind: self.kind, field, at: self.bytes.len() })?;
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[self.at..end]);
        self.at = end;
        Ok(out)
    }

    fn version(&mut self) -> Result<(), UserDataError> {
        let version = u16::from_be_bytes(self.take("the version")?);
        let latest_supported = u16::from_be_bytes(self.take("the latest supported version")?);
        if version == 0 || version > VERSION {
            return Err(UserDataError::Version { kind: self.kind, version, latest_supported });
        }
        Ok(())
    }

    fn u32(&mut self, field: &'static str) -> Result<usize, UserDataError> {
        Ok(u32::from_be_bytes(self.take(field)?) as usize)
    }

    /// A count of entries at least `entry_size` bytes each: one that the rest cannot hold is refused
    /// before anything is allocated for it.
    fn count(&mut self, field: &'static str, entry_size: usize) -> Result<usize, UserDataError> {
        let count = self.u32(field)?;
        if count.saturating_mul(entry_size) > self.bytes.len() - self.at {
            return Err(UserDataError::Truncated { kind: self.kind, field, at: self.bytes.len() });
        }
        Ok(count)
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, UserDataError> {
        Ok(i32::from_be_bytes(self.take(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, UserDataError> {
        Ok(i64::from_be_bytes(self.take(field)?))
    }

    fn u128(&mut self, field: &'static str) -> Result<u128, UserDataError> {
        Ok(u128::from_be_bytes(self.take(field)?))
    }

    fn string(&mut self, field: &'static str) -> Result<String, UserDataError> {
        let len = self.count(field, 1)?;
        let start = self.at;
        self.at += len;
        String::from_utf8(self.bytes[start..self.at].to_vec()).map_err(|_| UserDataError::Malformed {
            kind: self.kind,
            what: "a string that is not UTF-8",
            at: start,
        })
    }

    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, UserDataError> {
        match self.take::<1>(field)?[0] {
            0 => Ok(None),
            1 => self.string(field).map(Some),
            _ => {
                Err(UserDataError::Malformed { kind: self.kind, what: "an optional string's marker", at: self.at - 1 })
            }
        }
    }

    fn task(&mut self, field: &'static str) -> Result<TaskId, UserDataError> {
        let subtopology = u32::from_be_bytes(self.take(field)?);
        let partition = i32::from_be_bytes(self.take(field)?);
        Ok(TaskId { subtopology, partition })
    }

    fn tasks(&mut self, field: &'static str) -> Result<Vec<TaskId>, UserDataError> {
        let count = self.count(field, 8)?;
        (0..count).map(|_| self.task(field)).collect()
    }

    fn end(&self) -> Result<(), UserDataError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(UserDataError::Malformed { kind: self.kind, what: "bytes after the last field", at: self.at })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn task(subtopology: u32, partition: i32) -> TaskId {
        TaskId { subtopology, partition }
    }

    #[test]
    fn a_subscription_and_an_assignment_read_back_as_written() {
        let subscription = SubscriptionInfo {
            process_id: ProcessId(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            endpoint: Some("orders-1.internal:8080".into()),
            client_tags: BTreeMap::from([("zone".into(), "eu-west-1a".into())]),
            task_offset_sums: BTreeMap::from([(task(0, 3), -2), (task(1, 0), 41_000)]),
            error_code: 2,
        };
        assert_eq!(SubscriptionInfo::decode(&subscription.encode()), Ok(subscription));
        let assignment = AssignmentInfo {
            active: vec![task(0, 3), task(1, 1)],
            standby: vec![task(1, 0)],
            endpoints: BTreeMap::from([("orders-1.internal:8080".into(), (vec![task(0, 3)], vec![task(1, 0)]))]),
            next_rebalance_ms: Some(1_765_000_000_000),
            error_code: 0,
        };
        assert_eq!(AssignmentInfo::decode(&assignment.encode()), Ok(assignment));
        assert_eq!(AssignmentInfo::decode(&AssignmentInfo::default().encode()), Ok(AssignmentInfo::default()));
    }

    #[test]
    fn unreadable_user_data_says_what_and_where() {
        let bytes = SubscriptionInfo { endpoint: Some("h:1".into()), ..Default::default() }.encode();
        let error = SubscriptionInfo::decode(&bytes[..bytes.len() - 6]).unwrap_err();
        let at = bytes.len() - 6;
        assert_eq!(
            error.to_string(),
            format!("subscription user data ends at byte {at} while reading the task offset sums")
        );
        let mut newer = bytes.clone();
        newer[1] = 9;
        newer[3] = 10;
        assert_eq!(
            SubscriptionInfo::decode(&newer).unwrap_err().to_string(),
            "subscription user data has version 9 (its writer reads up to 10); this library reads up to 1"
        );
        let mut longer = AssignmentInfo::default().encode();
        longer.push(0);
        assert!(matches!(AssignmentInfo::decode(&longer), Err(UserDataError::Malformed { at: 28, .. })));
        // A count far beyond the bytes: refused before anything is allocated.
        let mut huge = AssignmentInfo::default().encode();
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(AssignmentInfo::decode(&huge), Err(UserDataError::Truncated { .. })));
    }

    proptest! {
        /// Any bytes (after a valid version, or not): an error or a value, never a panic; a value
        /// encodes to what decodes to it again.
        #[test]
        fn any_bytes_decode_to_an_error_or_a_value(
            versioned in any::<bool>(),
            rest in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = if versioned { [VERSION.to_be_bytes(), VERSION.to_be_bytes()].concat() } else { Vec::new() };
            bytes.extend(rest);
            if let Ok(info) = SubscriptionInfo::decode(&bytes) {
                prop_assert_eq!(SubscriptionInfo::decode(&info.encode()), Ok(info));
            }
            if let Ok(info) = AssignmentInfo::decode(&bytes) {
                prop_assert_eq!(AssignmentInfo::decode(&info.encode()), Ok(info));
            }
        }

        #[test]
        fn any_assignment_reads_back(
            active in prop::collection::vec((0u32..5, 0i32..64), 0..20),
            endpoints in prop::collection::btree_map("[a-z0-9.:-]{0,20}", prop::collection::vec((0u32..5, 0i32..64), 0..5), 0..4),
            next in prop::option::of(0i64..i64::MAX),
        ) {
            let tasks = |v: &[(u32, i32)]| v.iter().map(|&(s, p)| task(s, p)).collect::<Vec<_>>();
            let info = AssignmentInfo {
                active: tasks(&active),
                standby: tasks(&active[..active.len() / 2]),
                endpoints: endpoints.iter().map(|(e, t)| (e.clone(), (tasks(t), tasks(t)))).collect(),
                next_rebalance_ms: next,
                error_code: 0,
            };
            prop_assert_eq!(AssignmentInfo::decode(&info.encode()), Ok(info));
        }
    }
}
