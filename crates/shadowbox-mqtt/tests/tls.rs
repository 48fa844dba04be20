//! `mqtts://` against a private Mosquitto with a TLS listener and
//! certificates made for the test: the server certificate is verified
//! (a wrong CA fails at once with a clear reason), and mutual TLS works.

use std::time::Duration;

use shadowbox_mqtt::{MqttConfig, Protocol, TlsFiles, probe::probe};
use shadowbox_testkit::tls::TestPki;
use shadowbox_testkit::{Mosquitto, MosquittoConfig, MosquittoTls};

fn broker(pki: &TestPki, require_client_certificate: bool) -> Mosquitto {
    Mosquitto::start_with(MosquittoConfig {
        tls: Some(MosquittoTls {
            ca_file: pki.ca_file.clone(),
            cert_file: pki.server_cert_file.clone(),
            key_file: pki.server_key_file.clone(),
            require_client_certificate,
        }),
        ..MosquittoConfig::default()
    })
}

fn config(url: &str, protocol: Protocol, tls: TlsFiles) -> MqttConfig {
    MqttConfig::load(url, protocol, &tls, None).unwrap()
}

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_server_certificate_is_verified() {
    let pki = TestPki::generate();
    let broker = broker(&pki, false);
    let url = broker.tls_url().unwrap();
    for protocol in Protocol::ALL {
        let trusted = config(
            &url,
            protocol,
            TlsFiles {
                ca_file: Some(pki.ca_file.clone()),
                ..TlsFiles::default()
            },
        );
        probe(&trusted, &trusted.brokers[0], PATIENCE)
            .await
            .unwrap();

        let wrong = config(
            &url,
            protocol,
            TlsFiles {
                ca_file: Some(pki.other_ca_file.clone()),
                ..TlsFiles::default()
            },
        );
        let started = std::time::Instant::now();
        let error = probe(&wrong, &wrong.brokers[0], PATIENCE)
            .await
            .unwrap_err();
        assert!(error.0.contains("UnknownIssuer"), "{protocol}: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a clear error, not a hang"
        );
    }
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = TestPki::generate();
    let broker = broker(&pki, true);
    let url = broker.tls_url().unwrap();
    let without = config(
        &url,
        Protocol::V5,
        TlsFiles {
            ca_file: Some(pki.ca_file.clone()),
            ..TlsFiles::default()
        },
    );
    assert!(
        probe(&without, &without.brokers[0], PATIENCE)
            .await
            .is_err()
    );
    let with = config(
        &url,
        Protocol::V5,
        TlsFiles {
            ca_file: Some(pki.ca_file.clone()),
            client_cert_file: Some(pki.client_cert_file.clone()),
            client_key_file: Some(pki.client_key_file.clone()),
        },
    );
    probe(&with, &with.brokers[0], PATIENCE).await.unwrap();
}
