//! [`KvNode`]: one raft-kv node — a durable log, a replica with client sessions, and one HTTP
//! listener serving the peer routes, the client API and `/metrics`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use raft_core::{NodeConfig, NodeId};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, Routed, Server, ServerConfig,
    ServiceConfig,
};
use raft_storage_fs::{FsLogStore, FsOptions};
use raft_wrapper::{Replica, ReplicaConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{ApiConfig, KvApi};
use crate::error::Error;
use crate::state::KvState;

/// How one node runs.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node's id.
    pub id: NodeId,
    /// The address to bind (`host:port`; port 0 picks one).
    pub listen: String,
    /// The address peers and clients use to reach this node (default: the bound address).
    pub advertise: Option<String>,
    /// The other members: id and `host:port`. Only read when the cluster is created (a
    /// node's log and snapshot hold the membership afterwards); empty with `join`.
    pub peers: Vec<(NodeId, String)>,
    /// Join the existing cluster that a member at this URL belongs to (`http://host:port`):
    /// the node starts with no members and asks to be added as a learner. A data directory
    /// started this way keeps joining at later starts (see [`crate::join::JOINED_MARKER`]).
    pub join: Option<String>,
    /// The directory of this node's log, hard state and snapshots.
    pub data_dir: PathBuf,
    /// Log size (bytes) that triggers a snapshot and compaction; 0 switches it off.
    pub snapshot_threshold: u64,
    /// The cluster id every peer request must carry.
    pub cluster_id: String,
    /// A shared secret peer requests must carry, if set.
    pub secret: Option<String>,
    /// Limits of the client API (largest value, read and body timeouts).
    pub api: ApiConfig,
    /// The consensus settings (its `snapshot_log_bytes` is replaced by `snapshot_threshold`).
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
            cluster_id: "raft-kv".to_owned(),
            secret: None,
            api: ApiConfig::default(),
            raft: NodeConfig::default(),
            metrics: None,
        }
    }
}

/// A running node. Stop it with [`shutdown`](KvNode::shutdown).
#[derive(Debug)]
pub struct KvNode {
    id: NodeId,
    address: String,
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
    /// [`Error::Config`] for inconsistent options, [`Error::Http`] when the address cannot be
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
        let server = Server::bind(&options.listen, ServerConfig::default()).await?;
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
        members.extend(options.peers.iter().cloned());

        let mut auth = ClusterAuth::new(&options.cluster_id)?;
        if let Some(secret) = &options.secret {
            auth = auth.with_secret(secret)?;
        }
        let mut client = ClientConfig::new(auth.clone());
        client.node = Some(id);
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
        let store = FsLogStore::open(&options.data_dir, FsOptions::default().node(id))?;
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
        let mut raft_service = RaftService::new(Arc::new(replica.node().clone()), service_config);
        if let Some(handle) = options.metrics.clone() {
            raft_service = raft_service.with_metrics(handle);
        }
        let api = KvApi::new(replica.clone(), state.clone(), options.api)
            .with_admin_secret(options.secret.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            // Routing runs here, synchronously, so a connection's AppendEntries keep their order.
            let routed = raft_service.route(request);
            let api = api.clone();
            async move {
                let response: Response<Full<Bytes>> = match routed {
                    Routed::Raft(answer) => answer.await,
                    Routed::Elsewhere(request) => api.handle(request).await,
                };
                Ok::<_, Infallible>(response)
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(service, async {
            let _ = stopped.await;
        }));
        tracing::info!(node = %id, %address, dir = %options.data_dir.display(), "raft-kv node serving");
        let joiner = options.join.clone().map(|url| {
            let (address, secret) = (address.clone(), options.secret.clone());
            tokio::spawn(async move {
                if let Err(reason) = crate::join::join(&url, id, &address, secret.as_deref()).await
                {
                    tracing::error!(%url, %reason, "the cluster refused to add this node");
                }
            })
        });
        Ok(KvNode {
            id,
            address,
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

    /// The URL clients use (`http://host:port`).
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
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
