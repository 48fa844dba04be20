//! Where PostgreSQL's time goes during a figure: `pg_stat_statements`
//! (preloaded by the [`Lab`](crate::lab::Lab)), reset before a
//! measurement and read after it, so each figure's JSON names the
//! statements that cost the most, per call and in total.
//!
//! The queries read an extension's view that the schema (and so the
//! `.sqlx/` data the macros check against) does not have: they are plain
//! runtime statements, with nothing bound.

use serde::Serialize;
use sqlx::PgPool;

/// Statements kept per figure, the costliest first.
const TOP: i64 = 8;

/// One statement's share of a measurement.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Statement {
    /// The normalised statement, its first 200 characters.
    pub query: String,
    /// Times it ran.
    pub calls: i64,
    /// Milliseconds of execution, all calls together.
    pub total_ms: f64,
    /// Milliseconds per call.
    pub mean_ms: f64,
    /// Rows it returned or changed.
    pub rows: i64,
    /// Bytes of WAL it wrote.
    pub wal_bytes: f64,
}

/// Makes the view readable in `pool`'s database (once per database).
pub async fn enable(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await?;
    Ok(())
}

/// Makes `pool`'s database count the statements that functions and
/// triggers run too (`pg_stat_statements.track = all`), for sessions that
/// start from now on: a figure whose writes fire set-based triggers sees
/// what each trigger costs.
pub async fn count_nested(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "DO $$ BEGIN
           EXECUTE format('ALTER DATABASE %I SET pg_stat_statements.track = %L',
                          current_database(), 'all');
         END $$",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets everything counted so far, in every database.
pub async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    Ok(())
}

/// The costliest statements run against `pool`'s database since the last
/// [`reset`], by total execution time; the figure's own observer
/// queries included (they are cheap, and seeing them proves it).
pub async fn top(pool: &PgPool) -> anyhow::Result<Vec<Statement>> {
    Ok(sqlx::query_as(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, calls,
                total_exec_time AS total_ms, mean_exec_time AS mean_ms, rows,
                wal_bytes::float8 AS wal_bytes
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY total_exec_time DESC
         LIMIT $1",
    )
    .bind(TOP)
    .fetch_all(pool)
    .await?)
}

/// Prints the costliest three of `statements` under `figure`, as the run
/// goes (the JSON has them all).
pub fn print(figure: &str, statements: &[Statement]) {
    let total: f64 = statements.iter().map(|s| s.total_ms).sum();
    for s in statements.iter().take(3) {
        eprintln!(
            "    {figure}: {:>5.1}% of the top {TOP}, {:.3} ms x {}: {:.90}",
            100.0 * s.total_ms / total.max(f64::MIN_POSITIVE),
            s.mean_ms,
            s.calls,
            s.query
        );
    }
}
