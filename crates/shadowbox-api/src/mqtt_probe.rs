//! A minimal MQTT 3.1.1 CONNECT/CONNACK over TCP: proves the broker is up
//! and accepts our credentials, without an event loop to run or to stop.

use std::time::Duration;

use shadowbox_core::broker::BrokerAddress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why the broker is not reachable.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No CONNACK within the timeout.
    #[error("no CONNACK within {0:?}")]
    Timeout(Duration),
    /// TCP failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The broker answered something other than a CONNACK.
    #[error("unexpected reply {0:#04x} instead of a CONNACK")]
    NotConnack(u8),
    /// The broker refused the connection (bad credentials, not authorized).
    #[error("the broker refused the connection with return code {0}")]
    Refused(u8),
}

/// Connects to `broker`, sends CONNECT (clean session, random client id,
/// the URL's credentials), waits for a successful CONNACK and disconnects.
pub async fn probe(broker: &BrokerAddress, timeout: Duration) -> Result<(), ProbeError> {
    tokio::time::timeout(timeout, exchange(broker))
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

async fn exchange(broker: &BrokerAddress) -> Result<(), ProbeError> {
    let mut stream = TcpStream::connect((broker.host.as_str(), broker.port)).await?;
    stream.write_all(&connect_packet(broker)).await?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await?;
    if connack[0] != 0x20 || connack[1] != 2 {
        return Err(ProbeError::NotConnack(connack[0]));
    }
    if connack[3] != 0 {
        return Err(ProbeError::Refused(connack[3]));
    }
    // DISCONNECT, so the broker logs a clean goodbye.
    stream.write_all(&[0xE0, 0x00]).await?;
    Ok(())
}

fn connect_packet(broker: &BrokerAddress) -> Vec<u8> {
    // A client id of at most 23 characters, which every broker accepts.
    let client_id = format!(
        "sbready-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..15]
    );
    let mut flags = 0x02; // clean session
    let mut payload = Vec::new();
    put_str(&mut payload, &client_id);
    if let Some((user, password)) = &broker.credentials {
        flags |= 0x80;
        put_str(&mut payload, user);
        if !password.is_empty() {
            flags |= 0x40;
            put_str(&mut payload, password);
        }
    }
    let mut body = Vec::new();
    put_str(&mut body, "MQTT");
    body.extend_from_slice(&[4, flags, 0, 10]); // level 4 (3.1.1), flags, keep-alive 10 s
    body.extend_from_slice(&payload);
    let mut packet = vec![0x10];
    let mut remaining = body.len();
    loop {
        let byte = (remaining % 128) as u8;
        remaining /= 128;
        packet.push(if remaining > 0 { byte | 0x80 } else { byte });
        if remaining == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("MQTT strings are at most 65535 bytes");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packet_layout() {
        let broker: BrokerAddress = "mqtt://u:p@h:1".parse().unwrap();
        let packet = connect_packet(&broker);
        // type, remaining length, then "MQTT", level 4, user+password+clean.
        assert_eq!(packet[0], 0x10);
        assert_eq!(packet[1] as usize, packet.len() - 2);
        assert_eq!(&packet[2..10], b"\x00\x04MQTT\x04\xC2");
        assert!(packet.ends_with(b"\x00\x01u\x00\x01p"));
    }

    #[test]
    fn long_packets_use_a_multi_byte_length() {
        let password = "p".repeat(200);
        let broker: BrokerAddress = format!("mqtt://u:{password}@h:1").parse().unwrap();
        let packet = connect_packet(&broker);
        let len = (packet[1] & 0x7F) as usize + 128 * packet[2] as usize;
        assert!(packet[1] & 0x80 != 0);
        assert_eq!(len, packet.len() - 3);
    }
}
