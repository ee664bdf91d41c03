//! raft-bench: throughput and latency of the workspace's Raft, one workload per run.
//!
//! Workloads: `mem` (3 nodes in one process, in-memory log, in-process transport, no-op state
//! machine), `http` (the same over loopback raft-http), `durable` (http with raft-storage-fs
//! logs and fsync) and `fslog` (raft-storage-fs alone: appends/s, fsyncs/s, entries per fsync
//! and the durable latency). The last line printed is the `bench:` line (ARCHITECTURE.md, "Command lines").
//! Performance claims live here, never in tests.
#![forbid(unsafe_code)]
// A command-line tool: its report goes to stdout.
#![allow(clippy::print_stdout)]

mod fslog;
mod harness;
mod http;
mod mem;
mod options;
mod report;

use clap::Parser;

use crate::options::{Options, Workload};

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.server_workers.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("raft-bench: cannot start tokio: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match options.workload {
        Workload::Mem => runtime
            .block_on(mem::run(&options))
            .map_err(|err| err.to_string()),
        Workload::Fslog => runtime.block_on(fslog::run(&options)),
        Workload::Http => runtime
            .block_on(http::run(&options))
            .map_err(|err| err.to_string()),
        Workload::Durable => runtime
            .block_on(http::run_durable(&options))
            .map_err(|err| err.to_string()),
    };
    match result {
        Ok(report) => {
            report.print(&options);
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("raft-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
