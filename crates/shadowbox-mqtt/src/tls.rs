//! The rustls client configuration of `mqtts://` connections: the trust
//! anchors (`SHADOWBOX_MQTT_CA_FILE`, else the system's roots) and, for
//! mutual TLS, a client certificate and key. Always the ring provider.
//!
//! rumqttc is built with `use-rustls-no-provider` and always handed this
//! finished configuration (`TlsConfiguration::Rustls`), so the server's
//! certificate is verified by rustls itself (its `rustls-webpki` 0.103).
//! rumqttc's own set-up (`TlsConfiguration::Simple`, `Default`) is never
//! used: the `rustls-webpki` 0.102 it links serves only as an error type
//! there, and `rustls-pemfile` only parses PEM on that unused path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files a TLS connection is set up from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM trust anchors; the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the broker (mutual TLS).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub client_key_file: Option<PathBuf>,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No trust anchor at all.
    #[error("no trusted root certificate: the system has none ({0}); set SHADOWBOX_MQTT_CA_FILE")]
    NoRoots(String),
    /// A client certificate without its key, or the reverse.
    #[error(
        "mutual TLS needs both SHADOWBOX_MQTT_CLIENT_CERT_FILE and SHADOWBOX_MQTT_CLIENT_KEY_FILE"
    )]
    HalfIdentity,
    /// rustls refused the configuration (e.g. a key that does not match).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsFiles {
    /// Builds the client configuration, reading every file now so that a
    /// mistake is reported at start, not at the first connection.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let (added, _) = roots.add_parsable_certificates(read_certs(path)?);
                if added == 0 {
                    return Err(file_error(path, "no usable CA certificate"));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    let why = native
                        .errors
                        .first()
                        .map_or_else(|| "none found".to_owned(), ToString::to_string);
                    return Err(TlsError::NoRoots(why));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert)?;
                if chain.is_empty() {
                    return Err(file_error(cert, "no certificate in the file"));
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| file_error(key, &format!("no usable private key: {e}")))?;
                builder.with_client_auth_cert(chain, key)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::HalfIdentity),
        };
        Ok(Arc::new(config))
    }

    /// Whether any TLS file is set.
    pub fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| file_error(path, &e.to_string()))
}

fn file_error(path: &Path, reason: &str) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}
