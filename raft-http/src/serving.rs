//! [`Serving`]: the handle of a node's running HTTP server, as [`HttpNode::serve`] and
//! [`HttpNode::serve_with`] return it; the order of stopping and what a drop does are on the
//! type.
//!
//! [`HttpNode::serve`]: crate::HttpNode::serve
//! [`HttpNode::serve_with`]: crate::HttpNode::serve_with

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use raft_core::NodeId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, error};

use crate::serve::Server;

/// A node's running HTTP server, as [`HttpNode::serve`] and [`HttpNode::serve_with`] return
/// it.
///
/// **Stopping a node served over HTTP, in this order:**
///
/// 1. [`Serving::shutdown`]: the server stops accepting connections, lets the requests in
///    flight finish (their answers come from a node that is still running), and returns once
///    they have, or after [`ServerConfig::graceful_shutdown_timeout`], when what is left is
///    dropped.
/// 2. The node's own shutdown (`Node::shutdown`, `Replica::shutdown`): waiting callers are
///    answered and the node's tasks joined. Once the server is gone nothing else calls into the
///    node, and the server no longer holds a handle to it.
/// 3. Closing the log store (a file store syncs and releases its directory), which the node no
///    longer writes to.
///
/// Stopping the node first is harmless but noisy (peers get `shutdown` answers until the
/// server stops); closing the store while the node runs fails the node.
///
/// **Dropping** a `Serving` without calling `shutdown` starts the same graceful stop without
/// waiting for it: the listener closes at once, open requests get until
/// `graceful_shutdown_timeout` to finish in a background task, then every connection is dropped
/// and the task ends, releasing its handle to the node (so a `Node` whose other handles are
/// gone stops, as it does when its last handle is dropped). Nothing of it outlives that timeout
/// or holds up the tokio runtime's own shutdown: a runtime that stops (the end of
/// `#[tokio::main]`) cancels the task like any other.
///
/// [`HttpNode::serve`]: crate::HttpNode::serve
/// [`HttpNode::serve_with`]: crate::HttpNode::serve_with
/// [`ServerConfig::graceful_shutdown_timeout`]: crate::ServerConfig::graceful_shutdown_timeout
#[derive(Debug)]
#[must_use = "dropping the handle stops the server"]
pub struct Serving {
    id: NodeId,
    local_addr: SocketAddr,
    /// Dropping or sending stops the accept loop.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Serving {
    /// Spawns `server.serve(service, ...)` on the current tokio runtime.
    pub(crate) fn spawn<S, B>(
        id: NodeId,
        local_addr: SocketAddr,
        server: Server,
        service: S,
    ) -> Serving
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<raft_core::BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<raft_core::BoxError>,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        // Ends on a send and on the sender's drop alike.
        let task = tokio::spawn(server.serve(service, async move {
            let _ = stopped.await;
        }));
        debug!(node = %id, address = %local_addr, "serving the Raft routes");
        Serving {
            id,
            local_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The node served.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the server listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops gracefully and waits: no new connections, the requests in flight finish (for at
    /// most [`ServerConfig::graceful_shutdown_timeout`](crate::ServerConfig)), then every
    /// connection is closed. Call it first when stopping, then shut the node down, then close
    /// its log store (see [`Serving`]).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(failure) = task.await
        {
            error!(node = %self.id, %failure, "the server task failed");
        }
        debug!(node = %self.id, "stopped serving the Raft routes");
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // After `shutdown` both are gone. Otherwise: closing the channel starts the graceful
        // stop, and dropping the join handle detaches the task, which ends by itself within
        // `graceful_shutdown_timeout`.
        if self.stop.take().is_some() {
            debug!(node = %self.id, "server handle dropped; stopping in the background");
        }
    }
}
