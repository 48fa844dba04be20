//! The deployment files, checked without a Docker engine.
//!
//! - `docker-compose.yml` parses and wires the expected services, commands,
//!   environment, healthchecks and start order;
//! - the API healthcheck command really tells a healthy server from an
//!   unhealthy or absent one;
//! - `deploy/mosquitto/` (config, password files, ACLs) loads in a real
//!   Mosquitto, whose own compose healthcheck passes; each account logs in
//!   on its own listener only; the ACLs give each device its own topics
//!   only and each service account what it needs; no device can take over
//!   another device's session or a service's, whatever client id it sends;
//!   and MQTT 5 clients are given room for the relay's in-flight window.
//!   Clients are `mosquitto_pub` / `mosquitto_sub`, as an operator would
//!   use them, and rumqttc (what shadowbox itself speaks) where a session
//!   must be held open or a CONNACK read;
//! - Prometheus and Grafana run the repository's `deploy/prometheus/` and
//!   `deploy/grafana/` (mounted read-only), Prometheus scrapes every
//!   shadowbox process on the port it serves metrics on, the dashboards are
//!   well-formed, and rules and dashboards name only metrics shadowbox
//!   exports. (`scripts/check-monitoring.sh` runs the rules' own tests and
//!   parses every query with `promtool`.)
//!
//! MQTT 3.1.1 acknowledges a refused publish and then drops it, so a
//! refusal is shown by a privileged subscriber that receives an allowed
//! marker sent after the refused message, and never the refused message.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, Connection, Event, MqttOptions, Packet, RecvTimeoutError,
};
use serde_norway::Value;
use shadowbox_mqtt::BrokerAddress;
use shadowbox_testkit::{ChildProcess, eventually_blocking, free_port};

/// How long any one client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a subscriber waits for a message it expects.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The broker's listener for devices (published by compose).
const DEVICES_PORT: u16 = 1883;
/// The broker's listener for shadowbox's services (compose network only).
const SERVICES_PORT: u16 = 1884;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `docker-compose.yml`, parsed, with its `<<` merge keys applied.
fn compose() -> Value {
    let text = std::fs::read_to_string(repo_file("docker-compose.yml")).expect("read compose");
    let mut compose: Value = serde_norway::from_str(&text).expect("compose is valid YAML");
    compose.apply_merge().expect("compose merge keys");
    compose
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// Strings of a YAML sequence.
fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {value:?}"))
        .iter()
        .map(|v| text(v, what).to_owned())
        .collect()
}

/// `s` as compose interpolates it when no variable is set: every
/// `${NAME:-default}` becomes `default`.
fn with_defaults(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let (_, default) = rest[start + 2..end]
            .split_once(":-")
            .unwrap_or_else(|| panic!("{s:?}: every variable needs a :- default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The default value of environment variable `name` of `service`.
fn env_default(compose: &Value, service: &str, name: &str) -> String {
    let value = &compose["services"][service]["environment"][name];
    with_defaults(text(value, &format!("{service}.environment.{name}")))
}

/// The broker login a service gets: the user of its `MQTT_URL`, the
/// password from the compose secret its `SHADOWBOX_MQTT_PASSWORD_FILE`
/// names (never in the URL).
fn mqtt_login(compose: &Value, service: &str) -> Login {
    let url = env_default(compose, service, "MQTT_URL");
    let address: BrokerAddress = url.parse().expect("MQTT_URL parses");
    assert_eq!(
        (address.host.as_str(), address.port),
        ("mosquitto", SERVICES_PORT),
        "{service} uses the services listener"
    );
    let user = address.user.expect("MQTT_URL names a user");
    assert!(
        !url.contains(&format!("{user}:")),
        "{service}: no password in MQTT_URL"
    );
    let file = env_default(compose, service, "SHADOWBOX_MQTT_PASSWORD_FILE");
    let secret = file
        .strip_prefix("/run/secrets/")
        .unwrap_or_else(|| panic!("{service}: the password file is a compose secret: {file}"));
    assert!(
        strings(
            &compose["services"][service]["secrets"],
            &format!("{service}.secrets")
        )
        .iter()
        .any(|s| s == secret),
        "{service} mounts the secret {secret}"
    );
    let source = text(
        &compose["secrets"][secret]["file"],
        &format!("secrets.{secret}.file"),
    );
    let password = std::fs::read_to_string(repo_file(source))
        .unwrap_or_else(|e| panic!("read {source}: {e}"))
        .trim_end_matches(['\n', '\r'])
        .to_owned();
    Login {
        user,
        password,
        listener: Listener::Services,
    }
}

#[test]
fn compose_wires_every_service() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let mut names: Vec<&str> = services.keys().map(|k| text(k, "service name")).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "api",
            "grafana",
            "ingest",
            "migrate",
            "mosquitto",
            "postgres",
            "prometheus",
            "relay"
        ]
    );

    for (service, command) in [
        ("migrate", "migrate"),
        ("api", "api"),
        ("relay", "relay"),
        ("ingest", "ingest"),
    ] {
        let s = &compose["services"][service];
        assert_eq!(text(&s["image"], "image"), "shadowbox:local", "{service}");
        assert_eq!(text(&s["build"], "build"), ".", "{service}");
        assert_eq!(strings(&s["command"], "command"), [command], "{service}");
        assert!(
            env_default(&compose, service, "DATABASE_URL")
                .starts_with("postgres://shadowbox:change-me-postgres@postgres:5432/"),
            "{service}"
        );
        assert_eq!(
            env_default(&compose, service, "SHADOWBOX_LOG_FORMAT"),
            "json"
        );
        assert_eq!(env_default(&compose, service, "RUST_LOG"), "info,sqlx=warn");
        let depends = &s["depends_on"];
        assert_eq!(
            text(&depends["postgres"]["condition"], "condition"),
            "service_healthy",
            "{service}"
        );
        if service != "migrate" {
            let login = mqtt_login(&compose, service);
            assert_eq!(login.user, service);
            assert!(login.password.starts_with("change-me-"), "{service}");
            assert_eq!(
                text(&depends["mosquitto"]["condition"], "condition"),
                "service_healthy"
            );
            assert_eq!(
                text(&depends["migrate"]["condition"], "condition"),
                "service_completed_successfully"
            );
        }
    }
    assert_eq!(
        compose["services"]["migrate"]["restart"].as_str(),
        Some("no")
    );
    assert_eq!(
        compose["services"]["relay"]["deploy"]["replicas"].as_u64(),
        Some(2)
    );

    let api = &compose["services"]["api"];
    assert_eq!(
        env_default(&compose, "api", "SHADOWBOX_HTTP_ADDR"),
        "0.0.0.0:8080"
    );
    assert!(env_default(&compose, "api", "SHADOWBOX_ADMIN_TOKEN").starts_with("change-me"));
    assert_eq!(strings(&api["ports"], "ports"), ["127.0.0.1:8080:8080"]);
    assert_eq!(env_default(&compose, "api", "HEALTH_PORT"), "8080");
    for service in ["relay", "ingest"] {
        assert_eq!(
            env_default(&compose, service, "SHADOWBOX_METRICS_ADDR"),
            "0.0.0.0:9090"
        );
        assert_eq!(env_default(&compose, service, "HEALTH_PORT"), "9090");
    }
    assert_eq!(
        env_default(&compose, "ingest", "SHADOWBOX_INGEST_CLIENT_ID"),
        "shadowbox-ingest-0",
        "a fixed id: the broker keeps the ingester's session under it"
    );
    assert_eq!(
        strings(&compose["services"]["mosquitto"]["ports"], "ports"),
        [format!("{DEVICES_PORT}:{DEVICES_PORT}")],
        "only the devices listener is published"
    );

    for service in ["postgres", "mosquitto", "api", "relay", "ingest"] {
        let check = &compose["services"][service]["healthcheck"];
        assert!(!strings(&check["test"], "test").is_empty(), "{service}");
        assert!(check["interval"].as_str().is_some(), "{service}");
    }
    assert!(
        strings(
            &compose["services"]["postgres"]["volumes"],
            "postgres volumes"
        )
        .iter()
        .any(|v| v.starts_with("pgdata:"))
    );
    assert!(compose["volumes"].get("pgdata").is_some());
    assert!(compose["volumes"].get("mosquitto-data").is_some());
}

#[test]
fn the_healthcheck_tells_healthy_from_not() {
    let test = strings(
        &compose()["services"]["api"]["healthcheck"]["test"],
        "api healthcheck",
    );
    assert_eq!(test[..3], ["CMD", "bash", "-c"]);
    let script = &test[3];
    // Compose turns `$$` into `$`; the container's HEALTH_PORT names the port.
    assert!(
        script.contains("/dev/tcp/127.0.0.1/$$HEALTH_PORT"),
        "{script}"
    );
    let probe = |port: u16| {
        let script = script.replace("$$HEALTH_PORT", "$HEALTH_PORT");
        let mut command = Command::new("bash");
        command
            .args(["-c", &script])
            .env("HEALTH_PORT", port.to_string());
        run_bounded(&mut command).success()
    };
    assert!(probe(http_server("200 OK", "/healthz")));
    assert!(!probe(http_server("503 Service Unavailable", "/healthz")));
    assert!(!probe(free_port()), "nothing listening");
}

/// A one-connection HTTP server on a free port answering `status`, and
/// checking that the request asked for `path`.
fn http_server(status: &'static str, path: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(RECEIVE_TIMEOUT))
            .expect("timeout");
        // The client may write its request in pieces: read up to the
        // blank line that ends the headers, as a real server does.
        let mut request = String::new();
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        while !request.ends_with("\r\n\r\n") {
            if reader.read_line(&mut request).expect("read request") == 0 {
                break;
            }
        }
        assert!(
            request.starts_with(&format!("GET {path} HTTP/1.")),
            "{request}"
        );
        let _ = write!(stream, "HTTP/1.0 {status}\r\ncontent-length: 2\r\n\r\nok");
    });
    port
}

/// Runs `command`, killing it if it outlives [`COMMAND_TIMEOUT`].
fn run_bounded(command: &mut Command) -> ExitStatus {
    shadowbox_testkit::run_bounded(command, COMMAND_TIMEOUT).status
}

/// The broker's two listeners, each with its own accounts and ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// Devices; client ids are replaced by usernames.
    Devices,
    /// shadowbox's services.
    Services,
}

/// A broker account, and the listener it logs in on.
#[derive(Debug, Clone)]
struct Login {
    user: String,
    password: String,
    listener: Listener,
}

impl Login {
    fn device(user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            listener: Listener::Devices,
        }
    }

    /// The same account trying the other listener.
    fn on(&self, listener: Listener) -> Self {
        Self {
            listener,
            ..self.clone()
        }
    }
}

/// The repository's broker configuration in a private folder, running on
/// free ports; the broker is killed and the folder removed when dropped.
struct Broker {
    dir: PathBuf,
    devices_port: u16,
    services_port: u16,
    child: ChildProcess,
}

impl Broker {
    /// Loads `deploy/mosquitto/` with its paths moved into a private
    /// folder and its listeners moved to free ports on 127.0.0.1.
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "shadowbox-deploy-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("create broker dir");
        let (devices_port, services_port) = (free_port(), free_port());
        let original =
            std::fs::read_to_string(repo_file("deploy/mosquitto/mosquitto.conf")).expect("conf");
        let devices_listener = format!("\nlistener {DEVICES_PORT}\n");
        let services_listener = format!("\nlistener {SERVICES_PORT}\n");
        let mut conf = original
            .replace(
                &devices_listener,
                &format!("\nlistener {devices_port} 127.0.0.1\n"),
            )
            .replace(
                &services_listener,
                &format!("\nlistener {services_port} 127.0.0.1\n"),
            )
            .replace("/mosquitto/config/", &format!("{}/", dir.display()))
            .replace("/mosquitto/data/", &format!("{}/data/", dir.display()));
        for (what, needle) in [
            ("devices listener", devices_listener.as_str()),
            ("services listener", services_listener.as_str()),
            ("config paths", "/mosquitto/config/"),
            ("data path", "/mosquitto/data/"),
        ] {
            assert!(original.contains(needle), "mosquitto.conf lost its {what}");
            assert!(!conf.contains(needle), "{what} not rewritten");
        }
        // Started as root, Mosquitto would switch to the `mosquitto` user,
        // who cannot read this private folder; as anyone else it ignores
        // this line.
        conf.push_str("\nuser root\n");
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("write conf");
        for file in [
            "devices.passwd",
            "devices.acl",
            "services.passwd",
            "services.acl",
        ] {
            std::fs::copy(
                repo_file(&format!("deploy/mosquitto/{file}")),
                dir.join(file),
            )
            .expect("copy broker file");
        }
        let child = ChildProcess::spawn(
            "mosquitto (apt-get install mosquitto)",
            Command::new("mosquitto")
                .arg("-c")
                .arg(dir.join("mosquitto.conf")),
        );
        let mut broker = Self {
            dir,
            devices_port,
            services_port,
            child,
        };
        eventually_blocking(Duration::from_secs(10), "mosquitto listens", || {
            if let Some(status) = broker.child.try_wait() {
                panic!("mosquitto refused the config ({status}):\n{}", broker.log());
            }
            [devices_port, services_port]
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
        });
        broker
    }

    /// The port of `listener`.
    fn port(&self, listener: Listener) -> u16 {
        match listener {
            Listener::Devices => self.devices_port,
            Listener::Services => self.services_port,
        }
    }

    /// What the broker logged (`log_dest stdout`).
    fn log(&self) -> String {
        self.child.stdout() + &self.child.stderr()
    }

    /// Adds a device account the way deploy/README.md tells operators to.
    fn add_device(&self, login: &Login) {
        assert_eq!(login.listener, Listener::Devices);
        let status = run_bounded(
            Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(self.dir.join("devices.passwd"))
                .args([&login.user, &login.password]),
        );
        assert!(status.success(), "mosquitto_passwd {}", login.user);
    }

    /// `mosquitto_pub` or `mosquitto_sub` logging in as `login`, at QoS 1.
    fn client(&self, program: &str, login: &Login) -> Command {
        let mut command = Command::new(program);
        command
            .args(["-h", "127.0.0.1", "-q", "1"])
            .args(["-p", &self.port(login.listener).to_string()])
            .args(["-u", &login.user, "-P", &login.password]);
        command
    }

    /// Publishes at QoS 1 as `login`; whether the broker let it connect.
    fn publish(&self, login: &Login, topic: &str, payload: &str, retain: bool) -> bool {
        let mut command = self.client("mosquitto_pub", login);
        command.args(["-t", topic, "-m", payload]);
        if retain {
            command.arg("-r");
        }
        run_bounded(&mut command).success()
    }

    /// Publishes as `login` under `client_id`; whether the broker let it
    /// connect.
    fn publish_as(&self, login: &Login, client_id: &str, topic: &str) -> bool {
        let mut command = self.client("mosquitto_pub", login);
        command.args(["-i", client_id, "-t", topic, "-m", "hello"]);
        run_bounded(&mut command).success()
    }

    /// Connects as `login` under `client_id` with a persistent session, as
    /// the ingester does, and returns once the broker accepted it.
    fn hold_session(&self, login: &Login, client_id: &str) -> Session {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", self.port(login.listener));
        options
            .set_credentials(&login.user, &login.password)
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(60));
        let (client, mut connection) = Client::new(options, 10);
        match connection.recv_timeout(RECEIVE_TIMEOUT) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack))))
                if ack.code == ConnectReturnCode::Success => {}
            other => panic!("{} could not connect: {other:?}", login.user),
        }
        Session {
            _client: client,
            connection,
        }
    }

    /// Subscribes as `login` to `filters` at QoS 1.
    fn subscribe(&self, login: &Login, filters: &[&str]) -> Subscriber {
        let mut command = self.client("mosquitto_sub", login);
        command.arg("-v");
        for filter in filters {
            command.args(["-t", filter]);
        }
        let (child, stdout) = ChildProcess::spawn_reading_stdout("mosquitto_sub", &mut command);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Subscriber {
            _child: child,
            lines,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An open MQTT connection holding a session.
struct Session {
    _client: Client,
    connection: Connection,
}

impl Session {
    /// Whether the broker closed this connection within a moment, as it
    /// does when another connection takes over the session's client id.
    fn was_closed(&mut self) -> bool {
        loop {
            match self.connection.recv_timeout(Duration::from_millis(500)) {
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) | Ok(Err(_)) => return true,
                Ok(Ok(_event)) => {}
            }
        }
    }
}

/// A running `mosquitto_sub -v`, killed when dropped.
struct Subscriber {
    /// Kills the subscriber when dropped.
    _child: ChildProcess,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    /// The next `topic payload` line, if one comes in time.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The next line, which must come.
    fn expect(&self) -> String {
        self.next(RECEIVE_TIMEOUT)
            .expect("an expected message did not arrive")
    }
}

fn reported(tenant: &str, device: &str) -> String {
    format!("tenant/{tenant}/device/{device}/shadow/reported")
}

fn desired(tenant: &str, device: &str) -> String {
    format!("tenant/{tenant}/device/{device}/shadow/desired")
}

/// The shipped example device and two more added as an operator would: a
/// neighbour in the same tenant and the same device id in another tenant.
fn devices(broker: &Broker) -> (Login, Login, Login) {
    let pump7 = Login::device("tenant/acme/device/pump-7", "change-me-device");
    let pump8 = Login::device("tenant/acme/device/pump-8", "pump-8-secret");
    let other_tenant = Login::device("tenant/globex/device/pump-7", "globex-secret");
    broker.add_device(&pump8);
    broker.add_device(&other_tenant);
    // The broker reads the password file at start and on SIGHUP.
    broker.child.signal("HUP");
    // A reload is asynchronous: wait until the new account logs in.
    eventually_blocking(RECEIVE_TIMEOUT, "the reloaded account logs in", || {
        broker.publish(&pump8, &reported("acme", "pump-8"), "hello", false)
    });
    (pump7, pump8, other_tenant)
}

#[test]
fn broker_config_loads_and_its_healthcheck_passes() {
    let broker = Broker::start();
    let compose = compose();
    let test = strings(
        &compose["services"]["mosquitto"]["healthcheck"]["test"],
        "mosquitto healthcheck",
    );
    assert_eq!(test[0], "CMD-SHELL");
    // Compose turns `$$` into `$` and the container has the variable.
    let script = test[1].replace("$$", "$").replace(
        &format!("-p {SERVICES_PORT}"),
        &format!("-p {}", broker.services_port),
    );
    let password = env_default(&compose, "mosquitto", "MQTT_HEALTHCHECK_PASSWORD");
    let check = |password: &str| {
        run_bounded(
            Command::new("sh")
                .args(["-c", &script])
                .env("MQTT_HEALTHCHECK_PASSWORD", password),
        )
        .success()
    };
    assert!(check(&password), "healthcheck failed:\n{}", broker.log());
    assert!(!check("wrong-password"));
}

#[test]
fn accounts_log_in_on_their_own_listener_and_strangers_nowhere() {
    let broker = Broker::start();
    let compose = compose();
    let (pump7, _, _) = devices(&broker);
    let topic = reported("acme", "pump-7");
    for service in ["api", "relay", "ingest"] {
        let login = mqtt_login(&compose, service);
        assert!(
            broker.publish(&login, "any/topic", "x", false),
            "{service} cannot log in with its compose default"
        );
        let wrong = Login {
            password: "wrong".to_owned(),
            ..login.clone()
        };
        assert!(!broker.publish(&wrong, "any/topic", "x", false));
        assert!(
            !broker.publish(&login.on(Listener::Devices), "any/topic", "x", false),
            "{service} has no account on the devices listener"
        );
    }
    assert!(broker.publish(&pump7, &topic, "x", false));
    assert!(
        !broker.publish(&pump7.on(Listener::Services), &topic, "x", false),
        "a device has no account on the services listener"
    );
    for port in [broker.devices_port, broker.services_port] {
        let anonymous = run_bounded(
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-t", &topic, "-m", "x"]),
        );
        assert!(!anonymous.success(), "anonymous clients are refused");
    }
}

/// MQTT closes the older connection of a client id when a new one
/// connects with it. On the devices listener the broker replaces every
/// client id by the username, so a device that sends the ingester's id, or
/// another device's, gets its own session and knocks nobody off.
#[test]
fn no_device_can_take_over_another_clients_session() {
    let broker = Broker::start();
    let compose = compose();
    let (pump7, pump8, _) = devices(&broker);
    let ingest = mqtt_login(&compose, "ingest");
    let ingest_id = env_default(&compose, "ingest", "SHADOWBOX_INGEST_CLIENT_ID");
    let mut ingester = broker.hold_session(&ingest, &ingest_id);
    let mut neighbour = broker.hold_session(&pump8, &pump8.user);

    for stolen in [ingest_id.as_str(), pump8.user.as_str()] {
        assert!(broker.publish_as(&pump7, stolen, &reported("acme", "pump-7")));
    }
    assert!(
        !ingester.was_closed(),
        "a device took over the ingester's session:\n{}",
        broker.log()
    );
    assert!(
        !neighbour.was_closed(),
        "a device took over another device's session:\n{}",
        broker.log()
    );

    // What the checks above would have seen: the account's own second
    // connection, whatever id it sends, does take its session over.
    assert!(broker.publish_as(&pump8, "any-id", &reported("acme", "pump-8")));
    assert!(neighbour.was_closed());
}

/// An MQTT 5 client learns the broker's receive maximum from its CONNACK:
/// the relay keeps at most that many publishes awaiting PUBACK, so it must
/// not shrink the relay's default window (nor the ingester's batch, which
/// `max_inflight_messages` also bounds towards a 3.1.1 ingester). A
/// persistent session with an expiry, as the ingester asks for, is
/// accepted.
#[test]
fn mqtt5_clients_get_room_for_the_relay_window_and_a_session_expiry() {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as V5Code;
    use rumqttc::v5::{Client as V5Client, Event as V5Event, MqttOptions as V5Options};

    let broker = Broker::start();
    let compose = compose();
    let window = shadowbox_relay::settings::DEFAULT_MAX_IN_FLIGHT;
    for service in ["relay", "ingest"] {
        let login = mqtt_login(&compose, service);
        let mut options =
            V5Options::new(format!("{service}-v5"), "127.0.0.1", broker.services_port);
        options
            .set_credentials(&login.user, &login.password)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(3600));
        let (_client, mut connection) = V5Client::new(options, 10);
        let ack = match connection.recv_timeout(RECEIVE_TIMEOUT) {
            Ok(Ok(V5Event::Incoming(rumqttc::v5::Incoming::ConnAck(ack)))) => ack,
            other => panic!("{service} could not connect over MQTT 5: {other:?}"),
        };
        assert_eq!(ack.code, V5Code::Success, "{service}");
        // Absent means the protocol's maximum, 65535.
        let receive_maximum = ack
            .properties
            .and_then(|p| p.receive_max)
            .map_or(usize::from(u16::MAX), usize::from);
        assert!(
            receive_maximum >= window && receive_maximum >= shadowbox_ingest::DEFAULT_BATCH_SIZE,
            "receive maximum {receive_maximum}, relay window {window}"
        );
    }
}

#[test]
fn devices_publish_only_their_own_reported_state() {
    let broker = Broker::start();
    let compose = compose();
    let (pump7, pump8, other_tenant) = devices(&broker);
    let (relay, ingest) = (
        mqtt_login(&compose, "relay"),
        mqtt_login(&compose, "ingest"),
    );
    let ingester = broker.subscribe(
        &ingest,
        &["$share/shadowbox/tenant/+/device/+/shadow/reported"],
    );
    // Nothing says when the subscription is in place: probe until it is.
    let own = reported("acme", "pump-7");
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    loop {
        assert!(broker.publish(&pump7, &own, "probe", false));
        if ingester.next(Duration::from_millis(200)).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "ingester never subscribed");
    }

    // Refused: another device's topic (same tenant, other tenant), the
    // device's own desired topic, and the relay writing reported state.
    assert!(broker.publish(&pump7, &reported("acme", "pump-8"), "forged", false));
    assert!(broker.publish(&pump7, &reported("globex", "pump-7"), "forged", false));
    assert!(broker.publish(&relay, &own, "forged", false));
    assert!(broker.publish(&ingest, &own, "forged", false));
    // Allowed, and sent after every refused one.
    assert!(broker.publish(&pump8, &reported("acme", "pump-8"), "own-8", false));
    assert!(broker.publish(&other_tenant, &reported("globex", "pump-7"), "own-g", false));
    assert!(broker.publish(&pump7, &own, "marker", false));

    let received: Vec<String> = std::iter::from_fn(|| Some(ingester.expect()))
        .filter(|line| !line.ends_with(" probe"))
        .take(3)
        .collect();
    assert_eq!(
        received,
        [
            format!("{} own-8", reported("acme", "pump-8")),
            format!("{} own-g", reported("globex", "pump-7")),
            format!("{own} marker"),
        ]
    );
    assert_eq!(ingester.next(Duration::from_millis(300)), None);
}

#[test]
fn devices_read_only_their_own_desired_state() {
    let broker = Broker::start();
    let compose = compose();
    let (pump7, pump8, _other_tenant) = devices(&broker);
    let relay = mqtt_login(&compose, "relay");
    let own = desired("acme", "pump-7");
    for (tenant, device) in [("acme", "pump-8"), ("globex", "pump-7"), ("acme", "pump-7")] {
        let payload = format!("for-{tenant}-{device}");
        assert!(broker.publish(&relay, &desired(tenant, device), &payload, true));
    }

    // Refused: a device writing desired state, its own or another's. Sent
    // retained, so a forgery that got through would be what a subscriber
    // gets next; and before subscribing, as a device's second connection
    // would take over its first (its client id is its username).
    assert!(broker.publish(&pump7, &own, "forged", true));
    assert!(broker.publish(&pump8, &own, "forged", true));

    // Even a wildcard subscription delivers only the device's own retained
    // desired state (retained messages are sent on subscribing).
    let device = broker.subscribe(&pump7, &["tenant/+/device/+/shadow/desired"]);
    assert_eq!(device.expect(), format!("{own} for-acme-pump-7"));
    // Not delivered: another device's live desired state.
    assert!(broker.publish(&relay, &desired("acme", "pump-8"), "live-8", false));
    assert!(broker.publish(&relay, &own, "marker", false));
    assert_eq!(device.expect(), format!("{own} marker"));
    assert_eq!(device.next(Duration::from_millis(300)), None);

    // The neighbour does get its own.
    let neighbour = broker.subscribe(&pump8, &[&desired("acme", "pump-8")]);
    assert_eq!(
        neighbour.expect(),
        format!("{} for-acme-pump-8", desired("acme", "pump-8"))
    );
}

/// A YAML file of the repository, parsed.
fn yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bind mounts of `service`: repository path, container path, and
/// whether the mount is read-only.
fn bind_mounts(compose: &Value, service: &str) -> Vec<(PathBuf, String, bool)> {
    strings(&compose["services"][service]["volumes"], "volumes")
        .iter()
        .filter(|volume| volume.starts_with("./"))
        .map(|volume| {
            let parts: Vec<&str> = volume.split(':').collect();
            (
                repo_file(parts[0]),
                parts[1].to_owned(),
                parts.get(2) == Some(&"ro"),
            )
        })
        .collect()
}

/// The repository file that `service` sees at `container_path`.
fn mounted_file(compose: &Value, service: &str, container_path: &str) -> PathBuf {
    bind_mounts(compose, service)
        .into_iter()
        .find_map(|(source, target, _)| {
            let rest = container_path.strip_prefix(target.as_str())?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| source.join(rest.trim_start_matches('/')))
        })
        .unwrap_or_else(|| {
            panic!("{service}: nothing of the repository is mounted at {container_path}")
        })
}

#[test]
fn prometheus_and_grafana_run_the_repository_files() {
    let compose = compose();
    for (service, official) in [
        ("prometheus", "prom/prometheus:"),
        ("grafana", "grafana/grafana:"),
    ] {
        let s = &compose["services"][service];
        let image = text(&s["image"], "image");
        let tag = image
            .strip_prefix(official)
            .unwrap_or_else(|| panic!("{service}: {image} is not {official}<version>"));
        assert!(
            tag.trim_start_matches('v')
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit())),
            "{service}: {image} is not pinned to a version"
        );
        let mounts = bind_mounts(&compose, service);
        assert!(!mounts.is_empty(), "{service} mounts its configuration");
        for (source, target, read_only) in &mounts {
            assert!(
                source.exists(),
                "{service}: {} is missing",
                source.display()
            );
            assert!(read_only, "{service}: {target} is not mounted read-only");
        }
        let ports = strings(&s["ports"], "ports");
        assert!(
            ports.iter().all(|p| p.starts_with("127.0.0.1:")),
            "{service}: ports on loopback only: {ports:?}"
        );
        let data = format!("{service}-data");
        assert!(compose["volumes"].get(data.as_str()).is_some(), "{data}");
    }

    let prometheus = strings(&compose["services"]["prometheus"]["command"], "command");
    let config = prometheus
        .iter()
        .find_map(|arg| arg.strip_prefix("--config.file="))
        .expect("prometheus --config.file");
    assert!(mounted_file(&compose, "prometheus", config).is_file());
    assert!(
        !prometheus
            .iter()
            .any(|arg| arg.starts_with("--web.listen-address")),
        "Prometheus listens on its default port, 9090"
    );

    assert!(
        env_default(&compose, "grafana", "GF_SECURITY_ADMIN_PASSWORD").starts_with("change-me")
    );
    let home = env_default(
        &compose,
        "grafana",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH",
    );
    assert!(mounted_file(&compose, "grafana", &home).is_file(), "{home}");
    let provisioning = mounted_file(&compose, "grafana", "/etc/grafana/provisioning");
    let datasources = yaml(&provisioning.join("datasources/prometheus.yml"));
    assert_eq!(
        text(&datasources["datasources"][0]["url"], "datasource url"),
        "http://prometheus:9090"
    );
    let providers = yaml(&provisioning.join("dashboards/shadowbox.yml"));
    let path = text(
        &providers["providers"][0]["options"]["path"],
        "provider path",
    );
    let dashboards = mounted_file(&compose, "grafana", path);
    assert!(dashboards.join("shadowbox.json").is_file(), "{path}");
}

#[test]
fn prometheus_scrapes_every_shadowbox_process_on_its_metrics_port() {
    let compose = compose();
    let config = yaml(&repo_file("deploy/prometheus/prometheus.yml"));
    // (host, port) of every shadowbox scrape target.
    let mut scraped = Vec::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        if !text(&job["job_name"], "job_name").starts_with("shadowbox-") {
            continue;
        }
        for group in job["static_configs"].as_sequence().into_iter().flatten() {
            for target in strings(&group["targets"], "targets") {
                let (host, port) = target.rsplit_once(':').expect("host:port");
                scraped.push((host.to_owned(), port.parse::<u16>().expect("port")));
            }
        }
        for discovery in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
            let port = discovery["port"].as_u64().expect("dns_sd port");
            for name in strings(&discovery["names"], "names") {
                scraped.push((name, u16::try_from(port).expect("port")));
            }
        }
    }

    // Every long-running shadowbox service, on the port of its metrics
    // listener (the API's own port when it has none).
    let services = compose["services"].as_mapping().expect("services");
    let mut expected = Vec::new();
    for (name, service) in services {
        let name = text(name, "service name");
        if service["image"].as_str() != Some("shadowbox:local") || name == "migrate" {
            continue;
        }
        let env = &service["environment"];
        let addr = ["SHADOWBOX_METRICS_ADDR", "SHADOWBOX_HTTP_ADDR"]
            .into_iter()
            .find(|var| env.get(*var).is_some())
            .map(|var| env_default(&compose, name, var))
            .unwrap_or_else(|| panic!("{name} serves no metrics: set SHADOWBOX_METRICS_ADDR"));
        let addr: std::net::SocketAddr = addr.parse().expect("listen address");
        assert!(
            addr.ip().is_unspecified(),
            "{name} listens on {addr}: Prometheus, in another container, cannot reach it"
        );
        expected.push((name.to_owned(), addr.port()));
    }
    scraped.sort();
    expected.sort();
    assert_eq!(scraped, expected);

    for rules in strings(&config["rule_files"], "rule_files") {
        assert!(
            repo_file("deploy/prometheus").join(&rules).is_file(),
            "{rules}"
        );
    }
}

#[test]
fn grafana_dashboards_are_well_formed() {
    let mut uids = Vec::new();
    for (file, dashboard) in dashboards() {
        uids.push(dashboard["uid"].as_str().expect("uid").to_owned());
        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("templating");
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{file}: a `datasource` variable choosing a Prometheus"
        );
        let mut ids = Vec::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            ids.push(
                panel["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{file}: {title}: no id")),
            );
            let grid = &panel["gridPos"];
            let (x, w, h) = (grid["x"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
            assert!(
                matches!((x, w, h), (Some(x), Some(w), Some(h)) if w > 0 && h > 0 && x + w <= 24),
                "{file}: {title}: gridPos {grid}"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}: {title}"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: {title}: no query");
            let mut ref_ids: Vec<&str> = targets
                .iter()
                .map(|t| {
                    assert_eq!(t["datasource"]["uid"], "${datasource}", "{file}: {title}");
                    assert!(
                        t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                        "{file}: {title}: empty query"
                    );
                    t["refId"].as_str().expect("refId")
                })
                .collect();
            let queries = ref_ids.len();
            ref_ids.sort_unstable();
            ref_ids.dedup();
            assert_eq!(ref_ids.len(), queries, "{file}: {title}: refIds repeat");
        }
        let panels = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), panels, "{file}: panel ids repeat");
    }
    let dashboards = uids.len();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), dashboards, "dashboard uids repeat");
}

#[test]
fn rules_and_dashboards_name_only_exported_metrics() {
    let mut files: Vec<(String, String)> = [
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/alerts.test.yml",
    ]
    .iter()
    .map(|f| {
        (
            (*f).to_owned(),
            std::fs::read_to_string(repo_file(f)).expect("read"),
        )
    })
    .collect();
    files.extend(
        dashboards()
            .into_iter()
            .map(|(file, d)| (file, d.to_string())),
    );
    let mut used = 0;
    for (file, text) in &files {
        for name in metric_names(text) {
            used += 1;
            assert!(
                exported(name),
                "{file}: {name} is not a metric shadowbox exports"
            );
        }
    }
    assert!(used > 0, "no metric names found: the scan is broken");
    assert!(!exported("shadowbox_relay_conected"));
    assert!(!exported("shadowbox_relay_connected_bucket"));
}

/// Every dashboard in `deploy/grafana/dashboards`, with its file name.
fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = repo_file("deploy/grafana/dashboards");
    let mut dashboards: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .expect("dashboards folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read dashboard");
            let file = path.display().to_string();
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            (file, value)
        })
        .collect();
    assert!(!dashboards.is_empty(), "no dashboards in {}", dir.display());
    dashboards.sort_by(|a, b| a.0.cmp(&b.0));
    dashboards
}

/// Every panel of `dashboard`, including those inside rows.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// The words of `text` that look like shadowbox metric names.
fn metric_names(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("shadowbox_"))
}

/// The metrics shadowbox exports, as Prometheus stores them (counters end
/// in `_total`), and whether each is a histogram.
const EXPORTED_METRICS: &[(&str, bool)] = &[
    ("shadowbox_api_request_duration_seconds", true),
    ("shadowbox_api_requests_total", false),
    ("shadowbox_events_streams", false),
    ("shadowbox_events_streams_closed_total", false),
    ("shadowbox_ingest_apply_seconds", true),
    ("shadowbox_ingest_batch_size", true),
    ("shadowbox_ingest_commit_to_applied_seconds", true),
    ("shadowbox_ingest_db_retries_total", false),
    ("shadowbox_ingest_invalid_messages_total", false),
    ("shadowbox_ingest_lag_seconds", true),
    ("shadowbox_ingest_messages_total", false),
    ("shadowbox_ingest_pending_messages", false),
    ("shadowbox_ingest_rejections_total", false),
    ("shadowbox_ingest_subscribed", false),
    ("shadowbox_reconcile_differences_total", false),
    ("shadowbox_reconcile_last_pass_timestamp_seconds", false),
    ("shadowbox_reconcile_passes_total", false),
    ("shadowbox_relay_commit_to_puback_seconds", true),
    ("shadowbox_relay_connected", false),
    ("shadowbox_relay_dead_rows", false),
    ("shadowbox_relay_dead_total", false),
    ("shadowbox_relay_delivered_total", false),
    ("shadowbox_relay_failed_total", false),
    ("shadowbox_relay_oldest_pending_age_seconds", false),
    ("shadowbox_relay_pending_rows", false),
    ("shadowbox_relay_publish_to_puback_seconds", true),
    ("shadowbox_relay_superseded_total", false),
    ("shadowbox_rollout_devices_skipped_total", false),
    ("shadowbox_rollout_devices_written_total", false),
    ("shadowbox_rollouts", false),
];

/// Whether `name` is a series shadowbox exports: a metric, or a
/// histogram's `_bucket`, `_sum` or `_count`.
fn exported(name: &str) -> bool {
    EXPORTED_METRICS.iter().any(|&(metric, histogram)| {
        name == metric
            || (histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(metric)))
    })
}

/// The relay's reconcile reads end with a sentinel it publishes to itself
/// (`shadowbox/reconcile/<random>`): its account may publish and read it,
/// besides reading back every device's retained desired state.
#[test]
fn the_relay_reads_back_desired_state_and_its_reconcile_sentinel() {
    let broker = Broker::start();
    let compose = compose();
    let relay = mqtt_login(&compose, "relay");
    assert!(broker.publish(&relay, &desired("acme", "pump-7"), "state-7", true));
    let reader = broker.subscribe(
        &relay,
        &[
            "tenant/acme/device/+/shadow/desired",
            "shadowbox/reconcile/abc",
        ],
    );
    assert_eq!(
        reader.expect(),
        format!("{} state-7", desired("acme", "pump-7"))
    );
    assert!(broker.publish(&relay, "shadowbox/reconcile/abc", "1", false));
    assert_eq!(reader.expect(), "shadowbox/reconcile/abc 1");
}
