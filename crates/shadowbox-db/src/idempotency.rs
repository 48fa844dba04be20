//! Idempotency keys: claiming a key inside the transaction of the write it
//! guards, recording that write's answer, replaying it, and forgetting
//! keys older than [`REPLAY_WINDOW`].
//!
//! The claim is an insert into `idempotency_keys`, made before the write
//! in the same transaction: a concurrent request with the same key blocks
//! on the primary key until the first transaction ends, then finds the
//! committed answer and replays it (or, when the first rolled back, claims
//! the key itself). So two duplicates never both write, and a write that
//! fails leaves no key behind. A key past the window is claimed afresh.

use std::time::Duration;

use shadowbox_core::TenantId;
use shadowbox_core::idempotency::{IdempotencyKey, REPLAY_WINDOW};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::DbError;
use crate::batches::delete_in_batches;
use crate::error::is_fk_violation;

/// An answer as it was sent, to be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The headers worth replaying (name, value).
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this transaction's: write, then [`record`] the answer.
    Claimed,
    /// The same request was answered within the window: send this again
    /// and write nothing.
    Replay(StoredAnswer),
    /// The key was used within the window for another request (method,
    /// path or body differ).
    Mismatch,
}

/// A claimed key's row, once its answer is recorded.
#[derive(sqlx::FromRow)]
struct StoredRow {
    fingerprint: Vec<u8>,
    status: i16,
    headers: Json<Vec<(String, String)>>,
    body: Vec<u8>,
}

/// The window as SQL reads it.
fn window_seconds(window: Duration) -> f64 {
    window.as_secs_f64()
}

/// Claims `key` for the request whose fingerprint is `fingerprint`, inside
/// the caller's transaction (see the module docs). Waits while another
/// transaction holds the same key.
pub async fn claim(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &IdempotencyKey,
    fingerprint: &[u8; 32],
) -> Result<Claim, DbError> {
    // ON CONFLICT DO UPDATE locks the existing row even where its WHERE
    // does not hold, so the row cannot expire or change under the SELECT
    // below.
    let claimed = sqlx::query_scalar!(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint)
         VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, key) DO UPDATE
           SET fingerprint = EXCLUDED.fingerprint, created_at = now(),
               status = NULL, headers = NULL, body = NULL
           WHERE idempotency_keys.created_at <= now() - make_interval(secs => $4)
         RETURNING 1",
        tenant.as_str(),
        key.as_str(),
        fingerprint.as_slice(),
        window_seconds(REPLAY_WINDOW)
    )
    .fetch_optional(&mut *conn)
    .await;
    match claimed {
        Ok(Some(_)) => return Ok(Claim::Claimed),
        Ok(None) => {}
        Err(e) if is_fk_violation(&e, "idempotency_keys_tenant_id_fkey") => {
            return Err(DbError::TenantNotFound);
        }
        Err(e) => return Err(e.into()),
    }
    // A committed row always holds its answer (the migration's comment).
    let row = sqlx::query_as!(
        StoredRow,
        r#"SELECT fingerprint, status AS "status!", headers AS "headers!: _", body AS "body!"
           FROM idempotency_keys
           WHERE tenant_id = $1 AND key = $2 AND status IS NOT NULL"#,
        tenant.as_str(),
        key.as_str()
    )
    .fetch_one(&mut *conn)
    .await?;
    if row.fingerprint != fingerprint.as_slice() {
        return Ok(Claim::Mismatch);
    }
    Ok(Claim::Replay(StoredAnswer {
        status: u16::try_from(row.status).unwrap_or_default(),
        headers: row.headers.0,
        body: row.body,
    }))
}

/// Records the answer to a request whose key this transaction
/// [`claim`]ed; commit it with the write.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    key: &IdempotencyKey,
    answer: &StoredAnswer,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
         WHERE tenant_id = $1 AND key = $2",
        tenant.as_str(),
        key.as_str(),
        i16::try_from(answer.status).unwrap_or(i16::MAX),
        Json(&answer.headers) as _,
        &answer.body
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes keys older than [`REPLAY_WINDOW`], `batch` rows per statement;
/// returns how many. (A claim already treats them as absent: this only
/// keeps the table small.)
pub async fn purge_expired(pool: &PgPool, batch: i64) -> sqlx::Result<u64> {
    delete_in_batches(batch, || async {
        let deleted = sqlx::query!(
            "DELETE FROM idempotency_keys WHERE (tenant_id, key) IN (
               SELECT tenant_id, key FROM idempotency_keys
               WHERE created_at <= now() - make_interval(secs => $1)
               ORDER BY created_at
               LIMIT $2)",
            window_seconds(REPLAY_WINDOW),
            batch
        )
        .execute(pool)
        .await?;
        Ok(deleted.rows_affected())
    })
    .await
}
