//! The routes and headers of the protocol, shared by the server and the client.
//!
//! Each RPC has its own path under `/raft/v1/`. The snapshot route came after the others as a
//! new path: the wire version of the existing routes did not change with it.

/// AppendEntries (and heartbeats): `POST`, body `AppendEntries`, answer
/// `AppendEntriesResponse`.
pub const APPEND_PATH: &str = "/raft/v1/append";
/// RequestVote (and pre-votes): `POST`, body `RequestVote`, answer `RequestVoteResponse`.
pub const VOTE_PATH: &str = "/raft/v1/vote";
/// TimeoutNow (leadership transfer): `POST`, body `TimeoutNow`, answer `()`.
pub const TIMEOUT_NOW_PATH: &str = "/raft/v1/timeout-now";
/// InstallSnapshot: `POST`, body one `InstallSnapshot` chunk, answer `InstallSnapshotResponse`.
/// Each request carries one chunk (raft-core sends them one at a time), so neither side holds
/// more than a chunk of a snapshot in memory for it.
pub const SNAPSHOT_PATH: &str = "/raft/v1/snapshot";
/// ReadIndex (follower reads): `POST`, body `ReadIndex`, answer `ReadIndexResponse` (once the
/// leader confirmed the index with a quorum).
pub const READ_INDEX_PATH: &str = "/raft/v1/read-index";
/// An entry stream (streaming replication): `POST`, opened by a follower to its leader. The
/// request body is a stream of frames (each a 4-byte big-endian length and a message, see
/// [`codec::encode_frame`](crate::codec::encode_frame)): first the `OpenStream`, then the
/// follower's `AppendEntriesResponse`s; the answer (200, once the leader took the open) is a
/// stream of frames of `AppendEntries`. Either side ends the stream by ending its body; a
/// broken connection ends both. Needs HTTP/2 (the two bodies flow at the same time).
pub const STREAM_PATH: &str = "/raft/v1/stream";
/// The Prometheus text exposition of the installed recorder: `GET`.
pub const METRICS_PATH: &str = "/metrics";
/// Every path under this prefix belongs to raft-http (unknown ones are answered 404 by it).
pub const RAFT_PREFIX: &str = "/raft/";
/// The response header that carries a failure's [`ErrorCode`](crate::ErrorCode).
pub const ERROR_CODE_HEADER: &str = "raft-error";

/// One of the peer RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rpc {
    Append,
    Vote,
    TimeoutNow,
    Snapshot,
    ReadIndex,
    /// The entry stream: not one exchange but a long-lived pair of bodies.
    Stream,
}

impl Rpc {
    /// Every RPC, in [`index`](Rpc::index) order.
    pub(crate) const ALL: [Rpc; 6] = [
        Rpc::Append,
        Rpc::Vote,
        Rpc::TimeoutNow,
        Rpc::Snapshot,
        Rpc::ReadIndex,
        Rpc::Stream,
    ];

    pub(crate) fn path(self) -> &'static str {
        match self {
            Rpc::Append => APPEND_PATH,
            Rpc::Vote => VOTE_PATH,
            Rpc::TimeoutNow => TIMEOUT_NOW_PATH,
            Rpc::Snapshot => SNAPSHOT_PATH,
            Rpc::ReadIndex => READ_INDEX_PATH,
            Rpc::Stream => STREAM_PATH,
        }
    }

    /// The `route` label of its metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Rpc::Append => "append",
            Rpc::Vote => "vote",
            Rpc::TimeoutNow => "timeout-now",
            Rpc::Snapshot => "snapshot",
            Rpc::ReadIndex => "read-index",
            Rpc::Stream => "stream",
        }
    }

    /// Its position in per-route tables.
    pub(crate) fn index(self) -> usize {
        match self {
            Rpc::Append => 0,
            Rpc::Vote => 1,
            Rpc::TimeoutNow => 2,
            Rpc::Snapshot => 3,
            Rpc::ReadIndex => 4,
            Rpc::Stream => 5,
        }
    }
}

/// What a path is to raft-http.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Rpc(Rpc),
    Metrics,
    /// Under [`RAFT_PREFIX`] but not a known route.
    UnknownRaft,
}

impl Route {
    /// The route of `path`, or `None` when the path is not raft-http's.
    pub(crate) fn of(path: &str) -> Option<Route> {
        match path {
            APPEND_PATH => Some(Route::Rpc(Rpc::Append)),
            VOTE_PATH => Some(Route::Rpc(Rpc::Vote)),
            TIMEOUT_NOW_PATH => Some(Route::Rpc(Rpc::TimeoutNow)),
            SNAPSHOT_PATH => Some(Route::Rpc(Rpc::Snapshot)),
            READ_INDEX_PATH => Some(Route::Rpc(Rpc::ReadIndex)),
            STREAM_PATH => Some(Route::Rpc(Rpc::Stream)),
            METRICS_PATH => Some(Route::Metrics),
            _ if path.starts_with(RAFT_PREFIX) => Some(Route::UnknownRaft),
            _ => None,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Route::Rpc(rpc) => rpc.label(),
            Route::Metrics => "metrics",
            Route::UnknownRaft => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcs_are_listed_in_index_order_and_route_back_to_themselves() {
        for (position, rpc) in Rpc::ALL.into_iter().enumerate() {
            assert_eq!(rpc.index(), position);
            assert_eq!(Route::of(rpc.path()), Some(Route::Rpc(rpc)));
        }
    }
}
