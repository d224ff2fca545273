//! Kafka's consumer protocol: what a group member joins with (`ConsumerProtocolSubscription`) and what
//! the leader gives it (`ConsumerProtocolAssignment`), each a version then the message in it, as Kafka
//! Streams' members exchange them. Encoded with the `kafka-protocol` crate; read by hand, because those
//! bytes come from other members of the group through the broker, and the crate's decoder reserves
//! memory for as many elements as a length prefix claims (kafka-protocol-rs PRs #152, #161, #200, open):
//! a member sending a made-up length would abort the leader. Here a length the bytes left cannot hold is
//! an error.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::wire::by_topic;
use crate::client::{Assignment, Subscription, TopicPartition};

/// The version of the subscriptions sent: 1 carries the owned partitions.
const SUBSCRIPTION_VERSION: i16 = 1;
const ASSIGNMENT_VERSION: i16 = 1;

pub(super) fn encode_subscription(s: &Subscription) -> Bytes {
    let owned = by_topic(s.owned_partitions.iter().map(|tp| (tp.clone(), tp.partition)))
        .into_iter()
        .map(|(topic, partitions)| OwnedTopic::default().with_topic(topic).with_partitions(partitions))
        .collect();
    let message = ConsumerProtocolSubscription::default()
        .with_topics(s.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
        .with_user_data(Some(Bytes::from(s.user_data.clone())))
        .with_owned_partitions(owned);
    encode_versioned(SUBSCRIPTION_VERSION, &message)
}

pub(super) fn encode_assignment(a: &Assignment) -> Bytes {
    let topics = by_topic(a.partitions.iter().map(|tp| (tp.clone(), tp.partition)))
        .into_iter()
        .map(|(topic, partitions)| AssignedTopic::default().with_topic(topic).with_partitions(partitions))
        .collect();
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(topics)
        .with_user_data(Some(Bytes::from(a.user_data.clone())));
    encode_versioned(ASSIGNMENT_VERSION, &message)
}

/// Reads a subscription of any version: fields of versions newer than this reader knows come after
/// the ones it reads (the protocol only ever appends), and are left alone, as Kafka's consumer does.
pub(super) fn decode_subscription(bytes: &[u8]) -> Result<Subscription, String> {
    let mut r = Reader(bytes);
    let version = r.version()?;
    let topics = r.array(|r| r.string())?;
    let user_data = r.nullable_bytes()?.unwrap_or_default();
    let owned_partitions = if version >= 1 { r.topic_partitions()? } else { Vec::new() };
    Ok(Subscription { topics, user_data, owned_partitions })
}

/// Reads an assignment of any version; no bytes at all is an empty one (a member the leader left out).
pub(super) fn decode_assignment(bytes: &[u8]) -> Result<Assignment, String> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let mut r = Reader(bytes);
    r.version()?;
    let partitions = r.topic_partitions()?;
    let user_data = r.nullable_bytes()?.unwrap_or_default();
    Ok(Assignment { partitions, user_data })
}

fn encode_versioned(version: i16, message: &impl Encodable) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message.encode(&mut buf, version).expect("a consumer protocol message within its version encodes");
    buf.freeze()
}

/// Big-endian reads that fail, never panic or over-reserve, on bytes that end early or lie.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("{what}: {n} bytes wanted, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2, "an int16")?.try_into().expect("2 bytes")))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4, "an int32")?.try_into().expect("4 bytes")))
    }

    fn version(&mut self) -> Result<i16, String> {
        match self.i16()? {
            v if v >= 0 => Ok(v),
            v => Err(format!("version {v}")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| format!("a string of length {len}"))?;
        let bytes = self.take(len, "a string")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "a string that is not UTF-8".to_string())
    }

    fn nullable_bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self.i32()? {
            -1 => Ok(None),
            len => {
                let len = usize::try_from(len).map_err(|_| format!("bytes of length {len}"))?;
                Ok(Some(self.take(len, "bytes")?.to_vec()))
            }
        }
    }

    /// An array whose every element takes at least one byte: a count past the bytes left is a lie.
    fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        let count = self.i32()?;
        let count = usize::try_from(count).map_err(|_| format!("an array of {count} elements"))?;
        if count > self.0.len() {
            return Err(format!("an array of {count} elements in {} bytes", self.0.len()));
        }
        (0..count).map(|_| element(self)).collect()
    }

    fn topic_partitions(&mut self) -> Result<Vec<TopicPartition>, String> {
        let topics = self.array(|r| Ok((r.string()?, r.array(Reader::i32)?)))?;
        Ok(topics
            .into_iter()
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| TopicPartition::new(&topic, p)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::wire::topic_name;

    fn subscription() -> Subscription {
        Subscription {
            topics: vec!["orders".into(), "customers".into()],
            user_data: vec![1, 2, 3],
            owned_partitions: vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 2)],
        }
    }

    #[test]
    fn subscriptions_and_assignments_read_back_what_the_crate_encodes() {
        let bytes = encode_subscription(&subscription());
        assert_eq!(&bytes[..2], &[0, 1], "version 1");
        assert_eq!(decode_subscription(&bytes).unwrap(), subscription());
        let assignment = Assignment {
            partitions: vec![TopicPartition::new("orders", 1), TopicPartition::new("customers", 1)],
            user_data: vec![9; 40],
        };
        assert_eq!(decode_assignment(&encode_assignment(&assignment)).unwrap(), assignment);
        assert_eq!(decode_assignment(&[]).unwrap(), Assignment::default());
    }

    /// A subscription from a newer member (version 3: its generation and rack too) reads as far as this
    /// reader knows.
    #[test]
    fn a_newer_version_reads_as_far_as_this_reader_knows() {
        let s = subscription();
        let message = ConsumerProtocolSubscription::default()
            .with_topics(s.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
            .with_user_data(Some(Bytes::from(s.user_data.clone())))
            .with_owned_partitions(vec![OwnedTopic::default()
                .with_topic(topic_name("orders"))
                .with_partitions(vec![0, 2])])
            .with_generation_id(7)
            .with_rack_id(Some(StrBytes::from_static_str("eu-west-1a")));
        assert_eq!(decode_subscription(&encode_versioned(3, &message)).unwrap(), s);
        let v0 = encode_versioned(0, &ConsumerProtocolSubscription::default().with_topics(vec!["a".into()]));
        let read = decode_subscription(&v0).unwrap();
        assert_eq!((read.topics, read.user_data, read.owned_partitions), (vec!["a".to_string()], vec![], vec![]));
    }

    #[test]
    fn bytes_that_end_early_or_lie_about_a_length_are_an_error() {
        let lies: [&[u8]; 7] = [
            &[],
            &[0],
            &[0xff, 0xff],
            &[0, 1, 0, 0, 0, 9],
            &[0, 0, 0x7f, 0xff, 0xff, 0xff],
            &[0, 1, 0, 0, 0, 1, 0x7f, 0xff],
            &[0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff],
        ];
        for bytes in lies {
            assert!(decode_subscription(bytes).is_err(), "{bytes:?}");
        }
        assert!(decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_err());
        let full = encode_subscription(&subscription());
        for end in 2..full.len() {
            assert!(decode_subscription(&full[..end]).is_err(), "cut at {end}");
        }
    }
}
