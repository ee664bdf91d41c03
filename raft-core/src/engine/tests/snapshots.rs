//! Snapshots in the engine: InstallSnapshot on a follower (chunk checks, keep or replace the
//! log, rollback before the truncation), snapshots the commit index covers, and a restart from a
//! snapshot plus a log that agrees with it or not (exact outputs).

use bytes::Bytes;

use super::config;
use super::{entries, members};
use crate::engine::{Engine, Input, Output, RestoredState};
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message, SnapshotOutcome};
use crate::snapshot::SnapshotMeta;
use crate::types::{HardState, LogId, LogIndex, Membership, NodeId, Term};

fn meta_of(last: LogId, data: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: last,
        membership: members(),
        size: data.len() as u64,
        checksum: crc32c::crc32c(data),
    }
}

/// Follower 2 in term 3 with log `ids`, commit index `commit`.
fn follower(ids: &[(u64, u64)], commit: u64) -> Engine {
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(commit),
        },
        snapshot: None,
        entries: entries(ids),
    };
    let mut engine = Engine::new(NodeId(2), members(), config(), restored, 1).unwrap();
    engine.drain_outputs();
    engine
}

fn chunk(meta: &SnapshotMeta, data: &[u8], offset: u64, seq: u64) -> Input {
    let end = offset as usize + data.len();
    Input::Received {
        from: NodeId(1),
        message: Message::InstallSnapshot(InstallSnapshot {
            term: Term(3),
            leader_id: NodeId(1),
            seq,
            meta: meta.clone(),
            offset,
            data: Bytes::copy_from_slice(data),
            chunk_crc: crc32c::crc32c(data),
            done: end as u64 == meta.size,
        }),
    }
}

fn reply(outcome: SnapshotOutcome, seq: u64) -> Output {
    Output::Send {
        to: NodeId(1),
        message: Message::InstallSnapshotResponse(InstallSnapshotResponse {
            term: Term(3),
            seq,
            outcome,
        }),
    }
}

#[test]
fn snapshot_over_a_conflicting_log_rolls_back_only_entries_above_it_then_replaces_the_log() {
    // Entries 1-2 committed; 3-8 pre-committed. 3-5 may have committed on the leader (the
    // snapshot covers them either way); 6 disagrees with the snapshot, so 7-8 cannot match.
    let mut engine = follower(
        &[
            (1, 1),
            (1, 2),
            (2, 3),
            (2, 4),
            (2, 5),
            (2, 6),
            (2, 7),
            (2, 8),
        ],
        2,
    );
    let data = b"0123456789";
    let meta = meta_of(LogId::new(3, 6), data);
    let first: Vec<Output> = engine.step(chunk(&meta, &data[..4], 0, 7)).collect();
    assert_eq!(
        first,
        vec![
            Output::SaveSnapshotChunk {
                meta: meta.clone(),
                offset: 0,
                data: Bytes::from_static(b"0123"),
                done: false,
            },
            reply(SnapshotOutcome::Continue { offset: 4 }, 7),
        ]
    );
    let last: Vec<Output> = engine.step(chunk(&meta, &data[4..], 4, 8)).collect();
    assert_eq!(
        last,
        vec![
            Output::SaveSnapshotChunk {
                meta: meta.clone(),
                offset: 4,
                data: Bytes::from_static(b"456789"),
                done: true,
            },
            // Entries above the snapshot are rolled back before the log goes; the ones it
            // covers are not (they may have committed): the restore replaces the state.
            Output::Rollback {
                first: LogIndex(7),
                last: LogIndex(8)
            },
            Output::TruncateLog { from: LogIndex(1) },
            Output::CompactLog {
                before: LogIndex(7)
            },
            Output::RestoreSnapshot { meta: meta.clone() },
            reply(SnapshotOutcome::Installed, 8),
        ]
    );
    let status = engine.status();
    assert_eq!(status.commit_index, LogIndex(6));
    assert_eq!(status.last_log_id, LogId::new(3, 6));
    assert_eq!(status.snapshot_index, LogIndex(6));
    assert_eq!(engine.snapshot(), Some(&meta));
}

#[test]
fn snapshot_whose_last_entry_the_log_holds_keeps_the_entries_after_it() {
    let mut engine = follower(&[(1, 1), (1, 2), (2, 3), (2, 4), (3, 5)], 1);
    let meta = meta_of(LogId::new(2, 3), b"abc");
    let outputs: Vec<Output> = engine.step(chunk(&meta, b"abc", 0, 1)).collect();
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::TruncateLog { .. } | Output::Rollback { .. })),
        "nothing after the snapshot is lost: {outputs:?}"
    );
    assert!(outputs.contains(&Output::RestoreSnapshot { meta: meta.clone() }));
    assert!(outputs.contains(&reply(SnapshotOutcome::Installed, 1)));
    let status = engine.status();
    assert_eq!(status.last_log_id, LogId::new(3, 5));
    assert_eq!(status.commit_index, LogIndex(3));
    // The test config keeps 4 entries below the snapshot: nothing to compact yet.
    assert_eq!(status.log_base_index, LogIndex::ZERO);
}

#[test]
fn snapshot_the_commit_index_covers_is_not_transferred() {
    let mut engine = follower(&[(1, 1), (1, 2), (1, 3)], 3);
    let meta = meta_of(LogId::new(1, 2), b"xy");
    let outputs: Vec<Output> = engine.step(chunk(&meta, b"x", 0, 4)).collect();
    assert_eq!(
        outputs,
        vec![reply(
            SnapshotOutcome::Covered {
                commit_index: LogIndex(3)
            },
            4
        )]
    );
}

/// A chunk whose sender is not the leader it names (relayed, or forged) is dropped whole:
/// nothing saved, nothing answered, no leader noted; the same chunk from the leader is taken.
#[test]
fn a_snapshot_chunk_relayed_for_another_leader_is_dropped() {
    let mut engine = follower(&[(1, 1)], 1);
    let meta = meta_of(LogId::new(3, 9), b"abcd");
    let Input::Received { message, .. } = chunk(&meta, b"ab", 0, 1) else {
        unreachable!("chunk builds a received message");
    };
    let relayed = Input::Received {
        from: NodeId(3),
        message,
    };
    let outputs: Vec<Output> = engine.step(relayed).collect();
    assert_eq!(outputs, vec![], "dropped");
    assert_eq!(engine.status().leader, None);
    let outputs: Vec<Output> = engine.step(chunk(&meta, b"ab", 0, 2)).collect();
    assert!(outputs.contains(&reply(SnapshotOutcome::Continue { offset: 2 }, 2)));
    assert_eq!(engine.status().leader, Some(NodeId(1)));
}

#[test]
fn damaged_or_out_of_place_chunks_are_refused_with_the_offset_to_resend() {
    let mut engine = follower(&[(1, 1)], 1);
    let data = b"abcdefgh";
    let meta = meta_of(LogId::new(3, 9), data);
    engine.step(chunk(&meta, &data[..4], 0, 1)).for_each(drop);
    // A chunk whose bytes do not match its checksum.
    let Input::Received {
        message: Message::InstallSnapshot(mut damaged),
        ..
    } = chunk(&meta, &data[4..], 4, 2)
    else {
        unreachable!("chunk builds an InstallSnapshot");
    };
    damaged.data = Bytes::from_static(b"efgX");
    let outputs: Vec<Output> = engine
        .step(Input::Received {
            from: NodeId(1),
            message: Message::InstallSnapshot(damaged),
        })
        .collect();
    assert_eq!(
        outputs,
        vec![reply(SnapshotOutcome::Continue { offset: 4 }, 2)]
    );
    // A duplicate of the first chunk after it was saved: resend from 4, save nothing.
    let outputs: Vec<Output> = engine.step(chunk(&meta, &data[2..4], 2, 3)).collect();
    assert_eq!(
        outputs,
        vec![reply(SnapshotOutcome::Continue { offset: 4 }, 3)]
    );
    let outputs: Vec<Output> = engine.step(chunk(&meta, &data[4..], 4, 4)).collect();
    assert!(outputs.contains(&reply(SnapshotOutcome::Installed, 4)));
}

/// A chunk of another snapshot (the leader took a newer one and restarted the transfer) is
/// expected at offset 0, whatever part of the older one arrived.
#[test]
fn a_newer_snapshot_is_received_from_offset_zero() {
    let mut engine = follower(&[(1, 1)], 1);
    let older = meta_of(LogId::new(3, 9), b"abcd");
    engine.step(chunk(&older, b"ab", 0, 1)).for_each(drop);
    let newer = meta_of(LogId::new(3, 10), b"wxyz");
    let outputs: Vec<Output> = engine.step(chunk(&newer, b"wx", 0, 2)).collect();
    assert!(
        outputs.contains(&reply(SnapshotOutcome::Continue { offset: 2 }, 2)),
        "{outputs:?}"
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::SaveSnapshotChunk { meta, offset: 0, .. } if *meta == newer
    )));
    let outputs: Vec<Output> = engine.step(chunk(&newer, b"yz", 2, 3)).collect();
    assert!(outputs.contains(&reply(SnapshotOutcome::Installed, 3)));
    assert_eq!(engine.snapshot(), Some(&newer));
}

#[test]
fn data_failing_the_whole_snapshot_checksum_restarts_the_transfer() {
    let mut engine = follower(&[(1, 1)], 1);
    let mut meta = meta_of(LogId::new(3, 9), b"abcd");
    meta.checksum ^= 0xFF;
    engine.step(chunk(&meta, b"ab", 0, 1)).for_each(drop);
    let outputs: Vec<Output> = engine.step(chunk(&meta, b"cd", 2, 2)).collect();
    assert_eq!(
        outputs,
        vec![reply(SnapshotOutcome::Continue { offset: 0 }, 2)],
        "nothing is saved as complete"
    );
    assert_eq!(engine.status().snapshot_index, LogIndex::ZERO);
}

#[test]
fn restart_from_a_snapshot_restores_it_then_commits_and_pre_commits_the_log_after_it() {
    let meta = meta_of(LogId::new(2, 5), b"state");
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(2),
        },
        snapshot: Some(meta.clone()),
        // The store kept two entries below the snapshot (a whole segment).
        entries: entries(&[(2, 4), (2, 5), (3, 6), (3, 7)]),
    };
    let mut engine = Engine::new(NodeId(2), members(), config(), restored, 1).unwrap();
    let outputs: Vec<Output> = engine.drain_outputs().collect();
    assert_eq!(
        outputs,
        vec![
            Output::RestoreSnapshot { meta },
            Output::PreCommit {
                first: LogIndex(6),
                last: LogIndex(7)
            },
        ]
    );
    let status = engine.status();
    assert_eq!(status.commit_index, LogIndex(5));
    assert_eq!(status.log_base_index, LogIndex(3));
    assert_eq!(status.last_log_id, LogId::new(3, 7));
}

#[test]
fn restart_with_a_log_that_disagrees_with_the_snapshot_replaces_the_log() {
    let meta = meta_of(LogId::new(4, 5), b"state");
    // The snapshot was saved, then the crash came before the old log was cut.
    let restored = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState {
            term: Term(4),
            vote: None,
            commit: LogIndex(2),
        },
        snapshot: Some(meta.clone()),
        entries: entries(&[(1, 1), (1, 2), (2, 3), (2, 4), (2, 5), (2, 6)]),
    };
    let mut engine = Engine::new(NodeId(2), members(), config(), restored, 1).unwrap();
    let outputs: Vec<Output> = engine.drain_outputs().collect();
    assert_eq!(
        outputs,
        vec![
            Output::RestoreSnapshot { meta },
            Output::TruncateLog { from: LogIndex(1) },
            Output::CompactLog {
                before: LogIndex(6)
            },
        ]
    );
    assert_eq!(engine.status().last_log_id, LogId::new(4, 5));
    assert_eq!(engine.status().commit_index, LogIndex(5));
}

#[test]
fn a_log_starting_after_a_gap_or_without_a_snapshot_is_refused() {
    let meta = meta_of(LogId::new(1, 3), b"s");
    let gap = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState::default(),
        snapshot: Some(meta),
        entries: entries(&[(1, 5), (1, 6)]),
    };
    assert!(Engine::new(NodeId(2), members(), config(), gap, 1).is_err());
    let headless = RestoredState {
        memberships: Vec::new(),
        hard_state: HardState::default(),
        snapshot: None,
        entries: entries(&[(1, 2)]),
    };
    assert!(Engine::new(NodeId(2), members(), config(), headless, 1).is_err());
}

#[test]
fn count_policy_asks_for_a_snapshot_after_the_commit_and_compacts_once_it_is_durable() {
    let mut config = config();
    config.snapshot_entries = 3;
    config.snapshot_keep_entries = 1;
    let restored = RestoredState::default();
    let id = NodeId(1);
    let mut engine = Engine::new(id, Membership::new([id]), config, restored, 1).unwrap();
    engine.step(Input::Tick { now_ms: 0 }).for_each(drop);
    let mut pending = vec![Input::Tick { now_ms: 10_000 }];
    let mut created = None;
    let mut proposed = false;
    while let Some(input) = pending.pop() {
        for output in engine.step(input).collect::<Vec<_>>() {
            match output {
                Output::PersistHardState(hard_state) => {
                    pending.push(Input::HardStatePersisted { hard_state });
                }
                Output::AppendLog { entries, epoch } => {
                    let upto = entries.last().map(|e| e.log_id).unwrap_or_default();
                    pending.push(Input::LogPersisted { upto, epoch });
                }
                Output::CreateSnapshot { last_log_id, .. } => created = Some(last_log_id),
                _ => {}
            }
        }
        if pending.is_empty() && !proposed {
            proposed = true;
            let payloads = (0..3).map(|i| Bytes::from(vec![i])).collect();
            pending.push(Input::Proposed { id: 1, payloads });
        }
    }
    // The no-op and three commands: index 4 committed, 4 - 0 >= 3.
    assert_eq!(created, Some(LogId::new(1, 4)));
    assert_eq!(
        engine.status().log_base_index,
        LogIndex::ZERO,
        "not before durable"
    );
    let meta = meta_of(LogId::new(1, 4), b"");
    let outputs: Vec<Output> = engine.step(Input::SnapshotCreated { meta }).collect();
    assert_eq!(
        outputs,
        vec![Output::CompactLog {
            before: LogIndex(4)
        }]
    );
    assert_eq!(engine.status().log_base_index, LogIndex(3));
    assert_eq!(engine.status().snapshot_index, LogIndex(4));
}

/// A lone leader (node 1, no automatic snapshots, nothing kept below a snapshot) whose no-op
/// and `commands` commands are committed and durable.
fn lone_leader_with_commands(commands: u8) -> Engine {
    let mut config = config();
    config.snapshot_entries = 0;
    config.snapshot_keep_entries = 0;
    let id = NodeId(1);
    let mut engine = Engine::new(
        id,
        Membership::new([id]),
        config,
        RestoredState::default(),
        1,
    )
    .unwrap();
    engine.step(Input::Tick { now_ms: 0 }).for_each(drop);
    let mut pending = vec![Input::Tick { now_ms: 10_000 }];
    let mut proposed = false;
    while let Some(input) = pending.pop() {
        for output in engine.step(input).collect::<Vec<_>>() {
            match output {
                Output::PersistHardState(hard_state) => {
                    pending.push(Input::HardStatePersisted { hard_state });
                }
                Output::AppendLog { entries, epoch } => {
                    let upto = entries.last().map(|e| e.log_id).unwrap_or_default();
                    pending.push(Input::LogPersisted { upto, epoch });
                }
                _ => {}
            }
        }
        if pending.is_empty() && !proposed {
            proposed = true;
            let payloads = (0..commands).map(|i| Bytes::from(vec![i])).collect();
            pending.push(Input::Proposed { id: 1, payloads });
        }
    }
    let last = u64::from(commands) + 1;
    assert_eq!(engine.status().commit_index, LogIndex(last));
    engine
}

fn snapshots_asked(outputs: &[Output]) -> Vec<LogId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::CreateSnapshot { last_log_id, .. } => Some(*last_log_id),
            _ => None,
        })
        .collect()
}

/// The runtime reports the snapshot it made; a report that does not describe this node's
/// committed log (an entry of another term at that index, or an index past the commit) is
/// never adopted: compacting after it would drop entries no snapshot covers.
#[test]
fn a_snapshot_report_that_does_not_match_the_committed_log_is_ignored() {
    let mut engine = lone_leader_with_commands(3);
    let asked: Vec<Output> = engine.step(Input::SnapshotRequested).collect();
    assert_eq!(snapshots_asked(&asked), vec![LogId::new(1, 4)]);
    for wrong in [LogId::new(2, 4), LogId::new(1, 5)] {
        let outputs: Vec<Output> = engine
            .step(Input::SnapshotCreated {
                meta: meta_of(wrong, b""),
            })
            .collect();
        assert_eq!(outputs, vec![], "{wrong} is not in the committed log");
        assert_eq!(engine.status().snapshot_index, LogIndex::ZERO);
        assert_eq!(engine.status().log_base_index, LogIndex::ZERO);
    }
    let outputs: Vec<Output> = engine
        .step(Input::SnapshotCreated {
            meta: meta_of(LogId::new(1, 4), b""),
        })
        .collect();
    assert_eq!(
        outputs,
        vec![Output::CompactLog {
            before: LogIndex(5)
        }]
    );
    assert_eq!(engine.status().snapshot_index, LogIndex(4));
}

/// One snapshot is made at a time: a request while one is being made, or with nothing
/// committed since the last, asks for nothing; once the runtime reports that it failed, the
/// next request asks again.
#[test]
fn snapshot_requests_ask_for_one_snapshot_at_a_time_and_again_after_a_failure() {
    let mut engine = lone_leader_with_commands(3);
    let first: Vec<Output> = engine.step(Input::SnapshotRequested).collect();
    assert_eq!(snapshots_asked(&first), vec![LogId::new(1, 4)]);
    let again: Vec<Output> = engine.step(Input::SnapshotRequested).collect();
    assert_eq!(snapshots_asked(&again), vec![], "one is being made");
    engine.step(Input::SnapshotFailed).for_each(drop);
    let retry: Vec<Output> = engine.step(Input::SnapshotRequested).collect();
    assert_eq!(
        snapshots_asked(&retry),
        vec![LogId::new(1, 4)],
        "asked again"
    );
    let meta = meta_of(LogId::new(1, 4), b"");
    engine.step(Input::SnapshotCreated { meta }).for_each(drop);
    let nothing_new: Vec<Output> = engine.step(Input::SnapshotRequested).collect();
    assert_eq!(
        snapshots_asked(&nothing_new),
        vec![],
        "nothing committed since the last snapshot"
    );
}

/// A follower behind the leader's snapshot whose next entries the leader's log still holds
/// (kept below the snapshot, `snapshot_keep_entries`) is sent those entries, not the snapshot.
#[test]
fn a_follower_behind_the_snapshot_gets_the_entries_the_log_still_holds() {
    use crate::engine::testing::Cluster;
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 2000);
    for payload in ["a", "b"] {
        cluster.propose(1, payload);
    }
    cluster.deliver_all();
    // Node 3 misses entries 4 to 6; node 1 and node 2 commit them.
    for payload in ["c", "d", "e"] {
        cluster.propose(1, payload);
    }
    while let Some(envelope) = cluster.network.pop_front() {
        if envelope.to != NodeId(3) {
            cluster.deliver(envelope);
        }
    }
    assert_eq!(cluster.commit_of(1), LogIndex(6));
    let outputs = cluster.step(1, Input::SnapshotRequested);
    let Some(Output::CreateSnapshot { last_log_id, .. }) = outputs
        .iter()
        .find(|o| matches!(o, Output::CreateSnapshot { .. }))
    else {
        panic!("a snapshot asked: {outputs:?}");
    };
    let meta = meta_of(*last_log_id, b"snap");
    cluster.step(1, Input::SnapshotCreated { meta });
    let status = cluster.engine(1).status();
    assert_eq!(status.snapshot_index, LogIndex(6));
    assert!(status.log_base_index < LogIndex(3), "entry 3 kept");
    // The requests to node 3 time out; the leader resends from its match (3).
    cluster.set_clocks(2600);
    let outputs = cluster.step(1, Input::Tick { now_ms: 2600 });
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::SendSnapshot { .. })),
        "{outputs:?}"
    );
    cluster.set_clocks(2700);
    cluster.step(1, Input::Tick { now_ms: 2700 });
    assert!(
        cluster.trace.iter().any(|(node, o)| *node == NodeId(1)
            && matches!(o, Output::SendEntries { to, first, .. } if *to == NodeId(3) && *first == LogIndex(4))),
        "entries 4 on resent"
    );
    cluster.deliver_all();
    assert_eq!(cluster.engine(3).status().last_log_id.index, LogIndex(6));
}

/// The chunks among `outputs` as the runtime would send them: `data`'s bytes filled in.
fn chunks_sent(outputs: &[Output], data: &[u8]) -> Vec<crate::engine::testing::Envelope> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::SendSnapshot { to, request, len } => {
                let mut request = request.clone();
                let start = request.offset as usize;
                request.data = Bytes::copy_from_slice(&data[start..start + *len as usize]);
                request.chunk_crc = crc32c::crc32c(&request.data);
                Some(crate::engine::testing::Envelope {
                    from: NodeId(1),
                    to: *to,
                    message: Message::InstallSnapshot(request),
                })
            }
            _ => None,
        })
        .collect()
}

/// A cluster whose leader (node 1) compacted entries 2 to 4 into a snapshot of 150 bytes that
/// node 3 (which missed them) needs; returns it, the snapshot's data and meta.
fn leader_with_a_snapshot_node_3_needs() -> (crate::engine::testing::Cluster, Vec<u8>, SnapshotMeta)
{
    use crate::engine::testing::Cluster;
    let mut config = config();
    config.snapshot_keep_entries = 0;
    let mut cluster = Cluster::new(3, &config);
    cluster.elect(1, 2000);
    // Node 3 misses entries 2 to 4; node 1 and node 2 commit them, and node 1 compacts them.
    for payload in ["a", "b", "c"] {
        cluster.propose(1, payload);
    }
    while let Some(envelope) = cluster.network.pop_front() {
        if envelope.to != NodeId(3) {
            cluster.deliver(envelope);
        }
    }
    cluster.step(1, Input::SnapshotRequested);
    let data: Vec<u8> = (0..150).collect();
    let meta = meta_of(LogId::new(1, 4), &data);
    cluster.step(1, Input::SnapshotCreated { meta: meta.clone() });
    assert_eq!(cluster.engine(1).status().log_base_index, LogIndex(4));
    (cluster, data, meta)
}

/// Moves the clocks to `now_ms`, ticks the leader (node 1), delivers every message; returns
/// the chunks it sent.
fn tick_leader(
    cluster: &mut crate::engine::testing::Cluster,
    now_ms: u64,
    data: &[u8],
) -> Vec<crate::engine::testing::Envelope> {
    cluster.set_clocks(now_ms);
    let outputs = cluster.step(1, Input::Tick { now_ms });
    cluster.deliver_all();
    chunks_sent(&outputs, data)
}

/// The offset of the one chunk in `chunks`.
fn offset_of_one(chunks: &[crate::engine::testing::Envelope]) -> Option<u64> {
    match chunks {
        [envelope] => match &envelope.message {
            Message::InstallSnapshot(request) => Some(request.offset),
            _ => None,
        },
        _ => None,
    }
}

/// A follower behind the compacted prefix gets the snapshot, one chunk in flight at a time
/// (none before the retry time after a failure; a lost one again after the request timeout),
/// each chunk after the last one confirmed, then the entries after it. A chunk counts as a
/// heartbeat: the next one comes an interval after the last chunk.
#[test]
fn a_snapshot_goes_one_chunk_at_a_time_after_the_retry_time() {
    use crate::engine::testing::Cluster;
    let (mut cluster, data, meta) = leader_with_a_snapshot_node_3_needs();
    let tick = |cluster: &mut Cluster, now_ms| tick_leader(cluster, now_ms, &data);
    // The requests to node 3 time out at 2500; the transfer waits for the retry time.
    assert_eq!(tick(&mut cluster, 2500), vec![], "not before 2600");
    let lost = tick(&mut cluster, 2600);
    assert_eq!(tick(&mut cluster, 2700), vec![], "one chunk in flight");
    assert_eq!(tick(&mut cluster, 3100), vec![], "timed out, retry at 3200");
    let first = tick(&mut cluster, 3200);
    assert_eq!(
        (offset_of_one(&lost), offset_of_one(&first)),
        (Some(0), Some(0)),
        "resent"
    );
    // Chunks of 64 bytes: 64, 64 and 22, each sent once its predecessor is confirmed.
    let mut offsets = Vec::new();
    let mut queue: std::collections::VecDeque<_> = first.into();
    while let Some(envelope) = queue.pop_front() {
        if let Message::InstallSnapshot(request) = &envelope.message {
            offsets.push(request.offset);
        }
        assert!(offsets.len() < 10, "the transfer does not end: {offsets:?}");
        cluster.deliver(envelope);
        let answers: Vec<_> = cluster.network.drain(..).collect();
        for answer in answers {
            let outputs = cluster.deliver(answer);
            queue.extend(chunks_sent(&outputs, &data));
        }
    }
    assert_eq!(offsets, [0, 64, 128]);
    assert_eq!(cluster.engine(3).snapshot(), Some(&meta));
    let to_3 = |cluster: &Cluster| cluster.network.iter().filter(|e| e.to == NodeId(3)).count();
    assert_eq!(to_3(&cluster), 0, "the last chunk was a heartbeat");
    cluster.set_clocks(3299);
    cluster.step(1, Input::Tick { now_ms: 3299 });
    assert_eq!(to_3(&cluster), 0);
    cluster.set_clocks(3300);
    cluster.step(1, Input::Tick { now_ms: 3300 });
    assert_eq!(
        to_3(&cluster),
        1,
        "a heartbeat an interval after the last chunk"
    );
    // The test cluster's logs know no snapshots: node 3's store now ends at the snapshot.
    let covered = cluster.logs[&NodeId(1)][..4].to_vec();
    cluster.logs.insert(NodeId(3), covered);
    cluster.propose(1, "d");
    cluster.deliver_all();
    assert_eq!(cluster.engine(3).status().last_log_id.index, LogIndex(5));
}

/// A transport failure of the chunk in flight makes the leader resend it after the retry time
/// (not only after the request timeout); a failure of another request does not touch it.
#[test]
fn a_transport_failure_of_the_chunk_in_flight_resends_it_after_the_retry_time() {
    let (mut cluster, data, _) = leader_with_a_snapshot_node_3_needs();
    // The requests to node 3 time out at 2500; the first chunk leaves at 2600.
    tick_leader(&mut cluster, 2500, &data);
    let chunk = tick_leader(&mut cluster, 2600, &data);
    let Some(Message::InstallSnapshot(request)) = chunk.first().map(|e| &e.message) else {
        panic!("a chunk at the retry time: {chunk:?}");
    };
    let seq = request.seq;
    let failed = |seq| Input::SendFailed { to: NodeId(3), seq };
    cluster.step(1, failed(seq + 1000));
    assert_eq!(
        tick_leader(&mut cluster, 2700, &data),
        vec![],
        "still in flight"
    );
    cluster.step(1, failed(seq));
    assert_eq!(
        tick_leader(&mut cluster, 2750, &data),
        vec![],
        "retry at 2800"
    );
    let resent = tick_leader(&mut cluster, 2800, &data);
    assert_eq!(offset_of_one(&resent), Some(0));
}
