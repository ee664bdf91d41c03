//! The `kv` workload: the product, end to end. 3 `raft-kv serve` processes on loopback with
//! durable logs (see [`crate::kv_cluster`]) serve `--clients` closed-loop clients, tasks of
//! this process sharing one raft-kv-client `Client` (HTTP/2 by default: one multiplexed
//! connection to the leader; `--protocol http1`: a keep-alive connection per request in
//! flight), each with one request in flight.
//!
//! A request is a `PUT` of a `--value-bytes` (256) value; with `--batch N` (N > 1) it is N
//! PUTs in one `POST /kv` through the client's batch API (one log entry); with `--op get` it
//! is a `GET` at the first `--consistency` (linearizable by default) of a key written before
//! the warm-up. Keys are spread over `--keys` (10,000).
//!
//! The run: start the processes, wait until a write succeeds, `--warmup-secs` (2) of the same
//! load unmeasured, then `--secs` (10) measured. ops/s counts operations (a batch of N counts
//! N); latencies are per request. Every call that ends in an error (after the client's own
//! retries) is counted; a run with errors prints them and exits with status 1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raft_kv_client::{Batch, Client, Consistency as ClientConsistency, MAX_BATCH_OPS, Protocol};

use crate::kv_cluster::{
    KvProcesses, NODES, ServeSettings, kv_binary, shared_machine_worker_threads,
};
use crate::options::{Consistency, KvOp, Options, ProtocolArg};
use crate::report::{percentile, ratio};

/// How long the cluster may take to start and accept a first write.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// A call's deadline, retries included, under load.
const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Keys written per request while loading the keys `--op get` reads.
const PRELOAD_BATCH: u64 = 100;

/// The wall clock of the benchmark.
fn now() -> Instant {
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    Instant::now()
}

/// What every client does: shared by the client tasks.
#[derive(Debug)]
struct Load {
    client: Client,
    op: KvOp,
    batch: usize,
    consistency: ClientConsistency,
    clients: u64,
    keys: u64,
    /// The value of every PUT.
    value: String,
}

impl Load {
    /// One request of client `index`, its `seq`-th.
    async fn request(&self, index: u64, seq: u64) -> Result<(), String> {
        let key = |n: u64| key_name(key_number(index, n, self.clients, self.keys));
        match (self.op, self.batch) {
            (KvOp::Get, _) => self
                .client
                .get_with(key(seq), self.consistency)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            (KvOp::Put, 1) => self
                .client
                .put(key(seq), self.value.clone())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            (KvOp::Put, n) => {
                let first = seq * n as u64;
                let batch = (first..first + n as u64).fold(Batch::new(), |batch, k| {
                    batch.put(key(k), self.value.clone())
                });
                let outcome = self.client.batch(&batch).await.map_err(|e| e.to_string())?;
                if outcome.all_applied() {
                    Ok(())
                } else {
                    Err(format!(
                        "a batch was not applied whole: {:?}",
                        outcome.results
                    ))
                }
            }
        }
    }
}

/// Key number `seq` of client `index` of `clients`: the clients interleave over the key space.
fn key_number(index: u64, seq: u64, clients: u64, keys: u64) -> u64 {
    (index + seq.wrapping_mul(clients.max(1))) % keys.max(1)
}

fn key_name(number: u64) -> String {
    format!("bench/{number:08}")
}

/// What one client task saw.
#[derive(Debug, Default)]
struct Tally {
    /// Latencies of the successful requests, in microseconds.
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// What a measured phase adds up to.
#[derive(Debug, PartialEq)]
struct Summary {
    requests: u64,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    p50_us: u32,
    p90_us: u32,
    p99_us: u32,
}

impl Summary {
    /// The tallies of a phase that took `elapsed`, each successful request `batch` operations.
    fn new(tallies: Vec<Tally>, elapsed: Duration, batch: usize) -> Summary {
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for tally in tallies {
            latencies.extend(tally.latencies_us);
            errors += tally.errors;
            first_error = first_error.or(tally.first_error);
        }
        latencies.sort_unstable();
        let requests = latencies.len() as u64;
        Summary {
            requests,
            ops: requests * batch as u64,
            errors,
            first_error,
            secs: elapsed.as_secs_f64(),
            p50_us: percentile(&latencies, 0.50),
            p90_us: percentile(&latencies, 0.90),
            p99_us: percentile(&latencies, 0.99),
        }
    }
}

/// Runs the workload and prints its report; fails when a call failed.
pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let secs = options.secs.unwrap_or(10.0);
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("--secs {secs}: the run needs a positive duration"));
    }
    let warmup = options.warmup_secs;
    if !(warmup >= 0.0 && warmup.is_finite()) {
        return Err(format!("--warmup-secs {warmup}: not a duration"));
    }
    let clients = options.clients();
    let batch = options.batch();
    if clients == 0 || options.keys == 0 {
        return Err("--clients and --keys must be at least 1".to_owned());
    }
    if batch > MAX_BATCH_OPS {
        return Err(format!(
            "--batch {batch}: the server takes {MAX_BATCH_OPS} at most"
        ));
    }
    if options.op == KvOp::Get && batch > 1 {
        return Err("--batch applies to PUTs only".to_owned());
    }
    let binary = kv_binary(options.kv_binary.as_deref())?;
    // Without --replication, raft-kv's own default (streaming).
    let replication = match options.replication {
        Some(crate::options::ReplicationArg::Pipelined) => "pipelined",
        Some(crate::options::ReplicationArg::Streaming) | None => "streaming",
    };
    let settings = ServeSettings {
        snapshot_threshold: options.snapshot_threshold,
        replication,
        worker_threads: options
            .kv_worker_threads
            .unwrap_or_else(shared_machine_worker_threads),
    };
    let mut cluster = KvProcesses::start(&binary, options.dir.as_deref(), &settings)?;
    let result = measure(options, &mut cluster, clients, secs, warmup).await;
    cluster.stop().await;
    let summary = result?;
    print(options, clients, batch, settings.worker_threads, &summary);
    if summary.errors > 0 {
        return Err(format!(
            "{} of {} calls failed (first: {})",
            summary.errors,
            summary.errors + summary.requests,
            summary.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(())
}

/// Waits for the cluster, loads the keys reads need, warms up, then measures.
async fn measure(
    options: &Options,
    cluster: &mut KvProcesses,
    clients: usize,
    secs: f64,
    warmup: f64,
) -> Result<Summary, String> {
    let client = Client::builder(cluster.endpoints())
        .protocol(match options.protocol {
            ProtocolArg::Http2 => Protocol::Http2,
            ProtocolArg::Http1 => Protocol::Http1,
        })
        .deadline(CALL_DEADLINE)
        .build()
        .map_err(|e| e.to_string())?;
    wait_ready(cluster, &client).await?;
    let value = "x".repeat(options.payload());
    if options.op == KvOp::Get {
        preload(&client, options.keys, &value).await?;
    }
    let load = Arc::new(Load {
        client,
        op: options.op,
        batch: options.batch(),
        consistency: client_consistency(options.consistency.first().copied()),
        clients: clients as u64,
        keys: options.keys,
        value,
    });
    if warmup > 0.0 {
        let (tallies, _) = phase(&load, clients, warmup).await?;
        let warm = Summary::new(tallies, Duration::ZERO, 1);
        if warm.errors > 0 {
            eprintln!(
                "raft-bench: {} calls failed during the warm-up (first: {})",
                warm.errors,
                warm.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    let (tallies, elapsed) = phase(&load, clients, secs).await?;
    cluster.check_running()?;
    Ok(Summary::new(tallies, elapsed, load.batch))
}

/// Waits until the cluster applies a write (a leader is elected and the client found it).
async fn wait_ready(cluster: &mut KvProcesses, client: &Client) -> Result<(), String> {
    let started = now();
    let quick = client.with_deadline(Duration::from_secs(1));
    loop {
        cluster.check_running()?;
        match quick.put("bench/ready", "1").await {
            Ok(_) => return Ok(()),
            Err(err) if started.elapsed() > READY_WITHIN => {
                return Err(format!("the cluster did not accept a write: {err}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Writes every key `--op get` reads, in batches.
async fn preload(client: &Client, keys: u64, value: &str) -> Result<(), String> {
    let mut first = 0;
    while first < keys {
        let last = (first + PRELOAD_BATCH).min(keys);
        let batch = (first..last).fold(Batch::new(), |b, n| b.put(key_name(n), value));
        client
            .batch(&batch)
            .await
            .map_err(|e| format!("cannot load the keys: {e}"))?;
        first = last;
    }
    Ok(())
}

/// `clients` tasks running `load` for `secs`; their tallies and the time until the last one
/// finished its last request.
async fn phase(
    load: &Arc<Load>,
    clients: usize,
    secs: f64,
) -> Result<(Vec<Tally>, Duration), String> {
    let started = now();
    let deadline = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients as u64)
        .map(|index| tokio::spawn(client_task(load.clone(), index, deadline)))
        .collect();
    let mut tallies = Vec::with_capacity(clients);
    for task in tasks {
        tallies.push(
            task.await
                .map_err(|e| format!("a client task failed: {e}"))?,
        );
    }
    Ok((tallies, started.elapsed()))
}

/// One closed-loop client until `deadline`.
async fn client_task(load: Arc<Load>, index: u64, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut seq = 0;
    loop {
        let begun = now();
        if begun >= deadline {
            return tally;
        }
        let result = load.request(index, seq).await;
        seq += 1;
        match result {
            Ok(()) => {
                let micros = begun.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Err(err) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(err);
                // No tight loop on a call that fails at once.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// The client's consistency for `level` (linearizable when none is given).
fn client_consistency(level: Option<Consistency>) -> ClientConsistency {
    match level {
        None | Some(Consistency::Linearizable) => ClientConsistency::Linearizable,
        Some(Consistency::Lease) => ClientConsistency::Lease,
        Some(Consistency::Follower) => ClientConsistency::Follower,
        Some(Consistency::Stale) => ClientConsistency::Stale,
    }
}

/// The report, ending with the `bench:` line.
fn print(options: &Options, clients: usize, batch: usize, threads: u16, summary: &Summary) {
    let op = match (options.op, batch) {
        (KvOp::Get, _) => format!(
            "get-{}",
            client_consistency(options.consistency.first().copied()).as_str()
        ),
        (KvOp::Put, 1) => "put".to_owned(),
        (KvOp::Put, n) => format!("batch-put-{n}"),
    };
    let protocol = options.protocol.name();
    println!(
        "workload=kv nodes={NODES} (raft-kv serve processes, {threads} worker thread(s) each, durable logs) protocol={protocol} op={op} value_bytes={} keys={} warmup={}s",
        options.payload(),
        options.keys,
        options.warmup_secs
    );
    println!(
        "  requests/s       {:.0}",
        ratio(summary.requests as f64, summary.secs)
    );
    let ops_per_sec = ratio(summary.ops as f64, summary.secs);
    println!("  ops/s            {ops_per_sec:.0}");
    println!(
        "  latency per request p50/p90/p99 (us)  {} / {} / {}",
        summary.p50_us, summary.p90_us, summary.p99_us
    );
    match &summary.first_error {
        Some(first) => println!("  ERRORS           {} (first: {first})", summary.errors),
        None => println!("  errors           0"),
    }
    println!(
        "bench: workload=kv nodes={NODES} clients={clients} ops={} secs={:.3} ops_per_sec={ops_per_sec:.0} p50_us={} p99_us={} protocol={protocol} op={op} errors={}",
        summary.ops, summary.secs, summary.p50_us, summary.p99_us, summary.errors
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_interleave_over_the_key_space() {
        let keys: Vec<u64> = (0..4).map(|seq| key_number(1, seq, 3, 10)).collect();
        assert_eq!(keys, [1, 4, 7, 0]);
        assert_eq!(key_number(5, 0, 0, 0), 0);
        assert_eq!(key_name(42), "bench/00000042");
    }

    #[test]
    fn a_batch_counts_its_operations_and_errors_are_summed() {
        let tallies = vec![
            Tally {
                latencies_us: vec![30, 10, 20],
                errors: 0,
                first_error: None,
            },
            Tally {
                latencies_us: vec![40],
                errors: 2,
                first_error: Some("no leader".to_owned()),
            },
        ];
        let summary = Summary::new(tallies, Duration::from_secs(2), 100);
        assert_eq!((summary.requests, summary.ops), (4, 400));
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.first_error.as_deref(), Some("no leader"));
        assert_eq!((summary.p50_us, summary.p99_us), (30, 40));
    }
}
