//! JSON for any serde-derived type.

use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};

use super::{Serde, SerdeError};

/// JSON text for any `Serialize + DeserializeOwned` type, through `serde_json`.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: Serialize + DeserializeOwned + 'static,
{
    fn serialize(&self, topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        serde_json::to_writer(out, value)
            .map_err(|e| SerdeError::with_source(std::any::type_name::<T>(), topic, "cannot write JSON", e))
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes)
            .map_err(|e| SerdeError::with_source(std::any::type_name::<T>(), topic, "invalid JSON", e))
    }
}
