//! Latency percentiles.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// How many samples.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `samples` (all zero when there are none).
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pick = |q: f64| {
            let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        Self {
            samples: samples.len(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }

    /// `p50 1.23 ms, p99 4.56 ms`.
    pub fn brief(&self) -> String {
        format!("p50 {:.2} ms, p99 {:.2} ms", self.p50_ms, self.p99_ms)
    }
}
