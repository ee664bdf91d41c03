//! [`Nodes`]: the running nodes of a cluster, shared with the tasks a test spawns; writes that
//! follow the leader; [`wait_until`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::MemKv;
use crate::error::Error;
use crate::runtime::Node;
use crate::types::{LogIndex, NodeId};

/// Polls `condition` every 10 ms for up to 30 s (of tokio time); panics naming `what` if it
/// never holds.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What a client learned about one write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this index.
    Acked(LogIndex),
    /// Maybe committed, maybe not (timeout or shutdown after it was queued).
    Unknown,
}

impl Outcome {
    /// Whether the write was acknowledged.
    #[must_use]
    pub fn is_acked(&self) -> bool {
        matches!(self, Outcome::Acked(_))
    }
}

/// The running nodes of a [`Cluster`](super::Cluster) (each with its factory's handle), shared:
/// clones see the nodes the cluster starts and stops later, so tasks a test spawns can follow
/// the leader through failovers.
#[derive(Clone, Debug)]
pub struct Nodes<H> {
    inner: Arc<Mutex<BTreeMap<NodeId, (Node, H)>>>,
}

impl<H> Nodes<H> {
    pub(super) fn new() -> Nodes<H> {
        Nodes {
            inner: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<NodeId, (Node, H)>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn insert(&self, id: NodeId, node: Node, handle: H) {
        self.lock().insert(id, (node, handle));
    }

    pub(super) fn remove(&self, id: NodeId) -> Option<(Node, H)> {
        self.lock().remove(&id)
    }

    /// The running nodes' ids, in order.
    #[must_use]
    pub fn ids(&self) -> Vec<NodeId> {
        self.lock().keys().copied().collect()
    }

    /// The running nodes, in id order.
    #[must_use]
    pub fn nodes(&self) -> Vec<Node> {
        self.lock().values().map(|(node, _)| node.clone()).collect()
    }

    /// The first running node (in id order) that believes it leads.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.lock()
            .values()
            .find(|(node, _)| node.is_leader())
            .map(|(node, _)| node.id())
    }
}

impl<H: Clone> Nodes<H> {
    /// Node `id` and its handle, if it runs.
    #[must_use]
    pub fn get(&self, id: NodeId) -> Option<(Node, H)> {
        self.lock().get(&id).cloned()
    }

    /// The running nodes' handles, in id order.
    #[must_use]
    pub fn handles(&self) -> Vec<H> {
        self.lock()
            .values()
            .map(|(_, handle)| handle.clone())
            .collect()
    }

    /// Where a client sends its next request: `target` if it runs, else a node that believes it
    /// leads, else the first running node; `None` when nothing runs.
    #[must_use]
    pub fn pick(&self, target: Option<NodeId>) -> Option<(Node, H)> {
        let nodes = self.lock();
        target
            .and_then(|id| nodes.get(&id))
            .or_else(|| nodes.values().find(|(node, _)| node.is_leader()))
            .or_else(|| nodes.values().next())
            .cloned()
    }

    /// Writes `command` to whichever node leads, following redirects (3 s per attempt, up to
    /// 500 attempts); retries only when the outcome is known to be "not applied".
    pub async fn write(&self, command: Bytes) -> Outcome {
        let mut target: Option<NodeId> = None;
        for _ in 0..500 {
            let Some((node, _)) = self.pick(target) else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            match node
                .append_timeout(vec![command.clone()], Duration::from_secs(3))
                .await
            {
                Ok(appended) => return Outcome::Acked(appended.first.index),
                Err(Error::NotLeader { leader }) => {
                    target = leader.map(|hint| hint.id);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Known not applied: safe to retry.
                Err(Error::Discarded { .. } | Error::Overloaded | Error::Shutdown) => {
                    target = None;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => return Outcome::Unknown,
            }
        }
        Outcome::Unknown
    }
}

impl<H: Clone + Send + Sync + 'static> Nodes<H> {
    /// Spawns `clients` concurrent writers of `writes` unique [`MemKv::put`] commands each
    /// (`c{client}-{i}` = `{i}`), through [`write`](Nodes::write), pausing `pause` after each
    /// write (none if zero).
    #[must_use]
    pub fn spawn_writers(&self, clients: usize, writes: usize, pause: Duration) -> Writers {
        let tasks = (0..clients)
            .map(|client| {
                let nodes = self.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::with_capacity(writes);
                    for i in 0..writes {
                        let command = MemKv::put(format!("c{client}-{i}"), format!("{i}"));
                        let outcome = nodes.write(command.clone()).await;
                        outcomes.push((command, outcome));
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                    outcomes
                })
            })
            .collect();
        Writers { tasks }
    }
}

/// Writer tasks from [`Nodes::spawn_writers`].
#[derive(Debug)]
pub struct Writers {
    tasks: Vec<JoinHandle<Vec<(Bytes, Outcome)>>>,
}

impl Writers {
    /// Waits for every writer; every command with its outcome. A writer's panic goes on here.
    pub async fn join(self) -> Vec<(Bytes, Outcome)> {
        let mut all = Vec::new();
        for task in self.tasks {
            match task.await {
                Ok(outcomes) => all.extend(outcomes),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => panic!("a writer task did not finish: {error}"),
            }
        }
        all
    }
}
