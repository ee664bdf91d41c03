//! NuRaft lifecycle on a conflict: roll back pre-committed entries in reverse order *before*
//! the truncation, then append and pre-commit the leader's entries (exact output sequence).

use bytes::Bytes;

use super::config;
use crate::engine::{Engine, Input, LogEntryMeta, Output, RestoredState};
use crate::message::{AppendEntries, AppendEntriesResponse, AppendOutcome, Message};
use crate::types::{Entry, HardState, LogId, LogIndex, Membership, NodeId, Payload, Term};

fn follower_with_uncommitted_tail() -> Engine {
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(1),
        },
        snapshot: None,
        entries: [(1, 1), (1, 2), (1, 3)]
            .iter()
            .map(|&(term, index)| LogEntryMeta {
                log_id: LogId::new(term, index),
                payload_len: 1,
            })
            .collect(),
    };
    let membership = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
    let mut engine = Engine::new(NodeId(2), membership, config(), restored, 1).unwrap();
    let start: Vec<Output> = engine.drain_outputs().collect();
    assert_eq!(
        start,
        vec![
            Output::Commit { upto: LogIndex(1) },
            Output::PreCommit {
                first: LogIndex(2),
                last: LogIndex(3)
            }
        ]
    );
    engine
}

#[test]
fn conflict_rolls_back_in_reverse_before_truncation() {
    let mut engine = follower_with_uncommitted_tail();
    let entry = Entry {
        log_id: LogId::new(2, 2),
        payload: Payload::Command(Bytes::from_static(b"new")),
    };
    let request = AppendEntries {
        term: Term(3),
        leader_id: NodeId(1),
        seq: 9,
        prev_log_id: LogId::new(1, 1),
        entries: vec![entry.clone()],
        leader_commit: LogIndex(1),
    };
    let message = Message::AppendEntries(request);
    let outputs: Vec<Output> = engine
        .step(Input::Received {
            from: NodeId(1),
            message,
        })
        .collect();
    assert_eq!(
        outputs,
        vec![
            Output::Rollback {
                first: LogIndex(2),
                last: LogIndex(3)
            },
            Output::TruncateLog { from: LogIndex(2) },
            Output::AppendLog {
                entries: vec![entry],
                epoch: 1,
            },
            Output::PreCommit {
                first: LogIndex(2),
                last: LogIndex(2)
            },
        ],
        "no ack until the new entry is durable"
    );
    let outputs: Vec<Output> = engine
        .step(Input::LogPersisted {
            upto: LogId::new(2, 2),
            epoch: 1,
        })
        .collect();
    let ack = Message::AppendEntriesResponse(AppendEntriesResponse {
        term: Term(3),
        seq: 9,
        outcome: AppendOutcome::Success {
            match_index: LogIndex(2),
        },
    });
    assert_eq!(
        outputs,
        vec![Output::Send {
            to: NodeId(1),
            message: ack
        }]
    );
}

/// A durability report for an entry the log no longer holds is ignored.
#[test]
fn durability_report_for_truncated_entry_is_ignored() {
    let mut engine = follower_with_uncommitted_tail();
    let request = AppendEntries {
        term: Term(3),
        leader_id: NodeId(1),
        seq: 1,
        prev_log_id: LogId::new(1, 1),
        entries: vec![Entry {
            log_id: LogId::new(3, 2),
            payload: Payload::Blank,
        }],
        leader_commit: LogIndex(1),
    };
    let message = Message::AppendEntries(request);
    engine
        .step(Input::Received {
            from: NodeId(1),
            message,
        })
        .for_each(drop);
    assert_eq!(engine.status().durable_index, LogIndex(1));
    let outputs: Vec<Output> = engine
        .step(Input::LogPersisted {
            upto: LogId::new(1, 3),
            epoch: 0,
        })
        .collect();
    assert!(outputs.is_empty());
    assert_eq!(engine.status().durable_index, LogIndex(1));
}

/// An AppendEntries that would remove a committed entry is refused, whatever it says.
#[test]
fn append_that_contradicts_committed_entry_is_dropped() {
    let mut engine = follower_with_uncommitted_tail();
    let request = AppendEntries {
        term: Term(3),
        leader_id: NodeId(1),
        seq: 1,
        prev_log_id: LogId::ZERO,
        entries: vec![Entry {
            log_id: LogId::new(2, 1),
            payload: Payload::Blank,
        }],
        leader_commit: LogIndex(1),
    };
    let message = Message::AppendEntries(request);
    let outputs: Vec<Output> = engine
        .step(Input::Received {
            from: NodeId(1),
            message,
        })
        .collect();
    assert!(outputs.is_empty(), "{outputs:?}");
    assert_eq!(engine.status().last_log_id, LogId::new(1, 3));
}
