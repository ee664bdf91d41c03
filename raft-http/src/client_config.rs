//! [`ClientConfig`]: how an [`HttpTransport`](crate::HttpTransport) talks to its peers (the
//! credentials it sends, TLS, its timeouts, reconnection backoff, body limit and HTTP/2
//! settings).
//!
//! It has a file of its own because both halves of the client read it: the transport
//! (`client.rs`) bounds each request with `request_timeout`, and each peer (`peer.rs`) dials,
//! backs off and reads answers by the rest. With the configuration here, `client.rs` imports
//! `peer.rs` and `peer.rs` imports nothing from `client.rs`.

use std::time::Duration;

use raft_core::NodeId;

use crate::auth::ClusterAuth;
use crate::service_config::DEFAULT_MAX_BODY_BYTES;
use crate::tls::ClientTls;

/// How an [`HttpTransport`](crate::HttpTransport) talks to its peers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The cluster id and secret sent with every request.
    pub auth: ClusterAuth,
    /// TLS to every peer (`None`, the default: plaintext HTTP/2). With it, peer addresses are
    /// `host:port` or `https://host:port` (both mean TLS; `http://` is refused), and each peer
    /// must present a certificate naming its node id in this cluster (see [`crate::tls`]);
    /// without it, `https://` addresses are refused. The transport is all TLS or all plaintext.
    pub tls: Option<ClientTls>,
    /// A request without an answer after this long (connecting included) fails with
    /// [`raft_core::Error::Timeout`]. raft-core bounds calls at twice its own
    /// `request_timeout_ms`, so keep this at or below that. It bounds snapshot chunks too, so
    /// it must also cover sending the largest chunk (`snapshot_chunk_bytes`) and the peer
    /// writing it; see the documentation of the transport (`client.rs`).
    pub request_timeout: Duration,
    /// Each step of a new connection (TCP connect, TLS handshake, HTTP/2 handshake) that takes
    /// longer fails.
    pub connect_timeout: Duration,
    /// The wait after the first failed connection attempt; it doubles with each further one.
    pub backoff_initial: Duration,
    /// The longest wait between connection attempts.
    pub backoff_max: Duration,
    /// Answers over this many bytes are refused.
    pub max_body_bytes: usize,
    /// HTTP/2 keep-alive ping interval (`None`: no pings); a dead connection is noticed by it.
    pub keep_alive_interval: Option<Duration>,
    /// A connection whose ping is not acknowledged within this time is closed.
    pub keep_alive_timeout: Duration,
    /// HTTP/2 flow-control window per stream, in bytes.
    pub stream_window_bytes: u32,
    /// HTTP/2 flow-control window per connection, in bytes.
    pub connection_window_bytes: u32,
    /// The local node, for the `node` label of the metrics.
    pub node: Option<NodeId>,
}

impl ClientConfig {
    /// The defaults with these credentials: 2 s request timeout, 1 s connect timeout, backoff
    /// from 20 ms to 1 s.
    #[must_use]
    pub fn new(auth: ClusterAuth) -> ClientConfig {
        ClientConfig {
            auth,
            tls: None,
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_secs(1),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            keep_alive_interval: Some(Duration::from_secs(1)),
            keep_alive_timeout: Duration::from_secs(3),
            stream_window_bytes: 4 << 20,
            connection_window_bytes: 16 << 20,
            node: None,
        }
    }
}
