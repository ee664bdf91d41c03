//! The `catch-up` workload: how long an empty learner takes to catch up with a durable cluster.
//!
//! Three voters on file logs (the `durable` cluster, with a [`SizedState`] state machine whose
//! snapshot is as large as everything written) are loaded with `--log-bytes` of commands of
//! `--payload` bytes, `--batch` per `append` call from `--clients` loaders, as fast as they
//! go. With snapshots on (the log-size trigger, `--snapshot-threshold`), the leader has
//! compacted its log by then, so the learner gets a snapshot and then the rest of the log;
//! with `--no-snapshots` it gets the whole log. Once the load is applied everywhere and no
//! snapshot is being taken, node 4 starts empty (`Node::start_joining`), the leader adds it
//! (`add_learner`), and the clock runs until the leader sees it at most `--max-lag` entries
//! behind (the condition of `Node::wait_for_learner`, polled every 5 ms instead of every
//! heartbeat, then confirmed with `wait_for_learner` itself) and until the learner applied
//! everything: its state machine restores a snapshot after the snapshot is stored, so the
//! leader may count it caught up before its state is. No writes run meanwhile.
//!
//! [`SizedState`]: crate::cluster::SizedState

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raft_core::runtime::Node;
use raft_core::{Error, LogStore, NodeId};
use raft_storage_fs::FsLogStore;

use crate::cluster::Cluster;
use crate::harness::node_config;
use crate::options::Options;
use crate::report::{mib, peak_rss_kib};

/// The learner's id.
const LEARNER: NodeId = NodeId(4);
/// How long the learner may take before the run fails.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long the cluster may take to settle after the load.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the leader's view of the learner is read.
const POLL: Duration = Duration::from_millis(5);

/// What a run measured.
#[derive(Debug, Default)]
struct CatchUp {
    /// Command bytes and entries written, and how long that took.
    loaded_bytes: u64,
    loaded_entries: u64,
    load: Duration,
    /// The wait after the load for the followers to apply it and snapshots to finish.
    settle: Duration,
    /// The leader when the learner joined, and when it had caught up.
    leader_at_join: Snapshotting,
    leader_at_end: Snapshotting,
    /// Since the learner started: `add_learner` returned, a snapshot was stored (its status
    /// shows a snapshot index), its state machine had read it (`restore` returned), the
    /// leader saw it caught up (the condition of `wait_for_learner`), it applied everything.
    added: Duration,
    snapshot_stored: Option<Duration>,
    snapshot_restored: Option<Duration>,
    caught_up: Duration,
    applied: Duration,
    /// The learner at the end.
    learner: Snapshotting,
    learner_restored_bytes: u64,
    learner_state_bytes: u64,
}

/// A node's log and snapshot at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Snapshotting {
    last_index: u64,
    snapshot_index: u64,
    log_base_index: u64,
    log_bytes: u64,
}

impl Snapshotting {
    fn of(node: &Node, store: &FsLogStore) -> Snapshotting {
        let status = node.status();
        Snapshotting {
            last_index: status.last_log_index.0,
            snapshot_index: status.snapshot_index.0,
            log_base_index: status.log_base_index.0,
            log_bytes: store.byte_count(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "last index {}, snapshot at {}, log base {}, log {:.1} MiB",
            self.last_index,
            self.snapshot_index,
            self.log_base_index,
            mib(self.log_bytes)
        )
    }
}

/// Runs the workload and prints its report.
pub(crate) async fn run(options: &Options) -> Result<(), Error> {
    let mut config = node_config(options);
    if options.no_snapshots {
        config.snapshot_log_bytes = 0;
    }
    let mut cluster = Cluster::start(options, config, 3).await?;
    let result = measure(options, &mut cluster).await;
    let dir = cluster.dir().display().to_string();
    cluster.shutdown().await;
    print(options, &result?, &dir);
    Ok(())
}

async fn measure(options: &Options, cluster: &mut Cluster) -> Result<CatchUp, Error> {
    let leader = cluster.leader(Duration::from_secs(30)).await?;
    let leader_store = cluster
        .member(leader.id())
        .map(|m| m.store.clone())
        .ok_or_else(|| Error::Config("the leader is not a member".to_owned()))?;
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let started = std::time::Instant::now();
    let claimed = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(progress(
        leader.clone(),
        leader_store.clone(),
        claimed.clone(),
        options,
    ));
    let loaded = load(options, &leader, &claimed).await;
    progress.abort();
    let (loaded_entries, loaded_bytes) = loaded?;
    let load = started.elapsed();
    settle(cluster, &leader).await?;
    let settle = started.elapsed() - load;
    let leader_at_join = Snapshotting::of(&leader, &leader_store);

    let address = cluster.join(LEARNER).await?;
    let (node, state, store) = cluster
        .member(LEARNER)
        .map(|m| (m.node.clone(), m.state.clone(), m.store.clone()))
        .ok_or_else(|| Error::Config("the learner did not start".to_owned()))?;
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let joined = std::time::Instant::now();
    leader.add_learner(LEARNER, address).await?;
    let added = joined.elapsed();
    let max_lag = options.max_lag();
    let (mut stored, mut restored, mut caught_up, mut applied) = (None, None, None, None);
    while caught_up.is_none() || applied.is_none() {
        let now = Some(joined.elapsed());
        let status = node.status();
        if stored.is_none() && status.snapshot_index.0 > 0 {
            stored = now;
        }
        if restored.is_none() && state.restored() > 0 {
            restored = now;
        }
        let (last, followers) = leader.followers().await?;
        let near = followers
            .iter()
            .find(|f| f.peer == LEARNER)
            .is_some_and(|f| f.match_index.plus(max_lag) >= last);
        if caught_up.is_none() && near {
            caught_up = now;
            // The library's own wait agrees (it returns at once when the condition holds).
            leader
                .wait_for_learner(LEARNER, max_lag, Duration::from_secs(10))
                .await?;
        }
        if applied.is_none() && status.applied_index.plus(max_lag) >= last {
            applied = now;
        }
        if joined.elapsed() > CATCH_UP_TIMEOUT {
            return Err(Error::Timeout);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(CatchUp {
        loaded_bytes,
        loaded_entries,
        load,
        settle,
        leader_at_join,
        leader_at_end: Snapshotting::of(&leader, &leader_store),
        added,
        snapshot_stored: stored,
        snapshot_restored: restored,
        caught_up: caught_up.unwrap_or_default(),
        applied: applied.unwrap_or_default(),
        learner: Snapshotting::of(&node, &store),
        learner_restored_bytes: state.restored(),
        learner_state_bytes: state.bytes(),
    })
}

/// Writes `--log-bytes` of commands through `leader`: each loader claims `--batch` commands at
/// a time and appends them in one call. Returns the entries and bytes written.
async fn load(
    options: &Options,
    leader: &Node,
    claimed: &Arc<AtomicU64>,
) -> Result<(u64, u64), Error> {
    let payload_bytes = options.payload().max(1) as u64;
    let total = options.log_bytes.div_ceil(payload_bytes);
    let batch = options.batch() as u64;
    let payload = Bytes::from(vec![0xC3; options.payload().max(1)]);
    let mut loaders = Vec::new();
    for _ in 0..options.clients().max(1) {
        let (leader, payload, claimed) = (leader.clone(), payload.clone(), claimed.clone());
        loaders.push(tokio::spawn(async move {
            loop {
                let first = claimed.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    return Ok::<_, Error>(());
                }
                let count = usize::try_from(batch.min(total - first)).unwrap_or(1);
                loop {
                    match leader.append(vec![payload.clone(); count]).await {
                        Ok(_) => break,
                        Err(Error::Overloaded) => tokio::task::yield_now().await,
                        Err(err) => return Err(err),
                    }
                }
            }
        }));
    }
    for loader in loaders {
        loader
            .await
            .map_err(|err| Error::Fatal(format!("loader task failed: {err}")))??;
    }
    Ok((total, total * payload_bytes))
}

/// Prints the load's progress to stderr every 10 s: a long load shows it is moving, and how
/// the leader's snapshots and log size follow it.
fn progress(
    leader: Node,
    store: FsLogStore,
    claimed: Arc<AtomicU64>,
    options: &Options,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let payload = options.payload().max(1) as u64;
    let total = options.log_bytes;
    async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let status = leader.status();
            eprintln!(
                "catch-up: loading: {:.0} of {:.0} MiB sent; leader applied {}, snapshot at {}, log base {}, log {:.1} MiB",
                mib((claimed.load(Ordering::Relaxed) * payload).min(total)),
                mib(total),
                status.applied_index.0,
                status.snapshot_index.0,
                status.log_base_index.0,
                mib(store.byte_count()),
            );
        }
    }
}

/// Waits until every node applied the whole log and is done with snapshots (none is being
/// written, each node adopted its newest; the leader's snapshot index then holds still for a
/// few polls, in case one was just asked for).
async fn settle(cluster: &Cluster, leader: &Node) -> Result<(), Error> {
    let store = cluster
        .member(leader.id())
        .map(|m| m.store.clone())
        .ok_or_else(|| Error::Config("the leader is not a member".to_owned()))?;
    let nodes = cluster.nodes();
    let wait = async {
        let mut last_snapshot = u64::MAX;
        let mut still = 0;
        let mut polls = 0u64;
        loop {
            let last = leader.status().last_log_index;
            let applied = nodes.iter().all(|n| n.status().applied_index >= last);
            let snapshots = cluster.snapshots_settled();
            let snapshot = leader.status().snapshot_index.0;
            still = if snapshot == last_snapshot {
                still + 1
            } else {
                0
            };
            last_snapshot = snapshot;
            if applied && snapshots && still >= 5 {
                return;
            }
            polls += 1;
            if polls.is_multiple_of(100) {
                let applied: Vec<u64> = nodes.iter().map(|n| n.status().applied_index.0).collect();
                eprintln!(
                    "catch-up: still settling: leader last index {}, snapshot at {snapshot}, log {:.1} MiB; applied {applied:?}",
                    last.0,
                    mib(store.byte_count()),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(SETTLE_TIMEOUT, wait)
        .await
        .map_err(|_| Error::Timeout)
}

fn print(options: &Options, run: &CatchUp, dir: &str) {
    let snapshots = if options.no_snapshots || options.snapshot_threshold == 0 {
        "off".to_owned()
    } else {
        format!("on (threshold {:.1} MiB)", mib(options.snapshot_threshold))
    };
    let state = options
        .state_bytes
        .map_or("every command adds to it".to_owned(), |cap| {
            format!("at most {:.1} MiB", mib(cap))
        });
    println!(
        "workload=catch-up log={:.1} MiB payload={} batch={} loaders={} snapshots={snapshots} state: {state}",
        mib(options.log_bytes),
        options.payload(),
        options.batch(),
        options.clients(),
    );
    println!("  data directory   {dir} (removed)");
    let load_secs = run.load.as_secs_f64();
    println!(
        "  load             {:.1} MiB, {} entries in {load_secs:.2} s ({:.1} MiB/s); settled in {:.2} s",
        mib(run.loaded_bytes),
        run.loaded_entries,
        mib(run.loaded_bytes) / load_secs.max(f64::EPSILON),
        run.settle.as_secs_f64(),
    );
    println!("  leader at join   {}", run.leader_at_join.describe());
    println!("  leader at end    {}", run.leader_at_end.describe());
    let secs = run.caught_up.as_secs_f64();
    let rate = mib(run.loaded_bytes) / secs.max(f64::EPSILON);
    println!(
        "  learner caught up in {secs:.2} s ({rate:.1} MiB/s of commands; leader's view, max lag {}); add_learner took {} ms",
        options.max_lag(),
        run.added.as_millis()
    );
    println!(
        "  learner applied everything in {:.2} s",
        run.applied.as_secs_f64()
    );
    let at =
        |t: Option<Duration>| t.map_or("-".to_owned(), |t| format!("{:.2} s", t.as_secs_f64()));
    let installed = run.snapshot_stored.is_some();
    println!(
        "  snapshot installed  {}: stored at {}, restored ({:.1} MiB read) at {}",
        if installed { "yes" } else { "no" },
        at(run.snapshot_stored),
        mib(run.learner_restored_bytes),
        at(run.snapshot_restored),
    );
    println!(
        "  learner at end   {}; state {:.1} MiB",
        run.learner.describe(),
        mib(run.learner_state_bytes)
    );
    println!("  peak RSS (MiB)   {:.1}", peak_rss_kib() as f64 / 1024.0);
    println!(
        "bench: workload=catch-up nodes=4 log_bytes={} secs={secs:.3} bytes_per_sec={:.0} snapshot_installed={} applied_secs={:.3} load_secs={load_secs:.3}",
        run.loaded_bytes,
        run.loaded_bytes as f64 / secs.max(f64::EPSILON),
        if installed { "yes" } else { "no" },
        run.applied.as_secs_f64(),
    );
}
