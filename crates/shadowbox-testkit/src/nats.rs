//! A private NATS cluster: `nats-server` started once per node on free
//! loopback ports, the nodes routed to each other as one cluster with
//! JetStream, each with an MQTT listener. NATS keeps MQTT sessions and
//! retained messages in JetStream streams, replicated to every node
//! (`mqtt { stream_replicas }`), so a retained message published on one
//! node is retained on all of them. NATS speaks MQTT 3.1.1 only and has
//! no shared subscriptions.
//!
//! The machine's own NATS (if any) is never touched: every node has its
//! own ports and its own JetStream folder.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use shadowbox_mqtt::{MqttConfig, Protocol};

use crate::child::ChildProcess;
use crate::process::free_port;
use crate::wait::eventually;

/// Where Debian installs `nats-server` (outside a normal user's PATH).
const DEBIAN_PROGRAM: &str = "/usr/sbin/nats-server";

/// How long a node waits for a subscriber's PUBACK before it sends the
/// message again (NATS's default is 30 s): after a node loss, messages
/// whose delivery died with the node reach their subscribers this late.
const ACK_WAIT: &str = "5s";

/// How long a cluster may take to elect its JetStream leaders and create
/// the MQTT streams.
const FORMING: Duration = Duration::from_secs(60);

/// One node: its ports, its configuration file and its process.
struct Node {
    mqtt_port: u16,
    config: PathBuf,
    process: Option<ChildProcess>,
}

/// A NATS cluster of private nodes, killed when dropped.
pub struct NatsCluster {
    program: PathBuf,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// The `nats-server` program, if it is installed (`scripts/test.sh`
    /// installs Debian's package when it is missing).
    pub fn program() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .find(|candidate| candidate.is_file())
        });
        on_path.or_else(|| {
            let debian = PathBuf::from(DEBIAN_PROGRAM);
            debian.is_file().then_some(debian)
        })
    }

    /// Starts `nodes` nodes as one cluster whose MQTT streams have a
    /// replica on every node, and waits until each node's MQTT listener
    /// accepts a 3.1.1 connection (which needs the cluster formed and the
    /// streams created). `None` when `nats-server` is not installed.
    pub async fn start(nodes: usize) -> Option<Self> {
        let program = Self::program()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = (0..nodes)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster, _)| format!("nats://127.0.0.1:{cluster}"))
            .collect();
        let routes = routes.join(", ");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(client, cluster, mqtt))| {
                let store = dir.path().join(format!("n{i}"));
                let config = dir.path().join(format!("n{i}.conf"));
                let text = format!(
                    "server_name: n{i}\n\
                     listen: 127.0.0.1:{client}\n\
                     jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB, max_file_store: 1GB }}\n\
                     cluster {{ name: shadowbox-test, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n\
                     mqtt {{ listen: 127.0.0.1:{mqtt}, stream_replicas: {nodes}, ack_wait: \"{ACK_WAIT}\" }}\n",
                    store = store.display(),
                );
                std::fs::write(&config, text).expect("write the node's config");
                Node {
                    mqtt_port: mqtt,
                    config,
                    process: None,
                }
            })
            .collect();
        let mut cluster = Self {
            program,
            nodes,
            _dir: dir,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_ready(i).await;
        }
        Some(cluster)
    }

    /// `mqtt://127.0.0.1:{port}` of node `i`'s MQTT listener.
    pub fn mqtt_url(&self, i: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.nodes[i].mqtt_port)
    }

    /// Every node's MQTT listener, comma-separated, in node order: an
    /// `MQTT_URL` for failover.
    pub fn mqtt_urls(&self) -> String {
        let urls: Vec<String> = (0..self.nodes.len()).map(|i| self.mqtt_url(i)).collect();
        urls.join(",")
    }

    /// Node `i`'s MQTT listener as a client configuration, MQTT 3.1.1.
    pub fn mqtt_config(&self, i: usize) -> MqttConfig {
        self.mqtt_url(i)
            .parse::<MqttConfig>()
            .expect("a broker URL")
            .with_protocol(Protocol::V311)
    }

    /// The node whose MQTT listener `url` (`mqtt://127.0.0.1:{port}`) is.
    pub fn node_of(&self, url: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.mqtt_url(i) == url)
    }

    /// Kills node `i` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// Starts node `i` again (its JetStream folder kept) and waits until
    /// it accepts MQTT connections.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i).await;
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.process = Some(ChildProcess::spawn(
            &format!("nats-server n{i}"),
            Command::new(&self.program).arg("-c").arg(&node.config),
        ));
    }

    async fn wait_ready(&self, i: usize) {
        let config = self.mqtt_config(i);
        let what = format!("NATS node n{i} accepts MQTT connections");
        eventually(FORMING, &what, || async {
            shadowbox_mqtt::probe::probe(&config, &config.brokers[0], Duration::from_secs(5))
                .await
                .is_ok()
        })
        .await;
    }
}
