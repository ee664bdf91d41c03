//! The targeted nemesis's state, as plain data (see [`targeted`](super::targeted) for what it
//! does): the crashes a trap waits to spring, and a disk made slow. Below the world: it
//! depends on nothing of it.

/// Crashes waiting for their moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Trap {
    /// Crash the leader right after its next append of entries.
    pub(super) leader_append: bool,
    /// Crash the leader right after its commit index next moves.
    pub(super) leader_commit: bool,
    /// Crash this many of the nodes that acknowledge the leader's newest entries, each right
    /// after its acknowledgement leaves.
    pub(super) ackers: usize,
    /// Crash this many of the nodes that reveal a vote (a candidate's request, a voter's
    /// grant), each right after the message leaves.
    pub(super) voters: usize,
    /// Crash the next node that wins an election, right after it does.
    pub(super) elected: bool,
    /// The trap is disarmed at this time (simulated milliseconds).
    pub(super) until_ms: u64,
}

impl Trap {
    /// Whether some crash still waits at `now_ms`.
    pub(super) fn is_armed(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
            && (self.leader_append
                || self.leader_commit
                || self.ackers > 0
                || self.voters > 0
                || self.elected)
    }
}

/// One node's disk made slow for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlowDisk {
    /// The node, by position.
    pub(super) node: usize,
    /// Its syncs take up to this long.
    pub(super) latency_max_ms: u64,
    /// Until this time (simulated milliseconds).
    pub(super) until_ms: u64,
}
