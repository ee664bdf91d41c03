//! The tokio runtime: drives one [`Engine`](crate::engine::Engine) per node and does all its I/O.
//!
//! ```text
//!  Node::append ──(bounded: Overloaded)──┐
//!  ServiceHandler (peer requests) ───────┤                        ┌─> LogStore::append/truncate (awaited, quick)
//!  peer answers / send failures ─────────┼─> event loop (1 task) ─┼─> hard-state writer task ─> HardStatePersisted
//!  hard state durable ───────────────────┤    Engine::step        ├─> peer tasks (1 per peer) ─> Transport
//!  LogStore::durable() changed ──────────┤                        └─> apply task ─> StateMachine (pre_commit/commit/rollback)
//!  tick (tokio interval) ────────────────┘                                          └─> waiters, applied index
//! ```
//!
//! The event loop is the only owner of the engine: events are handled first in, first out, and
//! proposals that queued up while it was busy become one `Input::Proposed`, hence one log
//! append. It awaits only the log store's `append`/`truncate` (which return before the data is
//! durable, by contract); hard-state writes, transport calls and state-machine calls run on their
//! own tasks and come back as events. Durability reports are taken from the store's watch when
//! the loop gets to them, so they always describe the log the engine currently holds.

mod applier;
mod claim;
mod clock;
mod event_loop;
mod events;
mod executor;
mod membership;
mod node;
mod node_membership;
mod node_metrics;
mod peer;
mod peer_replies;
mod peers;
mod persist;
mod proposals;
mod reads;
mod results;
mod shared;
mod snapshot_receiver;
mod snapshots;
mod status;

pub use self::membership::MembershipStatus;
pub use self::node::Node;
pub use self::results::{Appended, CommitResult, PendingAppend};
pub use self::status::NodeStatus;

use crate::config::Config;
use crate::error::Error;

/// How a node runs: the engine's [`Config`] plus the runtime's own settings.
///
/// `#[non_exhaustive]`: start from [`NodeConfig::default`] and set fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The consensus settings (timeouts, pacing, batching).
    pub raft: Config,
    /// NuRaft's cluster-wide async replication flag: `append` resolves with the `pre_commit`
    /// result right after the leader's local append, and the commit result is never delivered.
    /// Set it the same on every node.
    pub async_replication: bool,
    /// Requests (appends, reads) that may wait in the node's queue; one more is refused at once
    /// with [`Error::Overloaded`].
    pub max_queued_requests: usize,
    /// How often the loop feeds the engine a tick; timers are as precise as this.
    pub tick_interval_ms: u64,
    /// Seed of the engine's random election timeouts (mixed with the node id).
    pub seed: u64,
    /// Most entries handed to the state machine in one call.
    pub apply_batch_max: usize,
    /// Take a snapshot (and compact the log) when [`LogStore::byte_count`] reaches this many
    /// bytes and has grown by half of it since the last snapshot; 0 switches the size policy
    /// off. The engine's [`Config::snapshot_entries`] is the count policy.
    ///
    /// [`LogStore::byte_count`]: crate::LogStore::byte_count
    pub snapshot_log_bytes: u64,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            raft: Config::default(),
            async_replication: false,
            max_queued_requests: 65_536,
            tick_interval_ms: 10,
            seed: 0x5EED,
            apply_batch_max: 1024,
            snapshot_log_bytes: 64 << 20,
        }
    }
}

impl NodeConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        self.raft.validate()?;
        let fail = |message: &str| Err(Error::Config(message.to_owned()));
        if self.max_queued_requests == 0 {
            return fail("max_queued_requests must be at least 1");
        }
        if self.tick_interval_ms == 0 || self.tick_interval_ms > self.raft.heartbeat_interval_ms {
            return fail("tick_interval_ms must be in 1..=heartbeat_interval_ms");
        }
        if self.apply_batch_max == 0 {
            return fail("apply_batch_max must be at least 1");
        }
        Ok(())
    }
}
