//! [`TlsConfig`]: HTTPS endpoints (feature `tls`, rustls with the ring provider).
//!
//! The client checks a node's certificate as any HTTPS client does, against the CAs it is
//! given and the host name of the endpoint (an IP address must be among the certificate's IP
//! names). A raft-kv node serves its client API on the peers' listener: give its certificate
//! the names clients use, or give the node a second certificate for clients (see
//! `raft_kv::tls`). No client certificate is sent unless a custom rustls configuration has one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::Error;

/// How HTTPS endpoints are verified.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks).
    ///
    /// # Errors
    /// [`Error::Config`] when `pem` holds no usable certificate.
    pub fn with_ca_pem(pem: &[u8]) -> Result<TlsConfig, Error> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate =
                certificate.map_err(|e| Error::Config(format!("CA certificates: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::Config("no CA certificate in the PEM".to_owned()));
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConfig::from_rustls(Arc::new(config)))
    }

    /// Trusts the CA certificates of the PEM file at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read or holds no usable certificate.
    pub fn with_ca_file(path: impl AsRef<Path>) -> Result<TlsConfig, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        TlsConfig::with_ca_pem(&pem)
    }

    /// A rustls configuration of your own (roots, client certificate, ...). Its ALPN protocols
    /// are replaced by the one of the client's [`Protocol`](crate::Protocol).
    #[must_use]
    pub fn from_rustls(config: Arc<ClientConfig>) -> TlsConfig {
        TlsConfig { config }
    }

    /// The connector offering only `alpn` (`h2` or `http/1.1`).
    pub(crate) fn connector(&self, alpn: &[u8]) -> Connector {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Connector {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }
}

/// rustls's `ring` provider (it builds with a C compiler alone). rustls 0.23.48 deprecated it
/// for lacking post-quantum key exchange; [`TlsConfig::from_rustls`] takes a configuration with
/// any other provider.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes TLS handshakes for one HTTP version.
#[derive(Clone)]
pub(crate) struct Connector {
    connector: TlsConnector,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// The TLS handshake with `host` on `stream`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_certificates_is_refused() {
        assert!(matches!(
            TlsConfig::with_ca_pem(b"not a pem"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            TlsConfig::with_ca_file("/nonexistent/ca.pem"),
            Err(Error::Config(_))
        ));
    }
}
