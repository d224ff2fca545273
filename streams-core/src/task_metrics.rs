//! The counters a task keeps.

/// Counters a task keeps, as Kafka Streams' task metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records taken from the input and processed.
    pub processed_records: u64,
    /// Records skipped because they could not be deserialized (and the handler said continue).
    pub skipped_records: u64,
    /// Records dropped on purpose: a null key or value where the types cannot hold it.
    pub dropped_records: u64,
    /// Records user code failed on (an error or a panic) that the processing exception handler let go,
    /// each counted at the node that failed.
    pub processing_errors: u64,
    /// Punctuations fired.
    pub punctuations: u64,
    /// Produced records the broker rejected and the production exception handler let go.
    pub production_errors: u64,
    /// Times a stream thread closed its tasks without committing and rejoined its group: it was
    /// fenced out (a zombie), or a transaction failed and was aborted (a thread counter).
    pub recoveries: u64,
    /// Times a task went on with a partition that had no record buffered, once `max.task.idle.ms` had
    /// passed with that partition known to be empty at the broker: records may be processed out of
    /// timestamp order across the task's partitions (Kafka Streams' `enforced-processing-total`).
    pub enforced_processing: u64,
}

impl std::ops::Add for TaskMetrics {
    type Output = TaskMetrics;

    fn add(self, other: TaskMetrics) -> TaskMetrics {
        TaskMetrics {
            processed_records: self.processed_records + other.processed_records,
            skipped_records: self.skipped_records + other.skipped_records,
            dropped_records: self.dropped_records + other.dropped_records,
            processing_errors: self.processing_errors + other.processing_errors,
            punctuations: self.punctuations + other.punctuations,
            production_errors: self.production_errors + other.production_errors,
            recoveries: self.recoveries + other.recoveries,
            enforced_processing: self.enforced_processing + other.enforced_processing,
        }
    }
}

impl std::iter::Sum for TaskMetrics {
    fn sum<I: Iterator<Item = TaskMetrics>>(iter: I) -> TaskMetrics {
        iter.fold(TaskMetrics::default(), |a, b| a + b)
    }
}
