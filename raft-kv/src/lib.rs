//! raft-kv: a replicated key-value server built only from the workspace crates — the example
//! that shows them working together, and the project's main job.
//!
//! - [`state::KvState`] is the application: a map of byte keys to byte values, applied from the
//!   log by raft-core, snapshotted in chunks while commits go on.
//! - raft-wrapper's [`Replica`](raft_wrapper::Replica) puts it behind client sessions, so
//!   `POST /kv/{key}/incr` with `Client-Id` / `Request-Id` headers is applied exactly once
//!   however often it is retried.
//! - raft-storage-fs keeps the log, hard state and snapshots on disk (group commit, one
//!   `fdatasync` per batch), so a SIGKILL loses nothing acknowledged.
//! - raft-http carries the peer messages and serves `/metrics`; [`server::KvNode`] mounts the
//!   client API ([`api`]) beside them on one listener.
//! - Secure deployments: mutual TLS between the peers and HTTPS for clients on that listener
//!   ([`tls`]), a bearer token for writes and the admin routes ([`auth`]), and a node that
//!   refuses to serve unprotected where others can reach it ([`exposure`]).
//!
//! Run `cargo run --release -p raft-kv -- local` for a 3-node cluster on loopback, or
//! `raft-kv serve --id N --listen HOST:PORT --peer ID=HOST:PORT ... --data-dir DIR` for one node
//! per process.
//!
//! ```no_run
//! use raft_core::NodeId;
//! use raft_kv::server::{KvNode, NodeOptions};
//!
//! # async fn example() -> Result<(), raft_kv::Error> {
//! let mut options = NodeOptions::new(NodeId(1), "127.0.0.1:7001", "./data/node-1");
//! options.peers = vec![(NodeId(2), "127.0.0.1:7002".into()), (NodeId(3), "127.0.0.1:7003".into())];
//! let node = KvNode::start(options).await?;
//! println!("serving at {}", node.url());
//! // ... until the process is told to stop:
//! node.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod answer;
pub mod api;
pub mod auth;
mod batch;
pub mod binary_batch;
mod cas;
pub mod command;
mod error;
pub mod exposure;
pub mod join;
mod map;
mod params;
mod reply;
mod request_metrics;
pub mod server;
mod shards;
mod snapshot;
pub mod state;
mod status;
pub mod tls;

pub use error::Error;
