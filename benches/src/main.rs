//! raft-bench: throughput and latency of the workspace's Raft, one workload per run.
//!
//! Workloads: `mem` (3 nodes in one process, in-memory log, in-process transport, no-op state
//! machine), `http` (the same over loopback raft-http), `durable` (http with raft-storage-fs
//! logs and fsync), `fslog` (raft-storage-fs alone: appends/s, fsyncs/s, entries per fsync
//! and the durable latency), `catch-up` (the time an empty learner takes to catch up with a
//! loaded durable cluster), `membership-change` (writes while a durable cluster grows from 3
//! to 4 voters and shrinks back) and `peer-table` (the transport's peer table under
//! contention: `RwLock<HashMap>` against `DashMap`) and `reads` (the throughput and latency of
//! linearizable, lease, follower and stale reads, alternating) and `kv` (the product: 3
//! `raft-kv serve` processes with durable logs driven over HTTP by raft-kv-client) and
//! `http-ceiling` (raft-http's server doing nothing, for an outside load generator: the
//! HTTP ceiling of the machine). The last line printed is the `bench:`
//! line (ARCHITECTURE.md, "Command lines"). Performance claims live here, never in tests.
//!
//! Ctrl-C (or SIGTERM) ends a run early, and its temporary data directories are removed on the way out.
#![forbid(unsafe_code)]
// A command-line tool: its report goes to stdout.
#![allow(clippy::print_stdout)]

mod catch_up;
mod cluster;
mod fslog;
mod gaps;
mod harness;
mod http;
mod http_ceiling;
mod kv;
mod kv_cluster;
mod mem;
mod membership_change;
mod options;
mod peer_table;
mod read_report;
mod reads;
mod report;
mod tls;

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
    // Dropping the run's future on Ctrl-C or SIGTERM drops its temporary directories, which removes them.
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(&options) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
            () = terminated() => Err("terminated".to_owned()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("raft-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (`timeout`, `kill`), never where there is no such signal.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Runs the chosen workload and prints its report.
async fn run(options: &Options) -> Result<(), String> {
    if options.clients.len() > 1 && options.workload != Workload::Reads {
        return Err("--clients takes one number for this workload".to_owned());
    }
    let report = match options.workload {
        Workload::Mem => mem::run(options).await.map_err(|err| err.to_string())?,
        Workload::Fslog => fslog::run(options).await?,
        Workload::Http => http::run(options).await.map_err(|err| err.to_string())?,
        Workload::Durable => http::run_durable(options)
            .await
            .map_err(|err| err.to_string())?,
        Workload::CatchUp => return catch_up::run(options).await.map_err(|e| e.to_string()),
        Workload::MembershipChange => {
            return membership_change::run(options)
                .await
                .map_err(|e| e.to_string());
        }
        Workload::PeerTable => return peer_table::run(options).await,
        Workload::Reads => return reads::run(options).await,
        Workload::Kv => return kv::run(options).await,
        Workload::HttpCeiling => return http_ceiling::run(options).await,
    };
    report.print(options);
    Ok(())
}
