//! The REST load: PATCHes of the desired state through one shared HTTP
//! client (keep-alive pool), in a closed loop of N concurrent clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::stats::Latency;

/// PATCHes the desired state of one tenant's devices.
#[derive(Clone)]
pub struct DesiredApi {
    client: reqwest::Client,
    prefix: Arc<str>,
    auth: HeaderValue,
}

#[derive(Deserialize)]
struct Answer {
    desired_version: i64,
}

impl DesiredApi {
    /// A client of `tenant` at `base`, authenticated with API key `key`.
    pub fn new(base: &str, tenant: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .tcp_nodelay(true)
                .pool_max_idle_per_host(1024)
                .build()?,
            prefix: format!("{base}/v1/tenants/{tenant}/devices/d").into(),
            auth: HeaderValue::from_str(&format!("Bearer {key}"))?,
        })
    }

    /// Sets `n` in the desired state of device `d<device>` with a merge
    /// patch, and answers the version the API committed.
    pub async fn patch(&self, device: u64, n: u64) -> anyhow::Result<i64> {
        let response = self
            .client
            .patch(format!("{}{device}/desired", self.prefix))
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/merge-patch+json")
            .body(format!("{{\"n\":{n}}}"))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("PATCH answered {}", response.status());
        }
        Ok(response.json::<Answer>().await?.desired_version)
    }
}

/// What a closed loop of clients achieved.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedLoop {
    /// Concurrent clients.
    pub clients: usize,
    /// Successful requests per second in the measured window.
    pub per_second: f64,
    /// Their latency.
    pub latency: Latency,
    /// Failed requests (any time).
    pub errors: u64,
}

/// `clients` clients each PATCH device after random device (of `d1` to
/// `d<devices>`) for `warmup`, which is not counted, and then `window`.
pub async fn closed_loop(
    api: &DesiredApi,
    devices: u64,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> ClosedLoop {
    let start = Instant::now() + warmup;
    let end = start + window;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::new();
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                // A fresh base each loop: no PATCH repeats an earlier value
                // (which would change nothing and enqueue nothing).
                let mut n = (rng.u64(..) >> 24) + client as u64;
                while Instant::now() < end {
                    let sent = Instant::now();
                    let ok = api.patch(rng.u64(1..=devices), n).await.is_ok();
                    n += clients as u64;
                    let done = Instant::now();
                    if !ok {
                        errors += 1;
                    } else if sent >= start && done <= end {
                        latencies.push(done - sent);
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (l, e) = task.await.expect("a load client panicked");
        latencies.extend(l);
        errors += e;
    }
    ClosedLoop {
        clients,
        per_second: latencies.len() as f64 / window.as_secs_f64(),
        latency: Latency::of(latencies),
        errors,
    }
}
