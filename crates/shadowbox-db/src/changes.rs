//! The one statement that records desired changes, inside the transaction
//! that makes them: each change's outbox row (its publish; the device's
//! older pending rows superseded, the relays woken at commit) and its
//! history row (what was sent, by whom), for one device or a rollout's
//! chunk of thousands, in one round trip.

use chrono::Utc;
use shadowbox_core::payload::encode_desired;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic};
use shadowbox_core::{Actor, Change, DeviceId, Document, OutboxKind, TenantId};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::OUTBOX_CHANNEL;

/// What an outbox row publishes: its [`OutboxKind`] with the document.
#[derive(Debug, Clone, Copy)]
pub enum Publish<'a> {
    /// The whole desired document, retained.
    Desired(&'a Document),
    /// An empty retained payload: the device has no desired state any more.
    Clear,
}

/// A change as the history records it.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    /// What it was.
    pub change: Change,
    /// What was sent (the patch, the document), `None` for none.
    pub body: Option<&'a Document>,
    /// Who made it.
    pub actor: Actor,
}

/// One device's change.
#[derive(Debug, Clone, Copy)]
pub struct DeviceChange<'a> {
    /// The device (each at most once per call).
    pub device: &'a DeviceId,
    /// The desired version after the change.
    pub version: i64,
    /// Its publish; `None` when nothing is published (a device registered
    /// without a document).
    pub publish: Option<Publish<'a>>,
    /// Its history row; `None` when the desired state did not change (a
    /// resync publishes it again).
    pub recorded: Option<Recorded<'a>>,
}

/// Records `changes` of devices of `tenant` in one statement: inserts the
/// outbox row of each publish, superseding the device's older pending
/// rows (coalescing at write time keeps the backlog at one pending row
/// per device, however fast a device is changed; a row a relay is
/// publishing right now may be superseded too, and the relay still
/// records its real outcome); inserts the history rows; and wakes the
/// relays (delivered when the caller's transaction commits). Returns the
/// new outbox rows' ids, in the order of `changes`.
pub(crate) async fn record(
    conn: &mut PgConnection,
    tenant: &TenantId,
    changes: &[DeviceChange<'_>],
) -> sqlx::Result<Vec<i64>> {
    let now = Utc::now();
    let len = changes.len();
    let mut devices = Vec::with_capacity(len);
    let mut versions = Vec::with_capacity(len);
    let mut kinds = Vec::with_capacity(len);
    let mut topics = Vec::with_capacity(len);
    let mut payloads = Vec::with_capacity(len);
    let mut history_changes = Vec::with_capacity(len);
    let mut bodies = Vec::with_capacity(len);
    let mut actors = Vec::with_capacity(len);
    let mut publishing = Vec::with_capacity(len);
    for c in changes {
        devices.push(c.device.as_str());
        versions.push(c.version);
        let publish = c.publish.map(|publish| match publish {
            Publish::Desired(doc) => (OutboxKind::Desired, encode_desired(doc, c.version, now)),
            Publish::Clear => (OutboxKind::Clear, Vec::new()),
        });
        if publish.is_some() {
            publishing.push(c.device.as_str());
        }
        let (kind, payload) = publish.unzip();
        kinds.push(kind.map(OutboxKind::as_str));
        topics.push(
            c.publish
                .map(|_| shadow_topic(tenant, c.device, ShadowTopicKind::Desired)),
        );
        payloads.push(payload);
        history_changes.push(c.recorded.map(|r| r.change.as_str()));
        bodies.push(c.recorded.and_then(|r| r.body).map(Json));
        actors.push(c.recorded.map(|r| r.actor.to_string()));
    }
    // Every part sees the same snapshot: the new rows are never superseded
    // by their own statement. `device_id = ANY($9)`, not a join with the
    // batch: it keeps the device ids in the index condition of
    // `outbox_pending_device`, where a join was planned as a scan of every
    // pending row of the tenant per batch row (46 s for a chunk of 2000
    // over 60000 pending rows). One notification, however many rows.
    sqlx::query_scalar!(
        r#"WITH batch AS (
             SELECT * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bytea[],
                                  $7::text[], $8::jsonb[], $10::text[])
               WITH ORDINALITY AS b(device_id, version, kind, topic, payload, change, body, actor, n)),
           superseded AS (
             UPDATE outbox SET status = 'superseded'
             WHERE tenant_id = $1 AND device_id = ANY($9) AND status = 'pending'),
           ins AS (
             INSERT INTO outbox (tenant_id, device_id, kind, topic, payload, version)
             SELECT $1, device_id, kind, topic, payload, version FROM batch
             WHERE kind IS NOT NULL ORDER BY n
             RETURNING id),
           recorded AS (
             INSERT INTO desired_history (tenant_id, device_id, version, change, body, actor)
             SELECT $1, device_id, version, change, body, actor FROM batch
             WHERE change IS NOT NULL ORDER BY n),
           notified AS MATERIALIZED (
             SELECT pg_notify($11, '') WHERE cardinality($9::text[]) > 0)
           SELECT ins.id AS "id!" FROM ins CROSS JOIN notified ORDER BY ins.id"#,
        tenant.as_str(),
        &devices as &[&str],
        &versions,
        &kinds as _,
        &topics as _,
        &payloads as _,
        &history_changes as _,
        &bodies as _,
        &publishing as &[&str],
        &actors as _,
        OUTBOX_CHANNEL
    )
    .fetch_all(conn)
    .await
}
