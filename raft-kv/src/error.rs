//! The crate's one error type.

use std::path::PathBuf;

/// Errors of raft-kv.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options do not make a node (a member listed twice, a bad peer address, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {}: {source}", dir.display())]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The durable log cannot be opened (damaged, locked by another process, unreadable).
    #[error("log store: {0}")]
    Storage(#[from] raft_storage_fs::Error),
    /// The HTTP listener or transport failed (address in use, bad address).
    #[error("http: {0}")]
    Http(#[from] raft_http::Error),
    /// The node would serve unprotected where others can reach it: a non-loopback address
    /// without mutual TLS or a secret, and without `insecure` (see [`crate::exposure`]).
    #[error("refusing to start: {0}")]
    Unprotected(String),
    /// The TLS options do not fit together (an `https://` address without TLS, `http://` with
    /// it); unusable certificate files are [`Error::Http`].
    #[error("TLS: {0}")]
    Tls(String),
    /// The replica failed to start or stopped.
    #[error("raft: {0}")]
    Raft(#[from] raft_wrapper::Error),
}

impl From<raft_core::Error> for Error {
    fn from(error: raft_core::Error) -> Error {
        Error::Raft(error.into())
    }
}
