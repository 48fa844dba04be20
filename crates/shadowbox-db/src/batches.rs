//! Deleting in batches: the retention jobs (finished outbox rows, old
//! history, expired idempotency keys) delete at most `batch` rows per
//! statement, so no statement holds its locks for long, until a statement
//! deletes fewer than that.

use std::future::Future;

/// Runs `delete` (one statement that deletes at most `batch` rows and
/// returns how many it did) until it deletes fewer than `batch`. Returns
/// how many rows it deleted in all.
pub(crate) async fn delete_in_batches<F, Fut>(batch: i64, mut delete: F) -> sqlx::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<u64>>,
{
    let mut total = 0;
    loop {
        let deleted = delete().await?;
        total += deleted;
        if deleted < batch as u64 {
            return Ok(total);
        }
    }
}
