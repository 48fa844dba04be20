//! What every handler shares. The modules it holds ([`crate::metrics`],
//! [`crate::readiness`], [`crate::settings`]) know nothing of it.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::events::EventFeed;
use crate::key_cache::KeyCache;
use crate::metrics::ApiMetrics;
use crate::readiness::Readiness;
use crate::settings::ApiSettings;

/// The handlers' shared state; cheap to clone. Made by [`AppState::new`].
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub(crate) pool: PgPool,
    /// The API's settings.
    pub(crate) settings: Arc<ApiSettings>,
    /// The whole process's metrics (every role's), encoded by `/metrics`.
    pub(crate) registry: Arc<Registry>,
    /// The API's own metrics, also registered in `registry`.
    pub(crate) metrics: ApiMetrics,
    /// The cached `/readyz` result.
    pub(crate) readiness: Arc<Readiness>,
    /// Wakes the event streams; [`crate::serve`] runs it.
    pub(crate) events: Arc<EventFeed>,
    /// Tenant keys found in the database, for a short time.
    pub(crate) keys: Arc<KeyCache>,
}

impl AppState {
    /// State for a router. `metrics` must be registered in `registry`
    /// (see [`ApiMetrics::register`]) before the registry was frozen.
    pub fn new(
        pool: PgPool,
        settings: ApiSettings,
        registry: Arc<Registry>,
        metrics: ApiMetrics,
    ) -> Self {
        Self {
            pool,
            keys: Arc::new(KeyCache::new(settings.key_cache_ttl)),
            settings: Arc::new(settings),
            registry,
            metrics,
            readiness: Arc::new(Readiness::default()),
            events: Arc::new(EventFeed::new()),
        }
    }
}
