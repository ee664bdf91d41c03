//! Raft paper Figure 8 (§5.4.2): a leader must not commit an entry of an earlier term by
//! counting replicas, because a later leader may still overwrite it.
//!
//! Start of (c): S1 and S2 hold (2,2); S3 and S4 only (1,1); S5 holds (3,2) and is down.
//! S1 wins term 4 (no-op at index 3), gets its no-op to S2 and copies (2,2) to S3. The leader
//! now *knows* (2,2) is on S1, S2 and S3 (a majority of five): counting would commit it. It must
//! not. S1 crashes; S5 wins term 5 with S3 and S4 and overwrites index 2 everywhere (d).

use super::config;
use crate::engine::testing::Cluster;
use crate::engine::{Input, Output, RoleKind};
use crate::message::Message;
use crate::types::{LogIndex, NodeId, Term};

fn figure_8_cluster() -> Cluster {
    let mut config = config();
    config.pre_vote = false;
    config.check_quorum = false;
    config.batch_entries_initial = 1;
    config.batch_entries_max = 1;
    let s1: &[u64] = &[1, 2];
    let s2: &[u64] = &[1, 2];
    let s3: &[u64] = &[1];
    let s4: &[u64] = &[1];
    let s5: &[u64] = &[1, 3];
    Cluster::restored(&config, &[(3, s1), (3, s2), (3, s3), (3, s4), (4, s5)], 1)
}

/// Whether S1's message reaches its target in phase (c): S5 is down, S4 misses every append,
/// S3 receives (2,2) but never the no-op.
fn reaches_in_phase_c(cluster: &Cluster, to: NodeId, message: &Message) -> bool {
    let Message::AppendEntries(request) = message else {
        return to != NodeId(5);
    };
    match to.0 {
        2 => true,
        3 => {
            let s3_len = cluster.logs[&to].len() as u64;
            let carries_noop = request
                .entries
                .iter()
                .any(|e| e.log_id.index == LogIndex(3));
            !carries_noop || request.prev_log_id.index.0 > s3_len
        }
        _ => false,
    }
}

#[test]
fn figure_8_old_term_entry_not_committed_by_count() {
    let mut cluster = figure_8_cluster();
    cluster.step(1, Input::Tick { now_ms: 5000 });
    while let Some(envelope) = cluster.network.pop_front() {
        if reaches_in_phase_c(&cluster, envelope.to, &envelope.message) {
            cluster.deliver(envelope);
        }
    }
    assert_eq!(cluster.role(1), RoleKind::Leader);
    assert_eq!(cluster.engine(1).status().term, Term(4));
    let matches: Vec<u64> = cluster
        .engine(1)
        .followers()
        .iter()
        .map(|f| f.match_index.0)
        .collect();
    assert_eq!(
        matches,
        [3, 2, 0, 0],
        "the leader knows (2,2) is on S1, S2 and S3"
    );
    assert_eq!(
        cluster.commit_of(1),
        LogIndex(1),
        "(2,2) must not commit by counting"
    );

    // S1 crashes. S5 wins term 5 with S3 and S4 and overwrites index 2.
    cluster.network.clear();
    cluster.step(5, Input::Tick { now_ms: 9000 });
    while let Some(envelope) = cluster.network.pop_front() {
        if envelope.to != NodeId(1) && envelope.from != NodeId(1) {
            cluster.deliver(envelope);
        }
    }
    assert_eq!(cluster.role(5), RoleKind::Leader);
    for id in [2, 3, 4, 5] {
        assert_eq!(
            cluster.logs[&NodeId(id)][1].log_id.term,
            Term(3),
            "S{id} index 2"
        );
    }
    let s2_outputs: Vec<&Output> = cluster
        .trace
        .iter()
        .filter(|(id, _)| *id == NodeId(2))
        .map(|(_, output)| output)
        .collect();
    let rollback = s2_outputs.iter().position(|o| {
        **o == Output::Rollback {
            first: LogIndex(2),
            last: LogIndex(3),
        }
    });
    let truncate = s2_outputs
        .iter()
        .position(|o| **o == Output::TruncateLog { from: LogIndex(2) });
    assert!(
        rollback.is_some() && rollback < truncate,
        "S2 rolls back (2,2) and (4,3) first"
    );
}

/// Figure 8 (e): once an entry of the current term is on a majority, the old entry commits
/// with it.
#[test]
fn figure_8_old_entry_commits_with_current_term_entry() {
    let mut cluster = figure_8_cluster();
    cluster.step(1, Input::Tick { now_ms: 5000 });
    while let Some(envelope) = cluster.network.pop_front() {
        if envelope.to != NodeId(5) && envelope.from != NodeId(5) {
            cluster.deliver(envelope);
        }
    }
    assert_eq!(cluster.role(1), RoleKind::Leader);
    assert_eq!(
        cluster.commit_of(1),
        LogIndex(3),
        "(2,2) committed with the term-4 no-op"
    );
}
