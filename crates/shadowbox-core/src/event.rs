//! The event stream's vocabulary: the kinds of events, and the ids that
//! order them as they committed (`Last-Event-ID`).

use std::fmt;
use std::str::FromStr;

use crate::text_enum::text_enum;

text_enum!(
    /// What an event reports (`events.event`, the stream's `event:`).
    EventKind {
        /// A desired change was committed.
        Desired = "desired",
        /// The broker acknowledged a publish.
        Delivered = "delivered",
        /// The device reported a higher version applied.
        Applied = "applied",
        /// The device refused its desired version.
        Rejected = "rejected",
        /// A publish became dead.
        Dead = "dead",
        /// A rollout changed.
        Rollout = "rollout",
    }
);

/// The form of an [`EventId`] as [`EventId::from_str`] accepts it.
pub const EVENT_ID_PATTERN: &str = "^[0-9]{1,19}-[0-9]{1,19}$";

/// The longest [`EventId`] text.
pub const MAX_EVENT_ID_LEN: usize = 39;

/// An event's position: the id of the transaction that wrote it, then its
/// order within that transaction. Written `<xid>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The writing transaction (`pg_current_xact_id()`).
    pub xid: i64,
    /// The order within it.
    pub seq: i64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.xid, self.seq)
    }
}

/// Why a string is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an event id (<number>-<number>)")]
pub struct BadEventId(pub String);

impl FromStr for EventId {
    type Err = BadEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEventId(s.to_owned());
        let (xid, seq) = s.split_once('-').ok_or_else(bad)?;
        let number = |part: &str| {
            (!part.is_empty() && part.len() <= 19 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<i64>().ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(Self {
            xid: number(xid)?,
            seq: number(seq)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_order_by_transaction_first() {
        let id = EventId { xid: 812, seq: 3 };
        assert_eq!(id.to_string(), "812-3");
        assert_eq!("812-3".parse::<EventId>(), Ok(id));
        assert!(EventId { xid: 811, seq: 9 } < id);
        for bad in [
            "",
            "812",
            "812-",
            "-3",
            "a-3",
            "812-3-4",
            "+1-2",
            "1-99999999999999999999",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
    }
}
