//! Metric names of a Raft node (see ARCHITECTURE.md, "Metrics"). Dashboards and alerts rely on
//! them, so they never change without a migration note in the README.
//!
//! Every metric carries a `node` label; per-follower ones also a `peer` label. The runtime
//! records most of them; a log store that syncs files records [`FSYNC_SECONDS`] and
//! [`GROUP_COMMIT_ENTRIES`] itself, which is why the names live here, apart from the runtime.
//! Recorded through the `metrics` facade: install any recorder (raft-http installs the
//! Prometheus one) to collect them; without one they cost nothing.

/// Gauge: voters in the configuration in force (both sets counted once while joint).
pub const MEMBERSHIP_VOTERS: &str = "raft_membership_voters";
/// Gauge: learners in the configuration in force.
pub const MEMBERSHIP_LEARNERS: &str = "raft_membership_learners";
/// Gauge: 1 while the configuration in force is joint (a change of voters in progress).
pub const MEMBERSHIP_JOINT: &str = "raft_membership_joint";
/// Counter: configurations this node put in force (appended, from a leader or by itself).
pub const MEMBERSHIP_CHANGES: &str = "raft_membership_changes_total";
/// Gauge: the current term.
pub const TERM: &str = "raft_term";
/// Gauge: the role (0 follower, 1 candidate or pre-candidate, 2 leader).
pub const ROLE: &str = "raft_role";
/// Gauge: the commit index.
pub const COMMIT_INDEX: &str = "raft_commit_index";
/// Gauge: the last index applied to the state machine.
pub const APPLIED_INDEX: &str = "raft_applied_index";
/// Counter: times this node saw the leader change to a new known leader.
pub const LEADER_CHANGES: &str = "raft_leader_changes_total";
/// Counter: commands proposed to this node (accepted or not).
pub const PROPOSALS: &str = "raft_proposals_total";
/// Histogram: seconds from an append call to its result (`append`, or `append_async` until
/// `PendingAppend::result` returns).
pub const APPEND_LATENCY: &str = "raft_append_latency_seconds";
/// Gauge per peer: entries per AppendEntries the batch sizer allows.
pub const REPLICATION_BATCH_SIZE: &str = "raft_replication_batch_size";
/// Gauge per peer: the batch sizer's threshold.
pub const REPLICATION_THRESHOLD: &str = "raft_replication_threshold";
/// Gauge per peer: AppendEntries in flight.
pub const REPLICATION_INFLIGHT: &str = "raft_replication_inflight";
/// Gauge per peer: entries the follower is behind the leader's last entry.
pub const REPLICATION_LAG: &str = "raft_replication_lag_entries";
/// Gauge: the log's live size in bytes.
pub const LOG_BYTES: &str = "raft_log_bytes";
/// Histogram: seconds one fdatasync of the log takes (recorded by a log store that syncs
/// files, such as raft-storage-fs).
pub const FSYNC_SECONDS: &str = "raft_fsync_seconds";
/// Histogram: entries made durable by one group commit (one fdatasync).
pub const GROUP_COMMIT_ENTRIES: &str = "raft_group_commit_entries";
/// Counter (label `peer`): entry streams this node opened to its leader `peer` (streaming
/// replication).
pub const STREAM_OPENS: &str = "raft_stream_opens_total";
/// Counter (label `peer`): batches this leader sent on the stream of its follower `peer`.
pub const STREAM_BATCHES: &str = "raft_stream_batches_sent_total";
/// Counter (label `peer`): entry streams between this node and `peer` that ended.
pub const STREAM_ENDS: &str = "raft_stream_ends_total";
/// Counter: snapshots this node created from its state machine.
pub const SNAPSHOTS_CREATED: &str = "raft_snapshots_created_total";
/// Counter: snapshots this node installed from a leader.
pub const SNAPSHOTS_INSTALLED: &str = "raft_snapshots_installed_total";
/// Gauge: the size in bytes of the latest snapshot this node created or installed.
pub const SNAPSHOT_BYTES: &str = "raft_snapshot_bytes";
/// Histogram (label `kind`: `create` or `install`): seconds to write a snapshot from the state
/// machine, or to receive one from the leader (first chunk to durable).
pub const SNAPSHOT_SECONDS: &str = "raft_snapshot_seconds";
