//! `shadowbox rollout ...`: create, read (with a progress table that
//! refreshes until the rollout stops), list and steer rollouts, on the
//! database directly as the other operators' commands. The wave machine
//! (in `serve` and `relay`) does the writing.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};
use shadowbox_core::document::into_document;
use shadowbox_core::rollout::{RolloutStatus, check_fraction, check_waves};
use shadowbox_core::tags::{check_tags, parse_filters};
use shadowbox_core::{DeviceId, TenantId};
use shadowbox_db::rollouts::{
    NewRollout, Rollout, RolloutRecord, Selector, create_rollout, get_rollout, list_rollouts,
    transition,
};

use crate::CommonArgs;

/// `shadowbox rollout ...`
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Create a rollout: one merge patch for the selected active devices.
    Create {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Every active device of the tenant.
        #[arg(long, conflicts_with_all = ["tag", "device"])]
        all: bool,
        /// Devices having this tag (`key:value`; repeat: all must match).
        #[arg(long, conflicts_with = "device")]
        tag: Vec<String>,
        /// This device (repeat for more).
        #[arg(long)]
        device: Vec<DeviceId>,
        /// The RFC 7396 merge patch, as JSON.
        #[arg(long)]
        patch: String,
        /// Cumulative wave fractions, comma-separated (e.g. 0.01,0.1,1).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        waves: Vec<f64>,
        /// Fraction of the written devices that must converge before the
        /// next wave.
        #[arg(long, default_value_t = 1.0)]
        min_converged: f64,
        /// A wave not converged after this long aborts the rollout (e.g. 10m).
        #[arg(long, value_parser = shadowbox_core::duration::parse)]
        wave_timeout: Option<Duration>,
        /// Abort when more than this fraction of written devices rejected.
        #[arg(long)]
        max_rejected: Option<f64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A rollout with its waves' progress.
    #[command(alias = "status")]
    Get {
        /// The rollout.
        id: i64,
        /// Its tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Refresh the table every second until the rollout stops running.
        #[arg(long)]
        watch: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A tenant's rollouts, newest first.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pause a running rollout.
    Pause(Steer),
    /// Resume a paused rollout.
    Resume(Steer),
    /// Cancel a running or paused rollout.
    Cancel(Steer),
    /// Roll back an aborted, cancelled or completed rollout.
    Rollback(Steer),
}

/// The rollout a steering command acts on.
#[derive(Debug, clap::Args)]
pub struct Steer {
    /// The rollout.
    id: i64,
    /// Its tenant.
    #[arg(long)]
    tenant: TenantId,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a `rollout` command.
pub async fn rollout(common: &CommonArgs, command: RolloutCommand) -> anyhow::Result<()> {
    let pool = crate::ops::connect(common, 2).await?;
    let mut conn = pool.acquire().await?;
    let (tenant, id, to, json) = match command {
        RolloutCommand::Create {
            tenant,
            all,
            tag,
            device,
            patch,
            waves,
            min_converged,
            wave_timeout,
            max_rejected,
            json,
        } => {
            let selector = if all {
                Selector::All(true)
            } else if !tag.is_empty() {
                let tags = parse_filters(tag.iter().map(String::as_str))?
                    .context("a --tag key given twice with two values matches no device")?;
                check_tags(&tags)?;
                Selector::Tags(tags)
            } else if !device.is_empty() {
                Selector::DeviceIds(device)
            } else {
                anyhow::bail!("select devices with --all, --tag or --device");
            };
            let patch =
                into_document(serde_json::from_str(&patch).context("--patch is not JSON")?)?;
            common.limits().check(&patch)?;
            check_waves(&waves)?;
            check_fraction("min_converged", min_converged)?;
            if let Some(max) = max_rejected {
                check_fraction("max_rejected", max)?;
            }
            let new = NewRollout {
                selector,
                patch,
                waves,
                min_converged,
                wave_timeout,
                max_rejected,
            };
            let mut tx = pool.begin().await?;
            let id = create_rollout(&mut tx, &tenant, &new).await?;
            tx.commit().await?;
            return show(&mut conn, &tenant, id, false, json).await;
        }
        RolloutCommand::Get {
            id,
            tenant,
            watch,
            json,
        } => return show(&mut conn, &tenant, id, watch, json).await,
        RolloutCommand::List {
            tenant,
            limit,
            json,
        } => {
            let rows = list_rollouts(&mut *conn, &tenant, None, limit).await?;
            if json {
                let rows: Vec<Value> = rows.iter().map(summary).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:>8} {:<12} {:>10} {:>5}  {:<24} PATCH",
                "ID", "STATUS", "SELECTED", "WAVE", "CREATED"
            );
            for r in rows {
                println!(
                    "{:>8} {:<12} {:>10} {:>5}  {:<24} {}",
                    r.id,
                    r.status,
                    r.selected,
                    r.current_wave + 1,
                    r.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    serde_json::to_string(&r.patch.0)?
                );
            }
            return Ok(());
        }
        RolloutCommand::Pause(s) => (s.tenant, s.id, RolloutStatus::Paused, s.json),
        RolloutCommand::Resume(s) => (s.tenant, s.id, RolloutStatus::Running, s.json),
        RolloutCommand::Cancel(s) => (s.tenant, s.id, RolloutStatus::Cancelled, s.json),
        RolloutCommand::Rollback(s) => (s.tenant, s.id, RolloutStatus::RolledBack, s.json),
    };
    let mut tx = pool.begin().await?;
    transition(&mut tx, &tenant, id, to).await?;
    tx.commit().await?;
    show(&mut conn, &tenant, id, false, json).await
}

/// A rollout row as JSON (the list's shape).
fn summary(r: &RolloutRecord) -> Value {
    json!({
        "id": r.id, "status": r.status.as_str(), "selector": r.selector.0,
        "selected": r.selected, "patch": r.patch.0, "min_converged": r.min_converged,
        "wave_timeout_ms": r.wave_timeout_ms, "max_rejected": r.max_rejected,
        "current_wave": r.current_wave + 1, "abort_reason": r.abort_reason,
        "created_at": r.created_at, "finished_at": r.finished_at,
    })
}

/// Prints the rollout (JSON, or a table of its waves); with `watch`,
/// again every second while it runs or is paused.
async fn show(
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    id: i64,
    watch: bool,
    json: bool,
) -> anyhow::Result<()> {
    loop {
        let rollout = get_rollout(conn, tenant, id)
            .await?
            .with_context(|| format!("no rollout {id} in tenant {tenant}"))?;
        let status = rollout.record.status;
        if json {
            let mut value = summary(&rollout.record);
            value["waves"] = serde_json::to_value(&rollout.waves)?;
            value["rollback"] = serde_json::to_value(rollout.rollback)?;
            println!("{}", serde_json::to_string(&value)?);
        } else {
            if watch {
                // Clear the screen and go home: a table that refreshes.
                print!("\x1b[2J\x1b[H");
            }
            print_table(&rollout);
        }
        let moving = matches!(status, RolloutStatus::Running | RolloutStatus::Paused)
            || (status == RolloutStatus::RolledBack
                && rollout.record.rollback_finished_at.is_none());
        if !watch || !moving {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn print_table(rollout: &Rollout) {
    let r = &rollout.record;
    println!(
        "rollout {} ({}): {} devices, patch {}",
        r.id,
        r.status,
        r.selected,
        serde_json::to_string(&r.patch.0).unwrap_or_default()
    );
    if let Some(reason) = &r.abort_reason {
        println!("aborted: {reason}");
    }
    println!(
        "{:>4} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}  PROGRESS",
        "WAVE", "FRACTION", "SIZE", "WRITTEN", "DELIVERED", "CONVERGED", "REJECTED", "SKIPPED"
    );
    for w in &rollout.waves {
        let skipped = w.skipped_unchanged + w.skipped_decommissioned + w.skipped_limits;
        let done = if w.size == 0 {
            1.0
        } else {
            w.converged as f64 / w.size as f64
        };
        let bar: String = (0..20)
            .map(|i| if f64::from(i) < done * 20.0 { '#' } else { '.' })
            .collect();
        println!(
            "{:>4} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}  [{bar}] {:>3.0}%",
            w.wave + 1,
            w.fraction,
            w.size,
            w.written,
            w.delivered,
            w.converged,
            w.rejected,
            skipped,
            done * 100.0
        );
    }
    if let Some(b) = rollout.rollback {
        println!(
            "rollback: {} restored, {} changed since (left alone){}",
            b.restored,
            b.changed,
            if r.rollback_finished_at.is_some() {
                ", finished"
            } else {
                ", running"
            }
        );
    }
}
