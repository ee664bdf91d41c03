//! One peer of the client: its address, its one long-lived HTTP/2 connection, and the backoff
//! after failed connection attempts.
//!
//! Concurrency: requests take a clone of the connection's `SendRequest` under a short
//! synchronous lock and never hold a lock across an await, except `dial`, a per-peer async lock
//! held while connecting, so that many requests arriving at a dead connection make one attempt
//! instead of a storm. Requests to other peers never wait on it.
//!
//! Backoff: after the n-th consecutive failed attempt, none is made for
//! `min(backoff_initial * 2^(n-1), backoff_max)`; requests in that window fail at once with
//! [`RequestError::BackingOff`]. A connection that drops after working is redialled at once.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use raft_core::NodeId;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::client_config::ClientConfig;
use crate::codec::CONTENT_TYPE;
use crate::error::{Error, ErrorCode, RequestError};
use crate::metrics::PeerMetrics;
use crate::routes::{ERROR_CODE_HEADER, Rpc};

type Sender = SendRequest<Full<Bytes>>;

/// The longest error message read from a failure answer.
const MAX_ERROR_BODY_BYTES: usize = 4096;

#[derive(Debug)]
pub(crate) struct Peer {
    id: NodeId,
    /// `host:port`, as dialled.
    address: String,
    /// The RPC routes' URIs, indexed by `Rpc::index`.
    uris: Vec<Uri>,
    state: Mutex<ConnState>,
    dial: tokio::sync::Mutex<()>,
    pub(crate) metrics: PeerMetrics,
}

#[derive(Debug, Default)]
struct ConnState {
    /// The live connection and its generation (to drop only the one that failed).
    sender: Option<(u64, Sender)>,
    generation: u64,
    /// Consecutive failed connection attempts.
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: String,
}

impl Peer {
    pub(crate) fn new(id: NodeId, address: &str, node: Option<NodeId>) -> Result<Peer, Error> {
        let authority = parse_address(id, address)?;
        let uri = |rpc: Rpc| {
            Uri::builder()
                .scheme("http")
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
            state: Mutex::new(ConnState::default()),
            dial: tokio::sync::Mutex::new(()),
            metrics: PeerMetrics::new(node, id),
        })
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
        let (generation, mut sender) = self.sender(config).await?;
        let sent = body.len();
        let mut request = Request::new(Full::new(body));
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
                return Err(RequestError::Http(error));
            }
        };
        self.metrics.sent_bytes.increment(sent as u64);
        let (parts, body) = response.into_parts();
        let limit = if parts.status == StatusCode::OK {
            config.max_body_bytes
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let bytes = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| RequestError::Body(e.to_string()))?
            .to_bytes();
        self.metrics.received_bytes.increment(bytes.len() as u64);
        if parts.status == StatusCode::OK {
            return Ok(bytes);
        }
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
    async fn sender(&self, config: &ClientConfig) -> Result<(u64, Sender), RequestError> {
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
            Ok(sender) => {
                self.metrics.connects.increment(1);
                let mut state = self.lock();
                state.generation += 1;
                state.sender = Some((state.generation, sender.clone()));
                state.failures = 0;
                state.retry_at = None;
                Ok((state.generation, sender))
            }
            Err(error) => {
                let mut state = self.lock();
                state.failures = state.failures.saturating_add(1);
                let delay = backoff(config, state.failures);
                state.retry_at = Some(Instant::now() + delay);
                state.last_failure = error.to_string();
                debug!(peer = %self.id, %error, ?delay, "connection attempt failed");
                Err(error)
            }
        }
    }

    fn live(&self) -> Option<(u64, Sender)> {
        let state = self.lock();
        state
            .sender
            .as_ref()
            .filter(|(_, sender)| !sender.is_closed())
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
        if state.sender.as_ref().is_some_and(|(g, _)| *g == generation) {
            state.sender = None;
        }
    }

    async fn connect(&self, config: &ClientConfig) -> Result<Sender, RequestError> {
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
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(config.stream_window_bytes)
            .initial_connection_window_size(config.connection_window_bytes)
            .keep_alive_interval(config.keep_alive_interval)
            .keep_alive_timeout(config.keep_alive_timeout)
            .max_header_list_size(16 << 10);
        let handshake = builder.handshake::<_, Full<Bytes>>(TokioIo::new(stream));
        let (sender, connection) = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| failed("no HTTP/2 handshake in time".to_owned()))?
            .map_err(|e| failed(format!("HTTP/2 handshake: {e}")))?;
        let peer = self.id;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%peer, %error, "connection closed with an error");
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

/// `host:port` or `http://host:port[/]` to the authority; anything else is refused.
fn parse_address(peer: NodeId, address: &str) -> Result<hyper::http::uri::Authority, Error> {
    let invalid = |reason: &str| Error::InvalidAddress {
        peer,
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let bare = address.strip_prefix("http://").unwrap_or(address);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    if bare.contains("://") || bare.contains('/') {
        return Err(invalid("expected host:port or http://host:port"));
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
        assert_eq!(
            parse_address(id, "127.0.0.1:7001").unwrap(),
            "127.0.0.1:7001"
        );
        assert_eq!(parse_address(id, "http://node-1:80/").unwrap(), "node-1:80");
        assert_eq!(parse_address(id, "[::1]:9").unwrap(), "[::1]:9");
        for bad in ["node-1", "https://a:1", "a:1/raft", "", "u@a:1", "a:port"] {
            assert!(parse_address(id, bad).is_err(), "{bad}");
        }
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
