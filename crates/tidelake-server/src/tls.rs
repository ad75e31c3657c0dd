//! TLS for every front end when the server is given a certificate
//! (`tidelake serve --tls-cert FILE --tls-key FILE`): PostgreSQL (after the
//! client's SSLRequest, `pg/tls.rs`), HTTP and Arrow Flight SQL (TLS from
//! the first byte, `net.rs`). With a certificate TLS is required on every
//! port: a client without it is refused with a message saying so.
//!
//! rustls with the *ring* provider, and nothing more: rustls is shared with
//! `object_store` (through reqwest), and any feature added to it (pgwire's
//! and tonic's TLS features add `logging` or another provider) would
//! rebuild it and everything above it, DataFusion included. So the
//! handshakes use tokio-rustls with the features the tree already has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::ServerError;

/// Where the server's certificate chain and private key are (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The server's TLS configuration, loaded once at start.
#[derive(Clone)]
pub(crate) struct Tls {
    config: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// Reads and checks the certificate and key; any problem stops the
    /// server from starting.
    pub(crate) fn load(files: &TlsFiles) -> Result<Tls, ServerError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| tls_error(&files.cert, format!("no certificate read: {e}")))?;
        if certs.is_empty() {
            return Err(tls_error(&files.cert, "the file holds no PEM certificate"));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| tls_error(&files.key, format!("no private key read: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| {
                tls_error(
                    &files.key,
                    format!("the certificate and key do not make a TLS configuration: {e}"),
                )
            })?;
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    /// An acceptor offering the application protocols `alpn` (gRPC needs
    /// `h2`; PostgreSQL negotiates none).
    pub(crate) fn acceptor(&self, alpn: &[&[u8]]) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }
}

fn tls_error(path: &Path, message: impl Into<String>) -> ServerError {
    ServerError::Tls {
        path: path.to_path_buf(),
        message: message.into(),
    }
}
