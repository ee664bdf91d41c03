//! [`Node`]: the handle an application holds. It starts the node's tasks, queues requests for
//! the event loop, reads the cheap getters and implements [`ServiceHandler`] for servers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::NodeConfig;
use super::applier::Applier;
use super::claim::ClaimGuard;
use super::event_loop::EventLoop;
use super::events::Event;
use super::executor::{Channels, Executor};
use super::membership::MembershipStatus;
use super::node_metrics::{append_latency_histogram, applied_index_gauge};
use super::peers::PeerSet;
use super::persist::write_hard_states;
use super::proposals::Proposal;
use super::reads::{ReadKind, ReadSlots};
use super::results::{CommitResult, Notify, PendingAppend};
use super::shared::Shared;
use super::snapshots::SnapshotMetrics;
use super::status::{Lifecycle, NodeStatus};
use crate::engine::Engine;
use crate::error::Error;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;
use crate::transport::Transport;
use crate::types::{EntryInfo, LogIndex, Membership, NodeId};

mod service;
mod status;

/// What the handles share; the last one dropped asks the loop to stop.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    loop_task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lifecycle.begin_shutdown();
        let _ = self.events.send(Event::Shutdown);
    }
}

/// A running Raft node: a cheap, cloneable handle.
///
/// Writes go through [`append`](Node::append) (blocking mode: resolves with the commit result),
/// [`append_async`](Node::append_async) / [`append_with_callback`](Node::append_with_callback)
/// (async-handler mode: returns the entries' position as soon as they are in the leader's log),
/// or, with [`NodeConfig::async_replication`], `append` resolves with the `pre_commit` result.
/// Reads use [`linearizable_read`](Node::linearizable_read) and then the application's own state
/// machine. Getters read a watch channel and never wait for the loop.
///
/// ```
/// # use bytes::Bytes;
/// # use raft_core::runtime::{Node, NodeConfig};
/// # use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
/// # use raft_core::NodeId;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), raft_core::Error> {
/// let network = MemNetwork::new(1);
/// let id = NodeId(1);
/// let node = Node::start(
///     id,
///     [(id, "in-process")],
///     NodeConfig::default(),
///     MemLogStore::new().into_arc(),
///     MemKv::new().into_arc(),
///     network.transport(id),
/// )
/// .await?;
/// network.register(id, &node);
/// let leader = node.wait_for_leader(std::time::Duration::from_secs(5)).await?;
/// assert_eq!(leader, id);
/// let appended = node.append(vec![MemKv::put("x", "1")]).await?;
/// assert_eq!(appended.first.index.0, 2); // after the leader's no-op
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Node {
    handle: Arc<Handle>,
}

impl Node {
    /// Starts a node: restores its state from `log`, then spawns its event loop, its apply task,
    /// its hard-state writer and one sender task per peer. `members` maps every voter (this node
    /// included) to its address (where clients are redirected, and what the transport learns
    /// for members added later). It is the configuration the cluster is created with: once the
    /// node's snapshot or log holds a configuration (after a membership change), that one is
    /// used and `members` only supplies addresses the configuration lacks.
    ///
    /// The state machine must be empty: the node restores its latest snapshot (if any) into it,
    /// then applies the log after that.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration or member list, [`Error::StoreInUse`] when
    /// `log` already backs a running node, [`Error::Storage`] or [`Error::Restore`] when the log
    /// cannot be read or is inconsistent.
    pub async fn start<A: Into<String>>(
        id: NodeId,
        members: impl IntoIterator<Item = (NodeId, A)>,
        config: NodeConfig,
        log: Arc<dyn LogStore>,
        state_machine: Arc<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Node, Error> {
        let members: BTreeMap<NodeId, String> = members
            .into_iter()
            .map(|(id, address)| (id, address.into()))
            .collect();
        if !members.contains_key(&id) {
            return Err(Error::Config(format!(
                "node {id} is not in its member list"
            )));
        }
        Node::launch(id, members, false, config, log, state_machine, transport).await
    }

    /// Starts a node that joins an existing cluster: with an empty log it knows no members,
    /// never campaigns, and waits for a leader to add it ([`Node::add_learner`] on the leader)
    /// and replicate to it. `address` is where peers reach it (as the leader's `add_learner`
    /// call names it). Once its log or snapshot holds a configuration, it starts like any
    /// node; keep starting it with this call (its configuration comes from its log).
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn start_joining(
        id: NodeId,
        address: impl Into<String>,
        config: NodeConfig,
        log: Arc<dyn LogStore>,
        state_machine: Arc<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Node, Error> {
        let members = BTreeMap::from([(id, address.into())]);
        Node::launch(id, members, true, config, log, state_machine, transport).await
    }

    async fn launch(
        id: NodeId,
        members: BTreeMap<NodeId, String>,
        joining: bool,
        config: NodeConfig,
        log: Arc<dyn LogStore>,
        state_machine: Arc<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Node, Error> {
        config.validate()?;
        if config.raft.replication == crate::config::Replication::Streaming
            && !transport.carries_streams()
        {
            // A follower whose stream can never open would get no entries.
            return Err(Error::Config(
                "replication = Streaming needs a transport that carries entry streams \
                 (Transport::carries_streams); this one does not: use Replication::Pipelined"
                    .to_owned(),
            ));
        }
        let claim = ClaimGuard::acquire(&log)?;
        let restored = log.restore().await?;
        let membership = if joining {
            Membership::default()
        } else {
            members.iter().fold(
                Membership::new(members.keys().copied()),
                |m, (&id, address)| m.with_address(id, address.clone()),
            )
        };
        let engine = Engine::new(id, membership, config.raft.clone(), restored, config.seed)?;

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (applied_tx, applied_rx) = watch::channel(LogIndex::ZERO);
        let status = NodeStatus::from_engine(&engine.status());
        let shared = Arc::new(Shared {
            id,
            membership: watch::Sender::new(MembershipStatus::from_engine(&engine)),
            bootstrap: members.clone(),
            config,
            queued: AtomicUsize::new(0),
            lifecycle: Lifecycle::default(),
            status: watch::Sender::new(status),
            applied: applied_rx,
            append_latency: append_latency_histogram(id),
            reads: ReadSlots::default(),
        });
        let span = tracing::info_span!("raft", node = %id);
        let mut tasks = Vec::new();

        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let applier = Applier::new(
            state_machine,
            log.clone(),
            events_tx.clone(),
            applied_tx,
            applied_index_gauge(id),
            SnapshotMetrics::new(id),
            &shared.config,
        );
        tasks.push(tokio::spawn(applier.run(apply_rx).instrument(span.clone())));

        let (hard_state_tx, hard_state_rx) = mpsc::unbounded_channel();
        let writer = write_hard_states(log.clone(), hard_state_rx, events_tx.clone());
        tasks.push(tokio::spawn(writer.instrument(span.clone())));

        // The loop starts one sender task per member, and follows membership changes.
        let peers = PeerSet::new(
            id,
            transport,
            log.clone(),
            events_tx.clone(),
            // Twice the engine's own timeout: the engine gives up on the request first.
            Duration::from_millis(shared.config.raft.request_timeout_ms.saturating_mul(2)),
            members,
            shared.config.raft.replication == crate::config::Replication::Streaming,
        );

        let channels = Channels {
            applier: apply_tx,
            hard_state: hard_state_tx,
            peers,
        };
        let executor = Executor::new(shared.clone(), log.clone(), channels);
        let event_loop = EventLoop::new(engine, events_rx, log, executor, tasks, claim);
        let loop_task = tokio::spawn(event_loop.run().instrument(span));
        Ok(Node {
            handle: Arc::new(Handle {
                shared,
                events: events_tx,
                loop_task: Mutex::new(Some(loop_task)),
            }),
        })
    }

    /// Appends commands as consecutive entries and waits for their commit results (in async
    /// replication mode, their pre-commit results). Concurrent calls are batched into one log
    /// append.
    ///
    /// # Errors
    /// [`Error::NotLeader`] with the leader to retry at; [`Error::Overloaded`] when the queue is
    /// full and [`Error::Shutdown`] when the node is stopping (in both cases nothing was
    /// queued); [`Error::Discarded`] when a newer leader replaced the entries (from its `index`
    /// on they never commit); [`Error::Aborted`] when the node stopped after accepting them (the
    /// outcome is unknown).
    pub async fn append(&self, commands: Vec<Bytes>) -> CommitResult {
        let started = tokio::time::Instant::now();
        let (sender, receiver) = oneshot::channel();
        let count = commands.len();
        self.enqueue_request(Event::Propose(Proposal {
            payloads: commands,
            count,
            accepted: None,
            notify: Notify::Channel(sender),
        }))?;
        let result = receiver.await.unwrap_or(Err(Error::Aborted));
        self.shared()
            .append_latency
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Appends one command and waits for its result: [`append`](Node::append) for the common
    /// case of a single command. Returns the entry's position and the state machine's result
    /// (in async replication mode, the pre-commit result).
    ///
    /// ```
    /// # use raft_core::runtime::{Node, NodeConfig};
    /// # use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
    /// # use raft_core::NodeId;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), raft_core::Error> {
    /// # let network = MemNetwork::new(1);
    /// # let id = NodeId(1);
    /// # let node = Node::start(id, [(id, "in-process")], NodeConfig::default(),
    /// #     MemLogStore::new().into_arc(), MemKv::new().into_arc(), network.transport(id)).await?;
    /// # network.register(id, &node);
    /// # node.wait_for_leader(std::time::Duration::from_secs(5)).await?;
    /// node.append_one(MemKv::put("x", "1")).await?;
    /// // MemKv answers a put with the value it replaced.
    /// let (entry, previous) = node.append_one(MemKv::put("x", "2")).await?;
    /// assert_eq!(entry.index.0, 3); // after the leader's no-op and the first put
    /// assert_eq!(&previous[..], b"1");
    /// # node.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`append`](Node::append).
    pub async fn append_one(&self, command: Bytes) -> Result<(EntryInfo, Bytes), Error> {
        let appended = self.append(vec![command]).await?;
        let index = appended.first.index;
        let result =
            appended.results.into_iter().next().ok_or_else(|| {
                Error::state_machine(format!("no result for the entry at {index}"))
            })?;
        Ok((appended.first, result))
    }

    /// Like [`append`](Node::append) with a deadline: [`Error::Timeout`] when it passes (the
    /// outcome is then unknown: the commands may still commit).
    ///
    /// # Errors
    /// As `append`, plus [`Error::Timeout`].
    pub async fn append_timeout(&self, commands: Vec<Bytes>, timeout: Duration) -> CommitResult {
        tokio::time::timeout(timeout, self.append(commands))
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    /// Async-handler mode: returns as soon as the leader has appended the commands to its log
    /// (not yet durable or replicated), with their position and a handle to wait for the
    /// result later (or drop).
    ///
    /// # Errors
    /// [`Error::NotLeader`], [`Error::Overloaded`], [`Error::Shutdown`] as for `append`.
    pub async fn append_async(&self, commands: Vec<Bytes>) -> Result<PendingAppend, Error> {
        let (result_sender, result) = oneshot::channel();
        let notify = Notify::Channel(result_sender);
        let count = commands.len() as u64;
        let started = tokio::time::Instant::now();
        let first = self.propose_accepted(commands, notify).await?;
        Ok(PendingAppend {
            first,
            count,
            result,
            started,
            append_latency: self.shared().append_latency.clone(),
        })
    }

    /// Async-handler mode with a callback: returns the first entry's position once the commands
    /// are in the leader's log; `callback` later gets the result. It runs on the node's apply
    /// task, so it must be quick (hand heavy work to a task). It is not called if this method
    /// returns an error.
    ///
    /// # Errors
    /// [`Error::NotLeader`], [`Error::Overloaded`], [`Error::Shutdown`] as for `append`.
    pub async fn append_with_callback(
        &self,
        commands: Vec<Bytes>,
        callback: impl FnOnce(CommitResult) + Send + 'static,
    ) -> Result<EntryInfo, Error> {
        let notify = Notify::Callback(Box::new(callback));
        self.propose_accepted(commands, notify).await
    }

    async fn propose_accepted(
        &self,
        commands: Vec<Bytes>,
        notify: Notify,
    ) -> Result<EntryInfo, Error> {
        let (accepted_sender, accepted) = oneshot::channel();
        let count = commands.len();
        self.enqueue_request(Event::Propose(Proposal {
            payloads: commands,
            count,
            accepted: Some(accepted_sender),
            notify,
        }))?;
        accepted.await.unwrap_or(Err(Error::Aborted))
    }

    /// A linearizable read (ReadIndex, Raft thesis §6.4): resolves once this node, confirmed
    /// leader by a quorum after the call began, has applied everything committed before it.
    /// Then read the state machine directly. Returns the read index.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or a deposed leader, [`Error::Overloaded`],
    /// [`Error::Shutdown`].
    pub async fn linearizable_read(&self) -> Result<LogIndex, Error> {
        self.read(ReadKind::Index).await
    }

    /// A linearizable read served from the leader's lease (`Config::lease_reads`): while a
    /// quorum has answered recently enough that no other leader can exist, the read index is
    /// the commit index at once, with no round trip to the followers; otherwise (leases off,
    /// the lease lapsed, a transfer in progress) it is a [`linearizable_read`]. Trusts the
    /// nodes' clocks to drift apart by less than `Config::max_clock_drift_ms` per election
    /// timeout. Then read the state machine directly. Returns the read index.
    ///
    /// [`linearizable_read`]: Node::linearizable_read
    ///
    /// # Errors
    /// As [`Node::linearizable_read`].
    pub async fn lease_read(&self) -> Result<LogIndex, Error> {
        self.read(ReadKind::Lease).await
    }

    /// A linearizable read this node serves itself, leader or follower: a follower asks the
    /// leader for a read index (one request for all the reads waiting), waits until it has
    /// applied that index, and returns it; read the state machine then. This takes read load
    /// off the leader. On the leader it is a [`linearizable_read`](Node::linearizable_read).
    ///
    /// # Errors
    /// [`Error::NotLeader`] when this node knows no leader, the leader refused or did not
    /// answer in time (retry, or read through the leader); [`Error::Overloaded`],
    /// [`Error::Shutdown`].
    pub async fn follower_read(&self) -> Result<LogIndex, Error> {
        self.read(ReadKind::Follower).await
    }

    /// Joins the group of reads of `kind` queued for the event loop (or queues one), waits for
    /// its read index, then for the state machine to apply it.
    async fn read(&self, kind: ReadKind) -> Result<LogIndex, Error> {
        let group = self.shared().reads.join(kind, |ticket| {
            self.enqueue_request(Event::Read(kind, ticket))
        })?;
        let index = group.outcome().await?;
        drop(group);
        let mut applied = self.shared().applied.clone();
        applied
            .wait_for(|applied| *applied >= index)
            .await
            .map_err(|_| Error::Shutdown)?;
        Ok(index)
    }

    /// Asks the leader to hand leadership to `to` (Raft thesis §3.10). Returns once the request
    /// is queued; watch [`leader`](Node::leader) for the outcome. Ignored unless this node leads
    /// and `to` is a member.
    ///
    /// # Errors
    /// [`Error::Shutdown`].
    pub fn transfer_leadership(&self, to: NodeId) -> Result<(), Error> {
        self.enqueue(Event::Transfer(to))
    }

    /// Asks this node to take a snapshot of its state machine now and compact its log (any
    /// node may, leader or not). Returns once the request is queued; the snapshot is written in
    /// the background while the node goes on, and [`NodeStatus::snapshot_index`] shows it when
    /// it is durable. Ignored while a snapshot is being created or when nothing was committed
    /// since the last one.
    ///
    /// # Errors
    /// [`Error::Shutdown`].
    pub fn request_snapshot(&self) -> Result<(), Error> {
        self.enqueue(Event::SnapshotRequested)
    }

    /// Stops the node: refuses new calls with [`Error::Shutdown`], answers every queued and
    /// pending caller (queued requests with `Shutdown`, writes already in the log with
    /// [`Error::Aborted`]), lets the apply task finish what is committed, and joins every task.
    /// The log store can then start a new node. Safe to call more than once.
    pub async fn shutdown(&self) {
        let shared = self.shared();
        shared.lifecycle.begin_shutdown();
        let _ = self.handle.events.send(Event::Shutdown);
        let task = self
            .handle
            .loop_task
            .lock()
            .map(|mut task| task.take())
            .unwrap_or(None);
        match task {
            Some(task) => {
                let _ = task.await;
            }
            None => {
                let mut status = shared.status.subscribe();
                let _ = status.wait_for(|status| !status.running).await;
            }
        }
    }

    /// Waits until this node knows a leader, up to `timeout`; returns it.
    ///
    /// A cluster that never elects (too few members up, peers that cannot reach each other,
    /// member lists or cluster ids that disagree) shows why in the nodes' `tracing` events:
    /// install a subscriber (for example `tracing_subscriber::fmt()` with `RUST_LOG=debug`) to
    /// see them.
    ///
    /// # Errors
    /// [`Error::NoLeader`] when none is known in time (nothing was written), or
    /// [`Error::Shutdown`] if the node stops.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, Error> {
        let mut status = self.watch_status();
        let wait = status.wait_for(|status| status.leader.is_some() || !status.running);
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(Error::NoLeader),
            Ok(Err(_)) => Err(Error::Shutdown),
            Ok(Ok(status)) => status.leader.ok_or(Error::Shutdown),
        }
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Queues a client request, refusing it at once when the queue is full.
    fn enqueue_request(&self, event: Event) -> Result<(), Error> {
        let shared = self.shared();
        if !shared.lifecycle.is_running() {
            return Err(Error::Shutdown);
        }
        let queued = shared.queued.fetch_add(1, Ordering::AcqRel);
        if queued >= shared.config.max_queued_requests {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Overloaded);
        }
        self.handle.events.send(event).map_err(|_| {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            Error::Shutdown
        })
    }

    pub(super) fn enqueue(&self, event: Event) -> Result<(), Error> {
        if !self.shared().lifecycle.is_running() {
            return Err(Error::Shutdown);
        }
        self.handle.events.send(event).map_err(|_| Error::Shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Appended;
    use crate::types::Term;

    #[test]
    fn appended_entries_number_consecutively() {
        let appended = Appended {
            first: EntryInfo {
                term: Term(3),
                index: LogIndex(7),
            },
            results: vec![Bytes::from("a"), Bytes::from("b")],
        };
        let indexes: Vec<u64> = appended.entries().map(|(info, _)| info.index.0).collect();
        assert_eq!(indexes, [7, 8]);
    }
}
