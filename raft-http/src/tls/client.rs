//! The client side: [`ClientTlsFiles`] (which PEM files), [`ClientTls`] (the loaded,
//! reloadable configuration an [`HttpTransport`](crate::HttpTransport) dials peers with), and
//! the verifier that accepts only the certificate of the node dialled.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft_core::NodeId;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::files::{Contents, Reloadable};
use super::identity::{PeerCertificate, check_own_name};
use crate::error::Error;

/// The PEM files of a client's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientTlsFiles {
    /// The CA certificate(s) the peers' server certificates are verified against.
    pub ca: PathBuf,
    /// The client certificate chain presented to servers that ask for one (mutual TLS), the
    /// node's own certificate first.
    pub certificate: Option<PathBuf>,
    /// Its private key; set with `certificate`.
    pub private_key: Option<PathBuf>,
    /// The cluster and node the client certificate must name (checked on every load), if set.
    pub node: Option<(String, NodeId)>,
}

impl ClientTlsFiles {
    /// Servers verified against `ca`; no client certificate.
    #[must_use]
    pub fn new(ca: impl Into<PathBuf>) -> Self {
        ClientTlsFiles {
            ca: ca.into(),
            certificate: None,
            private_key: None,
            node: None,
        }
    }

    /// Presents this certificate chain and key to servers (mutual TLS).
    #[must_use]
    pub fn with_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> Self {
        self.certificate = Some(certificate.into());
        self.private_key = Some(private_key.into());
        self
    }

    /// The client certificate must name node `id` of `cluster_id`
    /// ([`node_name`](super::node_name)): a load or reload of one that does not is refused.
    #[must_use]
    pub fn for_node(mut self, cluster_id: impl Into<String>, id: NodeId) -> Self {
        self.node = Some((cluster_id.into(), id));
        self
    }
}

/// A client's TLS configuration, loaded from [`ClientTlsFiles`]; a cheap handle (clones share
/// it), so keep one to [`reload`](ClientTls::reload) after giving one to a
/// [`ClientConfig`](crate::ClientConfig).
///
/// Each peer is dialled with the server name [`node_name`](super::node_name) of its id, and
/// only a certificate that chains to the CA and carries exactly that name is accepted. ALPN
/// asks for `h2`.
///
/// ```no_run
/// use raft_core::NodeId;
/// use raft_http::tls::{ClientTls, ClientTlsFiles};
/// use raft_http::{ClientConfig, ClusterAuth, HttpTransport};
///
/// # fn example() -> Result<(), raft_http::Error> {
/// let files = ClientTlsFiles::new("ca.pem").with_certificate("node-1.pem", "node-1.key");
/// let mut config = ClientConfig::new(ClusterAuth::new("prod")?);
/// config.tls = Some(ClientTls::load(files)?);
/// // Node 2 must present a certificate naming node-2.prod.
/// let transport = HttpTransport::new([(NodeId(2), "https://10.0.0.2:7001")], config)?;
/// # let _ = transport;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientTls {
    inner: Arc<Reloadable<rustls::ClientConfig>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("files", &self.inner.paths())
            .finish()
    }
}

impl ClientTls {
    /// Reads the files and builds the configuration.
    ///
    /// # Errors
    /// [`Error::Tls`] for a file that cannot be read or holds no usable PEM, a certificate
    /// without its key (or the other way round), a key that does not match the certificate,
    /// or a certificate that does not name the node of [`ClientTlsFiles::node`].
    pub fn load(files: ClientTlsFiles) -> Result<ClientTls, Error> {
        let mut paths = vec![files.ca.clone()];
        match (&files.certificate, &files.private_key) {
            (Some(certificate), Some(key)) => paths.extend([certificate.clone(), key.clone()]),
            (None, None) => {}
            _ => {
                return Err(Error::Tls(
                    "a client certificate goes with its private key: give both or neither"
                        .to_owned(),
                ));
            }
        }
        let inner = Reloadable::load("client TLS", paths, move |contents| build(&files, contents))?;
        Ok(ClientTls { inner })
    }

    /// Reads the files again: connections made from now on use the new configuration, open
    /// ones keep theirs.
    ///
    /// # Errors
    /// As [`load`](ClientTls::load); the configuration in force stays.
    pub fn reload(&self) -> Result<(), Error> {
        self.inner.reload()
    }

    /// Checks the files' contents every `every` in a task of the current runtime and reloads
    /// when one changed (see [`ServerTls::watch`](super::ServerTls::watch)).
    ///
    /// # Errors
    /// [`Error::Config`] outside a tokio runtime or for a zero interval.
    pub fn watch(&self, every: Duration) -> Result<(), Error> {
        self.inner.watch(every)
    }

    /// The rustls configuration in force.
    #[must_use]
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        self.inner.current()
    }

    /// The TLS handshake with the peer whose certificate must carry `name`.
    pub(crate) async fn connect(
        &self,
        name: ServerName<'static>,
        stream: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        TlsConnector::from(self.inner.current())
            .connect(name, stream)
            .await
    }
}

fn build(files: &ClientTlsFiles, contents: &Contents) -> Result<rustls::ClientConfig, Error> {
    let provider = super::provider::provider();
    let roots = contents.roots(0, "CA")?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Tls(format!("CA {}: {e}", contents.path(0))))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NodeVerifier { inner }));
    let mut config = if files.certificate.is_some() {
        let chain = contents.certificates(1, "certificate")?;
        if let Some((cluster_id, id)) = &files.node {
            check_own_name(&chain, cluster_id, *id, &contents.path(1))?;
        }
        let key = contents.private_key(2)?;
        builder.with_client_auth_cert(chain, key).map_err(|e| {
            Error::Tls(format!(
                "certificate {} with key {}: {e}",
                contents.path(1),
                contents.path(2)
            ))
        })?
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// rustls's WebPKI verification (chain to the CA, validity dates, `serverAuth` usage), and
/// then the exact node name: a wildcard that the WebPKI check would accept names no node.
#[derive(Debug)]
struct NodeVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(other) => return Err(other),
        }
        let wanted = server_name.to_str();
        let certificate = PeerCertificate::from_der(end_entity)
            .map_err(|e| rustls::Error::InvalidCertificate(CertificateError::Other(other(e))))?;
        if certificate
            .dns_names()
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&wanted))
        {
            return Ok(ServerCertVerified::assertion());
        }
        let cluster_id = wanted.split_once('.').map_or("", |(_, cluster)| cluster);
        let refused = Error::Tls(format!(
            "the server's certificate names {}, not {wanted}: it is not the node dialled",
            certificate.describe(cluster_id)
        ));
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            other(refused),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn other(error: Error) -> OtherError {
    OtherError(Arc::new(error))
}

/// A failed client handshake, said plainly (the common causes first).
pub(crate) fn describe_handshake_error(error: &io::Error) -> String {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) => {
            inner.to_string()
        }
        Some(rustls::Error::InvalidCertificate(CertificateError::Expired))
        | Some(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })) => {
            format!("the server's certificate has expired ({error})")
        }
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            format!("the server's certificate is not signed by this node's CA ({error})")
        }
        Some(rustls::Error::InvalidMessage(_)) => {
            format!("the peer does not speak TLS: a plaintext server? ({error})")
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!(
                "the server refused the handshake (alert {alert:?}): does it trust this node's certificate?"
            )
        }
        _ if error.kind() == io::ErrorKind::UnexpectedEof => format!(
            "the peer closed the connection during the TLS handshake: a plaintext server, or \
             one that refused this client ({error})"
        ),
        _ => format!("TLS handshake failed: {error}"),
    }
}
