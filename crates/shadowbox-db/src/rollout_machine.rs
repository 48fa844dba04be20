//! The wave machine's steps, each one transaction: claim a rollout that
//! is due (`FOR UPDATE SKIP LOCKED` on its row), then either write one
//! chunk of its current wave, or count its gates and move it on (next
//! wave, completed, aborted), or restore one chunk of a rollback.
//!
//! Why this is exactly-once with any number of replicas: the rollout's row
//! lock is held by the transaction that writes the chunk *and* advances
//! the rollout's cursor (`written_through`), so a chunk and the record of
//! it commit together or not at all. Another replica skips the locked row
//! (and works on another rollout) and, once it commits, sees the cursor
//! past the chunk. A crash rolls back the chunk and its cursor together;
//! PostgreSQL drops the lock with the connection. An advisory lock would
//! not tie the cursor to the write, and a lease would need clocks.
//!
//! Each device keeps every guarantee of a single PATCH: its row is locked
//! (in device id order, as every set-based writer locks), its document is
//! merged by the same rule ([`crate::desired::next_document`]), its
//! version bumps by one and its outbox row is enqueued by the same
//! statement a PATCH uses ([`crate::changes`]), all in
//! the chunk's transaction. A PATCH of the same device waits for the chunk
//! at most, and the later writer merges onto the earlier one's document.

use std::time::Duration;

use shadowbox_core::rollout::{RolloutStatus, converged_enough, rejected_too_many};
use shadowbox_core::{Actor, Change, DeviceId, DeviceStatus, Document, DocumentLimits, TenantId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::DbError;
use crate::changes::{self, DeviceChange, Publish, Recorded};
use crate::desired::{DesiredChange, next_document};

/// How the wave machine works.
#[derive(Debug, Clone, Copy)]
pub struct MachineSettings {
    /// Devices written per transaction.
    pub chunk_size: i64,
    /// How long a rollout waiting for its gate is left alone between two
    /// counts.
    pub poll_interval: Duration,
    /// The document limits every desired write obeys.
    pub limits: DocumentLimits,
}

/// What one [`step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No rollout was due (or every due one is being worked on).
    Idle,
    /// Wrote one chunk of a wave.
    Wrote {
        /// The rollout.
        rollout: i64,
        /// Devices given a new version.
        written: u64,
        /// Devices left as they were (unchanged, decommissioned, limits).
        skipped: u64,
    },
    /// Counted a rollout's gates; it waits on.
    Waited {
        /// The rollout.
        rollout: i64,
    },
    /// Started the rollout's next wave.
    NextWave {
        /// The rollout.
        rollout: i64,
        /// The wave started (0-based).
        wave: i32,
    },
    /// The rollout completed or was aborted.
    Finished {
        /// The rollout.
        rollout: i64,
        /// `completed` or `aborted`.
        status: RolloutStatus,
    },
    /// Restored one chunk of a rollback (or finished it).
    RolledBack {
        /// The rollout.
        rollout: i64,
        /// Devices given their previous document back.
        restored: u64,
        /// Devices changed since, left alone.
        changed: u64,
    },
}

/// The claimed rollout.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: i64,
    tenant_id: String,
    status: RolloutStatus,
    patch: Json<Document>,
    min_converged: f64,
    wave_timeout_ms: Option<i64>,
    max_rejected: Option<f64>,
    current_wave: i32,
    wave_count: i32,
    written_through: i64,
    rollback_through: Option<i64>,
    elapsed_ms: i64,
    check_due: bool,
}

/// Does one step of the machine for one due rollout, in one transaction.
pub async fn step(pool: &PgPool, settings: &MachineSettings) -> Result<Step, DbError> {
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query_as!(
        Claimed,
        r#"SELECT id, tenant_id, status AS "status: RolloutStatus",
                  patch AS "patch: Json<Document>", min_converged, wave_timeout_ms, max_rejected,
                  current_wave, cardinality(waves) AS "wave_count!", written_through,
                  rollback_through,
                  wave_clock_ms + coalesce(
                    (extract(epoch FROM now() - wave_clock_started_at) * 1000)::bigint, 0)
                    AS "elapsed_ms!",
                  checked_at <= now() - $1::bigint * interval '1 millisecond' AS "check_due!"
           FROM rollouts
           WHERE (status IN ('running', 'paused')
                  OR (status = 'rolled_back' AND rollback_finished_at IS NULL))
             AND next_tick_at <= now()
           ORDER BY next_tick_at
           LIMIT 1
           FOR UPDATE SKIP LOCKED"#,
        millis(settings.poll_interval)
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(rollout) = claimed else {
        return Ok(Step::Idle);
    };
    let tenant = TenantId::parse(&rollout.tenant_id).expect("stored ids were validated");
    let step = match rollout.status {
        RolloutStatus::RolledBack => rollback_chunk(&mut tx, &tenant, &rollout, settings).await?,
        RolloutStatus::Paused => {
            // Nothing is written while paused, but rejections still count.
            match rejection_abort(&mut tx, &tenant, &rollout).await? {
                Some(step) => step,
                None => wait(&mut tx, &rollout, settings).await?,
            }
        }
        _ => advance(&mut tx, &tenant, &rollout, settings).await?,
    };
    tx.commit().await?;
    Ok(step)
}

/// A running rollout: write the next chunk of its wave, or, the wave
/// written, apply the gates.
async fn advance(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: &Claimed,
    settings: &MachineSettings,
) -> Result<Step, DbError> {
    let wave = sqlx::query!(
        "SELECT first_seq, last_seq FROM rollout_waves WHERE rollout_id = $1 AND wave = $2",
        rollout.id,
        rollout.current_wave
    )
    .fetch_one(&mut *conn)
    .await?;
    let (first, last) = (wave.first_seq, wave.last_seq);
    if rollout.written_through < last {
        if rollout.check_due
            && let Some(step) = rejection_abort(conn, tenant, rollout).await?
        {
            return Ok(step);
        }
        let from = rollout.written_through.max(first - 1) + 1;
        let to = last.min(from + settings.chunk_size - 1);
        return write_chunk(conn, tenant, rollout, from, to, settings).await;
    }
    let gates = count_gates(conn, tenant, rollout.id, last).await?;
    if let Some(step) = rejected_step(conn, rollout, &gates).await? {
        return Ok(step);
    }
    if converged_enough(gates.converged, gates.counted, rollout.min_converged) {
        let last_wave = rollout.current_wave + 1 >= rollout.wave_count;
        sqlx::query!(
            "WITH w AS (UPDATE rollout_waves SET finished_at = now()
                        WHERE rollout_id = $1 AND wave = $2)
             UPDATE rollouts SET
               status = CASE WHEN $3 THEN 'completed' ELSE status END,
               finished_at = CASE WHEN $3 THEN now() ELSE finished_at END,
               current_wave = CASE WHEN $3 THEN current_wave ELSE current_wave + 1 END,
               wave_clock_ms = 0,
               wave_clock_started_at = CASE WHEN $3 THEN NULL ELSE now() END,
               next_tick_at = now(), checked_at = now()
             WHERE id = $1",
            rollout.id,
            rollout.current_wave,
            last_wave
        )
        .execute(&mut *conn)
        .await?;
        return Ok(if last_wave {
            Step::Finished {
                rollout: rollout.id,
                status: RolloutStatus::Completed,
            }
        } else {
            Step::NextWave {
                rollout: rollout.id,
                wave: rollout.current_wave + 1,
            }
        });
    }
    if let Some(timeout) = rollout.wave_timeout_ms.filter(|t| rollout.elapsed_ms >= *t) {
        let reason = format!(
            "wave {} did not converge within {timeout} ms: {} of {} devices converged, {} needed",
            rollout.current_wave + 1,
            gates.converged,
            gates.counted,
            rollout.min_converged
        );
        return abort(conn, rollout.id, &reason).await;
    }
    wait(conn, rollout, settings).await
}

/// The gates' counts over the devices written so far.
struct Gates {
    converged: i64,
    counted: i64,
    rejected: i64,
    written: i64,
}

async fn count_gates(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: i64,
    through: i64,
) -> sqlx::Result<Gates> {
    crate::rollouts::count_rollout_devices!(
        Gates,
        r#"SELECT converged AS "converged!", counted AS "counted!", rejected AS "rejected!",
                  written AS "written!"
           FROM (SELECT count(*) AS counted,
                        count(*) FILTER (WHERE rd.outcome = 'written') AS written,"#,
        "  FROM rollout_devices rd
             JOIN device_state d ON d.tenant_id = $1 AND d.device_id = rd.device_id
             WHERE rd.rollout_id = $2 AND rd.seq <= $3
               AND rd.outcome IN ('written', 'unchanged')) g",
        tenant.as_str(),
        rollout,
        through
    )
    .fetch_one(conn)
    .await
}

/// Counts the rejections of the devices written so far and aborts when
/// there are too many.
async fn rejection_abort(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: &Claimed,
) -> Result<Option<Step>, DbError> {
    if rollout.max_rejected.is_none() {
        return Ok(None);
    }
    let gates = count_gates(conn, tenant, rollout.id, rollout.written_through).await?;
    sqlx::query!(
        "UPDATE rollouts SET checked_at = now() WHERE id = $1",
        rollout.id
    )
    .execute(&mut *conn)
    .await?;
    rejected_step(conn, rollout, &gates).await
}

async fn rejected_step(
    conn: &mut PgConnection,
    rollout: &Claimed,
    gates: &Gates,
) -> Result<Option<Step>, DbError> {
    match rollout.max_rejected {
        Some(max) if rejected_too_many(gates.rejected, gates.written, max) => {
            let reason = format!(
                "{} of {} written devices rejected their version, more than {max}",
                gates.rejected, gates.written
            );
            abort(conn, rollout.id, &reason).await.map(Some)
        }
        _ => Ok(None),
    }
}

async fn abort(conn: &mut PgConnection, rollout: i64, reason: &str) -> Result<Step, DbError> {
    sqlx::query!(
        "UPDATE rollouts SET status = 'aborted', abort_reason = $2, finished_at = now(),
                             wave_clock_started_at = NULL
         WHERE id = $1",
        rollout,
        reason
    )
    .execute(conn)
    .await?;
    tracing::warn!(rollout, reason, "rollout aborted");
    Ok(Step::Finished {
        rollout,
        status: RolloutStatus::Aborted,
    })
}

async fn wait(
    conn: &mut PgConnection,
    rollout: &Claimed,
    settings: &MachineSettings,
) -> Result<Step, DbError> {
    sqlx::query!(
        "UPDATE rollouts SET next_tick_at = now() + $2::bigint * interval '1 millisecond',
                             checked_at = now()
         WHERE id = $1",
        rollout.id,
        millis(settings.poll_interval)
    )
    .execute(conn)
    .await?;
    Ok(Step::Waited {
        rollout: rollout.id,
    })
}

/// A device of a chunk, locked.
struct ChunkDevice {
    seq: i64,
    device_id: String,
    status: DeviceStatus,
    desired_state: Json<Document>,
    desired_version: i64,
    /// For a rollback: the version the rollout wrote and the document it
    /// replaced.
    version: Option<i64>,
    previous: Option<Json<Document>>,
}

/// Locks the devices of seq `from..=to` of the rollout (only the written
/// ones for a rollback), in device id order.
async fn lock_chunk(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: i64,
    (from, to): (i64, i64),
    written_only: bool,
) -> sqlx::Result<Vec<ChunkDevice>> {
    sqlx::query_as!(
        ChunkDevice,
        r#"SELECT rd.seq, rd.device_id, d.status AS "status: DeviceStatus",
                  d.desired_state AS "desired_state: Json<Document>", d.desired_version,
                  rd.version, rd.previous AS "previous: Json<Document>"
           FROM rollout_devices rd
           JOIN device_state d ON d.tenant_id = $2 AND d.device_id = rd.device_id
           WHERE rd.rollout_id = $1 AND rd.seq BETWEEN $3 AND $4
             AND (NOT $5 OR rd.outcome = 'written')
           ORDER BY rd.device_id
           FOR UPDATE OF d"#,
        rollout,
        tenant.as_str(),
        from,
        to,
        written_only
    )
    .fetch_all(conn)
    .await
}

/// Gives each `(device, document, version)` its new desired document and
/// version, enqueues its publish and records the change in the history
/// (actor `rollout:<id>`; the body is `patch` for the rollout's own
/// change, the restored document for a rollback): the set-based form of a
/// PATCH's write. The caller holds the devices' row locks.
async fn write_documents(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: i64,
    patch: Option<&Document>,
    writes: &[(DeviceId, Document, i64)],
) -> sqlx::Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let devices: Vec<&str> = writes.iter().map(|(d, _, _)| d.as_str()).collect();
    let documents: Vec<Json<&Document>> = writes.iter().map(|(_, doc, _)| Json(doc)).collect();
    let versions: Vec<i64> = writes.iter().map(|(_, _, v)| *v).collect();
    sqlx::query!(
        "UPDATE device_state d
         SET desired_state = u.document, desired_version = u.version, updated_at = now()
         FROM unnest($2::text[], $3::jsonb[], $4::bigint[]) AS u(device_id, document, version)
         WHERE d.tenant_id = $1 AND d.device_id = u.device_id",
        tenant.as_str(),
        &devices as &[&str],
        &documents as _,
        &versions
    )
    .execute(&mut *conn)
    .await?;
    let change = if patch.is_some() {
        Change::Rollout
    } else {
        Change::Rollback
    };
    let changes: Vec<DeviceChange<'_>> = writes
        .iter()
        .map(|(device, doc, version)| DeviceChange {
            device,
            version: *version,
            publish: Some(Publish::Desired(doc)),
            recorded: Some(Recorded {
                change,
                body: Some(patch.unwrap_or(doc)),
                actor: Actor::Rollout(rollout),
            }),
        })
        .collect();
    changes::record(conn, tenant, &changes).await?;
    Ok(())
}

/// `duration` in whole milliseconds, as the statements take intervals.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A stored device id, validated when it was registered.
fn device_id(stored: &str) -> DeviceId {
    DeviceId::parse(stored).expect("stored ids were validated on the way in")
}

/// What happened to one device of a forward chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    Unchanged,
    Decommissioned,
    Limits,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Unchanged => "unchanged",
            Self::Decommissioned => "decommissioned",
            Self::Limits => "limits",
        }
    }
}

/// Writes devices `from..=to` of the rollout's current wave.
async fn write_chunk(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: &Claimed,
    from: i64,
    to: i64,
    settings: &MachineSettings,
) -> Result<Step, DbError> {
    let devices = lock_chunk(conn, tenant, rollout.id, (from, to), false).await?;
    let mut writes = Vec::new();
    let mut seqs = Vec::with_capacity(devices.len());
    let mut outcomes = Vec::with_capacity(devices.len());
    let mut versions = Vec::with_capacity(devices.len());
    let mut previous = Vec::with_capacity(devices.len());
    let mut counts = [0_i64; 4];
    let change = DesiredChange::Merge(rollout.patch.0.clone());
    for device in &devices {
        let (outcome, version, before) = if device.status != DeviceStatus::Active {
            (Outcome::Decommissioned, None, None)
        } else {
            match next_document(&device.desired_state, &change, &settings.limits) {
                Ok(None) => (Outcome::Unchanged, None, None),
                Err(_) => (Outcome::Limits, None, None),
                Ok(Some(next)) => {
                    let version = device.desired_version + 1;
                    writes.push((device_id(&device.device_id), next, version));
                    (
                        Outcome::Written,
                        Some(version),
                        Some(Json(&device.desired_state.0)),
                    )
                }
            }
        };
        counts[outcome as usize] += 1;
        seqs.push(device.seq);
        outcomes.push(outcome.as_str());
        versions.push(version);
        previous.push(before);
    }
    write_documents(conn, tenant, rollout.id, Some(&rollout.patch), &writes).await?;
    sqlx::query!(
        "UPDATE rollout_devices rd
         SET outcome = u.outcome, version = u.version, previous = u.previous
         FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::jsonb[])
           AS u(seq, outcome, version, previous)
         WHERE rd.rollout_id = $1 AND rd.seq = u.seq",
        rollout.id,
        &seqs,
        &outcomes as &[&str],
        &versions as _,
        &previous as _
    )
    .execute(&mut *conn)
    .await?;
    let [written, unchanged, decommissioned, limits] = counts;
    sqlx::query!(
        "WITH w AS (
           UPDATE rollout_waves SET
             written = written + $3, skipped_unchanged = skipped_unchanged + $4,
             skipped_decommissioned = skipped_decommissioned + $5,
             skipped_limits = skipped_limits + $6, started_at = coalesce(started_at, now())
           WHERE rollout_id = $1 AND wave = $2)
         UPDATE rollouts SET written_through = $7, next_tick_at = now() WHERE id = $1",
        rollout.id,
        rollout.current_wave,
        written,
        unchanged,
        decommissioned,
        limits,
        to
    )
    .execute(&mut *conn)
    .await?;
    Ok(Step::Wrote {
        rollout: rollout.id,
        written: written as u64,
        skipped: (unchanged + decommissioned + limits) as u64,
    })
}

/// Restores the previous documents of the next chunk of a rolled-back
/// rollout's written devices, where the device still has the rollout's
/// version; marks the rollback finished after the last chunk.
async fn rollback_chunk(
    conn: &mut PgConnection,
    tenant: &TenantId,
    rollout: &Claimed,
    settings: &MachineSettings,
) -> Result<Step, DbError> {
    let done = rollout.rollback_through.unwrap_or(0);
    if done >= rollout.written_through {
        sqlx::query!(
            "UPDATE rollouts SET rollback_finished_at = now() WHERE id = $1",
            rollout.id
        )
        .execute(&mut *conn)
        .await?;
        return Ok(Step::RolledBack {
            rollout: rollout.id,
            restored: 0,
            changed: 0,
        });
    }
    let to = rollout.written_through.min(done + settings.chunk_size);
    let devices = lock_chunk(conn, tenant, rollout.id, (done + 1, to), true).await?;
    let mut writes = Vec::new();
    let mut seqs = Vec::with_capacity(devices.len());
    let mut results = Vec::with_capacity(devices.len());
    for device in &devices {
        let untouched =
            device.status == DeviceStatus::Active && Some(device.desired_version) == device.version;
        let restored = match (&device.previous, untouched) {
            (Some(previous), true) => next_document(
                &device.desired_state,
                &DesiredChange::Replace(previous.0.clone()),
                &settings.limits,
            )
            .ok()
            .flatten(),
            _ => None,
        };
        let result = match restored {
            Some(document) => {
                writes.push((
                    device_id(&device.device_id),
                    document,
                    device.desired_version + 1,
                ));
                "restored"
            }
            None => "changed",
        };
        seqs.push(device.seq);
        results.push(result);
    }
    write_documents(conn, tenant, rollout.id, None, &writes).await?;
    sqlx::query!(
        "WITH u AS (
           UPDATE rollout_devices rd SET rollback = u.result
           FROM unnest($2::bigint[], $3::text[]) AS u(seq, result)
           WHERE rd.rollout_id = $1 AND rd.seq = u.seq)
         UPDATE rollouts SET rollback_through = $4, next_tick_at = now() WHERE id = $1",
        rollout.id,
        &seqs,
        &results as &[&str],
        to
    )
    .execute(&mut *conn)
    .await?;
    let restored = writes.len() as u64;
    Ok(Step::RolledBack {
        rollout: rollout.id,
        restored,
        changed: devices.len() as u64 - restored,
    })
}
