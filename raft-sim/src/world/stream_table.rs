//! The simulated streams of streaming replication: plain data, run by `streams.rs`.
//!
//! A stream is opened by a follower toward its leader and lives until it is cut (a partition,
//! a fault under a batch), an end crashes, or the follower opens another. Batches on it arrive
//! in the order sent; when it ends, what was in transit is lost and each end that knew of it
//! hears of the end a network delay later.

use std::collections::BTreeMap;

use crate::options::StreamCounts;

/// One stream.
#[derive(Clone, Debug)]
pub(super) struct SimStream {
    pub(super) follower: usize,
    /// The follower's life that opened it.
    pub(super) follower_epoch: u64,
    pub(super) leader: usize,
    /// The leader's life its open reached (`None` until it did).
    pub(super) leader_epoch: Option<u64>,
    /// The follower's name for it (its `OpenStream` seq).
    pub(super) seq: u64,
    /// When the last batch sent on it arrives: later ones arrive after it.
    pub(super) tail_ms: u64,
}

/// Every live stream, and which one each follower holds and each leader sends on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Streams {
    pub(super) next_key: u64,
    /// The live streams by key (an ended stream is removed: events naming it find nothing).
    pub(super) live: BTreeMap<u64, SimStream>,
    /// The stream each follower holds open.
    pub(super) of_follower: BTreeMap<usize, u64>,
    /// The stream a leader sends on to a follower, by (leader, follower): the one whose open
    /// reached it.
    pub(super) in_use: BTreeMap<(usize, usize), u64>,
    /// What the streams did.
    pub(crate) counts: StreamCounts,
}
