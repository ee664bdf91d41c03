//! [`HttpNodeBuilder`]: the settings of an [`HttpNode`], checked and turned into both sides'
//! configurations by [`bind`](HttpNodeBuilder::bind).

use std::sync::Arc;
use std::time::Duration;

use raft_core::{NodeConfig, NodeId};
use tokio::net::TcpListener;

use crate::auth::ClusterAuth;
use crate::client::HttpTransport;
use crate::client_config::ClientConfig;
use crate::error::Error;
use crate::http_node::HttpNode;
use crate::members::Members;
use crate::metrics::PrometheusHandle;
use crate::serve::{Server, ServerConfig};
use crate::service_config::ServiceConfig;
use crate::tls::{ClientAuth, ClientTls, ServerTls, TlsFiles, TlsReloader};

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
    tls: Option<TlsFiles>,
    tls_client_auth: ClientAuth,
    tls_reload_interval: Option<Duration>,
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
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
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
            tls: None,
            tls_client_auth: ClientAuth::Required,
            tls_reload_interval: None,
        }
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
    /// `http://host:port`; with [`tls`](HttpNodeBuilder::tls), `host:port` or
    /// `https://host:port`). Unless [`advertise`](HttpNodeBuilder::advertise) says otherwise, it
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

    /// Mutual TLS between the peers, from PEM files: the peers' CA, and this node's certificate
    /// (which must name it, `node-<id>.<cluster-id>`: see [`crate::tls`]) and key. Both sides
    /// use them: the server presents the certificate and requires (see
    /// [`tls_client_auth`](HttpNodeBuilder::tls_client_auth)) and verifies a client
    /// certificate, its Raft routes refuse a request whose sender the certificate does not name
    /// ([`ServiceConfig::require_peer_certificate`]); the transport dials every peer in TLS and
    /// accepts only the certificate of the node it dials. Without it, everything is plaintext.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use raft_core::NodeId;
    /// use raft_http::{HttpNode, TlsFiles};
    ///
    /// # async fn example() -> Result<(), raft_http::Error> {
    /// let http = HttpNode::builder(NodeId(1))
    ///     .listen("10.0.0.1:7001")
    ///     .peer(NodeId(2), "10.0.0.2:7001") // TLS, expecting a certificate of node-2.prod
    ///     .cluster("prod")
    ///     .tls(TlsFiles::new("ca.pem", "node-1.pem", "node-1.key"))
    ///     .tls_reload_interval(Duration::from_secs(60)) // rotated files are picked up
    ///     .bind()
    ///     .await?;
    /// let reloader = http.tls_reloader(); // or reload on demand (say, on SIGHUP)
    /// # let _ = reloader;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, files: TlsFiles) -> HttpNodeBuilder {
        self.tls = Some(files);
        self
    }

    /// With [`tls`](HttpNodeBuilder::tls): whether the listener demands a client certificate
    /// during the handshake ([`ClientAuth::Required`], the default) or accepts clients without
    /// one ([`ClientAuth::Optional`]), for an application that serves its own clients on the
    /// same listener ([`HttpNode::serve_with`]). Either way the Raft routes refuse a request
    /// without a certificate naming its sender.
    pub fn tls_client_auth(mut self, client_auth: ClientAuth) -> HttpNodeBuilder {
        self.tls_client_auth = client_auth;
        self
    }

    /// With [`tls`](HttpNodeBuilder::tls): checks the files every `every` and reloads the
    /// certificates when they change (new connections use them; see [`crate::tls`]). Without
    /// it they are reloaded only through [`HttpNode::tls_reloader`].
    pub fn tls_reload_interval(mut self, every: Duration) -> HttpNodeBuilder {
        self.tls_reload_interval = Some(every);
        self
    }

    /// The server's connection settings (default: [`ServerConfig::default`]); with
    /// [`tls`](HttpNodeBuilder::tls) its `tls` is the builder's.
    pub fn server_config(mut self, config: ServerConfig) -> HttpNodeBuilder {
        self.server = config;
        self
    }

    /// Adjusts the transport's [`ClientConfig`] (timeouts, backoff, HTTP/2 windows); several
    /// calls apply in order. Its `auth` and `node` (and with [`tls`](HttpNodeBuilder::tls), its
    /// `tls`) are the builder's: changes to them here are replaced.
    pub fn configure_client(
        mut self,
        tune: impl FnOnce(&mut ClientConfig) + Send + 'static,
    ) -> HttpNodeBuilder {
        self.client_tuning.push(Box::new(tune));
        self
    }

    /// Adjusts the server's [`ServiceConfig`] (body limits and timeouts; it starts with the
    /// snapshot body limit derived from the chunk size); several calls apply in order. Its
    /// `auth` and `node` (and with [`tls`](HttpNodeBuilder::tls), `require_peer_certificate`)
    /// are the builder's: changes to them here are replaced.
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
    /// `host:port` (or `http://` with TLS); [`Error::Tls`] for unusable TLS files (or a
    /// certificate that does not name this node, or a cluster id unfit for a DNS name), and
    /// [`Error::Config`] for a reload interval without TLS; [`Error::Bind`] or [`Error::Io`]
    /// when the listener cannot be bound.
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
            mut server,
            client_tuning,
            service_tuning,
            tls,
            tls_client_auth,
            tls_reload_interval,
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
        let tls = match &tls {
            Some(files) => {
                let server_files = files
                    .server(&cluster_id, id)
                    .with_client_auth(tls_client_auth);
                let server_tls = ServerTls::load(server_files)?;
                let client_tls = ClientTls::load(files.client(&cluster_id, id))?;
                Some((server_tls, client_tls))
            }
            None if tls_reload_interval.is_some() => {
                return Err(Error::Config(format!(
                    "node {id}: a TLS reload interval without TLS (call .tls(...))"
                )));
            }
            None => None,
        };
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
        if let Some((server_tls, client_tls)) = &tls {
            server.tls = Some(server_tls.clone());
            client.tls = Some(client_tls.clone());
            service_config.require_peer_certificate = true;
        }
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
        let tls = tls
            .map(|(server_tls, client_tls)| TlsReloader::new(Some(server_tls), Some(client_tls)));
        if let (Some(reloader), Some(every)) = (&tls, tls_reload_interval) {
            reloader.watch(every)?;
        }
        Ok(HttpNode::new(
            id,
            server,
            local_addr,
            members,
            peer_addresses,
            transport,
            service_config,
            metrics,
            tls,
        ))
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
    async fn a_reload_interval_without_tls_is_refused() {
        let result = builder()
            .tls_reload_interval(Duration::from_secs(1))
            .bind()
            .await;
        assert!(config_error(result).contains("TLS"));
    }

    #[tokio::test]
    async fn unreadable_tls_files_are_refused_at_bind() {
        let result = builder()
            .tls(TlsFiles::new(
                "/nonexistent/ca.pem",
                "/nonexistent/n.pem",
                "/nonexistent/k",
            ))
            .bind()
            .await;
        match result {
            Err(Error::Tls(message)) => assert!(message.contains("/nonexistent/"), "{message}"),
            other => panic!("not a TLS error: {other:?}"),
        }
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
