//! Rollouts as the API and operators see them: creating one (the device
//! set is fixed here, in one statement), reading it with its progress,
//! listing, and the operators' transitions (pause, resume, cancel,
//! rollback). The wave machine's writes are [`crate::rollout_machine`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shadowbox_core::rollout::{RolloutStatus, wave_ends};
use shadowbox_core::tags::Tags;
use shadowbox_core::{DeviceId, Document, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::devices::push_tag_filter;
use crate::error::is_fk_violation;
use crate::{DbError, ROLLOUT_CHANNEL};

/// Which active devices a rollout changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// These devices (duplicates count once).
    DeviceIds(Vec<DeviceId>),
    /// Devices having every one of these tags.
    Tags(Tags),
    /// Every active device of the tenant (stored as `{"all": true}`).
    All(bool),
}

/// A rollout to create, checked by the caller against the rules of
/// `shadowbox_core::rollout`.
#[derive(Debug, Clone)]
pub struct NewRollout {
    /// Which devices.
    pub selector: Selector,
    /// The RFC 7396 merge patch applied to each device's document.
    pub patch: Document,
    /// Cumulative fractions of the set, the last one 1.0.
    pub waves: Vec<f64>,
    /// Fraction of the devices written so far that must converge before
    /// the next wave.
    pub min_converged: f64,
    /// A wave that has not converged after this long aborts the rollout.
    pub wave_timeout: Option<Duration>,
    /// Abort when more than this fraction of the written devices rejected.
    pub max_rejected: Option<f64>,
}

/// `sqlx::query_as!` of a statement counting rollout devices `rd` of
/// devices `d`: `$head`, then the columns `converged` (it reports the
/// version written for it, or, left unchanged, it is in sync) and
/// `rejected` (its newest rejection is of the version written for it),
/// then `$tail`. The one statement of both rules: the progress and the
/// wave machine's gates count with it.
macro_rules! count_rollout_devices {
    ($out:ty, $head:tt, $tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            $out,
            $head
                + " count(*) FILTER (WHERE
                      (rd.outcome = 'written' AND d.reported_version >= rd.version)
                      OR (rd.outcome = 'unchanged' AND d.reported_version >= d.desired_version))
                      AS converged,
                    count(*) FILTER (WHERE rd.outcome = 'written'
                      AND d.rejected_version = rd.version) AS rejected "
                + $tail
            $(, $arg)*
        )
    };
}
pub(crate) use count_rollout_devices;

/// `sqlx::query_as!` for [`RolloutRecord`]s: `SELECT`, the row's columns,
/// then `$tail`.
macro_rules! rollout_rows {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            RolloutRecord,
            r#"SELECT id, tenant_id, status AS "status: RolloutStatus",
                      selector AS "selector: Json<serde_json::Value>",
                      patch AS "patch: Json<Document>", waves, min_converged,
                      wave_timeout_ms, max_rejected, selected, current_wave, abort_reason,
                      created_at, finished_at, rollback_finished_at
               FROM rollouts "#
                + $tail
            $(, $arg)*
        )
    };
}

/// A rollout selecting at least this many devices refreshes the planner's
/// statistics of `rollout_devices` as it is created.
pub const ANALYZE_SELECTED_AT: i64 = 10_000;

/// Creates a rollout, fixing its device set now: the selected active
/// devices, in a pseudo-random order (reproducible from the rollout's id)
/// cut into its waves. Returns its id. [`DbError::EmptySelection`] when
/// no active device matches.
pub async fn create_rollout(
    conn: &mut PgConnection,
    tenant: &TenantId,
    new: &NewRollout,
) -> Result<i64, DbError> {
    let inserted = sqlx::query_scalar!(
        "INSERT INTO rollouts (tenant_id, selector, patch, waves, min_converged,
                               wave_timeout_ms, max_rejected, selected)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0) RETURNING id",
        tenant.as_str(),
        Json(&new.selector) as _,
        Json(&new.patch) as _,
        &new.waves,
        new.min_converged,
        new.wave_timeout.map(|t| t.as_millis() as i64),
        new.max_rejected
    )
    .fetch_one(&mut *conn)
    .await;
    let id: i64 = match inserted {
        Err(e) if is_fk_violation(&e, "rollouts_tenant_id_fkey") => {
            return Err(DbError::TenantNotFound);
        }
        other => other?,
    };
    let mut select: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO rollout_devices (rollout_id, seq, device_id)
         SELECT ",
    );
    select
        .push_bind(id)
        .push(", row_number() OVER (ORDER BY md5(d.device_id || ':' || ")
        .push_bind(id.to_string())
        .push("), d.device_id) , d.device_id FROM device_state d WHERE d.tenant_id = ")
        .push_bind(tenant.as_str())
        .push(" AND d.status = 'active'");
    match &new.selector {
        Selector::DeviceIds(ids) => {
            let ids: Vec<&str> = ids.iter().map(DeviceId::as_str).collect();
            select
                .push(" AND d.device_id = ANY(")
                .push_bind(ids)
                .push(")");
        }
        Selector::Tags(tags) => push_tag_filter(&mut select, tags),
        Selector::All(_) => {}
    }
    let selected = select.build().execute(&mut *conn).await?.rows_affected() as i64;
    if selected == 0 {
        return Err(DbError::EmptySelection);
    }
    if selected >= ANALYZE_SELECTED_AT {
        // Statistics that know this set (ANALYZE samples the creating
        // transaction's own rows): planned from ones taken before, the
        // progress counts of a rollout of 10^5 devices ran for minutes.
        sqlx::query!("ANALYZE rollout_devices")
            .execute(&mut *conn)
            .await?;
    }
    let ends = wave_ends(&new.waves, selected);
    let firsts: Vec<i64> = std::iter::once(1)
        .chain(ends.iter().map(|end| end + 1))
        .take(ends.len())
        .collect();
    sqlx::query!(
        "WITH w AS (UPDATE rollouts SET selected = $2 WHERE id = $1)
         INSERT INTO rollout_waves (rollout_id, wave, fraction, first_seq, last_seq)
         SELECT $1, n::integer - 1, fraction, first_seq, last_seq
         FROM unnest($3::double precision[], $4::bigint[], $5::bigint[])
           WITH ORDINALITY AS u(fraction, first_seq, last_seq, n)",
        id,
        selected,
        &new.waves,
        &firsts,
        &ends
    )
    .execute(&mut *conn)
    .await?;
    wake_wave_machines(conn).await?;
    Ok(id)
}

/// Wakes the wave machines (`NOTIFY` on [`ROLLOUT_CHANNEL`], delivered
/// when the caller's transaction commits): a rollout became due.
async fn wake_wave_machines(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify($1, '')", ROLLOUT_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// A rollout's row.
#[derive(Debug, Clone)]
pub struct RolloutRecord {
    /// Its id.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: String,
    /// Its status.
    pub status: RolloutStatus,
    /// The selector as given.
    pub selector: Json<serde_json::Value>,
    /// The merge patch.
    pub patch: Json<Document>,
    /// Cumulative wave fractions.
    pub waves: Vec<f64>,
    /// The convergence gate.
    pub min_converged: f64,
    /// The wave timeout, in milliseconds.
    pub wave_timeout_ms: Option<i64>,
    /// The rejection gate.
    pub max_rejected: Option<f64>,
    /// Devices in its set.
    pub selected: i64,
    /// The wave being written or waited for (0-based).
    pub current_wave: i32,
    /// Why it was aborted.
    pub abort_reason: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it completed, aborted or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// When its rollback looked at every written device.
    pub rollback_finished_at: Option<DateTime<Utc>>,
}

/// One wave's progress.
#[derive(Debug, Clone, Serialize)]
pub struct WaveProgress {
    /// 0-based.
    pub wave: i32,
    /// Its cumulative fraction.
    pub fraction: f64,
    /// Devices in it.
    pub size: i64,
    /// Devices given a new version.
    pub written: i64,
    /// Written devices whose new version (or a newer one) the broker
    /// acknowledged.
    pub delivered: i64,
    /// Devices that report the version written for them (or, unchanged,
    /// are in sync).
    pub converged: i64,
    /// Written devices that rejected their version.
    pub rejected: i64,
    /// Devices not written: unchanged, decommissioned or over the limits.
    pub skipped_unchanged: i64,
    /// Devices decommissioned since the rollout was created.
    pub skipped_decommissioned: i64,
    /// Devices whose document would break the limits.
    pub skipped_limits: i64,
    /// When its first chunk was written.
    pub started_at: Option<DateTime<Utc>>,
    /// When it met the convergence gate.
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a rollback did so far.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RollbackProgress {
    /// Devices given their previous document back.
    pub restored: i64,
    /// Devices left alone: changed (or decommissioned) since the rollout
    /// wrote them.
    pub changed: i64,
}

/// A rollout with its waves' progress.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The rollout.
    pub record: RolloutRecord,
    /// Its waves, in order.
    pub waves: Vec<WaveProgress>,
    /// Its rollback's counts, once rolled back.
    pub rollback: Option<RollbackProgress>,
}

/// Reads a rollout of `tenant` with its progress (`None`: no such rollout
/// in this tenant). Delivered, converged and rejected are counted now from
/// the devices and the outbox: one pass over the written devices. Each
/// device's delivery is a walk of its own rows, newest first (OFFSET 0
/// keeps the status test out of that walk: with it, statistics taken
/// before the rollout made the planner walk all of the tenant's delivered
/// rows per device, and a GET of 10^5 devices ran past a minute).
pub async fn get_rollout(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: i64,
) -> sqlx::Result<Option<Rollout>> {
    let Some(record) = rollout_rows!("WHERE id = $1 AND tenant_id = $2", id, tenant.as_str())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let waves = count_rollout_devices!(
        WaveProgress,
        r#"SELECT w.wave, w.fraction, greatest(w.last_seq - w.first_seq + 1, 0) AS "size!",
                  w.written, w.skipped_unchanged, w.skipped_decommissioned, w.skipped_limits,
                  w.started_at, w.finished_at,
                  coalesce(c.delivered, 0) AS "delivered!",
                  coalesce(c.converged, 0) AS "converged!",
                  coalesce(c.rejected, 0) AS "rejected!"
           FROM rollout_waves w
           LEFT JOIN LATERAL (
             SELECT count(*) FILTER (WHERE rd.outcome = 'written' AND EXISTS (
                      SELECT 1 FROM (
                        SELECT o.status FROM outbox o
                        WHERE o.tenant_id = d.tenant_id AND o.device_id = d.device_id
                          AND o.version >= rd.version
                        ORDER BY o.id DESC
                        OFFSET 0) o
                      WHERE o.status = 'delivered')) AS delivered,"#,
        "  FROM rollout_devices rd
             JOIN device_state d ON d.tenant_id = $2 AND d.device_id = rd.device_id
             WHERE rd.rollout_id = w.rollout_id AND rd.seq BETWEEN w.first_seq AND w.last_seq
               AND rd.outcome IN ('written', 'unchanged')
           ) c ON true
           WHERE w.rollout_id = $1
           ORDER BY w.wave",
        id,
        tenant.as_str()
    )
    .fetch_all(&mut *conn)
    .await?;
    let rollback = if record.status == RolloutStatus::RolledBack {
        Some(
            sqlx::query_as!(
                RollbackProgress,
                r#"SELECT count(*) FILTER (WHERE rollback = 'restored') AS "restored!",
                          count(*) FILTER (WHERE rollback = 'changed') AS "changed!"
                   FROM rollout_devices WHERE rollout_id = $1 AND rollback IS NOT NULL"#,
                id
            )
            .fetch_one(&mut *conn)
            .await?,
        )
    } else {
        None
    };
    Ok(Some(Rollout {
        record,
        waves,
        rollback,
    }))
}

/// Lists a tenant's rollouts, newest first, below `before_id` (the page
/// cursor), at most `limit`: the rows only (read one for its progress).
pub async fn list_rollouts(
    db: impl PgExecutor<'_>,
    tenant: &TenantId,
    before_id: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<RolloutRecord>> {
    rollout_rows!(
        "WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        tenant.as_str(),
        before_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// An operator's transition of a rollout to `to` (`paused`, `running`,
/// `cancelled` or `rolled_back`), allowed only from the statuses
/// [`RolloutStatus::can_become`] names: [`DbError::RolloutState`]
/// otherwise. Pausing stops the wave timeout's clock and resuming starts
/// it again; a rollback starts restoring at the first device. Waits for a
/// chunk the wave machine is writing (it holds the rollout's row lock), so
/// nothing is written after a pause or a cancel returns.
pub async fn transition(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: i64,
    to: RolloutStatus,
) -> Result<(), DbError> {
    let sources: Vec<&str> = RolloutStatus::sources(to)
        .into_iter()
        .map(RolloutStatus::as_str)
        .collect();
    let changed = sqlx::query!(
        "UPDATE rollouts SET
           status = $3,
           wave_clock_ms = CASE WHEN $3 = 'paused' AND wave_clock_started_at IS NOT NULL
             THEN wave_clock_ms + (extract(epoch FROM now() - wave_clock_started_at) * 1000)::bigint
             ELSE wave_clock_ms END,
           wave_clock_started_at = CASE WHEN $3 = 'running' THEN now()
             WHEN $3 = 'paused' THEN NULL ELSE wave_clock_started_at END,
           finished_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE finished_at END,
           rollback_through = CASE WHEN $3 = 'rolled_back' THEN 0 ELSE rollback_through END,
           next_tick_at = now()
         WHERE id = $1 AND tenant_id = $2 AND status = ANY($4)",
        id,
        tenant.as_str(),
        to.as_str(),
        &sources as &[&str]
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed == 1 {
        wake_wave_machines(conn).await?;
        return Ok(());
    }
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: RolloutStatus" FROM rollouts WHERE id = $1 AND tenant_id = $2"#,
        id,
        tenant.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?;
    match status {
        None => Err(DbError::NotFound("rollout")),
        Some(from) => Err(DbError::RolloutState { from, to }),
    }
}
