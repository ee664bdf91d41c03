//! The `raft-kv` command: `local` (3 nodes in one process) and `serve` (one node).
#![forbid(unsafe_code)]
// A command-line tool: the node URLs go to stdout for the user (and scripts); logs go to stderr.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raft_core::NodeId;
use raft_kv::server::{KvNode, NodeOptions};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "raft-kv",
    version,
    about = "A replicated key-value server on Raft"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a cluster of --nodes nodes (1, 3 or 5) in this process on loopback, with durable
    /// data under --data-dir.
    Local {
        /// How many nodes: 1, 3 or 5.
        #[arg(long, default_value_t = 3, value_parser = parse_local_nodes)]
        nodes: u64,
        /// Where the nodes keep their data (one directory per node).
        #[arg(long, default_value = "./raft-kv-data")]
        data_dir: PathBuf,
        /// The first node's port; the others take the next ones.
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
        /// Log size in bytes that triggers a snapshot (0: never).
        #[arg(long, default_value_t = 64 << 20)]
        snapshot_threshold: u64,
        /// Serve `?consistency=lease` reads from the leader's lease (no round trip).
        #[arg(long)]
        lease_reads: bool,
    },
    /// Runs one node of a cluster.
    Serve {
        /// This node's id (a positive number, unique in the cluster).
        #[arg(long)]
        id: u64,
        /// The address to listen on, HOST:PORT.
        #[arg(long)]
        listen: String,
        /// The address others reach this node at, if not the listen address.
        #[arg(long)]
        advertise: Option<String>,
        /// Another member, ID=HOST:PORT (repeat for each), when creating a cluster.
        #[arg(long = "peer", value_parser = parse_peer, conflicts_with = "join")]
        peers: Vec<(NodeId, String)>,
        /// Join the cluster of the member at this URL (http://HOST:PORT) as a learner; start
        /// with an empty --data-dir, then promote it with POST /admin/members/promote.
        #[arg(long)]
        join: Option<String>,
        /// Where this node keeps its log, hard state and snapshots.
        #[arg(long)]
        data_dir: PathBuf,
        /// Log size in bytes that triggers a snapshot (0: never).
        #[arg(long, default_value_t = 64 << 20)]
        snapshot_threshold: u64,
        /// The cluster id peers must present.
        #[arg(long, default_value = "raft-kv")]
        cluster_id: String,
        /// A secret peers must present (or set RAFT_KV_SECRET).
        #[arg(long, env = "RAFT_KV_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Serve `?consistency=lease` reads from the leader's lease, with no round trip; it
        /// trusts the nodes' clocks to drift apart by less than 10% of an election timeout.
        /// Set it on every node alike (otherwise those reads use ReadIndex).
        #[arg(long)]
        lease_reads: bool,
    },
}

fn parse_local_nodes(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n @ (1 | 3 | 5)) => Ok(n),
        _ => Err(format!("{text}: use 1, 3 or 5")),
    }
}

fn parse_peer(text: &str) -> Result<(NodeId, String), String> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| format!("{text}: expected ID=HOST:PORT"))?;
    let id: u64 = id
        .parse()
        .map_err(|_| format!("{text}: the id must be a number"))?;
    if address.is_empty() {
        return Err(format!("{text}: the address is empty"));
    }
    Ok((NodeId(id), address.to_owned()))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("raft-kv: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), raft_kv::Error> {
    let metrics = raft_http::metrics::install_prometheus_recorder()?;
    let _upkeep =
        raft_http::metrics::spawn_upkeep(metrics.clone(), std::time::Duration::from_secs(5));
    let nodes = match command {
        Command::Local {
            nodes: count,
            data_dir,
            base_port,
            snapshot_threshold,
            lease_reads,
        } => {
            let ids: Vec<u64> = (1..=count).collect();
            let address = |id: u64| format!("127.0.0.1:{}", u32::from(base_port) + id as u32 - 1);
            let mut nodes = Vec::new();
            for &id in &ids {
                let mut options =
                    NodeOptions::new(NodeId(id), address(id), data_dir.join(format!("node-{id}")));
                options.peers = ids
                    .iter()
                    .filter(|&&peer| peer != id)
                    .map(|&peer| (NodeId(peer), address(peer)))
                    .collect();
                options.snapshot_threshold = snapshot_threshold;
                options.raft.raft.lease_reads = lease_reads;
                options.metrics = Some(metrics.clone());
                match KvNode::start(options).await {
                    Ok(node) => nodes.push(node),
                    Err(error) => {
                        // Stop the ones already running before reporting.
                        for node in nodes {
                            node.shutdown().await;
                        }
                        return Err(error);
                    }
                }
            }
            nodes
        }
        Command::Serve {
            id,
            listen,
            advertise,
            peers,
            join,
            data_dir,
            snapshot_threshold,
            cluster_id,
            secret,
            lease_reads,
        } => {
            let mut options = NodeOptions::new(NodeId(id), listen, data_dir);
            options.advertise = advertise;
            options.peers = peers;
            options.join = join;
            options.snapshot_threshold = snapshot_threshold;
            options.cluster_id = cluster_id;
            options.secret = secret;
            options.raft.raft.lease_reads = lease_reads;
            options.metrics = Some(metrics.clone());
            vec![KvNode::start(options).await?]
        }
    };
    for node in &nodes {
        println!("node {} serving at {}", node.id(), node.url());
    }
    println!("ready; Ctrl-C to stop");
    wait_for_signal().await;
    println!("stopping (Ctrl-C again to quit at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        std::process::exit(130);
    });
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
