//! Lease reads: served without a round trip while a quorum answered recently enough, never
//! after the lease, during a transfer, before the term's first commit, or with leases off.

use super::config;
use crate::config::Config;
use crate::engine::testing::Cluster;
use crate::engine::{Input, Output};
use crate::message::Message;
use crate::types::NodeId;

fn lease_config() -> Config {
    Config {
        lease_reads: true,
        max_clock_drift_ms: 100,
        ..config()
    }
}

/// Whether the lease read `id` was answered at once (no message sent for it).
fn served_at_once(outputs: &[Output], id: u64) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::ReadReady { id: ready, .. } if *ready == id))
        && !outputs.iter().any(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::AppendEntries(_),
                    ..
                }
            )
        })
}

fn lease_read(cluster: &mut Cluster, id: u64) -> Vec<Output> {
    cluster.step(1, Input::LeaseReadRequested { id })
}

#[test]
fn a_lease_read_is_served_without_a_round_trip_while_the_lease_holds() {
    let mut cluster = Cluster::new(3, &lease_config());
    cluster.elect(1, 1_000);
    let outputs = lease_read(&mut cluster, 1);
    assert!(served_at_once(&outputs, 1), "{outputs:?}");
    // Just before the lease ends (sent at 1000, + 1000 - 100), still served.
    cluster.set_clocks(1_899);
    cluster.step(1, Input::Tick { now_ms: 1_899 });
    cluster.drop_all();
    assert!(served_at_once(&lease_read(&mut cluster, 2), 2));
}

#[test]
fn a_lease_read_after_the_lease_needs_a_quorum_round() {
    let mut cluster = Cluster::new(3, &lease_config());
    cluster.elect(1, 1_000);
    // Nothing answered since the election: at 1900 the lease (1000 + 900) is over.
    cluster.set_clocks(1_900);
    let outputs = lease_read(&mut cluster, 3);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::ReadReady { .. }))
    );
    // The ReadIndex round it fell back to answers it, and renews the lease.
    cluster.deliver_all();
    let ready = cluster
        .trace
        .iter()
        .any(|(_, o)| matches!(o, Output::ReadReady { id: 3, .. }));
    assert!(ready);
    assert!(served_at_once(&lease_read(&mut cluster, 4), 4));
}

#[test]
fn no_lease_read_with_leases_off_during_a_transfer_or_before_the_first_commit() {
    let mut cluster = Cluster::new(3, &config());
    cluster.elect(1, 1_000);
    assert!(
        !served_at_once(&lease_read(&mut cluster, 5), 5),
        "leases off"
    );

    let mut cluster = Cluster::new(3, &lease_config());
    cluster.elect(1, 1_000);
    cluster.step(1, Input::TransferRequested { to: NodeId(2) });
    assert!(!served_at_once(&lease_read(&mut cluster, 6), 6), "transfer");

    // A new leader whose no-op has not committed yet.
    let mut cluster = Cluster::new(3, &lease_config());
    cluster.time_out(2, 5_000);
    // Deliver votes and pre-votes but no AppendEntries answers.
    while let Some(envelope) = cluster.network.pop_front() {
        if matches!(
            envelope.message,
            Message::AppendEntries(_) | Message::AppendEntriesResponse(_)
        ) {
            continue;
        }
        cluster.deliver(envelope);
    }
    let outputs = cluster.step(2, Input::LeaseReadRequested { id: 7 });
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::ReadReady { .. }))
    );
}

#[test]
fn a_restarted_node_ignores_elections_for_an_election_timeout_with_leases_on() {
    let mut cluster = Cluster::new(3, &lease_config());
    let engine = cluster.engines.get_mut(&NodeId(3)).unwrap();
    // A fresh start: the first tick starts the clock and the quiet period.
    engine.core.clock_started = false;
    cluster.step(3, Input::Tick { now_ms: 10_000 });
    assert!(cluster.engine(3).core.heard_from_leader_recently());
    cluster.step(3, Input::Tick { now_ms: 11_000 });
    assert!(!cluster.engine(3).core.heard_from_leader_recently());
}
