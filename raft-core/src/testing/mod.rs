//! Test support, behind the `testing` cargo feature (off by default): in-memory plugins, a
//! reusable cluster harness and snapshot round-trip helpers, for the tests of this workspace,
//! examples and benchmarks.
//!
//! - In-memory plugins: a log store with a simulated disk ([`MemLogStore`]), a key-value state
//!   machine that records its calls ([`MemKv`]) and an in-process network with faults
//!   ([`MemNetwork`]). They are real implementations of the plugin contracts (the runtime's
//!   tests run on them), not mocks.
//! - [`Cluster`]: nodes `1..=n` started, stopped, restarted, partitioned and waited on. What a
//!   node is made of comes from a [`NodeFactory`]: [`MemNodes`] (the default) runs plain
//!   [`Node`](crate::Node)s on a [`MemLogStore`], a [`MemKv`] and the cluster's [`MemNetwork`];
//!   other crates plug in their own log store (a file log), state machine (one wrapped in
//!   client sessions) or transport (HTTP servers).
//! - [`snapshots`]: a state machine's snapshot drained to bytes and read back, a snapshot
//!   written to a log store and read back.
//!
//! Harness helpers fail like assertions do: a cluster that does not elect a leader, a node
//! that does not start, a wait that times out, all panic with a message saying what was
//! expected, so the test that called them fails there. The plugins themselves return errors,
//! as the plugin contracts say.
//!
//! ```
//! use raft_core::testing::{Cluster, MemKv, test_config};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let cluster = Cluster::start(3, test_config()).await;
//! let leader = cluster.leader_node().await;
//! let appended = leader.append(vec![MemKv::put("k", "v")]).await.unwrap();
//! cluster.wait_applied(appended.first.index).await;
//! for kv in cluster.state_machines.values() {
//!     assert_eq!(kv.get(b"k").as_deref(), Some(&b"v"[..]));
//! }
//! cluster.shutdown().await;
//! # }
//! ```

mod cluster;
mod factory;
mod mem_kv;
mod mem_log;
mod mem_network;
mod nodes;
pub mod snapshots;

pub use self::cluster::Cluster;
pub use self::factory::{MemNodes, NodeFactory, Parts, test_config};
pub use self::mem_kv::{KvCommand, MALFORMED, MemKv};
pub use self::mem_log::MemLogStore;
pub use self::mem_network::MemNetwork;
pub use self::nodes::{Nodes, Outcome, Writers, wait_until};
