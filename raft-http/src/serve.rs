//! [`Server`]: a hardened accept loop for any hyper service (a [`RaftService`](crate::RaftService)
//! alone, or an application's router with it mounted inside).
//!
//! Each connection speaks HTTP/1.1 or HTTP/2 (prior knowledge), detected from its first bytes,
//! over TLS when [`ServerConfig::tls`] is set (ALPN offers `h2` and `http/1.1`; a client that
//! sends plaintext to it fails the handshake at its first bytes and is closed at once). The
//! handshake runs in the connection's task, so a slow one never holds up the accept loop, and
//! the client's certificate (with mutual TLS) goes to every request of the connection as a
//! [`PeerCertificate`](crate::tls::PeerCertificate) extension. The hardening, and why:
//! - A client must finish the TLS handshake within `header_read_timeout`, and then send a
//!   complete request head within `header_read_timeout`, or it is disconnected. hyper's HTTP/1 header timeout needs a timer (without one it panics when set)
//!   and does not cover the protocol detection that runs before it, where a client that sent
//!   half of the HTTP/2 preface would otherwise be kept forever; so the loop also closes any
//!   connection whose first request head has not arrived in time.
//! - At most `max_connections` connections are open; one more is closed at once (and counted)
//!   rather than queued, so a peer learns of it immediately and backs off.
//! - HTTP/2 streams per connection are bounded (`max_concurrent_streams`), and keep-alive pings
//!   close connections whose peer vanished without a FIN.
//! - Shutdown stops accepting, ends entry streams (which would otherwise never finish), lets
//!   open requests finish (HTTP/2 GOAWAY, HTTP/1 close after the
//!   response) for at most `graceful_shutdown_timeout`, then drops what is left: every
//!   connection runs in a task the loop owns, so none outlives [`Server::serve`] (nor the
//!   service, such as a node handle, it holds), also when the `serve` future is dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::coalesce::Coalesce;
use crate::error::Error;
use crate::frames::Draining;
use crate::metrics::{CONNECTIONS_REFUSED, TLS_HANDSHAKE_FAILURES};
use crate::order::ConnectionOrder;
use crate::tls::{PeerCertificate, ServerTls};

/// Connection-level settings of a [`Server`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Open connections at most; one more is closed at once.
    pub max_connections: usize,
    /// A client must send each complete request head (and, on a new connection, the first one)
    /// within this time; with TLS it must also finish the handshake within this time (before
    /// the wait for the first head starts).
    pub header_read_timeout: Duration,
    /// HTTP/2 streams (requests) in flight on one connection at most.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval (`None`: no pings).
    pub keep_alive_interval: Option<Duration>,
    /// A connection whose ping is not acknowledged within this time is closed.
    pub keep_alive_timeout: Duration,
    /// HTTP/2 flow-control window per stream, in bytes.
    pub stream_window_bytes: u32,
    /// HTTP/2 flow-control window per connection, in bytes.
    pub connection_window_bytes: u32,
    /// Request headers larger than this are refused by hyper (431 or a stream reset).
    pub max_header_bytes: u32,
    /// The largest HTTP/2 frame peers may send (`SETTINGS_MAX_FRAME_SIZE`, clamped to
    /// 16 KiB..=16 MiB - 1). A body that fits arrives as one DATA frame, which the server hands
    /// on without copying; with HTTP/2's default of 16 KiB a batch of entries comes in pieces
    /// that must be copied into one buffer first.
    pub max_frame_bytes: u32,
    /// How long shutdown waits for open requests to finish.
    pub graceful_shutdown_timeout: Duration,
    /// TLS on every connection (`None`, the default: plaintext). Keep a clone of the
    /// [`ServerTls`] to reload its certificates (see [`crate::tls`]).
    pub tls: Option<ServerTls>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(5),
            max_concurrent_streams: 1024,
            keep_alive_interval: Some(Duration::from_secs(10)),
            keep_alive_timeout: Duration::from_secs(20),
            stream_window_bytes: 4 << 20,
            connection_window_bytes: 16 << 20,
            max_header_bytes: 16 << 10,
            max_frame_bytes: 1 << 20,
            graceful_shutdown_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// A bound listener and its settings; [`serve`](Server::serve) runs it.
///
/// ```no_run
/// use std::sync::Arc;
/// use raft_http::{ClusterAuth, RaftService, Server, ServerConfig, ServiceConfig};
///
/// # async fn example(node: raft_core::Node) -> Result<(), raft_http::Error> {
/// let auth = ClusterAuth::new("my-cluster")?.with_secret("correct-horse")?;
/// let service = RaftService::new(Arc::new(node), ServiceConfig::new(auth));
/// let server = Server::bind("127.0.0.1:7001", ServerConfig::default()).await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let serving = tokio::spawn(server.serve(service, async {
///     let _ = stopped.await;
/// }));
/// // ... later: stop accepting, let open requests finish, and wait.
/// let _ = stop.send(());
/// let _ = serving.await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
}

impl Server {
    /// Binds `address` (`host:port`; port 0 picks a free port).
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn bind(address: &str, config: ServerConfig) -> Result<Server, Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| Error::Bind {
                address: address.to_owned(),
                source,
            })?;
        Ok(Server::from_listener(listener, config))
    }

    /// Serves on a listener the caller bound.
    #[must_use]
    pub fn from_listener(listener: TcpListener, config: ServerConfig) -> Server {
        Server { listener, config }
    }

    /// The bound address.
    ///
    /// # Errors
    /// [`Error::Io`] if the operating system cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.listener.local_addr()?)
    }

    /// Accepts connections and serves `service` on each until `shutdown` completes, then shuts
    /// down gracefully. Accept errors (such as running out of file descriptors) are logged and
    /// retried after a short pause; they never end the loop.
    pub async fn serve<S, B, F>(self, service: S, shutdown: F)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<raft_core::BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<raft_core::BoxError>,
        F: Future<Output = ()>,
    {
        let Server { listener, config } = self;
        let builder = Arc::new(connection_builder(&config));
        let connections = Arc::new(Semaphore::new(config.max_connections));
        let graceful = GracefulShutdown::new();
        // Entry streams never end by themselves: they end when shutdown starts (see `frames.rs`).
        let (draining, drain_signal) = watch::channel(false);
        // The connections' tasks: owned here, so none outlives the loop (see the end).
        let mut running = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                debug!(%remote, "connection limit reached; closing the new connection");
                metrics::counter!(CONNECTIONS_REFUSED).increment(1);
                drop(stream);
                continue;
            };
            let accepted = Accepted {
                builder: builder.clone(),
                service: service.clone(),
                watcher: graceful.watcher(),
                draining: Draining(drain_signal.clone()),
                header_timeout: config.header_read_timeout,
                permit,
                remote,
            };
            // Forget the connections that ended, so the set holds only open ones.
            while running.try_join_next().is_some() {}
            let stream = nodelay(stream);
            match &config.tls {
                None => running.spawn(accepted.serve(stream, None)),
                Some(tls) => running.spawn(accepted.handshake(tls.clone(), stream)),
            };
        }
        drop(listener);
        draining.send_replace(true);
        if tokio::time::timeout(config.graceful_shutdown_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            debug!("graceful shutdown timed out; dropping the remaining connections");
        }
        // Whatever is still open after the grace period is dropped here: the set aborts its
        // tasks (as it does when this future is dropped before the end).
        running.abort_all();
    }
}

fn connection_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size((config.max_header_bytes as usize).max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .keep_alive_interval(config.keep_alive_interval)
        .keep_alive_timeout(config.keep_alive_timeout)
        .initial_stream_window_size(config.stream_window_bytes)
        .initial_connection_window_size(config.connection_window_bytes)
        .max_header_list_size(config.max_header_bytes)
        .max_frame_size(
            config
                .max_frame_bytes
                .clamp(MIN_FRAME_BYTES, MAX_FRAME_BYTES),
        );
    builder
}

/// HTTP/2's bounds on `SETTINGS_MAX_FRAME_SIZE` (RFC 9113 §6.5.2).
const MIN_FRAME_BYTES: u32 = 1 << 14;
const MAX_FRAME_BYTES: u32 = (1 << 24) - 1;

fn nodelay(stream: TcpStream) -> TcpStream {
    // Small RPCs must not wait for Nagle's algorithm; failure only costs latency.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    stream
}

/// One accepted connection, and what its task needs to serve it.
struct Accepted<S> {
    builder: Arc<auto::Builder<TokioExecutor>>,
    service: S,
    watcher: Watcher,
    draining: Draining,
    header_timeout: Duration,
    permit: OwnedSemaphorePermit,
    remote: SocketAddr,
}

impl<S, B> Accepted<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<raft_core::BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<raft_core::BoxError>,
{
    /// The TLS handshake within the header timeout, then the connection.
    async fn handshake(self, tls: ServerTls, stream: TcpStream) {
        match tokio::time::timeout(self.header_timeout, tls.accept(stream)).await {
            Ok(Ok((stream, peer))) => self.serve(stream, peer).await,
            Ok(Err(error)) => {
                metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
                debug!(remote = %self.remote, %error, "closing the connection");
            }
            Err(_) => {
                metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
                debug!(remote = %self.remote, "no TLS handshake in time; closing");
            }
        }
    }

    /// Serves HTTP on the (plaintext or TLS) stream.
    async fn serve<T>(self, stream: T, peer: Option<PeerCertificate>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let first_request = Arc::new(Notify::new());
        let watched = PerConnection {
            inner: self.service,
            seen: first_request.clone(),
            order: ConnectionOrder::default(),
            draining: self.draining,
            peer,
        };
        let connection = self
            .builder
            .serve_connection(TokioIo::new(Coalesce::new(stream)), watched)
            .into_owned();
        let connection = self.watcher.watch(connection);
        drive(
            connection,
            first_request,
            self.header_timeout,
            self.permit,
            self.remote,
        )
        .await;
    }
}

/// Runs one connection; closes it if no complete request head arrives in time.
async fn drive<C, T>(
    connection: C,
    first_request: Arc<Notify>,
    header_timeout: Duration,
    _permit: OwnedSemaphorePermit,
    remote: SocketAddr,
) where
    C: Future<Output = Result<(), T>>,
    T: std::fmt::Display,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                debug!(%remote, %error, "connection ended with an error");
            }
            return;
        }
        seen = tokio::time::timeout(header_timeout, first_request.notified()) => {
            if seen.is_err() {
                debug!(%remote, "no complete request head in time; closing");
                return;
            }
        }
    }
    if let Err(error) = connection.await {
        debug!(%remote, %error, "connection ended with an error");
    }
}

/// Wraps a connection's service: signals its first call (a complete request head arrived) and
/// gives every request the connection's order of AppendEntries (see `order.rs`) and the
/// client's certificate, if it presented one.
#[derive(Clone)]
struct PerConnection<S> {
    inner: S,
    seen: Arc<Notify>,
    order: ConnectionOrder,
    draining: Draining,
    peer: Option<PeerCertificate>,
}

impl<S, B> hyper::service::Service<Request<B>> for PerConnection<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: Request<B>) -> S::Future {
        // Stores a permit if nobody waits yet: the signal is never lost.
        self.seen.notify_one();
        // Only the Raft routes read these: a client request is spared the allocations.
        if request.uri().path().starts_with(crate::routes::RAFT_PREFIX) {
            request.extensions_mut().insert(self.order.clone());
            request.extensions_mut().insert(self.draining.clone());
        }
        if let Some(peer) = &self.peer {
            request.extensions_mut().insert(peer.clone());
        }
        self.inner.call(request)
    }
}
