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
mod streams;

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
    /// with [`Error::Overloaded`]. Reads that arrive while a read of their kind is queued join
    /// it and take no place of their own.
    pub max_queued_requests: usize,
    /// How often the loop feeds the engine a tick; timers are as precise as this.
    pub tick_interval_ms: u64,
    /// Seed of the engine's random draws (election timeouts, the first number of its
    /// read-index requests), mixed with the node id. The default draws a fresh one from the
    /// operating system each time, so that two lives of a node never share their request
    /// numbers; set it for a run that repeats its draws.
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
            seed: random_seed(),
            apply_batch_max: 1024,
            snapshot_log_bytes: 64 << 20,
        }
    }
}

/// A seed from the operating system's randomness: the keys std draws for its hash maps (from
/// the OS once per thread, then stepped for each map), without a dependency for it.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
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

#[cfg(test)]
mod seed_tests {
    use super::NodeConfig;

    #[test]
    fn each_default_configuration_draws_its_own_seed() {
        let seeds: std::collections::BTreeSet<u64> =
            (0..8).map(|_| NodeConfig::default().seed).collect();
        assert_eq!(seeds.len(), 8, "{seeds:?}");
    }
}
