//! [`HttpNode`]: everything a node needs to talk Raft over HTTP, set up in one place (the two
//! steps and where each setting goes are on the type; the settings, and `HttpNode::builder`,
//! are in `node_builder.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use raft_core::{NodeId, ServiceHandler};

use crate::client::HttpTransport;
use crate::members::{Members, PeerAddresses};
use crate::metrics::PrometheusHandle;
use crate::serve::Server;
use crate::server::RaftService;
use crate::service_config::ServiceConfig;
use crate::serving::Serving;
use crate::tls::TlsReloader;

/// A node's HTTP side, bound and ready: its listener (not yet serving), its transport, and its
/// two address lists. See the [crate docs](crate) for a complete example.
///
/// Two steps, because the node sits in the middle: the transport must exist before the node
/// starts, and the server needs the started node.
///
/// 1. [`HttpNode::builder`] … [`bind`](crate::HttpNodeBuilder::bind) binds the listener and builds the
///    [`HttpTransport`]; [`HttpNode::members`] and [`HttpNode::transport`] are then what
///    `Node::start` (or `Replica::start`) takes.
/// 2. [`HttpNode::serve`] serves the started node's Raft routes (and `/metrics`), or
///    [`serve_with`](HttpNode::serve_with) an application's router with the routes of
///    [`HttpNode::service`] mounted inside; the [`Serving`] handle stops it.
///
/// **Every shared setting is given once**, to the builder, and flows from there:
///
/// - the node id ([`builder`](HttpNode::builder)): [`HttpNode::id`] (to start the node with)
///   and the `node` label of the client's metrics ([`ClientConfig::node`](crate::ClientConfig::node)) and of the server's
///   ([`ServiceConfig::node`]);
/// - [`cluster`](crate::HttpNodeBuilder::cluster) and [`secret`](crate::HttpNodeBuilder::secret): one
///   [`ClusterAuth`](crate::ClusterAuth), sent by the transport and checked by the server;
/// - [`node_config`](crate::HttpNodeBuilder::node_config) (or
///   [`snapshot_chunk_bytes`](crate::HttpNodeBuilder::snapshot_chunk_bytes)): the server's snapshot
///   body limit ([`ServiceConfig::with_snapshot_chunk_bytes`]);
/// - [`listen`](crate::HttpNodeBuilder::listen) (or [`listener`](crate::HttpNodeBuilder::listener)): the
///   server's listener, whose bound address is this node's address in [`Members`] unless
///   [`advertise`](crate::HttpNodeBuilder::advertise)d otherwise;
/// - [`peer`](crate::HttpNodeBuilder::peer): the transport's dial address ([`PeerAddresses`]) and,
///   unless advertised otherwise, the peer's client address in [`Members`];
/// - [`metrics`](crate::HttpNodeBuilder::metrics): the `/metrics` route
///   ([`RaftService::with_metrics`]);
/// - [`tls`](crate::HttpNodeBuilder::tls): the server's [`ServerTls`](crate::ServerTls) (this
///   node's certificate, the peers' CA for client certificates), the transport's
///   [`ClientTls`](crate::ClientTls) (the same CA and certificate), and the service's
///   [`require_peer_certificate`](ServiceConfig::require_peer_certificate); reloaded together
///   by [`HttpNode::tls_reloader`].
///
/// The lower-level pieces ([`HttpTransport`], [`RaftService`], [`Server`] and their
/// configurations) stay public for wiring of one's own.
///
/// Between `bind` and `serve` the listener accepts nothing (connections wait in the backlog),
/// and peers' requests wait or time out, which Raft handles like a slow peer.
#[derive(Debug)]
pub struct HttpNode {
    id: NodeId,
    server: Server,
    local_addr: SocketAddr,
    members: Members,
    peer_addresses: PeerAddresses,
    transport: Arc<HttpTransport>,
    service_config: ServiceConfig,
    metrics: Option<PrometheusHandle>,
    tls: Option<TlsReloader>,
}

impl HttpNode {
    /// The bound node, as [`HttpNodeBuilder::bind`](crate::HttpNodeBuilder::bind) makes it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: NodeId,
        server: Server,
        local_addr: SocketAddr,
        members: Members,
        peer_addresses: PeerAddresses,
        transport: Arc<HttpTransport>,
        service_config: ServiceConfig,
        metrics: Option<PrometheusHandle>,
        tls: Option<TlsReloader>,
    ) -> HttpNode {
        HttpNode {
            id,
            server,
            local_addr,
            members,
            peer_addresses,
            transport,
            service_config,
            metrics,
            tls,
        }
    }

    /// With [`tls`](crate::HttpNodeBuilder::tls): reloads this node's certificates, server and client
    /// side, from their files (say, on SIGHUP); keep it past [`serve`](HttpNode::serve), which
    /// consumes the node. New connections use the new certificates, open ones keep theirs.
    #[must_use]
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.clone()
    }

    /// This node's id: the one to start the node with.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The bound address (with the port picked when listening on port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The member list to start the node with (`Node::start`, `Replica::start`): every member,
    /// this node included, with the address clients are redirected to when it leads (see
    /// [`Members`]). This node's is its advertised address, or else the bound one.
    #[must_use]
    pub fn members(&self) -> Members {
        self.members.clone()
    }

    /// Where the transport dials each peer (see [`PeerAddresses`]).
    #[must_use]
    pub fn peer_addresses(&self) -> &PeerAddresses {
        &self.peer_addresses
    }

    /// The transport to start the node with (the `Arc` coerces to `Arc<dyn Transport>`); keep
    /// a clone to change a peer's dial address later ([`HttpTransport::set_peer`]).
    #[must_use]
    pub fn transport(&self) -> Arc<HttpTransport> {
        self.transport.clone()
    }

    /// The server's checks and limits, as derived from the builder's settings.
    #[must_use]
    pub fn service_config(&self) -> &ServiceConfig {
        &self.service_config
    }

    /// The Raft routes (and `/metrics`, when a handle was given) for `handler`, to mount in an
    /// application's own router ([`RaftService::route`]) and serve with
    /// [`serve_with`](HttpNode::serve_with).
    #[must_use]
    pub fn service(&self, handler: Arc<dyn ServiceHandler>) -> RaftService {
        let service = RaftService::new(handler, self.service_config.clone());
        match &self.metrics {
            Some(handle) => service.with_metrics(handle.clone()),
            None => service,
        }
    }

    /// Serves the Raft routes (and `/metrics`) for `handler` (the started `Node`; for a
    /// `Replica`, its `node()`) in a task of its own, until the returned handle is shut down or
    /// dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn serve<H: ServiceHandler + 'static>(self, handler: H) -> Serving {
        let service = self.service(Arc::new(handler));
        self.serve_with(service)
    }

    /// Serves any hyper service on the bound listener, as [`Server::serve`] does, until the
    /// returned handle is shut down or dropped: an application's router that calls
    /// [`RaftService::route`] on the [`service`](HttpNode::service) first (synchronously, in
    /// the service call, so that a connection's AppendEntries keep their order).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use hyper::{Request, Response};
    /// use raft_http::{HttpNode, ResponseBody, Routed};
    ///
    /// # async fn example(http: HttpNode, node: raft_core::Node) {
    /// let raft = http.service(Arc::new(node.clone()));
    /// let app = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
    ///     let routed = raft.route(request);
    ///     async move {
    ///         let response = match routed {
    ///             Routed::Raft(answer) => answer.await,
    ///             Routed::Elsewhere(_request) => Response::new(ResponseBody::from("app")),
    ///         };
    ///         Ok::<_, std::convert::Infallible>(response)
    ///     }
    /// });
    /// let serving = http.serve_with(app);
    /// // ...
    /// serving.shutdown().await;
    /// node.shutdown().await;
    /// # }
    /// ```
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn serve_with<S, B>(self, service: S) -> Serving
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<raft_core::BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<raft_core::BoxError>,
    {
        Serving::spawn(self.id, self.local_addr, self.server, service)
    }
}
