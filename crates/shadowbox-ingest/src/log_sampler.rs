//! Keeps dropped messages from flooding the logs: at most one line per
//! kind and interval, saying how many were left out since the last one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One log line per key and interval.
#[derive(Debug)]
pub(crate) struct LogSampler {
    interval: Duration,
    /// Per key: when it was last logged and how many were skipped since.
    last: HashMap<&'static str, (Instant, u64)>,
}

impl LogSampler {
    /// A sampler letting one line per key through every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// `Some(skipped)` when an event of `key` should be logged now, with
    /// how many were skipped since the last logged one; `None` otherwise.
    pub fn admit(&mut self, key: &'static str) -> Option<u64> {
        let now = Instant::now();
        match self.last.get_mut(key) {
            Some((at, skipped)) if now.duration_since(*at) < self.interval => {
                *skipped += 1;
                None
            }
            Some((at, skipped)) => {
                *at = now;
                Some(std::mem::take(skipped))
            }
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "a synchronous test waits out the sampling interval"
    )]
    fn one_line_per_key_and_interval() {
        let mut sampler = LogSampler::new(Duration::from_millis(50));
        assert_eq!(sampler.admit("a"), Some(0));
        assert_eq!(sampler.admit("a"), None);
        assert_eq!(sampler.admit("a"), None);
        assert_eq!(sampler.admit("b"), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sampler.admit("a"), Some(2));
        assert_eq!(sampler.admit("a"), None);
    }
}
