//! The follower's side of streaming replication (`Replication::Streaming`): once it accepts
//! a message from the leader of its term, a follower without a stream opens one, naming its
//! durable log end; the runtime carries it and reports its end (`Input::StreamClosed`), and
//! the follower opens another at the leader's next message (a heartbeat at the latest), so a
//! refused or broken stream costs at most one heartbeat interval, never a busy loop. A term
//! change drops the follower's state and with it the stream: the new leader gets a new one.
//!
//! A stream the leader lost track of while the follower's end stayed open (the leader
//! rebuilt its view of the follower) would starve the follower of entries: when heartbeats
//! show commits beyond its log and nothing came on the stream for a request timeout, the
//! follower replaces it.

use super::core::Core;
use super::follower::{FollowerState, FollowerStream};
use crate::config::Replication;
use crate::message::{Message, OpenStream};
use crate::types::{LogId, LogIndex, NodeId};

/// After a message from `leader` was handled (`heartbeat_commit`: the commit index of an
/// AppendEntries without entries; `None` for entries or a snapshot chunk): notes traffic on
/// the stream, replaces a starved one, and opens one if streaming is on and none is open.
pub(crate) fn after_leader_message(
    core: &mut Core,
    follower: &mut FollowerState,
    leader: NodeId,
    heartbeat_commit: Option<LogIndex>,
) {
    if core.config.replication != Replication::Streaming {
        return;
    }
    let now_ms = core.now_ms;
    if let Some(stream) = &mut follower.stream {
        match heartbeat_commit {
            None => stream.traffic_ms = now_ms,
            Some(commit) if starved(core, stream, commit) => follower.stream = None,
            Some(_) => {}
        }
    }
    if follower.stream.is_none() {
        open(core, follower, leader);
    }
}

/// A heartbeat shows commits past this follower's log while the stream brought nothing for
/// a request timeout.
fn starved(core: &Core, stream: &FollowerStream, heartbeat_commit: LogIndex) -> bool {
    heartbeat_commit > core.log.last_index()
        && stream.traffic_ms + core.config.request_timeout_ms <= core.now_ms
}

fn open(core: &mut Core, follower: &mut FollowerState, leader: NodeId) {
    let seq = core.take_seq();
    let durable = core.durable_index.min(core.log.last_index());
    // Below the log's base (a snapshot covers it) the leader's check fails and it probes or
    // sends a snapshot, as for any follower whose position is unknown.
    let last_log_id = core.log.log_id_at(durable).unwrap_or(LogId::ZERO);
    follower.stream = Some(FollowerStream {
        seq,
        traffic_ms: core.now_ms,
    });
    let open = OpenStream {
        term: core.term,
        follower_id: core.id,
        seq,
        last_log_id,
    };
    core.send(leader, Message::OpenStream(open));
}

/// Stream `seq` ended: a later message from the leader opens another.
pub(crate) fn on_closed(follower: &mut FollowerState, seq: u64) {
    if follower.stream.is_some_and(|stream| stream.seq == seq) {
        follower.stream = None;
    }
}
