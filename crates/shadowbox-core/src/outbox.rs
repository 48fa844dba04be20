//! The outbox's vocabulary: what a row publishes and where it stands.
//!
//! SQL still spells a status as a literal where a statement filters on
//! it (`status = 'pending'`): the partial indexes are defined on those
//! literals, and a bound parameter would hide them from the planner.

use crate::text_enum::text_enum;

text_enum!(
    /// What an outbox row publishes (`outbox.kind`).
    OutboxKind {
        /// The whole desired document, retained.
        Desired = "desired",
        /// An empty retained payload: the device has no desired state.
        Clear = "clear",
    }
);

text_enum!(
    /// Where an outbox row stands (`outbox.status`).
    OutboxStatus {
        /// Waiting for (or in) its publish; `next_attempt_at` says when.
        Pending = "pending",
        /// The broker acknowledged it at `delivered_at`.
        Delivered = "delivered",
        /// A newer row of its device replaced it before it was acknowledged.
        Superseded = "superseded",
        /// Refused too often while connected; an operator revives it.
        Dead = "dead",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_every_spelling() {
        for status in OutboxStatus::ALL {
            assert_eq!(status.as_str().parse::<OutboxStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_string(status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert_eq!(format!("{:<7}|", OutboxKind::Clear), "clear  |");
        let unknown = "gone".parse::<OutboxStatus>().unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "\"gone\" is not one of pending delivered superseded dead"
        );
    }
}
