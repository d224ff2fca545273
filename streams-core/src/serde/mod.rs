//! How typed keys and values become bytes on a topic and back: the [`Serde`] trait, the built-in serdes
//! that are wire-compatible with Kafka's Java serdes, and a JSON serde for any serde-derived type.
//!
//! Kafka has a *null* key and value; Rust types do not. A serde says what null means for its type:
//! [`Serde::null_value`] is `None` for types that cannot be null (a `String`, an `i64`), and `Some(..)`
//! for types that can (`Option<T>` maps null to `None`, `()` is always null). A null that the type cannot
//! hold is not an error of the serde: the stream decides (a KStream drops and counts it, as Kafka Streams'
//! aggregations drop null keys; a KTable source treats a null value as a delete).
//!
//! | Rust type | serde | bytes on the wire (Kafka serde) |
//! | --- | --- | --- |
//! | `String` | [`StringSerde`] | UTF-8 (`StringSerializer`) |
//! | `i16`, `i32`, `i64` | [`I16Serde`], [`I32Serde`], [`I64Serde`] | 2/4/8 bytes big-endian (`ShortSerializer`, `IntegerSerializer`, `LongSerializer`) |
//! | `f32`, `f64` | [`F32Serde`], [`F64Serde`] | IEEE-754 big-endian (`FloatSerializer`, `DoubleSerializer`) |
//! | `bool` | [`BoolSerde`] | one byte, 1 or 0 (`BooleanSerializer`) |
//! | `Vec<u8>` | [`BytesSerde`] | as is (`ByteArraySerializer`) |
//! | `()` | [`UnitSerde`] | always null (`VoidSerializer`) |
//! | `Option<T>` | [`OptionSerde`] | null for `None`, else `T`'s bytes |
//! | any `Serialize + DeserializeOwned` | [`JsonSerde`] | JSON text |
//! | `Windowed<K>` | [`TimeWindowedSerde`] | the key's bytes, then the window start as 8 bytes big-endian (`TimeWindowedSerializer`) |
//!
//! Serdes are chosen by type through [`DefaultSerde`]; every DSL operator that needs one also takes an
//! explicit serde (through `Consumed`, `Produced`, `Grouped`, `Materialized`) to override it.

mod builtin;
mod json;
mod windowed;

use std::fmt;
use std::sync::Arc;

pub use builtin::{
    BoolSerde, BytesSerde, F32Serde, F64Serde, I16Serde, I32Serde, I64Serde, OptionSerde, StringSerde, UnitSerde,
};
pub use json::JsonSerde;
pub use windowed::{SessionWindowedSerde, TimeWindowedSerde};
pub(crate) use windowed::{WindowStoreKeySerde, SESSION_SUFFIX, WINDOW_STORE_SUFFIX};

/// Serializes values of `T` to bytes and back.
///
/// Implementations must be deterministic (equal values give equal bytes: stores and repartition topics
/// compare keys by their bytes) and must never panic on any input bytes: a record that cannot be read is
/// an error value that says why.
pub trait Serde<T>: Send + Sync + 'static {
    /// Appends the bytes of `value` to `out`. Not called for values where [`Serde::is_null`] is true.
    /// `topic` is the topic (or store) the bytes are for, as in Kafka's `Serializer::serialize`.
    fn serialize(&self, topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError>;

    /// Reads a value from non-null `bytes`.
    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<T, SerdeError>;

    /// Reads a value from bytes the caller owns and no longer needs. Serdes of byte-like types
    /// (`Vec<u8>`, `String`) take the buffer instead of copying it; the others read it and leave it to
    /// be reused for a later record (kept by the calling thread, a few MiB at most). On failure the
    /// buffer comes back with the error, so the record can still be reported or dead-lettered whole.
    fn deserialize_owned(&self, topic: &str, bytes: Vec<u8>) -> Result<T, (SerdeError, Vec<u8>)> {
        match self.deserialize(topic, &bytes) {
            Ok(value) => {
                crate::buffers::recycle(Some(bytes));
                Ok(value)
            }
            Err(e) => Err((e, bytes)),
        }
    }

    /// The value a null on the wire stands for, or `None` when `T` cannot be null.
    fn null_value(&self) -> Option<T> {
        None
    }

    /// Whether `value` is written as a null (`None` of an `Option`, `()`).
    fn is_null(&self, _value: &T) -> bool {
        false
    }

    /// The part of a key's bytes that chooses its partition when a sink has no partitioner: all of them,
    /// except for windowed keys, which Kafka Streams partitions by the inner key alone (its
    /// `WindowedStreamPartitioner`), so that every window of a key lands where the key does.
    fn partition_bytes<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes
    }
}

/// Types with a serde chosen by type, so that `builder.stream::<String, Order>("orders")` needs no serde
/// argument. Implemented for the built-in types; implement it for your own types with [`json_serde!`](crate::json_serde!)
/// (JSON), `#[derive(Event)]` (JSON unless `serde = none`), or by hand for another format.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no serde: a key or value type needs one to be read from or written to a topic",
    label = "no `DefaultSerde` for `{Self}`",
    note = "derive Serialize and Deserialize and use `json_serde!({Self})`, or implement `DefaultSerde` by hand",
    note = "or pass a serde explicitly (`Consumed::with`, `Produced::with`, `Grouped::with`, `Materialized::with`)"
)]
pub trait DefaultSerde: Sized + 'static {
    /// The serde used when none is given.
    fn default_serde() -> Arc<dyn Serde<Self>>;
}

/// Serializes `value`, giving `None` for a null.
pub fn to_bytes<T: 'static>(serde: &dyn Serde<T>, topic: &str, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
    to_bytes_in(serde, topic, value, Vec::new())
}

/// [`to_bytes`] into `buffer` (cleared first), so a hot path can reuse buffers instead of allocating.
pub(crate) fn to_bytes_in<T: 'static>(
    serde: &dyn Serde<T>,
    topic: &str,
    value: &T,
    mut buffer: Vec<u8>,
) -> Result<Option<Vec<u8>>, SerdeError> {
    if serde.is_null(value) {
        crate::buffers::recycle(Some(buffer));
        return Ok(None);
    }
    buffer.clear();
    serde.serialize(topic, value, &mut buffer)?;
    Ok(Some(buffer))
}

/// Deserializes possibly-null bytes. `Ok(None)` means the bytes were null and `T` cannot be null; the
/// caller decides what that means (drop, delete, error).
pub fn from_bytes<T: 'static>(
    serde: &dyn Serde<T>,
    topic: &str,
    bytes: Option<&[u8]>,
) -> Result<Option<T>, SerdeError> {
    match bytes {
        Some(b) => serde.deserialize(topic, b).map(Some),
        None => Ok(serde.null_value()),
    }
}

/// A value could not be serialized or deserialized. The message says which type and why; the task adds
/// the topic, partition and offset of the record at fault. (Boxed inside: errors travel up through every
/// processor's `Result`, which should stay small.)
#[derive(Debug)]
pub struct SerdeError(Box<SerdeErrorInner>);

#[derive(Debug)]
struct SerdeErrorInner {
    type_name: &'static str,
    topic: String,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SerdeError {
    /// An error for `type_name` in `topic`, with a reason.
    pub fn new(type_name: &'static str, topic: &str, reason: impl Into<String>) -> Self {
        SerdeError(Box::new(SerdeErrorInner {
            type_name,
            topic: topic.to_string(),
            reason: reason.into(),
            source: None,
        }))
    }

    /// An error for `type_name` in `topic`, caused by `source`.
    pub fn with_source(
        type_name: &'static str,
        topic: &str,
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let source = Some(Box::new(source) as Box<dyn std::error::Error + Send + Sync>);
        SerdeError(Box::new(SerdeErrorInner { type_name, topic: topic.to_string(), reason: reason.into(), source }))
    }

    /// The Rust type that failed.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name
    }

    /// The topic or store the bytes belonged to.
    pub fn topic(&self) -> &str {
        &self.0.topic
    }
}

impl fmt::Display for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (topic `{}`): {}", self.0.type_name, self.0.topic, self.0.reason)
    }
}

impl std::error::Error for SerdeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Gives types a JSON [`DefaultSerde`], so streams of them need no serde argument.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize)]
/// struct Order { customer_id: i64, total_value: f64 }
/// streams_core::json_serde!(Order);
///
/// use streams_core::serde::{DefaultSerde, to_bytes};
/// let bytes = to_bytes(&*Order::default_serde(), "orders", &Order { customer_id: 7, total_value: 1.5 }).unwrap();
/// assert_eq!(bytes.unwrap(), br#"{"customer_id":7,"total_value":1.5}"#);
/// ```
#[macro_export]
macro_rules! json_serde {
    ($($ty:ty),+ $(,)?) => {
        $(impl $crate::serde::DefaultSerde for $ty {
            fn default_serde() -> ::std::sync::Arc<dyn $crate::serde::Serde<Self>> {
                ::std::sync::Arc::new($crate::serde::JsonSerde::<$ty>::new())
            }
        })+
    };
}
