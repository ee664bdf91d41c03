//! The `raft-kv` command: `local` (3 nodes in one process) and `serve` (one node).
#![forbid(unsafe_code)]
// A command-line tool: the node URLs go to stdout for the user (and scripts); logs go to stderr.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use raft_core::{NodeId, Replication};
use raft_http::TlsReloader;
use raft_kv::server::{KvNode, NodeOptions};
use raft_kv::tls::TlsOptions;
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
    /// Threads that run the node's tasks (default: one per core; with 1, tokio's current-thread
    /// scheduler, which hands no task between threads). When several nodes share a machine,
    /// divide its cores among them: threads beyond the cores only wake each other.
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
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
        /// How entries reach followers.
        #[arg(long, value_enum, default_value_t = ReplicationArg::Streaming)]
        replication: ReplicationArg,
    },
    /// Runs one node of a cluster.
    Serve(Box<ServeArgs>),
}

/// The flags of `serve`.
#[derive(Args, Debug)]
struct ServeArgs {
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
    /// Join the cluster of the member at this URL (http://HOST:PORT, with TLS https://HOST:PORT)
    /// as a learner; start with an empty --data-dir, then promote it with POST
    /// /admin/members/promote.
    #[arg(long)]
    join: Option<String>,
    /// Where this node keeps its log, hard state and snapshots.
    #[arg(long)]
    data_dir: PathBuf,
    /// Log size in bytes that triggers a snapshot (0: never).
    #[arg(long, default_value_t = 64 << 20)]
    snapshot_threshold: u64,
    /// Create log segments as sparse files instead of writing zeros into them first. The zeros
    /// (the default) let each fdatasync on journaled ext4 or XFS skip metadata; where that
    /// gains nothing (ext4 without a journal, tmpfs) this saves writing every segment twice.
    /// Safe either way.
    #[arg(long)]
    no_zero_fill: bool,
    /// The cluster id peers must present.
    #[arg(long, default_value = "raft-kv")]
    cluster_id: String,
    /// A secret peers must present (or set RAFT_KV_SECRET); it also guards the admin routes
    /// when there is no --api-token.
    #[arg(long, env = "RAFT_KV_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Serve `?consistency=lease` reads from the leader's lease, with no round trip; it
    /// trusts the nodes' clocks to drift apart by less than 10% of an election timeout.
    /// Set it on every node alike (otherwise those reads use ReadIndex).
    #[arg(long)]
    lease_reads: bool,
    /// How entries reach followers: one long-lived stream per follower (heartbeats apart), or
    /// pipelined AppendEntries requests. Set it on every node alike.
    #[arg(long, value_enum, default_value_t = ReplicationArg::Streaming)]
    replication: ReplicationArg,
    #[command(flatten)]
    tls: TlsArgs,
    /// A bearer token that writes and the admin routes of the client API must carry
    /// (Authorization: Bearer TOKEN; or set RAFT_KV_API_TOKEN); reads stay open.
    #[arg(long, env = "RAFT_KV_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Serve on an address others can reach (not loopback) without mutual TLS or a secret,
    /// which is refused otherwise: anyone who reaches the port can then send Raft messages.
    #[arg(long)]
    insecure: bool,
}

/// `--replication`: raft-core's replication modes.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReplicationArg {
    /// AppendEntries requests, many in flight per follower.
    Pipelined,
    /// One entry stream per follower, opened by the follower; heartbeats as requests.
    Streaming,
}

impl From<ReplicationArg> for Replication {
    fn from(arg: ReplicationArg) -> Replication {
        match arg {
            ReplicationArg::Pipelined => Replication::Pipelined,
            ReplicationArg::Streaming => Replication::Streaming,
        }
    }
}

/// The TLS flags of `serve`.
#[derive(Args, Debug)]
struct TlsArgs {
    /// The peers' CA certificate(s), PEM: mutual TLS between the peers (with --tls-cert and
    /// --tls-key), and TLS for the client API on the same port.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// This node's certificate chain, PEM, signed by the CA; it must carry the DNS name
    /// node-<id>.<cluster-id> and the serverAuth and clientAuth usages.
    #[arg(long, value_name = "FILE", requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// This node's private key, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_ca")]
    tls_key: Option<PathBuf>,
    /// A second certificate chain, PEM, for API clients that trust another CA: presented to
    /// clients that do not ask for node-<id>.<cluster-id> by SNI.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "client_tls_key"])]
    client_tls_cert: Option<PathBuf>,
    /// The private key of --client-tls-cert, PEM.
    #[arg(long, value_name = "FILE", requires = "client_tls_cert")]
    client_tls_key: Option<PathBuf>,
    /// Check the TLS files every this many seconds and reload them when they change (0: only
    /// on SIGHUP, which always reloads them).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    tls_reload_secs: u64,
}

impl TlsArgs {
    /// The TLS options, when TLS is configured.
    fn options(&self) -> Option<TlsOptions> {
        let (Some(ca), Some(certificate), Some(key)) =
            (&self.tls_ca, &self.tls_cert, &self.tls_key)
        else {
            return None;
        };
        let mut options = TlsOptions::new(ca, certificate, key);
        if let (Some(certificate), Some(key)) = (&self.client_tls_cert, &self.client_tls_key) {
            options = options.with_client_certificate(certificate, key);
        }
        options.reload_interval =
            (self.tls_reload_secs > 0).then(|| Duration::from_secs(self.tls_reload_secs));
        Some(options)
    }
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let mut builder = match cli.worker_threads {
        // One thread: the current-thread scheduler, which hands no task between threads.
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(threads));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("raft-kv: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
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
    let local = matches!(command, Command::Local { .. });
    let nodes = match command {
        Command::Local {
            nodes: count,
            data_dir,
            base_port,
            snapshot_threshold,
            lease_reads,
            replication,
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
                options.raft.raft.replication = replication.into();
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
        Command::Serve(args) => {
            let args = *args;
            let mut options = NodeOptions::new(NodeId(args.id), args.listen, args.data_dir);
            options.advertise = args.advertise;
            options.peers = args.peers;
            options.join = args.join;
            options.snapshot_threshold = args.snapshot_threshold;
            options.zero_fill_segments = !args.no_zero_fill;
            options.cluster_id = args.cluster_id;
            options.secret = args.secret;
            options.raft.raft.lease_reads = args.lease_reads;
            options.raft.raft.replication = args.replication.into();
            options.tls = args.tls.options();
            options.api_token = args.api_token;
            options.insecure = args.insecure;
            options.metrics = Some(metrics.clone());
            vec![KvNode::start(options).await?]
        }
    };
    let reloaders: Vec<TlsReloader> = nodes
        .iter()
        .filter_map(|node| node.tls_reloader().cloned())
        .collect();
    if !reloaders.is_empty() {
        reload_on_hangup(reloaders);
    }
    for node in &nodes {
        println!("node {} serving at {}", node.id(), node.url());
    }
    // A local cluster is ready once every node knows its leader: a write right after `ready`
    // is then applied (or redirected), not refused for want of a leader.
    let interrupted = local
        && tokio::select! {
            () = wait_for_leaders(&nodes) => false,
            () = wait_for_signal() => true,
        };
    if !interrupted {
        println!("ready; Ctrl-C to stop");
        wait_for_signal().await;
    }
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

/// Waits until every node knows a leader, saying so every 10 s of waiting.
async fn wait_for_leaders(nodes: &[KvNode]) {
    for node in nodes {
        let replica = node.replica();
        while replica
            .node()
            .wait_for_leader(Duration::from_secs(10))
            .await
            .is_err()
        {
            if !replica.node().status().running {
                // Stopped: nothing to wait for (its errors are logged).
                break;
            }
            tracing::warn!(node = %node.id(), "no leader elected yet; still waiting before ready");
        }
    }
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

/// Reloads the TLS certificates on every SIGHUP (which then no longer ends the process).
fn reload_on_hangup(reloaders: Vec<TlsReloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot catch SIGHUP: TLS files reload only when they change");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                for reloader in &reloaders {
                    match reloader.reload() {
                        Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded"),
                        Err(error) => tracing::warn!(
                            %error,
                            "SIGHUP: the TLS files cannot be used; keeping the certificates in force"
                        ),
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = reloaders;
    }
}
