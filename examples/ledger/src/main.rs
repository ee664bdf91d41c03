//! A replicated bank ledger: the example application built from the workspace's crates.
//!
//! Its own state machine (`ledger.rs`: deposits, transfers that can fail for insufficient
//! funds, snapshots), a durable log per node (raft-storage-fs), Raft and a small client API over
//! HTTP between processes (raft-http's `HttpNode`), exactly-once submits (raft-wrapper's
//! `Replica`), and restart from the data directory. `ledger node` runs one node per process;
//! `ledger demo` (`demo.rs`) runs three of them as child processes, kills the leader, restarts
//! it and checks the books. The root README's "Plugging in your own storage, state machine and
//! transport" walks through this file.
#![forbid(unsafe_code)]
// A command-line program: the node's address and the demo's report go to stdout for the user.
#![allow(clippy::print_stdout)]

mod demo;
mod ledger;

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use raft_core::{BoxError, NodeId};
use raft_http::{HttpNode, ResponseBody, Routed};
use raft_storage_fs::{FsLogStore, FsOptions};
use raft_wrapper::{ClientId, Replica, ReplicaConfig, RequestId};
use tokio::signal::unix::{SignalKind, signal};

use crate::ledger::{Command, Ledger};

#[derive(Parser, Debug)]
#[command(name = "ledger", about = "A replicated bank ledger on Raft")]
enum Cli {
    /// Runs one node until SIGINT (Ctrl-C) or SIGTERM.
    Node(NodeArgs),
    /// Runs 3 nodes as child processes, kills the leader, restarts it and checks the books.
    Demo {
        /// An empty or missing directory for the nodes' data (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// This node's id (a positive number, unique in the cluster).
    #[arg(long)]
    id: u64,
    /// Where the node keeps its log, hard state and snapshots.
    #[arg(long)]
    dir: PathBuf,
    /// HOST:PORT for the Raft routes and the client API.
    #[arg(long)]
    listen: String,
    /// Another member, ID=HOST:PORT (repeat for each).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(NodeId, String)>,
    /// Log size that triggers a snapshot, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    snapshot_bytes: u64,
}

fn parse_peer(text: &str) -> Result<(NodeId, String), String> {
    match text
        .split_once('=')
        .map(|(id, address)| (id.parse(), address))
    {
        Some((Ok(id), address)) if !address.is_empty() => Ok((NodeId(id), address.to_owned())),
        _ => Err(format!("{text}: expected ID=HOST:PORT")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let outcome = match Cli::parse() {
        Cli::Node(args) => run_node(args).await,
        Cli::Demo { dir } => demo::run(dir).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ledger: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_node(args: NodeArgs) -> Result<(), BoxError> {
    let id = NodeId(args.id);
    let mut terminate = signal(SignalKind::terminate())?;
    // The durable log. Opening validates every record, so it blocks: off the async workers.
    // Segments sized from the snapshot threshold, so compaction gives the space back.
    let snapshot_bytes = args.snapshot_bytes;
    let store = tokio::task::spawn_blocking(move || {
        FsLogStore::open(
            args.dir,
            FsOptions::for_snapshot_threshold(snapshot_bytes).node(id),
        )
    })
    .await??;
    let mut config = ReplicaConfig::default();
    config.node.snapshot_log_bytes = snapshot_bytes;
    // A small ledger's whole log is a few hundred entries: keep a few dozen below each
    // snapshot for lagging followers (the default, 1,024, would keep all of it).
    config.node.raft.snapshot_keep_entries = 64;
    // Both sides of the transport from one set of settings; the listener is bound here.
    let http = HttpNode::builder(id)
        .listen(args.listen)
        .peers(args.peers)
        .cluster("ledger")
        .node_config(&config.node)
        .bind()
        .await?;
    let ledger = Ledger::default();
    let replica = Replica::start(
        http.id(),
        http.members(),
        config,
        Arc::new(store.clone()),
        Arc::new(ledger.clone()),
        http.transport(),
    )
    .await?;
    // One listener: the Raft routes first, then the client API.
    let raft = http.service(Arc::new(replica.node().clone()));
    let api = Api {
        replica: replica.clone(),
        ledger,
    };
    let serving = http.serve_with(hyper::service::service_fn(move |request| {
        let routed = raft.route(request); // synchronously: keeps AppendEntries in order
        let api = api.clone();
        async move {
            Ok::<_, Infallible>(match routed {
                Routed::Raft(answer) => answer.await,
                Routed::Elsewhere(request) => api.handle(request).await,
            })
        }
    }));
    println!("node {id} serving at http://{}", serving.local_addr());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    // Stop in this order: the server (open requests finish), the node, then the log.
    serving.shutdown().await;
    replica.shutdown().await;
    store.close().await;
    Ok(())
}

/// The client API, beside the Raft routes on the same listener.
#[derive(Clone)]
struct Api {
    replica: Replica,
    ledger: Ledger,
}

impl Api {
    async fn handle(self, request: Request<Incoming>) -> Response<ResponseBody> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/ledger") => self.balances(),
            (&Method::POST, "/ledger") => {
                match Limited::new(request.into_body(), 4096).collect().await {
                    Ok(body) => {
                        self.submit(&String::from_utf8_lossy(&body.to_bytes()))
                            .await
                    }
                    Err(error) => reply(StatusCode::BAD_REQUEST, error.to_string()),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "GET or POST /ledger".to_owned()),
        }
    }

    /// `GET /ledger`: this replica's status line, then its balances (its own copy, not a
    /// linearizable read: that would be `replica.node().linearizable_read()` first).
    fn balances(&self) -> Response<ResponseBody> {
        let status = self.replica.node().status();
        let leader = status.leader == Some(status.id);
        let mut text = format!(
            "node={} leader={leader} applied={} snapshot={}\n",
            status.id, status.applied_index, status.snapshot_index
        );
        for (account, balance) in self.ledger.balances() {
            text.push_str(&format!("{account} {balance}\n"));
        }
        reply(StatusCode::OK, text)
    }

    /// `POST /ledger` with `CLIENT REQUEST COMMAND`: applied once per (client, request), however
    /// often it is retried. Answers `INDEX DUPLICATE RESULT`; 421 with `ID ADDRESS` of the
    /// leader; 503 (nothing applied) or 504 (outcome unknown): retry with the same ids.
    async fn submit(&self, body: &str) -> Response<ResponseBody> {
        let mut words = body.splitn(3, ' ');
        let (Some(Ok(client)), Some(Ok(request)), Some(command)) = (
            words.next().map(str::parse),
            words.next().map(str::parse),
            words.next(),
        ) else {
            return reply(
                StatusCode::BAD_REQUEST,
                "expected CLIENT REQUEST COMMAND".to_owned(),
            );
        };
        if let Err(reason) = Command::parse(command) {
            return reply(StatusCode::BAD_REQUEST, reason);
        }
        let command = Bytes::copy_from_slice(command.as_bytes());
        match self
            .replica
            .submit(ClientId(client), RequestId(request), command)
            .await
        {
            Ok(applied) => {
                let result = String::from_utf8_lossy(&applied.result);
                reply(
                    StatusCode::OK,
                    format!("{} {} {result}", applied.index, applied.duplicate),
                )
            }
            Err(raft_wrapper::Error::NotLeader { leader: Some(hint) }) => reply(
                StatusCode::MISDIRECTED_REQUEST,
                format!("{} {}", hint.id, hint.address),
            ),
            Err(error) => {
                let status = match &error {
                    e if e.is_retryable() && e.is_outcome_unknown() => StatusCode::GATEWAY_TIMEOUT,
                    e if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
                    raft_wrapper::Error::StaleRequest { .. } => StatusCode::CONFLICT,
                    raft_wrapper::Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                reply(status, error.to_string())
            }
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::from(body));
    *response.status_mut() = status;
    response
}
