//! Counters shared by every connection of a run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a run's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Devices that connect (the online fraction of all devices).
    pub online: u64,
    /// Desired messages received (including dropped, stale and invalid).
    pub received: u64,
    /// Desired messages ignored on purpose (the drop rate).
    pub dropped: u64,
    /// Desired documents applied.
    pub applied: u64,
    /// Desired versions refused (see [`crate::RejectRule`]), and reported
    /// as refused.
    pub rejected: u64,
    /// Desired messages ignored because their version is lower than one
    /// already applied.
    pub stale: u64,
    /// Clears (empty payloads) received.
    pub cleared: u64,
    /// Desired payloads that could not be decoded.
    pub invalid: u64,
    /// Reports handed to the MQTT client.
    pub reported: u64,
    /// Connections lost or dropped on purpose.
    pub disconnects: u64,
}

impl fmt::Display for SimStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "online={} received={} dropped={} applied={} rejected={} stale={} cleared={} invalid={} reported={} disconnects={}",
            self.online,
            self.received,
            self.dropped,
            self.applied,
            self.rejected,
            self.stale,
            self.cleared,
            self.invalid,
            self.reported,
            self.disconnects
        )
    }
}

/// What happened, counted by [`Counters::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Received,
    Dropped,
    Applied,
    Rejected,
    Stale,
    Cleared,
    Invalid,
    Reported,
    Disconnect,
}

/// The live counters behind [`SimStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    online: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    applied: AtomicU64,
    rejected: AtomicU64,
    stale: AtomicU64,
    cleared: AtomicU64,
    invalid: AtomicU64,
    reported: AtomicU64,
    disconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn set_online(&self, online: usize) {
        self.online.store(online as u64, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, event: Event) {
        let counter = match event {
            Event::Received => &self.received,
            Event::Dropped => &self.dropped,
            Event::Applied => &self.applied,
            Event::Rejected => &self.rejected,
            Event::Stale => &self.stale,
            Event::Cleared => &self.cleared,
            Event::Invalid => &self.invalid,
            Event::Reported => &self.reported,
            Event::Disconnect => &self.disconnects,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            online: get(&self.online),
            received: get(&self.received),
            dropped: get(&self.dropped),
            applied: get(&self.applied),
            rejected: get(&self.rejected),
            stale: get(&self.stale),
            cleared: get(&self.cleared),
            invalid: get(&self.invalid),
            reported: get(&self.reported),
            disconnects: get(&self.disconnects),
        }
    }
}
