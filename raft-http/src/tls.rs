//! TLS between peers, through rustls (the `ring` provider; no OpenSSL). Without it the
//! transport speaks plaintext, as it does by default.
//!
//! # Certificates name nodes
//!
//! Node `3` of cluster `prod` presents a certificate (chained to the peers' CA) whose subject
//! alternative names include the DNS name **`node-3.prod`**: `node-<id>.<cluster-id>`, given by
//! [`node_name`]. One certificate per node serves both directions, so it carries the extended
//! key usages `serverAuth` and `clientAuth` (or no extended key usage at all). Both ends check
//! the name:
//!
//! - **The client** dialling node 3, at whatever address, accepts only a server certificate
//!   that names `node-3.prod` (it also sends that name as SNI). The host in the address is not
//!   compared: peers are known by id, and addresses change with membership. A certificate of
//!   node 2 answering at node 3's address fails the handshake ([`RequestError::Tls`]).
//! - **The server**, with mutual TLS, reads the names of the client's certificate. A Raft
//!   request must come from a node the certificate names (its `leader_id`, or the
//!   `candidate_id` of a RequestVote), or it is refused with 403 and `raft-error: wrong-node`
//!   before the node sees it; with [`ServiceConfig::require_peer_certificate`] a request
//!   without a client certificate is refused with 401 and `raft-error: certificate-required`.
//!
//! Names compare without regard to ASCII case; wildcard names (`*.prod`) name no node. With TLS
//! the cluster id must be usable in a DNS name (letters, digits, `-`, `_` and dots). The
//! cluster id in the name keeps a certificate of one cluster out of another that shares the CA.
//!
//! # A listener shared with an application's clients
//!
//! An application that serves its own clients beside the Raft routes (raft-kv's client API)
//! makes client certificates optional ([`ClientAuth::Optional`]; the Raft routes still demand
//! one with [`ServiceConfig::require_peer_certificate`]), and when its clients trust another CA
//! than the peers, gives the server a second certificate
//! ([`ServerTlsFiles::with_other_certificate`]): peers ask for `node-<id>.<cluster-id>` by SNI
//! and get the node's certificate, every other client gets the second one.
//!
//! # Reload
//!
//! [`ServerTls`] and [`ClientTls`] are handles on a configuration loaded from PEM files.
//! [`ServerTls::reload`] and [`ClientTls::reload`] (or a [`TlsReloader`] for both, say on
//! SIGHUP) read every file again, build a whole new configuration and swap it in; `watch(every)`
//! checks the files' contents every `every` and reloads when one changed. New connections use
//! the new certificates; open connections keep theirs until they close. A reload that fails (a
//! missing or half-written file, a key that does not match its certificate, a certificate that
//! does not name this node) keeps the configuration in force and returns [`Error::Tls`] (the
//! watch logs it, and tries again when a file changes again). A client reconnects only when a
//! connection drops, so rotate certificates before the old ones expire.
//!
//! # Failures
//!
//! Setup problems are [`Error::Tls`] (unreadable files, bad PEM, a key that does not match) or
//! [`Error::InvalidAddress`] (an `https://` address without TLS configured, `http://` with it).
//! A failed handshake is [`RequestError::Tls`], within the client's `connect_timeout`: a
//! certificate from another CA, expired, or naming another node; a TLS client at a plaintext
//! port; a plaintext client at a TLS port (the server closes at once after the first bytes).
//! A server refusing a client's certificate in TLS 1.3 does so after the client finished its
//! side of the handshake: the client sees the refusal on its first request.
//!
//! # Example
//!
//! ```no_run
//! use raft_core::NodeId;
//! use raft_http::tls::{ClientTls, ServerTls, TlsFiles};
//! use raft_http::{ClientConfig, ClusterAuth, HttpTransport, ServerConfig, ServiceConfig};
//!
//! # async fn example() -> Result<(), raft_http::Error> {
//! // This node's certificate names node-1.prod; the CA signed every node's certificate.
//! let files = TlsFiles::new("ca.pem", "node-1.pem", "node-1.key");
//! let auth = ClusterAuth::new("prod")?;
//!
//! let server_tls = ServerTls::load(files.server("prod", NodeId(1)))?; // mutual TLS
//! let mut server = ServerConfig::default();
//! server.tls = Some(server_tls.clone());
//! let mut service = ServiceConfig::new(auth.clone());
//! service.require_peer_certificate = true;
//!
//! let client_tls = ClientTls::load(files.client("prod", NodeId(1)))?;
//! let mut client = ClientConfig::new(auth);
//! client.tls = Some(client_tls.clone());
//! let transport = HttpTransport::new([(NodeId(2), "10.0.0.2:7001")], client)?; // TLS too
//!
//! // Pick up rotated certificates by themselves, for new connections.
//! server_tls.watch(std::time::Duration::from_secs(30))?;
//! client_tls.watch(std::time::Duration::from_secs(30))?;
//! # let _ = (server, service, transport);
//! # Ok(())
//! # }
//! ```
//!
//! [`HttpNode`](crate::HttpNode) does all of this from one [`TlsFiles`]
//! ([`HttpNodeBuilder::tls`](crate::HttpNodeBuilder::tls)).
//!
//! [`RequestError::Tls`]: crate::RequestError::Tls
//! [`Error::Tls`]: crate::Error::Tls
//! [`Error::InvalidAddress`]: crate::Error::InvalidAddress
//! [`ServiceConfig::require_peer_certificate`]: crate::ServiceConfig::require_peer_certificate

mod client;
mod files;
mod identity;
mod node;
mod provider;
mod server;
mod sniff;

pub(crate) use client::describe_handshake_error;
pub use client::{ClientTls, ClientTlsFiles};
pub(crate) use identity::server_name;
pub use identity::{PeerCertificate, node_name};
pub use node::{TlsFiles, TlsReloader};
pub use server::{ClientAuth, ServerTls, ServerTlsFiles};
pub(crate) use sniff::Sniffed;
