//! The API's settings: where it listens, who is admin, document limits,
//! the broker `/readyz` checks and the event streams' pace.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use shadowbox_core::DocumentLimits;
use shadowbox_mqtt::MqttConfig;

/// How long `/readyz` waits for the database and the broker unless told
/// otherwise.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a `/readyz` result is reused unless told otherwise.
pub const DEFAULT_READINESS_CACHE: Duration = Duration::from_secs(1);

/// How long an event stream may be idle before it sends a heartbeat
/// comment, unless told otherwise.
pub const DEFAULT_EVENTS_HEARTBEAT: Duration = Duration::from_secs(15);

/// How many events an event stream holds for a client that reads too
/// slowly before it closes the stream, unless told otherwise.
pub const DEFAULT_EVENTS_BUFFER: usize = 1024;

/// How often the API looks for new events while streams are open, unless
/// told otherwise: the most an event waits once it may be sent.
pub const DEFAULT_EVENTS_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long a write to a client may make no progress before the
/// connection is dropped, unless told otherwise.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a tenant key found in the database is trusted without asking
/// it again, unless told otherwise (`crate::key_cache`).
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// How the API runs.
#[derive(Clone)]
pub struct ApiSettings {
    /// Where the HTTP server listens (`SHADOWBOX_HTTP_ADDR`). The caller
    /// binds it; [`crate::serve`] takes the bound listener.
    pub http_addr: SocketAddr,
    /// The admin bearer token (`SHADOWBOX_ADMIN_TOKEN`); `None` disables
    /// the admin routes.
    pub admin_token: Option<String>,
    /// Size and depth limits of a desired document after a change.
    pub limits: DocumentLimits,
    /// Largest request body accepted, checked before parsing: a larger
    /// body answers 413 without being read whole.
    pub max_body_bytes: usize,
    /// The brokers `/readyz` connects to.
    pub mqtt: MqttConfig,
    /// How long `/readyz` waits for the database and for the broker's
    /// CONNACK.
    pub readiness_timeout: Duration,
    /// How long a `/readyz` result is reused, so scrapers cannot hammer
    /// the database or the broker.
    pub readiness_cache: Duration,
    /// An event stream idle this long sends a heartbeat comment.
    pub events_heartbeat: Duration,
    /// Events held for one stream's client; a client that lets more pile
    /// up is sent the reason and the stream ends (it resumes with
    /// `Last-Event-ID`).
    pub events_buffer: usize,
    /// How often the API looks for new events while streams are open.
    pub events_poll_interval: Duration,
    /// A write to a client that makes no progress this long drops the
    /// connection (see `send_timeout`).
    pub send_timeout: Duration,
    /// How long a tenant key found in the database is trusted without
    /// asking it again (0: every request asks); see `crate::key_cache`.
    pub key_cache_ttl: Duration,
}

impl ApiSettings {
    /// Settings for `http_addr` and the brokers of `mqtt` with every other
    /// value at its default: the default document limits, admin routes
    /// disabled, a 2 s readiness timeout cached for 1 s.
    pub fn new(http_addr: SocketAddr, mqtt: MqttConfig) -> Self {
        let limits = DocumentLimits::default();
        Self {
            http_addr,
            admin_token: None,
            limits,
            max_body_bytes: body_limit_for(&limits),
            mqtt,
            readiness_timeout: DEFAULT_READINESS_TIMEOUT,
            readiness_cache: DEFAULT_READINESS_CACHE,
            events_heartbeat: DEFAULT_EVENTS_HEARTBEAT,
            events_buffer: DEFAULT_EVENTS_BUFFER,
            events_poll_interval: DEFAULT_EVENTS_POLL_INTERVAL,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            key_cache_ttl: DEFAULT_KEY_CACHE_TTL,
        }
    }
}

/// The body limit that fits documents of `limits`: twice the document
/// size, since a body may be pretty-printed and a merge patch may carry
/// `null`s that the stored document will not.
pub fn body_limit_for(limits: &DocumentLimits) -> usize {
    limits.max_bytes.saturating_mul(2)
}

// Never print the admin token.
impl fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSettings")
            .field("http_addr", &self.http_addr)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("mqtt", &self.mqtt)
            .field("readiness_timeout", &self.readiness_timeout)
            .field("readiness_cache", &self.readiness_cache)
            .field("events_heartbeat", &self.events_heartbeat)
            .field("events_buffer", &self.events_buffer)
            .field("events_poll_interval", &self.events_poll_interval)
            .field("send_timeout", &self.send_timeout)
            .field("key_cache_ttl", &self.key_cache_ttl)
            .finish()
    }
}
