//! TLS for a raft-kv node: mutual TLS between the peers and TLS for the client API, on the one
//! listener, through raft-http's rustls configurations (see `raft_http::tls`).
//!
//! - **Peers.** The node presents its certificate, which must name it: the DNS name
//!   `node-<id>.<cluster-id>` ([`node_name`]), with the extended key usages `serverAuth` and
//!   `clientAuth`, signed by the peers' CA. It dials every peer in TLS and accepts only the
//!   certificate of the node it dials; its Raft routes refuse a request without a client
//!   certificate (401) or whose sender the certificate does not name (403).
//! - **Clients** of the API share the listener (HTTP/1.1 or HTTP/2 by ALPN). They need no
//!   certificate (the handshake asks for one but does not require it; one sent must chain to
//!   the peers' CA). They verify the server's certificate as any HTTPS client does: give the
//!   node certificate the names clients use too (`DNS:kv-1.example.com`, `IP:10.0.0.1`), or
//!   give the node a second certificate for them ([`TlsOptions::with_client_certificate`]),
//!   say from a public CA: peers ask for `node-<id>.<cluster-id>` by SNI and get the node's,
//!   every other client gets the second one.
//! - **Reload.** Every file is read again on [`TlsReloader::reload`] (the `serve` command does it
//!   on SIGHUP) and, with a [`TlsOptions::reload_interval`], whenever a file's contents change.
//!   New connections use the new certificates; a failed reload keeps the ones in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft_core::NodeId;
use raft_http::tls::{ClientAuth, ClientTls, ServerTls, node_name};
use raft_http::{TlsFiles, TlsReloader};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::Error;

/// How often the certificate files are checked for changes by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// A node's TLS files and how they are kept current. `#[non_exhaustive]`: start from
/// [`TlsOptions::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The peers' CA, and this node's certificate (naming `node-<id>.<cluster-id>`) and key.
    pub files: TlsFiles,
    /// A second certificate chain and key for the API clients, chosen when a client does not
    /// ask for the node's name by SNI (`None`: everyone gets the node's certificate).
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// Check the files this often and reload when they change (`None`: only on
    /// [`TlsReloader::reload`]).
    pub reload_interval: Option<Duration>,
}

impl TlsOptions {
    /// The peers' CA, this node's certificate and key; files checked every
    /// [`DEFAULT_RELOAD_INTERVAL`].
    #[must_use]
    pub fn new(
        ca: impl Into<PathBuf>,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> TlsOptions {
        TlsOptions {
            files: TlsFiles::new(ca, certificate, private_key),
            client_certificate: None,
            reload_interval: Some(DEFAULT_RELOAD_INTERVAL),
        }
    }

    /// A second certificate and key for the API clients (see the [module docs](self)).
    #[must_use]
    pub fn with_client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> TlsOptions {
        self.client_certificate = Some((certificate.into(), private_key.into()));
        self
    }
}

/// Both sides of a node's TLS, loaded.
#[derive(Clone, Debug)]
pub(crate) struct NodeTls {
    pub(crate) server: ServerTls,
    pub(crate) client: ClientTls,
}

impl NodeTls {
    /// Reads the files; the certificate must name node `id` of `cluster_id`.
    pub(crate) fn load(
        options: &TlsOptions,
        cluster_id: &str,
        id: NodeId,
    ) -> Result<NodeTls, Error> {
        let mut server = options
            .files
            .server(cluster_id, id)
            .with_client_auth(ClientAuth::Optional);
        if let Some((certificate, key)) = &options.client_certificate {
            server = server.with_other_certificate(certificate, key);
        }
        Ok(NodeTls {
            server: ServerTls::load(server)?,
            client: ClientTls::load(options.files.client(cluster_id, id))?,
        })
    }

    /// A reloader of both sides.
    pub(crate) fn reloader(&self) -> TlsReloader {
        TlsReloader::new(Some(self.server.clone()), Some(self.client.clone()))
    }
}

/// `address` (`host:port`, or a URL) as the transport dials it: `host:port`, after checking
/// that its scheme, if any, fits whether TLS is on.
pub(crate) fn dial_address(what: &str, address: &str, tls: bool) -> Result<String, Error> {
    let (scheme, rest) = match address.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, address),
    };
    match (scheme, tls) {
        (None, _) | (Some("https"), true) | (Some("http"), false) => {}
        (Some("http"), true) => {
            return Err(Error::Tls(format!(
                "{what} {address}: the peers speak TLS (--tls-*), so use https:// or HOST:PORT"
            )));
        }
        (Some("https"), false) => {
            return Err(Error::Tls(format!(
                "{what} {address}: https:// needs TLS (--tls-ca, --tls-cert, --tls-key)"
            )));
        }
        (Some(other), _) => {
            return Err(Error::Config(format!(
                "{what} {address}: unknown scheme {other}:// (use HOST:PORT)"
            )));
        }
    }
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        return Err(Error::Config(format!("{what} {address}: no HOST:PORT")));
    }
    Ok(authority.to_owned())
}

/// The TLS side of `--join`: HTTPS requests from a joining node to a member's admin routes.
///
/// A member serves its node certificate only to a client that asks for its name by SNI (it may
/// give other clients a second certificate), so the joining node first learns the member's id:
/// it reads `/status` on a connection whose certificate it does not check, sending no
/// credentials and nothing else. It then connects again asking for `node-<id>.<cluster-id>`
/// with the node's own client configuration: the member must present a certificate from the
/// peers' CA that names exactly that node, and the joining node presents its own. Only that
/// connection carries the request and its bearer token. A member lying about its id only makes
/// the second handshake fail.
#[derive(Clone, Debug)]
pub struct JoinTls {
    client: ClientTls,
    cluster_id: String,
}

impl JoinTls {
    /// Requests with `client` (the node's client TLS) to members of `cluster_id`.
    pub(crate) fn new(client: ClientTls, cluster_id: String) -> JoinTls {
        JoinTls { client, cluster_id }
    }

    /// A connection to `target` (`host:port`) whose certificate is not checked, for reading
    /// the member's public `/status` only.
    pub(crate) async fn connect_unverified(
        &self,
        target: &str,
    ) -> Result<TlsStream<TcpStream>, String> {
        let config = self.client.rustls_config();
        let provider = config.crypto_provider().clone();
        let unverified = unverified_config(provider)?;
        let name = ServerName::try_from(host_of(target).to_owned())
            .map_err(|e| format!("{target}: not a host name or address: {e}"))?;
        connect(unverified, name, target).await
    }

    /// A connection to `target` that must be node `id`, presenting this node's certificate.
    pub(crate) async fn connect_to_node(
        &self,
        target: &str,
        id: u64,
    ) -> Result<TlsStream<TcpStream>, String> {
        let mut config = (*self.client.rustls_config()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let wanted = node_name(&self.cluster_id, NodeId(id));
        let name = ServerName::try_from(wanted.clone())
            .map_err(|e| format!("{wanted} is not a DNS name: {e}"))?;
        connect(Arc::new(config), name, target)
            .await
            .map_err(|e| format!("{e} (expecting the certificate of {wanted})"))
    }
}

async fn connect(
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    target: &str,
) -> Result<TlsStream<TcpStream>, String> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

/// A client configuration that accepts any certificate (signatures still checked, so the
/// handshake is sound; the peer is simply not authenticated) and presents none.
fn unverified_config(provider: Arc<CryptoProvider>) -> Result<Arc<rustls::ClientConfig>, String> {
    let verifier = Unverified {
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts every server certificate: only for [`JoinTls::connect_unverified`].
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The host of `host:port` or `[v6]:port`, without brackets.
fn host_of(target: &str) -> &str {
    if let Some(bracketed) = target.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    target.rsplit_once(':').map_or(target, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_addresses_must_fit_whether_tls_is_on() {
        assert_eq!(
            dial_address("--peer", "10.0.0.2:7001", true).unwrap(),
            "10.0.0.2:7001"
        );
        assert_eq!(
            dial_address("--peer", "https://10.0.0.2:7001/", true).unwrap(),
            "10.0.0.2:7001"
        );
        assert_eq!(
            dial_address("--join", "http://h:1/admin", false).unwrap(),
            "h:1"
        );
        assert!(matches!(
            dial_address("--peer", "http://h:1", true),
            Err(Error::Tls(_))
        ));
        assert!(matches!(
            dial_address("--peer", "https://h:1", false),
            Err(Error::Tls(_))
        ));
        assert!(matches!(
            dial_address("--peer", "ftp://h:1", false),
            Err(Error::Config(_))
        ));
        assert!(dial_address("--join", "https://", true).is_err());
    }

    #[test]
    fn hosts_come_without_port_or_brackets() {
        assert_eq!(host_of("10.0.0.1:7001"), "10.0.0.1");
        assert_eq!(host_of("[::1]:7001"), "::1");
        assert_eq!(host_of("kv.example"), "kv.example");
    }
}
