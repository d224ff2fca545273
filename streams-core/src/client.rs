//! The seam between the runtime and its broker clients (Kafka Streams' `KafkaClientSupplier`). The
//! runtime asks a [`ClientSupplier`] for a consumer, a producer and an admin client and speaks only these
//! traits; `kafka::RdKafkaSupplier` (rdkafka, the `kafka` cargo feature) is the default, and an embedded
//! broker plugs in here too. Nothing above this seam knows which broker it runs on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use crate::client_error::{ClientError, ClientErrorKind};
use crate::config::StreamsConfig;
use crate::record::{ProducedRecord, RawRecord};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// An offset to commit (the next record to read) with the metadata string committed beside it (Kafka's
/// `OffsetAndMetadata`; empty for none). The runtime puts Kafka Streams' partition time and processor
/// metadata there, so a commit replaces both: every commit of a partition must carry its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    /// The offset of the next record to read.
    pub offset: i64,
    /// The metadata string; empty for none.
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// `offset` without metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata { offset, metadata: String::new() }
    }

    /// `offset` with `metadata`.
    pub fn with_metadata(offset: i64, metadata: impl Into<String>) -> Self {
        OffsetAndMetadata { offset, metadata: metadata.into() }
    }
}

/// The group's committed offsets of partitions just assigned; a partition absent had none (or they could
/// not be read).
pub type CommittedOffsets = BTreeMap<TopicPartition, OffsetAndMetadata>;

/// A consumer's group membership as a transactional offset commit carries it (KIP-447): the group
/// coordinator refuses offsets from a member that is no longer in the group at this generation, which is
/// what fences a zombie instance out. Kafka's `ConsumerGroupMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMetadata {
    /// `group.id` (the application id).
    pub group_id: String,
    /// The id the group coordinator gave the member when it joined.
    pub member_id: String,
    /// The generation of the group the member last joined.
    pub generation_id: i32,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
}

impl GroupMetadata {
    /// A dynamic member's metadata.
    pub fn new(group_id: impl Into<String>, member_id: impl Into<String>, generation_id: i32) -> Self {
        GroupMetadata { group_id: group_id.into(), member_id: member_id.into(), generation_id, group_instance_id: None }
    }

    /// The same member, static with `group.instance.id` `id`.
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
}

/// Commits offsets, also from inside a rebalance callback.
pub trait OffsetCommitter {
    /// Commits, for each partition, the offset of the next record to read (at_least_once).
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError>;

    /// The membership to send with offsets committed in a transaction (exactly_once_v2); `None`
    /// before the consumer has joined its group.
    fn group_metadata(&self) -> Option<GroupMetadata>;
}

/// Hears about partitions moving. Called from inside [`StreamsConsumer::poll_batch`], on the polling
/// thread, so it may use the thread's tasks; it must finish quickly.
pub trait RebalanceListener: Send + Sync {
    /// `partitions` are about to be taken away: commit what was processed (through `committer`) and
    /// close their tasks.
    fn on_partitions_revoked(&self, partitions: &[TopicPartition], committer: &dyn OffsetCommitter);

    /// `partitions` were taken away without a chance to commit: this member was fenced out of the group
    /// (a session that timed out, a poll interval exceeded). Close their tasks without committing;
    /// their new owner starts from the last committed offsets.
    fn on_partitions_lost(&self, partitions: &[TopicPartition]);

    /// `partitions` were given to this consumer, whose group had committed `committed` for them: create
    /// their tasks.
    fn on_partitions_assigned(&self, partitions: &[TopicPartition], committed: &CommittedOffsets);
}

/// Reads input records as a member of the application's consumer group. Commits through
/// [`OffsetCommitter`].
pub trait StreamsConsumer: OffsetCommitter + Send {
    /// Joins the group for `topics`.
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError>;

    /// Waits up to `timeout` for a first record, then appends every record already fetched, up to `max`
    /// in all, without waiting again. Rebalance callbacks run inside this call.
    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError>;

    /// Gives up every partition and joins the group again (Kafka's `enforceRebalance`): after an
    /// aborted transaction or a fencing, the tasks start again from the group's committed offsets. The
    /// revocation and the new assignment reach the listener in later polls.
    fn rejoin(&mut self) -> Result<(), ClientError>;

    /// Stops fetching `partitions` (their records wait in the runtime's buffers, which are full) until
    /// [`resume`](Self::resume). What was fetched but not yet returned by `poll_batch` may still come, or
    /// be fetched again from the position after the last record returned: nothing is skipped. A
    /// partition assigned again after a rebalance is not paused.
    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError>;

    /// Fetches `partitions` again, from the position after the last record `poll_batch` returned.
    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError>;

    /// For each of `partitions` (assigned to this consumer), how many records the broker holds beyond
    /// those `poll_batch` returned (Kafka's `Consumer::currentLag`), up to the end a reader at this
    /// consumer's isolation level can see, as recently as the consumer can say without slowing the
    /// thread down; `None` where it cannot say. A task waits for a partition with no buffered record
    /// whose lag is not known to be zero (`max.task.idle.ms`), so a consumer that never knows makes
    /// such tasks wait for data.
    fn fetched_lags(&mut self, partitions: &[TopicPartition]) -> Vec<Option<i64>>;

    /// Leaves the group promptly (revoking partitions through the listener first).
    fn close(&mut self);

    /// Reads `partitions` too, each from its offset, or from where `auto.offset.reset` says when `None`
    /// (Kafka's `incrementalAssign` with a seek): for a consumer whose partitions the library's own
    /// [`GroupMember`] hands out, which never subscribes. No rebalance callback runs for these.
    fn assign(&mut self, partitions: &[(TopicPartition, Option<i64>)]) -> Result<(), ClientError> {
        let _ = partitions;
        Err(ClientError::new("assign partitions", "this consumer only subscribes", ClientErrorKind::Fatal))
    }

    /// Whether the consumer's group is rebalancing and has not given it its part yet: nothing may be
    /// committed meanwhile (the group may be forming a generation its commits no longer belong to).
    /// Kafka's consumer joins inside `poll`, so its application never commits then.
    fn rebalance_in_progress(&self) -> bool {
        false
    }

    /// Stops reading `partitions` (Kafka's `incrementalUnassign`); records of them fetched and not yet
    /// returned are dropped.
    fn unassign(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        let _ = partitions;
        Err(ClientError::new("unassign partitions", "this consumer only subscribes", ClientErrorKind::Fatal))
    }

    /// The end offset of each of `partitions` as a reader at this consumer's isolation level sees it
    /// (Kafka's `endOffsets`), asked of the broker in one request per partition leader: how the group's
    /// leader tells how far behind each instance's copy of a task's state is. Partitions the broker
    /// could not answer for are left out.
    fn end_offsets(&mut self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let _ = partitions;
        Err(ClientError::new("end offsets", "this consumer cannot ask for end offsets", ClientErrorKind::Fatal))
    }
}

/// Writes output, repartition and changelog records.
pub trait StreamsProducer: Send {
    /// Queues a record without waiting for it to be acknowledged; delivery errors come out of `flush`.
    fn send(&mut self, record: &ProducedRecord) -> Result<(), ClientError>;

    /// Waits until every queued record is acknowledged; the first delivery error, if any.
    fn flush(&mut self, timeout: Duration) -> Result<(), ClientError>;

    /// The records the broker rejected since the last call, each with its error: what `flush` reported
    /// the first of, for the production exception handler to decide on one by one (and to dead-letter).
    /// A producer that cannot tell returns none (the default); the handler is then asked once, without
    /// the record.
    fn take_rejected(&mut self) -> Vec<(ProducedRecord, ClientError)> {
        Vec::new()
    }

    /// Drops the records queued and not yet sent, without waiting; they are never delivered, and no
    /// error is reported for them (at_least_once, when the thread gives up the uncommitted work of its
    /// tasks). A producer that hands every record to the broker at once has nothing to drop: the
    /// default does nothing.
    fn purge_unsent(&mut self) {}

    /// The offset of the last record the broker acknowledged on `partition` from this producer, if any:
    /// how far a store's changelog is written, for its checkpoint. Only records sent to an explicit
    /// partition (changelog records always are) need to be tracked.
    fn acked_offset(&self, partition: &TopicPartition) -> Option<i64>;

    /// Registers the producer's transactional id with the broker, fencing every older producer with the
    /// same id and aborting what it left open (exactly_once_v2 only, once, before anything else).
    fn init_transactions(&mut self, timeout: Duration) -> Result<(), ClientError>;

    /// Starts a transaction: every send until the commit or abort belongs to it.
    fn begin_transaction(&mut self) -> Result<(), ClientError>;

    /// Adds the consumed `offsets` of the group `group` to the open transaction: they commit with it.
    fn send_offsets_to_transaction(
        &mut self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        group: &GroupMetadata,
        timeout: Duration,
    ) -> Result<(), ClientError>;

    /// Flushes, then commits the open transaction: its records become visible to `read_committed`
    /// readers and its offsets are committed, all together.
    fn commit_transaction(&mut self, timeout: Duration) -> Result<(), ClientError>;

    /// Aborts the open transaction: its records are never visible to `read_committed` readers, its
    /// offsets never committed.
    fn abort_transaction(&mut self, timeout: Duration) -> Result<(), ClientError>;
}

/// Reads changelog partitions to rebuild a task's stores.
pub trait RestoreConsumer: Send {
    /// The first offset of `partition` and its high watermark: the offset the next record written will
    /// get, under either isolation level (Kafka Streams reads changelog end offsets
    /// `read_uncommitted` too). A restore must reach it: under `read_committed` a last stable offset
    /// below it may hide committed records behind a transaction still open (a zombie's), and restoring
    /// only up to there would lose them.
    fn watermarks(&mut self, partition: &TopicPartition) -> Result<(i64, i64), ClientError>;

    /// Where a reader of this consumer's isolation level can read `partition` to now: under
    /// `read_committed` the last stable offset (a transaction still open holds it back), else the high
    /// watermark. What a global store follows, as Kafka Streams' global consumer does: a producer of the
    /// global topic that keeps a transaction open must not stall the instance. The default is the high
    /// watermark, for a consumer that does not read `read_committed`.
    fn readable_end(&mut self, partition: &TopicPartition) -> Result<i64, ClientError> {
        self.watermarks(partition).map(|(_, high)| high)
    }

    /// Reads `partition` from offset `from` until every record before `end` has been read, handing the
    /// records to `apply` in batches of at most `max_batch`, and waiting (up to a timeout) while a
    /// transaction still open below `end` holds `read_committed` back. Returns the offset of the last
    /// record read (`None` if there was none: offsets may have gaps after compaction or transaction
    /// markers).
    fn read(
        &mut self,
        partition: &TopicPartition,
        from: i64,
        end: i64,
        max_batch: usize,
        apply: &mut dyn FnMut(&[RawRecord]) -> Result<(), crate::StreamsError>,
    ) -> Result<Option<i64>, crate::StreamsError>;
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Its partition count.
    pub partitions: i32,
    /// Its replication factor (-1: the broker's default).
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy` …).
    pub config: BTreeMap<String, String>,
}

/// Creates and inspects topics.
pub trait StreamsAdmin: Send {
    /// The partition count of each topic, `None` for a topic that does not exist.
    fn partition_counts(&self, topics: &[String]) -> Result<BTreeMap<String, Option<i32>>, ClientError>;

    /// The names of every topic on the cluster, for sources that read the topics a pattern matches. An
    /// admin client that cannot list them says so (the default): a topology with a topic pattern then
    /// cannot start.
    fn topic_names(&self) -> Result<Vec<String>, ClientError> {
        Err(ClientError::new("list topics", "this admin client cannot list topics", ClientErrorKind::Fatal))
    }

    /// Creates topics; a topic that already exists is not an error.
    fn create_topics(&self, topics: &[NewTopic]) -> Result<(), ClientError>;

    /// Deletes every record below `offset` in each partition (Kafka's DeleteRecords): the partition's
    /// log start offset moves up to `offset`. The runtime purges what it has consumed and committed of
    /// its repartition topics this way, as Kafka Streams does.
    fn delete_records(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), ClientError>;
}

/// What a member joins its group with (Kafka's consumer protocol subscription): the topics it reads, the
/// task assignor's data about it, and the partitions it owns now (so a cooperative rebalance can leave
/// them where they are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The topics the member reads.
    pub topics: Vec<String>,
    /// The assignor's data (Kafka Streams' `SubscriptionInfo`).
    pub user_data: Vec<u8>,
    /// The partitions the member owns as it joins.
    pub owned_partitions: Vec<TopicPartition>,
}

/// What a member is given (Kafka's consumer protocol assignment): its partitions and the assignor's data
/// (Kafka Streams' `AssignmentInfo`: active and standby tasks, where the others are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The partitions the member reads in this generation.
    pub partitions: Vec<TopicPartition>,
    /// The assignor's data.
    pub user_data: Vec<u8>,
}

/// A member of the group as its leader sees it when the group has formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member's id in the group.
    pub member_id: String,
    /// Its `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
    /// What it joined with.
    pub subscription: Subscription,
}

/// What a [`GroupMember`]'s group did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// Nothing new.
    Idle,
    /// The group formed `generation` with this member as its leader: it must assign every member
    /// ([`GroupMember::sync`]).
    Lead {
        /// The generation the group formed.
        generation: i32,
        /// Every member of it, this one included.
        members: Vec<JoinedMember>,
    },
    /// The member's assignment in `generation`.
    Assigned {
        /// The generation the assignment belongs to.
        generation: i32,
        /// The member's part.
        assignment: Assignment,
    },
    /// The group is rebalancing: the member must join again ([`GroupMember::join`]). Its partitions
    /// stay its own until its next assignment says otherwise.
    RejoinNeeded,
    /// The member is out of the group (its session expired, a static member with its instance id took
    /// its place, its generation is gone): its partitions are no longer its own, and it joins again
    /// as a new member.
    Lost {
        /// Why, as the group coordinator said it.
        reason: String,
    },
}

/// One member of the application's consumer group under Kafka's classic group protocol, run by the
/// library so that its own task assignor decides (Kafka Streams' `StreamsPartitionAssignor`; librdkafka
/// takes no custom assignor). The member keeps its session alive by itself (heartbeats); the calls
/// never wait for the group to form: the answers come out of [`GroupMember::poll`].
pub trait GroupMember: Send {
    /// Joins the group, or joins again, with `subscription` (JoinGroup).
    fn join(&mut self, subscription: Subscription) -> Result<(), ClientError>;

    /// What the group did since the last call; waits up to `timeout` for something to happen.
    fn poll(&mut self, timeout: Duration) -> Result<GroupEvent, ClientError>;

    /// The leader's assignment of every member for `generation` (SyncGroup), after
    /// [`GroupEvent::Lead`]; each member's own part comes as [`GroupEvent::Assigned`].
    fn sync(&mut self, generation: i32, assignments: Vec<(String, Assignment)>) -> Result<(), ClientError>;

    /// Commits offsets as this member of its generation (OffsetCommit): refused as
    /// [`ClientErrorKind::Fenced`] once the member is no longer in the group at that generation.
    fn commit(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError>;

    /// The group's committed offsets of `partitions` (a partition without one is absent); waits out
    /// offsets of transactions still open, so an exactly-once task starts where the last commit left it.
    fn committed(&mut self, partitions: &[TopicPartition]) -> Result<CommittedOffsets, ClientError>;

    /// The membership a transaction's offsets go with; `None` until the member has an assignment.
    fn group_metadata(&self) -> Option<GroupMetadata>;

    /// Leaves the group (LeaveGroup), so its partitions move at once; a static member only stops, and
    /// its place waits for it until its session expires.
    fn close(&mut self);
}

/// Makes the runtime's clients (Kafka Streams' `KafkaClientSupplier`).
pub trait ClientSupplier: Send + Sync {
    /// A consumer in the application's group; `listener` hears about rebalances.
    fn consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        listener: Arc<dyn RebalanceListener>,
    ) -> Result<Box<dyn StreamsConsumer>, ClientError>;

    /// A producer; a transactional one when `transactional_id` is given (exactly_once_v2).
    fn producer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
        transactional_id: Option<&str>,
    ) -> Result<Box<dyn StreamsProducer>, ClientError>;

    /// An admin client.
    fn admin(&self, config: &StreamsConfig) -> Result<Box<dyn StreamsAdmin>, ClientError>;

    /// A consumer outside the group, for restoring stores from changelogs.
    fn restore_consumer(
        &self,
        config: &StreamsConfig,
        client_id: &str,
    ) -> Result<Box<dyn RestoreConsumer>, ClientError>;

    /// A member of the application's group run by the library (its own task assignment). A supplier
    /// without one says so.
    fn group_member(&self, config: &StreamsConfig, client_id: &str) -> Result<Box<dyn GroupMember>, ClientError> {
        let _ = (config, client_id);
        Err(ClientError::new(
            "create group member",
            "this client supplier has no group member of the library's own",
            ClientErrorKind::Fatal,
        ))
    }
}
