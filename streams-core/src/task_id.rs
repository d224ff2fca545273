//! A task's id, apart from the task: stores and their builders name the task they belong to, below the
//! layer that runs tasks.

use std::fmt;

/// A task's id: `<sub-topology>_<partition>`, as Kafka Streams prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: u32,
    /// The input partition.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}
