//! The server side: [`ServerTlsFiles`] (which PEM files), [`ServerTls`] (the loaded,
//! reloadable configuration a [`Server`](crate::Server) accepts connections with).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft_core::NodeId;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::files::{Contents, Reloadable};
use super::identity::{PeerCertificate, check_own_name};
use crate::error::Error;

/// Whether a server with a client CA demands a certificate of every client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// Every client presents a certificate chained to the client CA, or the handshake fails:
    /// a stranger cannot even send a request. For a listener that serves only peers.
    #[default]
    Required,
    /// A client may present one (verified if it does). For a listener that also serves
    /// clients without certificates (an application's routes beside the Raft routes); set
    /// [`ServiceConfig::require_peer_certificate`](crate::ServiceConfig::require_peer_certificate)
    /// so that the Raft routes still refuse requests without one.
    Optional,
}

/// The PEM files of a server's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerTlsFiles {
    /// The certificate chain presented to clients, the server's own certificate first.
    pub certificate: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// The CA certificate(s) client certificates are verified against (mutual TLS); `None`:
    /// clients present none.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required, when there is a client CA.
    pub client_auth: ClientAuth,
    /// The cluster and node the certificate must name (checked on every load), if set.
    pub node: Option<(String, NodeId)>,
    /// A second certificate chain and key, presented to the clients that do not ask for one of
    /// the first certificate's names by SNI (see
    /// [`with_other_certificate`](Self::with_other_certificate)).
    pub other_certificate: Option<(PathBuf, PathBuf)>,
}

impl ServerTlsFiles {
    /// A certificate chain and its key; no client certificates.
    #[must_use]
    pub fn new(certificate: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        ServerTlsFiles {
            certificate: certificate.into(),
            private_key: private_key.into(),
            client_ca: None,
            client_auth: ClientAuth::Required,
            node: None,
            other_certificate: None,
        }
    }

    /// Mutual TLS: client certificates verified against `ca` (required unless
    /// [`with_client_auth`](Self::with_client_auth) says otherwise).
    #[must_use]
    pub fn with_client_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(ca.into());
        self
    }

    /// Whether clients must present a certificate (with a client CA).
    #[must_use]
    pub fn with_client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// A second certificate for an application's own clients on the same listener, when they
    /// trust another CA than the peers do: a client whose SNI is one of the DNS names of the
    /// first certificate (every peer asks for `node-<id>.<cluster-id>`) gets the first, any
    /// other client (another name, or none) gets this one.
    #[must_use]
    pub fn with_other_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> Self {
        self.other_certificate = Some((certificate.into(), private_key.into()));
        self
    }

    /// The certificate must name node `id` of `cluster_id` ([`node_name`](super::node_name)):
    /// a load or reload of a certificate that does not is refused.
    #[must_use]
    pub fn for_node(mut self, cluster_id: impl Into<String>, id: NodeId) -> Self {
        self.node = Some((cluster_id.into(), id));
        self
    }
}

/// A server's TLS configuration, loaded from [`ServerTlsFiles`]; a cheap handle (clones share
/// it), so keep one to [`reload`](ServerTls::reload) after giving one to a
/// [`ServerConfig`](crate::ServerConfig).
///
/// The server offers ALPN `h2` and `http/1.1` (HTTP/2 for peers, either for an application's
/// clients) and accepts TLS 1.2 and 1.3.
///
/// ```no_run
/// use raft_http::tls::{ServerTls, ServerTlsFiles};
/// use raft_http::{Server, ServerConfig};
///
/// # async fn example() -> Result<(), raft_http::Error> {
/// let files = ServerTlsFiles::new("node-1.pem", "node-1.key").with_client_ca("ca.pem");
/// let tls = ServerTls::load(files)?;
/// let mut config = ServerConfig::default();
/// config.tls = Some(tls.clone());
/// let server = Server::bind("127.0.0.1:7001", config).await?;
/// // ... after the files were replaced: new connections get the new certificate.
/// tls.reload()?;
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Reloadable<rustls::ServerConfig>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.inner.paths())
            .finish()
    }
}

/// A server connection after its handshake, and the client's certificate if it sent one.
pub(crate) type ServerStream = (TlsStream<TcpStream>, Option<PeerCertificate>);

impl ServerTls {
    /// Reads the files and builds the configuration.
    ///
    /// # Errors
    /// [`Error::Tls`] for a file that cannot be read or holds no usable PEM, a key that does
    /// not match the certificate, or a certificate that does not name the node of
    /// [`ServerTlsFiles::node`].
    pub fn load(files: ServerTlsFiles) -> Result<ServerTls, Error> {
        let mut paths = vec![files.certificate.clone(), files.private_key.clone()];
        paths.extend(files.client_ca.clone());
        if let Some((certificate, key)) = &files.other_certificate {
            paths.extend([certificate.clone(), key.clone()]);
        }
        let inner = Reloadable::load("server TLS", paths, move |contents| build(&files, contents))?;
        Ok(ServerTls { inner })
    }

    /// Reads the files again: connections accepted from now on use the new configuration,
    /// open ones keep theirs.
    ///
    /// # Errors
    /// As [`load`](ServerTls::load); the configuration in force stays.
    pub fn reload(&self) -> Result<(), Error> {
        self.inner.reload()
    }

    /// Checks the files' contents every `every` in a task of the current runtime and reloads
    /// when one changed (a failure is logged and the configuration in force stays). The task
    /// ends when the last handle is dropped.
    ///
    /// # Errors
    /// [`Error::Config`] outside a tokio runtime or for a zero interval.
    pub fn watch(&self, every: Duration) -> Result<(), Error> {
        self.inner.watch(every)
    }

    /// The rustls configuration in force, for an accept loop of one's own.
    #[must_use]
    pub fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        self.inner.current()
    }

    /// The TLS handshake of one accepted connection, with the configuration in force. A failed
    /// one is closed gently (see [`linger`]).
    pub(crate) async fn accept(&self, stream: TcpStream) -> Result<ServerStream, String> {
        let acceptor = TlsAcceptor::from(self.inner.current());
        let stream = match acceptor.accept(stream).into_fallible().await {
            Ok(stream) => stream,
            Err((error, stream)) => {
                linger(stream).await;
                return Err(format!("TLS handshake failed: {error}"));
            }
        };
        let peer = match stream.get_ref().1.peer_certificates() {
            Some([own, ..]) => Some(PeerCertificate::from_der(own).map_err(|e| e.to_string())?),
            _ => None,
        };
        Ok((stream, peer))
    }
}

/// How long a failed handshake's connection is drained before it is dropped, at most.
const LINGER: Duration = Duration::from_millis(500);
/// How many bytes of it are read and thrown away, at most.
const LINGER_BYTES: usize = 64 << 10;

/// Closes a connection whose handshake failed so that the client reads why: rustls already
/// wrote its alert; this sends FIN after it and reads what the client is still sending. Closing
/// a socket with unread data sends a reset instead, and a reset can make the client's kernel
/// discard the alert before the client reads it, leaving it a bare "broken pipe" (a plaintext
/// client's HTTP/2 preface, or a TLS 1.3 client's first request after a refused certificate,
/// is still arriving).
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buffer = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

fn build(files: &ServerTlsFiles, contents: &Contents) -> Result<rustls::ServerConfig, Error> {
    let provider = super::provider::provider();
    let chain = contents.certificates(0, "certificate")?;
    let key = contents.private_key(1)?;
    if let Some((cluster_id, id)) = &files.node {
        check_own_name(&chain, cluster_id, *id, &contents.path(0))?;
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS versions: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(_) => {
            let roots = contents.roots(2, "client CA")?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match files.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| Error::Tls(format!("client CA {}: {e}", contents.path(2))))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certified = |chain, key, at: usize| {
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
            Error::Tls(format!(
                "certificate {} with key {}: {e}",
                contents.path(at),
                contents.path(at + 1)
            ))
        })
    };
    let names = PeerCertificate::from_der(chain.first().map_or(&[][..], |c| c.as_ref()))?;
    let node = Arc::new(certified(chain, key, 0)?);
    let resolver = match &files.other_certificate {
        None => BySni {
            names: Vec::new(),
            node: node.clone(),
            other: node,
        },
        Some(_) => {
            let at = 2 + usize::from(files.client_ca.is_some());
            let chain = contents.certificates(at, "other certificate")?;
            let key = contents.private_key(at + 1)?;
            BySni {
                names: names.dns_names().to_vec(),
                node,
                other: Arc::new(certified(chain, key, at)?),
            }
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Picks the certificate by SNI: the node's for a client asking for one of its names (a peer),
/// the other one for anyone else (the same when there is no other).
#[derive(Debug)]
struct BySni {
    /// The node certificate's DNS names, lowercase.
    names: Vec<String>,
    node: Arc<CertifiedKey>,
    other: Arc<CertifiedKey>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let asked = client_hello.server_name().unwrap_or_default();
        let peer = self
            .names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(asked));
        Some(if peer {
            self.node.clone()
        } else {
            self.other.clone()
        })
    }
}
