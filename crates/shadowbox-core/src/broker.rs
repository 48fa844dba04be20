//! The broker address of `MQTT_URL`: `mqtt://host[:port]`, optionally with
//! `user[:password]@` credentials.

use std::fmt;

/// Where the MQTT broker is and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 1883).
    pub port: u16,
    /// Username and password, if the URL carries them.
    pub credentials: Option<(String, String)>,
}

// Never print the password.
impl fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

/// Why an `MQTT_URL` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerAddressError {
    /// Only plain `mqtt://` is built in.
    #[error(
        "unsupported scheme {0:?}: use mqtt://host:port (TLS: terminate it in front of the broker or a sidecar)"
    )]
    Scheme(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The port is not a number.
    #[error("invalid port {0:?}")]
    Port(String),
}

impl std::str::FromStr for BrokerAddress {
    type Err = BrokerAddressError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("mqtt", url));
        if !matches!(scheme, "mqtt" | "tcp") {
            return Err(BrokerAddressError::Scheme(scheme.to_owned()));
        }
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((user.to_owned(), password.to_owned())), hostport)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| BrokerAddressError::Port(port.to_owned()))?,
            ),
            None => (hostport, 1883),
        };
        if host.is_empty() {
            return Err(BrokerAddressError::NoHost);
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_in_use() {
        let plain: BrokerAddress = "mqtt://127.0.0.1:1883".parse().unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.credentials),
            ("127.0.0.1", 1883, None)
        );
        let default_port: BrokerAddress = "mqtt://broker".parse().unwrap();
        assert_eq!(default_port.port, 1883);
        let with_login: BrokerAddress = "mqtt://relay:s3cret@broker:1884".parse().unwrap();
        assert_eq!(
            with_login.credentials,
            Some(("relay".to_owned(), "s3cret".to_owned()))
        );
        assert!(!format!("{with_login:?}").contains("s3cret"));
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert!(matches!(
            "mqtts://b:8883".parse::<BrokerAddress>(),
            Err(BrokerAddressError::Scheme(_))
        ));
        assert!(matches!(
            "mqtt://:1883".parse::<BrokerAddress>(),
            Err(BrokerAddressError::NoHost)
        ));
        assert!(matches!(
            "mqtt://b:x".parse::<BrokerAddress>(),
            Err(BrokerAddressError::Port(_))
        ));
    }
}
