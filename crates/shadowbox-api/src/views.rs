//! The JSON shapes of the contract: the device with its shadow, outbox
//! rows, history entries, tenants and keys, and the response that carries
//! a device's ETag.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shadowbox_core::Change;
use shadowbox_core::convergence::in_sync;
use shadowbox_core::delta::delta;
use shadowbox_core::tags::Tags;
use shadowbox_core::{DeviceStatus, Document, OutboxKind, OutboxStatus};
use shadowbox_db::devices::DeviceRecord;
use shadowbox_db::history::HistoryRow;
use shadowbox_db::outbox::OutboxRow;
use utoipa::ToSchema;
use uuid::Uuid;

/// A device and its shadow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    /// The tenant.
    pub tenant_id: String,
    /// The device.
    pub device_id: String,
    /// Whether it takes desired writes.
    pub status: DeviceStatus,
    /// The desired document.
    #[schema(value_type = Object)]
    pub desired: Document,
    /// Bumped by one on every desired change; also the `ETag`.
    pub desired_version: i64,
    /// The reported document, as the device last sent it.
    #[schema(value_type = Object)]
    pub reported: Document,
    /// The desired version the device says it applied.
    pub reported_version: i64,
    /// The parts of `desired` that differ from `reported`.
    #[schema(value_type = Object)]
    pub delta: Document,
    /// `reported_version >= desired_version`.
    pub in_sync: bool,
    /// When `reported_version` first reached the current `desired_version`;
    /// `null` until then (and at version 0).
    pub applied_at: Option<DateTime<Utc>>,
    /// The device's refusal of its current desired version; `null` when
    /// it refused none, or only an older one, or applied it after all.
    pub rejection: Option<RejectionView>,
    /// When the device last sent a valid reported message.
    pub last_seen: Option<DateTime<Utc>>,
    /// When the device was registered.
    pub created_at: DateTime<Utc>,
    /// Its tags, service-side labels never published (`{}` when none).
    pub tags: Tags,
    /// The device's newest outbox row, `null` before the first publish.
    pub delivery: Option<DeliverySummary>,
}

/// A device's refusal of its desired version, in its own words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectionView {
    /// The desired version refused.
    pub version: i64,
    /// Why (at most 256 characters).
    pub reason: String,
    /// When the rejection arrived.
    pub at: DateTime<Utc>,
}

/// The state of a device's newest publish.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliverySummary {
    /// Where that row stands.
    pub status: OutboxStatus,
    /// The desired version it carries.
    pub version: i64,
    /// Publish attempts made.
    pub attempts: i32,
    /// Text of the last failure.
    pub last_error: Option<String>,
    /// When the broker acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        let rejection = d.current_rejection().map(|r| RejectionView {
            version: r.version,
            reason: r.reason,
            at: r.at,
        });
        let delivery = d.delivery_status.map(|status| DeliverySummary {
            status,
            version: d.delivery_version.unwrap_or_default(),
            attempts: d.delivery_attempts.unwrap_or_default(),
            last_error: d.delivery_last_error,
            delivered_at: d.delivered_at,
        });
        let (desired, reported) = (d.desired_state.0, d.reported_state.0);
        Self {
            tenant_id: d.tenant_id.into_string(),
            device_id: d.device_id.into_string(),
            status: d.status,
            delta: delta(&desired, &reported),
            desired,
            desired_version: d.desired_version,
            reported,
            reported_version: d.reported_version,
            in_sync: in_sync(d.desired_version, d.reported_version),
            applied_at: d.applied_at,
            rejection,
            last_seen: d.last_seen,
            created_at: d.created_at,
            tags: d.tags.0,
            delivery,
        }
    }
}

/// A device response: the device as JSON with `ETag: "<desired_version>"`.
pub struct DeviceResponse(pub StatusCode, pub DeviceRecord);

impl IntoResponse for DeviceResponse {
    fn into_response(self) -> Response {
        let view = DeviceView::from(self.1);
        let etag = HeaderValue::from_str(&format!("\"{}\"", view.desired_version))
            .expect("a quoted number is a valid header value");
        (self.0, [(header::ETAG, etag)], Json(view)).into_response()
    }
}

/// One outbox row: one publish of a device's desired state (or its clear).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutboxEntry {
    /// Increasing id.
    pub id: i64,
    /// Whose.
    pub tenant_id: String,
    /// Whose.
    pub device_id: String,
    /// What it publishes.
    pub kind: OutboxKind,
    /// The MQTT topic.
    pub topic: String,
    /// The desired version it carries.
    pub version: i64,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Publish attempts made.
    pub attempts: i32,
    /// When it may be tried again.
    pub next_attempt_at: DateTime<Utc>,
    /// Text of the last failure.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the broker acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<OutboxRow> for OutboxEntry {
    fn from(r: OutboxRow) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id.into_string(),
            device_id: r.device_id.into_string(),
            kind: r.kind,
            topic: r.topic,
            version: r.version,
            status: r.status,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        }
    }
}

/// One desired change of a device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The desired version after the change (a decommission: the version
    /// it cleared).
    pub version: i64,
    /// `register`, `merge`, `replace`, `rollout`, `rollback` or
    /// `decommission`.
    pub change: Change,
    /// What was sent: the merge patch, the new document, the registration's
    /// document, the rollout's patch or the restored document; `null` for a
    /// decommission and a registration without a document.
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// `admin`, `key:<api key id>` or `rollout:<rollout id>`.
    pub actor: String,
    /// When the change was committed.
    pub committed_at: DateTime<Utc>,
    /// The first PUBACK of a publish carrying it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the device first reported this version.
    pub applied_at: Option<DateTime<Utc>>,
    /// The device's refusal of this version, if any.
    pub rejection: Option<RejectionView>,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(h: HistoryRow) -> Self {
        let rejection = h.rejected_at.map(|at| RejectionView {
            version: h.version,
            reason: h.rejection_reason.unwrap_or_default(),
            at,
        });
        Self {
            version: h.version,
            change: h.change,
            body: h.body.map(|b| b.0),
            actor: h.actor,
            committed_at: h.committed_at,
            delivered_at: h.delivered_at,
            applied_at: h.applied_at,
            rejection,
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant.
    pub tenant_id: String,
}

/// A new API key. `secret` is the bearer token and is never shown again.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// The key's id.
    pub id: Uuid,
    /// The tenant it reaches.
    pub tenant_id: String,
    /// The bearer token (`sbk_...`); only its hash is stored.
    pub secret: String,
}
