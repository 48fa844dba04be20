//! The brokers of `MQTT_URL`: one or several `mqtt://` or `mqtts://` URLs,
//! comma-separated, each optionally naming the user to log in as.

use std::fmt;
use std::str::FromStr;

/// How the bytes travel to a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (`mqtt://`, default port 1883).
    Plain,
    /// TLS over TCP (`mqtts://`, default port 8883).
    Tls,
}

/// One broker: where it is and who logs in.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Plain or TLS.
    pub transport: Transport,
    /// Host name or IP address; a TLS certificate must name it.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The user name of `mqtt://user@host`, if any.
    pub user: Option<String>,
    /// A password written in the URL (`user:password@`), still accepted
    /// for compatibility; `SHADOWBOX_MQTT_PASSWORD_FILE` is the way to go.
    pub(crate) url_password: Option<String>,
}

// Never print the password.
impl fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish()
    }
}

/// `mqtt://host:port` or `mqtts://host:port`: what logs and `/readyz` show.
impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Plain => "mqtt",
            Transport::Tls => "mqtts",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Why an `MQTT_URL` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Neither `mqtt://` nor `mqtts://`.
    #[error("unsupported scheme {0:?}: use mqtt://host[:port] or mqtts://host[:port]")]
    Scheme(String),
    /// The URL has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The port is not a number.
    #[error("invalid port {0:?}")]
    Port(String),
    /// The list holds no URL at all.
    #[error("no broker URL given")]
    Empty,
}

impl FromStr for BrokerAddress {
    type Err = AddressError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").unwrap_or(("mqtt", url));
        let (transport, default_port) = match scheme {
            "mqtt" | "tcp" => (Transport::Plain, 1883),
            "mqtts" | "ssl" => (Transport::Tls, 8883),
            other => return Err(AddressError::Scheme(other.to_owned())),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let (user, url_password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
                None => (Some(info.to_owned()), None),
            },
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(AddressError::NoHost);
        }
        Ok(Self {
            transport,
            host: host.to_owned(),
            port: port.unwrap_or(default_port),
            user: user.filter(|u| !u.is_empty()),
            url_password: url_password.filter(|p| !p.is_empty()),
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), AddressError> {
    let parse_port = |port: &str| {
        port.parse()
            .map(Some)
            .map_err(|_| AddressError::Port(port.to_owned()))
    };
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(AddressError::NoHost)?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, parse_port(port)?)),
            None if after.is_empty() => Ok((host, None)),
            None => Err(AddressError::Port(after.to_owned())),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Ok((host, parse_port(port)?)),
        None => Ok((hostport, None)),
    }
}

/// Parses a comma-separated list of broker URLs, in the order they are
/// tried.
pub fn parse_list(urls: &str) -> Result<Vec<BrokerAddress>, AddressError> {
    let brokers = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<BrokerAddress>, _>>()?;
    if brokers.is_empty() {
        return Err(AddressError::Empty);
    }
    Ok(brokers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_in_use() {
        let plain: BrokerAddress = "mqtt://127.0.0.1:1883".parse().unwrap();
        assert_eq!(
            (plain.transport, plain.host.as_str(), plain.port, plain.user),
            (Transport::Plain, "127.0.0.1", 1883, None)
        );
        let tls: BrokerAddress = "mqtts://relay@broker.example".parse().unwrap();
        assert_eq!(
            (tls.transport, tls.port, tls.user.as_deref()),
            (Transport::Tls, 8883, Some("relay"))
        );
        assert_eq!(tls.to_string(), "mqtts://broker.example:8883");
        let legacy: BrokerAddress = "mqtt://relay:s3cret@broker:1884".parse().unwrap();
        assert_eq!(legacy.url_password.as_deref(), Some("s3cret"));
        assert!(!format!("{legacy:?}").contains("s3cret"));
        assert!(!legacy.to_string().contains("s3cret"));
        let v6: BrokerAddress = "mqtt://[::1]:1999".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1999));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1999");
    }

    #[test]
    fn a_list_keeps_its_order() {
        let list = parse_list("mqtt://a:1, mqtts://b:2 ,mqtt://c").unwrap();
        let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["mqtt://a:1", "mqtts://b:2", "mqtt://c:1883"]);
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert!(matches!(
            "ws://b:8883".parse::<BrokerAddress>(),
            Err(AddressError::Scheme(_))
        ));
        assert!(matches!(
            "mqtt://:1883".parse::<BrokerAddress>(),
            Err(AddressError::NoHost)
        ));
        assert!(matches!(
            "mqtt://b:x".parse::<BrokerAddress>(),
            Err(AddressError::Port(_))
        ));
        assert_eq!(parse_list(" , "), Err(AddressError::Empty));
    }
}
