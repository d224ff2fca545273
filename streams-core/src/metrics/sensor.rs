//! [`Sensor`]: Kafka's sampled statistics (`SampledStat`) over one stream of measurements, from which
//! a metric's `-rate`, `-avg`, `-max` and `-total` are read, as Kafka Streams reads them.
//!
//! Measurements fall into samples of `metrics.sample.window.ms`; `metrics.num.samples` of them are
//! kept, and a sample older than all of them together is forgotten. A rate divides what the kept
//! samples hold by the time they span, at least `num.samples - 1` whole windows (Kafka's `Rate`), so
//! that a rate read just after a quiet spell is not inflated by a tiny elapsed time.

use std::collections::VecDeque;

/// How measurements are sampled: `metrics.sample.window.ms` and `metrics.num.samples`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SampleConfig {
    pub(crate) window_ms: i64,
    pub(crate) samples: usize,
}

/// One window's worth of measurements.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: i64,
    last_event_ms: i64,
    count: u64,
    sum: f64,
    max: f64,
    min: f64,
}

/// The measurements of one thing (a commit's latency, a batch's record count), sampled.
#[derive(Debug, Clone)]
pub(crate) struct Sensor {
    config: SampleConfig,
    samples: VecDeque<Sample>,
    total_count: u64,
    total_sum: f64,
    /// What [`unpublished`](Self::unpublished) gave so far.
    published_count: u64,
    published_sum: u64,
}

impl Sensor {
    pub(crate) fn new(config: SampleConfig) -> Self {
        let config = SampleConfig { window_ms: config.window_ms.max(1), samples: config.samples.max(1) };
        Sensor {
            config,
            samples: VecDeque::new(),
            total_count: 0,
            total_sum: 0.0,
            published_count: 0,
            published_sum: 0,
        }
    }

    /// Records one measurement of `value` at `now_ms`.
    /// Cheap enough for the record path: a new sample (and the purge) once per window only.
    pub(crate) fn record(&mut self, value: f64, now_ms: i64) {
        self.record_many(1, value, value, value, now_ms);
    }

    /// Records `count` measurements at once, whose values add up to `sum` and range from `min` to
    /// `max` (what a store's operations came to since the thread last looked).
    pub(crate) fn record_many(&mut self, count: u64, sum: f64, min: f64, max: f64, now_ms: i64) {
        if count == 0 {
            return;
        }
        let window = self.config.window_ms;
        let current = match self.samples.back_mut() {
            Some(sample) if now_ms < sample.start_ms.saturating_add(window) => sample,
            _ => {
                self.purge(now_ms);
                // One more than the samples a measure spans, as Kafka's ring: the newest overlaps now.
                if self.samples.len() > self.config.samples {
                    self.samples.pop_front();
                }
                self.samples.push_back(Sample {
                    start_ms: now_ms,
                    last_event_ms: now_ms,
                    count: 0,
                    sum: 0.0,
                    max: f64::NAN,
                    min: f64::NAN,
                });
                self.samples.back_mut().expect("pushed")
            }
        };
        current.count += count;
        current.last_event_ms = now_ms;
        current.sum += sum;
        current.max = if current.max.is_nan() { max } else { current.max.max(max) };
        current.min = if current.min.is_nan() { min } else { current.min.min(min) };
        self.total_count += count;
        self.total_sum += sum;
    }

    /// Forgets the samples whose last measurement is as old as all kept samples' span (Kafka's
    /// `purgeObsoleteSamples`: `samples * window`).
    fn purge(&mut self, now_ms: i64) {
        let expire = self.config.window_ms.saturating_mul(self.config.samples as i64);
        self.samples.retain(|s| now_ms - s.last_event_ms < expire);
    }

    /// Measurements per second (Kafka's `Rate` over a `WindowedCount`: `-rate` of calls).
    pub(crate) fn rate_of_count(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let count: u64 = self.samples.iter().map(|s| s.count).sum();
        count as f64 / self.elapsed_seconds(now_ms)
    }

    /// The values' sum per second (Kafka's `Rate` over a `WindowedSum`: `process-rate` in records
    /// per second, when each measurement is a batch's record count).
    pub(crate) fn rate_of_sum(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let sum: f64 = self.samples.iter().map(|s| s.sum).sum();
        sum / self.elapsed_seconds(now_ms)
    }

    /// The mean of the kept measurements; NaN without any (as Kafka's `Avg`).
    pub(crate) fn avg(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        let (count, sum) = self.samples.iter().fold((0u64, 0.0), |(c, s), x| (c + x.count, s + x.sum));
        if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        }
    }

    /// The largest kept measurement; NaN without any (as Kafka's `Max`).
    pub(crate) fn max(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        self.samples.iter().map(|s| s.max).filter(|m| !m.is_nan()).reduce(f64::max).unwrap_or(f64::NAN)
    }

    /// The smallest kept measurement; NaN without any (as Kafka's `Min`).
    pub(crate) fn min(&mut self, now_ms: i64) -> f64 {
        self.purge(now_ms);
        self.samples.iter().map(|s| s.min).filter(|m| !m.is_nan()).reduce(f64::min).unwrap_or(f64::NAN)
    }

    /// What the `-total` grew by since the last call: measurements, or the values' sum when
    /// `of_sum` (a counter is published by its increments).
    pub(crate) fn unpublished(&mut self, of_sum: bool) -> u64 {
        if of_sum {
            let total = self.total_sum as u64;
            let added = total.saturating_sub(self.published_sum);
            self.published_sum = total;
            added
        } else {
            let added = self.total_count - self.published_count;
            self.published_count = self.total_count;
            added
        }
    }

    /// The time the kept samples span, in seconds: from the oldest sample's start to now, at least
    /// `samples - 1` whole windows (Kafka's `Rate.windowSize`), at least a millisecond.
    fn elapsed_seconds(&self, now_ms: i64) -> f64 {
        let window = self.config.window_ms;
        let oldest = self.samples.front().map_or(now_ms, |s| s.start_ms);
        let mut elapsed = now_ms - oldest;
        let full_windows = elapsed / window;
        let min_full_windows = self.config.samples as i64 - 1;
        if full_windows < min_full_windows {
            elapsed = elapsed.saturating_add((min_full_windows - full_windows).saturating_mul(window));
        }
        elapsed.max(1) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor() -> Sensor {
        Sensor::new(SampleConfig { window_ms: 30_000, samples: 2 })
    }

    #[test]
    fn a_rate_spans_at_least_one_whole_window_less_than_the_samples() {
        let mut s = sensor();
        // 60 measurements in the first second: over the 30 s a rate spans at least, 2 per second.
        for i in 0..60 {
            s.record(1.0, i * 10);
        }
        assert_eq!(s.rate_of_count(1_000), 60.0 / 31.0);
        assert_eq!(s.unpublished(false), 60);
        assert_eq!(s.unpublished(false), 0);
    }

    #[test]
    fn avg_max_and_min_read_the_kept_samples_and_forget_old_ones() {
        let mut s = sensor();
        s.record(10.0, 0);
        s.record(2.0, 31_000);
        s.record(6.0, 32_000);
        assert_eq!((s.avg(32_000), s.max(32_000), s.min(32_000)), (6.0, 10.0, 2.0));
        // The first sample (its last measurement at 0) is two windows old at 60 s.
        assert_eq!((s.avg(60_000), s.max(60_000)), (4.0, 6.0));
        // Nothing kept: NaN, as Kafka's Avg and Max; the totals stay.
        assert!(s.avg(200_000).is_nan() && s.max(200_000).is_nan());
        assert_eq!((s.unpublished(false), s.unpublished(true)), (3, 18));
    }

    #[test]
    fn a_rate_of_sum_counts_the_values() {
        let mut s = sensor();
        s.record(500.0, 0);
        s.record(1_500.0, 40_000);
        // Samples from 0 and 40 s kept at 50 s: 2,000 records over 50 s.
        assert_eq!(s.rate_of_sum(50_000), 40.0);
    }
}
