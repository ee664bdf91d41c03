//! Regression tests for bugs a review of the engine found (each failed before its fix).

use bytes::Bytes;

use super::config;
use super::{entries, members};
use crate::config::{Config, Pacing};
use crate::engine::testing::Cluster;
use crate::engine::{Engine, Input, Output, RestoredState};
use crate::message::{AppendEntries, AppendEntriesResponse, AppendOutcome, Message};
use crate::types::{Entry, HardState, LogId, LogIndex, NodeId, Payload, Term};

fn entry(t: u64, i: u64) -> Entry {
    Entry {
        log_id: LogId::new(t, i),
        payload: Payload::Command(Bytes::from_static(b"c")),
    }
}

fn ae(
    term: u64,
    leader: u64,
    seq: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit: u64,
) -> Input {
    Input::Received {
        from: NodeId(leader),
        message: Message::AppendEntries(AppendEntries {
            term: Term(term),
            leader_id: NodeId(leader),
            seq,
            prev_log_id: LogId::new(prev.0, prev.1),
            entries,
            leader_commit: LogIndex(commit),
        }),
    }
}

fn follower(hs: HardState, log: &[(u64, u64)], cfg: Config) -> Engine {
    let mut e = Engine::new(
        NodeId(2),
        members(),
        cfg,
        RestoredState {
            memberships: Vec::new(),
            hard_state: hs,
            snapshot: None,
            entries: entries(log),
        },
        7,
    )
    .unwrap();
    e.drain_outputs();
    e
}

/// Regression: the follower's PersistHardState(term 4) and AppendLog(term-4 entries) are
/// independent writes. If the log write is durable and the hard-state write is not when the node
/// crashes (raft-sim flushes the two with independent delays), the node could not restart; now it adopts the log's term.
#[test]
fn restart_after_log_durable_before_hard_state_adopts_log_term() {
    let mut f = follower(
        HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(1),
        },
        &[(1, 1)],
        config(),
    );
    let out: Vec<Output> = f.step(ae(4, 1, 1, (1, 1), vec![entry(4, 2)], 1)).collect();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PersistHardState(h) if h.term == Term(4)))
    );
    assert!(out.iter().any(|o| matches!(o, Output::AppendLog { .. })));
    // Crash: log write durable, hard-state write lost.
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(1),
        },
        snapshot: None,
        entries: entries(&[(1, 1), (4, 2)]),
    };
    let result = Engine::new(NodeId(2), members(), config(), restored, 7);
    assert!(
        result.is_ok(),
        "legitimately reachable durable state rejected: {:?}",
        result.err()
    );
}

/// Regression: HardState.commit is persisted above the durable log. After a truncation that is
/// not yet durable, a crash leaves the OLD entry at a committed index, and the restarted engine
/// committed (applied) it; now the persisted commit never passes the durable index.
#[test]
fn persisted_commit_never_passes_durable_index() {
    let cfg = Config {
        pre_vote: false,
        ..config()
    };
    // Durable: (1,1) committed, (2,2) uncommitted from a deposed leader.
    let mut f = follower(
        HardState {
            term: Term(2),
            vote: None,
            commit: LogIndex(1),
        },
        &[(1, 1), (2, 2)],
        cfg.clone(),
    );
    f.step(Input::HardStatePersisted {
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(1),
        },
    });
    // Leader 1 of term 3 overwrites index 2 with (3,2) and says it is committed.
    let out: Vec<Output> = f.step(ae(3, 1, 1, (1, 1), vec![entry(3, 2)], 2)).collect();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::TruncateLog { from } if *from == LogIndex(2)))
    );
    assert!(out.contains(&Output::Commit { upto: LogIndex(2) }));
    // The log write is still pending. The leader dies; this node campaigns.
    f.step(Input::Tick { now_ms: 10_000 }).count(); // the first tick arms the timer
    let out: Vec<Output> = f.step(Input::Tick { now_ms: 20_000 }).collect();
    let hs = out
        .iter()
        .find_map(|o| match o {
            Output::PersistHardState(h) => Some(*h),
            _ => None,
        })
        .expect("campaign persists term and vote");
    // Hard state flushed, crash before the log flush: durable log still has (2,2) at index 2.
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: hs,
        snapshot: None,
        entries: entries(&[(1, 1), (2, 2)]),
    };
    let mut e = Engine::new(NodeId(2), members(), cfg, restored, 7).unwrap();
    let outs: Vec<Output> = e.drain_outputs().collect();
    assert!(
        !outs.contains(&Output::Commit { upto: LogIndex(2) }),
        "restarted engine commits (2,2) although (3,2) is the committed entry at index 2; persisted {hs:?}"
    );
}

/// Regression: a LogPersisted report of a write issued before a truncation is credited to a
/// later re-append of the same log id (ABA), so an ack left before the entry was durable; now writes carry an epoch.
#[test]
fn stale_durability_report_after_aba_truncation_is_ignored() {
    let mut f = follower(
        HardState {
            term: Term(1),
            vote: None,
            commit: LogIndex(1),
        },
        &[(1, 1)],
        config(),
    );
    let hs = |t| Input::HardStatePersisted {
        hard_state: HardState {
            term: Term(t),
            vote: None,
            commit: LogIndex(1),
        },
    };
    f.step(ae(2, 1, 1, (1, 1), vec![entry(2, 2)], 1)).count(); // W1 = [(2,2)]
    f.step(hs(2)).count();
    f.step(ae(3, 3, 1, (1, 1), vec![entry(3, 2)], 1)).count(); // truncate 2, W2 = [(3,2)]
    f.step(hs(3)).count();
    f.step(ae(4, 1, 1, (1, 1), vec![entry(2, 2), entry(4, 3)], 1))
        .count(); // truncate 2, W3
    f.step(hs(4)).count();
    // Now W1's completion is reported (in order: it is the oldest write).
    f.step(Input::LogPersisted {
        upto: LogId::new(2, 2),
        epoch: 0,
    })
    .count();
    // W3 is not durable (disk holds (3,2) at index 2), yet a heartbeat at prev (2,2) is acked.
    let out: Vec<Output> = f.step(ae(4, 1, 2, (2, 2), vec![], 1)).collect();
    let acked = out.iter().any(|o| {
        matches!(
            o,
            Output::Send {
                message: Message::AppendEntriesResponse(AppendEntriesResponse {
                    outcome: AppendOutcome::Success { .. },
                    ..
                }),
                ..
            }
        )
    });
    assert!(
        !acked,
        "acked index 2 while the durable log holds (3,2) there"
    );
}

/// Runs 2 s of Heartbeat pacing after one proposal, with or without a read every 50 ms, and
/// returns the leader's commit index before and after.
fn heartbeat_pacing_run(with_reads: bool) -> (LogIndex, LogIndex) {
    let cfg = Config {
        pacing: Pacing::Heartbeat,
        ..config()
    };
    let mut cluster = Cluster::new(3, &cfg);
    cluster.elect(1, 2000);
    cluster.step(1, Input::Tick { now_ms: 2100 });
    cluster.deliver_all();
    let before = cluster.commit_of(1);
    cluster.propose(1, "x");
    for k in 0..40u64 {
        let now = 2100 + 50 * k;
        cluster.set_clocks(now); // followers stay followers
        cluster.step(1, Input::Tick { now_ms: now });
        if with_reads {
            cluster.step(1, Input::ReadRequested { id: k });
        }
        cluster.deliver_all();
    }
    (before, cluster.commit_of(1))
}

/// Regression: with Heartbeat pacing, every ReadIndex round reset the heartbeat timers, so a
/// steady read load stopped all replication of new entries.
#[test]
fn heartbeat_pacing_replicates_under_steady_reads() {
    let (before, after) = heartbeat_pacing_run(true);
    assert!(
        after > before,
        "reads every 50 ms and commit stuck at {before}"
    );
}

/// Control for the read-starvation regression: the same run without reads commits the proposal.
#[test]
fn heartbeat_pacing_without_reads_commits() {
    let (before, after) = heartbeat_pacing_run(false);
    assert!(after > before);
}
