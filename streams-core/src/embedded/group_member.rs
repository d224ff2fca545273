//! The embedded broker's [`GroupMember`]: the library's own member of a group under the classic
//! protocol (`classic_group`), as `kafka::group_member` is on Kafka. Its calls act on the broker's
//! state directly; its polls are its heartbeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::classic_group::{Gone, MemberConfig};
use super::EmbeddedBroker;
use crate::client::{
    Assignment, ClientError, ClientErrorKind, CommittedOffsets, GroupEvent, GroupMember, GroupMetadata,
    OffsetAndMetadata, Subscription, TopicPartition,
};
use crate::config::StreamsConfig;

pub(crate) struct EmbeddedGroupMember {
    broker: EmbeddedBroker,
    group: String,
    client_id: String,
    instance_id: Option<String>,
    session_timeout_ms: i64,
    rebalance_timeout_ms: i64,
    api_timeout: Duration,
    member_id: Option<String>,
    /// The generation of the member's last assignment; -1 outside one.
    generation: i32,
    /// Held while the member's process runs: what a heartbeat thread would tell Kafka.
    alive: Option<Arc<()>>,
    /// What the next poll says, as Kafka's member says it from its thread (a refused join).
    pending: Option<ClientError>,
}

impl EmbeddedGroupMember {
    pub(crate) fn new(broker: &EmbeddedBroker, config: &StreamsConfig, client_id: &str) -> Result<Self, ClientError> {
        let poll_interval = config.consumer_millis("max.poll.interval.ms", 300_000).map_err(|message| {
            let message = format!("setting `max.poll.interval.ms`: {message}");
            ClientError::new("create group member", message, ClientErrorKind::Fatal)
        })?;
        Ok(EmbeddedGroupMember {
            broker: broker.clone(),
            group: config.application_id.clone(),
            client_id: client_id.to_string(),
            instance_id: config.consumer_setting("group.instance.id").map(str::to_string),
            session_timeout_ms: config.session_timeout_ms() as i64,
            rebalance_timeout_ms: i64::try_from(poll_interval.as_millis()).unwrap_or(i64::MAX),
            api_timeout: config.default_api_timeout,
            member_id: None,
            generation: -1,
            alive: Some(Arc::new(())),
            pending: None,
        })
    }

    fn gone(&mut self, operation: &str, gone: Gone) -> Result<GroupEvent, ClientError> {
        self.generation = -1;
        match gone {
            // Two processes with one `group.instance.id`: fatal, as in Kafka's consumer.
            Gone::Fenced(why) => Err(ClientError::new(operation, why, ClientErrorKind::Fatal)),
            Gone::Removed(reason) => {
                self.member_id = None;
                Ok(GroupEvent::Lost { reason })
            }
        }
    }
}

impl GroupMember for EmbeddedGroupMember {
    fn join(&mut self, subscription: Subscription) -> Result<(), ClientError> {
        let Some(alive) = &self.alive else {
            return Err(ClientError::new("join group", "the member was closed", ClientErrorKind::Fatal));
        };
        let config = MemberConfig {
            instance_id: self.instance_id.clone(),
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            alive: Arc::downgrade(alive),
        };
        let now = self.broker.session_ms();
        let joined = {
            let mut guard = self.broker.lock();
            let state = &mut *guard;
            let client_id = &self.client_id;
            let counter = &mut state.members_created;
            let new_id = || {
                *counter += 1;
                format!("{client_id}-{counter}")
            };
            let group = state.groups.entry(self.group.clone()).or_default();
            group.classic.join(self.member_id.as_deref(), new_id, config, subscription, now)
        };
        self.broker.notify();
        match joined {
            Ok(id) => {
                self.member_id = Some(id);
                Ok(())
            }
            Err(gone) => {
                self.pending = self.gone("join group", gone).err();
                Ok(())
            }
        }
    }

    fn poll(&mut self, timeout: Duration) -> Result<GroupEvent, ClientError> {
        if let Some(error) = self.pending.take() {
            return Err(error);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let Some(id) = self.member_id.clone() else { return Ok(GroupEvent::Idle) };
            let now = self.broker.session_ms();
            let polled = {
                let mut state = self.broker.lock();
                state.groups.entry(self.group.clone()).or_default().classic.poll(&id, now)
            };
            match polled {
                Err(gone) => return self.gone("poll group", gone),
                Ok(GroupEvent::Idle) => {}
                Ok(event) => {
                    match &event {
                        GroupEvent::Assigned { generation, .. } => self.generation = *generation,
                        GroupEvent::Lost { .. } => {
                            (self.member_id, self.generation) = (None, -1);
                        }
                        _ => {}
                    }
                    self.broker.notify();
                    return Ok(event);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(GroupEvent::Idle);
            }
            self.broker.wait(left.min(Duration::from_millis(10)));
        }
    }

    fn sync(&mut self, generation: i32, assignments: Vec<(String, Assignment)>) -> Result<(), ClientError> {
        let Some(id) = self.member_id.clone() else { return Ok(()) };
        let now = self.broker.session_ms();
        let mut state = self.broker.lock();
        state.groups.entry(self.group.clone()).or_default().classic.sync(&id, generation, assignments, now);
        drop(state);
        self.broker.notify();
        Ok(())
    }

    fn commit(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        const OPERATION: &str = "commit offsets";
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(id) = self.member_id.clone().filter(|_| self.generation >= 0) else {
            return Err(ClientError::new(
                OPERATION,
                "the member has no generation of its group",
                ClientErrorKind::Fenced,
            ));
        };
        let mut state = self.broker.lock();
        state.check_journal(OPERATION)?;
        let group = state.groups.entry(self.group.clone()).or_default();
        group
            .classic
            .check(&id, self.generation, false)
            .map_err(|(kind, why)| ClientError::new(OPERATION, why, kind))?;
        for (tp, offset) in offsets {
            state.commit_offset(&self.group, tp, offset.clone());
        }
        Ok(())
    }

    fn committed(&mut self, partitions: &[TopicPartition]) -> Result<CommittedOffsets, ClientError> {
        let deadline = Instant::now() + self.api_timeout;
        loop {
            let now = self.broker.now_ms();
            {
                let mut state = self.broker.lock();
                state.expire_transactions(now);
                // Offsets an open transaction is still committing are not stable yet (KIP-447): wait.
                if !partitions.iter().any(|tp| state.offsets_pending(&self.group, tp)) {
                    let committed = state.groups.get(&self.group).map(|g| &g.committed);
                    return Ok(partitions
                        .iter()
                        .filter_map(|tp| committed.and_then(|c| c.get(tp)).map(|c| (tp.clone(), c.clone())))
                        .collect());
                }
            }
            // Under a simulation's clock nothing ends the transaction while this waits: the caller is
            // told to come back (a group member's consumer tries again at its next poll).
            if Instant::now() >= deadline || self.broker.simulated() {
                return Err(ClientError::new(
                    "fetch committed offsets",
                    "an open transaction is still committing offsets of these partitions",
                    ClientErrorKind::Retriable,
                ));
            }
            self.broker.wait(Duration::from_millis(10));
        }
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let id = self.member_id.as_ref().filter(|_| self.generation >= 0)?;
        let metadata = GroupMetadata::new(&self.group, id, self.generation);
        Some(match &self.instance_id {
            Some(instance) => metadata.with_group_instance_id(instance),
            None => metadata,
        })
    }

    fn close(&mut self) {
        // The process stops: a static member's place waits for its session; a dynamic one leaves.
        self.alive = None;
        let Some(id) = self.member_id.take() else { return };
        if self.instance_id.is_none() {
            let now = self.broker.session_ms();
            let mut state = self.broker.lock();
            state.groups.entry(self.group.clone()).or_default().classic.leave(&id, now);
            drop(state);
            self.broker.notify();
        }
    }
}

impl Drop for EmbeddedGroupMember {
    fn drop(&mut self) {
        // Dropped without close (a crash): only the session timeout removes it.
        self.alive = None;
    }
}
