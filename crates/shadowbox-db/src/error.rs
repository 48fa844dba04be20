//! The errors of the database layer, in the domain's terms.

use shadowbox_core::rollout::RolloutStatus;
use shadowbox_core::{DocumentError, OutboxStatus};

/// What can go wrong in a query, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The tenant does not exist.
    #[error("tenant not found")]
    TenantNotFound,
    /// The device (or outbox row) does not exist in this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A device with this id already exists in the tenant.
    #[error("device already exists")]
    DeviceExists,
    /// The device is decommissioned and takes no more desired writes.
    #[error("device is decommissioned")]
    Decommissioned,
    /// The expected desired version (`If-Match`) is not the current one.
    #[error("expected desired version {expected}, current is {current}")]
    VersionMismatch {
        /// The version the caller expected.
        expected: i64,
        /// The version stored.
        current: i64,
    },
    /// The outbox row is not in a state that allows the operation.
    #[error("outbox row is {0}, not dead")]
    NotDead(OutboxStatus),
    /// A rollout's selector matches no active device.
    #[error("the selector matches no active device")]
    EmptySelection,
    /// A rollout's status does not allow the transition.
    #[error("the rollout is {from}: it cannot become {to}")]
    RolloutState {
        /// Its status.
        from: RolloutStatus,
        /// The status asked for.
        to: RolloutStatus,
    },
    /// The resulting document breaks the limits.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The database failed.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// Whether `err` is a unique-constraint violation of `constraint`.
pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation() && e.constraint() == Some(constraint))
}

/// Whether `err` is a foreign-key violation of `constraint`.
pub(crate) fn is_fk_violation(err: &sqlx::Error, constraint: &str) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_foreign_key_violation() && e.constraint() == Some(constraint))
}
