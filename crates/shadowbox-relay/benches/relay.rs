//! Relay benchmark: drain throughput and commit-to-receive latency, each
//! beside the raw QoS 1 retained publish rate of the same broker, measured
//! in the same run. Uses a fresh database on the local PostgreSQL and a
//! private Mosquitto.
//!
//! `cargo bench -p shadowbox-relay` (full sizes) or with
//! `SHADOWBOX_BENCH_QUICK=1` (small sizes, for CI).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::json;
use shadowbox_mqtt::BrokerAddress;
use shadowbox_relay::{RelayMetrics, RelaySettings};
use shadowbox_testkit::mqtt::{ALL_DESIRED, Client, version_of};
use shadowbox_testkit::{Fleet, Mosquitto, Running, TestDb};

/// A desired version of one topic, and when it was committed or received.
type Sightings = Arc<Mutex<HashMap<(String, i64), Instant>>>;

struct Sizes {
    rows: usize,
    devices: usize,
    rate: usize,
    seconds: u64,
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt::init();
    }
    let quick = std::env::var_os("SHADOWBOX_BENCH_QUICK").is_some();
    let sizes = if quick {
        Sizes {
            rows: 5_000,
            devices: 500,
            rate: 200,
            seconds: 2,
        }
    } else {
        Sizes {
            rows: 100_000,
            devices: 10_000,
            rate: 1_000,
            seconds: 10,
        }
    };
    let broker = Mosquitto::start();

    let raw = raw_publish_rate(&broker.url(), sizes.devices).await;
    println!("raw QoS1 retained publishes, one client: {raw:>10.0} msg/s");

    let (rows_per_s, publishes_per_s) = drain(&broker, &sizes).await;
    println!(
        "relay drain {} rows over {} devices:  {rows_per_s:>10.0} rows/s ({publishes_per_s:.0} publishes/s, {:.2} x raw publish rate)",
        sizes.rows,
        sizes.devices,
        publishes_per_s / raw
    );

    let (p50, p99, count) = latency(&broker, &sizes).await;
    println!(
        "commit-to-receive at {} updates/s ({count} samples): p50 {:.2} ms, p99 {:.2} ms",
        sizes.rate,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}

/// QoS 1 retained publishes per second from one pipelined client, until the
/// last PUBACK: the broker's own limit for what the relay does.
async fn raw_publish_rate(url: &str, count: usize) -> f64 {
    let broker: BrokerAddress = url.parse().unwrap();
    let mut options = MqttOptions::new("bench-raw", broker.host, broker.port);
    options.set_inflight(2000);
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let payload = shadowbox_core::payload::encode_desired(
        &shadowbox_core::document::into_document(json!({"round": 1, "rate": 5})).unwrap(),
        1,
        chrono::Utc::now(),
    );
    let publisher = tokio::spawn(async move {
        for i in 0..count {
            let topic = format!("tenant/raw/device/d{i}/shadow/desired");
            client
                .publish(topic, QoS::AtLeastOnce, true, payload.clone())
                .await
                .unwrap();
        }
        client
    });
    let mut started = None;
    let mut acked = 0;
    while acked < count {
        match eventloop.poll().await.unwrap() {
            Event::Outgoing(Outgoing::Publish(_)) if started.is_none() => {
                started = Some(Instant::now())
            }
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            _ => {}
        }
    }
    let elapsed = started.unwrap().elapsed();
    drop(publisher.await);
    count as f64 / elapsed.as_secs_f64()
}

/// A relay with the default settings, in a task.
fn start_relay(pool: &sqlx::PgPool, url: &str) -> Running {
    let settings = RelaySettings::new(url.parse().unwrap());
    let pool = pool.clone();
    Running::start(|registry, shutdown| {
        shadowbox_relay::run(settings, pool, RelayMetrics::register(registry), shutdown)
    })
}

/// Rows and publishes per second draining a backlog of `rows` pending rows
/// over `devices` devices.
async fn drain(broker: &Mosquitto, sizes: &Sizes) -> (f64, f64) {
    let db = TestDb::new().await;
    let fleet = Fleet::register(&db, sizes.devices).await;
    let per_device = sizes.rows / sizes.devices;
    // The backlog, written the way the API writes it, device by device.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let fleet_devices = (w..sizes.devices).step_by(4).collect::<Vec<_>>();
            let fleet = Fleet {
                pool: fleet.pool.clone(),
                tenant: fleet.tenant.clone(),
                devices: fleet.devices.clone(),
            };
            tokio::spawn(async move {
                for round in 0..per_device {
                    for &d in &fleet_devices {
                        fleet.patch(d, json!({ "round": round })).await;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let started = Instant::now();
    let relay = start_relay(&db.pool, &broker.url());
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    relay.stop().await;
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'delivered'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    (
        (sizes.devices * per_device) as f64 / elapsed,
        delivered as f64 / elapsed,
    )
}

/// Commit-to-receive latency percentiles at a fixed update rate.
async fn latency(broker: &Mosquitto, sizes: &Sizes) -> (Duration, Duration, usize) {
    let db = TestDb::new().await;
    let fleet = Arc::new(Fleet::register(&db, sizes.devices.min(1000)).await);
    let relay = start_relay(&db.pool, &broker.url());
    let observer = Client::connect(&broker.url(), "bench-observer").await;
    observer.subscribe(ALL_DESIRED).await;

    let committed: Sightings = Arc::default();
    let total = sizes.rate * sizes.seconds as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / sizes.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writers = Vec::with_capacity(total);
    for n in 0..total {
        tick.tick().await;
        let (fleet, committed) = (fleet.clone(), committed.clone());
        writers.push(tokio::spawn(async move {
            let device = n % fleet.devices.len();
            let version = fleet.patch(device, json!({ "n": n })).await;
            committed
                .lock()
                .unwrap()
                .insert((fleet.topic(device), version), Instant::now());
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received: HashMap<(String, i64), Instant> = observer
        .messages()
        .into_iter()
        .map(|m| ((m.topic, version_of(&m.payload)), m.at))
        .collect();
    let mut latencies: Vec<Duration> = committed
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(key, at)| received.get(key).map(|r| r.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    relay.stop().await;
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (pick(0.50), pick(0.99), latencies.len())
}
