//! The reported-state staleness rule: reported state never goes backwards.
//!
//! A device's report carries the desired `version` it has applied. A
//! report whose version is **lower than the stored `reported_version`** is
//! stale: it is dropped and counted as `stale` (it still proves the device
//! alive, so `last_seen` moves). A report at the stored version or above
//! replaces the stored reported state, and `reported_version` becomes its
//! version, unless it is *ahead* of the device's `desired_version` (a
//! version it was never given: refused, never stored, counted as `ahead`;
//! `shadowbox_db::reported` states that rule beside the statement).
//!
//! Among reports of one device that arrive together (one ingest batch),
//! the same rule picks the one to write: a later report replaces an
//! earlier one unless it is stale against it, so the highest version wins
//! and, among equal versions, the latest received (rejections of one
//! batch are picked the same way).
//!
//! The ingester's batching calls [`replaces`]; the database layer's batch
//! statement applies [`is_stale`] row by row in SQL (`version <
//! reported_version`), set-based (`crates/shadowbox-db/tests/reported.rs`
//! checks both sides of it).

/// Whether a report of `version` is stale against the `stored` version:
/// it is dropped and the stored state kept.
pub fn is_stale(version: i64, stored: i64) -> bool {
    version < stored
}

/// Whether a report of `later` version, received after one of `earlier`
/// version of the same device, takes its place.
pub fn replaces(later: i64, earlier: i64) -> bool {
    !is_stale(later, earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_is_stale_equal_and_higher_replace() {
        assert!(is_stale(2, 3));
        assert!(!is_stale(3, 3));
        assert!(!is_stale(4, 3));
        assert!(replaces(3, 3), "among equal versions the latest wins");
        assert!(!replaces(2, 3));
    }
}
