//! A durable cluster whose membership changes while it runs, for the `catch-up` and
//! `membership-change` workloads: nodes on raft-storage-fs logs (one directory each, in one
//! temporary directory removed when the cluster is dropped), talking over loopback raft-http,
//! each applying to a [`SizedState`]. The first voters start together ([`Cluster::start`]);
//! a new node starts empty with `Node::start_joining` ([`Cluster::join`]) and waits for the
//! leader to add it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::runtime::{Node, NodeConfig};
use raft_core::{Entry, Error, NodeId, Payload, SnapshotReader, SnapshotSource, StateMachine};
use raft_http::{
    ClientConfig, ClusterAuth, HttpTransport, RaftService, Server, ServerConfig, ServiceConfig,
};
use raft_storage_fs::{FsLogStore, FsOptions};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::options::Options;

/// Bytes of one chunk a [`SizedState`] snapshot is produced and restored in.
const CHUNK_BYTES: usize = 1 << 20;

/// A state machine that keeps no data, only its size: each command adds its length (capped at
/// `cap`, as if later commands overwrote earlier keys). Its snapshot is that many bytes of a
/// fixed pattern, produced on the fly, so a snapshot weighs what a key-value store of the same
/// size would send and write, without holding the data in memory.
#[derive(Debug)]
pub(crate) struct SizedState {
    bytes: AtomicU64,
    cap: u64,
    /// Bytes read by `restore` (a learner that installed a snapshot), summed over calls.
    restored: AtomicU64,
}

impl SizedState {
    fn new(cap: Option<u64>) -> SizedState {
        SizedState {
            bytes: AtomicU64::new(0),
            cap: cap.unwrap_or(u64::MAX),
            restored: AtomicU64::new(0),
        }
    }

    /// The size of the state now.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The bytes `restore` read so far.
    pub(crate) fn restored(&self) -> u64 {
        self.restored.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl StateMachine for SizedState {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let added: u64 = entries
            .iter()
            .map(|entry| match &entry.payload {
                Payload::Command(bytes) => bytes.len() as u64,
                _ => 0,
            })
            .sum();
        let now = self.bytes().saturating_add(added).min(self.cap);
        self.bytes.store(now, Ordering::Relaxed);
        Ok(vec![Bytes::new(); entries.len()])
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        Ok(Box::new(PatternSource {
            left: self.bytes(),
            pattern: Bytes::from(vec![0x5a; CHUNK_BYTES]),
        }))
    }

    /// Reads the whole snapshot back in chunks (as a real state machine would) and takes its
    /// size as the state's.
    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let size = snapshot.meta().size;
        let mut offset = 0u64;
        while offset < size {
            let chunk = snapshot.read(offset, CHUNK_BYTES).await?;
            if chunk.is_empty() {
                return Err(Error::Restore(format!(
                    "the snapshot ended at {offset} of {size} bytes"
                )));
            }
            offset += chunk.len() as u64;
        }
        self.bytes.store(size, Ordering::Relaxed);
        self.restored.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}

/// `left` bytes of a fixed pattern, a chunk at a time (slices of one buffer: no copies).
struct PatternSource {
    left: u64,
    pattern: Bytes,
}

#[async_trait]
impl SnapshotSource for PatternSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        let take = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(self.pattern.len());
        self.left -= take as u64;
        Ok(Some(self.pattern.slice(..take)))
    }
}

/// One running node: the node, its state machine, its log and its server.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) node: Node,
    pub(crate) state: Arc<SizedState>,
    pub(crate) store: FsLogStore,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

/// The running nodes and the temporary directory holding their logs.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// Removed (with everything in it) when the cluster is dropped, on every path out.
    dir: TempDir,
    auth: ClusterAuth,
    config: NodeConfig,
    state_cap: Option<u64>,
    members: BTreeMap<NodeId, Member>,
}

impl Cluster {
    /// Starts voters `1..=voters` under a new temporary directory (in `--dir` when given) and
    /// waits for a leader whose first entry committed.
    pub(crate) async fn start(
        options: &Options,
        config: NodeConfig,
        voters: u64,
    ) -> Result<Cluster, Error> {
        let dir = match &options.dir {
            Some(dir) => tempfile::tempdir_in(dir),
            None => tempfile::tempdir(),
        }
        .map_err(|e| Error::Config(format!("cannot create a data directory: {e}")))?;
        let mut cluster = Cluster {
            dir,
            auth: ClusterAuth::new("raft-bench")?.with_secret("bench-secret")?,
            config,
            state_cap: options.state_bytes,
            members: BTreeMap::new(),
        };
        let ids: Vec<NodeId> = (1..=voters).map(NodeId).collect();
        let mut listeners = Vec::new();
        let mut addresses = BTreeMap::new();
        for &id in &ids {
            let (listener, address) = bind().await?;
            addresses.insert(id, address);
            listeners.push(listener);
        }
        for (id, listener) in ids.into_iter().zip(listeners) {
            let transport = cluster.transport(id, &addresses)?;
            let (store, state) = cluster.storage(id).await?;
            let node = Node::start(
                id,
                addresses.clone(),
                cluster.config.clone(),
                Arc::new(store.clone()),
                state.clone(),
                transport,
            )
            .await?;
            cluster.serve(node, state, store, listener);
        }
        let leader = cluster.leader(Duration::from_secs(30)).await?;
        leader.linearizable_read().await?;
        Ok(cluster)
    }

    /// Starts node `id` empty, with `Node::start_joining`, and returns the address the
    /// leader's `add_learner` must name.
    pub(crate) async fn join(&mut self, id: NodeId) -> Result<String, Error> {
        let (listener, address) = bind().await?;
        let transport = self.transport(id, &BTreeMap::new())?;
        let (store, state) = self.storage(id).await?;
        let node = Node::start_joining(
            id,
            address.clone(),
            self.config.clone(),
            Arc::new(store.clone()),
            state.clone(),
            transport,
        )
        .await?;
        self.serve(node, state, store, listener);
        Ok(address)
    }

    /// The configuration every node runs with.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Where the logs are.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether every running node is done with snapshots: none is being written (raft-storage-fs
    /// writes one to `snapshot-<sequence>.tmp`, then renames it `snapshot-<index>.snap`), and
    /// the newest file is the one the node's status shows (after the rename the store still
    /// syncs the directory and removes the previous file before the node adopts the new one).
    pub(crate) fn snapshots_settled(&self) -> bool {
        self.members.iter().all(|(id, member)| {
            let dir = self.dir.path().join(format!("node-{id}"));
            let Ok(entries) = std::fs::read_dir(dir) else {
                return false;
            };
            let mut newest = 0u64;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("snapshot-")) else {
                    continue;
                };
                if rest.ends_with(".tmp") {
                    return false;
                }
                if let Some(index) = rest.strip_suffix(".snap").and_then(|i| i.parse().ok()) {
                    newest = newest.max(index);
                }
            }
            member.node.status().snapshot_index.0 == newest
        })
    }

    /// A running member.
    pub(crate) fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The running nodes.
    pub(crate) fn nodes(&self) -> Vec<Node> {
        self.members.values().map(|m| m.node.clone()).collect()
    }

    /// The running node that leads, waiting up to `timeout` for one.
    pub(crate) async fn leader(&self, timeout: Duration) -> Result<Node, Error> {
        let nodes = self.nodes();
        let wait = async {
            loop {
                if let Some(leader) = nodes.iter().find(|n| n.is_leader()) {
                    return leader.clone();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::NoLeader)
    }

    /// Stops member `id` as an operator would after removing it: the node, its server, its log
    /// (its directory stays until the cluster is dropped).
    pub(crate) async fn stop(&mut self, id: NodeId) {
        if let Some(member) = self.members.remove(&id) {
            stop_member(member).await;
        }
    }

    /// Stops every member; the directory goes when `self` is dropped.
    pub(crate) async fn shutdown(mut self) {
        for (_, member) in std::mem::take(&mut self.members) {
            stop_member(member).await;
        }
    }

    fn transport(
        &self,
        id: NodeId,
        addresses: &BTreeMap<NodeId, String>,
    ) -> Result<Arc<HttpTransport>, Error> {
        let mut client = ClientConfig::new(self.auth.clone());
        client.node = Some(id);
        Ok(Arc::new(HttpTransport::new(addresses.clone(), client)?))
    }

    async fn storage(&self, id: NodeId) -> Result<(FsLogStore, Arc<SizedState>), Error> {
        let path = self.dir.path().join(format!("node-{id}"));
        let options = FsOptions::default().node(id);
        let store = tokio::task::spawn_blocking(move || FsLogStore::open(path, options))
            .await
            .map_err(|e| Error::Config(e.to_string()))?
            .map_err(Error::storage)?;
        Ok((store, Arc::new(SizedState::new(self.state_cap))))
    }

    fn serve(
        &mut self,
        node: Node,
        state: Arc<SizedState>,
        store: FsLogStore,
        listener: TcpListener,
    ) {
        let id = node.id();
        let mut service = ServiceConfig::new(self.auth.clone());
        service.node = Some(id);
        let service = service
            .clone()
            .with_snapshot_chunk_bytes(self.config.raft.snapshot_chunk_bytes)
            .unwrap_or(service);
        let service = RaftService::new(Arc::new(node.clone()), service);
        let server = Server::from_listener(listener, ServerConfig::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server.serve(service, async {
            let _ = stopped.await;
        }));
        let member = Member {
            node,
            state,
            store,
            stop,
            server,
        };
        self.members.insert(id, member);
    }
}

async fn stop_member(member: Member) {
    member.node.shutdown().await;
    let _ = member.stop.send(());
    let _ = member.server.await;
    member.store.close().await;
}

/// A listener on a free loopback port, and its address.
async fn bind() -> Result<(TcpListener, String), Error> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Config(format!("cannot bind loopback: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("no local address: {e}")))?;
    Ok((listener, address.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pattern_source_yields_exactly_its_size() {
        let mut source = PatternSource {
            left: (CHUNK_BYTES as u64) * 2 + 5,
            pattern: Bytes::from(vec![1; CHUNK_BYTES]),
        };
        let mut total = 0;
        while let Some(chunk) = source.next_chunk().await.unwrap() {
            total += chunk.len();
        }
        assert_eq!(total, CHUNK_BYTES * 2 + 5);
    }
}
