//! The messages Raft nodes exchange. They are plain serde types; transports choose the encoding.
//!
//! Every response carries the responder's term so that a stale leader or candidate learns of a
//! newer term and steps down (Raft §5.1).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, LogId, LogIndex, NodeId, Term};

/// A message between two Raft nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Leader to follower: replicate entries (or none: a heartbeat).
    AppendEntries(AppendEntries),
    /// Follower to leader: the outcome of one AppendEntries.
    AppendEntriesResponse(AppendEntriesResponse),
    /// Candidate (or pre-candidate) to voter.
    RequestVote(RequestVote),
    /// Voter to candidate (or pre-candidate).
    RequestVoteResponse(RequestVoteResponse),
    /// Leader to its chosen successor: start an election now (leadership transfer).
    TimeoutNow(TimeoutNow),
    /// Leader to a follower whose next entry was compacted away: one chunk of a snapshot.
    InstallSnapshot(InstallSnapshot),
    /// Follower to leader: the outcome of one InstallSnapshot chunk.
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// Follower to leader: a read index for the follower reads it holds (one request serves
    /// every read that arrived before it left).
    ReadIndex(ReadIndex),
    /// Leader to follower: the read index, once a quorum confirmed this node still leads.
    ReadIndexResponse(ReadIndexResponse),
    /// Follower to leader, under streaming replication: open (or reopen) this follower's
    /// entry stream, starting after its durable log end. The transport carries the stream;
    /// the leader's batches to this follower travel on it.
    OpenStream(OpenStream),
}

impl Message {
    /// The term the message carries.
    #[must_use]
    pub fn term(&self) -> Term {
        match self {
            Message::AppendEntries(m) => m.term,
            Message::AppendEntriesResponse(m) => m.term,
            Message::RequestVote(m) => m.term,
            Message::RequestVoteResponse(m) => m.term,
            Message::TimeoutNow(m) => m.term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
            Message::ReadIndex(m) => m.term,
            Message::ReadIndexResponse(m) => m.term,
            Message::OpenStream(m) => m.term,
        }
    }
}

/// Replicate `entries` after `prev_log_id` (Raft §5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: Term,
    /// The leader, so followers can redirect clients.
    pub leader_id: NodeId,
    /// Sequence number of this request, unique per leader and follower within a term; the
    /// response echoes it.
    pub seq: u64,
    /// The entry just before `entries`; the follower must hold it to accept them.
    pub prev_log_id: LogId,
    /// The entries, consecutive from `prev_log_id.index + 1`. Empty for a heartbeat.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
}

/// The answer to one [`AppendEntries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The responder's term.
    pub term: Term,
    /// The `seq` of the request answered.
    pub seq: u64,
    /// What happened.
    pub outcome: AppendOutcome,
}

/// What a follower did with an AppendEntries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower holds, *durably*, every entry up to `match_index` as the leader sent them.
    Success {
        /// `prev_log_id.index + entries.len()` of the request.
        match_index: LogIndex,
    },
    /// `prev_log_id` did not match; the hint lets the leader back up a whole term at once.
    Conflict {
        /// Where the follower's log diverges.
        hint: ConflictHint,
    },
    /// The request's term is older than the follower's; the response term says which is newer.
    StaleTerm,
}

/// A follower's hint of where its log diverges from the leader's (Raft §5.3, the optimisation
/// at the end of the section).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The term of the follower's entry at `prev_log_id.index`, or `None` if its log is shorter.
    pub term: Option<Term>,
    /// The first index the follower holds of `term`, or its last index plus one when `term` is
    /// `None`.
    pub index: LogIndex,
}

/// Ask for a vote (or, with `pre_vote`, whether a vote would be granted) (Raft §5.2, §9.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// The candidate's term; for a pre-vote, the term it would campaign in.
    pub term: Term,
    /// The candidate.
    pub candidate_id: NodeId,
    /// The candidate's last log id, for the up-to-date check (Raft §5.4.1).
    pub last_log_id: LogId,
    /// A pre-vote changes no state on the voter.
    pub pre_vote: bool,
    /// The election was started by the leader's TimeoutNow, so voters skip the leader lease.
    pub leadership_transfer: bool,
}

/// The answer to one [`RequestVote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    /// The voter's term; for a granted pre-vote, the term of the request.
    pub term: Term,
    /// Whether the vote (or pre-vote) was granted.
    pub granted: bool,
    /// Whether this answers a pre-vote.
    pub pre_vote: bool,
}

/// Leader to successor: campaign now (Raft thesis §3.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: Term,
    /// The leader.
    pub leader_id: NodeId,
}

/// One chunk of a snapshot, from the leader to a follower whose next entry the leader's log no
/// longer holds (Raft §7). Chunks go one at a time, in order; the follower answers where the
/// next one should start, so a lost chunk is simply sent again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The leader's term, checked on every chunk.
    pub term: Term,
    /// The leader.
    pub leader_id: NodeId,
    /// Sequence number, shared with AppendEntries; the response echoes it.
    pub seq: u64,
    /// The snapshot this chunk belongs to.
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot's data.
    pub offset: u64,
    /// The chunk.
    pub data: Bytes,
    /// CRC-32C of `data`.
    pub chunk_crc: u32,
    /// Whether this is the last chunk (`offset + data.len() == meta.size`).
    pub done: bool,
}

/// The answer to one [`InstallSnapshot`] chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The responder's term.
    pub term: Term,
    /// The `seq` of the request answered.
    pub seq: u64,
    /// What happened.
    pub outcome: SnapshotOutcome,
}

/// What a follower did with a snapshot chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotOutcome {
    /// Send the chunk starting at `offset` next: the follower holds the data before it (0 when
    /// the chunk did not fit what it holds, or failed its checksum; the transfer restarts).
    Continue {
        /// The next offset the follower expects.
        offset: u64,
    },
    /// The last chunk arrived and the snapshot is durable on the follower: its log now
    /// continues right after the snapshot.
    Installed,
    /// The follower's commit index already covers the snapshot; replicate entries after it.
    Covered {
        /// The follower's commit index.
        commit_index: LogIndex,
    },
    /// The request's term is older than the follower's.
    StaleTerm,
}

/// A follower asks its leader for a read index (Raft thesis §6.4: follower reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndex {
    /// The follower's term.
    pub term: Term,
    /// The follower asking.
    pub follower_id: NodeId,
    /// Sequence number of this request; the response echoes it.
    pub seq: u64,
}

/// The answer to one [`ReadIndex`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    /// The responder's term.
    pub term: Term,
    /// The `seq` of the request answered.
    pub seq: u64,
    /// The read index: once the follower has applied it, its state reflects every write
    /// acknowledged before the reads were asked. `None`: the responder does not lead this
    /// term (or stopped leading before it could confirm).
    pub index: Option<LogIndex>,
}

/// A follower opens its entry stream to the leader it recognises (streaming replication).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenStream {
    /// The follower's term (the leader's).
    pub term: Term,
    /// The follower opening the stream.
    pub follower_id: NodeId,
    /// The stream's name, unique on the follower: `Input::StreamClosed` names it, so the end
    /// of an older stream is never taken for the end of a newer one.
    pub seq: u64,
    /// The last entry durable on the follower: the leader checks once that its own log holds
    /// it, and streams from the next entry on (or probes backwards if it does not).
    pub last_log_id: LogId,
}
