//! The ingester's write: a whole batch of reported states (and device
//! rejections) in one statement, with what they mean for the desired
//! history (`applied_at`, the rejection of the change refused) and the
//! event stream (`applied`, `rejected`). The ingester is the one writer of
//! reported state, so these are written here, not by triggers on
//! `device_state`, which every desired write would pay for.
//!
//! The rules it applies, per device (the convergence rules are stated in
//! `shadowbox_core::convergence`):
//! - a `version` above `desired_version` is `ahead`: refused, never stored;
//! - a `version` below `reported_version` is `stale`: dropped;
//! - otherwise the reported state is stored, and `applied_at` is set when
//!   `reported_version` first reaches the current `desired_version`;
//! - a rejection is recorded only if it refuses the current desired
//!   version and the device does not report that version applied;
//!   otherwise it is ignored;
//! - every message of an active device moves `last_seen` forward.

use chrono::{DateTime, Utc};
use shadowbox_core::payload::Rejection;
pub use shadowbox_core::report::{RejectionOutcome, ReportedOutcome};
use shadowbox_core::{DeviceId, Document, TenantId};
use sqlx::PgExecutor;
use sqlx::types::Json;

/// One device's update of a batch: the winner of its reported states and
/// the winner of its rejections, if any.
#[derive(Debug, Clone)]
pub struct ReportedUpdate {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
    /// The reported state to store, if a message carried one.
    pub reported: Option<ReportedState>,
    /// The rejection to record, if a message carried one.
    pub rejection: Option<ReceivedRejection>,
    /// When the device's latest message of the batch arrived (`last_seen`).
    pub seen_at: DateTime<Utc>,
}

/// A reported state as a device sent it.
#[derive(Debug, Clone)]
pub struct ReportedState {
    /// The whole reported document.
    pub document: Document,
    /// The desired version the device has applied.
    pub version: i64,
    /// When its message arrived (`applied_at` if it reaches the desired
    /// version).
    pub received_at: DateTime<Utc>,
}

/// A rejection as a device sent it.
#[derive(Debug, Clone)]
pub struct ReceivedRejection {
    /// What the device refuses, and why.
    pub rejection: Rejection,
    /// When its message arrived (`rejected_at`).
    pub received_at: DateTime<Utc>,
}

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportedWrite {
    /// What became of its reported state.
    pub outcome: ReportedOutcome,
    /// What became of its rejection, if it had one.
    pub rejection: Option<RejectionOutcome>,
    /// Seconds from the commit of the desired version to its report, when
    /// this update applied the device's current desired version for the
    /// first time (never negative).
    pub commit_to_applied_seconds: Option<f64>,
}

/// Applies `updates` (at most one per device) in one statement and returns
/// what each one did, in input order (see the module doc for the rules).
/// Rows are locked in key order, so concurrent ingesters cannot deadlock
/// each other.
///
/// The locked rows carry their input along, so the UPDATE joins them to
/// `device_state` by primary key alone: joining the input again made the
/// planner (which guesses 10 rows for `unnest`) compare every update with
/// every other, quadratic in the batch size (60 ms for 500 rows).
pub async fn apply_reported(
    db: impl PgExecutor<'_>,
    updates: &[ReportedUpdate],
) -> sqlx::Result<Vec<ReportedWrite>> {
    let tenants: Vec<&str> = updates.iter().map(|u| u.tenant_id.as_str()).collect();
    let devices: Vec<&str> = updates.iter().map(|u| u.device_id.as_str()).collect();
    let reported = || updates.iter().map(|u| u.reported.as_ref());
    let documents: Vec<Option<Json<&Document>>> =
        reported().map(|r| r.map(|r| Json(&r.document))).collect();
    let versions: Vec<Option<i64>> = reported().map(|r| r.map(|r| r.version)).collect();
    let reported_at: Vec<Option<DateTime<Utc>>> =
        reported().map(|r| r.map(|r| r.received_at)).collect();
    let rejections = || updates.iter().map(|u| u.rejection.as_ref());
    let rejected_versions: Vec<Option<i64>> = rejections()
        .map(|r| r.map(|r| r.rejection.version))
        .collect();
    let rejected_reasons: Vec<Option<&str>> = rejections()
        .map(|r| r.map(|r| r.rejection.reason.as_str()))
        .collect();
    let rejected_at: Vec<Option<DateTime<Utc>>> =
        rejections().map(|r| r.map(|r| r.received_at)).collect();
    let seen_at: Vec<DateTime<Utc>> = updates.iter().map(|u| u.seen_at).collect();
    let rows = sqlx::query!(
        r#"WITH input AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::bigint[], $5::timestamptz[],
                                $6::bigint[], $7::text[], $8::timestamptz[], $9::timestamptz[])
             WITH ORDINALITY AS i(tenant_id, device_id, reported, version, reported_at,
                                  rejected_version, rejected_reason, rejected_at, seen_at, ord)),
         current AS MATERIALIZED (
           SELECT s.tenant_id, s.device_id, s.status, s.reported_version, s.desired_version,
                  s.desired_committed_at, s.applied_at, s.last_seen AS stored_last_seen,
                  s.rejected_at AS stored_rejected_at,
                  i.reported, i.version, i.reported_at,
                  i.rejected_version, i.rejected_reason, i.rejected_at, i.seen_at
           FROM device_state s JOIN input i USING (tenant_id, device_id)
           ORDER BY s.tenant_id, s.device_id
           FOR UPDATE OF s),
         report AS (
           SELECT c.*,
                  CASE WHEN c.reported IS NULL THEN 'rejection'
                       WHEN c.version > c.desired_version THEN 'ahead'
                       WHEN c.version < c.reported_version THEN 'stale'
                       ELSE 'applied' END AS outcome
           FROM current c),
         judged AS (
           SELECT r.*,
                  r.outcome = 'applied' AND r.applied_at IS NULL AND r.desired_version > 0
                    AND r.version >= r.desired_version AS newly_applied,
                  CASE WHEN r.rejected_version IS NULL THEN NULL
                       WHEN r.rejected_version = r.desired_version
                         AND (CASE WHEN r.outcome = 'applied' THEN r.version
                                   ELSE r.reported_version END) < r.rejected_version
                         THEN 'recorded'
                       ELSE 'ignored' END AS rejection
           FROM report r),
         updated AS (
           UPDATE device_state s SET
             reported_state = CASE WHEN j.outcome = 'applied' THEN j.reported ELSE s.reported_state END,
             reported_version = CASE WHEN j.outcome = 'applied' THEN j.version ELSE s.reported_version END,
             applied_at = CASE WHEN j.newly_applied THEN j.reported_at ELSE s.applied_at END,
             rejected_version = CASE WHEN j.rejection = 'recorded' THEN j.rejected_version ELSE s.rejected_version END,
             rejected_reason = CASE WHEN j.rejection = 'recorded' THEN j.rejected_reason ELSE s.rejected_reason END,
             rejected_at = CASE WHEN j.rejection = 'recorded' THEN j.rejected_at ELSE s.rejected_at END,
             last_seen = greatest(s.last_seen, j.seen_at),
             updated_at = now()
           FROM judged j
           WHERE s.tenant_id = j.tenant_id AND s.device_id = j.device_id
             AND j.status = 'active'),
         changed AS (
           SELECT j.*,
                  j.status = 'active' AND j.outcome = 'applied'
                    AND j.version > j.reported_version AS applies,
                  j.status = 'active' AND j.rejection = 'recorded'
                    AND j.rejected_at IS DISTINCT FROM j.stored_rejected_at AS refuses,
                  greatest(j.stored_last_seen, j.seen_at) AS last_seen
           FROM judged j),
         -- The change that made a version a device now reports gets its
         -- applied_at (versions it skipped were never applied as such); the
         -- change a recorded rejection refuses gets the rejection. Locked in
         -- id order, as every writer of the history does.
         history AS (
           UPDATE desired_history h SET
             applied_at = coalesce(h.applied_at, m.applied_at),
             rejection_reason = coalesce(m.rejection_reason, h.rejection_reason),
             rejected_at = coalesce(m.rejected_at, h.rejected_at)
           FROM (SELECT h2.id,
                        CASE WHEN c.applies AND h2.version = c.version
                             THEN c.last_seen END AS applied_at,
                        CASE WHEN c.refuses AND h2.version = c.rejected_version
                             THEN c.rejected_reason END AS rejection_reason,
                        CASE WHEN c.refuses AND h2.version = c.rejected_version
                             THEN c.rejected_at END AS rejected_at
                 FROM changed c
                 JOIN desired_history h2
                   ON h2.tenant_id = c.tenant_id AND h2.device_id = c.device_id
                  AND h2.change <> 'decommission'
                  AND ((c.applies AND h2.version = c.version AND h2.applied_at IS NULL)
                       OR (c.refuses AND h2.version = c.rejected_version))
                 ORDER BY h2.id
                 FOR UPDATE OF h2) m
           WHERE h.id = m.id),
         -- The event stream: `applied` for a higher reported version,
         -- `rejected` for a recorded rejection.
         evented AS (
           INSERT INTO events (tenant_id, event, device_id, version, at, data)
           SELECT tenant_id, event, device_id, version, at, data FROM (
             SELECT c.tenant_id, 'applied' AS event, c.device_id, c.version, c.last_seen AS at,
                    jsonb_build_object('in_sync', c.version >= c.desired_version) AS data
             FROM changed c WHERE c.applies
             UNION ALL
             SELECT c.tenant_id, 'rejected', c.device_id, c.rejected_version, c.rejected_at,
                    jsonb_build_object('reason', c.rejected_reason)
             FROM changed c WHERE c.refuses) e
           ORDER BY tenant_id, device_id, event)
         SELECT CASE WHEN j.tenant_id IS NULL THEN 'unknown'
                     WHEN j.status <> 'active' THEN 'decommissioned'
                     ELSE j.outcome END AS "outcome!: ReportedOutcome",
                CASE WHEN i.rejected_version IS NULL THEN NULL
                     WHEN j.status = 'active' THEN j.rejection
                     ELSE 'ignored' END AS "rejection: RejectionOutcome",
                CASE WHEN j.newly_applied AND j.status = 'active'
                     THEN greatest(0, extract(epoch FROM j.reported_at - j.desired_committed_at))::float8
                END AS "commit_to_applied_seconds: f64"
         FROM input i LEFT JOIN judged j USING (tenant_id, device_id)
         ORDER BY i.ord"#,
        &tenants as &[&str],
        &devices as &[&str],
        &documents as _,
        &versions as &[Option<i64>],
        &reported_at as &[Option<DateTime<Utc>>],
        &rejected_versions as &[Option<i64>],
        &rejected_reasons as &[Option<&str>],
        &rejected_at as &[Option<DateTime<Utc>>],
        &seen_at
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.outcome, row.rejection, row.commit_to_applied_seconds))
        .map(|(outcome, rejection, seconds)| ReportedWrite {
            outcome,
            rejection,
            commit_to_applied_seconds: seconds,
        })
        .collect())
}
