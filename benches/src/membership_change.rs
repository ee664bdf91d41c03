//! The `membership-change` workload: writes while a durable cluster grows from 3 to 4 voters
//! and shrinks back to 3.
//!
//! `--clients` closed-loop clients (default 64) append `--payload`-byte commands to the leader
//! of the `durable` cluster (file logs, loopback raft-http) for the whole run; a client told
//! `NotLeader` (or talking to a stopped node) moves to the leader and retries. Five phases:
//! steady (3 voters, `--phase-secs`); *grow* (node 4 starts empty with `Node::start_joining`,
//! `add_learner`, `wait_for_learner` with `--max-lag`, promote: a joint configuration, then
//! 4 voters); steady again; *shrink* (the leader, or with `--remove follower` a follower, is
//! removed; a leader that removes itself hands over once the change commits; the removed node
//! is then stopped); steady again. Each phase reports the writes acknowledged in it (ops/s,
//! p50/p99 latency, errors seen) and the longest gap between two acknowledgements; a change
//! should not stall writes for longer than an election timeout, which the last line checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::runtime::Node;
use raft_core::{Error, MembershipChange, NodeId};

use crate::cluster::Cluster;
use crate::harness::node_config;
use crate::options::{Options, Remove};
use crate::report::{peak_rss_kib, percentile, ratio};

/// The node that joins.
const NEW_NODE: NodeId = NodeId(4);
/// How long a learner may take to catch up, or a new leader to appear.
const WAIT: Duration = Duration::from_secs(120);

/// Where clients send their writes: the leader they believe in, and every running node.
#[derive(Debug)]
struct Target {
    leader: RwLock<Node>,
    nodes: RwLock<Vec<Node>>,
}

impl Target {
    fn leader(&self) -> Node {
        self.leader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_leader(&self, node: Node) {
        *self.leader.write().unwrap_or_else(|e| e.into_inner()) = node;
    }

    fn set_nodes(&self, nodes: Vec<Node>) {
        *self.nodes.write().unwrap_or_else(|e| e.into_inner()) = nodes;
    }

    /// After a failed write: moves to the node `hint` names, else to a running node that leads
    /// (else stays).
    fn redirect(&self, hint: Option<NodeId>) {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone();
        let found = hint
            .and_then(|id| nodes.iter().find(|n| n.id() == id))
            .or_else(|| nodes.iter().find(|n| n.is_leader()));
        if let Some(node) = found {
            self.set_leader(node.clone());
        }
    }
}

/// What one client saw: when each write was acknowledged and its latency (µs since the start),
/// and when each failed attempt ended.
#[derive(Debug, Default)]
struct Seen {
    acks: Vec<(u64, u32)>,
    errors: Vec<u64>,
}

/// One phase: its name, its span in µs since the start and a note on what happened in it.
#[derive(Debug)]
struct Phase {
    name: &'static str,
    start: u64,
    end: u64,
    note: String,
    change: bool,
}

/// Runs the workload and prints its report.
pub(crate) async fn run(options: &Options) -> Result<(), Error> {
    let mut cluster = Cluster::start(options, node_config(options), 3).await?;
    let result = measure(options, &mut cluster).await;
    let election_ms = cluster.config().raft.election_timeout_ms;
    cluster.shutdown().await;
    let (phases, seen) = result?;
    print(options, &phases, seen, election_ms);
    Ok(())
}

async fn measure(
    options: &Options,
    cluster: &mut Cluster,
) -> Result<(Vec<Phase>, Vec<Seen>), Error> {
    let leader = cluster.leader(WAIT).await?;
    let target = Arc::new(Target {
        leader: RwLock::new(leader),
        nodes: RwLock::new(cluster.nodes()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let start = Instant::now();
    let payload = Bytes::from(vec![0xA5; options.payload()]);
    let clients: Vec<_> = (0..options.clients().max(1))
        .map(|_| tokio::spawn(client(target.clone(), stop.clone(), payload.clone(), start)))
        .collect();
    let phases = phases(options, cluster, &target, start).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for client in clients {
        seen.push(
            client
                .await
                .map_err(|e| Error::Fatal(format!("client task failed: {e}")))?,
        );
    }
    Ok((phases?, seen))
}

fn micros(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// One closed-loop client until `stop`.
async fn client(
    target: Arc<Target>,
    stop: Arc<AtomicBool>,
    payload: Bytes,
    start: Instant,
) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        let node = target.leader();
        let begun = micros(start);
        match node.append(vec![payload.clone()]).await {
            Ok(_) => {
                let now = micros(start);
                let latency = u32::try_from(now - begun).unwrap_or(u32::MAX);
                seen.acks.push((now, latency));
            }
            Err(Error::Overloaded) => tokio::task::yield_now().await,
            Err(err) => {
                seen.errors.push(micros(start));
                let hint = match &err {
                    Error::NotLeader { leader } => leader.as_ref().map(|hint| hint.id),
                    _ => None,
                };
                target.redirect(hint.filter(|&id| id != node.id()));
                // No busy loop between nodes that each name the other while an election
                // is on: retry at once only at a node that leads.
                if !target.leader().is_leader() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    seen
}

/// Runs the five phases and returns their spans.
async fn phases(
    options: &Options,
    cluster: &mut Cluster,
    target: &Target,
    start: Instant,
) -> Result<Vec<Phase>, Error> {
    let steady = Duration::from_secs_f64(options.phase_secs.max(0.1));
    let mut phases = Vec::new();
    let mut begin = micros(start);
    let mut close = |name, change, note: String, begin: &mut u64| {
        let end = micros(start);
        phases.push(Phase {
            name,
            start: *begin,
            end,
            note,
            change,
        });
        *begin = end;
    };

    tokio::time::sleep(steady).await;
    close("steady, 3 voters", false, String::new(), &mut begin);

    let note = grow(options, cluster, target).await?;
    close("grow 3 -> 4", true, note, &mut begin);

    tokio::time::sleep(steady).await;
    close("steady, 4 voters", false, String::new(), &mut begin);

    let note = shrink(options, cluster, target).await?;
    close("shrink 4 -> 3", true, note, &mut begin);

    tokio::time::sleep(steady).await;
    close("steady, 3 voters", false, String::new(), &mut begin);
    Ok(phases)
}

/// Adds node 4 as a learner, waits for it to catch up and promotes it.
async fn grow(options: &Options, cluster: &mut Cluster, target: &Target) -> Result<String, Error> {
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let begun = Instant::now();
    let address = cluster.join(NEW_NODE).await?;
    target.set_nodes(cluster.nodes());
    let leader = cluster.leader(WAIT).await?;
    leader.add_learner(NEW_NODE, address).await?;
    let added = begun.elapsed();
    leader
        .wait_for_learner(NEW_NODE, options.max_lag(), WAIT)
        .await?;
    let caught_up = begun.elapsed();
    let members = leader
        .change_membership(MembershipChange::default().promote(NEW_NODE))
        .await?;
    if !members.is_voter(NEW_NODE) || members.is_joint() {
        return Err(Error::Fatal(format!("unexpected members {members:?}")));
    }
    Ok(format!(
        "learner added in {} ms, caught up at {} ms, promoted at {} ms",
        added.as_millis(),
        caught_up.as_millis(),
        begun.elapsed().as_millis()
    ))
}

/// Removes a voter (the leader, or a follower among the first three nodes), waits for the new
/// leader if the old one went, and stops the removed node.
async fn shrink(
    options: &Options,
    cluster: &mut Cluster,
    target: &Target,
) -> Result<String, Error> {
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let begun = Instant::now();
    let leader = cluster.leader(WAIT).await?;
    let victim = match options.remove {
        Remove::Leader => leader.id(),
        Remove::Follower => (1..=3)
            .map(NodeId)
            .find(|&id| id != leader.id())
            .unwrap_or(NodeId(1)),
    };
    let members = leader
        .change_membership(MembershipChange::default().remove(victim))
        .await?;
    if members.is_member(victim) || members.is_joint() {
        return Err(Error::Fatal(format!("unexpected members {members:?}")));
    }
    let committed = begun.elapsed();
    let mut note = format!(
        "node {victim} removed, committed at {} ms",
        committed.as_millis()
    );
    if victim == leader.id() {
        let wait = async {
            loop {
                let nodes = cluster.nodes();
                if let Some(new) = nodes.iter().find(|n| n.id() != victim && n.is_leader()) {
                    return new.clone();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let new = tokio::time::timeout(WAIT, wait)
            .await
            .map_err(|_| Error::NoLeader)?;
        note = format!(
            "leader {victim} removed itself, committed at {} ms; node {} leads at {} ms",
            committed.as_millis(),
            new.id(),
            begun.elapsed().as_millis()
        );
        target.set_leader(new);
    }
    let remaining: Vec<Node> = cluster
        .nodes()
        .into_iter()
        .filter(|n| n.id() != victim)
        .collect();
    target.set_nodes(remaining);
    cluster.stop(victim).await;
    Ok(note)
}

/// The longest time between two consecutive acknowledgements (sorted) where that interval
/// overlaps `[start, end]`, with when it began (µs).
fn longest_gap(acks: &[u64], start: u64, end: u64) -> (u64, u64) {
    acks.windows(2)
        .filter(|pair| pair[1] >= start && pair[0] <= end)
        .map(|pair| (pair[1] - pair[0], pair[0]))
        .max()
        .unwrap_or((end.saturating_sub(start), start))
}

fn print(options: &Options, phases: &[Phase], seen: Vec<Seen>, election_ms: u64) {
    let mut acks = Vec::new();
    let mut errors = Vec::new();
    for client in seen {
        acks.extend(client.acks);
        errors.extend(client.errors);
    }
    acks.sort_unstable();
    let times: Vec<u64> = acks.iter().map(|&(at, _)| at).collect();
    println!(
        "workload=membership-change clients={} payload={} phase={:.1} s remove={} max_lag={} election_timeout={election_ms} ms",
        options.clients(),
        options.payload(),
        options.phase_secs,
        format!("{:?}", options.remove).to_lowercase(),
        options.max_lag(),
    );
    println!(
        "  {:<18} {:>6} {:>8} {:>7} {:>8} {:>10} {:>6}",
        "phase", "secs", "ops/s", "p50 us", "p99 us", "max gap ms", "errors"
    );
    let mut worst_change_gap = 0u64;
    for phase in phases {
        let mut latencies: Vec<u32> = acks
            .iter()
            .filter(|&&(at, _)| at >= phase.start && at < phase.end)
            .map(|&(_, latency)| latency)
            .collect();
        latencies.sort_unstable();
        let secs = (phase.end - phase.start) as f64 / 1e6;
        let failed = errors
            .iter()
            .filter(|&&at| at >= phase.start && at < phase.end)
            .count();
        let (gap, _) = longest_gap(&times, phase.start, phase.end);
        if phase.change {
            worst_change_gap = worst_change_gap.max(gap);
        }
        println!(
            "  {:<18} {secs:>6.2} {:>8.0} {:>7} {:>8} {:>10.1} {failed:>6}",
            phase.name,
            ratio(latencies.len() as f64, secs),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            gap as f64 / 1e3,
        );
        if !phase.note.is_empty() {
            println!("      {}", phase.note);
        }
    }
    let verdict = if worst_change_gap < election_ms * 1000 {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "  longest write stall during a change {:.1} ms, election timeout {election_ms} ms: {verdict}",
        worst_change_gap as f64 / 1e3
    );
    println!("  peak RSS (MiB)   {:.1}", peak_rss_kib() as f64 / 1024.0);
    let mut latencies: Vec<u32> = acks.iter().map(|&(_, latency)| latency).collect();
    latencies.sort_unstable();
    let secs = phases.last().map_or(0, |p| p.end) as f64 / 1e6;
    println!(
        "bench: workload=membership-change nodes=4 clients={} ops={} secs={secs:.3} ops_per_sec={:.0} p50_us={} p99_us={} max_gap_ms={:.1} election_timeout_ms={election_ms} verdict={verdict}",
        options.clients(),
        latencies.len(),
        ratio(latencies.len() as f64, secs),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        worst_change_gap as f64 / 1e3,
    );
}

#[cfg(test)]
mod tests {
    use super::longest_gap;

    #[test]
    fn the_longest_gap_counts_intervals_that_overlap_the_window() {
        let acks = [0, 10, 20, 100, 105, 300];
        // 20..100 overlaps [50, 60]; 105..300 starts after it.
        assert_eq!(longest_gap(&acks, 50, 60), (80, 20));
        assert_eq!(longest_gap(&acks, 0, 400), (195, 105));
        assert_eq!(longest_gap(&[], 5, 9), (4, 5));
    }
}
