//! Engine scenario tests, one rule each, driven through `testing::Cluster` on a manual clock.

mod conflict_rollback;
mod dispatch_rules;
mod election;
mod figure_8;
mod follower_reads;
mod leader_rules;
mod lease;
mod membership;
mod pacing_example;
mod read_index;
mod replication;
mod review_regressions;
mod snapshots;
mod streaming;

use crate::config::{Config, Pacing, Replication};
use crate::engine::LogEntryMeta;
use crate::types::{LogId, Membership, NodeId};

/// Nodes 1, 2 and 3, all voters.
fn members() -> Membership {
    Membership::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// A restored log's entries from `(term, index)` pairs, one byte of payload each.
fn entries(ids: &[(u64, u64)]) -> Vec<LogEntryMeta> {
    ids.iter()
        .map(|&(term, index)| LogEntryMeta {
            log_id: LogId::new(term, index),
            payload_len: 1,
        })
        .collect()
}

/// A config with round numbers: T = 1000 ms, heartbeat 100 ms.
fn config() -> Config {
    Config {
        election_timeout_ms: 1000,
        heartbeat_interval_ms: 100,
        pre_vote: true,
        check_quorum: true,
        pacing: Pacing::Eager,
        max_inflight_requests: 4,
        max_inflight_partial_requests: 1,
        batch_entries_initial: 4,
        batch_entries_max: 64,
        batch_bytes_max: 1 << 20,
        request_timeout_ms: 500,
        snapshot_entries: 0,
        snapshot_keep_entries: 4,
        snapshot_chunk_bytes: 64,
        lease_reads: false,
        max_clock_drift_ms: 100,
        replication: Replication::Pipelined,
        stream_max_unacked_bytes: 8 << 20,
    }
}
