//! Convergence: whether a device has applied its desired version, whether
//! its rejection still concerns it, and the buckets every
//! time-to-converge histogram uses.
//!
//! The database applies the same rules where it must work set-based: the
//! ingester's statement (`shadowbox_db::reported`), the device list's
//! `in_sync` filter and its `device_state_not_in_sync` index, and the
//! trigger that resets `applied_at` on every new desired version.

/// A device is in sync when it reports (at least) its desired version.
pub fn in_sync(desired_version: i64, reported_version: i64) -> bool {
    reported_version >= desired_version
}

/// A stored rejection concerns the device while it refuses its current
/// desired version and has not applied it after all.
pub fn rejection_is_current(
    desired_version: i64,
    reported_version: i64,
    rejected_version: i64,
) -> bool {
    rejected_version == desired_version && !in_sync(desired_version, reported_version)
}

/// Upper bounds, in seconds, of the commit → PUBACK and commit → applied
/// histograms: 10 ms to 1 h, with a bound at 5 minutes, the convergence
/// alert's threshold, so its quantile is exact there.
pub const CONVERGENCE_BUCKETS_SECONDS: [f64; 17] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_concerns_only_the_current_unapplied_version() {
        assert!(rejection_is_current(9, 8, 9));
        assert!(
            !rejection_is_current(10, 8, 9),
            "a newer version was written"
        );
        assert!(!rejection_is_current(9, 9, 9), "applied after all");
        assert!(in_sync(3, 3) && !in_sync(3, 2));
    }
}
