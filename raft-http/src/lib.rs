//! raft-http: the peer transport of raft-core over HTTP (hyper 1.x), and a `/metrics` route for
//! Prometheus (ARCHITECTURE.md, "Transport").
//!
//! - **Client**: [`HttpTransport`] implements raft-core's [`Transport`](raft_core::Transport).
//!   It keeps one HTTP/2 connection per peer (prior knowledge over plain TCP) on which many
//!   pipelined requests are in flight at once, bounds every request with a timeout, and
//!   reconnects with exponential backoff; a dead peer never delays requests to the others.
//! - **Server**: [`RaftService`] forwards `POST /raft/v1/append`, `/raft/v1/vote`,
//!   `/raft/v1/timeout-now` and `/raft/v1/snapshot` to any
//!   [`ServiceHandler`](raft_core::ServiceHandler) (a raft-core `Node`) and serves
//!   `GET /metrics`. It is a router that an application mounts beside its own routes
//!   ([`RaftService::route`] hands back requests for paths that are not its own), and [`Server`]
//!   is a hardened accept loop for it (HTTP/1.1 and HTTP/2, header read timeout, connection and
//!   stream limits, graceful shutdown).
//! - **Snapshots**: raft-core sends a snapshot one InstallSnapshot chunk per request, so no
//!   body ever holds a whole snapshot. The snapshot route has its own body limit,
//!   [`ServiceConfig::max_snapshot_body_bytes`] (2 MiB by default, for raft-core's default
//!   1 MiB chunks); a cluster with larger `snapshot_chunk_bytes` raises it with
//!   [`ServiceConfig::with_snapshot_chunk_bytes`]. The chunk's data is decoded as a slice of
//!   the received body, and chunks share the client's `request_timeout`, which (like raft-core's
//!   `request_timeout_ms`) must cover one chunk's transfer.
//! - **Wire**: bodies are MessagePack (rmp-serde) in a `[version, message]` envelope
//!   ([`codec`]); every request carries the cluster id and, when configured, a shared secret
//!   ([`ClusterAuth`]); failures carry a typed [`ErrorCode`] in the
//!   [`ERROR_CODE_HEADER`] so the client rebuilds a useful
//!   [`raft_core::Error`].
//! - **Metrics**: the names in [`metrics`], recorded through the `metrics` facade.
//!
//! A node served over HTTP:
//!
//! ```no_run
//! use std::sync::Arc;
//! use raft_core::runtime::{Node, NodeConfig};
//! use raft_core::testing::{MemKv, MemLogStore};
//! use raft_core::NodeId;
//! use raft_http::{ClientConfig, ClusterAuth, HttpTransport, RaftService, Server, ServerConfig,
//!     ServiceConfig};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let members = [
//!     (NodeId(1), "127.0.0.1:7001"),
//!     (NodeId(2), "127.0.0.1:7002"),
//!     (NodeId(3), "127.0.0.1:7003"),
//! ];
//! let id = NodeId(1);
//! let auth = ClusterAuth::new("my-cluster")?.with_secret("correct-horse")?;
//! let metrics = raft_http::metrics::install_prometheus_recorder()?;
//!
//! let config = NodeConfig::default();
//!
//! let transport = Arc::new(HttpTransport::new(members, ClientConfig::new(auth.clone()))?);
//! let node = Node::start(
//!     id,
//!     members,
//!     config.clone(),
//!     MemLogStore::new().into_arc(),
//!     MemKv::new().into_arc(),
//!     transport,
//! )
//! .await?;
//!
//! let service_config = ServiceConfig::new(auth)
//!     // Admits the largest chunk the nodes send.
//!     .with_snapshot_chunk_bytes(config.raft.snapshot_chunk_bytes)?;
//! let service = RaftService::new(Arc::new(node.clone()), service_config).with_metrics(metrics);
//! let server = Server::bind("127.0.0.1:7001", ServerConfig::default()).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.serve(service, async {
//!     let _ = stopped.await;
//! }));
//! // ... until the application stops:
//! let _ = stop.send(());
//! let _ = serving.await;
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod client;
mod client_config;
pub mod codec;
mod error;
pub mod metrics;
mod order;
mod peer;
pub mod routes;
mod serve;
mod server;
mod service_config;

pub use auth::{CLUSTER_ID_HEADER, ClusterAuth, SECRET_HEADER};
pub use client::HttpTransport;
pub use client_config::ClientConfig;
pub use error::{Error, ErrorCode, RequestError};
pub use metrics::PrometheusHandle;
pub use routes::ERROR_CODE_HEADER;
pub use serve::{Server, ServerConfig};
pub use server::{RaftService, ResponseBody, ResponseFuture, Routed};
pub use service_config::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SNAPSHOT_BODY_BYTES, MAX_SNAPSHOT_BODY_BYTES,
    SNAPSHOT_BODY_OVERHEAD_BYTES, ServiceConfig,
};
