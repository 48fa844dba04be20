//! What a shadowbox process is told about its brokers: the list of
//! `MQTT_URL`, the protocol version (`SHADOWBOX_MQTT_PROTOCOL`), TLS files
//! and the password file. Everything is read once, at start, so a mistake
//! stops the process before it runs; a broker that cannot be reached
//! never does.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::address::{AddressError, BrokerAddress, Transport, parse_list};
use crate::tls::{TlsError, TlsFiles};

/// The MQTT protocol version spoken to every broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// MQTT 5: PUBACK reason codes, receive maximum, session expiry.
    #[default]
    V5,
    /// MQTT 3.1.1, for brokers that do not speak 5 (NATS).
    V311,
}

impl Protocol {
    /// Both versions, for tests that run under each.
    pub const ALL: [Protocol; 2] = [Protocol::V5, Protocol::V311];
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V5 => "5",
            Self::V311 => "3.1.1",
        })
    }
}

/// An unknown `SHADOWBOX_MQTT_PROTOCOL`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown MQTT protocol {0:?}: use 5 or 3.1.1")]
pub struct ProtocolError(String);

impl FromStr for Protocol {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "5" | "5.0" => Ok(Self::V5),
            "3.1.1" => Ok(Self::V311),
            other => Err(ProtocolError(other.to_owned())),
        }
    }
}

/// A password, never printed.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why the broker configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `MQTT_URL` is malformed.
    #[error("MQTT_URL: {0}")]
    Address(#[from] AddressError),
    /// A TLS file is missing or unusable.
    #[error("MQTT TLS: {0}")]
    Tls(#[from] TlsError),
    /// The password file cannot be read or is empty.
    #[error("SHADOWBOX_MQTT_PASSWORD_FILE {path}: {reason}")]
    PasswordFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A password without a user name to go with it.
    #[error("a password needs a user name in MQTT_URL (mqtt://user@host)")]
    PasswordWithoutUser,
    /// A password both in the URL and in the file.
    #[error("the MQTT password is given twice: in MQTT_URL and in SHADOWBOX_MQTT_PASSWORD_FILE")]
    PasswordTwice,
}

/// Every broker this process may use and how to reach them. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    /// The brokers, in the order they are tried.
    pub brokers: Arc<[BrokerAddress]>,
    /// The protocol version.
    pub protocol: Protocol,
    password: Option<Secret>,
    tls: Option<Arc<ClientConfig>>,
}

impl MqttConfig {
    /// Reads the configuration: `urls` is `MQTT_URL`, the files those of
    /// `SHADOWBOX_MQTT_*_FILE`. TLS is set up only when a URL is
    /// `mqtts://` or a TLS file is given.
    pub fn load(
        urls: &str,
        protocol: Protocol,
        tls: &TlsFiles,
        password_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let brokers = parse_list(urls)?;
        let file_password = password_file.map(read_password).transpose()?;
        let url_password = brokers.iter().find_map(|b| b.url_password.clone());
        let password = match (file_password, url_password) {
            (Some(_), Some(_)) => return Err(ConfigError::PasswordTwice),
            (from_file, from_url) => from_file.or(from_url).map(Secret),
        };
        if password.is_some() && brokers.iter().all(|b| b.user.is_none()) {
            return Err(ConfigError::PasswordWithoutUser);
        }
        let wants_tls = tls.any() || brokers.iter().any(|b| b.transport == Transport::Tls);
        let tls = wants_tls.then(|| tls.client_config()).transpose()?;
        Ok(Self {
            brokers: brokers.into(),
            protocol,
            password,
            tls,
        })
    }

    /// The same brokers, spoken to in `protocol`.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The user name and password to log in to `broker` with, if any.
    pub(crate) fn credentials(&self, broker: &BrokerAddress) -> Option<(String, String)> {
        let user = broker.user.clone()?;
        let password = self.password.as_ref().map(|p| p.0.clone());
        Some((user, password.unwrap_or_default()))
    }

    /// The TLS configuration, for `mqtts://` brokers.
    pub(crate) fn tls(&self) -> Option<Arc<ClientConfig>> {
        self.tls.clone()
    }

    /// The brokers, for logs: `mqtt://a:1883,mqtts://b:8883`.
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self.brokers.iter().map(ToString::to_string).collect();
        shown.join(",")
    }
}

/// `MQTT_URL` alone: MQTT 5, the system's roots for `mqtts://`, the
/// password (if any) from the URL.
impl FromStr for MqttConfig {
    type Err = ConfigError;

    fn from_str(urls: &str) -> Result<Self, Self::Err> {
        Self::load(urls, Protocol::default(), &TlsFiles::default(), None)
    }
}

fn read_password(path: &Path) -> Result<String, ConfigError> {
    let error = |reason: String| ConfigError::PasswordFile {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(error("the file is empty".to_owned()));
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn protocol_names() {
        assert_eq!("5".parse(), Ok(Protocol::V5));
        assert_eq!("3.1.1".parse(), Ok(Protocol::V311));
        assert!("4".parse::<Protocol>().is_err());
        assert_eq!(Protocol::V311.to_string(), "3.1.1");
    }

    #[test]
    fn the_password_comes_from_its_file_and_is_never_shown() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "hunter2").unwrap();
        let config = MqttConfig::load(
            "mqtt://relay@a:1,mqtt://relay@b:2",
            Protocol::V5,
            &TlsFiles::default(),
            Some(file.path()),
        )
        .unwrap();
        assert_eq!(
            config.credentials(&config.brokers[1]),
            Some(("relay".to_owned(), "hunter2".to_owned()))
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.describe(), "mqtt://a:1,mqtt://b:2");
    }

    #[test]
    fn refuses_a_password_it_cannot_use() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "pw").unwrap();
        let load = |urls: &str| {
            MqttConfig::load(urls, Protocol::V5, &TlsFiles::default(), Some(file.path()))
        };
        assert!(matches!(
            load("mqtt://a:1"),
            Err(ConfigError::PasswordWithoutUser)
        ));
        assert!(matches!(
            load("mqtt://u:x@a:1"),
            Err(ConfigError::PasswordTwice)
        ));
        let empty = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            MqttConfig::load(
                "mqtt://u@a",
                Protocol::V5,
                &TlsFiles::default(),
                Some(empty.path())
            ),
            Err(ConfigError::PasswordFile { .. })
        ));
    }
}
