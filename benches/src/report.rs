//! Latency percentiles, peak memory and the printed report.

use std::time::Duration;

use crate::options::Options;

/// What a run measured.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) nodes: usize,
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// Client latencies in microseconds, unsorted.
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) append_requests: u64,
    pub(crate) append_entries: u64,
    pub(crate) max_inflight: u64,
    /// For workloads with a file log.
    pub(crate) storage: Option<StorageFigures>,
    /// The largest `LogStore::byte_count` of any node seen during the run.
    pub(crate) peak_log_bytes: Option<u64>,
    /// The highest index any node's latest snapshot covers at the end.
    pub(crate) last_snapshot_index: Option<u64>,
    /// Microseconds between messages from the leader (AppendEntries requests, streamed
    /// batches) arriving at a follower (`http`, `durable`; see `gaps.rs`), unsorted.
    pub(crate) request_gaps_us: Vec<u32>,
}

/// What a file log did during a run.
#[derive(Debug, Default)]
pub(crate) struct StorageFigures {
    pub(crate) fsyncs: u64,
    pub(crate) entries: u64,
}

impl Report {
    pub(crate) fn print(mut self, options: &Options) {
        self.latencies_us.sort_unstable();
        let secs = self.elapsed.as_secs_f64();
        let ops_per_sec = ratio(self.ops as f64, secs);
        let p50 = percentile(&self.latencies_us, 0.50);
        let p90 = percentile(&self.latencies_us, 0.90);
        let p99 = percentile(&self.latencies_us, 0.99);
        let per_request = ratio(self.append_entries as f64, self.append_requests as f64);
        println!(
            "workload={:?} mode={:?} pacing={:?} payload={} workers={} tls={}",
            options.workload,
            options.mode,
            options.pacing,
            options.payload(),
            options.server_workers,
            if options.tls { "on" } else { "off" }
        );
        println!("  ops/s            {ops_per_sec:.0}");
        println!("  latency p50/p90/p99 (us)  {p50} / {p90} / {p99}");
        if self.nodes > 1 {
            println!(
                "  entries per AppendEntries  {per_request:.1} ({} requests with entries)",
                self.append_requests
            );
            println!(
                "  max requests in flight to one peer  {}",
                self.max_inflight
            );
        }
        if let Some(storage) = &self.storage {
            let per_fsync = ratio(storage.entries as f64, storage.fsyncs as f64);
            println!(
                "  fsyncs/s         {:.0}",
                ratio(storage.fsyncs as f64, secs)
            );
            println!("  entries per fsync  {per_fsync:.1}");
        }
        if let Some(bytes) = self.peak_log_bytes {
            let threshold = match options.snapshot_threshold {
                0 => "off".to_owned(),
                t => format!("{:.1} MiB", t as f64 / (1024.0 * 1024.0)),
            };
            println!(
                "  peak log bytes of a node (MiB)  {:.1} (snapshot threshold {threshold}, last snapshot at index {})",
                bytes as f64 / (1024.0 * 1024.0),
                self.last_snapshot_index.unwrap_or(0)
            );
        }
        println!("  peak RSS (MiB)   {:.1}", peak_rss_kib() as f64 / 1024.0);
        let mut gaps = String::new();
        if !self.request_gaps_us.is_empty() {
            self.request_gaps_us.sort_unstable();
            let p99 = percentile(&self.request_gaps_us, 0.99);
            let max = self.request_gaps_us.last().copied().unwrap_or(0);
            println!(
                "  gap between messages from the leader at a follower p50/p99/max (us)  {} / {p99} / {max}",
                percentile(&self.request_gaps_us, 0.50)
            );
            gaps = format!(
                " replication={:?} gap_p99_us={p99} gap_max_us={max}",
                options
                    .replication
                    .unwrap_or(crate::options::ReplicationArg::Pipelined)
            )
            .to_lowercase();
        }
        println!(
            "bench: workload={} nodes={} clients={} ops={} secs={secs:.3} ops_per_sec={ops_per_sec:.0} p50_us={p50} p99_us={p99}{gaps}",
            format!("{:?}", options.workload).to_lowercase(),
            self.nodes,
            options.clients(),
            self.ops,
        );
    }
}

/// The value at `quantile` (0..=1) of `sorted`, 0 when empty.
pub(crate) fn percentile(sorted: &[u32], quantile: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * quantile).round() as usize;
    sorted.get(rank).copied().unwrap_or(0)
}

/// The process's peak resident set (VmHWM) in KiB, 0 where /proc is missing.
pub(crate) fn peak_rss_kib() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes in MiB.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `numerator / denominator`, or 0 when there is nothing to divide by (an empty run).
pub(crate) fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}
