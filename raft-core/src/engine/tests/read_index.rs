//! Linearizable reads by ReadIndex (Raft thesis §6.4).

use super::config;
use crate::engine::testing::Cluster;
use crate::engine::{Input, Output, RoleKind};
use crate::message::Message;
use crate::types::{LogIndex, NodeId, Term};

fn ready(outputs: &[Output]) -> Vec<(u64, LogIndex)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ReadReady { id, index } => Some((*id, *index)),
            _ => None,
        })
        .collect()
}

/// A new leader serves reads only after an entry of its own term has committed.
#[test]
fn read_waits_for_first_commit_in_term() {
    let mut cluster = Cluster::new(3, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    while cluster.role(1) != RoleKind::Leader {
        let envelope = cluster.network.pop_front().expect("election traffic");
        cluster.deliver(envelope);
    }
    let outputs = cluster.step(1, Input::ReadRequested { id: 7 });
    assert!(ready(&outputs).is_empty(), "the no-op is not committed yet");
    let trace_start = cluster.trace.len();
    cluster.deliver_all();
    let later: Vec<Output> = cluster.trace[trace_start..]
        .iter()
        .map(|(_, o)| o.clone())
        .collect();
    assert_eq!(ready(&later), vec![(7, LogIndex(1))]);
}

/// A read is answered once a quorum answered a request sent after it arrived.
#[test]
fn read_is_confirmed_by_a_heartbeat_quorum() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    let outputs = cluster.step(1, Input::ReadRequested { id: 8 });
    assert!(ready(&outputs).is_empty());
    let heartbeats = outputs
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::AppendEntries(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(heartbeats, 2, "one heartbeat round to confirm leadership");
    cluster.network.retain(|e| e.to == NodeId(2));
    let heartbeat = cluster.network.pop_front().unwrap();
    cluster.deliver(heartbeat);
    let reply = cluster.network.pop_front().unwrap();
    let outputs = cluster.deliver(reply);
    assert_eq!(ready(&outputs), vec![(8, LogIndex(1))]);
}

#[test]
fn reads_arriving_together_share_one_heartbeat_round() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.step(1, Input::ReadRequested { id: 1 });
    let outputs = cluster.step(1, Input::ReadRequested { id: 2 });
    assert!(
        outputs.is_empty(),
        "the second read waits for the next round: {outputs:?}"
    );
    let start = cluster.trace.len();
    cluster.deliver_all();
    let later: Vec<Output> = cluster.trace[start..]
        .iter()
        .map(|(_, o)| o.clone())
        .collect();
    assert_eq!(ready(&later), vec![(1, LogIndex(1)), (2, LogIndex(1))]);
}

#[test]
fn follower_rejects_read_with_leader_hint() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    let outputs = cluster.step(2, Input::ReadRequested { id: 3 });
    assert_eq!(
        outputs,
        vec![Output::ReadRejected {
            id: 3,
            leader: Some(NodeId(1))
        }]
    );
}

#[test]
fn deposed_leader_rejects_pending_reads() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    cluster.step(1, Input::ReadRequested { id: 4 });
    cluster.drop_all();
    let response = Message::RequestVoteResponse(crate::message::RequestVoteResponse {
        term: Term(9),
        granted: false,
        pre_vote: false,
    });
    let outputs = cluster.step(
        1,
        Input::Received {
            from: NodeId(3),
            message: response,
        },
    );
    assert!(
        outputs.contains(&Output::ReadRejected {
            id: 4,
            leader: None
        }),
        "{outputs:?}"
    );
}

#[test]
fn single_node_read_is_ready_at_once() {
    let mut cluster = Cluster::new(1, &config());
    cluster.step(1, Input::Tick { now_ms: 2000 });
    let outputs = cluster.step(1, Input::ReadRequested { id: 5 });
    assert_eq!(ready(&outputs), vec![(5, LogIndex(1))]);
}
