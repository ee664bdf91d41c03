//! The seed's pacing example on the deterministic clock: 100 entries, batch 50, round trip
//! 75 ms (40 ms out, 35 ms back), heartbeat 50 ms. The timelines show when requests go out and
//! how many are in flight, for both pacings.

use bytes::Bytes;

use super::config;
use crate::config::{Config, Pacing};
use crate::engine::testing::{Cluster, Envelope};
use crate::engine::{Input, Output};
use crate::types::{LogIndex, NodeId};

const ELECTED_MS: u64 = 2000;

#[derive(Debug, Default)]
struct Timeline {
    /// `(time, Some((first, last)))` for a batch, `(time, None)` for an empty heartbeat.
    sends: Vec<(u64, Option<(u64, u64)>)>,
    /// `(time, requests in flight)` each time the number changes.
    inflight: Vec<(u64, usize)>,
    committed_at: Option<u64>,
}

fn run(pacing: Pacing, until_ms: u64) -> Timeline {
    let config = Config {
        pacing,
        heartbeat_interval_ms: 50,
        batch_entries_initial: 50,
        batch_entries_max: 50,
        ..config()
    };
    let mut cluster = Cluster::new(2, &config);
    cluster.elect(1, ELECTED_MS);
    let mut seen_trace = cluster.trace.len();
    let payloads = (0..100)
        .map(|i| Bytes::from(format!("entry {i}")))
        .collect();
    cluster.step(1, Input::Proposed { id: 1, payloads });
    let mut in_transit: Vec<(u64, Envelope)> = Vec::new();
    let mut timeline = Timeline::default();
    for now in ELECTED_MS..=until_ms {
        let (due, later): (Vec<_>, Vec<_>) = in_transit.into_iter().partition(|(at, _)| *at <= now);
        in_transit = later;
        for (_, envelope) in due {
            cluster.deliver(envelope);
        }
        cluster.step(1, Input::Tick { now_ms: now });
        cluster.step(2, Input::Tick { now_ms: now });
        for envelope in cluster.network.drain(..) {
            let delay = if envelope.from == NodeId(1) { 40 } else { 35 };
            in_transit.push((now + delay, envelope));
        }
        for (id, output) in &cluster.trace[seen_trace..] {
            match output {
                Output::SendEntries {
                    first, last_log_id, ..
                } if *id == NodeId(1) => {
                    timeline
                        .sends
                        .push((now, Some((first.0, last_log_id.index.0))));
                }
                Output::Send {
                    message: crate::message::Message::AppendEntries(_),
                    ..
                } if *id == NodeId(1) => {
                    timeline.sends.push((now, None));
                }
                _ => {}
            }
        }
        seen_trace = cluster.trace.len();
        let inflight = cluster.engine(1).followers()[0].inflight;
        if timeline.inflight.last().map(|&(_, n)| n) != Some(inflight) {
            timeline.inflight.push((now, inflight));
        }
        if timeline.committed_at.is_none() && cluster.commit_of(1) == LogIndex(101) {
            timeline.committed_at = Some(now);
        }
    }
    timeline
}

/// Heartbeat pacing: a batch leaves only when the timer fires, so with a 75 ms round trip
/// and a 50 ms interval two requests are in flight at once.
#[test]
fn heartbeat_pacing_sends_a_batch_per_timer_with_two_in_flight() {
    let t = run(Pacing::Heartbeat, ELECTED_MS + 180);
    let at = |offset: u64| ELECTED_MS + offset;
    assert_eq!(
        t.sends,
        vec![
            (at(50), Some((2, 51))),
            (at(100), Some((52, 101))),
            (at(150), None)
        ]
    );
    assert_eq!(
        t.inflight,
        vec![
            (at(0), 0),
            (at(50), 1),
            (at(100), 2),
            (at(125), 1),
            (at(150), 2),
            (at(175), 1)
        ]
    );
    assert_eq!(t.committed_at, Some(at(175)));
}

/// Eager pacing: both batches leave at once (the window has room); the heartbeat still fires
/// 50 ms after the last send as a floor.
#[test]
fn eager_pacing_sends_while_the_window_has_room() {
    let t = run(Pacing::Eager, ELECTED_MS + 80);
    let at = |offset: u64| ELECTED_MS + offset;
    assert_eq!(
        t.sends,
        vec![
            (at(0), Some((2, 51))),
            (at(0), Some((52, 101))),
            (at(50), None)
        ]
    );
    assert_eq!(t.inflight, vec![(at(0), 2), (at(50), 3), (at(75), 1)]);
    assert_eq!(t.committed_at, Some(at(75)));
}
