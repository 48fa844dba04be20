//! The backoff schedules: how long shadowbox waits before trying again.
//!
//! Two schedules, for two different things that can go wrong:
//!
//! - **Reconnect backoff** ([`reconnect`]): a broker or the database is
//!   unreachable, and the process waits to reach it again. The n-th delay
//!   is `min(100 ms × 2^(n-1), 5 s)` plus a random 0–100 % of itself, so
//!   replicas that lost a server together do not come back in lockstep; it
//!   never gives up. Every MQTT client (the relay's publisher, the
//!   ingester, the simulator's devices) waits this way between brokers
//!   through `shadowbox_mqtt::failover`, and the ingester between attempts
//!   of a database write; each starts over from 100 ms once through.
//!   Nothing is persisted: a row whose publish an outage interrupted is due
//!   again at once and never counts towards `dead`.
//! - **Refusal backoff** ([`RefusalBackoff`]): the broker was reachable but
//!   refused one row's publish. The delay is persisted in the row's
//!   `next_attempt_at`: after the n-th refusal the row waits
//!   `min(base_delay × 2^(n-1), max_delay)` scaled by a random factor in
//!   [0.5, 1), and after `max_attempts` refusals it becomes `dead`. The
//!   relay computes it in the statement that records the refusal
//!   (`shadowbox_db::relay::mark_failed`), so a batch of refused rows is
//!   settled in one UPDATE, each row with its own jitter. A broker that
//!   only defers a publish (MQTT 5 quota exceeded) gets the same delays
//!   without ever making the row `dead`; a row too large for the broker is
//!   `dead` at its first refusal.
//!
//! Neither is how a `dead` row comes back: an operator revives it (`POST
//! .../outbox/{id}/retry`, `shadowbox outbox retry`), which makes it
//! pending and due at once with its attempts reset.

use std::time::Duration;

use backon::ExponentialBuilder;

/// The first reconnect delay (before jitter).
pub const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);

/// The longest reconnect delay (before jitter).
pub const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// The reconnect backoff: [`RECONNECT_MIN_DELAY`] doubling up to
/// [`RECONNECT_MAX_DELAY`], each delay plus up to 100 % jitter, without
/// end. Build a fresh one (`BackoffBuilder::build`) to start over.
pub fn reconnect() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(RECONNECT_MIN_DELAY)
        .with_max_delay(RECONNECT_MAX_DELAY)
        .with_jitter()
        .without_max_times()
}

/// The refusal backoff of publishes the broker refused while connected:
/// see the [module documentation](self) for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalBackoff {
    /// The delay after the first refusal; it doubles with each further one.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A row refused this many times becomes `dead`.
    pub max_attempts: i32,
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder as _;

    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_cap_and_never_end() {
        let delays: Vec<Duration> = reconnect().build().take(12).collect();
        for (n, delay) in delays.iter().enumerate() {
            let base = (RECONNECT_MIN_DELAY * 2u32.pow(n as u32)).min(RECONNECT_MAX_DELAY);
            assert!(
                *delay >= base && *delay <= base * 2,
                "delay {n}: {delay:?} outside [{base:?}, {:?}]",
                base * 2
            );
        }
    }
}
