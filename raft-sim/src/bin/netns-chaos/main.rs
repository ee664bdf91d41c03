//! `netns-chaos`: real `raft-kv serve` processes, each in its own network namespace, under a
//! nemesis of partitions (symmetric and one-way), an isolated leader, links going down, SIGSTOP
//! and SIGKILL, while clients record a history that raft-sim's linearizability checker judges,
//! with exactly-once counters.
//!
//! `scripts/netns/chaos.sh` makes the namespaces (one per node, a hub holding the bridge, one
//! for the clients), runs this binary inside the client namespace and removes everything on
//! exit; run the script, not this binary. Node `i` listens on `SUBNET.i:PORT` in the namespace
//! `PREFIX-n{i}`, reached through the bridge port `v{i}` of the hub namespace.
//!
//! The history: every client runs one operation at a time (a linearizable GET, a PUT or DELETE
//! of a register key, or an `incr` of a counter key), each write with its own Client-Id and
//! Request-Id, retried with the same ids across nodes until an answer or the operation's
//! deadline. A write that ends without an answer is indeterminate (`:info`); one refused every
//! time with "not applied" (503, or no connection) failed (`:fail`); after either, the client
//! takes a fresh Client-Id, so that once the faults are healed each such write is resubmitted
//! with its ids to learn its outcome (applied before, or applied only now). Then every key is
//! read, the histories are checked (registers with raft-sim's key-value model, counters with a
//! counter model, both with its search), each counter must hold exactly the values its incrs
//! returned (`1..=n`, each once), a write reported as not applied must not turn out applied,
//! and every replica must hold the same values; a write answered as a retry although none of
//! its earlier attempts could have applied it, a node exiting by itself, or an unexpected status
//! are violations too. A history that is not linearizable is narrowed to the earliest time its
//! prefix stops being so, and the operations of that key around it are printed. Exit status:
//! 0 clean, 1 a violation, 2 the harness could not run or the cluster did not recover.
//!
//! Each run writes `history-kv.edn` (readable by raft-sim's `parse_kv_history`; check it again
//! with `netns-chaos --recheck FILE`), `history-counters.edn` and `nemesis.log`. `--plant
//! stale-read|double-incr` alters the recorded history before the checks, to see them fail.
#![forbid(unsafe_code)]
// A command-line tool: its report goes to stdout.
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use clap::Parser;
use raft_sim::linearizability::jepsen::parse_kv_history;
use raft_sim::linearizability::kv::check_kv;
use raft_sim::linearizability::{Budget, Verdict};

use crate::basics::{Clock, Rng, clock_seed};
use crate::check::{check_counters, check_histories};
use crate::client::{Shared, client_loop, final_reads, resolve};
use crate::cluster::{Cluster, check_convergence, nemesis, parse_faults};
use crate::history::{
    OpKind, Outcome, Record, counter_key, is_counter, parse_count, register_key, write_histories,
};

/// Clients and nemesis of the network-namespace fault test (run it through
/// scripts/netns/chaos.sh).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// How long the nemesis runs, in seconds (then healing, recovery, resolution and checks).
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Number of nodes (3 or 5 make sense).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: u64,
    /// Seed of the nemesis schedule and of the clients' choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// The raft-kv binary.
    #[arg(long, required_unless_present = "recheck")]
    raft_kv: Option<PathBuf>,
    /// Node i runs in the network namespace PREFIX-n{i}.
    #[arg(long, required_unless_present = "recheck")]
    ns_prefix: Option<String>,
    /// The namespace holding the bridge, with the port v{i} of node i.
    #[arg(long, required_unless_present = "recheck")]
    hub: Option<String>,
    /// The nodes' data directories and logs go here.
    #[arg(long, required_unless_present = "recheck")]
    data_dir: Option<PathBuf>,
    /// Only check a saved register history (a run's history-kv.edn) with raft-sim's Jepsen
    /// parser and key-value checker, then exit (no cluster; outcomes learned by resubmission
    /// are not in the file, so its unknown writes stay unknown).
    #[arg(long, value_name = "FILE")]
    recheck: Option<PathBuf>,
    /// The histories and the nemesis log go here (default: the data directory).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// The first three octets of the addresses: node i is SUBNET.i.
    #[arg(long, default_value = "10.77.0")]
    subnet: String,
    /// The port every node listens on.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// Fault kinds, comma-separated: partition, one-way, isolate-leader, link-down, pause,
    /// kill (or none).
    #[arg(
        long,
        default_value = "partition,one-way,isolate-leader,link-down,pause,kill"
    )]
    faults: String,
    /// Quiet time between faults, in milliseconds: a random value in MIN..MAX.
    #[arg(long, default_value = "1000..4000", value_parser = parse_range)]
    quiet_ms: (u64, u64),
    /// How long a fault lasts, in milliseconds: a random value in MIN..MAX.
    #[arg(long, default_value = "2000..8000", value_parser = parse_range)]
    hold_ms: (u64, u64),
    /// Register keys (PUT/DELETE/GET).
    #[arg(long, default_value_t = 8)]
    registers: u64,
    /// Counter keys (incr/GET).
    #[arg(long, default_value_t = 2)]
    counters: u64,
    /// An operation's deadline over all its attempts, in milliseconds: drawn per operation in
    /// MIN..MAX, so that some writes outlast a fault and others end indeterminate.
    #[arg(long, default_value = "1000..6000", value_parser = parse_range)]
    op_timeout_ms: (u64, u64),
    /// One HTTP attempt's deadline, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    attempt_timeout_ms: u64,
    /// The nodes' --snapshot-threshold (small, so snapshots and compaction happen).
    #[arg(long, default_value_t = 64 * 1024)]
    snapshot_threshold: u64,
    /// Start the nodes with --lease-reads and send a third of the reads as
    /// `?consistency=lease`.
    #[arg(long)]
    lease_reads: bool,
    /// After the last fault is healed, clients keep running this long, in seconds.
    #[arg(long, default_value_t = 5)]
    recover_secs: u64,
    /// Search steps allowed per key for the linearizability check.
    #[arg(long, default_value_t = 50_000_000)]
    check_budget: u64,
    /// Plant a fault in the recorded history before checking it, to see the checks catch it:
    /// stale-read (a read answers a value overwritten before it began) or double-incr (the
    /// final read of a counter finds one more than its incrs).
    #[arg(long, value_parser = ["stale-read", "double-incr"])]
    plant: Option<String>,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (low, high) = text
        .split_once("..")
        .ok_or_else(|| format!("{text}: expected MIN..MAX"))?;
    let low: u64 = low.parse().map_err(|_| format!("{text}: bad MIN"))?;
    let high: u64 = high.parse().map_err(|_| format!("{text}: bad MAX"))?;
    if low > high {
        return Err(format!("{text}: MIN is above MAX"));
    }
    Ok((low, high))
}

mod basics;
mod check;
mod client;
mod cluster;
mod history;
mod http;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.recheck {
        Some(path) => recheck(path, args.check_budget),
        None => run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            println!("netns-chaos: error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Checks a saved register history with `parse_kv_history` and `check_kv`.
fn recheck(path: &Path, max_steps: u64) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ops = parse_kv_history(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let verdict = check_kv(&ops, Budget { max_steps });
    println!("{}: {} operations: {verdict:?}", path.display(), ops.len());
    match verdict {
        Verdict::Linearizable => Ok(true),
        Verdict::NotLinearizable => Ok(false),
        Verdict::Unknown => Err("the search ran out of budget".to_owned()),
    }
}

/// Counts of the clients' operations.
#[derive(Debug, Default)]
struct OpCounts {
    invoked: u64,
    ok: u64,
    fail: u64,
    info: u64,
    by_kind: BTreeMap<&'static str, (u64, u64)>,
    ok_after_heal: u64,
}

fn count_ops(records: &[Record], healed_at: u64) -> OpCounts {
    let mut counts = OpCounts::default();
    for record in records {
        counts.invoked += 1;
        let entry = counts.by_kind.entry(record.kind.name()).or_default();
        entry.0 += 1;
        match record.outcome {
            Outcome::Ok(_) => {
                counts.ok += 1;
                entry.1 += 1;
                if record.kind.is_write() && record.call >= healed_at {
                    counts.ok_after_heal += 1;
                }
            }
            Outcome::Fail => counts.fail += 1,
            Outcome::Info => counts.info += 1,
        }
    }
    counts
}

#[allow(clippy::too_many_lines)] // the run's phases, one after the other
fn run(args: &Args) -> Result<bool, String> {
    let seed = args.seed.unwrap_or_else(clock_seed);
    let faults = parse_faults(&args.faults)?;
    let out_dir = args
        .out_dir
        .clone()
        .or_else(|| args.data_dir.clone())
        .ok_or("--data-dir is missing")?;
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let nemesis_path = out_dir.join("nemesis.log");
    let mut nemesis_log =
        File::create(&nemesis_path).map_err(|e| format!("{}: {e}", nemesis_path.display()))?;
    let clock = Clock::new();
    let mut rng = Rng(seed);
    println!(
        "netns-chaos: seed {seed}, {} nodes, {} clients, {} s of faults ({}), {} register and {} counter keys",
        args.nodes,
        args.clients,
        args.secs,
        if faults.is_empty() {
            "none".to_owned()
        } else {
            faults
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        },
        args.registers,
        args.counters
    );
    let mut cluster = Cluster {
        raft_kv: args.raft_kv.clone().ok_or("--raft-kv is missing")?,
        ns_prefix: args.ns_prefix.clone().ok_or("--ns-prefix is missing")?,
        hub: args.hub.clone().ok_or("--hub is missing")?,
        data_dir: args.data_dir.clone().ok_or("--data-dir is missing")?,
        subnet: args.subnet.clone(),
        port: args.port,
        nodes: args.nodes,
        snapshot_threshold: args.snapshot_threshold,
        lease_reads: args.lease_reads,
        clock,
        children: BTreeMap::new(),
        paused: BTreeSet::new(),
        blackholes: BTreeSet::new(),
        links_down: BTreeSet::new(),
        starts: 0,
    };
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    let first_leader = cluster
        .wait_for_agreed_leader(Duration::from_secs(30))
        .ok_or("no leader within 30 s of the start")?;
    println!(
        "[{:8.3}s] leader {first_leader}; clients start",
        clock.secs()
    );

    let shared = Arc::new(Shared {
        clock,
        addresses: cluster
            .ids()
            .into_iter()
            .map(|id| cluster.address(id))
            .collect(),
        registers: args.registers,
        counters: args.counters,
        op_timeout_ms: args.op_timeout_ms,
        attempt_timeout: Duration::from_millis(args.attempt_timeout_ms),
        lease_reads: args.lease_reads,
        stop: AtomicBool::new(false),
        next_client_id: AtomicU64::new(1 + (seed % 1_000) * 1_000_000),
        anomalies: Mutex::new(Vec::new()),
    });
    let handles: Vec<_> = (0..args.clients)
        .map(|client| {
            let shared = Arc::clone(&shared);
            let rng = Rng(seed ^ (client + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let clients = args.clients;
            thread::spawn(move || client_loop(&shared, client, clients, rng))
        })
        .collect();

    let until = clock.nanos() + args.secs * 1_000_000_000;
    let nemesis_result = nemesis(
        &mut cluster,
        &faults,
        args.quiet_ms,
        args.hold_ms,
        &mut rng,
        until,
        &mut nemesis_log,
    );
    let healed_at = clock.nanos();
    if nemesis_result.is_ok() {
        thread::sleep(Duration::from_secs(args.recover_secs));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut records: Vec<Record> = Vec::new();
    for handle in handles {
        records.extend(handle.join().map_err(|_| "a client thread panicked")?);
    }
    let nemesis_report = nemesis_result?;
    let counts = count_ops(&records, healed_at);
    println!(
        "[{:8.3}s] clients stopped: {} operations, {} ok, {} failed, {} indeterminate",
        clock.secs(),
        counts.invoked,
        counts.ok,
        counts.fail,
        counts.info
    );

    let mut violations: Vec<String> = nemesis_report
        .crashes
        .iter()
        .map(|c| format!("crash: {c}"))
        .collect();
    let mut liveness: Vec<String> = Vec::new();
    if counts.ok_after_heal == 0 && args.recover_secs > 0 {
        liveness.push(format!(
            "no write succeeded in the {} s after the last heal",
            args.recover_secs
        ));
    }
    if cluster
        .wait_for_agreed_leader(Duration::from_secs(30))
        .is_none()
    {
        liveness.push("no leader agreed on within 30 s of the last heal".to_owned());
    }
    let unresolved = resolve(&shared, &mut records, &mut rng, &mut violations);
    let mut keys: Vec<String> = (0..args.registers).map(register_key).collect();
    keys.extend((0..args.counters).map(counter_key));
    let finals = final_reads(&shared, &mut rng, &keys, 10_000_000);
    let mut final_values = BTreeMap::new();
    for record in &finals {
        match &record.outcome {
            Outcome::Ok(value) => {
                final_values.insert(record.key.clone(), value.clone().unwrap_or_default());
            }
            _ => liveness.push(format!(
                "the final read of {} got no answer in 30 s",
                record.key
            )),
        }
    }
    records.extend(finals);
    if final_values.len() == keys.len()
        && let Err(error) = check_convergence(&cluster, &final_values, &mut violations)
    {
        liveness.push(error);
    }
    for (id, exit) in cluster.exited() {
        violations.push(format!("crash: node {id} exited by itself ({exit})"));
    }
    let node_starts = cluster.starts;
    drop(cluster);
    write_histories(&records, &out_dir)?;

    if let Some(plant) = &args.plant {
        let planted = plant_fault(plant, &mut records, &mut final_values)?;
        println!("PLANTED ({plant}): {planted}");
    }
    let started = clock.secs();
    let budget = Budget {
        max_steps: args.check_budget,
    };
    let check = check_histories(&records, &keys, budget, &mut violations);
    let check_secs = clock.secs() - started;
    let incrs = check_counters(&records, &final_values, &mut violations);
    let anomalies = shared
        .anomalies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for anomaly in &anomalies {
        violations.push(format!("anomaly: {anomaly}"));
    }

    let kinds: Vec<String> = counts
        .by_kind
        .iter()
        .map(|(k, (n, ok))| format!("{k} {n} ({ok} ok)"))
        .collect();
    let fault_counts: Vec<String> = nemesis_report
        .counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("== netns-chaos summary (seed {seed})");
    println!(
        "operations: {} invoked, {} ok, {} failed, {} indeterminate; {}",
        counts.invoked,
        counts.ok,
        counts.fail,
        counts.info,
        kinds.join(", ")
    );
    println!(
        "faults: {} (node starts {})",
        if fault_counts.is_empty() {
            "none".to_owned()
        } else {
            fault_counts.join(", ")
        },
        node_starts
    );
    println!(
        "resubmitted writes: {} unresolved; incrs: {} acked, resolved later: {} applied before, {} applied by resubmission, {} either ({} of them answered 'not applied' at first), {} unresolved",
        unresolved,
        incrs.acked,
        incrs.applied_before,
        incrs.applied_by_resubmission,
        incrs.applied_either,
        incrs.failed_then_resubmitted,
        incrs.unresolved
    );
    println!(
        "final values: {}",
        final_values
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "linearizability: {} operations over {} keys checked in {check_secs:.1} s; {}",
        check.checked_ops,
        keys.len(),
        if check.unknown_keys.is_empty() {
            "every key decided".to_owned()
        } else {
            format!("UNDECIDED (budget) for {:?}", check.unknown_keys)
        }
    );
    println!(
        "histories: {}/history-kv.edn, {}/history-counters.edn; nemesis log {}",
        out_dir.display(),
        out_dir.display(),
        nemesis_path.display()
    );
    for problem in &liveness {
        println!("LIVENESS: {problem}");
    }
    for violation in &violations {
        println!("VIOLATION: {violation}");
    }
    println!(
        "violations: {} (seed {seed}, run of {:.0} s)",
        violations.len(),
        clock.secs()
    );
    if !liveness.is_empty() && violations.is_empty() {
        return Err("the cluster did not recover after the faults were healed".to_owned());
    }
    Ok(violations.is_empty())
}

/// Alters the recorded history as `plant` says (see [`Args::plant`]); returns what it did.
fn plant_fault(
    plant: &str,
    records: &mut [Record],
    finals: &mut BTreeMap<String, String>,
) -> Result<String, String> {
    if plant == "double-incr" {
        let (key, value) = finals
            .iter_mut()
            .find(|(k, _)| is_counter(k))
            .ok_or("no counter key")?;
        let count = parse_count(Some(value)).ok_or("the counter is not a number")?;
        *value = (count + 1).to_string();
        let key = key.clone();
        let last_read = records
            .iter_mut()
            .rev()
            .find(|r| r.key == key && r.kind == OpKind::Get)
            .ok_or("no read of the counter")?;
        last_read.outcome = Outcome::Ok(Some((count + 1).to_string()));
        return Ok(format!("the final read of {key} now answers {}", count + 1));
    }
    // stale-read: puts P1, P2 acked one after the other (P1 returned before P2 was called),
    // then a read called after P2 returned, made to answer P1's value.
    let acked_puts: Vec<(usize, String, u64, u64)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match (&r.kind, &r.outcome) {
            (OpKind::Put(v), Outcome::Ok(_)) => Some((i, v.clone(), r.call, r.ret)),
            _ => None,
        })
        .collect();
    for (read_index, read) in records.iter().enumerate().rev() {
        if read.kind != OpKind::Get || !matches!(read.outcome, Outcome::Ok(_)) {
            continue;
        }
        let before: Vec<&(usize, String, u64, u64)> = acked_puts
            .iter()
            .filter(|(i, _, _, ret)| records[*i].key == read.key && *ret < read.call)
            .collect();
        let pair = before.iter().find_map(|first| {
            before
                .iter()
                .find(|second| second.2 > first.3 && second.1 != first.1)
                .map(|_| first.1.clone())
        });
        if let Some(stale) = pair {
            let text = format!("{} now answers {stale:?}", records[read_index].describe());
            records[read_index].outcome = Outcome::Ok(Some(stale));
            return Ok(text);
        }
    }
    Err("no read to make stale".to_owned())
}
