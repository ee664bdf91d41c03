//! raft-kv-client: a client library for [raft-kv](https://example.invalid/raft), the replicated
//! key-value server of the raft workspace, over its HTTP API. It does not depend on the server.
//!
//! - **Connections.** HTTP/2 by default: one multiplexed connection per node (prior knowledge
//!   on plain TCP, `h2` by ALPN over TLS) carries every concurrent call; HTTP/1.1 keep-alive
//!   pools as an option ([`Protocol`]). HTTPS with the `tls` feature (on by default:
//!   [`TlsConfig`]).
//! - **Leader discovery.** Give it any members. Calls go to the leader once it is known (a
//!   follower's 307 names it; a node that applied a write is it), else to the configured
//!   endpoints in turn; a node that fails, times out or answers 503 is forgotten as leader and
//!   the call moves on.
//! - **Retries and exactly-once writes.** Every call is retried until an answer or its
//!   deadline ([`ClientBuilder::deadline`]), each attempt bounded by
//!   [`ClientBuilder::request_timeout`]. Writes carry `Client-Id` / `Request-Id`: the same ids on
//!   every attempt of one call, so the cluster applies it once, and a retry of an applied write
//!   is answered from the server's record ([`Written::duplicate`]). The client id is random per
//!   [`Client`]; writes overlapping in time each lease a session of their own (the server
//!   accepts one client's request ids in increasing order only), so a client is safe to share
//!   between tasks.
//! - **Typed errors.** [`Error`]: [`Error::NotFound`], [`Error::PreconditionFailed`],
//!   [`Error::NoLeader`], [`Error::Timeout`] (for a write: [`Error::is_outcome_unknown`]),
//!   [`Error::Unauthorized`], [`Error::Rejected`], [`Error::Transport`]. A failed write was not
//!   applied unless its outcome is unknown.
//! - **Versions.** Reads return the key's version (its `ETag`, the log index that last wrote
//!   it); writes are conditional on it with [`Client::put_if`], [`Client::delete_if`] and
//!   [`Client::incr_if`] (compare-and-set), or create-only with [`Condition::Absent`].
//! - **Batches.** [`Client::batch`] applies a [`Batch`] of writes in one log entry, exactly
//!   once, with an outcome per operation.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use raft_kv_client::{Batch, Client, Condition, Consistency, Error};
//!
//! # async fn example() -> Result<(), Error> {
//! let client = Client::builder(["http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"])
//!     .api_token("s3cret")
//!     .deadline(Duration::from_secs(10))
//!     .build()?;
//!
//! let written = client.put("config/mode", "fast").await?;
//! let read = client.get("config/mode").await?;
//! assert_eq!((read.value.as_ref(), read.version), (&b"fast"[..], Some(written.version)));
//!
//! // Compare-and-set: applied only if nobody wrote the key since our read.
//! match client.put_if("config/mode", "safe", Condition::Version(written.version)).await {
//!     Ok(_) | Err(Error::PreconditionFailed { .. }) => {}
//!     Err(error) => return Err(error),
//! }
//!
//! // Exactly once, however often it is retried inside the call.
//! let n = client.incr("counter").await?.value;
//!
//! // A follower's view, possibly behind, without a quorum round trip.
//! let _ = client.get_with("counter", Consistency::Stale).await;
//!
//! // Several writes in one log entry.
//! let outcome = client.batch(&Batch::new().put("a", "1").delete("b").incr("counter")).await?;
//! assert_eq!(outcome.results.len(), 3);
//!
//! // A write whose deadline passed may or may not have been applied.
//! if let Err(error) = client.with_deadline(Duration::from_millis(50)).put("k", "v").await {
//!     if error.is_outcome_unknown() {
//!         // Read the key back to learn what happened.
//!     }
//! }
//! # let _ = n;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod answer;
mod batch;
mod builder;
mod client;
mod endpoint;
mod engine;
mod error;
mod options;
mod pool;
mod route;
mod session;
#[cfg(feature = "tls")]
mod tls;

pub use answer::{Incremented, Versioned, Written};
pub use batch::{Batch, BatchOutcome, MAX_BATCH_OPS, OpOutcome};
pub use builder::{
    ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DEADLINE, DEFAULT_REQUEST_TIMEOUT,
};
pub use client::Client;
pub use error::{Error, TransportError};
pub use options::{Condition, Consistency, Protocol};
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
