//! raft-http: the peer transport of raft-core over HTTP (hyper 1.x), and a `/metrics` route for
//! Prometheus (ARCHITECTURE.md, "Transport").
//!
//! - **Client**: [`HttpTransport`] implements raft-core's [`Transport`](raft_core::Transport).
//!   It keeps one HTTP/2 connection per peer (prior knowledge over plain TCP, or over TLS) on
//!   which many pipelined requests are in flight at once, bounds every request with a timeout, and
//!   reconnects with exponential backoff; a dead peer never delays requests to the others.
//! - **Server**: [`RaftService`] forwards `POST /raft/v1/append`, `/raft/v1/vote`,
//!   `/raft/v1/timeout-now` and `/raft/v1/snapshot` to any
//!   [`ServiceHandler`](raft_core::ServiceHandler) (a raft-core `Node`) and serves
//!   `GET /metrics`. It is a router that an application mounts beside its own routes
//!   ([`RaftService::route`] hands back requests for paths that are not its own), and [`Server`]
//!   is a hardened accept loop for it (HTTP/1.1 and HTTP/2, in plaintext or TLS, header read
//!   timeout, connection and stream limits, graceful shutdown).
//! - **Entry streams** (raft-core's streaming replication): a follower opens one long-lived
//!   `POST /raft/v1/stream` to its leader on the HTTP/2 connection it already has; the
//!   request body carries its opening and its answers, the response body the leader's
//!   batches, each a length-prefixed frame, paced by HTTP/2 flow control
//!   ([`routes::STREAM_PATH`], [`codec::encode_frame`]). With mutual TLS the opening's
//!   follower must be the node the client certificate names. [`ResponseBody`] is a buffer or
//!   such a stream.
//! - **Snapshots**: raft-core sends a snapshot one InstallSnapshot chunk per request, so no
//!   body ever holds a whole snapshot. The snapshot route has its own body limit,
//!   [`ServiceConfig::max_snapshot_body_bytes`] (2 MiB by default, for raft-core's default
//!   1 MiB chunks); a cluster with larger `snapshot_chunk_bytes` raises it with
//!   [`ServiceConfig::with_snapshot_chunk_bytes`] ([`HttpNode`] derives it from the node's
//!   configuration). The chunk's data is decoded as a slice of
//!   the received body, and chunks share the client's `request_timeout`, which (like raft-core's
//!   `request_timeout_ms`) must cover one chunk's transfer.
//! - **Wire**: bodies are MessagePack (rmp-serde) in a `[version, message]` envelope
//!   ([`codec`]); every request carries the cluster id and, when configured, a shared secret
//!   ([`ClusterAuth`]); failures carry a typed [`ErrorCode`] in the
//!   [`ERROR_CODE_HEADER`] so the client rebuilds a useful
//!   [`raft_core::Error`].
//! - **TLS** ([`tls`]): plaintext unless configured. With [`ClientConfig::tls`],
//!   [`ServerConfig::tls`] and [`ServiceConfig::require_peer_certificate`] (or
//!   [`HttpNodeBuilder::tls`] for all three) peers speak mutual TLS through rustls. Each node's
//!   certificate names it as the DNS name `node-<id>.<cluster-id>` ([`tls::node_name`]): the
//!   client accepts only the certificate of the node it dials, and the server refuses (403
//!   `wrong-node`) a request whose sender its client certificate does not name. Certificates
//!   are reloaded from their files without a restart ([`ServerTls::reload`],
//!   [`ClientTls::reload`], [`TlsReloader`], or a watch of the files), for new connections.
//! - **Metrics**: the names in [`metrics`], recorded through the `metrics` facade.
//! - **Wiring**: [`HttpNode`] sets up both sides for one node from one set of settings (node id,
//!   cluster id and secret, snapshot chunk size, listen and peer addresses, metrics handle) and
//!   hands back what `Node::start` takes; [`Serving`] stops the server. The address lists have
//!   two meanings and two types: [`Members`] (client redirects, what the node starts with) and
//!   [`PeerAddresses`] (what the transport dials). [`HttpNodeBuilder::tls`] makes it mutual
//!   TLS from three PEM files.
//!
//! A node served over HTTP:
//!
//! ```no_run
//! use raft_core::runtime::{Node, NodeConfig};
//! use raft_core::testing::{MemKv, MemLogStore};
//! use raft_core::NodeId;
//! use raft_http::HttpNode;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = NodeConfig::default();
//! config.raft.snapshot_chunk_bytes = 4 << 20;
//! let metrics = raft_http::metrics::install_prometheus_recorder()?;
//!
//! let http = HttpNode::builder(NodeId(1))
//!     .listen("127.0.0.1:7001") // peers (and Prometheus) reach this node here
//!     .peer(NodeId(2), "127.0.0.1:7002") // where the peers are dialled
//!     .peer(NodeId(3), "127.0.0.1:7003")
//!     .cluster("my-cluster")
//!     .secret("correct-horse") // sent and checked by the same ClusterAuth
//!     .node_config(&config) // the server admits the node's snapshot chunks
//!     .metrics(metrics)
//!     .bind()
//!     .await?;
//! let node = Node::start(
//!     http.id(),
//!     http.members(), // (id, client address) of every member, this node included
//!     config,
//!     MemLogStore::new().into_arc(), // a raft-storage-fs FsLogStore in a real deployment
//!     MemKv::new().into_arc(),
//!     http.transport(),
//! )
//! .await?;
//! let serving = http.serve(node.clone());
//! // ... until the application stops, then in this order:
//! serving.shutdown().await; // stop accepting, let open requests finish
//! node.shutdown().await; // answer waiting callers, join the node's tasks
//! // and last, close the log store (FsLogStore::close)
//! # Ok(())
//! # }
//! ```
//!
//! A `raft_wrapper::Replica` starts the same way (`Replica::start(http.id(), http.members(),
//! replica_config, ...)` with `.node_config(&replica_config.node)`), and is served with
//! `http.serve(replica.node().clone())`. An application with routes of its own mounts
//! [`HttpNode::service`] in its router and serves that with [`HttpNode::serve_with`].
#![forbid(unsafe_code)]

mod auth;
mod body;
mod client;
mod client_config;
mod coalesce;
pub mod codec;
mod connection;
mod error;
mod frames;
mod http_node;
mod members;
pub mod metrics;
mod node_builder;
mod order;
mod peer;
mod refusal;
pub mod routes;
mod serve;
mod server;
mod service_config;
mod serving;
mod stream_client;
mod stream_route;
pub mod tls;

pub use auth::{CLUSTER_ID_HEADER, ClusterAuth, SECRET_HEADER};
pub use body::ResponseBody;
pub use client::HttpTransport;
pub use client_config::ClientConfig;
pub use error::{Error, ErrorCode, RequestError};
pub use http_node::HttpNode;
pub use members::{AddressIter, Members, PeerAddresses};
pub use metrics::PrometheusHandle;
pub use node_builder::HttpNodeBuilder;
pub use routes::ERROR_CODE_HEADER;
pub use serve::{Server, ServerConfig};
pub use server::{RaftService, ResponseFuture, Routed};
pub use service_config::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SNAPSHOT_BODY_BYTES, MAX_SNAPSHOT_BODY_BYTES,
    MAX_STREAM_CONTROL_FRAME_BYTES, SNAPSHOT_BODY_OVERHEAD_BYTES, ServiceConfig,
};
pub use serving::Serving;
pub use tls::{
    ClientAuth, ClientTls, ClientTlsFiles, PeerCertificate, ServerTls, ServerTlsFiles, TlsFiles,
    TlsReloader,
};
