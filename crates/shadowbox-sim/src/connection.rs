//! One MQTT connection serving a group of devices.
//!
//! A task polls the rumqttc event loop and nothing else; received desired
//! messages go through an unbounded channel to a handler task that applies
//! them in order and publishes the reports. The poller never waits on the
//! handler, so a full request queue can never stall the loop that drains
//! it. On every CONNACK the group's desired topics are subscribed again
//! (retained messages then arrive anew, as on a real reconnect).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shadowbox_core::DeviceId;
use shadowbox_core::topic::{ShadowTopicKind, shadow_topic};
use shadowbox_mqtt::{Client, Event, EventLoop, Failover, Message, SessionOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::device::{Device, Reaction};
use crate::settings::{Connections, SimSettings};
use crate::stats::{Counters, Event as Count};

/// Largest MQTT packet accepted or sent: a 64 KiB document plus its
/// envelope, with room to spare (rumqttc's default is 10 KiB).
const MAX_PACKET_BYTES: u32 = 256 * 1024;
/// Topic filters per SUBSCRIBE packet.
const SUBSCRIBE_CHUNK: usize = 200;
/// Requests (reports, subscriptions) queued for one connection.
const REQUEST_CAPACITY: usize = 1000;
/// How long a shutdown waits for the DISCONNECT to go out.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);
/// Keep-alive interval of every simulated connection.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Tells apart the connections of several runs in one process.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The devices one connection serves.
#[derive(Debug)]
pub(crate) struct Group {
    /// MQTT client id.
    pub(crate) client_id: String,
    /// Clean session (shared connections) or a persistent one (a device's
    /// own connection).
    pub(crate) clean_session: bool,
    /// The devices it subscribes and reports for.
    pub(crate) devices: Vec<DeviceId>,
}

/// Splits the online devices into connections.
pub(crate) fn groups(settings: &SimSettings) -> Vec<Group> {
    let tenant = &settings.tenant;
    let online: Vec<&DeviceId> = settings
        .devices
        .iter()
        .zip(0u64..)
        .filter(|&(_, i)| unit(ONLINE_SEED, i) < settings.online_fraction)
        .map(|(device, _)| device)
        .collect();
    match settings.connections {
        Connections::PerDevice => online
            .into_iter()
            .map(|device| Group {
                client_id: format!("{tenant}/{device}"),
                clean_session: false,
                devices: vec![device.clone()],
            })
            .collect(),
        Connections::Shared(count) => {
            let count = count.get().min(online.len());
            let run = format!(
                "{}-{}",
                std::process::id(),
                RUNS.fetch_add(1, Ordering::Relaxed)
            );
            (0..count)
                .map(|c| Group {
                    client_id: format!("shadowbox-sim-{tenant}-{run}-{c}"),
                    clean_session: true,
                    devices: online
                        .iter()
                        .skip(c)
                        .step_by(count)
                        .map(|d| (*d).clone())
                        .collect(),
                })
                .collect()
        }
    }
}

const ONLINE_SEED: u64 = 0x6f6e_6c69_6e65;

/// A deterministic number in [0, 1) for (`seed`, `n`) (SplitMix64), so a
/// run's online devices, dropped messages and rejections are reproducible.
pub(crate) fn unit(seed: u64, n: u64) -> f64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A seed for [`unit`] that stands for `name`.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0, |h, b| h.rotate_left(5) ^ u64::from(b))
}

/// A device of the group and where it reports.
struct Slot {
    reported_topic: String,
    device: Device,
}

/// State that outlives each reconnect.
struct Shared {
    settings: Arc<SimSettings>,
    counters: Arc<Counters>,
    /// Desired topic → device.
    slots: Mutex<HashMap<String, Slot>>,
    filters: Vec<String>,
    /// Numbers the received messages, for the drop decision.
    received: AtomicU64,
    drop_seed: u64,
}

/// Serves `group` until `shutdown`, reconnecting after errors and every
/// `disconnect_every`.
pub(crate) async fn run(
    group: Group,
    settings: Arc<SimSettings>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    let tenant = &settings.tenant;
    let slots: HashMap<String, Slot> = group
        .devices
        .iter()
        .map(|device| {
            let reported_topic = shadow_topic(tenant, device, ShadowTopicKind::Reported);
            let slot = Slot {
                device: Device::new(seed_of(&reported_topic)),
                reported_topic,
            };
            (shadow_topic(tenant, device, ShadowTopicKind::Desired), slot)
        })
        .collect();
    let shared = Arc::new(Shared {
        filters: slots.keys().cloned().collect(),
        slots: Mutex::new(slots),
        received: AtomicU64::new(0),
        drop_seed: seed_of(&group.client_id),
        settings,
        counters,
    });
    let mut failover = Failover::new(shared.settings.mqtt.brokers.clone());
    let options = options(&group);
    loop {
        let (client, eventloop) =
            shadowbox_mqtt::open(&shared.settings.mqtt, failover.broker(), &options);
        let recycle_at = shared.settings.disconnect_every.map(|d| Instant::now() + d);
        let end = session(
            client,
            eventloop,
            recycle_at,
            &mut failover,
            &shared,
            &shutdown,
        )
        .await;
        match end {
            SessionEnd::Stopped => break,
            SessionEnd::Recycled => {
                shared.counters.count(Count::Disconnect);
                tracing::debug!(client_id = %group.client_id, "simulated disconnect");
            }
            SessionEnd::Failed(error) => {
                shared.counters.count(Count::Disconnect);
                let delay = failover.failed(&error);
                tracing::debug!(%error, "simulator connection lost");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

fn options(group: &Group) -> SessionOptions {
    let mut options = SessionOptions::new(&group.client_id);
    options.clean_start = group.clean_session;
    options.keep_alive = KEEP_ALIVE;
    options.max_incoming_packet = MAX_PACKET_BYTES;
    options.max_outgoing_packet = MAX_PACKET_BYTES;
    options.request_capacity = REQUEST_CAPACITY;
    options
}

/// How one connection's life ended.
enum SessionEnd {
    /// Shutdown.
    Stopped,
    /// Time to drop the connection and open a new one.
    Recycled,
    /// The connection failed.
    Failed(String),
}

/// One connection's life, until shutdown, recycling or failure. A
/// CONNACK starts the reconnect backoff over.
async fn session(
    client: Client,
    mut eventloop: EventLoop,
    recycle_at: Option<Instant>,
    failover: &mut Failover,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = tokio::spawn(handle(rx, client.clone(), Arc::clone(shared)));
    let recycle = async {
        match recycle_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(recycle);
    let end = loop {
        tokio::select! {
            () = shutdown.cancelled() => break SessionEnd::Stopped,
            () = &mut recycle => break SessionEnd::Recycled,
            event = eventloop.poll() => match event {
                Ok(Event::Connected(_)) => {
                    failover.connected();
                    failover.reset_backoff();
                    tokio::spawn(subscribe(client.clone(), Arc::clone(shared)));
                }
                Ok(Event::Message(message)) => {
                    // The handler ends only when this sender is dropped.
                    let _ = tx.send((Instant::now(), message));
                }
                Ok(_) => {}
                Err(error) => break SessionEnd::Failed(error.to_string()),
            },
        }
    };
    handler.abort();
    if matches!(end, SessionEnd::Stopped) {
        disconnect(&client, &mut eventloop).await;
    }
    end
}

/// Sends DISCONNECT, so the broker does not publish a will or wait for
/// the keep-alive; bounded, as the broker may be gone.
async fn disconnect(client: &Client, eventloop: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Event::DisconnectSent) {
                break;
            }
        }
    })
    .await;
}

async fn subscribe(client: Client, shared: Arc<Shared>) {
    for chunk in shared.filters.chunks(SUBSCRIBE_CHUNK) {
        if client.subscribe_many(chunk).await.is_err() {
            return;
        }
    }
}

/// Applies received desired messages in order, each `apply_delay` after
/// it arrived, and publishes the reports.
async fn handle(
    mut rx: mpsc::UnboundedReceiver<(Instant, Message)>,
    client: Client,
    shared: Arc<Shared>,
) {
    let (counters, settings) = (&shared.counters, &shared.settings);
    while let Some((received_at, message)) = rx.recv().await {
        counters.count(Count::Received);
        let n = shared.received.fetch_add(1, Ordering::Relaxed);
        if unit(shared.drop_seed, n) < settings.drop_rate {
            counters.count(Count::Dropped);
            continue;
        }
        tokio::time::sleep_until(received_at + settings.apply_delay).await;
        let report = {
            let mut slots = shared.slots.lock().expect("slots lock");
            let Some(slot) = slots.get_mut(&message.topic) else {
                continue;
            };
            match slot.device.on_desired(message.payload(), &settings.reject) {
                Reaction::Report(payload) => (Count::Applied, slot.reported_topic.clone(), payload),
                Reaction::Reject(payload) => {
                    (Count::Rejected, slot.reported_topic.clone(), payload)
                }
                Reaction::Ignored(event) => {
                    counters.count(event);
                    continue;
                }
            }
        };
        let (event, topic, payload) = report;
        counters.count(event);
        if client.publish(&topic, payload, false).await.is_err() {
            return;
        }
        counters.count(Count::Reported);
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use shadowbox_core::TenantId;

    use super::*;
    use crate::settings::device_ids;

    fn settings(devices: usize) -> SimSettings {
        SimSettings::new(
            "mqtt://127.0.0.1:1883".parse().unwrap(),
            TenantId::parse("acme").unwrap(),
            device_ids("sim", devices).unwrap(),
        )
    }

    #[test]
    fn shared_connections_split_the_devices() {
        let mut s = settings(10);
        s.connections = Connections::Shared(NonZeroUsize::new(3).unwrap());
        let split = groups(&s);
        assert_eq!(
            split.iter().map(|g| g.devices.len()).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert!(split.iter().all(|g| g.clean_session));
        s.connections = Connections::Shared(NonZeroUsize::new(50).unwrap());
        assert_eq!(groups(&s).len(), 10, "never more connections than devices");
    }

    #[test]
    fn per_device_connections_keep_a_session() {
        let mut s = settings(2);
        s.connections = Connections::PerDevice;
        let split = groups(&s);
        assert_eq!(split[1].client_id, "acme/sim-00001");
        assert!(
            split
                .iter()
                .all(|g| !g.clean_session && g.devices.len() == 1)
        );
    }

    #[test]
    fn the_online_fraction_picks_about_that_many_devices() {
        let mut s = settings(1000);
        s.online_fraction = 0.3;
        let online: usize = groups(&s).iter().map(|g| g.devices.len()).sum();
        assert!((250..350).contains(&online), "{online}");
        s.online_fraction = 0.0;
        assert!(groups(&s).is_empty());
    }
}
