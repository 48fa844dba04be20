//! Figure 2: commit-to-device latency, from the API's answer to a
//! subscribed device receiving that version, at fixed update rates (an
//! open loop: requests go out on schedule whatever the answers do).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::api::DesiredApi;
use crate::cpu::{CpuSample, CpuShare, Watched};
use crate::mqtt::{Devices, connect, desired_payload};
use crate::pace::paced;
use crate::report::{Row, count};
use crate::stats::Latency;
use rumqttc::QoS;

/// The rate whose latency has a target, and the target.
const TARGET_RATE: u64 = 1_000;
const TARGET_P50_MS: f64 = 5.0;
const TARGET_P99_MS: f64 = 20.0;

/// Requests in flight at once; beyond it a scheduled request is skipped
/// (and counted), so an overloaded API cannot run the generator away.
const MAX_OUTSTANDING: usize = 512;

/// How long to wait for the last publishes after the last answer.
const SETTLE: Duration = Duration::from_secs(2);

/// Commit-to-device latency at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Updates per second asked for.
    pub rate: u64,
    /// Updates per second the API answered.
    pub answered_per_second: f64,
    /// Scheduled updates skipped because `MAX_OUTSTANDING` were in flight.
    pub skipped: u64,
    /// Failed requests.
    pub errors: u64,
    /// Answered versions a device received (the rest were superseded by a
    /// newer version of the same device before their publish, or lost).
    pub received_fraction: f64,
    /// Versions a device received before the API's answer reached the
    /// client (counted as 0 ms).
    pub before_answer: usize,
    /// Answer-to-receipt latency.
    pub latency: Latency,
    /// API answer latency of the same requests.
    pub answer_latency: Latency,
    /// CPU while it ran.
    pub cpu: CpuShare,
    /// The broker alone at the same rate: publish to receipt, one hop.
    pub broker_hop: Latency,
}

/// Measures each of `rates` for `window`, writing to devices `d1` to
/// `d<devices>` of `tenant` in turn (so no write supersedes a pending one
/// unless the rate laps the fleet), accounting CPU to `watched`.
pub async fn measure(
    api: &DesiredApi,
    port: u16,
    watched: &Watched,
    tenant: &str,
    devices: u64,
    rates: &[u64],
    window: Duration,
) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    let mut next_write = 0;
    let subscriber =
        Devices::subscribe(port, &format!("tenant/{tenant}/device/+/shadow/desired")).await?;
    for &rate in rates {
        let before = CpuSample::now(watched);
        let run = open_loop(api, devices, rate, window, next_write).await;
        next_write += run.scheduled;
        tokio::time::sleep(SETTLE).await;
        let cpu = CpuSample::now(watched).since(&before);
        let broker_hop = broker_hop(port, devices, rate, window).await?;
        let arrivals = subscriber.arrivals.lock().expect("arrivals").clone();
        let mut latencies = Vec::with_capacity(run.answers.len());
        let mut answer_latencies = Vec::with_capacity(run.answers.len());
        let mut before_answer = 0;
        for answer in &run.answers {
            answer_latencies.push(answer.answered - answer.sent);
            let topic = format!("tenant/{tenant}/device/d{}/shadow/desired", answer.device);
            if let Some(at) = arrivals.get(&(topic, answer.version)) {
                before_answer += usize::from(*at < answer.answered);
                latencies.push(at.saturating_duration_since(answer.answered));
            }
        }
        points.push(Point {
            rate,
            answered_per_second: run.answers.len() as f64 / window.as_secs_f64(),
            skipped: run.skipped,
            errors: run.errors,
            received_fraction: latencies.len() as f64 / run.answers.len().max(1) as f64,
            before_answer,
            latency: Latency::of(latencies),
            answer_latency: Latency::of(answer_latencies),
            cpu,
            broker_hop,
        });
    }
    Ok(points)
}

/// The limit: QoS 1 retained publishes from one client at `rate` for
/// `window` (to topics outside every shadow topic), from the publish call
/// to a subscriber's receipt.
async fn broker_hop(
    port: u16,
    devices: u64,
    rate: u64,
    window: Duration,
) -> anyhow::Result<Latency> {
    // A tenant per rate: no retained message of an earlier rate arrives.
    let prefix = format!("bench/tenant/hop{rate}/device");
    let subscriber = Devices::subscribe(port, &format!("{prefix}/+/shadow/desired")).await?;
    let (client, mut eventloop) = connect("hop", port);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let mut sent = Vec::new();
    paced(rate, window, |n| {
        let topic = format!("{prefix}/d{}/shadow/desired", n % devices + 1);
        let at = Instant::now();
        // Never waits: the request queue holds far more than a tick's publishes.
        if client
            .try_publish(topic.clone(), QoS::AtLeastOnce, true, desired_payload(n))
            .is_ok()
        {
            sent.push((topic, n as i64, at));
        }
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    poller.abort();
    let arrivals = subscriber.arrivals.lock().expect("arrivals");
    Ok(Latency::of(
        sent.into_iter()
            .filter_map(|(topic, n, at)| {
                Some(arrivals.get(&(topic, n))?.saturating_duration_since(at))
            })
            .collect(),
    ))
}

struct Answer {
    device: u64,
    version: i64,
    sent: Instant,
    answered: Instant,
}

struct OpenLoop {
    scheduled: u64,
    answers: Vec<Answer>,
    skipped: u64,
    errors: u64,
}

/// Sends `rate` PATCHes per second for `window`, the n-th (counting from
/// `first`) to device `d<n mod devices + 1>`.
async fn open_loop(
    api: &DesiredApi,
    devices: u64,
    rate: u64,
    window: Duration,
    first: u64,
) -> OpenLoop {
    let slots = Arc::new(Semaphore::new(MAX_OUTSTANDING));
    let mut tasks = JoinSet::new();
    let mut skipped = 0;
    let scheduled = paced(rate, window, |i| {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            skipped += 1;
            return;
        };
        let (api, n) = (api.clone(), first + i);
        tasks.spawn(async move {
            let device = n % devices + 1;
            let sent = Instant::now();
            let version = api.patch(device, n).await;
            drop(slot);
            version.map(|version| Answer {
                device,
                version,
                sent,
                answered: Instant::now(),
            })
        });
    })
    .await;
    let (mut answers, mut errors) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(answer)) => answers.push(answer),
            _ => errors += 1,
        }
    }
    OpenLoop {
        scheduled,
        answers,
        skipped,
        errors,
    }
}

/// One table row per rate.
pub fn rows(points: &[Point], connection: &str) -> Vec<Row> {
    points
        .iter()
        .map(|p| {
            let targeted = p.rate == TARGET_RATE;
            Row {
                figure: format!(
                    "2 commit-to-device ({connection}) at {} updates/s",
                    count(p.rate as f64)
                ),
                value: format!(
                    "{} ({} answered/s, {:.1}% received)",
                    p.latency.brief(),
                    count(p.answered_per_second),
                    p.received_fraction * 100.0
                ),
                limit: format!("broker alone {}", p.broker_hop.brief()),
                ratio: None,
                target: if targeted {
                    format!("p50 <= {TARGET_P50_MS} ms, p99 <= {TARGET_P99_MS} ms")
                } else {
                    "-".into()
                },
                met: targeted.then_some(
                    p.latency.p50_ms <= TARGET_P50_MS
                        && p.latency.p99_ms <= TARGET_P99_MS
                        && p.skipped == 0,
                ),
            }
        })
        .collect()
}
