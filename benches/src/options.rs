//! The command line: [`Options`] and the choices its flags take ([`Workload`], [`Mode`],
//! [`PacingArg`]). Plain data parsed by clap; the workloads, the harness and the report read
//! it, and it depends on none of them.

use clap::{Parser, ValueEnum};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "raft-bench", about = "Benchmarks of the raft workspace")]
pub(crate) struct Options {
    /// The workload to run.
    pub(crate) workload: Workload,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 256)]
    pub(crate) clients: usize,
    /// Total operations (ignored when --secs is given).
    #[arg(long, default_value_t = 500_000)]
    pub(crate) ops: u64,
    /// Run for this many seconds instead of a number of operations.
    #[arg(long)]
    pub(crate) secs: Option<f64>,
    /// Payload bytes per command.
    #[arg(long, default_value_t = 256)]
    pub(crate) payload: usize,
    /// How `append` returns.
    #[arg(long, value_enum, default_value_t = Mode::Blocking)]
    pub(crate) mode: Mode,
    /// When the leader sends entries.
    #[arg(long, value_enum, default_value_t = PacingArg::Eager)]
    pub(crate) pacing: PacingArg,
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
    /// Where workloads with a file log create their (temporary) data directory.
    #[arg(long)]
    pub(crate) dir: Option<std::path::PathBuf>,
    /// Log size in bytes at which a node takes a snapshot and compacts (0: never).
    #[arg(long, default_value_t = 64 << 20)]
    pub(crate) snapshot_threshold: u64,
}

/// The benchmark workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// 3 nodes in one process: in-memory log, in-process transport, no-op state machine.
    Mem,
    /// The file log alone: writers append one entry each and wait until it is durable.
    Fslog,
    /// 3 nodes over loopback raft-http: in-memory log, no-op state machine.
    Http,
    /// 3 nodes over loopback raft-http with file logs (fsync): the full durable path.
    Durable,
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

/// Replication pacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PacingArg {
    /// Send as soon as the window has room.
    Eager,
    /// Send on each follower's heartbeat timer.
    Heartbeat,
}
