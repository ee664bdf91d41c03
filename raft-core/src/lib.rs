//! raft-core: Raft consensus as a deterministic, sans-I/O engine and the tokio runtime that
//! drives it.
//!
//! - The [`engine::Engine`] is a plain state machine: feed it [`engine::Input`]s (a tick with the
//!   current time, a message from a peer, a proposal, a durability report) and execute the
//!   [`engine::Output`]s it returns (persist, append, send, commit). It reads no clock, does no
//!   I/O and takes randomness only from a seed, so the simulator in `raft-sim` runs exactly the
//!   code production runs.
//! - The [`runtime`] wraps one engine per [`Node`] in a FIFO event loop and does all the I/O
//!   through three plugin traits: [`LogStore`] (the log and hard state), [`StateMachine`]
//!   (NuRaft's `pre_commit` / `commit` / `rollback` lifecycle) and [`Transport`] (requests to
//!   peers; a `Node` is the [`ServiceHandler`] a server forwards requests to).
//! - `testing` (behind the **`testing`** cargo feature, off by default) ships in-memory plugins
//!   (a log store with a simulated disk, a key-value state machine and an in-process network
//!   with drops, delays and partitions), a reusable cluster harness with pluggable log stores,
//!   state machines and transports, and snapshot round-trip helpers. Enable it for tests,
//!   examples and benchmarks: `raft-core = { version = "0.1", features = ["testing"] }` in
//!   `[dev-dependencies]`. The examples below use it.
//!
//! A 3-node cluster in one process: start the nodes, wait for a leader, write through it, read
//! linearizably, and see the write applied on every replica.
//!
//! ```
//! use std::time::Duration;
//!
//! use raft_core::runtime::{Node, NodeConfig};
//! use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
//! use raft_core::NodeId;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), raft_core::Error> {
//! let network = MemNetwork::new(7);
//! let members = [1, 2, 3].map(|id| (NodeId(id), format!("mem://node-{id}")));
//! let mut nodes = Vec::new();
//! let mut state_machines = Vec::new();
//! for (id, _) in &members {
//!     let kv = MemKv::new();
//!     let node = Node::start(
//!         *id,
//!         members.clone(),
//!         NodeConfig::default(),
//!         MemLogStore::new().into_arc(),
//!         kv.clone().into_arc(),
//!         network.transport(*id),
//!     )
//!     .await?;
//!     network.register(*id, &node);
//!     nodes.push(node);
//!     state_machines.push(kv);
//! }
//!
//! let leader_id = nodes[0].wait_for_leader(Duration::from_secs(10)).await?;
//! let leader = nodes.iter().find(|n| n.id() == leader_id).expect("a member leads");
//! let appended = leader.append(vec![MemKv::put("greeting", "hello")]).await?;
//! leader.linearizable_read().await?;
//!
//! // Followers apply the entry too, in the same order.
//! while nodes.iter().any(|n| n.applied_index() < appended.first.index) {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! for kv in &state_machines {
//!     assert_eq!(kv.get(b"greeting").as_deref(), Some(&b"hello"[..]));
//! }
//! for node in &nodes {
//!     node.shutdown().await;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The engine alone, driven by hand: a single-node cluster elects itself and commits a command.
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
pub mod membership;
pub mod message;
pub mod metrics;
pub mod runtime;
pub mod snapshot;
pub mod state_machine;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod types;

pub use config::{Config, Pacing, Replication};
pub use error::{BoxError, Error, LeaderHint};
pub use membership::MembershipChange;
pub use runtime::{Appended, Node, NodeConfig, NodeStatus};
pub use snapshot::{
    BytesSource, SnapshotMeta, SnapshotReader, SnapshotSource, SnapshotWriter, read_to_vec,
};
pub use state_machine::StateMachine;
pub use storage::{LogStore, StoreClaim};
pub use transport::{EntryStream, ServiceHandler, StreamSink, Transport};
pub use types::{Entry, EntryInfo, HardState, LogId, LogIndex, Membership, NodeId, Payload, Term};
