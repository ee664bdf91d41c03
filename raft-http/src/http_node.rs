//! [`HttpNode`] and its builder: everything a node needs to talk Raft over HTTP, set up in one
//! place (the two steps and where each setting goes are on the type).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use raft_core::{NodeConfig, NodeId, ServiceHandler};
use tokio::net::TcpListener;

use crate::auth::ClusterAuth;
use crate::client::HttpTransport;
use crate::client_config::ClientConfig;
use crate::error::Error;
use crate::members::{Members, PeerAddresses};
use crate::metrics::PrometheusHandle;
use crate::serve::{Server, ServerConfig};
use crate::server::RaftService;
use crate::service_config::ServiceConfig;
use crate::serving::Serving;

/// A change to a configuration the builder makes, applied before its shared settings.
type Tuning<C> = Box<dyn FnOnce(&mut C) + Send>;

/// Where the server listens.
#[derive(Debug)]
enum Listen {
    Address(String),
    Listener(TcpListener),
}

/// The settings of an [`HttpNode`]; see [`HttpNode::builder`].
#[must_use = "a builder does nothing until `bind`"]
pub struct HttpNodeBuilder {
    id: NodeId,
    listen: Option<Listen>,
    peers: Vec<(NodeId, String)>,
    advertised: Vec<(NodeId, String)>,
    cluster_id: Option<String>,
    secret: Option<String>,
    snapshot_chunk_bytes: u64,
    metrics: Option<PrometheusHandle>,
    server: ServerConfig,
    client_tuning: Vec<Tuning<ClientConfig>>,
    service_tuning: Vec<Tuning<ServiceConfig>>,
}

impl std::fmt::Debug for HttpNodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpNodeBuilder")
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field("advertised", &self.advertised)
            .field("cluster_id", &self.cluster_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("snapshot_chunk_bytes", &self.snapshot_chunk_bytes)
            .field("metrics", &self.metrics.is_some())
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl HttpNodeBuilder {
    /// Binds `address` (`host:port`; port 0 picks a free port, see
    /// [`HttpNode::local_addr`]). Peers dial this node here, and `/metrics` is served here.
    pub fn listen(mut self, address: impl Into<String>) -> HttpNodeBuilder {
        self.listen = Some(Listen::Address(address.into()));
        self
    }

    /// Serves on a listener the caller bound (instead of [`listen`](HttpNodeBuilder::listen)):
    /// for a cluster in one process on free ports, bind every listener first, then give each
    /// node the others' addresses.
    pub fn listener(mut self, listener: TcpListener) -> HttpNodeBuilder {
        self.listen = Some(Listen::Listener(listener));
        self
    }

    /// Adds a peer and the address its Raft routes are dialled at (`host:port` or
    /// `http://host:port`). Unless [`advertise`](HttpNodeBuilder::advertise) says otherwise, it
    /// is also the peer's client address in [`HttpNode::members`]. Every other member is one
    /// peer; this node is not.
    pub fn peer(mut self, id: NodeId, dial_address: impl Into<String>) -> HttpNodeBuilder {
        self.peers.push((id, dial_address.into()));
        self
    }

    /// Adds several peers, as [`peer`](HttpNodeBuilder::peer).
    pub fn peers<A: Into<String>>(
        mut self,
        peers: impl IntoIterator<Item = (NodeId, A)>,
    ) -> HttpNodeBuilder {
        self.peers
            .extend(peers.into_iter().map(|(id, address)| (id, address.into())));
        self
    }

    /// The address clients are redirected to when member `id` (this node or a peer) leads, when
    /// it is not where its Raft routes are: the address of an application's own listener, or a
    /// public name. By default a peer's is its dial address and this node's its bound address.
    pub fn advertise(mut self, id: NodeId, client_address: impl Into<String>) -> HttpNodeBuilder {
        self.advertised.push((id, client_address.into()));
        self
    }

    /// The cluster id every request carries and every server checks (required; visible ASCII).
    pub fn cluster(mut self, cluster_id: impl Into<String>) -> HttpNodeBuilder {
        self.cluster_id = Some(cluster_id.into());
        self
    }

    /// A shared secret every request carries and every server checks (visible ASCII); the same
    /// on every node. Without it the cluster id alone is checked.
    pub fn secret(mut self, secret: impl Into<String>) -> HttpNodeBuilder {
        self.secret = Some(secret.into());
        self
    }

    /// Takes what the HTTP side must agree on from the node's configuration (the same one given
    /// to `Node::start`, or a `ReplicaConfig`'s `node`): the snapshot chunk size
    /// (`config.raft.snapshot_chunk_bytes`), which sizes the server's snapshot body limit.
    pub fn node_config(self, config: &NodeConfig) -> HttpNodeBuilder {
        self.snapshot_chunk_bytes(config.raft.snapshot_chunk_bytes)
    }

    /// The nodes' `snapshot_chunk_bytes` (raft-core's default unless set here or by
    /// [`node_config`](HttpNodeBuilder::node_config)): the server admits snapshot chunks this
    /// large ([`ServiceConfig::with_snapshot_chunk_bytes`]). Set it whenever the node's
    /// configuration raises it, or every full chunk is refused and no snapshot installs.
    pub fn snapshot_chunk_bytes(mut self, chunk_bytes: u64) -> HttpNodeBuilder {
        self.snapshot_chunk_bytes = chunk_bytes;
        self
    }

    /// Serves `/metrics` from this Prometheus handle (see
    /// [`install_prometheus_recorder`](crate::metrics::install_prometheus_recorder)).
    pub fn metrics(mut self, handle: PrometheusHandle) -> HttpNodeBuilder {
        self.metrics = Some(handle);
        self
    }

    /// The server's connection settings (default: [`ServerConfig::default`]).
    pub fn server_config(mut self, config: ServerConfig) -> HttpNodeBuilder {
        self.server = config;
        self
    }

    /// Adjusts the transport's [`ClientConfig`] (timeouts, backoff, HTTP/2 windows); several
    /// calls apply in order. Its `auth` and `node` are the builder's: changes to them here are
    /// replaced.
    pub fn configure_client(
        mut self,
        tune: impl FnOnce(&mut ClientConfig) + Send + 'static,
    ) -> HttpNodeBuilder {
        self.client_tuning.push(Box::new(tune));
        self
    }

    /// Adjusts the server's [`ServiceConfig`] (body limits and timeouts; it starts with the
    /// snapshot body limit derived from the chunk size); several calls apply in order. Its
    /// `auth` and `node` are the builder's: changes to them here are replaced.
    pub fn configure_service(
        mut self,
        tune: impl FnOnce(&mut ServiceConfig) + Send + 'static,
    ) -> HttpNodeBuilder {
        self.service_tuning.push(Box::new(tune));
        self
    }

    /// Checks the settings, binds the listener and builds the transport.
    ///
    /// # Errors
    /// [`Error::Config`] without a listening address or cluster id, for a cluster id or secret
    /// that cannot go into a header, a chunk size outside raft-core's range, this node listed as
    /// its own peer, a peer given twice, an address advertised for a node that is not a member
    /// (or twice), or a listener on every interface (`0.0.0.0`, `[::]`) without an advertised
    /// address for this node; [`Error::InvalidAddress`] for a peer address that is not
    /// `host:port`; [`Error::Bind`] or [`Error::Io`] when the listener cannot be bound.
    pub async fn bind(self) -> Result<HttpNode, Error> {
        let HttpNodeBuilder {
            id,
            listen,
            peers,
            advertised,
            cluster_id,
            secret,
            snapshot_chunk_bytes,
            metrics,
            server,
            client_tuning,
            service_tuning,
        } = self;
        let Some(cluster_id) = cluster_id else {
            return Err(Error::Config(format!(
                "node {id}: no cluster id (call .cluster(...))"
            )));
        };
        let mut auth = ClusterAuth::new(&cluster_id)?;
        if let Some(secret) = &secret {
            auth = auth.with_secret(secret)?;
        }
        check_lists(id, &peers, &advertised)?;
        let mut service_config =
            ServiceConfig::new(auth.clone()).with_snapshot_chunk_bytes(snapshot_chunk_bytes)?;
        for tune in service_tuning {
            tune(&mut service_config);
        }
        service_config.auth = auth.clone();
        service_config.node = Some(id);
        let mut client = ClientConfig::new(auth.clone());
        for tune in client_tuning {
            tune(&mut client);
        }
        client.auth = auth;
        client.node = Some(id);
        let transport = Arc::new(HttpTransport::new(peers, client)?);
        let peer_addresses = transport.peer_addresses();

        let server = match listen {
            Some(Listen::Address(address)) => Server::bind(&address, server).await?,
            Some(Listen::Listener(listener)) => Server::from_listener(listener, server),
            None => {
                return Err(Error::Config(format!(
                    "node {id}: no listening address (call .listen(...) or .listener(...))"
                )));
            }
        };
        let local_addr = server.local_addr()?;
        let advertised_self = advertised.iter().find(|(member, _)| *member == id);
        let own_address = match advertised_self {
            Some((_, address)) => address.clone(),
            None if local_addr.ip().is_unspecified() => {
                return Err(Error::Config(format!(
                    "node {id} listens on {local_addr} (every interface): give the address \
                     clients reach it at with .advertise({id}, ...)"
                )));
            }
            None => local_addr.to_string(),
        };
        let mut members: Members = peer_addresses.iter().collect();
        members.insert(id, own_address);
        for (member, address) in advertised {
            members.insert(member, address);
        }
        Ok(HttpNode {
            id,
            server,
            local_addr,
            members,
            peer_addresses,
            transport,
            service_config,
            metrics,
        })
    }
}

/// No peer twice, not this node as a peer, addresses advertised once each and for members only.
fn check_lists(
    id: NodeId,
    peers: &[(NodeId, String)],
    advertised: &[(NodeId, String)],
) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for (peer, _) in peers {
        if *peer == id {
            return Err(Error::Config(format!(
                "node {id} is listed as its own peer"
            )));
        }
        if !seen.insert(*peer) {
            return Err(Error::Config(format!("node {id}: peer {peer} given twice")));
        }
    }
    let mut seen_advertised = std::collections::BTreeSet::new();
    for (member, _) in advertised {
        if *member != id && !seen.contains(member) {
            return Err(Error::Config(format!(
                "node {id}: an address advertised for {member}, which is not a member"
            )));
        }
        if !seen_advertised.insert(*member) {
            return Err(Error::Config(format!(
                "node {id}: two addresses advertised for {member}"
            )));
        }
    }
    Ok(())
}

/// A node's HTTP side, bound and ready: its listener (not yet serving), its transport, and its
/// two address lists. See the [crate docs](crate) for a complete example.
///
/// Two steps, because the node sits in the middle: the transport must exist before the node
/// starts, and the server needs the started node.
///
/// 1. [`HttpNode::builder`] … [`bind`](HttpNodeBuilder::bind) binds the listener and builds the
///    [`HttpTransport`]; [`HttpNode::members`] and [`HttpNode::transport`] are then what
///    `Node::start` (or `Replica::start`) takes.
/// 2. [`HttpNode::serve`] serves the started node's Raft routes (and `/metrics`), or
///    [`serve_with`](HttpNode::serve_with) an application's router with the routes of
///    [`HttpNode::service`] mounted inside; the [`Serving`] handle stops it.
///
/// **Every shared setting is given once**, to the builder, and flows from there:
///
/// - the node id ([`builder`](HttpNode::builder)): [`HttpNode::id`] (to start the node with)
///   and the `node` label of the client's metrics ([`ClientConfig::node`]) and of the server's
///   ([`ServiceConfig::node`]);
/// - [`cluster`](HttpNodeBuilder::cluster) and [`secret`](HttpNodeBuilder::secret): one
///   [`ClusterAuth`], sent by the transport and checked by the server;
/// - [`node_config`](HttpNodeBuilder::node_config) (or
///   [`snapshot_chunk_bytes`](HttpNodeBuilder::snapshot_chunk_bytes)): the server's snapshot
///   body limit ([`ServiceConfig::with_snapshot_chunk_bytes`]);
/// - [`listen`](HttpNodeBuilder::listen) (or [`listener`](HttpNodeBuilder::listener)): the
///   server's listener, whose bound address is this node's address in [`Members`] unless
///   [`advertise`](HttpNodeBuilder::advertise)d otherwise;
/// - [`peer`](HttpNodeBuilder::peer): the transport's dial address ([`PeerAddresses`]) and,
///   unless advertised otherwise, the peer's client address in [`Members`];
/// - [`metrics`](HttpNodeBuilder::metrics): the `/metrics` route
///   ([`RaftService::with_metrics`]).
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
}

impl HttpNode {
    /// A builder for node `id`: give it at least [`listen`](HttpNodeBuilder::listen) and
    /// [`cluster`](HttpNodeBuilder::cluster), the [`peer`](HttpNodeBuilder::peer)s, and the
    /// node's configuration ([`node_config`](HttpNodeBuilder::node_config)), then
    /// [`bind`](HttpNodeBuilder::bind).
    pub fn builder(id: NodeId) -> HttpNodeBuilder {
        HttpNodeBuilder {
            id,
            listen: None,
            peers: Vec::new(),
            advertised: Vec::new(),
            cluster_id: None,
            secret: None,
            snapshot_chunk_bytes: raft_core::Config::default().snapshot_chunk_bytes,
            metrics: None,
            server: ServerConfig::default(),
            client_tuning: Vec::new(),
            service_tuning: Vec::new(),
        }
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
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use hyper::{Request, Response};
    /// use raft_http::{HttpNode, Routed};
    ///
    /// # async fn example(http: HttpNode, node: raft_core::Node) {
    /// let raft = http.service(Arc::new(node.clone()));
    /// let app = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
    ///     let routed = raft.route(request);
    ///     async move {
    ///         let response = match routed {
    ///             Routed::Raft(answer) => answer.await,
    ///             Routed::Elsewhere(_request) => Response::new(Full::new(Bytes::from("app"))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> HttpNodeBuilder {
        HttpNode::builder(NodeId(1))
            .listen("127.0.0.1:0")
            .cluster("c")
    }

    fn config_error(result: Result<HttpNode, Error>) -> String {
        match result {
            Err(Error::Config(message)) => message,
            other => panic!("not a configuration error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn members_and_dial_addresses_are_two_lists() {
        let http = builder()
            .peer(NodeId(2), "http://10.0.0.2:7001")
            .peer(NodeId(3), "10.0.0.3:7001")
            .advertise(NodeId(3), "public-3.example:80")
            .bind()
            .await
            .unwrap();
        let own = http.local_addr().to_string();
        assert_ne!(http.local_addr().port(), 0, "the picked port");
        let members: Vec<_> = http.members().into_iter().collect();
        assert_eq!(
            members,
            [
                (NodeId(1), own),
                (NodeId(2), "10.0.0.2:7001".to_owned()),
                (NodeId(3), "public-3.example:80".to_owned()),
            ]
        );
        let dialled: Vec<_> = http.peer_addresses().iter().collect();
        assert_eq!(
            dialled,
            [(NodeId(2), "10.0.0.2:7001"), (NodeId(3), "10.0.0.3:7001")]
        );
        assert_eq!(
            http.transport().peer_address(NodeId(3)).as_deref(),
            Some("10.0.0.3:7001")
        );
        assert_eq!(http.service_config().node, Some(NodeId(1)));
    }

    #[tokio::test]
    async fn shared_settings_reach_both_sides_and_win_over_tuning() {
        let http = builder()
            .secret("s")
            .snapshot_chunk_bytes(4 << 20)
            .configure_service(|service| {
                service.node = Some(NodeId(9));
                service.max_body_bytes = 1 << 20;
            })
            .configure_client(|client| client.node = Some(NodeId(9)))
            .bind()
            .await
            .unwrap();
        let service = http.service_config();
        assert_eq!(service.node, Some(NodeId(1)));
        assert_eq!(service.max_body_bytes, 1 << 20);
        assert_eq!(
            service.max_snapshot_body_bytes,
            (4 << 20) + crate::SNAPSHOT_BODY_OVERHEAD_BYTES
        );
        assert_eq!(service.auth.cluster_id(), "c");
    }

    #[tokio::test]
    async fn inconsistent_settings_are_refused() {
        let no_listen = HttpNode::builder(NodeId(1)).cluster("c").bind().await;
        assert!(config_error(no_listen).contains("listen"));
        let no_cluster = HttpNode::builder(NodeId(1))
            .listen("127.0.0.1:0")
            .bind()
            .await;
        assert!(config_error(no_cluster).contains("cluster"));
        let own_peer = builder().peer(NodeId(1), "a:1").bind().await;
        assert!(config_error(own_peer).contains("own peer"));
        let twice = builder()
            .peer(NodeId(2), "a:1")
            .peer(NodeId(2), "a:2")
            .bind();
        assert!(config_error(twice.await).contains("twice"));
        let stranger = builder().advertise(NodeId(5), "x:1").bind().await;
        assert!(config_error(stranger).contains("not a member"));
        let chunk = builder().snapshot_chunk_bytes(0).bind().await;
        assert!(config_error(chunk).contains("chunk"));
        let everywhere = HttpNode::builder(NodeId(1))
            .listen("0.0.0.0:0")
            .cluster("c")
            .bind()
            .await;
        assert!(config_error(everywhere).contains("advertise"));
        let advertised = HttpNode::builder(NodeId(1))
            .listen("0.0.0.0:0")
            .cluster("c")
            .advertise(NodeId(1), "node-1.example:7001")
            .bind()
            .await
            .unwrap();
        assert_eq!(
            advertised.members().get(NodeId(1)),
            Some("node-1.example:7001")
        );
        assert!(matches!(
            builder().peer(NodeId(2), "no port").bind().await,
            Err(Error::InvalidAddress { .. })
        ));
    }
}
