//! The built-in serdes, byte-for-byte compatible with Kafka's Java serdes.

use std::sync::Arc;

use super::{DefaultSerde, Serde, SerdeError};

/// UTF-8 text, as Kafka's `StringSerializer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, _topic: &str, value: &String, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<String, SerdeError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| SerdeError::with_source("String", topic, "bytes are not valid UTF-8", e))
    }

    fn deserialize_owned(&self, topic: &str, bytes: Vec<u8>) -> Result<String, (SerdeError, Vec<u8>)> {
        String::from_utf8(crate::buffers::fitted(bytes)).map_err(|e| {
            let error = SerdeError::with_source("String", topic, "bytes are not valid UTF-8", e.utf8_error());
            (error, e.into_bytes())
        })
    }
}

macro_rules! fixed_width {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $n:expr, $label:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serde<$ty> for $name {
            fn serialize(&self, _topic: &str, value: &$ty, out: &mut Vec<u8>) -> Result<(), SerdeError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(())
            }

            fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<$ty, SerdeError> {
                let array: [u8; $n] = bytes.try_into().map_err(|_| {
                    SerdeError::new($label, topic, format!("expected {} bytes, got {}", $n, bytes.len()))
                })?;
                Ok(<$ty>::from_be_bytes(array))
            }
        }

        impl DefaultSerde for $ty {
            fn default_serde() -> Arc<dyn Serde<Self>> {
                Arc::new($name)
            }
        }
    };
}

fixed_width!(
    /// 2 bytes big-endian, as Kafka's `ShortSerializer`.
    I16Serde, i16, 2, "i16"
);
fixed_width!(
    /// 4 bytes big-endian, as Kafka's `IntegerSerializer`.
    I32Serde, i32, 4, "i32"
);
fixed_width!(
    /// 8 bytes big-endian, as Kafka's `LongSerializer`.
    I64Serde, i64, 8, "i64"
);
fixed_width!(
    /// IEEE-754 single precision, big-endian, as Kafka's `FloatSerializer`.
    F32Serde, f32, 4, "f32"
);
fixed_width!(
    /// IEEE-754 double precision, big-endian, as Kafka's `DoubleSerializer`.
    F64Serde, f64, 8, "f64"
);

/// One byte, 1 for true and 0 for false, as Kafka's `BooleanSerializer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoolSerde;

impl Serde<bool> for BoolSerde {
    fn serialize(&self, _topic: &str, value: &bool, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.push(u8::from(*value));
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<bool, SerdeError> {
        match bytes {
            [1] => Ok(true),
            [0] => Ok(false),
            [b] => Err(SerdeError::new("bool", topic, format!("expected byte 0 or 1, got {b}"))),
            _ => Err(SerdeError::new("bool", topic, format!("expected 1 byte, got {}", bytes.len()))),
        }
    }
}

/// Raw bytes, as Kafka's `ByteArraySerializer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, _topic: &str, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(bytes.to_vec())
    }

    fn deserialize_owned(&self, _topic: &str, bytes: Vec<u8>) -> Result<Vec<u8>, (SerdeError, Vec<u8>)> {
        Ok(crate::buffers::fitted(bytes))
    }
}

/// No data: always null on the wire, as Kafka's `VoidSerializer`. Non-null bytes are an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _topic: &str, _value: &(), _out: &mut Vec<u8>) -> Result<(), SerdeError> {
        Ok(())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<(), SerdeError> {
        Err(SerdeError::new("()", topic, format!("expected null, got {} bytes", bytes.len())))
    }

    fn null_value(&self) -> Option<()> {
        Some(())
    }

    fn is_null(&self, _value: &()) -> bool {
        true
    }
}

/// `None` as null, `Some(v)` as the inner serde's bytes: how a stream keeps Kafka's null keys or values.
pub struct OptionSerde<T>(Arc<dyn Serde<T>>);

impl<T> OptionSerde<T> {
    /// Wraps the serde for the inner type.
    pub fn new(inner: Arc<dyn Serde<T>>) -> Self {
        OptionSerde(inner)
    }
}

impl<T: 'static> Serde<Option<T>> for OptionSerde<T> {
    fn serialize(&self, topic: &str, value: &Option<T>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match value {
            Some(v) => self.0.serialize(topic, v, out),
            None => Ok(()),
        }
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.0.deserialize(topic, bytes).map(Some)
    }

    fn null_value(&self) -> Option<Option<T>> {
        Some(None)
    }

    fn is_null(&self, value: &Option<T>) -> bool {
        value.is_none()
    }
}

impl DefaultSerde for String {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(StringSerde)
    }
}

impl DefaultSerde for bool {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(BoolSerde)
    }
}

impl DefaultSerde for Vec<u8> {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(BytesSerde)
    }
}

impl DefaultSerde for () {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(UnitSerde)
    }
}

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(OptionSerde::new(T::default_serde()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::{from_bytes, to_bytes};

    fn round_trip<T: DefaultSerde + PartialEq + std::fmt::Debug>(value: T, wire: Option<&[u8]>) {
        let serde = T::default_serde();
        let bytes = to_bytes(&*serde, "t", &value).unwrap();
        assert_eq!(bytes.as_deref(), wire, "wire bytes of {value:?}");
        assert_eq!(from_bytes(&*serde, "t", bytes.as_deref()).unwrap(), Some(value));
    }

    #[test]
    fn owned_deserialization_takes_the_buffer_and_gives_it_back_on_failure() {
        let bytes = b"plain".to_vec();
        let address = bytes.as_ptr();
        let s = StringSerde.deserialize_owned("t", bytes).unwrap();
        assert_eq!((s.as_str(), s.as_ptr()), ("plain", address), "no copy");
        let (error, back) = StringSerde.deserialize_owned("t", vec![0xff, 0xfe]).unwrap_err();
        assert_eq!(back, vec![0xff, 0xfe], "the record's bytes survive for the handler");
        assert!(error.to_string().contains("UTF-8"), "{error}");
        assert_eq!(BytesSerde.deserialize_owned("t", vec![1, 2]).unwrap(), vec![1, 2]);
        // Serdes without their own version copy through `deserialize`, and return the bytes on failure.
        let (_, back) = I64Serde.deserialize_owned("t", vec![1, 2, 3]).unwrap_err();
        assert_eq!(back, vec![1, 2, 3]);
    }

    #[test]
    fn serde_builtins_match_kafka_wire_formats() {
        round_trip("héllo".to_string(), Some("héllo".as_bytes()));
        round_trip(0x0102_i16, Some(&[1, 2]));
        round_trip(-2_i32, Some(&[0xff, 0xff, 0xff, 0xfe]));
        round_trip(0x0102_0304_0506_0708_i64, Some(&[1, 2, 3, 4, 5, 6, 7, 8]));
        round_trip(1.5_f32, Some(&[0x3f, 0xc0, 0, 0]));
        round_trip(1.5_f64, Some(&[0x3f, 0xf8, 0, 0, 0, 0, 0, 0]));
        round_trip(true, Some(&[1]));
        round_trip(false, Some(&[0]));
        round_trip(vec![0_u8, 255], Some(&[0, 255]));
        round_trip((), None);
        round_trip(Some(7_i32), Some(&[0, 0, 0, 7]));
        round_trip(None::<i32>, None);
    }

    #[test]
    fn serde_bad_bytes_are_errors_not_panics() {
        let err = I32Serde.deserialize("orders", &[1, 2, 3]).unwrap_err();
        assert_eq!(err.to_string(), "`i32` (topic `orders`): expected 4 bytes, got 3");
        assert!(StringSerde.deserialize("t", &[0xff, 0xfe]).is_err());
        assert!(BoolSerde.deserialize("t", &[2]).is_err());
        assert!(UnitSerde.deserialize("t", &[1]).is_err());
        assert!(F64Serde.deserialize("t", &[]).is_err());
    }

    #[test]
    fn serde_null_is_none_for_types_that_cannot_be_null() {
        assert_eq!(from_bytes(&*i64::default_serde(), "t", None).unwrap(), None);
        assert_eq!(from_bytes(&*String::default_serde(), "t", None).unwrap(), None);
        assert_eq!(from_bytes(&*<Option<i64>>::default_serde(), "t", None).unwrap(), Some(None));
    }
}
