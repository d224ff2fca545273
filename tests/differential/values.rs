//! The suite's dynamic values: a key or value is a string, a long or null, written in the case's formats
//! exactly as Kafka's `StringSerde` and `LongSerde` write them.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use kstreams::prelude::{DefaultSerde, Serde};
use kstreams::serde::{I64Serde, OptionSerde, SerdeError};
use serde::Deserialize;
use serde_json::Value as Json;

/// A serde format of the case files. The windowed ones are for the keys of outputs and stores only:
/// the inner key's format, with the window start after it (Kafka's `TimeWindowedSerializer`), or with
/// the session's end and start after it (`SessionWindowedSerializer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Fmt {
    String,
    Long,
    /// Any bytes, shown as lowercase hex: for reading internal topics (outputs only).
    Hex,
    #[serde(rename = "windowed:string")]
    WindowedString,
    #[serde(rename = "windowed:long")]
    WindowedLong,
    #[serde(rename = "session:string")]
    SessionString,
    #[serde(rename = "session:long")]
    SessionLong,
}

impl Fmt {
    /// The inner key's format of a time-windowed format.
    pub(crate) fn windowed(self) -> Option<Fmt> {
        match self {
            Fmt::WindowedString => Some(Fmt::String),
            Fmt::WindowedLong => Some(Fmt::Long),
            _ => None,
        }
    }

    /// The inner key's format of a session-windowed format.
    pub(crate) fn session(self) -> Option<Fmt> {
        match self {
            Fmt::SessionString => Some(Fmt::String),
            Fmt::SessionLong => Some(Fmt::Long),
            _ => None,
        }
    }
}

/// A key or value as Kafka Streams' Java code sees it: a `String`, a `Long` or null.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    Null,
    Str(String),
    Long(i64),
}

impl Val {
    pub(crate) fn from_json(json: &Json) -> Result<Val, String> {
        match json {
            Json::Null => Ok(Val::Null),
            Json::String(s) => Ok(Val::Str(s.clone())),
            Json::Number(n) => n.as_i64().map(Val::Long).ok_or_else(|| format!("{n} is not a long")),
            other => Err(format!("{other} is not a string, a long or null")),
        }
    }

    pub(crate) fn to_json(&self) -> Json {
        match self {
            Val::Null => Json::Null,
            Val::Str(s) => Json::String(s.clone()),
            Val::Long(n) => Json::from(*n),
        }
    }

    /// The value as Java's string concatenation writes it (`"" + v`).
    pub(crate) fn java_string(&self) -> String {
        match self {
            Val::Null => "null".to_string(),
            Val::Str(s) => s.clone(),
            Val::Long(n) => n.to_string(),
        }
    }

    /// The long this value is; anything else is a mistake in the case, as a `ClassCastException` or a
    /// `NullPointerException` would be in Java.
    pub(crate) fn long(&self, function: &str) -> i64 {
        match self {
            Val::Long(n) => *n,
            other => panic!("function {function} needs a long, got {other}"),
        }
    }

    pub(crate) fn str(&self, function: &str) -> &str {
        match self {
            Val::Str(s) => s,
            other => panic!("function {function} needs a string, got {other}"),
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// A key: a [`Val`] of its own type so that keys and values can have different default serdes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Key(pub Val);

thread_local! {
    /// The case's default key and value formats (`default.key.serde`, `default.value.serde`). The DSL asks
    /// for default serdes while the topology is built, on the thread that builds it.
    static DEFAULTS: Cell<(Fmt, Fmt)> = const { Cell::new((Fmt::String, Fmt::String)) };
}

pub(crate) fn set_defaults(key: Fmt, value: Fmt) {
    DEFAULTS.with(|d| d.set((key, value)));
}

/// `StringSerde` or `LongSerde`, with null as a Kafka null.
pub(crate) struct ValSerde(pub Fmt);

impl Serde<Val> for ValSerde {
    fn serialize(&self, topic: &str, value: &Val, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match (self.0, value) {
            (Fmt::String, Val::Str(s)) => out.extend_from_slice(s.as_bytes()),
            (Fmt::Long, Val::Long(n)) => out.extend_from_slice(&n.to_be_bytes()),
            (Fmt::Hex, Val::Str(hex)) if hex.len() % 2 == 0 => {
                for pair in hex.as_bytes().chunks(2) {
                    let digits = std::str::from_utf8(pair).ok().and_then(|d| u8::from_str_radix(d, 16).ok());
                    out.push(digits.ok_or_else(|| SerdeError::new("Val", topic, format!("{hex} is not hex")))?);
                }
            }
            (fmt, value) => return Err(SerdeError::new("Val", topic, format!("{value} is not a {fmt:?}"))),
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Val, SerdeError> {
        match self.0 {
            fmt @ (Fmt::WindowedString | Fmt::WindowedLong | Fmt::SessionString | Fmt::SessionLong) => {
                Err(SerdeError::new("Val", topic, format!("{fmt:?} is for windowed keys")))
            }
            Fmt::String => match std::str::from_utf8(bytes) {
                Ok(s) => Ok(Val::Str(s.to_string())),
                Err(e) => Err(SerdeError::new("Val", topic, format!("not UTF-8: {e}"))),
            },
            Fmt::Hex => Ok(Val::Str(bytes.iter().map(|b| format!("{b:02x}")).collect())),
            Fmt::Long => match <[u8; 8]>::try_from(bytes) {
                Ok(b) => Ok(Val::Long(i64::from_be_bytes(b))),
                Err(_) => Err(SerdeError::new("Val", topic, format!("a long needs 8 bytes, got {}", bytes.len()))),
            },
        }
    }

    fn null_value(&self) -> Option<Val> {
        Some(Val::Null)
    }

    fn is_null(&self, value: &Val) -> bool {
        *value == Val::Null
    }
}

pub(crate) struct KeySerde(pub Fmt);

impl Serde<Key> for KeySerde {
    fn serialize(&self, topic: &str, key: &Key, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        ValSerde(self.0).serialize(topic, &key.0, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Key, SerdeError> {
        ValSerde(self.0).deserialize(topic, bytes).map(Key)
    }

    fn null_value(&self) -> Option<Key> {
        Some(Key(Val::Null))
    }

    fn is_null(&self, key: &Key) -> bool {
        key.0 == Val::Null
    }
}

impl DefaultSerde for Key {
    fn default_serde() -> Arc<dyn Serde<Key>> {
        Arc::new(KeySerde(DEFAULTS.with(|d| d.get().0)))
    }
}

impl DefaultSerde for Val {
    fn default_serde() -> Arc<dyn Serde<Val>> {
        Arc::new(ValSerde(DEFAULTS.with(|d| d.get().1)))
    }
}

pub(crate) fn key_serde(fmt: Fmt) -> Arc<dyn Serde<Key>> {
    Arc::new(KeySerde(fmt))
}

/// The value types a topology of the suite carries: [`Val`] where the case's functions produce values,
/// and what the DSL's own operators produce (`count`'s `i64`, `to_stream`'s `Option`).
pub(crate) trait Dyn: Clone + Send + Sync + fmt::Debug + DefaultSerde + 'static {
    fn to_val(&self) -> Val;
    fn from_val(value: Val) -> Self;
    fn serde(fmt: Fmt) -> Arc<dyn Serde<Self>>;
}

impl Dyn for Val {
    fn to_val(&self) -> Val {
        self.clone()
    }

    fn from_val(value: Val) -> Self {
        value
    }

    fn serde(fmt: Fmt) -> Arc<dyn Serde<Self>> {
        Arc::new(ValSerde(fmt))
    }
}

impl Dyn for i64 {
    fn to_val(&self) -> Val {
        Val::Long(*self)
    }

    fn from_val(value: Val) -> Self {
        value.long("a long aggregate")
    }

    fn serde(fmt: Fmt) -> Arc<dyn Serde<Self>> {
        assert_eq!(fmt, Fmt::Long, "a long (a count) written with a {fmt:?} serde");
        Arc::new(I64Serde)
    }
}

impl<T: Dyn> Dyn for Option<T> {
    fn to_val(&self) -> Val {
        self.as_ref().map_or(Val::Null, T::to_val)
    }

    fn from_val(value: Val) -> Self {
        match value {
            Val::Null => None,
            value => Some(T::from_val(value)),
        }
    }

    fn serde(fmt: Fmt) -> Arc<dyn Serde<Self>> {
        Arc::new(OptionSerde::new(T::serde(fmt)))
    }
}
