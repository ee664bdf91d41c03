//! Streaming replication: the follower opens its stream, the leader checks the position once,
//! pipelines batches only on a stream (one request at a time without), keeps heartbeats on
//! their own timer, survives closes, delayed opens and a stream it lost track of.

use super::config;
use crate::config::{Config, Replication};
use crate::engine::testing::{Cluster, Envelope};
use crate::engine::{Input, Output};
use crate::message::{AppendEntries, Message, OpenStream};
use crate::types::{LogIndex, NodeId};

/// Streaming with every batch sent as soon as its entries exist (no Nagle's rule: a partial
/// batch goes however many are unanswered), so the tests see one batch per proposal.
fn streaming() -> Config {
    Config {
        replication: Replication::Streaming,
        max_inflight_requests: 64,
        max_inflight_partial_requests: 64,
        ..config()
    }
}

/// Delivers every message in FIFO order except those `drop` picks.
fn deliver_all_but(cluster: &mut Cluster, drop: impl Fn(&Envelope) -> bool) {
    let mut rounds = 0;
    while let Some(envelope) = cluster.network.pop_front() {
        if !drop(&envelope) {
            cluster.deliver(envelope);
        }
        rounds += 1;
        assert!(rounds < 100_000, "message storm");
    }
}

fn is_heartbeat(envelope: &Envelope) -> bool {
    matches!(&envelope.message, Message::AppendEntries(request) if request.entries.is_empty())
}

fn is_open(envelope: &Envelope) -> bool {
    matches!(envelope.message, Message::OpenStream(_))
}

/// The opens `from` sent so far, oldest first.
fn opens_of(cluster: &Cluster, from: u64) -> Vec<OpenStream> {
    cluster
        .trace
        .iter()
        .filter_map(|(node, output)| match output {
            Output::Send {
                message: Message::OpenStream(open),
                ..
            } if *node == NodeId(from) => Some(open.clone()),
            _ => None,
        })
        .collect()
}

/// The batches `outputs` send to `to` (a batch goes as `SendEntries`).
fn batches_to(outputs: &[Output], to: u64) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::SendEntries { to: peer, .. } if *peer == NodeId(to)))
        .count()
}

/// Proposes one command per step, `count` times, without delivering anything; returns the
/// batches the leader sent to `to` meanwhile.
fn propose_undelivered(cluster: &mut Cluster, count: usize, to: u64) -> usize {
    (0..count)
        .map(|_| batches_to(&cluster.propose(1, "x"), to))
        .sum()
}

fn last_index(cluster: &Cluster, id: u64) -> LogIndex {
    cluster.engine(id).status().last_log_id.index
}

#[test]
fn a_streaming_leader_pipelines_only_on_a_stream_and_sends_one_request_at_a_time_without() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.time_out(1, 2000);
    // Every open is lost: the leader learns of no stream...
    deliver_all_but(&mut cluster, is_open);
    assert!(!opens_of(&cluster, 2).is_empty(), "node 2 opened a stream");
    // ...and still replicates, one batch at a time (a follower that cannot reach it catches up).
    assert_eq!(cluster.commit_of(1), LogIndex(1), "the no-op committed");
    assert_eq!(propose_undelivered(&mut cluster, 5, 2), 1);
    deliver_all_but(&mut cluster, is_open);
    assert_eq!(cluster.commit_of(1), LogIndex(6));

    // With opens delivered, batches leave as entries arrive, without waiting for answers.
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    assert_eq!(propose_undelivered(&mut cluster, 5, 2), 5);
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(6));
    assert_eq!(opens_of(&cluster, 2).len(), 1, "one stream per leader");
}

#[test]
fn a_stream_opened_at_an_entry_the_leader_lacks_makes_it_probe_back_to_the_match() {
    // Node 1 (term 2 at index 3) wins; node 2 holds a longer log of term 1.
    let mut cluster = Cluster::restored(
        &streaming(),
        &[(2, &[1, 1, 2]), (1, &[1, 1, 1, 1, 1]), (2, &[1, 1])],
        2,
    );
    cluster.elect(1, 2000);
    let opens = opens_of(&cluster, 2);
    assert_eq!(
        opens[0].last_log_id.index,
        LogIndex(5),
        "opened at its durable end"
    );
    cluster.propose(1, "x");
    cluster.deliver_all();
    let leader_log = &cluster.logs[&NodeId(1)];
    assert_eq!(leader_log.len(), 5);
    assert_eq!(
        &cluster.logs[&NodeId(2)],
        leader_log,
        "the conflicting tail was replaced"
    );
    assert_eq!(cluster.commit_of(2), LogIndex(5));
}

#[test]
fn streamed_batches_do_not_push_back_the_heartbeats() {
    let heartbeats_while_proposing = |config: &Config| {
        let mut cluster = Cluster::new(3, config);
        cluster.elect(1, 2000);
        let mut heartbeats = 0;
        for step in 1..=12 {
            let now_ms = 2000 + step * 40;
            cluster.set_clocks(now_ms);
            cluster.step(1, Input::Tick { now_ms });
            cluster.propose(1, "x");
            heartbeats += cluster
                .network
                .iter()
                .filter(|e| {
                    e.to == NodeId(2)
                        && matches!(&e.message, Message::AppendEntries(AppendEntries { entries, .. }) if entries.is_empty())
                })
                .count();
            cluster.deliver_all();
        }
        heartbeats
    };
    // 480 ms with a batch every 40 ms: a pipelined batch doubles as a heartbeat, a streamed one
    // (which may queue behind others on the stream) does not.
    assert_eq!(heartbeats_while_proposing(&config()), 0);
    assert!(heartbeats_while_proposing(&streaming()) >= 4);
}

#[test]
fn a_closed_stream_is_reopened_at_the_leaders_next_message() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let first = opens_of(&cluster, 2)[0].seq;
    let closed = |seq| Input::StreamClosed {
        peer: NodeId(1),
        seq,
    };
    cluster.step(2, closed(first));
    let closed = Input::StreamClosed {
        peer: NodeId(2),
        seq: first,
    };
    cluster.step(1, closed);
    assert_eq!(propose_undelivered(&mut cluster, 3, 2), 1, "one at a time");
    cluster.network.retain(|e| e.to != NodeId(2));
    assert_eq!(
        propose_undelivered(&mut cluster, 3, 3),
        3,
        "node 3's is open"
    );
    cluster.deliver_all();
    // The next heartbeat makes node 2 open another stream, which brings the entries.
    cluster.set_clocks(2600);
    cluster.step(1, Input::Tick { now_ms: 2600 });
    cluster.deliver_all();
    let opens = opens_of(&cluster, 2);
    assert_eq!(opens.len(), 2);
    assert_ne!(opens[1].seq, first);
    assert_eq!(last_index(&cluster, 2), LogIndex(7));
    assert_eq!(
        propose_undelivered(&mut cluster, 3, 2),
        3,
        "pipelined again"
    );
}

#[test]
fn the_close_of_an_older_stream_leaves_the_newer_one_in_use() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let older = opens_of(&cluster, 2)[0].clone();
    // Node 2's newer stream, then a delayed copy of the older open, then the older's end.
    let newer = OpenStream {
        seq: older.seq + 1000,
        ..older.clone()
    };
    for open in [newer, older.clone()] {
        cluster.deliver(Envelope {
            from: NodeId(2),
            to: NodeId(1),
            message: Message::OpenStream(open),
        });
    }
    let closed = Input::StreamClosed {
        peer: NodeId(2),
        seq: older.seq,
    };
    cluster.step(1, closed);
    assert_eq!(
        propose_undelivered(&mut cluster, 3, 2),
        3,
        "the newer one in use"
    );
    cluster.deliver_all();
    assert_eq!(last_index(&cluster, 2), LogIndex(4));
}

#[test]
fn a_follower_whose_stream_brings_nothing_while_commits_pass_it_opens_another() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let first = opens_of(&cluster, 2)[0].seq;
    // The leader's end closed; node 2's end never heard. Batches to node 2 are lost (its
    // leader cannot reach it with them), heartbeats get through, node 3 commits.
    let closed = Input::StreamClosed {
        peer: NodeId(2),
        seq: first,
    };
    cluster.step(1, closed);
    let lost = |e: &Envelope| e.to == NodeId(2) && !is_heartbeat(e);
    cluster.propose(1, "x");
    deliver_all_but(&mut cluster, lost);
    assert_eq!(cluster.commit_of(1), LogIndex(2), "committed with node 3");
    // Heartbeats show the commit; within the request timeout (500 ms) node 2 waits...
    for now_ms in [2100, 2200, 2300, 2400] {
        cluster.set_clocks(now_ms);
        cluster.step(1, Input::Tick { now_ms });
        deliver_all_but(&mut cluster, lost);
    }
    assert_eq!(opens_of(&cluster, 2).len(), 1);
    assert_eq!(last_index(&cluster, 2), LogIndex(1));
    // ...then replaces its stream and catches up.
    cluster.set_clocks(2500);
    cluster.step(1, Input::Tick { now_ms: 2500 });
    cluster.deliver_all();
    assert_eq!(opens_of(&cluster, 2).len(), 2);
    assert_eq!(last_index(&cluster, 2), LogIndex(2));
}

#[test]
fn unacknowledged_stream_bytes_stay_under_their_bound() {
    for bound in 1..=3 {
        let config = Config {
            stream_max_unacked_bytes: bound,
            batch_entries_initial: 1,
            batch_entries_max: 1,
            ..streaming()
        };
        let mut cluster = Cluster::new(3, &config);
        cluster.elect(1, 2000);
        // Node 2 never answers: at most `bound` one-byte entries go to it (one batch of one
        // entry each; a single unacknowledged entry counts too).
        cluster.network.clear();
        for _ in 0..10 {
            cluster.propose(1, "x");
        }
        let to_2 = cluster
            .trace
            .iter()
            .filter(|(node, o)| *node == NodeId(1) && matches!(o, Output::SendEntries { to, first, .. } if *to == NodeId(2) && *first > LogIndex(1)))
            .count();
        assert_eq!(to_2 as u64, bound);
    }
}

/// Batches on a slow stream wait behind each other: while their answers keep coming, the
/// oldest is not timed out and nothing is sent again (a resend would queue the backlog a second
/// time behind itself).
#[test]
fn batches_on_a_slow_stream_are_not_resent_while_answers_keep_coming() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let batches_before = batches_to(
        &cluster
            .trace
            .iter()
            .map(|(_, o)| o.clone())
            .collect::<Vec<_>>(),
        2,
    );
    assert_eq!(propose_undelivered(&mut cluster, 10, 2), 10);
    // Node 3 gets everything at once; node 2's link delivers one batch every 200 ms, so the
    // last one arrives 2 s after it was sent (the request timeout is 500 ms).
    let mut slow: std::collections::VecDeque<Envelope> = std::collections::VecDeque::new();
    for envelope in std::mem::take(&mut cluster.network) {
        if envelope.to == NodeId(2) {
            slow.push_back(envelope);
        } else {
            cluster.network.push_back(envelope);
        }
    }
    cluster.deliver_all();
    let mut now_ms = 2000;
    // Bounded: a leader that resent its backlog would keep this queue from ever emptying.
    for _ in 0..100 {
        let Some(batch) = slow.pop_front() else {
            break;
        };
        now_ms += 200;
        cluster.set_clocks(now_ms);
        cluster.step(1, Input::Tick { now_ms });
        // Heartbeats and answers travel fast; new batches to node 2 would queue on its link.
        for envelope in std::mem::take(&mut cluster.network) {
            if envelope.to == NodeId(2) && !is_heartbeat(&envelope) {
                slow.push_back(envelope);
            } else {
                cluster.network.push_back(envelope);
            }
        }
        cluster.deliver(batch);
        cluster.deliver_all();
    }
    assert!(slow.is_empty(), "{} batches still queued", slow.len());
    let sent = batches_to(
        &cluster
            .trace
            .iter()
            .map(|(_, o)| o.clone())
            .collect::<Vec<_>>(),
        2,
    );
    assert_eq!(sent - batches_before, 10, "nothing was sent twice");
    assert_eq!(last_index(&cluster, 2), LogIndex(11));
}

#[test]
fn past_the_partial_limit_a_stream_waits_for_a_full_batch() {
    // Nagle's rule as for requests: one partial batch unanswered, then only full ones (4
    // entries, the sizer's start) go until an answer comes back.
    let nagle = Config {
        max_inflight_partial_requests: 1,
        ..streaming()
    };
    let mut cluster = Cluster::new(3, &nagle);
    cluster.elect(1, 2000);
    assert_eq!(
        propose_undelivered(&mut cluster, 1, 2),
        1,
        "an idle stream sends at once"
    );
    assert_eq!(
        propose_undelivered(&mut cluster, 3, 2),
        0,
        "partial batches wait behind the unanswered one"
    );
    // More proposals gather until they fill a batch (the sizer's size), which goes at once.
    let mut proposed = 3;
    while propose_undelivered(&mut cluster, 1, 2) == 0 {
        proposed += 1;
        assert!(proposed < 64, "a full batch never went");
    }
    let batch_len = cluster
        .network
        .iter()
        .filter_map(|e| match &e.message {
            Message::AppendEntries(request) if e.to == NodeId(2) => Some(request.entries.len()),
            _ => None,
        })
        .max();
    assert_eq!(
        batch_len,
        Some(proposed + 1),
        "one batch of everything that waited"
    );
    cluster.deliver_all();
    assert_eq!(cluster.commit_of(1), LogIndex(proposed as u64 + 3));
    assert_eq!(
        propose_undelivered(&mut cluster, 1, 2),
        1,
        "answered: idle again"
    );
}

/// A follower whose stream in use ended opens another at the leader's next message (here the
/// next heartbeat, well within the request timeout); the end of a stream it no longer uses
/// changes nothing.
#[test]
fn a_follower_opens_a_new_stream_at_the_next_heartbeat_after_its_stream_closed() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let first = opens_of(&cluster, 2)[0].seq;
    let closed = |seq| Input::StreamClosed {
        peer: NodeId(1),
        seq,
    };
    cluster.step(2, closed(first + 1000));
    cluster.set_clocks(2100);
    cluster.step(1, Input::Tick { now_ms: 2100 });
    cluster.deliver_all();
    assert_eq!(opens_of(&cluster, 2).len(), 1, "another stream's end");
    cluster.step(2, closed(first));
    cluster.set_clocks(2200);
    cluster.step(1, Input::Tick { now_ms: 2200 });
    cluster.deliver_all();
    let opens = opens_of(&cluster, 2);
    assert_eq!(opens.len(), 2, "reopened at the heartbeat");
    assert_ne!(opens[1].seq, first);
}

/// A follower that holds every committed entry keeps its stream however long nothing comes on
/// it: heartbeats that show no commit past its log are no sign of a lost stream.
#[test]
fn a_caught_up_follower_keeps_its_idle_stream() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    cluster.propose(1, "x");
    cluster.deliver_all();
    for now_ms in (2100..=3500).step_by(100) {
        cluster.set_clocks(now_ms);
        cluster.step(1, Input::Tick { now_ms });
        cluster.deliver_all();
    }
    assert_eq!(cluster.commit_of(2), LogIndex(2));
    assert_eq!(last_index(&cluster, 2), LogIndex(2));
    assert_eq!(opens_of(&cluster, 2).len(), 1, "no stream replaced");
}

/// Without an open stream a request times out at its own age: the answer to a later batch does
/// not keep an unanswered one alive (on a stream it does: the batches there wait behind each
/// other).
#[test]
fn without_a_stream_a_request_times_out_at_its_own_age() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.time_out(1, 2000);
    // Every open is lost; so is node 2's heartbeat of 2100.
    deliver_all_but(&mut cluster, is_open);
    cluster.set_clocks(2100);
    cluster.step(1, Input::Tick { now_ms: 2100 });
    deliver_all_but(&mut cluster, |e| {
        is_open(e) || (e.to == NodeId(2) && is_heartbeat(e))
    });
    // A batch sent at 2300 is answered.
    cluster.set_clocks(2300);
    cluster.propose(1, "x");
    deliver_all_but(&mut cluster, is_open);
    let status = cluster.engine(1).followers()[0];
    assert_eq!(
        (status.peer, status.match_index, status.inflight),
        (NodeId(2), LogIndex(2), 1),
        "the heartbeat awaited"
    );
    cluster.step(1, Input::Tick { now_ms: 2599 });
    assert_eq!(
        cluster.engine(1).followers()[0].batch,
        status.batch,
        "not yet timed out"
    );
    cluster.step(1, Input::Tick { now_ms: 2600 });
    assert_eq!(
        cluster.engine(1).followers()[0].batch,
        1,
        "the heartbeat of 2100 timed out"
    );
}

/// A leader keeps the eight newest streams of a follower not reported closed (a transport
/// reports every end, so more means lost reports): after the ninth open the oldest is
/// forgotten, and each close of the one in use hands over to the next newest.
#[test]
fn a_leader_keeps_the_eight_newest_streams_of_a_follower() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let first = opens_of(&cluster, 2)[0].clone();
    let seqs: Vec<u64> = (1..=8).map(|n| first.seq + 1000 * n).collect();
    for &seq in &seqs {
        let open = OpenStream {
            seq,
            ..first.clone()
        };
        cluster.deliver(Envelope {
            from: NodeId(2),
            to: NodeId(1),
            message: Message::OpenStream(open),
        });
    }
    cluster.deliver_all();
    let close = |cluster: &mut Cluster, seq| {
        cluster.step(
            1,
            Input::StreamClosed {
                peer: NodeId(2),
                seq,
            },
        )
    };
    close(&mut cluster, first.seq);
    // Seven of the eight newest end; the eighth (the oldest kept) is still in use.
    for &seq in seqs[1..].iter().rev() {
        close(&mut cluster, seq);
    }
    assert_eq!(propose_undelivered(&mut cluster, 3, 2), 3, "pipelined");
    cluster.deliver_all();
    close(&mut cluster, seqs[0]);
    assert_eq!(
        propose_undelivered(&mut cluster, 3, 2),
        1,
        "none left: one at a time"
    );
}

/// Elects node 1 of a restored streaming cluster, holding back everything node 2 sends (its
/// answer to the leader's first request and its open); returns the leader's answer to node 2's
/// open, delivered alone.
fn leader_answer_to_the_first_open(nodes: &[(u64, &[u64])]) -> (Cluster, Vec<Output>) {
    let mut cluster = Cluster::restored(&streaming(), nodes, 2);
    cluster.time_out(1, 2000);
    let mut held = Vec::new();
    while let Some(envelope) = cluster.network.pop_front() {
        if envelope.from == NodeId(2) && cluster.role(1) == crate::engine::RoleKind::Leader {
            held.push(envelope);
        } else {
            cluster.deliver(envelope);
        }
    }
    let open = held
        .iter()
        .position(is_open)
        .expect("node 2 opened a stream");
    let outputs = cluster.deliver(held.remove(open));
    cluster.network.extend(held);
    (cluster, outputs)
}

/// The first request to node 2 after its open, as (prev index, entries).
fn first_to_2(outputs: &[Output]) -> Option<(LogIndex, usize)> {
    outputs.iter().find_map(|output| match output {
        Output::SendEntries {
            to,
            request,
            first,
            last_log_id,
        } if *to == NodeId(2) => Some((
            request.prev_log_id.index,
            (last_log_id.index.0 - first.0 + 1) as usize,
        )),
        Output::Send {
            to,
            message: Message::AppendEntries(request),
        } if *to == NodeId(2) => Some((request.prev_log_id.index, request.entries.len())),
        _ => None,
    })
}

/// A stream opened past the end of the leader's log: the leader probes backwards from its own
/// last entry (the next heartbeat), as for a follower whose position is unknown.
#[test]
fn a_stream_open_past_the_leaders_log_probes_backwards_from_its_end() {
    // Node 1 (term 2 at index 3) wins term 3 and appends its no-op at 4; node 2 holds five
    // entries of term 1.
    let nodes: &[(u64, &[u64])] = &[(2, &[1, 1, 2]), (1, &[1, 1, 1, 1, 1]), (2, &[1, 1])];
    let (mut cluster, outputs) = leader_answer_to_the_first_open(nodes);
    assert_eq!(first_to_2(&outputs), None, "nothing past its end");
    cluster.set_clocks(2100);
    let outputs = cluster.step(1, Input::Tick { now_ms: 2100 });
    assert_eq!(first_to_2(&outputs), Some((LogIndex(4), 0)));
    cluster.deliver_all();
    assert_eq!(&cluster.logs[&NodeId(2)], &cluster.logs[&NodeId(1)]);
}

/// A stream opened at the leader's last index but at an entry of another term: the leader
/// resends from the end of that term in its log at once (one step per term, as after a
/// rejection).
#[test]
fn a_stream_open_at_the_leaders_last_index_of_another_term_resends_from_that_terms_end() {
    // Node 1 (term 2 at index 3) wins term 3 and appends its no-op at 4; node 2 holds four
    // entries of term 1: its open names (4, term 1).
    let nodes: &[(u64, &[u64])] = &[(2, &[1, 1, 2]), (1, &[1, 1, 1, 1]), (2, &[1, 1])];
    let (mut cluster, outputs) = leader_answer_to_the_first_open(nodes);
    assert_eq!(
        first_to_2(&outputs),
        Some((LogIndex(2), 2)),
        "after the last entry of term 1"
    );
    cluster.deliver_all();
    assert_eq!(&cluster.logs[&NodeId(2)], &cluster.logs[&NodeId(1)]);
}

/// The end of the stream in use loses what was in flight on it: the leader resends from the
/// follower's match, one request at a time until another stream opens. The end of an older
/// stream loses nothing.
#[test]
fn the_end_of_the_stream_in_use_resends_what_was_in_flight_on_it() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.elect(1, 2000);
    let older = opens_of(&cluster, 2)[0].clone();
    let newer = OpenStream {
        seq: older.seq + 1000,
        ..older.clone()
    };
    cluster.deliver(Envelope {
        from: NodeId(2),
        to: NodeId(1),
        message: Message::OpenStream(newer.clone()),
    });
    cluster.deliver_all();
    assert_eq!(propose_undelivered(&mut cluster, 3, 2), 3);
    // Node 2 gets none of the three; node 3 commits them.
    cluster.network.retain(|e| e.to != NodeId(2));
    cluster.deliver_all();
    let closed = |seq| Input::StreamClosed {
        peer: NodeId(2),
        seq,
    };
    cluster.step(1, closed(older.seq));
    assert_eq!(
        cluster.engine(1).followers()[0].inflight,
        3,
        "still awaited"
    );
    cluster.step(1, closed(newer.seq));
    cluster.set_clocks(2100);
    let outputs = cluster.step(1, Input::Tick { now_ms: 2100 });
    let resent: Vec<LogIndex> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::SendEntries { to, first, .. } if *to == NodeId(2) => Some(*first),
            _ => None,
        })
        .collect();
    assert_eq!(resent, [LogIndex(2)], "from the match, one request");
    cluster.deliver_all();
    assert_eq!(last_index(&cluster, 2), LogIndex(4));
}

/// An open sent by one node in another's name is dropped: it opens no stream for either (the
/// leader keeps sending the sender one request at a time).
#[test]
fn an_open_sent_in_another_followers_name_is_dropped() {
    let mut cluster = Cluster::new(3, &streaming());
    cluster.time_out(1, 2000);
    // Every open is lost; then node 3 sends one in node 2's name.
    deliver_all_but(&mut cluster, is_open);
    let forged = OpenStream {
        seq: 1 << 40,
        ..opens_of(&cluster, 2)[0].clone()
    };
    cluster.deliver(Envelope {
        from: NodeId(3),
        to: NodeId(1),
        message: Message::OpenStream(forged),
    });
    assert_eq!(
        propose_undelivered(&mut cluster, 3, 3),
        1,
        "no stream to node 3"
    );
    assert_eq!(propose_undelivered(&mut cluster, 3, 2), 0, "nor to node 2");
}
