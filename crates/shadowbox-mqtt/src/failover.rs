//! Which broker of the list to use, how long to wait before the next
//! attempt, and what to tell `/readyz` and the logs about it.
//!
//! The brokers are tried in list order, starting with the first. A client
//! stays on a broker as long as it works and moves to the next one in the
//! list when it fails (no fail-back: a broker that came back is used again
//! only when its turn comes). Every failed attempt waits the reconnect
//! backoff's next delay (`shadowbox_core::backoff`: 100 ms doubling to
//! 5 s, jittered) before the next, until the caller resets it (on a
//! CONNACK, or once a connection has proved stable).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff};
use shadowbox_core::backoff::{self, RECONNECT_MAX_DELAY};

use crate::address::BrokerAddress;

/// Where a client stands with its brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerState {
    /// Nothing tried yet.
    Starting,
    /// Connected to this broker.
    Connected(String),
    /// The last attempt, on this broker, failed for this reason.
    Down {
        /// The broker (`mqtt://host:port`).
        broker: String,
        /// Why.
        reason: String,
    },
}

/// A client's [`BrokerState`], shared with whoever reports it; cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct BrokerStatus(Arc<Mutex<BrokerState>>);

impl Default for BrokerStatus {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(BrokerState::Starting)))
    }
}

impl BrokerStatus {
    /// The current state.
    pub fn get(&self) -> BrokerState {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, state: BrokerState) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

/// The broker list of one client and its position in it.
#[derive(Debug)]
pub struct Failover {
    brokers: Arc<[BrokerAddress]>,
    current: usize,
    delays: ExponentialBackoff,
    status: BrokerStatus,
}

impl Failover {
    /// Starts with the first of `brokers` (which must not be empty).
    pub fn new(brokers: Arc<[BrokerAddress]>) -> Self {
        assert!(!brokers.is_empty(), "at least one broker");
        Self {
            brokers,
            current: 0,
            delays: backoff::reconnect().build(),
            status: BrokerStatus::default(),
        }
    }

    /// The broker to connect to now.
    pub fn broker(&self) -> &BrokerAddress {
        &self.brokers[self.current]
    }

    /// Whether there is more than one broker to move between.
    pub fn has_alternatives(&self) -> bool {
        self.brokers.len() > 1
    }

    /// The shared view of this client's state.
    pub fn status(&self) -> BrokerStatus {
        self.status.clone()
    }

    /// The current broker accepted the connection.
    pub fn connected(&mut self) {
        self.status
            .set(BrokerState::Connected(self.broker().to_string()));
    }

    /// Starts the delays over from the shortest.
    pub fn reset_backoff(&mut self) {
        self.delays = backoff::reconnect().build();
    }

    /// The current broker failed (refused, unreachable, or the connection
    /// dropped): records why, moves to the next broker, and returns how
    /// long to wait before trying it.
    pub fn failed(&mut self, reason: &str) -> Duration {
        self.status.set(BrokerState::Down {
            broker: self.broker().to_string(),
            reason: reason.to_owned(),
        });
        self.current = (self.current + 1) % self.brokers.len();
        self.delays.next().unwrap_or(RECONNECT_MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::parse_list;

    #[test]
    fn moves_on_when_a_broker_fails_and_stays_while_it_works() {
        let mut failover = Failover::new(
            parse_list("mqtt://a:1,mqtt://b:2,mqtt://c:3")
                .unwrap()
                .into(),
        );
        let status = failover.status();
        assert_eq!(status.get(), BrokerState::Starting);
        assert_eq!(failover.broker().host, "a");
        let first = failover.failed("refused");
        assert!(first <= Duration::from_millis(200), "{first:?}");
        assert_eq!(
            status.get(),
            BrokerState::Down {
                broker: "mqtt://a:1".into(),
                reason: "refused".into()
            }
        );
        assert_eq!(failover.broker().host, "b");
        failover.connected();
        assert_eq!(status.get(), BrokerState::Connected("mqtt://b:2".into()));
        assert_eq!(failover.broker().host, "b", "no fail-back");
        failover.failed("gone");
        failover.failed("gone");
        assert_eq!(failover.broker().host, "a", "round the list");
    }
}
