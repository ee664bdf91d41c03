//! One peer of the client: its address, its one long-lived HTTP/2 connection (over TLS when
//! the configuration has it), and the backoff after failed connection attempts.
//!
//! Concurrency: requests take a clone of the connection's `SendRequest` under a short
//! synchronous lock and never hold a lock across an await, except `dial`, a per-peer async lock
//! held while connecting, so that many requests arriving at a dead connection make one attempt
//! instead of a storm. Requests to other peers never wait on it.
//!
//! Backoff: after the n-th consecutive failed attempt, none is made for
//! `min(backoff_initial * 2^(n-1), backoff_max)`; requests in that window fail at once with
//! [`RequestError::BackingOff`]. A connection that drops after working is redialled at once; one
//! that fails under its first request for TLS reasons (the server refused this node's
//! certificate) counts as a failed attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use raft_core::NodeId;
use raft_core::message::AppendEntriesResponse;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::body::RequestBody;
use crate::client_config::ClientConfig;
use crate::codec::CONTENT_TYPE;
use crate::connection::Connection;
use crate::error::{Error, ErrorCode, RequestError};
use crate::frames::FrameBody;
use crate::metrics::PeerMetrics;
use crate::routes::{ERROR_CODE_HEADER, Rpc};
use crate::tls::{self, Sniffed};

type Sender = SendRequest<RequestBody>;

/// The longest error message read from a failure answer.
const MAX_ERROR_BODY_BYTES: usize = 4096;

#[derive(Debug)]
pub(crate) struct Peer {
    id: NodeId,
    /// `host:port`, as dialled.
    address: String,
    /// With TLS: the name its certificate must carry (`node-<id>.<cluster-id>`).
    server_name: Option<ServerName<'static>>,
    /// The RPC routes' URIs, indexed by `Rpc::index`.
    uris: Vec<Uri>,
    state: Mutex<ConnState>,
    dial: tokio::sync::Mutex<()>,
    pub(crate) metrics: PeerMetrics,
}

/// A live connection: its generation (to drop only the one that failed), its sender, and what
/// is known of it.
type Live = (u64, Sender, Arc<Connection>);

#[derive(Debug, Default)]
struct ConnState {
    /// The live connection.
    sender: Option<Live>,
    generation: u64,
    /// Consecutive failed connection attempts.
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: String,
}

impl Peer {
    pub(crate) fn new(id: NodeId, address: &str, config: &ClientConfig) -> Result<Peer, Error> {
        let with_tls = config.tls.is_some();
        let authority = parse_address(id, address, with_tls)?;
        let server_name = if with_tls {
            Some(tls::server_name(config.auth.cluster_id(), id)?)
        } else {
            None
        };
        let uri = |rpc: Rpc| {
            Uri::builder()
                .scheme(if with_tls { "https" } else { "http" })
                .authority(authority.as_str())
                .path_and_query(rpc.path())
                .build()
                .map_err(|e| Error::InvalidAddress {
                    peer: id,
                    address: address.to_owned(),
                    reason: e.to_string(),
                })
        };
        Ok(Peer {
            id,
            uris: Rpc::ALL.into_iter().map(uri).collect::<Result<_, _>>()?,
            address: authority.as_str().to_owned(),
            server_name,
            state: Mutex::new(ConnState::default()),
            dial: tokio::sync::Mutex::new(()),
            metrics: PeerMetrics::new(config.node, id),
        })
    }

    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Sends one request body and returns the answer's body (status 200) or the failure.
    pub(crate) async fn exchange(
        &self,
        rpc: Rpc,
        body: Bytes,
        config: &ClientConfig,
    ) -> Result<Bytes, RequestError> {
        let sent = body.len();
        let answer = self
            .send(rpc, RequestBody::Full(Full::new(body)), config)
            .await;
        if matches!(answer, Ok(_) | Err(RequestError::Remote { .. })) {
            self.metrics.sent_bytes.increment(sent as u64);
        }
        let body = answer?;
        let bytes = Limited::new(body, config.max_body_bytes)
            .collect()
            .await
            .map_err(|e| RequestError::Body(e.to_string()))?
            .to_bytes();
        self.metrics.received_bytes.increment(bytes.len() as u64);
        Ok(bytes)
    }

    /// Opens an entry stream: sends `body` (the opening, then the answers) on the stream route
    /// and returns the body of batches once the leader accepted (status 200), or the failure.
    pub(crate) async fn open_stream(
        &self,
        body: FrameBody<AppendEntriesResponse>,
        config: &ClientConfig,
    ) -> Result<Incoming, RequestError> {
        self.send(Rpc::Stream, RequestBody::Stream(body), config)
            .await
    }

    /// Sends a request on the route of `rpc` and returns the body of a 200 answer; any other
    /// status is read (up to a few KiB) into [`RequestError::Remote`].
    async fn send(
        &self,
        rpc: Rpc,
        body: RequestBody,
        config: &ClientConfig,
    ) -> Result<Incoming, RequestError> {
        let (generation, mut sender, connection) = self.sender(config).await?;
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uris.get(rpc.index()).cloned().unwrap_or_default();
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        config.auth.apply(headers);
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                if error.is_closed() || error.is_canceled() || sender.is_closed() {
                    self.connection_lost(generation);
                }
                if let Some(reason) = connection.tls_failure(&error).await {
                    // A refused certificate is a failed connection attempt: backed off, not
                    // redialled at once.
                    self.connection_lost(generation);
                    let error = RequestError::Tls {
                        address: self.address.clone(),
                        reason,
                    };
                    self.attempt_failed(config, &error);
                    return Err(error);
                }
                return Err(RequestError::Http(error));
            }
        };
        if connection.answered() {
            // The first answer on this connection: it works, the backoff starts over.
            self.lock().failures = 0;
        }
        let (parts, body) = response.into_parts();
        if parts.status == StatusCode::OK {
            return Ok(body);
        }
        let bytes = Limited::new(body, MAX_ERROR_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| RequestError::Body(e.to_string()))?
            .to_bytes();
        self.metrics.received_bytes.increment(bytes.len() as u64);
        let code = parts
            .headers
            .get(ERROR_CODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map_or(ErrorCode::Internal, ErrorCode::parse);
        Err(RequestError::Remote {
            status: parts.status.as_u16(),
            code,
            message: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The live connection, dialling one if there is none (unless backing off).
    async fn sender(&self, config: &ClientConfig) -> Result<Live, RequestError> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let _dialling = self.dial.lock().await;
        if let Some(live) = self.live() {
            return Ok(live);
        }
        if let Some(waiting) = self.backing_off() {
            return Err(waiting);
        }
        match self.connect(config).await {
            Ok((sender, connection)) => {
                self.metrics.connects.increment(1);
                let mut state = self.lock();
                state.generation += 1;
                let live = (state.generation, sender, connection);
                state.sender = Some(live.clone());
                // `failures` is reset by the first answer: a server that accepts the
                // connection and then refuses it (a TLS certificate) still backs off.
                state.retry_at = None;
                Ok(live)
            }
            Err(error) => {
                self.attempt_failed(config, &error);
                Err(error)
            }
        }
    }

    /// Counts a failed connection attempt and starts the backoff after it.
    fn attempt_failed(&self, config: &ClientConfig, error: &RequestError) {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        let delay = backoff(config, state.failures);
        state.retry_at = Some(Instant::now() + delay);
        state.last_failure = error.to_string();
        debug!(peer = %self.id, %error, ?delay, "connection attempt failed");
    }

    fn live(&self) -> Option<Live> {
        let state = self.lock();
        state
            .sender
            .as_ref()
            .filter(|(_, sender, _)| !sender.is_closed())
            .cloned()
    }

    fn backing_off(&self) -> Option<RequestError> {
        let state = self.lock();
        let retry_at = state.retry_at?;
        let now = Instant::now();
        (now < retry_at).then(|| RequestError::BackingOff {
            address: self.address.clone(),
            retry_in: retry_at - now,
            last: state.last_failure.clone(),
        })
    }

    /// Forgets connection `generation` after it failed (a newer one is kept).
    fn connection_lost(&self, generation: u64) {
        let mut state = self.lock();
        if state
            .sender
            .as_ref()
            .is_some_and(|(g, _, _)| *g == generation)
        {
            state.sender = None;
        }
    }

    /// A new connection: TCP, then TLS when configured, then the HTTP/2 handshake, each step
    /// within `connect_timeout`.
    async fn connect(
        &self,
        config: &ClientConfig,
    ) -> Result<(Sender, Arc<Connection>), RequestError> {
        let failed = |reason: String| RequestError::Connect {
            address: self.address.clone(),
            reason,
        };
        let stream =
            tokio::time::timeout(config.connect_timeout, TcpStream::connect(&self.address))
                .await
                .map_err(|_| failed(format!("no connection within {:?}", config.connect_timeout)))?
                .map_err(|e| failed(e.to_string()))?;
        if let Err(error) = stream.set_nodelay(true) {
            debug!(peer = %self.id, %error, "cannot set TCP_NODELAY");
        }
        let (Some(tls), Some(name)) = (&config.tls, &self.server_name) else {
            let (sniffed, tls_seen) = Sniffed::new(stream);
            let connection = Arc::new(Connection::plaintext(tls_seen));
            let sender = self.handshake(config, sniffed, connection.clone()).await?;
            return Ok((sender, connection));
        };
        let refused = |reason: String| RequestError::Tls {
            address: self.address.clone(),
            reason,
        };
        let stream =
            tokio::time::timeout(config.connect_timeout, tls.connect(name.clone(), stream))
                .await
                .map_err(|_| {
                    refused(format!(
                        "no TLS handshake within {:?}: is the peer serving TLS?",
                        config.connect_timeout
                    ))
                })?
                .map_err(|e| refused(tls::describe_handshake_error(&e)))?;
        if let Some(protocol) = stream.get_ref().1.alpn_protocol()
            && protocol != b"h2"
        {
            return Err(refused(format!(
                "the peer chose the application protocol {:?}, not h2",
                String::from_utf8_lossy(protocol)
            )));
        }
        let connection = Arc::new(Connection::tls());
        let sender = self.handshake(config, stream, connection.clone()).await?;
        Ok((sender, connection))
    }

    /// The HTTP/2 handshake (prior knowledge, or `h2` by ALPN) on a connected stream; the
    /// connection's task runs on its own.
    async fn handshake<T>(
        &self,
        config: &ClientConfig,
        stream: T,
        info: Arc<Connection>,
    ) -> Result<Sender, RequestError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let failed = |reason: String| RequestError::Connect {
            address: self.address.clone(),
            reason,
        };
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(config.stream_window_bytes)
            .initial_connection_window_size(config.connection_window_bytes)
            .keep_alive_interval(config.keep_alive_interval)
            .keep_alive_timeout(config.keep_alive_timeout)
            .max_header_list_size(16 << 10);
        let handshake = builder.handshake::<_, RequestBody>(TokioIo::new(stream));
        let (sender, connection) = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| failed("no HTTP/2 handshake in time".to_owned()))?
            .map_err(|e| failed(format!("HTTP/2 handshake: {e}")))?;
        let peer = self.id;
        tokio::spawn(async move {
            match connection.await {
                Ok(()) => info.ended(None),
                Err(error) => {
                    debug!(%peer, %error, "connection closed with an error");
                    info.ended(Some(&error));
                }
            }
        });
        Ok(sender)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        // The state stays consistent at every unlock, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn backoff(config: &ClientConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    config
        .backoff_initial
        .saturating_mul(1 << doublings)
        .min(config.backoff_max)
}

/// `host:port`, `http://host:port[/]` (plaintext only) or `https://host:port[/]` (TLS only) to
/// the authority; anything else is refused. With TLS a bare `host:port` means TLS too.
fn parse_address(
    peer: NodeId,
    address: &str,
    with_tls: bool,
) -> Result<hyper::http::uri::Authority, Error> {
    let invalid = |reason: &str| Error::InvalidAddress {
        peer,
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let bare = if let Some(rest) = address.strip_prefix("https://") {
        if !with_tls {
            return Err(invalid(
                "https:// needs TLS, and this transport has none (set ClientConfig::tls)",
            ));
        }
        rest
    } else if let Some(rest) = address.strip_prefix("http://") {
        if with_tls {
            return Err(invalid(
                "http:// is plaintext, and this transport speaks TLS to every peer: use \
                 https://host:port or host:port",
            ));
        }
        rest
    } else {
        address
    };
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    if bare.contains("://") || bare.contains('/') {
        return Err(invalid(
            "expected host:port, http://host:port or (with TLS) https://host:port",
        ));
    }
    let authority: hyper::http::uri::Authority =
        bare.parse().map_err(|_| invalid("not a host:port"))?;
    if authority.port_u16().is_none() {
        return Err(invalid("the port is missing"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("user information is not allowed"));
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_port_with_an_optional_http_scheme() {
        let id = NodeId(1);
        let plain = |address| parse_address(id, address, false);
        assert_eq!(plain("127.0.0.1:7001").unwrap(), "127.0.0.1:7001");
        assert_eq!(plain("http://node-1:80/").unwrap(), "node-1:80");
        assert_eq!(plain("[::1]:9").unwrap(), "[::1]:9");
        for bad in ["node-1", "https://a:1", "a:1/raft", "", "u@a:1", "a:port"] {
            assert!(plain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn https_addresses_need_tls_and_http_ones_are_refused_with_it() {
        let id = NodeId(1);
        let with_tls = |address| parse_address(id, address, true);
        assert_eq!(with_tls("https://node-1:443/").unwrap(), "node-1:443");
        assert_eq!(with_tls("10.0.0.1:7001").unwrap(), "10.0.0.1:7001");
        let reason = |result: Result<_, Error>| match result {
            Err(Error::InvalidAddress { reason, .. }) => reason,
            other => panic!("not an address error: {other:?}"),
        };
        assert!(reason(with_tls("http://a:1")).contains("plaintext"));
        assert!(reason(parse_address(id, "https://a:1", false)).contains("needs TLS"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = ClientConfig {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(70),
            ..ClientConfig::new(crate::ClusterAuth::new("c").unwrap())
        };
        let delays: Vec<u128> = (1..=5).map(|n| backoff(&config, n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 70, 70]);
        assert_eq!(backoff(&config, u32::MAX).as_millis(), 70);
    }
}
