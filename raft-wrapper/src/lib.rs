//! raft-wrapper: wait-for-commit and exactly-once client requests over a raft-core node, with
//! size-triggered snapshots.
//!
//! - [`Replica::submit`]`(client, request, command)` resolves when the command is committed and
//!   applied, with the application state machine's result ([`Applied`]); `NotLeader` comes back
//!   with the leader to retry at.
//! - Exactly once: the dedup is of *processing*, on apply, by the latest applied request id of
//!   each client. A retry of an applied request (same ids) is not applied again and gets the
//!   stored result with `duplicate = true`; an older id than the latest whose result is no
//!   longer kept gets [`Error::StaleRequest`]. [`Replica::clear_client`] forgets a client on
//!   every replica.
//! - The session table is deterministic (a function of the committed log and
//!   [`SessionConfig`]), bounded (least recently active session evicted first), and part of
//!   every snapshot: a node restored from a snapshot still recognises retries.
//! - Size-triggered snapshots: [`ReplicaConfig::node`]'s `snapshot_log_bytes` makes the node
//!   snapshot and compact in the background when its log passes that size.
//!
//! The application's state machine is any [`raft_core::StateMachine`]: the
//! [`SessionStateMachine`] in front of it hands it the bare commands it must apply, in index
//! order, and answers retries itself.
//!
//! A client retrying across nodes until it gets an answer, with [`submit_with_retry`]: the same
//! ids on every attempt, leader hints followed at once, backoff during an election, and a
//! deadline ([`RetryPolicy`]). Clients of remote replicas use [`retry`] with their own transport.
//!
//! ```
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use raft_wrapper::{Applied, ClientId, Error, Replica, RequestId, RetryPolicy, submit_with_retry};
//!
//! async fn submit_anywhere(
//!     replicas: &[Replica],
//!     client: ClientId,
//!     request: RequestId,
//!     command: Bytes,
//! ) -> Result<Applied, Error> {
//!     let mut policy = RetryPolicy::default();
//!     policy.deadline = Duration::from_secs(30);
//!     let answer = submit_with_retry(replicas, client, request, command, &policy).await;
//!     if let Err(error) = &answer {
//!         if error.is_outcome_unknown() {
//!             // Maybe applied: resubmit later with the same ids to learn the result.
//!         } else {
//!             // Not applied (RetriesExhausted with every attempt refused, InvalidRequest, ...).
//!         }
//!     }
//!     answer
//! }
//! # use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
//! # use raft_core::NodeId;
//! # use raft_wrapper::ReplicaConfig;
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Error> {
//! # let network = MemNetwork::new(1);
//! # let members = [(NodeId(1), "n1"), (NodeId(2), "n2"), (NodeId(3), "n3")];
//! # let mut replicas = Vec::new();
//! # for (id, _) in members {
//! #     let replica = Replica::start(id, members, ReplicaConfig::default(),
//! #         MemLogStore::new().into_arc(), MemKv::new().into_arc(), network.transport(id)).await?;
//! #     network.register(id, replica.node());
//! #     replicas.push(replica);
//! # }
//! let applied = submit_anywhere(&replicas, ClientId(7), RequestId(1), MemKv::put("x", "1")).await?;
//! assert!(!applied.duplicate);
//! # for replica in &replicas { replica.shutdown().await; }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod envelope;
mod error;
mod replica;
mod retry;
mod session;
mod snapshot;
mod state_machine;

pub use error::Error;
pub use replica::{Applied, Replica, ReplicaConfig};
pub use retry::{Attempt, RetryPolicy, retry, submit_with_retry};
pub use session::{ClientId, RequestId, SessionConfig};
pub use state_machine::SessionStateMachine;
