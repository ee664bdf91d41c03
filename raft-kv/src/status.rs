//! The `/status` document of a node.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{self, HeaderValue};
use raft_core::engine::RoleKind;
use raft_wrapper::Replica;
use serde::Serialize;

use crate::reply::finish;

/// The `/status` document.
#[derive(Clone, Debug, Serialize)]
pub struct StatusDoc {
    /// This node's id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: &'static str,
    /// The current term.
    pub term: u64,
    /// The leader this node knows, if any.
    pub leader: Option<u64>,
    /// The leader's URL, if known.
    pub leader_url: Option<String>,
    /// The commit index.
    pub commit_index: u64,
    /// The last index applied to the key-value map.
    pub applied_index: u64,
    /// The last index in this node's log.
    pub last_log_index: u64,
    /// The index of the latest snapshot (0: none).
    pub snapshot_index: u64,
    /// Keys held by this replica.
    pub keys: usize,
}

/// The `/status` response of `replica`, whose map holds `keys` keys; URLs use `scheme`.
pub(crate) fn status(replica: &Replica, keys: usize, scheme: &str) -> Response<Full<Bytes>> {
    let node = replica.node();
    let status = node.status();
    let doc = StatusDoc {
        id: status.id.0,
        role: match status.role {
            RoleKind::Leader => "leader",
            RoleKind::Follower => "follower",
            RoleKind::Candidate => "candidate",
            RoleKind::PreCandidate => "pre-candidate",
        },
        term: status.term.0,
        leader: status.leader.map(|l| l.0),
        leader_url: status
            .leader
            .and_then(|l| node.address_of(l))
            .map(|address| format!("{scheme}://{address}")),
        commit_index: status.commit_index.0,
        applied_index: status.applied_index.0,
        last_log_index: status.last_log_index.0,
        snapshot_index: status.snapshot_index.0,
        keys,
    };
    let mut body = serde_json::to_vec(&doc).unwrap_or_default();
    body.push(b'\n');
    finish(
        Response::builder().header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        Bytes::from(body),
    )
}
