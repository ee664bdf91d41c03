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
//! A client retrying across nodes until it gets an answer:
//!
//! ```no_run
//! use bytes::Bytes;
//! use raft_wrapper::{Applied, ClientId, Error, Replica, RequestId};
//!
//! async fn submit_anywhere(
//!     replicas: &[Replica],
//!     client: ClientId,
//!     request: RequestId,
//!     command: Bytes,
//! ) -> Result<Applied, Error> {
//!     let mut target = 0;
//!     loop {
//!         match replicas[target].submit(client, request, command.clone()).await {
//!             Err(Error::NotLeader { leader: Some(hint) }) => {
//!                 target = replicas.iter().position(|r| r.node().id() == hint.id).unwrap_or(0);
//!             }
//!             Err(e) if e.is_retryable() => target = (target + 1) % replicas.len(),
//!             answer => return answer,
//!         }
//!     }
//! }
//! ```
#![forbid(unsafe_code)]

mod envelope;
mod error;
mod replica;
mod session;
mod snapshot;
mod state_machine;

pub use error::Error;
pub use replica::{Applied, Replica, ReplicaConfig};
pub use session::{ClientId, RequestId, SessionConfig};
pub use state_machine::SessionStateMachine;
