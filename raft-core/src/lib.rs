//! raft-core: Raft consensus as a deterministic, sans-I/O engine.
//!
//! The [`engine::Engine`] is a plain state machine: feed it [`engine::Input`]s (a tick with the
//! current time, a message from a peer, a proposal, a durability report) and execute the
//! [`engine::Output`]s it returns (persist, append, send, commit). It reads no clock, does no
//! I/O and takes randomness only from a seed, so the simulator in `raft-sim` runs exactly the
//! code production runs. The tokio runtime that drives it, with plugin traits for storage, state
//! machine and transport, is the next piece of work.
//!
//! A single-node cluster elects itself and commits a command:
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::engine::{Engine, Input, Output, RestoredState};
//! use raft_core::{Config, Membership, NodeId};
//!
//! let id = NodeId(1);
//! let mut engine =
//!     Engine::new(id, Membership::new([id]), Config::default(), RestoredState::default(), 7)?;
//! // A stack: the tick at 0 starts the clock, the one at 5 s fires the election timer.
//! let mut pending = vec![Input::Tick { now_ms: 5_000 }, Input::Tick { now_ms: 0 }];
//! let mut committed = None;
//! while let Some(input) = pending.pop() {
//!     let outputs: Vec<Output> = engine.step(input).collect();
//!     for output in outputs {
//!         match output {
//!             // A real runtime writes these to disk first, then reports them.
//!             Output::PersistHardState(hard_state) => {
//!                 pending.push(Input::HardStatePersisted { hard_state })
//!             }
//!             Output::AppendLog { entries, epoch } => {
//!                 let upto = entries.last().map(|e| e.log_id).unwrap_or_default();
//!                 pending.push(Input::LogPersisted { upto, epoch });
//!             }
//!             Output::Commit { upto } => committed = Some(upto),
//!             _ => {}
//!         }
//!     }
//!     if pending.is_empty() && committed.is_some_and(|c| c.0 == 1) {
//!         pending.push(Input::Proposed { id: 1, payloads: vec![Bytes::from("x=1")] });
//!     }
//! }
//! assert_eq!(engine.status().commit_index.0, 2); // the leader's no-op, then the command
//! # Ok::<(), raft_core::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod engine;
pub mod error;
pub mod message;
pub mod runtime;
pub mod state_machine;
pub mod storage;
pub mod testing;
pub mod transport;
pub mod types;

pub use config::{Config, Pacing};
pub use error::{BoxError, Error, LeaderHint};
pub use runtime::{Appended, Node, NodeConfig, NodeStatus};
pub use state_machine::StateMachine;
pub use storage::LogStore;
pub use transport::{ServiceHandler, Transport};
pub use types::{Entry, EntryInfo, HardState, LogId, LogIndex, Membership, NodeId, Payload, Term};
