//! Open-loop pacing: work started on a fixed schedule, whatever the
//! answers do, so a slow system shows as latency, not as a slower load.

use std::time::{Duration, Instant};

/// Calls `start(n)` for n = 0, 1, ... at `rate` per second for `window`,
/// catching up every millisecond; answers how many were started.
pub async fn paced(rate: u64, window: Duration, mut start: impl FnMut(u64)) -> u64 {
    let total = (rate as f64 * window.as_secs_f64()) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (began, mut started) = (Instant::now(), 0);
    while started < total {
        tick.tick().await;
        let due = ((began.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while started < due {
            start(started);
            started += 1;
        }
    }
    total
}
