//! [`Replica`]: a raft-core node with client sessions: submit, wait for the result, exactly once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft_core::runtime::MembershipStatus;
use raft_core::{
    LogIndex, LogStore, Membership, MembershipChange, Node, NodeConfig, NodeId, StateMachine,
    Transport,
};

use crate::envelope::{Envelope, Outcome};
use crate::error::Error;
use crate::session::{ClientId, RequestId, SessionConfig};
use crate::state_machine::SessionStateMachine;

/// How a [`Replica`] runs. `#[non_exhaustive]`: start from [`ReplicaConfig::default`] and set
/// fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaConfig {
    /// The node's settings. Its `snapshot_log_bytes` is the size trigger: when the log store's
    /// [`byte_count`](raft_core::LogStore::byte_count) reaches it (and has grown by half of it
    /// since the last snapshot, so a log that compaction cannot shrink does not snapshot at
    /// every tick), the node takes a snapshot in the background (at most one at a time, never
    /// blocking appends) and compacts the log.
    /// `async_replication` must be off: a submit waits for the applied result.
    pub node: NodeConfig,
    /// Bounds of the session table (the same on every node).
    pub sessions: SessionConfig,
    /// How long [`Replica::submit`] waits for the result before [`Error::Timeout`].
    pub submit_timeout: Duration,
}

impl Default for ReplicaConfig {
    fn default() -> ReplicaConfig {
        ReplicaConfig {
            node: NodeConfig::default(),
            sessions: SessionConfig::default(),
            submit_timeout: Duration::from_secs(10),
        }
    }
}

/// The answer to a submitted command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The log index at which the command was applied (for a duplicate, the original's).
    pub index: LogIndex,
    /// The application state machine's result for it.
    pub result: Bytes,
    /// True when this request was a retry of one applied before: nothing was applied now, and
    /// `result` is the one stored when it was.
    pub duplicate: bool,
}

/// A Raft node whose commands are applied exactly once per client request.
///
/// It starts a raft-core [`Node`] whose state machine is the application's wrapped in a
/// [`SessionStateMachine`]. [`submit`](Replica::submit) sends a command with its client and
/// request ids and waits until it is committed and applied; a retry of the same ids (after a
/// timeout, a lost reply, a leader change) is answered with the original result instead of
/// being applied again, on whichever node it lands.
///
/// ```
/// # use std::time::Duration;
/// # use bytes::Bytes;
/// # use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
/// # use raft_core::NodeId;
/// # use raft_wrapper::{ClientId, Replica, ReplicaConfig, RequestId};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), raft_wrapper::Error> {
/// let network = MemNetwork::new(1);
/// let id = NodeId(1);
/// let replica = Replica::start(
///     id,
///     [(id, "in-process")],
///     ReplicaConfig::default(),
///     MemLogStore::new().into_arc(),
///     MemKv::new().into_arc(),
///     network.transport(id),
/// )
/// .await?;
/// network.register(id, replica.node());
/// replica.node().wait_for_leader(Duration::from_secs(5)).await?;
///
/// let (client, request) = (ClientId(7), RequestId(1));
/// let first = replica.submit(client, request, MemKv::put("x", "1")).await?;
/// assert!(!first.duplicate);
/// // The reply was lost, say; the client retries with the same ids.
/// let retry = replica.submit(client, request, MemKv::put("x", "1")).await?;
/// assert!(retry.duplicate);
/// assert_eq!(retry.index, first.index);
/// replica.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Replica {
    node: Node,
    sessions: Arc<SessionStateMachine>,
    submit_timeout: Duration,
}

impl Replica {
    /// Starts a node (see [`Node::start`]) whose state machine is `state_machine` behind the
    /// session layer. The state machine must be empty: the node restores its latest snapshot
    /// (the application's part into `state_machine`, the session table into the layer), then
    /// applies the log after it.
    ///
    /// # Errors
    /// [`Error::Raft`] with [`raft_core::Error::Config`] for a bad configuration (including
    /// `async_replication`), or the node's own start errors.
    pub async fn start<A: Into<String>>(
        id: NodeId,
        members: impl IntoIterator<Item = (NodeId, A)>,
        config: ReplicaConfig,
        log: Arc<dyn LogStore>,
        state_machine: Arc<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Replica, Error> {
        let members: Vec<(NodeId, String)> = members
            .into_iter()
            .map(|(id, address)| (id, address.into()))
            .collect();
        Replica::launch(id, None, members, config, log, state_machine, transport).await
    }

    async fn launch(
        id: NodeId,
        joining_at: Option<String>,
        members: Vec<(NodeId, String)>,
        config: ReplicaConfig,
        log: Arc<dyn LogStore>,
        state_machine: Arc<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Replica, Error> {
        if config.node.async_replication {
            return Err(Error::Raft(raft_core::Error::Config(
                "raft-wrapper waits for applied results; async_replication must be off".to_owned(),
            )));
        }
        let sessions = Arc::new(SessionStateMachine::new(
            id,
            state_machine,
            config.sessions,
        )?);
        let node = match joining_at {
            Some(address) => {
                let sessions = sessions.clone();
                Node::start_joining(id, address, config.node, log, sessions, transport).await?
            }
            None => Node::start(id, members, config.node, log, sessions.clone(), transport).await?,
        };
        Ok(Replica {
            node,
            sessions,
            submit_timeout: config.submit_timeout,
        })
    }

    /// Starts a replica that joins an existing cluster (see [`Node::start_joining`]): it waits
    /// for the leader to add it as a learner at `address`. Keep starting it this way; its
    /// configuration comes from its log once it was added.
    ///
    /// # Errors
    /// As [`Replica::start`].
    pub async fn start_joining(
        id: NodeId,
        address: impl Into<String>,
        config: ReplicaConfig,
        log: Arc<dyn LogStore>,
        state_machine: Arc<dyn StateMachine>,
        transport: Arc<dyn Transport>,
    ) -> Result<Replica, Error> {
        Replica::launch(
            id,
            Some(address.into()),
            Vec::new(),
            config,
            log,
            state_machine,
            transport,
        )
        .await
    }

    /// Changes the members (on the leader; see [`Node::change_membership`]) and returns the
    /// final configuration once it has committed.
    ///
    /// # Errors
    /// [`Error::NotLeader`]; [`Error::Raft`] with [`raft_core::Error::ChangeInProgress`] or
    /// [`raft_core::Error::InvalidChange`] (nothing written); [`Error::Timeout`] or
    /// [`Error::Discarded`] (see [`Node::change_membership`]).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Membership, Error> {
        Ok(self.node.change_membership(change).await?)
    }

    /// Adds a learner at `address` (on the leader; see [`Node::add_learner`]).
    ///
    /// # Errors
    /// As [`Replica::change_membership`].
    pub async fn add_learner(
        &self,
        id: NodeId,
        address: impl Into<String>,
    ) -> Result<Membership, Error> {
        Ok(self.node.add_learner(id, address).await?)
    }

    /// Makes learner `id` a voter once it is at most `max_lag` entries behind (see
    /// [`Node::promote_learner`]).
    ///
    /// # Errors
    /// As [`Replica::change_membership`], or [`Error::Timeout`] if it did not catch up.
    pub async fn promote_learner(
        &self,
        id: NodeId,
        max_lag: u64,
        timeout: Duration,
    ) -> Result<Membership, Error> {
        Ok(self.node.promote_learner(id, max_lag, timeout).await?)
    }

    /// Removes member `id` (see [`Node::remove_member`]).
    ///
    /// # Errors
    /// As [`Replica::change_membership`].
    pub async fn remove_member(&self, id: NodeId) -> Result<Membership, Error> {
        Ok(self.node.remove_member(id).await?)
    }

    /// The membership as this replica knows it (see [`Node::membership`]).
    #[must_use]
    pub fn membership(&self) -> MembershipStatus {
        self.node.membership()
    }

    /// The raft-core node: for [`linearizable_read`](Node::linearizable_read), status, leader
    /// transfer, [`request_snapshot`](Node::request_snapshot), and to register with a server.
    /// Do not [`append`](Node::append) to it directly: use [`execute`](Replica::execute).
    #[must_use]
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Submits `command` as request `request` of client `client` and waits (up to the
    /// configured `submit_timeout`) until it is committed and applied, or recognised as a retry
    /// of a request applied before.
    ///
    /// Clients number their requests from 1 upward and retry a request with the same ids until
    /// they get an answer, before sending the next one (or, pipelining, in order): a request id
    /// below one already applied for the client is refused unless its result is still kept.
    ///
    /// # Errors
    /// [`Error::NotLeader`] with the leader to retry at; [`Error::Timeout`], [`Error::Aborted`]
    /// (outcome unknown) and [`Error::Discarded`], [`Error::Overloaded`], [`Error::Shutdown`]
    /// (not applied): retry with the same ids; [`Error::StaleRequest`] for an old request id;
    /// [`Error::InvalidRequest`] for request id 0.
    pub async fn submit(
        &self,
        client: ClientId,
        request: RequestId,
        command: Bytes,
    ) -> Result<Applied, Error> {
        self.submit_timeout(client, request, command, self.submit_timeout)
            .await
    }

    /// [`submit`](Replica::submit) with its own timeout.
    ///
    /// # Errors
    /// As `submit`.
    pub async fn submit_timeout(
        &self,
        client: ClientId,
        request: RequestId,
        command: Bytes,
        timeout: Duration,
    ) -> Result<Applied, Error> {
        if request.0 == 0 {
            return Err(Error::InvalidRequest(
                "request ids start at 1 (0 means no request yet)".to_owned(),
            ));
        }
        let envelope = Envelope::Request {
            client,
            request,
            command,
        };
        let (index, outcome) = self.propose(envelope, timeout).await?;
        match outcome {
            Outcome::Applied(result) => Ok(Applied {
                index,
                result,
                duplicate: false,
            }),
            Outcome::Duplicate { index, result } => Ok(Applied {
                index,
                result,
                duplicate: true,
            }),
            Outcome::NotKept { index } => Err(Error::ResultNotKept {
                client,
                request,
                index,
            }),
            Outcome::Stale { latest } => Err(Error::StaleRequest {
                client,
                request,
                latest,
            }),
            other => Err(unexpected(index, &other)),
        }
    }

    /// Applies `command` without a session (no dedup: a retry applies it again), waiting for
    /// the result like `submit`. For idempotent commands and clients without ids.
    ///
    /// # Errors
    /// As `submit`, without the session errors.
    pub async fn execute(&self, command: Bytes) -> Result<Applied, Error> {
        let (index, outcome) = self
            .propose(Envelope::Plain(command), self.submit_timeout)
            .await?;
        match outcome {
            Outcome::Applied(result) => Ok(Applied {
                index,
                result,
                duplicate: false,
            }),
            other => Err(unexpected(index, &other)),
        }
    }

    /// Forgets `client`'s session on every replica (replicated like a command): its next
    /// request starts a new session, and retries of its old requests are no longer recognised.
    /// Returns once the forgetting is applied here.
    ///
    /// # Errors
    /// As `submit`, without the session errors.
    pub async fn clear_client(&self, client: ClientId) -> Result<(), Error> {
        let (index, outcome) = self
            .propose(Envelope::Clear(client), self.submit_timeout)
            .await?;
        match outcome {
            Outcome::Cleared => Ok(()),
            other => Err(unexpected(index, &other)),
        }
    }

    /// The configured `submit_timeout`.
    pub(crate) fn default_submit_timeout(&self) -> Duration {
        self.submit_timeout
    }

    /// How many client sessions this replica tracks now.
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.sessions.tracked_clients()
    }

    /// The latest request of `client` applied on this replica, if it has a session.
    #[must_use]
    pub fn latest_request(&self, client: ClientId) -> Option<RequestId> {
        self.sessions.latest_request(client)
    }

    /// Stops the node (see [`Node::shutdown`]).
    pub async fn shutdown(&self) {
        self.node.shutdown().await;
    }

    async fn propose(
        &self,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<(LogIndex, Outcome), Error> {
        let append = self.node.append_one(envelope.encode());
        let (entry, result) = tokio::time::timeout(timeout, append)
            .await
            .unwrap_or(Err(raft_core::Error::Timeout))?;
        let index = entry.index;
        let outcome =
            Outcome::decode(&result).map_err(|reason| Error::Malformed { index, reason })?;
        Ok((index, outcome))
    }
}

/// An outcome that does not answer what was proposed.
fn unexpected(index: LogIndex, outcome: &Outcome) -> Error {
    match outcome {
        Outcome::Malformed(reason) => Error::Malformed {
            index,
            reason: reason.clone(),
        },
        other => Error::Malformed {
            index,
            reason: format!("unexpected outcome {other:?}"),
        },
    }
}
