//! The `reads` workload: the cost of each consistency level of a read.
//!
//! 3 nodes (in-memory logs; `--transport mem`, the `mem` workload's in-process network, or
//! `--transport http`, the `http` workload's loopback raft-http) run with `Config::lease_reads`
//! on every node, each applying to a [`Register`]: a state machine holding one number. One
//! writer appends the next value of a counter to the leader every `--write-interval-us` (1 ms;
//! 0: none) for the whole run, so that reads have something to be stale about.
//!
//! A trial runs `clients` closed-loop readers for `--secs` (2) at one level
//! ([`Consistency`]): `linearizable` (`Node::linearizable_read` on the leader: ReadIndex, a
//! heartbeat round), `lease` (`Node::lease_read` on the leader: no round trip while the lease
//! holds), `follower` (`Node::follower_read`, the readers spread over the followers: each asks
//! the leader for a read index and waits to apply it) and `stale` (no call; the readers spread
//! over all nodes). Each read is the call, then a load of the node's register; its latency is
//! both. A stale read does not wait for anything, so its reader yields to the scheduler after
//! each one (outside the timed part), as a server would between two requests.
//!
//! The guard: before each read the reader notes the highest value whose write was
//! acknowledged; a linearizable, lease or follower read that returns less is a violation
//! (counted, printed, and the run fails). For stale reads the same count is reported as the
//! share of reads behind the last acknowledged write.
//!
//! Every client count in `--clients` (1,64,256) gets `--rounds` (3) rounds; each round runs
//! every level once, the order rotated by one from round to round. The report gives each
//! level's median and range of ops/s, p50 and p99 over the rounds, and the ratio of the lease
//! read's p50 to the linearizable read's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::runtime::Node;
use raft_core::snapshot::{BytesSource, read_to_vec};
use raft_core::testing::MemLogStore;
use raft_core::{
    Entry, Error, LogStore, NodeId, Payload, SnapshotReader, SnapshotSource, StateMachine,
};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::harness::{Counters, node_config, ready_leader};
use crate::http::HttpNodes;
use crate::options::{Consistency, Options, TransportArg};
use crate::read_report::{Results, Seen, Trial, print_report};

/// Seconds of the unmeasured trial of each level before the measured ones.
const WARM_UP_SECS: f64 = 0.3;
/// How long the cluster may take to elect a leader.
const WAIT: Duration = Duration::from_secs(30);

/// The wall clock of the benchmark.
fn now() -> Instant {
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    Instant::now()
}

/// A state machine holding one number: each command is a little-endian `u64`, and the
/// register keeps the largest seen (the writer's values only grow). Reading it is one atomic
/// load, so a read measures the consistency protocol, not the application.
#[derive(Debug, Default)]
pub(crate) struct Register {
    value: AtomicU64,
}

impl Register {
    /// The value now.
    pub(crate) fn value(&self) -> u64 {
        self.value.load(Ordering::Acquire)
    }
}

/// The value a command carries, if it is one of the writer's.
fn decode(command: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(command.try_into().ok()?))
}

#[async_trait]
impl StateMachine for Register {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let newest = entries
            .iter()
            .filter_map(|entry| match &entry.payload {
                Payload::Command(bytes) => decode(bytes),
                _ => None,
            })
            .max();
        if let Some(newest) = newest {
            self.value.fetch_max(newest, Ordering::AcqRel);
        }
        Ok(vec![Bytes::new(); entries.len()])
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        let data = Bytes::copy_from_slice(&self.value().to_le_bytes());
        Ok(Box::new(BytesSource::new(data, 8)))
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let data = read_to_vec(snapshot.as_ref(), 64).await?;
        let value = decode(&data)
            .ok_or_else(|| Error::Restore(format!("a register of {} bytes", data.len())))?;
        self.value.store(value, Ordering::Release);
        Ok(())
    }
}

/// The running cluster: the nodes (in id order), each one's register, and for
/// `--transport http` the servers to stop.
#[derive(Debug)]
struct ReadCluster {
    nodes: Vec<Node>,
    registers: Vec<Arc<Register>>,
    http: Option<HttpNodes>,
}

impl ReadCluster {
    /// Starts 3 nodes with lease reads on (and `append` resolving at commit, which the guard
    /// relies on), and waits for a leader whose first entry committed.
    async fn start(options: &Options) -> Result<ReadCluster, Error> {
        let mut config = node_config(options);
        config.raft.lease_reads = true;
        config.async_replication = false;
        let registers: Vec<Arc<Register>> = (0..3).map(|_| Arc::default()).collect();
        let state_for = |id: NodeId| -> Arc<dyn StateMachine> {
            let index = usize::try_from(id.0.saturating_sub(1)).unwrap_or(0);
            registers.get(index).cloned().unwrap_or_default()
        };
        let counters = Arc::new(Counters::default());
        let (nodes, http) = match options.transport {
            TransportArg::Mem => {
                let (nodes, _) = crate::mem::start_nodes(&config, &counters, state_for).await?;
                (nodes, None)
            }
            TransportArg::Http => {
                let stores: Vec<Arc<dyn LogStore>> =
                    (0..3).map(|_| MemLogStore::new().into_arc()).collect();
                let http = HttpNodes::start(options, &config, &stores, &counters, state_for);
                let http = http.await?;
                (http.nodes.clone(), Some(http))
            }
        };
        let cluster = ReadCluster {
            nodes,
            registers,
            http,
        };
        if let Err(err) = ready_leader(&cluster.nodes, &counters).await {
            cluster.shutdown().await;
            return Err(err);
        }
        Ok(cluster)
    }

    /// The position of the node that leads, waiting for one.
    async fn leader(&self) -> Result<usize, Error> {
        let find = async {
            loop {
                if let Some(index) = self.nodes.iter().position(Node::is_leader) {
                    return index;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(WAIT, find)
            .await
            .map_err(|_| Error::NoLeader)
    }

    /// The nodes that take reads at `level` (with their registers): the leader, the
    /// followers, or all.
    async fn targets(&self, level: Consistency) -> Result<Vec<(Node, Arc<Register>)>, Error> {
        let leader = self.leader().await?;
        let pairs = self
            .nodes
            .iter()
            .cloned()
            .zip(self.registers.iter().cloned());
        Ok(pairs
            .enumerate()
            .filter(|&(index, _)| match level {
                Consistency::Linearizable | Consistency::Lease => index == leader,
                Consistency::Follower => index != leader,
                Consistency::Stale => true,
            })
            .map(|(_, pair)| pair)
            .collect())
    }

    async fn shutdown(self) {
        match self.http {
            Some(http) => http.shutdown().await,
            None => {
                for node in &self.nodes {
                    node.shutdown().await;
                }
            }
        }
    }
}

/// The background writer: appends 1, 2, 3… to whichever node leads.
#[derive(Debug)]
struct Writer {
    /// The highest value whose `append` returned `Ok` (0: none yet).
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Starts writing to `nodes` every `interval_us` (never with 0).
    fn spawn(nodes: Vec<Node>, interval_us: u64) -> Writer {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            if interval_us == 0 {
                return;
            }
            let mut ticker = tokio::time::interval(Duration::from_micros(interval_us));
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut next = 1u64;
            while !stopped.load(Ordering::Relaxed) {
                ticker.tick().await;
                let Some(leader) = nodes.iter().find(|node| node.is_leader()) else {
                    continue;
                };
                let value = next;
                next += 1;
                let command = Bytes::copy_from_slice(&value.to_le_bytes());
                if leader.append(vec![command]).await.is_ok() {
                    seen.fetch_max(value, Ordering::AcqRel);
                }
            }
        });
        Writer { acked, stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// Runs every trial and prints the report; fails if a read broke the guard.
pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let secs = options.secs.unwrap_or(2.0);
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("--secs {secs}: a trial needs a positive duration"));
    }
    let counts = options.client_counts();
    if counts.contains(&0) || options.consistency.is_empty() {
        return Err("--clients and --consistency need at least one reader and one level".into());
    }
    let cluster = ReadCluster::start(options)
        .await
        .map_err(|e| e.to_string())?;
    let writer = Writer::spawn(cluster.nodes.clone(), options.write_interval_us);
    let result = measure(options, &cluster, &writer.acked, &counts, secs).await;
    writer.stop().await;
    cluster.shutdown().await;
    let results = result.map_err(|e| e.to_string())?;
    let violations = print_report(options, secs, &results);
    if violations > 0 {
        return Err(format!(
            "{violations} reads returned a value older than a write acknowledged before they began"
        ));
    }
    Ok(())
}

/// A warm-up, then for each client count `--rounds` rounds of every level (rotated).
async fn measure(
    options: &Options,
    cluster: &ReadCluster,
    acked: &Arc<AtomicU64>,
    counts: &[usize],
    secs: f64,
) -> Result<Results, Error> {
    let levels = &options.consistency;
    let busiest = counts.iter().copied().max().unwrap_or(1);
    for &level in levels {
        trial(cluster, level, busiest, WARM_UP_SECS.min(secs), acked).await?;
    }
    let mut results = Vec::new();
    for &clients in counts {
        let mut trials: Vec<(Consistency, Vec<Trial>)> =
            levels.iter().map(|&level| (level, Vec::new())).collect();
        for round in 0..options.rounds.max(1) {
            for slot in 0..trials.len() {
                let at = (slot + round) % trials.len();
                let Some((level, done)) = trials.get_mut(at) else {
                    continue;
                };
                done.push(trial(cluster, *level, clients, secs, acked).await?);
            }
        }
        results.push((clients, trials));
    }
    Ok(results)
}

/// `clients` readers at `level` for `secs`.
async fn trial(
    cluster: &ReadCluster,
    level: Consistency,
    clients: usize,
    secs: f64,
    acked: &Arc<AtomicU64>,
) -> Result<Trial, Error> {
    let targets = cluster.targets(level).await?;
    if targets.is_empty() {
        return Err(Error::Config(format!(
            "no node takes {} reads",
            level.name()
        )));
    }
    let acked_before = acked.load(Ordering::Acquire);
    let started = now();
    let deadline = started + Duration::from_secs_f64(secs);
    let readers: Vec<_> = (0..clients)
        .map(|client| {
            let (node, register) = targets[client % targets.len()].clone();
            tokio::spawn(reader(node, register, level, deadline, acked.clone()))
        })
        .collect();
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(
            reader
                .await
                .map_err(|e| Error::Fatal(format!("reader task failed: {e}")))?,
        );
    }
    let elapsed = started.elapsed();
    let writes = acked.load(Ordering::Acquire) - acked_before;
    Ok(Trial::new(seen, elapsed, writes))
}

/// One closed-loop reader until `deadline`. One clock read per read: the end of one is the
/// start of the next (two clock reads would be a visible share of a microsecond read), except
/// after a pause (a stale read's yield, an error), which is not timed.
async fn reader(
    node: Node,
    register: Arc<Register>,
    level: Consistency,
    deadline: Instant,
    acked: Arc<AtomicU64>,
) -> Seen {
    let mut seen = Seen::default();
    let mut begun = now();
    while begun < deadline {
        let floor = acked.load(Ordering::Acquire);
        let result = read(&node, level).await;
        let value = register.value();
        let ended = now();
        match result {
            Ok(()) => {
                let nanos = ended.duration_since(begun).as_nanos();
                seen.latencies_ns
                    .push(u32::try_from(nanos).unwrap_or(u32::MAX));
                seen.older += u64::from(value < floor);
                begun = ended;
                if level != Consistency::Stale {
                    continue;
                }
                tokio::task::yield_now().await;
            }
            Err(Error::Overloaded) => tokio::task::yield_now().await,
            Err(err) => {
                seen.errors += 1;
                seen.first_error.get_or_insert_with(|| err.to_string());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        begun = now();
    }
    seen
}

/// The read's call at `level` (none for a stale read).
async fn read(node: &Node, level: Consistency) -> Result<(), Error> {
    match level {
        Consistency::Linearizable => node.linearizable_read().await.map(drop),
        Consistency::Lease => node.lease_read().await.map(drop),
        Consistency::Follower => node.follower_read().await.map(drop),
        Consistency::Stale => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogId, LogIndex, Term};

    fn command(index: u64, value: u64) -> Entry {
        Entry {
            log_id: LogId {
                term: Term(1),
                index: LogIndex(index),
            },
            payload: Payload::Command(Bytes::copy_from_slice(&value.to_le_bytes())),
        }
    }

    #[tokio::test]
    async fn the_register_keeps_the_largest_value_committed() {
        let register = Register::default();
        let results = register
            .commit(&[command(1, 5), command(2, 9), command(3, 7)])
            .await
            .unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(register.value(), 9);
        register.commit(&[command(4, 3)]).await.unwrap();
        assert_eq!(register.value(), 9);
        assert_eq!(decode(b"short"), None);
    }

    /// Every level reads through its nodes without errors, and no read but a stale one
    /// returns a value older than a write acknowledged before it began.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_level_reads_no_older_than_the_acknowledged_writes() {
        use clap::Parser;
        let options = Options::parse_from(["raft-bench", "reads"]);
        let cluster = ReadCluster::start(&options).await.unwrap();
        let writer = Writer::spawn(cluster.nodes.clone(), 200);
        let levels = [
            (Consistency::Linearizable, 1),
            (Consistency::Lease, 1),
            (Consistency::Follower, 2),
            (Consistency::Stale, 3),
        ];
        for (level, nodes) in levels {
            let targets = cluster.targets(level).await.unwrap();
            assert_eq!(targets.len(), nodes, "{level:?}");
            for (node, register) in targets {
                let deadline = now() + Duration::from_millis(100);
                let seen = reader(node, register, level, deadline, writer.acked.clone()).await;
                assert_eq!(seen.errors, 0, "{level:?}: {:?}", seen.first_error);
                assert!(!seen.latencies_ns.is_empty(), "{level:?}");
                if level != Consistency::Stale {
                    assert_eq!(seen.older, 0, "{level:?}");
                }
            }
        }
        assert!(writer.acked.load(Ordering::Acquire) > 0);
        writer.stop().await;
        cluster.shutdown().await;
    }
}
