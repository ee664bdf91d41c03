//! The command line: [`Options`] and the choices its flags take ([`Workload`], [`Mode`],
//! [`PacingArg`], [`ReplicationArg`], [`Remove`], [`Consistency`], [`TransportArg`], [`ProtocolArg`], [`KvOp`]). Plain data parsed by clap; the workloads, the harness and the
//! report read it, and it depends on none of them.

use clap::{Parser, ValueEnum};

/// Command-line options. Flags a workload does not use are ignored by it; those with a
/// workload-dependent default are `Option`s read through the methods below.
#[derive(Debug, Parser)]
#[command(name = "raft-bench", about = "Benchmarks of the raft workspace")]
pub(crate) struct Options {
    /// The workload to run.
    pub(crate) workload: Workload,
    /// Concurrent clients, each with one request in flight (default 256; `catch-up`: 16
    /// loaders; `membership-change`: 64). `reads` takes a list, one set of trials each
    /// (default 1,64,256); the other workloads take one number.
    #[arg(long, value_delimiter = ',')]
    pub(crate) clients: Vec<usize>,
    /// Total operations (ignored when --secs is given).
    #[arg(long, default_value_t = 500_000)]
    pub(crate) ops: u64,
    /// Run for this many seconds instead of a number of operations (`peer-table`, `reads`:
    /// seconds of one trial, default 2; `kv`: the measured seconds, default 10).
    #[arg(long)]
    pub(crate) secs: Option<f64>,
    /// Payload bytes per command (default 256; `catch-up`: 4096); `kv`: bytes of each value.
    #[arg(long, visible_alias = "value-bytes")]
    pub(crate) payload: Option<usize>,
    /// How `append` returns.
    #[arg(long, value_enum, default_value_t = Mode::Blocking)]
    pub(crate) mode: Mode,
    /// When the leader sends entries.
    #[arg(long, value_enum, default_value_t = PacingArg::Eager)]
    pub(crate) pacing: PacingArg,
    /// How entries reach followers (`Config::replication`): requests, or one stream per
    /// follower (`mem`, `http`, `durable`: default pipelined, the library's default; `kv`:
    /// default raft-kv's own, streaming).
    #[arg(long, value_enum)]
    pub(crate) replication: Option<ReplicationArg>,
    /// `http`, `durable`: also measure how long followers go without a message from the
    /// leader (see `gaps.rs`; it costs a lock per request and a relay per streamed batch, so
    /// throughput runs leave it off).
    #[arg(long)]
    pub(crate) gaps: bool,
    /// AppendEntries with entries in flight to one follower at most
    /// (`Config::max_inflight_requests`; default: the library's).
    #[arg(long)]
    pub(crate) inflight: Option<usize>,
    /// Requests in flight to one follower before only full batches go
    /// (`Config::max_inflight_partial_requests`; default: the library's).
    #[arg(long)]
    pub(crate) inflight_partial: Option<usize>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) server_workers: usize,
    /// `http-ceiling`: the address to serve on.
    #[arg(long, default_value = "127.0.0.1:7200")]
    pub(crate) listen: String,
    /// `http`, `durable`: mutual TLS between the nodes (rustls; a CA and node certificates
    /// made at start), as a secure deployment runs.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Where workloads with a file log create their (temporary) data directory.
    #[arg(long)]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// Log size in bytes at which a node takes a snapshot and compacts (0: never). Sizes take
    /// the suffixes K, M, G (powers of 1024, with or without "iB").
    #[arg(long, default_value_t = 64 << 20, value_parser = parse_bytes)]
    pub(crate) snapshot_threshold: u64,
    /// `catch-up`: bytes of commands written before the learner joins.
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub(crate) log_bytes: u64,
    /// `catch-up`: commands per `append` call while loading the log (default 64); `kv`: PUTs
    /// per request, through the client's batch API (default 1: single PUTs, no batch).
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// `catch-up`: no snapshots (the threshold is ignored), so the learner catches up by log
    /// replication alone.
    #[arg(long)]
    pub(crate) no_snapshots: bool,
    /// `catch-up`, `membership-change`: the state machine holds at most this many bytes
    /// (commands overwrite older ones); by default every command adds its bytes to the state,
    /// as if each wrote a new key, so a snapshot is as large as everything written.
    #[arg(long, value_parser = parse_bytes)]
    pub(crate) state_bytes: Option<u64>,
    /// `catch-up`, `membership-change`: entries a learner may lag behind the leader's last
    /// entry and count as caught up (default 0 for `catch-up`, 256 for `membership-change`,
    /// where writes keep coming).
    #[arg(long)]
    pub(crate) max_lag: Option<u64>,
    /// `membership-change`: seconds of each steady phase (before, between and after the
    /// changes).
    #[arg(long, default_value_t = 3.0)]
    pub(crate) phase_secs: f64,
    /// `membership-change`: the voter removed by the 4 -> 3 change.
    #[arg(long, value_enum, default_value_t = Remove::Leader)]
    pub(crate) remove: Remove,
    /// `peer-table`: numbers of reader tasks, one set of trials each.
    #[arg(long, value_delimiter = ',', default_values_t = [8, 64])]
    pub(crate) readers: Vec<usize>,
    /// `peer-table`, `reads`: rounds of trials; each round runs every candidate once (both
    /// tables; every `--consistency`), changing which goes first from round to round.
    #[arg(long, visible_alias = "repeats", default_value_t = 3)]
    pub(crate) rounds: usize,
    /// `peer-table`: lookups a reader does between two yields to the scheduler.
    #[arg(long, default_value_t = 1)]
    pub(crate) lookups_per_yield: usize,
    /// `peer-table`: the writer inserts or removes a peer every this many microseconds;
    /// `reads`: the writer appends the next value of its counter to the leader, one append per
    /// this many microseconds at most (0: no writer).
    #[arg(long, default_value_t = 1000)]
    pub(crate) write_interval_us: u64,
    /// `reads`: the consistency levels measured, in this order in the first round.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [
            Consistency::Linearizable,
            Consistency::Lease,
            Consistency::Follower,
            Consistency::Stale,
        ]
    )]
    pub(crate) consistency: Vec<Consistency>,
    /// `reads`: the transport between the nodes.
    #[arg(long, value_enum, default_value_t = TransportArg::Mem)]
    pub(crate) transport: TransportArg,
    /// `kv`: the HTTP version between the client and the servers.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Http2)]
    pub(crate) protocol: ProtocolArg,
    /// `kv`: what each request does (`get` reads at the first `--consistency`, linearizable
    /// by default, keys written before the warm-up).
    #[arg(long, value_enum, default_value_t = KvOp::Put)]
    pub(crate) op: KvOp,
    /// `kv`: the keys written or read, spread over the clients.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) keys: u64,
    /// `kv`: seconds of unmeasured load before the measured `--secs` (10 by default).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup_secs: f64,
    /// `kv`: the `raft-kv` binary to spawn (default: `raft-kv` next to this program, as
    /// `cargo build --release -p raft-kv` leaves it in target/release).
    #[arg(long)]
    pub(crate) kv_binary: Option<std::path::PathBuf>,
    /// `kv`: `--worker-threads` of each raft-kv process (default: the machine's cores divided
    /// among the 3 nodes, at least 1, as nodes sharing a machine should be run).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) kv_worker_threads: Option<u16>,
}

impl Options {
    /// `--clients` (its first number), or the workload's default.
    pub(crate) fn clients(&self) -> usize {
        self.clients
            .first()
            .copied()
            .unwrap_or(match self.workload {
                Workload::CatchUp => 16,
                Workload::MembershipChange => 64,
                _ => 256,
            })
    }

    /// Every number of `--clients`, or `reads`' default list.
    pub(crate) fn client_counts(&self) -> Vec<usize> {
        if self.clients.is_empty() && self.workload == Workload::Reads {
            vec![1, 64, 256]
        } else if self.clients.is_empty() {
            vec![self.clients()]
        } else {
            self.clients.clone()
        }
    }

    /// `--payload`, or the workload's default.
    pub(crate) fn payload(&self) -> usize {
        self.payload.unwrap_or(match self.workload {
            Workload::CatchUp => 4096,
            _ => 256,
        })
    }

    /// `--batch`, or the workload's default (at least 1).
    pub(crate) fn batch(&self) -> usize {
        self.batch
            .unwrap_or(match self.workload {
                Workload::CatchUp => 64,
                _ => 1,
            })
            .max(1)
    }

    /// `--max-lag`, or the workload's default.
    pub(crate) fn max_lag(&self) -> u64 {
        self.max_lag.unwrap_or(match self.workload {
            Workload::MembershipChange => 256,
            _ => 0,
        })
    }
}

/// The benchmark workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// 3 nodes in one process: in-memory log, in-process transport, no-op state machine.
    Mem,
    /// The file log alone: writers append one entry and wait until it is durable.
    Fslog,
    /// 3 nodes over loopback raft-http: in-memory log, no-op state machine.
    Http,
    /// 3 nodes over loopback raft-http with file logs (fsync): the full durable path.
    Durable,
    /// A durable 3-node cluster loaded with `--log-bytes`, then the time an empty learner
    /// takes to catch up (through a snapshot, or the log alone with `--no-snapshots`).
    CatchUp,
    /// Throughput, latency and the longest write stall before, during and after growing a
    /// durable cluster from 3 to 4 voters and shrinking it back (`--remove`).
    MembershipChange,
    /// The transport's peer table: `RwLock<HashMap>` against `DashMap` lookups under
    /// contention (`--readers`, `--write-interval-us`).
    PeerTable,
    /// Reads at each `--consistency` level, alternating, over a 3-node cluster (`--transport`)
    /// while a writer appends a counter: ops/s and latency, medians of `--rounds`.
    Reads,
    /// The product: 3 `raft-kv serve` processes on loopback with durable logs, driven over
    /// HTTP by raft-kv-client (`--protocol`, `--op`, `--batch`, `--secs`).
    Kv,
    /// raft-http's server answering `204` to every request and doing nothing else, on
    /// `--listen` for `--secs` (30): the HTTP ceiling of this machine, for an outside load
    /// generator (wrk, h2load) to measure.
    HttpCeiling,
}

/// `append`'s return mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Resolves with the commit result.
    Blocking,
    /// Returns the position at once; the client then waits for the result.
    AsyncHandler,
    /// Resolves with the pre-commit result (cluster-wide async replication).
    AsyncReplication,
}

/// How entries reach followers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReplicationArg {
    /// AppendEntries requests, pipelined (the library's default).
    Pipelined,
    /// One long-lived stream per follower, opened by the follower.
    Streaming,
}

/// Replication pacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PacingArg {
    /// Send as soon as the window has room.
    Eager,
    /// Send on each follower's heartbeat timer.
    Heartbeat,
}

/// A consistency level of `reads`: which call serves the read, and which nodes take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Consistency {
    /// `Node::linearizable_read` on the leader: ReadIndex, one heartbeat round to a quorum.
    Linearizable,
    /// `Node::lease_read` on the leader (`Config::lease_reads` on every node): served from the
    /// leader's lease with no round trip while it holds.
    Lease,
    /// `Node::follower_read` on the followers: each asks the leader for a read index and
    /// waits until it applied it.
    Follower,
    /// The state machine of any node read as it is, with no protocol: possibly stale.
    Stale,
}

impl Consistency {
    /// The name printed in reports (the flag's value).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Follower => "follower",
            Consistency::Stale => "stale",
        }
    }
}

/// The transport between the nodes of `reads`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    /// In-process calls (`MemNetwork`), as the `mem` workload.
    Mem,
    /// Loopback raft-http (HTTP/2, MessagePack), as the `http` workload (`--tls` applies).
    Http,
}

/// The HTTP version of the `kv` workload's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProtocolArg {
    /// HTTP/2: one multiplexed connection per node carries every client's requests.
    Http2,
    /// HTTP/1.1: a keep-alive connection per request in flight.
    Http1,
}

impl ProtocolArg {
    /// The name printed in reports (the flag's value).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ProtocolArg::Http2 => "http2",
            ProtocolArg::Http1 => "http1",
        }
    }
}

/// What a request of the `kv` workload does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum KvOp {
    /// `PUT /kv/{key}` (or `--batch` PUTs in one `POST /kv`).
    Put,
    /// `GET /kv/{key}` at the first `--consistency`.
    Get,
}

/// Which voter `membership-change` removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Remove {
    /// The leader removes itself (it leads until the change commits, then hands over).
    Leader,
    /// A follower (one of the first three nodes) is removed.
    Follower,
}

/// A byte count: digits with an optional suffix K, M or G (powers of 1024; "KiB", "KB" and
/// "k" are read the same).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size suffix {other:?} (use K, M or G)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert!(parse_bytes("1TiB").is_err());
        assert!(parse_bytes("").is_err());
    }
}
