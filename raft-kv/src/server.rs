//! [`KvNode`]: one raft-kv node — a durable log, a replica with client sessions, and one HTTP
//! listener serving the peer routes, the client API and `/metrics`, in plaintext or TLS
//! ([`crate::tls`]).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use raft_core::{NodeConfig, NodeId};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, ResponseBody, Routed, Server,
    ServerConfig, ServiceConfig, TlsReloader,
};
use raft_storage_fs::{FsLogStore, FsOptions};
use raft_wrapper::{Replica, ReplicaConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{ApiConfig, KvApi};
use crate::error::Error;
use crate::exposure::Guards;
use crate::join::JoinTls;
use crate::state::KvState;
use crate::tls::{NodeTls, TlsOptions, dial_address};

/// How one node runs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node's id.
    pub id: NodeId,
    /// The address to bind (`host:port`; port 0 picks one).
    pub listen: String,
    /// The address peers and clients use to reach this node (default: the bound address).
    pub advertise: Option<String>,
    /// The other members: id and `host:port` (`http://` or, with TLS, `https://` may precede
    /// it). Only read when the cluster is created (a node's log and snapshot hold the
    /// membership afterwards); empty with `join`.
    pub peers: Vec<(NodeId, String)>,
    /// Join the existing cluster that a member at this URL belongs to (`http://host:port`,
    /// with TLS `https://host:port`, or `host:port`): the node starts with no members and asks
    /// to be added as a learner. A data directory started this way keeps joining at later
    /// starts (see [`crate::join::JOINED_MARKER`]).
    pub join: Option<String>,
    /// The directory of this node's log, hard state and snapshots.
    pub data_dir: PathBuf,
    /// Log size (bytes) that triggers a snapshot and compaction; 0 switches it off. It also
    /// sizes the log's segment files ([`FsOptions::for_snapshot_threshold`]: an eighth of it,
    /// 64 KiB to 64 MiB), so the log on disk stays within about twice the threshold.
    pub snapshot_threshold: u64,
    /// Write zeros into each log segment before use (the default; see
    /// [`FsOptions::zero_fill`]). On journaled ext4 and XFS the zeros let every later
    /// `fdatasync` skip metadata. Where that gains nothing (ext4 without a journal, tmpfs)
    /// `false` (sparse segments) saves writing each segment twice; it is safe either way.
    pub zero_fill_segments: bool,
    /// The cluster id every peer request must carry.
    pub cluster_id: String,
    /// A shared secret peer requests must carry, if set; it also guards the admin routes when
    /// there is no `api_token`.
    pub secret: Option<String>,
    /// Mutual TLS between the peers and TLS for the client API (`None`: plaintext).
    pub tls: Option<TlsOptions>,
    /// A bearer token the client API's writes and admin routes must carry (see
    /// [`crate::auth`]).
    pub api_token: Option<String>,
    /// Serve even where others can reach the node without TLS or a secret (see
    /// [`crate::exposure`]); a warning is logged.
    pub insecure: bool,
    /// Limits of the client API (largest value, read and body timeouts).
    pub api: ApiConfig,
    /// The consensus settings (its `snapshot_log_bytes` is replaced by `snapshot_threshold`).
    /// raft-kv replicates over entry streams by default (`Replication::Streaming`: faster than
    /// pipelined requests over raft-http in `benches/replication-modes.sh`, see the README).
    pub raft: NodeConfig,
    /// The Prometheus registry `/metrics` renders (one per process).
    pub metrics: Option<PrometheusHandle>,
}

impl NodeOptions {
    /// Defaults for node `id` listening on `listen` with its data in `data_dir`.
    #[must_use]
    pub fn new(id: NodeId, listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            id,
            listen: listen.into(),
            advertise: None,
            peers: Vec::new(),
            join: None,
            data_dir: data_dir.into(),
            snapshot_threshold: 64 << 20,
            zero_fill_segments: true,
            cluster_id: "raft-kv".to_owned(),
            secret: None,
            tls: None,
            api_token: None,
            insecure: false,
            api: ApiConfig::default(),
            raft: streaming_node_config(),
            metrics: None,
        }
    }
}

/// raft-core's defaults, with streaming replication.
fn streaming_node_config() -> NodeConfig {
    let mut config = NodeConfig::default();
    config.raft.replication = raft_core::Replication::Streaming;
    config
}

/// A running node. Stop it with [`shutdown`](KvNode::shutdown).
#[derive(Debug)]
pub struct KvNode {
    id: NodeId,
    address: String,
    /// `http` or `https`.
    scheme: &'static str,
    /// Reloads the certificates, with TLS.
    tls: Option<TlsReloader>,
    replica: Replica,
    state: KvState,
    store: FsLogStore,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
    /// The task asking the cluster to add this node (`join`), until it is done.
    joiner: Option<JoinHandle<()>>,
}

impl KvNode {
    /// Binds the listener, opens (or recovers) the log in `data_dir`, starts the replica and
    /// serves until [`shutdown`](KvNode::shutdown).
    ///
    /// # Errors
    /// [`Error::Config`] for inconsistent options, [`Error::Unprotected`] for an address others
    /// can reach without TLS, a secret or `insecure`, [`Error::Tls`] for an address whose scheme
    /// does not fit TLS, [`Error::Http`] for unusable TLS files or when the address cannot be
    /// bound, [`Error::Storage`] when the log cannot be opened, [`Error::Raft`] when the node
    /// cannot start.
    pub async fn start(options: NodeOptions) -> Result<KvNode, Error> {
        let id = options.id;
        if options.peers.iter().any(|(peer, _)| *peer == id) {
            return Err(Error::Config(format!(
                "node {id} is listed as its own peer"
            )));
        }
        if options.join.is_some() && !options.peers.is_empty() {
            return Err(Error::Config(
                "--join and --peer exclude each other: a joining node learns its peers from the cluster"
                    .to_owned(),
            ));
        }
        entries_fit_peer_requests(
            &options.api,
            &options.raft,
            raft_http::DEFAULT_MAX_BODY_BYTES,
        )?;
        let tls_on = options.tls.is_some();
        let peers = options
            .peers
            .iter()
            .map(|(peer, address)| {
                Ok((
                    *peer,
                    dial_address(&format!("--peer {peer}"), address, tls_on)?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let join = options
            .join
            .as_deref()
            .map(|url| dial_address("--join", url, tls_on))
            .transpose()?;
        check_exposure(&options, &peers, join.as_deref())?;
        let tls = options
            .tls
            .as_ref()
            .map(|tls| NodeTls::load(tls, &options.cluster_id, id))
            .transpose()?;
        let reloader = tls.as_ref().map(NodeTls::reloader);
        if let (Some(reloader), Some(every)) = (
            &reloader,
            options.tls.as_ref().and_then(|tls| tls.reload_interval),
        ) {
            reloader.watch(every)?;
        }
        let mut server_config = ServerConfig::default();
        server_config.tls = tls.as_ref().map(|tls| tls.server.clone());
        let server = Server::bind(&options.listen, server_config).await?;
        let bound = server.local_addr()?;
        let address = match &options.advertise {
            Some(address) => address.clone(),
            None if bound.ip().is_unspecified() => {
                return Err(Error::Config(format!(
                    "listening on {bound} (every interface): give the address peers and clients reach this node at with --advertise"
                )));
            }
            None => bound.to_string(),
        };
        let mut members = vec![(id, address.clone())];
        members.extend(peers);

        let mut auth = ClusterAuth::new(&options.cluster_id)?;
        if let Some(secret) = &options.secret {
            auth = auth.with_secret(secret)?;
        }
        let mut client = ClientConfig::new(auth.clone());
        client.node = Some(id);
        client.tls = tls.as_ref().map(|tls| tls.client.clone());
        let transport = Arc::new(HttpTransport::new(members.iter().cloned(), client)?);

        std::fs::create_dir_all(&options.data_dir).map_err(|source| Error::DataDir {
            dir: options.data_dir.clone(),
            source,
        })?;
        let marker = options.data_dir.join(crate::join::JOINED_MARKER);
        if options.join.is_some() && !marker.exists() {
            std::fs::write(&marker, b"started with --join\n").map_err(|source| Error::DataDir {
                dir: options.data_dir.clone(),
                source,
            })?;
        }
        let joining = marker.exists();
        // Segments sized from the snapshot threshold, so compaction keeps the files near it.
        let store_options = FsOptions::for_snapshot_threshold(options.snapshot_threshold)
            .node(id)
            .zero_fill(options.zero_fill_segments);
        let store = FsLogStore::open(&options.data_dir, store_options)?;
        let state = KvState::new();
        let mut raft = options.raft.clone();
        raft.snapshot_log_bytes = options.snapshot_threshold;
        let chunk_bytes = raft.raft.snapshot_chunk_bytes;
        let mut config = ReplicaConfig::default();
        config.node = raft;
        let (log, machine) = (Arc::new(store.clone()), Arc::new(state.clone()));
        let replica = if joining {
            Replica::start_joining(id, address.clone(), config, log, machine, transport).await?
        } else {
            Replica::start(id, members, config, log, machine, transport).await?
        };

        let mut service_config = ServiceConfig::new(auth).with_snapshot_chunk_bytes(chunk_bytes)?;
        service_config.node = Some(id);
        service_config.require_peer_certificate = tls_on;
        let mut raft_service = RaftService::new(Arc::new(replica.node().clone()), service_config);
        if let Some(handle) = options.metrics.clone() {
            raft_service = raft_service.with_metrics(handle);
        }
        // Shared by every request's future (cloning the API itself would copy its strings).
        let api = Arc::new(
            KvApi::new(replica.clone(), state.clone(), options.api)
                .with_admin_secret(options.secret.clone())
                .with_api_token(options.api_token.clone())
                .with_tls(tls_on),
        );
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            // Routing runs here, synchronously, so a connection's AppendEntries keep their order.
            let routed = raft_service.route(request);
            let api = api.clone();
            // Boxed: hyper moves each request's future into a task of its own, and this one
            // (the whole client path inline) is over 3 KB; a box moves as a pointer.
            Box::pin(async move {
                let response: Response<ResponseBody> = match routed {
                    Routed::Raft(answer) => answer.await,
                    Routed::Elsewhere(request) => api.handle(request).await.map(ResponseBody::from),
                };
                Ok::<_, Infallible>(response)
            })
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(service, async {
            let _ = stopped.await;
        }));
        tracing::info!(node = %id, %address, tls = tls_on, dir = %options.data_dir.display(), "raft-kv node serving");
        let joiner = join.map(|url| {
            let address = address.clone();
            // The admin routes want the API token, or the secret when there is none.
            let token = options.api_token.clone().or_else(|| options.secret.clone());
            let join_tls = tls
                .as_ref()
                .map(|tls| JoinTls::new(tls.client.clone(), options.cluster_id.clone()));
            tokio::spawn(async move {
                let joined =
                    crate::join::join(&url, id, &address, token.as_deref(), join_tls.as_ref());
                if let Err(reason) = joined.await {
                    tracing::error!(%url, %reason, "the cluster refused to add this node");
                }
            })
        });
        Ok(KvNode {
            id,
            address,
            scheme: if tls_on { "https" } else { "http" },
            tls: reloader,
            replica,
            state,
            store,
            stop: Some(stop),
            serving: Some(serving),
            joiner,
        })
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The URL clients use (`http://host:port`, or `https://host:port` with TLS).
    #[must_use]
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// With TLS: reloads the certificates from their files (for new connections; a failed
    /// reload keeps the ones in force), as `serve` does on SIGHUP.
    #[must_use]
    pub fn tls_reloader(&self) -> Option<&TlsReloader> {
        self.tls.as_ref()
    }

    /// The replica (status, reads, submits from inside the process).
    #[must_use]
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// This replica's key-value map.
    #[must_use]
    pub fn state(&self) -> &KvState {
        &self.state
    }

    /// Stops gracefully: stops accepting connections and lets open requests finish, stops the
    /// replica (pending writes get an answer), then closes the log after its last sync.
    pub async fn shutdown(mut self) {
        if let Some(joiner) = self.joiner.take() {
            joiner.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
        self.replica.shutdown().await;
        self.store.close().await;
        tracing::info!(node = %self.id, "raft-kv node stopped");
    }
}

/// Refuses to serve unprotected where others can reach the node (see [`crate::exposure`]).
fn check_exposure(
    options: &NodeOptions,
    peers: &[(NodeId, String)],
    join: Option<&str>,
) -> Result<(), Error> {
    let mut addresses = vec![("--listen".to_owned(), options.listen.clone())];
    if let Some(advertise) = &options.advertise {
        addresses.push(("--advertise".to_owned(), advertise.clone()));
    }
    for (peer, address) in peers {
        addresses.push((format!("--peer {peer} at"), address.clone()));
    }
    if let Some(join) = join {
        addresses.push(("--join".to_owned(), join.to_owned()));
    }
    let addresses: Vec<(&str, &str)> = addresses
        .iter()
        .map(|(what, address)| (what.as_str(), address.as_str()))
        .collect();
    let guards = Guards {
        tls: options.tls.is_some(),
        secret: options.secret.is_some(),
        api_token: options.api_token.is_some(),
        insecure: options.insecure,
    };
    crate::exposure::check(&addresses, guards)
}

/// Room in a peer request beyond its entries (the envelope, the entries' headers).
const REQUEST_OVERHEAD_BYTES: usize = 64 << 10;

/// Checks that the largest log entry the client API can make (a batch body, or a value with the
/// longest key) fits in one AppendEntries the peers accept (`peer_body_limit`), next to a full
/// batch of other entries: else such an entry would be refused by every follower, again and
/// again, and nothing after it would ever commit.
fn entries_fit_peer_requests(
    api: &ApiConfig,
    raft: &NodeConfig,
    peer_body_limit: usize,
) -> Result<(), Error> {
    let largest_entry = api.max_batch_bytes.max(
        api.max_value_bytes
            .saturating_add(crate::api::MAX_KEY_BYTES),
    );
    let batch = usize::try_from(raft.raft.batch_bytes_max).unwrap_or(usize::MAX);
    let request = largest_entry
        .saturating_add(batch)
        .saturating_add(REQUEST_OVERHEAD_BYTES);
    if request > peer_body_limit {
        return Err(Error::Config(format!(
            "the client API's limits (batches of {} bytes, values of {}) allow log entries \
             that need peer requests of up to {request} bytes, over the peers' body limit of \
             {peer_body_limit}: lower api.max_batch_bytes, api.max_value_bytes or \
             raft.batch_bytes_max",
            api.max_batch_bytes, api.max_value_bytes
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limits_make_entries_the_peers_accept() {
        let (api, raft) = (ApiConfig::default(), NodeConfig::default());
        assert!(entries_fit_peer_requests(&api, &raft, raft_http::DEFAULT_MAX_BODY_BYTES).is_ok());
    }

    #[test]
    fn batches_larger_than_a_peer_request_are_refused_at_start() {
        let api = ApiConfig {
            max_batch_bytes: raft_http::DEFAULT_MAX_BODY_BYTES,
            ..ApiConfig::default()
        };
        let refused = entries_fit_peer_requests(
            &api,
            &NodeConfig::default(),
            raft_http::DEFAULT_MAX_BODY_BYTES,
        );
        assert!(
            matches!(&refused, Err(Error::Config(message)) if message.contains("max_batch_bytes")),
            "{refused:?}"
        );
    }
}
