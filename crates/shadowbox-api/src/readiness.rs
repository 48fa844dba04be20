//! Readiness, behind `/readyz`: can the process reach the database and a
//! broker. Results are cached briefly and computed by one request at a
//! time, so scrapers cannot hammer either.
//!
//! The broker check is a real MQTT connection (TLS and credentials
//! included) with the process's own broker settings. With several brokers
//! it stays on the one that answered last and tries the others, in list
//! order, only when that one fails, as the relay and the ingester do.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::settings::ApiSettings;

/// The cached outcome of the last readiness check.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Checked>,
}

#[derive(Default)]
struct Checked {
    /// When, and what: the broker in use, or what is unreachable.
    result: Option<(Instant, Result<String, String>)>,
    /// The index of the broker that answered last.
    broker: usize,
}

impl Readiness {
    /// Whether `pool`'s database and one of `settings`' brokers are
    /// reachable, from the cache when it is younger than `readiness_cache`.
    /// `Ok` names the broker in use, `Err` what is unreachable.
    pub async fn check(&self, pool: &PgPool, settings: &ApiSettings) -> Result<String, String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = &last.result
            && at.elapsed() < settings.readiness_cache
        {
            return result.clone();
        }
        let result = check_now(pool, settings, &mut last.broker).await;
        last.result = Some((Instant::now(), result.clone()));
        result
    }
}

async fn check_now(
    pool: &PgPool,
    settings: &ApiSettings,
    broker: &mut usize,
) -> Result<String, String> {
    let timeout = settings.readiness_timeout;
    let mqtt = &settings.mqtt;
    let (database, brokers) = tokio::join!(
        ping_database(pool, timeout),
        shadowbox_mqtt::probe::probe_any(mqtt, *broker, timeout)
    );
    let mut failed = Vec::new();
    // The database's cause is logged, not shown to the unauthenticated
    // caller; a broker's is both (it holds no secret).
    if let Err(e) = database {
        tracing::warn!(error = %e, "readiness: database unreachable");
        failed.push("database unreachable".to_owned());
    }
    match brokers {
        Ok(index) => *broker = index,
        Err(failures) => {
            let reasons: Vec<String> = failures
                .iter()
                .map(|(broker, error)| format!("{broker} ({error})"))
                .collect();
            let reasons = reasons.join("; ");
            tracing::warn!(brokers = %reasons, "readiness: broker unreachable");
            failed.push(format!("broker unreachable: {reasons}"));
        }
    }
    if failed.is_empty() {
        Ok(mqtt.brokers[*broker].to_string())
    } else {
        Err(failed.join(", "))
    }
}

async fn ping_database(pool: &PgPool, timeout: Duration) -> Result<(), String> {
    use sqlx::Connection as _;
    let ping = async {
        let mut conn = pool.acquire().await?;
        conn.ping().await
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
