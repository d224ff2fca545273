//! A task's input buffer, Kafka Streams' `PartitionGroup`: one queue per input partition, kept across
//! polls. The next record is the head with the smallest timestamp, so the task's partitions are merged
//! in time order however the fetches happen to arrive. A task is ready only while every partition has
//! a record buffered, or is known to have none at the broker either and has stayed so for
//! `max.task.idle.ms` (KIP-353, KIP-695): otherwise a record of one partition could be processed before
//! an older one of another that is still on its way, and a join would miss its match. A partition
//! holding more than `buffered.records.per.partition` records is paused until it drains.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::client::TopicPartition;
use crate::record::RawRecord;

/// `max.task.idle.ms` = -1: never wait for a partition with nothing buffered.
pub(crate) const IDLE_DISABLED: i64 = -1;

/// The buffered input of one task.
#[derive(Default)]
pub(crate) struct PartitionGroup {
    queues: Vec<RecordQueue>,
    /// Records buffered in all the queues.
    buffered: usize,
    /// The queue the last record went to: records of one partition come in runs.
    last: usize,
    /// Records processed while a partition was given up waiting for (`TaskMetrics::enforced_processing`).
    enforced: u64,
}

struct RecordQueue {
    tp: TopicPartition,
    records: VecDeque<RawRecord>,
    /// The offset after the last record processed, not yet taken for a commit.
    processed: Option<i64>,
    /// Records at the broker not fetched yet, as of the last look; `None` while not known.
    lag: Option<i64>,
    /// When the wait for this partition ends (wall clock, ms): set once it is empty here and at the
    /// broker, cleared when it has records again or the broker has some.
    idle_deadline: Option<i64>,
    paused: bool,
}

impl PartitionGroup {
    /// Adds a queue for `tp`, if the group has none yet.
    pub(crate) fn add_partition(&mut self, tp: &TopicPartition) {
        if !self.queues.iter().any(|q| q.tp == *tp) {
            self.queues.push(RecordQueue {
                tp: tp.clone(),
                records: VecDeque::new(),
                processed: None,
                lag: None,
                idle_deadline: None,
                paused: false,
            });
        }
    }

    /// Buffers `record` at the tail of its partition's queue. The partition's lag is not known any more:
    /// once the queue drains, the task asks again before it goes on without the partition.
    pub(crate) fn push(&mut self, record: RawRecord) {
        let same = |q: &RecordQueue| Arc::ptr_eq(&q.tp.topic, &record.topic) && q.tp.partition == record.partition;
        let i = match self.queues.get(self.last) {
            Some(q) if same(q) => self.last,
            _ => {
                match self.queues.iter().position(|q| q.tp.topic == record.topic && q.tp.partition == record.partition)
                {
                    Some(i) => i,
                    None => {
                        self.add_partition(&TopicPartition {
                            topic: record.topic.clone(),
                            partition: record.partition,
                        });
                        self.queues.len() - 1
                    }
                }
            }
        };
        self.last = i;
        let q = &mut self.queues[i];
        q.lag = None;
        q.records.push_back(record);
        self.buffered += 1;
    }

    /// Records buffered in all the queues.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether the task may take its next record now (`now_ms` on the wall clock), with `max_idle_ms`
    /// as `max.task.idle.ms`. Counts the records taken while a partition was given up waiting for.
    pub(crate) fn ready(&mut self, now_ms: i64, max_idle_ms: i64) -> bool {
        if self.buffered == 0 {
            return false;
        }
        if max_idle_ms == IDLE_DISABLED || self.queues.len() == 1 {
            return true;
        }
        let mut enforced = false;
        for q in &mut self.queues {
            if !q.records.is_empty() {
                q.idle_deadline = None;
                continue;
            }
            match q.lag {
                // Unknown, or known to be at the broker: wait for the fetch to bring it.
                None | Some(1..) => {
                    q.idle_deadline = None;
                    return false;
                }
                // Nothing at the broker either: wait `max.task.idle.ms` for some to be produced.
                Some(_) => {
                    let deadline = *q.idle_deadline.get_or_insert(now_ms.saturating_add(max_idle_ms));
                    if now_ms < deadline {
                        return false;
                    }
                    enforced = true;
                }
            }
        }
        if enforced {
            self.enforced += 1;
        }
        true
    }

    /// Takes the buffered record with the smallest timestamp (the first partition's on a tie), with the
    /// index of its queue for [`PartitionGroup::processed`].
    pub(crate) fn pop(&mut self) -> Option<(usize, RawRecord)> {
        let i = if self.queues.len() == 1 {
            0
        } else {
            self.queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.records.front().map(|r| (r.timestamp, i)))
                .min_by_key(|(ts, _)| *ts)?
                .1
        };
        let record = self.queues[i].records.pop_front()?;
        self.buffered -= 1;
        Some((i, record))
    }

    /// The record taken from queue `i` at `offset` was processed: its partition commits past it.
    pub(crate) fn processed(&mut self, i: usize, offset: i64) {
        self.queues[i].processed = Some(offset + 1);
    }

    /// Each partition processed since the last call, with the offset to commit.
    pub(crate) fn take_processed(&mut self) -> impl Iterator<Item = (TopicPartition, i64)> + '_ {
        self.queues.iter_mut().filter_map(|q| q.processed.take().map(|offset| (q.tp.clone(), offset)))
    }

    /// The partitions whose broker-side lag [`PartitionGroup::ready`] needs: the empty ones, while the
    /// task has records waiting and waits for empty partitions at all.
    pub(crate) fn lags_wanted(&self, max_idle_ms: i64, out: &mut Vec<TopicPartition>) {
        if self.buffered == 0 || max_idle_ms == IDLE_DISABLED || self.queues.len() == 1 {
            return;
        }
        out.extend(self.queues.iter().filter(|q| q.records.is_empty()).map(|q| q.tp.clone()));
    }

    /// Whether the task waits for an empty partition whose lag is not known (one that drained while
    /// the task ran): asking for it now may let the task go on without another poll.
    pub(crate) fn waits_for_a_lag(&self, max_idle_ms: i64) -> bool {
        self.buffered > 0
            && max_idle_ms != IDLE_DISABLED
            && self.queues.len() > 1
            && self.queues.iter().any(|q| q.records.is_empty() && q.lag.is_none())
    }

    /// What the consumer knows of `tp`'s records at the broker not fetched yet.
    pub(crate) fn set_lag(&mut self, tp: &TopicPartition, lag: Option<i64>) {
        if let Some(q) = self.queues.iter_mut().find(|q| q.tp == *tp) {
            q.lag = lag;
        }
    }

    /// Partitions past `max_buffered` records and not paused yet: they are paused now.
    pub(crate) fn pause_full(&mut self, max_buffered: usize, out: &mut Vec<TopicPartition>) {
        for q in self.queues.iter_mut().filter(|q| !q.paused && q.records.len() > max_buffered) {
            q.paused = true;
            out.push(q.tp.clone());
        }
    }

    /// Paused partitions drained to `max_buffered` records or fewer: they are resumed now.
    pub(crate) fn resume_drained(&mut self, max_buffered: usize, out: &mut Vec<TopicPartition>) {
        for q in self.queues.iter_mut().filter(|q| q.paused && q.records.len() <= max_buffered) {
            q.paused = false;
            out.push(q.tp.clone());
        }
    }

    /// Records taken while a partition was given up waiting for, in all.
    pub(crate) fn enforced(&self) -> u64 {
        self.enforced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn record(tp: &TopicPartition, offset: i64, timestamp: i64) -> RawRecord {
        RawRecord {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            timestamp,
            key: None,
            value: None,
            headers: Default::default(),
        }
    }

    fn two_partitions() -> (PartitionGroup, TopicPartition, TopicPartition) {
        let (a, b) = (tp("a", 0), tp("b", 0));
        let mut group = PartitionGroup::default();
        group.add_partition(&a);
        group.add_partition(&b);
        (group, a, b)
    }

    #[test]
    fn records_come_out_by_smallest_timestamp_each_partition_in_order() {
        let (mut group, a, b) = two_partitions();
        group.push(record(&a, 0, 10));
        group.push(record(&a, 1, 30));
        group.push(record(&b, 0, 20));
        group.push(record(&b, 1, 5));
        let order: Vec<(String, i64)> =
            std::iter::from_fn(|| group.pop()).map(|(_, r)| (r.topic.to_string(), r.offset)).collect();
        // b's second record is older than everything but stays behind b's first.
        assert_eq!(order, [("a".into(), 0), ("b".into(), 0), ("b".into(), 1), ("a".into(), 1)]);
        assert_eq!(group.buffered(), 0);
    }

    #[test]
    fn a_task_waits_for_a_partition_whose_lag_is_unknown_or_positive() {
        let (mut group, a, b) = two_partitions();
        group.push(record(&a, 0, 10));
        assert!(!group.ready(0, 0), "b's lag is not known yet");
        group.set_lag(&b, Some(3));
        assert!(!group.ready(0, 0), "b has records at the broker");
        assert!(group.ready(0, IDLE_DISABLED), "max.task.idle.ms = -1 never waits");
        group.push(record(&b, 0, 20));
        assert!(group.ready(0, 0), "every partition has a record");
        assert_eq!(group.enforced(), 0);
    }

    #[test]
    fn an_empty_partition_with_no_lag_is_waited_for_max_task_idle_ms() {
        let (mut group, a, b) = two_partitions();
        group.push(record(&a, 0, 10));
        group.set_lag(&b, Some(0));
        assert!(!group.ready(1_000, 500));
        assert!(!group.ready(1_499, 500));
        assert!(group.ready(1_500, 500), "the deadline passed");
        assert_eq!(group.enforced(), 1);
        // With the default of 0 the wait ends at once.
        let (mut group, a, b) = two_partitions();
        group.push(record(&a, 0, 10));
        group.set_lag(&b, Some(0));
        assert!(group.ready(7, 0));
        assert_eq!(group.enforced(), 1);
    }

    #[test]
    fn the_wait_starts_again_once_the_partition_had_records() {
        let (mut group, a, b) = two_partitions();
        group.push(record(&a, 0, 10));
        group.set_lag(&b, Some(0));
        assert!(!group.ready(0, 100));
        group.push(record(&b, 0, 5));
        assert!(group.ready(50, 100));
        let (_, first) = group.pop().unwrap();
        assert_eq!(&*first.topic, "b");
        // b is empty again, and still nothing at the broker: a new wait of 100 ms from now.
        assert!(!group.ready(150, 100), "b's lag is asked again first");
        group.set_lag(&b, Some(0));
        assert!(!group.ready(150, 100));
        assert!(group.ready(250, 100));
    }

    #[test]
    fn a_partition_past_the_limit_is_paused_and_resumed_once_drained() {
        let (mut group, a, _) = two_partitions();
        for offset in 0..4 {
            group.push(record(&a, offset, offset));
        }
        let mut out = Vec::new();
        group.pause_full(3, &mut out);
        assert_eq!(out, std::slice::from_ref(&a));
        out.clear();
        group.pause_full(3, &mut out);
        assert!(out.is_empty(), "paused once");
        group.resume_drained(3, &mut out);
        assert!(out.is_empty(), "still 4 buffered");
        group.pop();
        group.resume_drained(3, &mut out);
        assert_eq!(out, [a]);
        out.clear();
        group.resume_drained(3, &mut out);
        assert!(out.is_empty(), "resumed once");
    }

    #[test]
    fn a_partition_that_drained_is_asked_for_its_lag_again() {
        let (mut group, a, b) = two_partitions();
        group.set_lag(&b, Some(0));
        group.push(record(&a, 0, 1));
        group.push(record(&b, 0, 2));
        group.push(record(&a, 1, 3));
        assert!(group.ready(0, 0));
        group.pop();
        group.pop();
        // b drained: the lag it had before its record came says nothing now.
        assert!(!group.ready(0, 0));
        assert!(group.waits_for_a_lag(0));
        group.set_lag(&b, Some(0));
        assert!(!group.waits_for_a_lag(0));
        assert!(group.ready(0, 0));
    }

    #[test]
    fn processed_offsets_are_taken_once() {
        let (mut group, a, b) = two_partitions();
        group.push(record(&a, 7, 1));
        let (i, r) = group.pop().unwrap();
        group.processed(i, r.offset);
        assert_eq!(group.take_processed().collect::<Vec<_>>(), [(a.clone(), 8)]);
        assert_eq!(group.take_processed().count(), 0);
        let mut wanted = Vec::new();
        group.push(record(&b, 0, 1));
        group.lags_wanted(0, &mut wanted);
        assert_eq!(wanted, [a], "the empty one, while b has a record");
        wanted.clear();
        group.lags_wanted(IDLE_DISABLED, &mut wanted);
        assert!(wanted.is_empty());
    }
}
