//! Certificates made at test time (never committed): a CA, a server
//! certificate for `localhost` and 127.0.0.1, a client certificate for
//! mutual TLS, and an unrelated CA that must not be trusted.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files of a throw-away public key infrastructure, in a temp dir that
/// lives as long as this value.
pub struct TestPki {
    /// The CA that signed the server and client certificates.
    pub ca_file: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca_file: PathBuf,
    /// The broker's certificate (`localhost`, 127.0.0.1).
    pub server_cert_file: PathBuf,
    /// Its key.
    pub server_key_file: PathBuf,
    /// A client certificate for mutual TLS.
    pub client_cert_file: PathBuf,
    /// Its key.
    pub client_key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates every certificate and key.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca_pem, ca) = certificate_authority("shadowbox test CA");
        let (other_pem, _) = certificate_authority("someone else's CA");
        let write = |name: &str, pem: &str| -> PathBuf {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        let (server_cert, server_key) = leaf(&ca, &["localhost", "127.0.0.1"], "broker");
        let (client_cert, client_key) = leaf(&ca, &[], "shadowbox-relay");
        Self {
            ca_file: write("ca.pem", &ca_pem),
            other_ca_file: write("other-ca.pem", &other_pem),
            server_cert_file: write("server.pem", &server_cert),
            server_key_file: write("server.key", &server_key),
            client_cert_file: write("client.pem", &client_cert),
            client_key_file: write("client.key", &client_key),
            _dir: dir,
        }
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(ca: &Issuer<'_, KeyPair>, names: &[&str], common_name: &str) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("signed leaf");
    (cert.pem(), key.serialize_pem())
}
