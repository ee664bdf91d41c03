//! The `peer-table` workload: the transport's table of peers under contention.
//!
//! raft-http's `HttpTransport` finds the peer of every request in a
//! `RwLock<HashMap<NodeId, Arc<Peer>>>` (a read lock, a lookup and a clone of the `Arc`), and a
//! membership change now writes to it at run time. This compares that table with a
//! `dashmap::DashMap<NodeId, Arc<Peer>>` doing the same: `--readers` tasks look peers up in a
//! loop (yielding to the scheduler every `--lookups-per-yield` lookups, as a request would
//! between two of its own) while one writer inserts or removes a peer every
//! `--write-interval-us`, on the bench's runtime (`--server-workers`, 2 by default). Each round
//! runs both tables for `--secs` (2 by default), alternating which goes first; the report
//! gives the median and range of lookups/s over `--rounds` rounds.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use raft_core::NodeId;

use crate::options::Options;
use crate::report::ratio;

/// Peers in the table (a 5-node cluster seen from one node).
const PEERS: u64 = 4;
/// The peer the writer adds and removes (a learner coming and going).
const CHURN: NodeId = NodeId(100);

/// What a table holds for a peer (a stand-in for raft-http's `Peer`).
#[derive(Debug)]
struct Peer {
    address: String,
}

/// The operations the transport does on its table.
trait PeerTable: Send + Sync + 'static {
    /// The name printed in the report.
    const NAME: &'static str;
    /// The peer `id`, if present (a clone of its `Arc`).
    fn lookup(&self, id: NodeId) -> Option<Arc<Peer>>;
    /// Adds or replaces `id`.
    fn insert(&self, id: NodeId, peer: Arc<Peer>);
    /// Removes `id`.
    fn remove(&self, id: NodeId);
}

/// Today's table in `HttpTransport`.
#[derive(Debug, Default)]
struct LockedMap(RwLock<HashMap<NodeId, Arc<Peer>>>);

impl PeerTable for LockedMap {
    const NAME: &'static str = "RwLock<HashMap>";

    fn lookup(&self, id: NodeId) -> Option<Arc<Peer>> {
        let peers = self.0.read().unwrap_or_else(|e| e.into_inner());
        peers.get(&id).cloned()
    }

    fn insert(&self, id: NodeId, peer: Arc<Peer>) {
        let mut peers = self.0.write().unwrap_or_else(|e| e.into_inner());
        peers.insert(id, peer);
    }

    fn remove(&self, id: NodeId) {
        let mut peers = self.0.write().unwrap_or_else(|e| e.into_inner());
        peers.remove(&id);
    }
}

/// The candidate: a sharded map.
#[derive(Debug, Default)]
struct Dash(DashMap<NodeId, Arc<Peer>>);

impl PeerTable for Dash {
    const NAME: &'static str = "DashMap";

    fn lookup(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.0.get(&id).map(|peer| Arc::clone(peer.value()))
    }

    fn insert(&self, id: NodeId, peer: Arc<Peer>) {
        self.0.insert(id, peer);
    }

    fn remove(&self, id: NodeId) {
        self.0.remove(&id);
    }
}

fn peer(id: NodeId) -> Arc<Peer> {
    Arc::new(Peer {
        address: format!("127.0.0.1:{}", 7000 + id.0),
    })
}

/// One trial's result.
#[derive(Clone, Copy, Debug)]
struct Trial {
    lookups_per_sec: f64,
    writes_per_sec: f64,
}

/// Runs `readers` lookup tasks and the writer against a fresh `T` for `secs`.
async fn trial<T: PeerTable + Default>(options: &Options, readers: usize, secs: f64) -> Trial {
    let table = Arc::new(T::default());
    for id in 1..=PEERS {
        table.insert(NodeId(id), peer(NodeId(id)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let per_yield = options.lookups_per_yield.max(1);
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers.max(1) as u64)
        .map(|reader| {
            let (table, stop) = (table.clone(), stop.clone());
            tokio::spawn(async move {
                let mut key = reader;
                let mut found = 0u64;
                let mut lookups = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..per_yield {
                        let peer = table.lookup(NodeId(1 + key % PEERS));
                        found += u64::from(black_box(peer).is_some_and(|p| !p.address.is_empty()));
                        key += 1;
                    }
                    lookups += per_yield as u64;
                    tokio::task::yield_now().await;
                }
                black_box(found);
                lookups
            })
        })
        .collect();
    let interval = options.write_interval_us;
    let writer = {
        let (table, stop) = (table.clone(), stop.clone());
        tokio::spawn(async move {
            let mut writes = 0u64;
            while interval > 0 && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_micros(interval)).await;
                if writes.is_multiple_of(2) {
                    table.insert(CHURN, peer(CHURN));
                } else {
                    table.remove(CHURN);
                }
                writes += 1;
            }
            writes
        })
    };
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lookups = 0u64;
    for task in tasks {
        lookups += task.await.unwrap_or(0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let writes = writer.await.unwrap_or(0);
    Trial {
        lookups_per_sec: ratio(lookups as f64, elapsed),
        writes_per_sec: ratio(writes as f64, elapsed),
    }
}

/// Runs every round for every reader count and prints the table.
pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let secs = options.secs.unwrap_or(2.0);
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("--secs {secs}: a trial needs a positive duration"));
    }
    println!(
        "workload=peer-table workers={} peers={PEERS} lookups_per_yield={} write_interval_us={} secs={secs} rounds={}",
        options.server_workers,
        options.lookups_per_yield,
        options.write_interval_us,
        options.rounds
    );
    println!(
        "  {:>7}  {:<16} {:>14} {:>27} {:>9}  lookups/s of each round",
        "readers", "table", "median/s", "range", "writes/s"
    );
    let mut summary = Vec::new();
    for &readers in &options.readers {
        let mut locked = Vec::new();
        let mut dash = Vec::new();
        for round in 0..options.rounds.max(1) {
            if round.is_multiple_of(2) {
                locked.push(trial::<LockedMap>(options, readers, secs).await);
                dash.push(trial::<Dash>(options, readers, secs).await);
            } else {
                dash.push(trial::<Dash>(options, readers, secs).await);
                locked.push(trial::<LockedMap>(options, readers, secs).await);
            }
        }
        let locked_median = print_row::<LockedMap>(readers, &locked);
        let dash_median = print_row::<Dash>(readers, &dash);
        let speedup = ratio(dash_median, locked_median);
        println!("  {readers:>7}  DashMap / RwLock  {speedup:>13.2}x");
        summary.push(format!("dashmap_over_rwlock_{readers}={speedup:.3}"));
    }
    println!(
        "bench: workload=peer-table nodes=1 workers={} {}",
        options.server_workers,
        summary.join(" ")
    );
    Ok(())
}

/// Prints one table's row; returns its median lookups/s.
fn print_row<T: PeerTable>(readers: usize, trials: &[Trial]) -> f64 {
    let mut rates: Vec<f64> = trials.iter().map(|t| t.lookups_per_sec).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    let (low, high) = (
        rates.first().copied().unwrap_or(0.0),
        rates.last().copied().unwrap_or(0.0),
    );
    let writes = trials.iter().map(|t| t.writes_per_sec).sum::<f64>() / trials.len().max(1) as f64;
    let each: Vec<String> = trials
        .iter()
        .map(|t| format!("{:.1}M", t.lookups_per_sec / 1e6))
        .collect();
    println!(
        "  {readers:>7}  {:<16} {median:>14.0} {:>27} {writes:>9.0}  {}",
        T::NAME,
        format!("{low:.0}-{high:.0}"),
        each.join(" ")
    );
    median
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise<T: PeerTable + Default>() {
        let table = T::default();
        table.insert(NodeId(1), peer(NodeId(1)));
        assert_eq!(
            table.lookup(NodeId(1)).map(|p| p.address.clone()),
            Some("127.0.0.1:7001".to_owned())
        );
        table.remove(NodeId(1));
        assert!(table.lookup(NodeId(1)).is_none());
    }

    #[test]
    fn both_tables_insert_look_up_and_remove() {
        exercise::<LockedMap>();
        exercise::<Dash>();
    }
}
