//! [`HttpTransport`]: raft-core's [`Transport`] over HTTP/2 with prior knowledge on plain TCP,
//! or over TLS when [`ClientConfig::tls`] is set (see [`crate::tls`]).
//!
//! One long-lived connection per peer carries every request to it as concurrent streams, so the
//! node's pipelined AppendEntries are all in flight at once and their answers come back in any
//! order. Each request is bounded by `request_timeout` (connecting included) and then answers
//! [`raft_core::Error::Timeout`]; other failures answer [`raft_core::Error::Transport`] with a
//! [`RequestError`] as the source. A dead peer costs its own requests a connection attempt or
//! a fast backoff refusal, and nothing to the others (see `peer.rs`).
//!
//! Snapshot chunks go the same way, one chunk per request, under the same `request_timeout`.
//! A separate, longer timeout for them would change nothing: raft-core counts a chunk without
//! an answer after its `request_timeout_ms` as failed and abandons the call after twice that,
//! whatever the transport waits. What has to fit is the chunk: pick `snapshot_chunk_bytes` so
//! that one chunk crosses the slowest link well within `request_timeout_ms` (1 MiB, the
//! default, takes about 85 ms at 100 Mbit/s; 64 MiB, the maximum, takes over 5 s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, OpenStream,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, TimeoutNow,
};
use raft_core::transport::EntryStream;
use raft_core::{NodeId, Transport};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::client_config::ClientConfig;
use crate::codec;
use crate::error::{Error, RequestError};
use crate::members::PeerAddresses;
use crate::peer::Peer;
use crate::routes::Rpc;
use crate::stream_client;
use crate::tls::ClientTls;

/// The client side of raft-http: a [`Transport`] to the peers of a list of dial addresses.
///
/// ```
/// use std::sync::Arc;
/// use raft_core::NodeId;
/// use raft_http::{ClientConfig, ClusterAuth, HttpTransport};
///
/// # fn example() -> Result<(), raft_http::Error> {
/// let members = [
///     (NodeId(1), "127.0.0.1:7001"),
///     (NodeId(2), "127.0.0.1:7002"),
///     (NodeId(3), "http://127.0.0.1:7003"),
/// ];
/// let config = ClientConfig::new(ClusterAuth::new("my-cluster")?);
/// let transport = Arc::new(HttpTransport::new(members, config)?);
/// // Hand `transport.clone()` to `raft_core::Node::start`; keep the Arc to update addresses.
/// transport.set_peer(NodeId(3), "127.0.0.1:7103")?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct HttpTransport {
    peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    /// The peers `update_peers` added (learned from configurations), the only ones it removes:
    /// a peer given to `new` or `set_peer` keeps the dial address it was given.
    learned: RwLock<BTreeSet<NodeId>>,
    config: ClientConfig,
}

impl HttpTransport {
    /// A transport to `members` (id → `host:port` or `http://host:port`; with
    /// [`ClientConfig::tls`], `host:port` or `https://host:port`, both TLS). The local node may
    /// be in the list; nothing connects until the first request to a peer.
    ///
    /// These are **dial addresses** ([`PeerAddresses`]): where each peer's Raft routes are
    /// reached. The list `raft_core::Node::start` takes has the same shape and another meaning,
    /// the address *clients* are redirected to ([`Members`](crate::Members)); pass the same
    /// list to both only when the two addresses are the same. [`HttpNode`](crate::HttpNode)
    /// builds both from one set of peers.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] for an address that is not `host:port`, an `https://` one
    /// without TLS or an `http://` one with it; [`Error::Tls`] with TLS when the cluster id
    /// cannot be part of a node's DNS name.
    pub fn new<A: AsRef<str>>(
        members: impl IntoIterator<Item = (NodeId, A)>,
        config: ClientConfig,
    ) -> Result<HttpTransport, Error> {
        let mut peers = HashMap::new();
        for (id, address) in members {
            peers.insert(id, Arc::new(Peer::new(id, address.as_ref(), &config)?));
        }
        Ok(HttpTransport {
            peers: RwLock::new(peers),
            learned: RwLock::new(BTreeSet::new()),
            config,
        })
    }

    /// Sets (or changes) a peer's address. A changed address starts a new connection; requests
    /// already in flight on the old one finish there.
    ///
    /// # Errors
    /// As [`HttpTransport::new`].
    pub fn set_peer(&self, id: NodeId, address: &str) -> Result<(), Error> {
        let peer = Arc::new(Peer::new(id, address, &self.config)?);
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        // Set by hand: membership changes no longer replace or forget it.
        let mut learned = self.learned.write().unwrap_or_else(|e| e.into_inner());
        learned.remove(&id);
        drop(learned);
        if peers
            .get(&id)
            .is_some_and(|old| old.address() == peer.address())
        {
            return Ok(());
        }
        peers.insert(id, peer);
        Ok(())
    }

    /// Forgets a peer; its connection closes when its last request finishes.
    pub fn remove_peer(&self, id: NodeId) {
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        peers.remove(&id);
    }

    /// The TLS configuration, if the transport speaks TLS: keep it to
    /// [`reload`](crate::tls::ClientTls::reload) the certificates.
    #[must_use]
    pub fn tls(&self) -> Option<&ClientTls> {
        self.config.tls.as_ref()
    }

    /// The address a peer is dialled at, if it is known.
    #[must_use]
    pub fn peer_address(&self, id: NodeId) -> Option<String> {
        self.peer(id).map(|peer| peer.address().to_owned())
    }

    /// Every peer's dial address (as `host:port`).
    #[must_use]
    pub fn peer_addresses(&self) -> PeerAddresses {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers
            .iter()
            .map(|(id, peer)| (*id, peer.address()))
            .collect()
    }

    fn peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers.get(&id).cloned()
    }

    /// One RPC: encode, exchange under the request timeout, decode; metrics on the way.
    async fn call<T: DeserializeOwned>(
        &self,
        to: NodeId,
        rpc: Rpc,
        body: Result<Bytes, codec::EncodeError>,
    ) -> Result<T, raft_core::Error> {
        self.timed(to, rpc, |peer, config| async move {
            let answer = peer.exchange(rpc, body?, config).await?;
            Ok(codec::decode(&answer)?)
        })
        .await
    }

    /// Runs `exchange` with peer `to` under the request timeout: its latency recorded on
    /// success, its failure counted by kind, the error turned into raft-core's.
    async fn timed<'a, T, F, Fut>(
        &'a self,
        to: NodeId,
        rpc: Rpc,
        exchange: F,
    ) -> Result<T, raft_core::Error>
    where
        F: FnOnce(Arc<Peer>, &'a ClientConfig) -> Fut,
        Fut: std::future::Future<Output = Result<T, RequestError>>,
    {
        let Some(peer) = self.peer(to) else {
            return Err(RequestError::UnknownPeer(to).into_core(to));
        };
        let started = Instant::now();
        let exchange = exchange(peer.clone(), &self.config);
        match tokio::time::timeout(self.config.request_timeout, exchange).await {
            Ok(Ok(answer)) => {
                if let Some(latency) = peer.metrics.latency(rpc) {
                    latency.record(started.elapsed().as_secs_f64());
                }
                Ok(answer)
            }
            Ok(Err(error)) => {
                peer.metrics.error(error.kind());
                Err(error.into_core(to))
            }
            Err(_) => {
                peer.metrics.error("timeout");
                Err(raft_core::Error::Timeout)
            }
        }
    }
}

#[async_trait]
impl Transport for HttpTransport {
    async fn append_entries(
        &self,
        to: NodeId,
        request: AppendEntries,
    ) -> Result<AppendEntriesResponse, raft_core::Error> {
        let body = codec::encode_append_entries(&request);
        drop(request);
        self.call(to, Rpc::Append, body).await
    }

    async fn request_vote(
        &self,
        to: NodeId,
        request: RequestVote,
    ) -> Result<RequestVoteResponse, raft_core::Error> {
        self.call(to, Rpc::Vote, codec::encode(&request)).await
    }

    async fn timeout_now(&self, to: NodeId, request: TimeoutNow) -> Result<(), raft_core::Error> {
        self.call(to, Rpc::TimeoutNow, codec::encode(&request))
            .await
    }

    async fn read_index(
        &self,
        to: NodeId,
        request: ReadIndex,
    ) -> Result<ReadIndexResponse, raft_core::Error> {
        self.call(to, Rpc::ReadIndex, codec::encode(&request)).await
    }

    async fn install_snapshot(
        &self,
        to: NodeId,
        request: InstallSnapshot,
    ) -> Result<InstallSnapshotResponse, raft_core::Error> {
        let body = codec::encode_install_snapshot(&request);
        // The body holds the chunk now: release the request's reference to the data.
        drop(request);
        self.call(to, Rpc::Snapshot, body).await
    }

    /// Entry streams (streaming replication) go on the leader's HTTP/2 connection, to the
    /// [`STREAM_PATH`](crate::routes::STREAM_PATH) route.
    fn carries_streams(&self) -> bool {
        true
    }

    /// Opens an entry stream to the leader `to`: the opening must be accepted within
    /// `request_timeout`; the stream then lasts until either end stops it or the connection
    /// breaks (see `stream_client.rs`).
    async fn open_stream(
        &self,
        to: NodeId,
        open: OpenStream,
    ) -> Result<EntryStream, raft_core::Error> {
        self.timed(to, Rpc::Stream, |peer, config| async move {
            stream_client::open(&peer, &open, config).await
        })
        .await
    }

    /// A membership change: members new to this transport are dialled at the address their
    /// configuration entry names (the address the member was added with, or the one its node
    /// was started with: give dial addresses there when clients and peers reach a node at
    /// different ones), and the members it learned that way are forgotten once they leave.
    /// Peers given to [`HttpTransport::new`] or [`HttpTransport::set_peer`] keep the dial
    /// address they have.
    fn update_peers(&self, addresses: &BTreeMap<NodeId, String>) {
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        let mut learned = self.learned.write().unwrap_or_else(|e| e.into_inner());
        learned.retain(|id| {
            let member = addresses.contains_key(id);
            if !member {
                peers.remove(id);
            }
            member
        });
        for (&id, address) in addresses {
            if peers.contains_key(&id) {
                continue;
            }
            match Peer::new(id, address, &self.config) {
                Ok(peer) => {
                    tracing::info!(peer = %id, %address, "new member: dialling it");
                    peers.insert(id, Arc::new(peer));
                    learned.insert(id);
                }
                Err(error) => {
                    tracing::warn!(peer = %id, %address, %error, "a new member's address is unusable");
                }
            }
        }
    }
}
