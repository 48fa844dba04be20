//! Reconciling the broker's retained desired messages with the database:
//! the backstop for everything the outbox cannot see (a broker that lost
//! or restored part of its retained store, bytes of an interrupted publish
//! that land after a newer version, a client that overwrote a retained
//! message).
//!
//! A pass takes one tenant at a time, under that tenant's advisory lock
//! (so one relay reconciles a tenant at a time, and a relay that dies
//! mid-pass releases it with its connection), and for each slice of its
//! devices:
//!
//! 1. reads each device's newest outbox row;
//! 2. reads what the broker retains for those devices ([`retained`]: in
//!    slices small enough for the broker's queue, each closed by a
//!    sentinel, so a read knows whether it saw everything);
//! 3. reads the devices again, and judges ([`difference`]) every device
//!    whose newest row did not change meanwhile and is neither pending
//!    (the relay is on it) nor dead (an operator is);
//! 4. republishes each difference through the outbox
//!    ([`shadowbox_db::outbox::resync_devices`]): the database's current
//!    state, never a new desired version.
//!
//! Reading the broker between the two database reads means a retained
//! version can never be newer than the second read unless someone other
//! than shadowbox wrote it. A tenant with fewer devices than a slice is
//! read with one wildcard filter, which also shows retained messages of
//! devices the database does not know (counted as `unknown`, never
//! touched); if that read is incomplete, or the tenant is larger, its
//! devices' own topics are read, a slice at a time. A device that a read
//! did not completely cover is never called missing: it is `unread` and
//! waits for the next pass.

pub mod difference;
pub mod retained;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use serde::Serialize;
use shadowbox_core::device::DeviceStatus;
use shadowbox_core::outbox::OutboxStatus;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic, tenant_desired_filter};
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_db::reconcile::{self as queries, DeviceMark};
use shadowbox_mqtt::BrokerAddress;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{RelayMetrics, RelaySettings};
pub use difference::DifferenceKind;
pub use retained::RetainedReader;

/// Reads of one slice before it is left `unread`.
const READ_ATTEMPTS: usize = 3;

/// A device whose retained message differed from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
    /// How it differed.
    pub kind: DifferenceKind,
    /// The retained message's version, when it had one.
    pub retained_version: Option<i64>,
    /// The database's desired version.
    pub database_version: i64,
    /// The device's status in the database.
    pub status: DeviceStatus,
}

/// A tenant a pass could not reconcile.
#[derive(Debug, Clone, Serialize)]
pub struct TenantFailure {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Why.
    pub error: String,
}

/// What one pass found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// Nothing was republished.
    pub dry_run: bool,
    /// The broker read.
    pub broker: String,
    /// Tenants reconciled.
    pub tenants: u64,
    /// Tenants another relay was reconciling (skipped).
    pub busy_tenants: Vec<TenantId>,
    /// Tenants that failed (the broker refused a read or went away, the
    /// database failed).
    pub failed_tenants: Vec<TenantFailure>,
    /// Devices judged.
    pub devices: u64,
    /// Devices not judged because a write or a publish of theirs was under
    /// way (the relay will publish them).
    pub in_flight: u64,
    /// Devices not judged because their newest row is dead (an operator's
    /// call: `shadowbox outbox retry`).
    pub dead: u64,
    /// Devices not judged because no complete read covered them.
    pub unread: u64,
    /// Retained desired messages under a tenant for a device the database
    /// does not know: counted, never touched.
    pub unknown: u64,
    /// Differences, by kind.
    pub by_kind: BTreeMap<DifferenceKind, u64>,
    /// Every difference found.
    pub differences: Vec<Difference>,
    /// Outbox rows enqueued to repair them.
    pub republished: u64,
    /// Reads of the broker (each a SUBSCRIBE and its sentinel).
    pub broker_reads: u64,
    /// Messages those reads received.
    pub broker_messages: u64,
    /// Database statements the pass ran (the republishes' excluded).
    pub database_reads: u64,
    /// How long the pass took.
    pub duration_ms: u64,
}

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// Only this tenant, or all.
    pub tenant: Option<TenantId>,
    /// Devices read from the broker at once (see
    /// [`RelaySettings::reconcile_slice`]).
    pub slice: usize,
    /// Find differences, republish nothing.
    pub dry_run: bool,
}

/// Runs one pass over the tenants of `options` with `reader`.
pub async fn pass(
    pool: &PgPool,
    reader: &mut RetainedReader,
    options: &PassOptions,
) -> anyhow::Result<PassReport> {
    let started = Instant::now();
    let slice = options.slice.max(1);
    let mut pass = Pass {
        pool,
        reader,
        slice,
        report: PassReport {
            dry_run: options.dry_run,
            ..PassReport::default()
        },
    };
    pass.report.broker = pass.reader.broker().to_string();
    let tenants = queries::tenant_ids(pool, options.tenant.as_ref())
        .await
        .context("list the tenants")?;
    pass.report.database_reads += 1;
    for tenant in tenants {
        if let Err(e) = pass.tenant(&tenant).await {
            tracing::warn!(
                %tenant,
                error = format!("{e:#}"),
                "could not reconcile a tenant"
            );
            pass.report.failed_tenants.push(TenantFailure {
                tenant_id: tenant,
                error: format!("{e:#}"),
            });
        }
    }
    let mut report = pass.report;
    for difference in &report.differences {
        *report.by_kind.entry(difference.kind).or_default() += 1;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

struct Pass<'a> {
    pool: &'a PgPool,
    reader: &'a mut RetainedReader,
    slice: usize,
    report: PassReport,
}

impl Pass<'_> {
    /// Most messages a read may receive and still be complete: the slice is
    /// at most half the broker's queue limit.
    fn bound(&self) -> usize {
        self.slice * 2
    }

    async fn tenant(&mut self, tenant: &TenantId) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let locked = queries::try_lock_tenant(&mut tx, tenant).await?;
        self.report.database_reads += 1;
        if !locked {
            self.report.busy_tenants.push(tenant.clone());
            return Ok(());
        }
        let count = queries::count_devices(&mut *tx, tenant).await?;
        self.report.database_reads += 1;
        let covered = (count as usize) < self.slice && self.whole(&mut tx, tenant).await?;
        if !covered {
            self.by_slices(&mut tx, tenant).await?;
        }
        tx.commit().await?;
        self.report.tenants += 1;
        Ok(())
    }

    /// Reads the whole tenant with one wildcard filter; judges it and
    /// returns `true` if the read was complete.
    async fn whole(
        &mut self,
        tx: &mut sqlx::PgConnection,
        tenant: &TenantId,
    ) -> anyhow::Result<bool> {
        let marks = queries::device_marks(&mut *tx, tenant, "", self.slice as i64).await?;
        self.report.database_reads += 1;
        let read = self.read(&[tenant_desired_filter(tenant)]).await?;
        if !read.complete {
            return Ok(false);
        }
        let known: HashSet<String> = marks
            .iter()
            .map(|m| device_topic(tenant, &m.device_id))
            .collect();
        self.report.unknown += read
            .retained
            .keys()
            .filter(|topic| !known.contains(*topic))
            .count() as u64;
        self.judge(tx, tenant, &marks, &read).await?;
        Ok(true)
    }

    /// Reads the tenant's devices' own topics, a slice at a time, each
    /// slice up to [`READ_ATTEMPTS`] times until a read is complete.
    async fn by_slices(
        &mut self,
        tx: &mut sqlx::PgConnection,
        tenant: &TenantId,
    ) -> anyhow::Result<()> {
        let mut after = String::new();
        loop {
            let marks = queries::device_marks(&mut *tx, tenant, &after, self.slice as i64).await?;
            self.report.database_reads += 1;
            let Some(last) = marks.last() else {
                return Ok(());
            };
            after = last.device_id.as_str().to_owned();
            let topics: Vec<String> = marks
                .iter()
                .map(|m| device_topic(tenant, &m.device_id))
                .collect();
            let mut read = self.read(&topics).await?;
            for _ in 1..READ_ATTEMPTS {
                if read.complete {
                    break;
                }
                read = self.read(&topics).await?;
            }
            self.judge(tx, tenant, &marks, &read).await?;
        }
    }

    async fn read(&mut self, filters: &[String]) -> anyhow::Result<retained::RetainedRead> {
        let read = self.reader.read(filters, self.bound()).await?;
        self.report.broker_reads += 1;
        self.report.broker_messages += read.messages;
        Ok(read)
    }

    /// Judges the devices of `marks` against `read`, and republishes the
    /// differences unless this is a dry run.
    async fn judge(
        &mut self,
        tx: &mut sqlx::PgConnection,
        tenant: &TenantId,
        marks: &[DeviceMark],
        read: &retained::RetainedRead,
    ) -> anyhow::Result<()> {
        let before: HashMap<&str, _> = marks
            .iter()
            .map(|m| (m.device_id.as_str(), m.newest()))
            .collect();
        let ids: Vec<&str> = before.keys().copied().collect();
        let devices = queries::device_snapshots(&mut *tx, tenant, &ids).await?;
        self.report.database_reads += 1;
        let mut repair = Vec::new();
        for device in devices {
            if before.get(device.device_id.as_str()) != Some(&device.newest()) {
                self.report.in_flight += 1;
                continue;
            }
            match device.newest_row_status {
                Some(OutboxStatus::Pending) => {
                    self.report.in_flight += 1;
                    continue;
                }
                Some(OutboxStatus::Dead) => {
                    self.report.dead += 1;
                    continue;
                }
                _ => {}
            }
            let retained = read.retained.get(&device_topic(tenant, &device.device_id));
            if retained.is_none() && !read.complete {
                self.report.unread += 1;
                continue;
            }
            self.report.devices += 1;
            if let Some(verdict) = difference::judge(&device, retained.map(Vec::as_slice)) {
                repair.push((tenant.clone(), device.device_id.clone()));
                self.report.differences.push(Difference {
                    tenant_id: tenant.clone(),
                    device_id: device.device_id,
                    kind: verdict.kind,
                    retained_version: verdict.retained_version,
                    database_version: device.desired_version,
                    status: device.status,
                });
            }
        }
        if !self.report.dry_run && !repair.is_empty() {
            self.report.republished += shadowbox_db::outbox::resync_devices(self.pool, &repair)
                .await
                .context("enqueue the republishes")?;
        }
        Ok(())
    }
}

fn device_topic(tenant: &TenantId, device: &DeviceId) -> String {
    shadow_topic(tenant, device, ShadowTopicKind::Desired)
}

/// Runs a pass every `reconcile_interval` and after every (re)connection
/// of the relay's publisher (`broker` changes to `Some`), on the broker
/// the publisher is connected to, until `shutdown`.
pub async fn run(
    pool: PgPool,
    settings: Arc<RelaySettings>,
    metrics: Arc<RelayMetrics>,
    mut broker: watch::Receiver<Option<BrokerAddress>>,
    shutdown: CancellationToken,
) {
    let Some(interval) = settings.reconcile_interval else {
        return;
    };
    let options = PassOptions {
        tenant: None,
        slice: settings.reconcile_slice,
        dry_run: false,
    };
    let mut next = Instant::now() + interval;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
            changed = broker.changed() => {
                if changed.is_err() {
                    return;
                }
                if broker.borrow().is_none() {
                    continue;
                }
            }
        }
        next = Instant::now() + interval;
        // Disconnected at the tick: the reconnect starts the next pass.
        let Some(address) = broker.borrow_and_update().clone() else {
            continue;
        };
        let mut reader = RetainedReader::new(
            settings.mqtt.clone(),
            address,
            format!("{}-reconcile", settings.client_id),
        );
        let report = tokio::select! {
            () = shutdown.cancelled() => return,
            report = pass(&pool, &mut reader, &options) => report,
        };
        reader.close().await;
        match report {
            Ok(report) => {
                metrics.reconcile.record(&report);
                log(&report);
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reconcile pass failed"),
        }
        next = Instant::now() + interval;
    }
}

fn log(report: &PassReport) {
    let newer: Vec<String> = report
        .differences
        .iter()
        .filter(|d| d.kind == DifferenceKind::Newer)
        .map(|d| format!("{}/{}", d.tenant_id, d.device_id))
        .collect();
    if !newer.is_empty() {
        tracing::warn!(
            devices = newer.join(","),
            "retained desired state newer than the database was replaced: a client other than shadowbox publishes desired state"
        );
    }
    tracing::info!(
        tenants = report.tenants,
        devices = report.devices,
        differences = report.differences.len(),
        republished = report.republished,
        in_flight = report.in_flight,
        unread = report.unread,
        unknown = report.unknown,
        busy_tenants = report.busy_tenants.len(),
        failed_tenants = report.failed_tenants.len(),
        duration_ms = report.duration_ms,
        "reconcile pass done"
    );
}
