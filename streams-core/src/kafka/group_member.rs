//! The library's own member of the application's consumer group on Kafka ([`GroupMember`]): Kafka's
//! classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) over connections of its own
//! (`kafka::wire`), so that the leader runs the library's task assignor, which librdkafka's consumer
//! cannot. Its subscriptions and assignments are Kafka's consumer protocol (protocol type `consumer`,
//! protocol `stream`, as Kafka Streams names it), so Kafka's tools describe the group as usual.
//!
//! A thread of its own per member joins, syncs and heartbeats (Kafka's heartbeat thread), so neither a
//! JoinGroup that waits for the group to form nor a long processing round stops the session; the stream
//! thread talks to it through channels. Offsets are committed and fetched on a second connection to the
//! coordinator, from the stream thread, so a commit never waits behind a JoinGroup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::consumer_protocol::{decode_assignment, decode_subscription, encode_assignment, encode_subscription};
use super::wire::{by_topic, consumer_millis, Connection, WireError, WireSettings};
use crate::client::{
    Assignment, ClientError, ClientErrorKind, CommittedOffsets, GroupEvent, GroupMember, GroupMetadata, JoinedMember,
    OffsetAndMetadata, Subscription, TopicPartition,
};
use crate::config::StreamsConfig;
use crate::sync::LockUnpoisoned;

/// Kafka's consumer protocol, which Kafka Streams' members speak, under Kafka Streams' protocol name.
const PROTOCOL_TYPE: &str = "consumer";
const PROTOCOL_NAME: &str = "stream";

/// What a member needs to know about its group, from the consumer's settings.
#[derive(Debug, Clone)]
struct MemberSettings {
    wire: WireSettings,
    group_id: String,
    instance_id: Option<String>,
    /// `session.timeout.ms` (45 s).
    session_timeout: Duration,
    /// `max.poll.interval.ms` (300 s): the rebalance timeout, and how long the stream thread may go
    /// without polling before the member leaves the group.
    poll_interval: Duration,
    /// `heartbeat.interval.ms` (3 s).
    heartbeat_interval: Duration,
    /// `retry.backoff.ms` (100 ms).
    retry_backoff: Duration,
    /// `default.api.timeout.ms` (60 s): how long a commit or a fetch of committed offsets may retry.
    api_timeout: Duration,
}

impl MemberSettings {
    fn new(config: &StreamsConfig, client_id: &str) -> Result<MemberSettings, WireError> {
        let millis = |name, default| consumer_millis(config, name, default);
        Ok(MemberSettings {
            wire: WireSettings::from_config(config, client_id)?,
            group_id: config.application_id.clone(),
            instance_id: config.consumer_setting("group.instance.id").map(str::to_string),
            session_timeout: Duration::from_millis(config.session_timeout_ms()),
            poll_interval: millis("max.poll.interval.ms", 300_000)?,
            heartbeat_interval: millis("heartbeat.interval.ms", 3_000)?,
            retry_backoff: millis("retry.backoff.ms", 100)?,
            api_timeout: config.default_api_timeout,
        })
    }
}

/// The membership both threads read: the member thread writes it as the group answers.
#[derive(Debug, Clone)]
struct Membership {
    member_id: String,
    /// -1 outside a generation.
    generation: i32,
}

struct Shared {
    membership: Mutex<Membership>,
    /// When the stream thread last polled.
    last_poll: Mutex<Instant>,
    closing: AtomicBool,
    /// The member thread's connection to the coordinator, so that closing can cut a JoinGroup short.
    socket: Mutex<Option<std::net::TcpStream>>,
}

enum Command {
    Join(Subscription),
    Sync(i32, Vec<(String, Assignment)>),
}

/// A member of the group on Kafka (see the module's documentation).
pub(crate) struct KafkaGroupMember {
    settings: Arc<MemberSettings>,
    shared: Arc<Shared>,
    commands: Sender<Command>,
    /// What the member thread tells, each with the number of the join it answers.
    events: Receiver<(u64, Result<GroupEvent, ClientError>)>,
    /// The stream thread's connection to the coordinator, for offsets.
    offsets: Option<Connection>,
    thread: Option<JoinHandle<()>>,
    /// The membership commits go with: the member id and generation of the last assignment the stream
    /// thread polled, not of one the member thread has just received (whose partitions the stream
    /// thread does not know yet); none once lost.
    committing: Option<Membership>,
    /// How many joins were asked for: an answer to an earlier one (a group formed, an assignment, a
    /// rebalance heard) is stale once a later join is on its way.
    joins: u64,
}

impl KafkaGroupMember {
    pub(crate) fn new(config: &StreamsConfig, client_id: &str) -> Result<KafkaGroupMember, ClientError> {
        let settings =
            MemberSettings::new(config, client_id).map_err(|e| e.into_client_error("create group member"))?;
        let settings = Arc::new(settings);
        let shared = Arc::new(Shared {
            membership: Mutex::new(Membership { member_id: String::new(), generation: -1 }),
            last_poll: Mutex::new(Instant::now()),
            closing: AtomicBool::new(false),
            socket: Mutex::new(None),
        });
        let (commands, received) = mpsc::channel();
        let (events, polled) = mpsc::channel();
        let mut worker = Worker {
            settings: settings.clone(),
            shared: shared.clone(),
            commands: received,
            events,
            connection: None,
            phase: Phase::Out,
            subscription: None,
            next_heartbeat: Instant::now(),
            rejoin_told: false,
            joins: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("kstreams-group-{client_id}"))
            .spawn(move || worker.run())
            .map_err(|e| {
                ClientError::new("create group member", format!("cannot start its thread: {e}"), ClientErrorKind::Fatal)
            })?;
        Ok(KafkaGroupMember {
            settings,
            shared,
            commands,
            events: polled,
            offsets: None,
            thread: Some(thread),
            committing: None,
            joins: 0,
        })
    }

    fn send(&self, command: Command, operation: &str) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::new(operation, "the group member's thread has ended", ClientErrorKind::Fatal))
    }

    /// The offsets connection, found anew after a failure.
    fn offsets_connection(&mut self, operation: &str) -> Result<&mut Connection, ClientError> {
        if self.offsets.is_none() {
            self.offsets = Some(find_coordinator(&self.settings).map_err(|e| e.into_client_error(operation))?);
        }
        Ok(self.offsets.as_mut().expect("set above"))
    }

    /// Runs `call` on the offsets connection, dropping the connection when it broke or the coordinator
    /// moved (the next call finds the coordinator again).
    fn on_offsets<T>(
        &mut self,
        operation: &str,
        call: impl FnOnce(&mut Connection) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if self.offsets.as_ref().is_some_and(Connection::reauthentication_due) {
            self.offsets = None;
        }
        let connection = self.offsets_connection(operation)?;
        let result = call(connection);
        if let Err(e) = &result {
            let moved = e.code.and_then(|c| i16::try_from(c).ok()).is_some_and(|c| coordinator_error(c).is_err());
            if e.code.is_none() || moved {
                self.offsets = None;
            }
        }
        result
    }
}

impl GroupMember for KafkaGroupMember {
    fn join(&mut self, subscription: Subscription) -> Result<(), ClientError> {
        *self.shared.last_poll.lock_unpoisoned() = Instant::now();
        self.joins += 1;
        self.send(Command::Join(subscription), "join group")
    }

    fn poll(&mut self, timeout: Duration) -> Result<GroupEvent, ClientError> {
        *self.shared.last_poll.lock_unpoisoned() = Instant::now();
        let deadline = Instant::now() + timeout;
        let event = loop {
            let (join, event) = match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((join, event)) => (join, event?),
                Err(RecvTimeoutError::Timeout) => (self.joins, GroupEvent::Idle),
                Err(RecvTimeoutError::Disconnected) => {
                    let message = "the group member's thread has ended";
                    return Err(ClientError::new("poll group", message, ClientErrorKind::Fatal));
                }
            };
            match &event {
                // An answer to an earlier join than the last one asked for: that join answers again.
                GroupEvent::RejoinNeeded | GroupEvent::Lead { .. } | GroupEvent::Assigned { .. }
                    if join < self.joins =>
                {
                    continue;
                }
                GroupEvent::Assigned { generation, .. } => {
                    let member_id = self.shared.membership.lock_unpoisoned().member_id.clone();
                    self.committing = Some(Membership { member_id, generation: *generation });
                }
                GroupEvent::Lost { .. } => self.committing = None,
                _ => {}
            }
            break event;
        };
        // A long wait here is not a stream thread that stopped polling.
        *self.shared.last_poll.lock_unpoisoned() = Instant::now();
        Ok(event)
    }

    fn sync(&mut self, generation: i32, assignments: Vec<(String, Assignment)>) -> Result<(), ClientError> {
        self.send(Command::Sync(generation, assignments), "sync group")
    }

    fn commit(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        const OPERATION: &str = "commit offsets";
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(membership) = self.committing.clone() else {
            let message = "the member has no generation of its group";
            return Err(ClientError::new(OPERATION, message, ClientErrorKind::Fenced));
        };
        let partitions = offsets.iter().map(|(tp, committed)| {
            let partition = OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(committed.offset)
                .with_committed_metadata(Some(StrBytes::from_string(committed.metadata.clone())));
            (tp.clone(), partition)
        });
        let topics = by_topic(partitions)
            .into_iter()
            .map(|(name, partitions)| OffsetCommitRequestTopic::default().with_name(name).with_partitions(partitions))
            .collect();
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.settings.group_id.clone())))
            .with_generation_id_or_member_epoch(membership.generation)
            .with_member_id(StrBytes::from_string(membership.member_id))
            .with_group_instance_id(self.settings.instance_id.clone().map(StrBytes::from_string))
            .with_retention_time_ms(-1)
            .with_topics(topics);
        self.on_offsets(OPERATION, |c| {
            let (answer, _) = c.send(&request, 7, 8, Duration::ZERO).map_err(|e| e.into_client_error(OPERATION))?;
            for topic in &answer.topics {
                for p in &topic.partitions {
                    if p.error_code != 0 {
                        let what = format!("{OPERATION} of {}-{}", topic.name.0.as_str(), p.partition_index);
                        return Err(kafka_error(&what, p.error_code, c.address()));
                    }
                }
            }
            Ok(())
        })
    }

    fn committed(&mut self, partitions: &[TopicPartition]) -> Result<CommittedOffsets, ClientError> {
        const OPERATION: &str = "fetch committed offsets";
        let topics = by_topic(partitions.iter().map(|tp| (tp.clone(), tp.partition)))
            .into_iter()
            .map(|(name, indexes)| OffsetFetchRequestTopic::default().with_name(name).with_partition_indexes(indexes))
            .collect();
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.settings.group_id.clone())))
            .with_topics(Some(topics))
            .with_require_stable(true);
        let deadline = Instant::now() + self.settings.api_timeout;
        loop {
            let result = self.on_offsets(OPERATION, |c| {
                // Version 7: one group, and `require_stable` (KIP-447: wait out offsets of open
                // transactions), which Kafka 2.5+ has.
                let (answer, _) = c.send(&request, 7, 7, Duration::ZERO).map_err(|e| e.into_client_error(OPERATION))?;
                if answer.error_code != 0 {
                    return Err(kafka_error(OPERATION, answer.error_code, c.address()));
                }
                let mut committed = CommittedOffsets::new();
                for topic in &answer.topics {
                    for p in &topic.partitions {
                        if p.error_code != 0 {
                            let what = format!("{OPERATION} of {}-{}", topic.name.0.as_str(), p.partition_index);
                            return Err(kafka_error(&what, p.error_code, c.address()));
                        }
                        if p.committed_offset >= 0 {
                            let metadata = p.metadata.as_deref().unwrap_or("").to_string();
                            committed.insert(
                                TopicPartition::new(topic.name.0.as_str(), p.partition_index),
                                OffsetAndMetadata::with_metadata(p.committed_offset, metadata),
                            );
                        }
                    }
                }
                Ok(committed)
            });
            match result {
                Err(e) if e.kind == ClientErrorKind::Retriable && Instant::now() < deadline => {
                    std::thread::sleep(self.settings.retry_backoff);
                }
                other => return other,
            }
        }
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let m = self.committing.clone()?;
        let metadata = GroupMetadata::new(&self.settings.group_id, m.member_id, m.generation);
        Some(match &self.settings.instance_id {
            Some(id) => metadata.with_group_instance_id(id),
            None => metadata,
        })
    }

    fn close(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        {
            // Under the socket's lock: the member thread either sees `closing` before it waits on a new
            // connection, or its socket is here to be shut.
            let mut socket = self.shared.socket.lock_unpoisoned();
            self.shared.closing.store(true, Ordering::SeqCst);
            if let Some(socket) = socket.take() {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        }
        // A connection being opened (connect, TLS, SASL) cannot be cut short: past a bound the thread is
        // left to end by itself rather than hold up the close.
        let deadline = Instant::now() + self.settings.wire.request_timeout.min(Duration::from_secs(5));
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
        let member_id = std::mem::take(&mut self.shared.membership.lock_unpoisoned().member_id);
        // A static member keeps its place for its session timeout (KIP-345): a restart within it
        // moves nothing.
        if self.settings.instance_id.is_some() || member_id.is_empty() {
            return;
        }
        let request = leave_request(&self.settings, member_id);
        let left = self.on_offsets("leave group", |c| {
            let (answer, _) = c.send(&request, 3, 5, Duration::ZERO).map_err(|e| e.into_client_error("leave group"))?;
            let code = answer.members.iter().map(|m| m.error_code).find(|c| *c != 0).unwrap_or(answer.error_code);
            match code {
                0 => Ok(()),
                code => Err(kafka_error("leave group", code, c.address())),
            }
        });
        if let Err(e) = left {
            tracing::warn!(target: "kstreams::kafka::group", group = %self.settings.group_id, error = %e, "could not leave the group: its session will expire");
        }
    }
}

impl Drop for KafkaGroupMember {
    fn drop(&mut self) {
        self.close();
    }
}

/// Where the member thread is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not in a generation (not joined yet, or lost).
    Out,
    /// Leading `generation`: the assignment is the stream thread's to make.
    Leading(i32),
    /// In `generation` with an assignment.
    Stable { generation: i32 },
}

/// The member thread: joins, syncs, heartbeats.
struct Worker {
    settings: Arc<MemberSettings>,
    shared: Arc<Shared>,
    commands: Receiver<Command>,
    events: Sender<(u64, Result<GroupEvent, ClientError>)>,
    /// How many joins the stream thread asked for, this one included: the events say which they answer.
    joins: u64,
    connection: Option<Connection>,
    phase: Phase,
    subscription: Option<Subscription>,
    next_heartbeat: Instant,
    /// The stream thread heard, since the last join, that the group rebalances.
    rejoin_told: bool,
}

/// How one exchange with the coordinator ended, when not with an answer.
enum Failure {
    /// The coordinator moved or the connection broke: find it again and retry.
    Coordinator(String),
    /// Tell the stream thread.
    Event(Result<GroupEvent, ClientError>),
}

impl Worker {
    fn run(&mut self) {
        while !self.shared.closing.load(Ordering::SeqCst) {
            let beating = matches!(self.phase, Phase::Leading(_) | Phase::Stable { .. });
            let wait = if beating {
                self.next_heartbeat.saturating_duration_since(Instant::now())
            } else {
                Duration::from_millis(100)
            };
            match self.commands.recv_timeout(wait) {
                Ok(Command::Join(subscription)) => {
                    self.subscription = Some(subscription);
                    self.rejoin_told = false;
                    self.joins += 1;
                    self.join();
                }
                Ok(Command::Sync(generation, assignments)) => {
                    if self.phase == Phase::Leading(generation) {
                        self.sync(generation, assignments);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if beating {
                        self.heartbeat();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn tell(&self, event: Result<GroupEvent, ClientError>) {
        let _ = self.events.send((self.joins, event));
    }

    fn membership(&self) -> Membership {
        self.shared.membership.lock_unpoisoned().clone()
    }

    fn set_membership(&self, member_id: Option<String>, generation: i32) {
        let mut m = self.shared.membership.lock_unpoisoned();
        if let Some(id) = member_id {
            m.member_id = id;
        }
        m.generation = generation;
    }

    /// The coordinator connection, found if need be.
    fn connection(&mut self) -> Result<&mut Connection, Failure> {
        if self.connection.as_ref().is_some_and(Connection::reauthentication_due) {
            self.lose_connection("its SASL session is about to end (connections.max.reauth.ms)");
        }
        if self.connection.is_none() {
            let connection = find_coordinator(&self.settings).map_err(|e| failure_of("find group coordinator", e))?;
            let mut socket = self.shared.socket.lock_unpoisoned();
            if self.shared.closing.load(Ordering::SeqCst) {
                return Err(Failure::Event(Ok(GroupEvent::Idle)));
            }
            *socket = connection.socket();
            drop(socket);
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("set above"))
    }

    fn lose_connection(&mut self, why: &str) {
        tracing::debug!(target: "kstreams::kafka::group", group = %self.settings.group_id, why, "finding the group coordinator again");
        self.connection = None;
        *self.shared.socket.lock_unpoisoned() = None;
    }

    /// Runs `exchange` until it answers, finding the coordinator again after a retriable failure.
    fn with_retries<T>(
        &mut self,
        mut exchange: impl FnMut(&mut Connection) -> Result<T, Failure>,
    ) -> Result<T, Result<GroupEvent, ClientError>> {
        loop {
            if self.shared.closing.load(Ordering::SeqCst) {
                return Err(Ok(GroupEvent::Idle));
            }
            let result = self.connection().and_then(&mut exchange);
            match result {
                Ok(answer) => return Ok(answer),
                Err(Failure::Event(event)) => return Err(event),
                Err(Failure::Coordinator(why)) => {
                    self.lose_connection(&why);
                    std::thread::sleep(self.settings.retry_backoff);
                }
            }
        }
    }

    fn join(&mut self) {
        let settings = self.settings.clone();
        let Some(subscription) = self.subscription.clone() else { return };
        let metadata = encode_subscription(&subscription);
        let mut member_id = self.membership().member_id;
        let answer = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
                .with_session_timeout_ms(millis_i32(settings.session_timeout))
                .with_rebalance_timeout_ms(millis_i32(settings.poll_interval))
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_group_instance_id(settings.instance_id.clone().map(StrBytes::from_string))
                .with_protocol_type(StrBytes::from_static_str(PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(PROTOCOL_NAME))
                    .with_metadata(metadata.clone())]);
            // The coordinator holds a JoinGroup until the group forms, up to the rebalance timeout.
            let wait = settings.poll_interval + Duration::from_secs(5);
            let result = self.with_retries(|c| {
                let (answer, _) = c.send(&request, 5, 8, wait).map_err(failure)?;
                coordinator_error(answer.error_code)?;
                Ok(answer)
            });
            let answer = match result {
                Ok(answer) => answer,
                Err(event) => return self.fail_join(event),
            };
            match ResponseError::try_from_code(answer.error_code) {
                None => break answer,
                // Kafka 2.2+ gives a new member its id first, to be sent back (KIP-394).
                Some(ResponseError::MemberIdRequired) => {
                    member_id = answer.member_id.to_string();
                    // Known from here on, so a close can leave the group with it.
                    self.set_membership(Some(member_id.clone()), -1);
                }
                Some(ResponseError::UnknownMemberId) => {
                    // The coordinator dropped the member (its JoinGroup outlived the rebalance, its
                    // session expired): what it owned may have moved. As Kafka's consumer, it loses its
                    // partitions and joins again as a new member, from the stream thread.
                    self.set_membership(Some(String::new()), -1);
                    let reason = "join group: the coordinator no longer knows this member".to_string();
                    return self.fail_join(Ok(GroupEvent::Lost { reason }));
                }
                Some(ResponseError::RebalanceInProgress) => std::thread::sleep(settings.retry_backoff),
                Some(_) => {
                    let error = kafka_error("join group", answer.error_code, "the group coordinator");
                    return self.fail_join(Err(error));
                }
            }
        };
        let generation = answer.generation_id;
        let member_id = answer.member_id.to_string();
        self.set_membership(Some(member_id.clone()), -1);
        self.next_heartbeat = Instant::now() + settings.heartbeat_interval;
        if answer.leader.as_str() == member_id {
            let mut members = Vec::with_capacity(answer.members.len());
            for m in &answer.members {
                match decode_subscription(&m.metadata) {
                    Ok(subscription) => members.push(JoinedMember {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
                        subscription,
                    }),
                    Err(e) => {
                        let message = format!("member {}'s subscription cannot be read: {e}", m.member_id.as_str());
                        return self.fail_join(Err(ClientError::new("join group", message, ClientErrorKind::Fatal)));
                    }
                }
            }
            self.phase = Phase::Leading(generation);
            self.tell(Ok(GroupEvent::Lead { generation, members }));
        } else {
            self.phase = Phase::Leading(generation);
            self.sync(generation, Vec::new());
        }
    }

    fn fail_join(&mut self, event: Result<GroupEvent, ClientError>) {
        self.phase = Phase::Out;
        if !matches!(event, Ok(GroupEvent::Idle)) {
            self.tell(event);
        }
    }

    fn sync(&mut self, generation: i32, assignments: Vec<(String, Assignment)>) {
        let settings = self.settings.clone();
        let member_id = self.membership().member_id;
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member_id))
            .with_group_instance_id(settings.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(Some(StrBytes::from_static_str(PROTOCOL_TYPE)))
            .with_protocol_name(Some(StrBytes::from_static_str(PROTOCOL_NAME)))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(member, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(member.clone()))
                            .with_assignment(encode_assignment(a))
                    })
                    .collect(),
            );
        // The coordinator holds a follower's SyncGroup until the leader's arrives.
        let wait = settings.poll_interval;
        let result = self.connection().and_then(|c| {
            let (answer, _) = c.send(&request, 5, 5, wait).map_err(failure)?;
            coordinator_error(answer.error_code)?;
            Ok(answer)
        });
        let answer = match result {
            Ok(answer) => answer,
            // As Kafka's consumer: a coordinator that moved or a broken connection mid-sync means
            // joining again (the new coordinator would not know this sync's generation).
            Err(Failure::Coordinator(why)) => {
                self.lose_connection(&why);
                return self.fail_join(Ok(GroupEvent::RejoinNeeded));
            }
            Err(Failure::Event(event)) => return self.fail_join(event),
        };
        if let Some(error) = ResponseError::try_from_code(answer.error_code) {
            return self.out_of_generation(error, "sync group");
        }
        match decode_assignment(&answer.assignment) {
            Ok(assignment) => {
                self.set_membership(None, generation);
                self.phase = Phase::Stable { generation };
                self.tell(Ok(GroupEvent::Assigned { generation, assignment }));
            }
            Err(e) => {
                let message = format!("the assignment of generation {generation} cannot be read: {e}");
                self.fail_join(Err(ClientError::new("sync group", message, ClientErrorKind::Fatal)));
            }
        }
    }

    /// The group answered `error` to a member of a generation: rejoin, or the generation is lost.
    fn out_of_generation(&mut self, error: ResponseError, operation: &str) {
        match error {
            ResponseError::RebalanceInProgress => {
                // Told once per join; the member goes on heartbeating in its generation meanwhile, which
                // keeps its session (the group waits up to the rebalance timeout for it to rejoin).
                if !std::mem::replace(&mut self.rejoin_told, true) {
                    self.tell(Ok(GroupEvent::RejoinNeeded));
                }
            }
            ResponseError::UnknownMemberId | ResponseError::IllegalGeneration => {
                let reset_id = (error == ResponseError::UnknownMemberId).then(String::new);
                self.set_membership(reset_id, -1);
                self.phase = Phase::Out;
                self.tell(Ok(GroupEvent::Lost { reason: format!("{operation}: {error}") }));
            }
            _ => {
                self.phase = Phase::Out;
                self.set_membership(None, -1);
                self.tell(Err(kafka_error(operation, error.code(), "the group coordinator")));
            }
        }
    }

    fn heartbeat(&mut self) {
        let settings = self.settings.clone();
        self.next_heartbeat = Instant::now() + settings.heartbeat_interval;
        let last_poll = *self.shared.last_poll.lock_unpoisoned();
        if matches!(self.phase, Phase::Stable { .. }) && last_poll.elapsed() > settings.poll_interval {
            // Kafka's consumer leaves the group when its application stops polling: the group must not
            // wait on a thread that is stuck.
            let membership = self.membership();
            self.phase = Phase::Out;
            self.set_membership(None, -1);
            if settings.instance_id.is_none() {
                let request = leave_request(&settings, membership.member_id);
                if let Ok(c) = self.connection() {
                    let _ = c.send(&request, 3, 5, Duration::ZERO);
                }
                self.set_membership(Some(String::new()), -1);
            }
            let reason =
                format!("the stream thread did not poll for max.poll.interval.ms ({:?})", settings.poll_interval);
            return self.tell(Ok(GroupEvent::Lost { reason }));
        }
        let (generation, membership) = match self.phase {
            Phase::Leading(g) | Phase::Stable { generation: g, .. } => (g, self.membership()),
            Phase::Out => return,
        };
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(membership.member_id))
            .with_group_instance_id(settings.instance_id.clone().map(StrBytes::from_string));
        let answer = match self.connection() {
            Ok(c) => c.send(&request, 3, 4, Duration::ZERO).map_err(failure),
            Err(f) => Err(f),
        };
        match answer.and_then(|(a, _)| coordinator_error(a.error_code).map(|()| a.error_code)) {
            Ok(0) => {}
            Ok(code) => {
                let error = ResponseError::try_from_code(code).expect("not 0");
                self.out_of_generation(error, "heartbeat");
            }
            Err(Failure::Coordinator(why)) => self.lose_connection(&why),
            Err(Failure::Event(event)) => self.tell(event),
        }
    }
}

/// A wire failure as the member thread handles it.
fn failure(e: WireError) -> Failure {
    failure_of("group protocol", e)
}

fn failure_of(operation: &str, e: WireError) -> Failure {
    if e.is_retriable() {
        Failure::Coordinator(e.to_string())
    } else {
        Failure::Event(Err(e.into_client_error(operation)))
    }
}

/// The coordinator's codes that mean "ask someone else, or later".
fn coordinator_error(code: i16) -> Result<(), Failure> {
    match ResponseError::try_from_code(code) {
        Some(
            e @ (ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress),
        ) => Err(Failure::Coordinator(e.to_string())),
        _ => Ok(()),
    }
}

/// A dynamic member's LeaveGroup (version 3+: the member in the members list).
fn leave_request(settings: &MemberSettings, member_id: String) -> LeaveGroupRequest {
    LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
        .with_members(vec![MemberIdentity::default().with_member_id(StrBytes::from_string(member_id))])
}

/// A connection to the group's coordinator (FindCoordinator through a bootstrap server).
fn find_coordinator(settings: &MemberSettings) -> Result<Connection, WireError> {
    let mut bootstrap = Connection::bootstrap(&settings.wire)?;
    let request =
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(settings.group_id.clone())).with_key_type(0);
    let (answer, _) = bootstrap.send(&request, 0, 3, Duration::ZERO)?;
    if answer.error_code != 0 {
        return Err(WireError::Refused {
            address: bootstrap.address().to_string(),
            api: "FindCoordinator",
            what: format!("group {}", settings.group_id),
            code: answer.error_code,
        });
    }
    let host = answer.host.as_str();
    // An IPv6 address in brackets, as host:port needs it.
    let address =
        if host.contains(':') { format!("[{host}]:{}", answer.port) } else { format!("{host}:{}", answer.port) };
    if address == bootstrap.address() {
        return Ok(bootstrap);
    }
    Connection::open(&address, &settings.wire)
}

/// A Kafka error code in an answer as the runtime reads it.
fn kafka_error(operation: &str, code: i16, address: &str) -> ClientError {
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code));
    let kind = match error {
        ResponseError::UnknownMemberId | ResponseError::IllegalGeneration => ClientErrorKind::Fenced,
        // The group is completing a rebalance: the commit may go through once it has (Kafka's
        // RebalanceInProgressException, which Kafka Streams retries after the rebalance).
        ResponseError::RebalanceInProgress => ClientErrorKind::Retriable,
        // Two processes with one `group.instance.id`: fatal, as in Kafka's consumer.
        ResponseError::FencedInstanceId => ClientErrorKind::Fatal,
        e if e.is_retriable() => ClientErrorKind::Retriable,
        ResponseError::UnstableOffsetCommit => ClientErrorKind::Retriable,
        _ => ClientErrorKind::Fatal,
    };
    ClientError::new(operation, format!("{address} answered {error} ({code})"), kind).with_code(i32::from(code))
}

fn millis_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
