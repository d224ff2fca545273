// `#[derive(Event)]` with each way of declaring the key and the serde.
use kstreams::prelude::*;
use kstreams::serde::{to_bytes, I64Serde};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
struct Order {
    customer_id: i64,
    total_value: f64,
}

// The key as a string, as an event schema's "partitionKey" names it; a `String` key.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "customers.v1", key = "email", serde = json)]
struct Customer {
    email: String,
    name: String,
}

// `serde = none`: the type brings its own `DefaultSerde` (here: its id as a Kafka long).
#[derive(Debug, Clone, PartialEq, Event)]
#[event(topic = "ids", key = id, serde = none)]
struct Id {
    id: i64,
}

impl DefaultSerde for Id {
    fn default_serde() -> std::sync::Arc<dyn Serde<Self>> {
        struct IdSerde;
        impl Serde<Id> for IdSerde {
            fn serialize(&self, topic: &str, value: &Id, out: &mut Vec<u8>) -> Result<(), kstreams::serde::SerdeError> {
                I64Serde.serialize(topic, &value.id, out)
            }
            fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Id, kstreams::serde::SerdeError> {
                I64Serde.deserialize(topic, bytes).map(|id| Id { id })
            }
        }
        std::sync::Arc::new(IdSerde)
    }
}

fn main() {
    assert_eq!(Order::TOPIC, "orders");
    assert_eq!(Order { customer_id: 7, total_value: 1.0 }.key(), 7_i64);
    let json = to_bytes(&*Order::default_serde(), "orders", &Order { customer_id: 7, total_value: 1.5 });
    assert_eq!(json.unwrap().unwrap(), br#"{"customer_id":7,"total_value":1.5}"#);

    let customer = Customer { email: "a@example.com".into(), name: "A".into() };
    assert_eq!((Customer::TOPIC, customer.key()), ("customers.v1", "a@example.com".to_string()));

    assert_eq!(Id::TOPIC, "ids");
    let bytes = to_bytes(&*Id::default_serde(), "ids", &Id { id: 1 }).unwrap().unwrap();
    assert_eq!(bytes, 1_i64.to_be_bytes());
}
