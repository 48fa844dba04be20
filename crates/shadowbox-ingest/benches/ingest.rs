//! Throughput from publish to committed state: the batched ingester beside
//! a one-UPDATE-per-message baseline, on the same private broker and the
//! same database, in the same run.
//!
//! `cargo bench -p shadowbox-ingest` sends 200,000 messages over 10,000
//! devices to the ingester (and 50,000 to the baseline, which is much
//! slower). `--quick` sends a tenth. `SHADOWBOX_BENCH_MESSAGES`,
//! `SHADOWBOX_BENCH_BASELINE_MESSAGES` and `SHADOWBOX_BENCH_DEVICES`
//! override the sizes.

#[path = "../tests/ingest/common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{message_count, reported, reported_topic, start};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use shadowbox_core::DocumentLimits;
use shadowbox_core::payload::decode_reported;
use shadowbox_core::topic::{parse_shadow_topic, shared_reported_filter};
use shadowbox_db::reported::{ReportedState, ReportedUpdate, apply_reported};
use shadowbox_testkit::mqtt::{Client, unique_client_id};
use shadowbox_testkit::{Fleet, Mosquitto, MosquittoConfig, Running, TestDb};
use sqlx::PgPool;
use tokio::sync::mpsc;

fn size(var: &str, full: usize, quick: bool) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { full / 10 } else { full })
}

/// `count` messages for `devices` devices of `tenant`: device-interleaved
/// (consecutive messages are for different devices), versions increasing.
fn workload(tenant: &str, devices: usize, count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|k| {
            let version = (k / devices + 1) as i64;
            let payload = json!({"temp": 21.5, "rate": k % 100, "fw": "1.2.3"});
            (
                reported_topic(tenant, &format!("d{}", k % devices)),
                reported(payload, version),
            )
        })
        .collect()
}

/// Publishes `messages` from a task; returns when the broker has them all.
fn publish(broker: String, messages: Vec<(String, Vec<u8>)>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let devices = Client::connect(&broker, "devices").await;
        devices.publish_all(messages).await;
    })
}

fn report(name: &str, messages: usize, devices: usize, took: Duration) -> f64 {
    let rate = messages as f64 / took.as_secs_f64();
    println!(
        "{name:<28} {messages:>7} messages over {devices} devices in {:>6.2} s = {rate:>8.0} msg/s",
        took.as_secs_f64()
    );
    rate
}

#[tokio::main]
async fn main() {
    shadowbox_testkit::init_logs();
    let quick = std::env::args().any(|a| a == "--quick");
    let messages = size("SHADOWBOX_BENCH_MESSAGES", 200_000, quick);
    let baseline_messages = size("SHADOWBOX_BENCH_BASELINE_MESSAGES", 50_000, quick);
    let devices = size("SHADOWBOX_BENCH_DEVICES", 10_000, quick);

    let db = TestDb::new().await;
    // The test broker (max_inflight_messages 2000), with an unbounded
    // queue so a fast publisher cannot make it drop messages.
    let broker = Mosquitto::start_with(MosquittoConfig {
        persistence: false,
        tls: None,
        extra: "max_queued_messages 0\n".to_owned(),
    });
    let ids = || (0..devices).map(|i| format!("d{i}"));
    // Desired versions high enough that no report is `ahead`.
    let last_version = messages.div_ceil(devices) as i64;
    for tenant in ["bench", "base"] {
        Fleet::register_ids(&db.pool, tenant, ids())
            .await
            .desired_at(last_version)
            .await;
    }

    let mut settings = common::settings(&broker.url(), &unique_client_id("bench"));
    settings.batch_size = shadowbox_ingest::DEFAULT_BATCH_SIZE;
    settings.batch_wait = shadowbox_ingest::DEFAULT_BATCH_WAIT;
    println!(
        "MQTT {}, batch_size {}, {} writers (receive maximum {} under 5), batch_wait {:?}, broker max_inflight_messages 2000",
        settings.mqtt.protocol,
        settings.batch_size,
        settings.writers,
        settings.receive_maximum(),
        settings.batch_wait
    );
    let ingester = start(settings, db.pool.clone()).await;
    let work = workload("bench", devices, messages);
    let started = Instant::now();
    let publishing = publish(broker.url(), work);
    let total = messages as f64;
    let processed = |i: &Running| -> f64 {
        ["applied", "superseded", "stale"]
            .iter()
            .map(|r| message_count(i, r))
            .sum()
    };
    let (mut last, mut progressed) = (0.0, Instant::now());
    while processed(&ingester) < total {
        let now = processed(&ingester);
        if now > last {
            (last, progressed) = (now, Instant::now());
        }
        assert!(
            progressed.elapsed() < Duration::from_secs(30),
            "no progress for 30 s: {now} processed, {} pending",
            ingester.metric("shadowbox_ingest_pending_messages"),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let batched = report("batched ingester", messages, devices, started.elapsed());
    publishing.await.unwrap();
    let batches = ingester.metric("shadowbox_ingest_batch_size_count");
    println!(
        "  {batches} batches, {:.0} messages per batch, {:.1} ms per write",
        total / batches,
        1000.0 * ingester.metric("shadowbox_ingest_apply_seconds_sum") / batches,
    );
    ingester.stop().await;
    check_final(&db.pool, "bench", devices, messages).await;

    let consuming = baseline(broker.url(), db.pool.clone(), baseline_messages).await;
    let started = Instant::now();
    let publishing = publish(broker.url(), workload("base", devices, baseline_messages));
    consuming.await.unwrap();
    let one_by_one = report(
        "one UPDATE per message",
        baseline_messages,
        devices,
        started.elapsed(),
    );
    publishing.await.unwrap();
    check_final(&db.pool, "base", devices, baseline_messages).await;
    println!("ratio: {:.1}x", batched / one_by_one);
}

/// Every device holds the last version sent to it.
async fn check_final(pool: &PgPool, tenant: &str, devices: usize, messages: usize) {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT device_id, reported_version FROM device_state WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(pool)
            .await
            .unwrap();
    for (device, version) in rows {
        let d: usize = device[1..].parse().unwrap();
        // Device d got messages d, d + devices, ...: its last version is their count.
        let sent = if d < messages {
            (messages - d).div_ceil(devices)
        } else {
            0
        };
        assert_eq!(version as usize, sent, "{tenant}/{device}");
    }
}

/// The baseline: the same guarantee (ack after commit), one statement and
/// one round trip per message. Subscribes, then consumes `count` messages
/// in the task it returns.
async fn baseline(broker: String, pool: PgPool, count: usize) -> tokio::task::JoinHandle<()> {
    let port: u16 = broker.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut options = MqttOptions::new(unique_client_id("baseline"), "127.0.0.1", port);
    options
        .set_manual_acks(true)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, u16::MAX.into());
    let (tx, mut rx) = mpsc::channel(u16::MAX.into());
    let (subscribed_tx, mut subscribed) = mpsc::channel(1);
    let filter = shared_reported_filter("baseline");
    let poller = tokio::spawn({
        let client = client.clone();
        async move {
            loop {
                match eventloop.poll().await.expect("the broker stays up") {
                    Event::Incoming(Packet::ConnAck(_)) => client
                        .try_subscribe(filter.clone(), QoS::AtLeastOnce)
                        .unwrap(),
                    Event::Incoming(Packet::SubAck(_)) => subscribed_tx.send(()).await.unwrap(),
                    Event::Incoming(Packet::Publish(p)) => tx.send(p).await.unwrap(),
                    _ => {}
                }
            }
        }
    });
    subscribed.recv().await.unwrap();
    tokio::spawn(async move {
        let limits = DocumentLimits::default();
        for _ in 0..count {
            let publish = rx.recv().await.unwrap();
            let (tenant, device, _) = parse_shadow_topic(&publish.topic).unwrap();
            let message = decode_reported(&publish.payload, &limits).unwrap();
            let received_at = chrono::Utc::now();
            let update = ReportedUpdate {
                tenant_id: tenant,
                device_id: device,
                reported: message.reported.map(|document| ReportedState {
                    document,
                    version: message.version,
                    received_at,
                }),
                rejection: None,
                seen_at: received_at,
            };
            apply_reported(&pool, &[update]).await.unwrap();
            client.ack(&publish).await.unwrap();
        }
        poller.abort();
    })
}
