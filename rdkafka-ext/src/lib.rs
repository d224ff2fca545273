//! # streams-rdkafka-ext: two librdkafka calls rust-rdkafka does not wrap
//!
//! Under exactly_once_v2, a producer commits the consumed offsets in its transaction together with the
//! group membership of the consumer that read them (KIP-447): the group coordinator refuses offsets from
//! a member that is no longer in the group at that generation, which is what fences a zombie instance.
//! rust-rdkafka builds that membership only from its own consumer (`Consumer::group_metadata`). kstreams
//! runs the group membership itself (its task assignor needs the classic protocol's JoinGroup/SyncGroup,
//! which librdkafka's consumer does not let it take part in), so it has to hand librdkafka a membership
//! librdkafka did not make: `rd_kafka_consumer_group_metadata_new_with_genid`, then
//! `rd_kafka_send_offsets_to_transaction` with it. This crate is those calls, and the reading of a
//! librdkafka consumer's membership, over rust-rdkafka's public raw handles. It is the only crate of the
//! workspace with unsafe code.

use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use rdkafka_sys as sys;

/// A consumer group membership as a transactional offset commit carries it: the group, the member's id
/// and generation, and its static instance id if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// `group.id`.
    pub group_id: String,
    /// The id the group coordinator gave the member when it joined.
    pub member_id: String,
    /// The generation of the group the member last joined.
    pub generation_id: i32,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
}

/// A transactional call's failure, with librdkafka's own reading of what it means for the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionError {
    /// The error code.
    pub code: RDKafkaErrorCode,
    /// librdkafka's description.
    pub message: String,
    /// The producer can no longer be used.
    pub fatal: bool,
    /// The call may succeed if made again.
    pub retriable: bool,
    /// The transaction must be aborted (and the producer can go on).
    pub requires_abort: bool,
}

impl std::fmt::Display for TransactionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransactionError {}

/// The membership of `consumer`'s group as librdkafka's consumer holds it now; `None` for a client that
/// is not a consumer of a group.
pub fn consumer_membership<C: ClientContext>(consumer: &Client<C>) -> Option<Membership> {
    // SAFETY: `native_ptr` is a live `rd_kafka_t` for as long as `consumer` is borrowed; the call returns
    // a new metadata object (or null) that this function owns.
    let metadata = unsafe { sys::rd_kafka_consumer_group_metadata(consumer.native_ptr()) };
    if metadata.is_null() {
        return None;
    }
    let owned = |s: *const c_char| -> Option<String> {
        // SAFETY: librdkafka's accessors return null or a NUL-terminated string owned by `metadata`,
        // which lives until the destroy below; it is copied out here.
        (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    };
    // SAFETY: `metadata` is non-null and not yet destroyed.
    let membership = unsafe {
        Membership {
            group_id: owned(sys::rd_kafka_consumer_group_metadata_group_id(metadata)).unwrap_or_default(),
            member_id: owned(sys::rd_kafka_consumer_group_metadata_member_id(metadata)).unwrap_or_default(),
            generation_id: sys::rd_kafka_consumer_group_metadata_generation_id(metadata),
            group_instance_id: owned(sys::rd_kafka_consumer_group_metadata_group_instance_id(metadata)),
        }
    };
    // SAFETY: `metadata` came from librdkafka, is destroyed once and not used after.
    unsafe { sys::rd_kafka_consumer_group_metadata_destroy(metadata) };
    Some(membership)
}

/// `rd_kafka_send_offsets_to_transaction` of `producer`'s open transaction, with `membership` as the
/// group metadata. Blocks up to `timeout` (librdkafka's own bound; see its documentation for the cases
/// where it waits longer).
pub fn send_offsets_to_transaction<C: ClientContext>(
    producer: &Client<C>,
    offsets: &TopicPartitionList,
    membership: &Membership,
    timeout: Duration,
) -> Result<(), TransactionError> {
    let invalid = |what: &str| TransactionError {
        code: RDKafkaErrorCode::InvalidArgument,
        message: format!("the group membership's {what} contains a NUL byte"),
        fatal: false,
        retriable: false,
        requires_abort: false,
    };
    let group_id = CString::new(membership.group_id.as_str()).map_err(|_| invalid("group id"))?;
    let member_id = CString::new(membership.member_id.as_str()).map_err(|_| invalid("member id"))?;
    let instance_id = match &membership.group_instance_id {
        Some(id) => Some(CString::new(id.as_str()).map_err(|_| invalid("group instance id"))?),
        None => None,
    };
    // SAFETY: the strings are NUL-terminated and outlive the call, which copies them; a null instance
    // id is librdkafka's "no static membership".
    let metadata = unsafe {
        sys::rd_kafka_consumer_group_metadata_new_with_genid(
            group_id.as_ptr(),
            membership.generation_id,
            member_id.as_ptr(),
            instance_id.as_ref().map_or(std::ptr::null(), |id| id.as_ptr()),
        )
    };
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `native_ptr` and `offsets.ptr()` are live for the borrows of `producer` and `offsets`;
    // librdkafka copies the offsets and the metadata before it returns.
    let error = unsafe {
        sys::rd_kafka_send_offsets_to_transaction(producer.native_ptr(), offsets.ptr(), metadata, timeout_ms)
    };
    // SAFETY: `metadata` was made above, is destroyed once and not used after.
    unsafe { sys::rd_kafka_consumer_group_metadata_destroy(metadata) };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: `error` is a non-null error object this function owns: read, then destroyed once. Its
    // strings are copied out before the destroy.
    unsafe {
        let read = TransactionError {
            code: sys::rd_kafka_error_code(error).into(),
            message: CStr::from_ptr(sys::rd_kafka_error_string(error)).to_string_lossy().into_owned(),
            fatal: sys::rd_kafka_error_is_fatal(error) != 0,
            retriable: sys::rd_kafka_error_is_retriable(error) != 0,
            requires_abort: sys::rd_kafka_error_txn_requires_abort(error) != 0,
        };
        sys::rd_kafka_error_destroy(error);
        Err(read)
    }
}
