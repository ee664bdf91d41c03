//! [`Pool`]: the connections to the nodes. HTTP/2 keeps one multiplexed connection per node
//! (prior knowledge on plain TCP, `h2` by ALPN over TLS), HTTP/1.1 a stack of idle keep-alive
//! connections per node. A dead connection is noticed before a request is handed to it where
//! possible (then the request goes on a new one, as not sent) and replaced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::endpoint::Endpoint;
use crate::options::Protocol;
#[cfg(feature = "tls")]
use crate::tls::Connector;

/// A request's body.
pub(crate) type Body = Full<Bytes>;

/// Idle HTTP/1.1 connections kept per node.
const MAX_IDLE_HTTP1: usize = 64;
/// HTTP/2 keep-alive pings: a node that vanished without closing the connection is noticed
/// within about interval + timeout.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 receive windows: fixed, large enough that a large value streams without waiting for
/// window updates. (hyper's adaptive window was measured slower: it sends a ping to estimate
/// the bandwidth with the answers it receives, a frame more each way for a lone client.)
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// A complete answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum SendError {
    /// It was not sent: no connection could be made.
    Connect(String),
    /// It may have been sent: the connection failed before the whole answer arrived.
    Lost(String),
}

/// A request, kept to be sent as often as it is retried.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    /// Path and query (`/kv/a%2Fb?consistency=lease`).
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Outgoing {
    /// The request for `endpoint`: an absolute URI for HTTP/2, the path and `Host` for
    /// HTTP/1.1.
    fn request(&self, endpoint: &Endpoint, http: Http) -> Result<Request<Body>, SendError> {
        let unusable =
            |e: hyper::http::Error| SendError::Connect(format!("cannot make the request: {e}"));
        let uri = match http {
            Http::Two => Uri::builder()
                .scheme(endpoint.scheme())
                .authority(&*endpoint.authority)
                .path_and_query(self.path.as_str())
                .build()
                .map_err(unusable)?,
            Http::One => Uri::try_from(self.path.as_str()).map_err(|e| unusable(e.into()))?,
        };
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .body(Full::new(self.body.clone()))
            .map_err(unusable)?;
        *request.headers_mut() = self.headers.clone();
        if let Http::One = http {
            let host =
                HeaderValue::from_str(&endpoint.authority).map_err(|e| unusable(e.into()))?;
            request.headers_mut().insert(header::HOST, host);
        }
        Ok(request)
    }
}

/// How connections are made.
#[derive(Clone, Debug)]
pub(crate) struct PoolConfig {
    pub(crate) protocol: Protocol,
    /// Each new connection (TCP, TLS and HTTP/2 handshakes) within this time.
    pub(crate) connect_timeout: Duration,
    /// The TLS handshakes for `https` endpoints.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Connector>,
}

/// The connections of one node.
#[derive(Debug, Default)]
struct Slot {
    /// The HTTP/2 connection and its generation; the lock is held while one is made, so
    /// concurrent requests wait for it rather than racing to open several.
    h2: tokio::sync::Mutex<Option<(u64, http2::SendRequest<Body>)>>,
    /// Idle HTTP/1.1 connections.
    h1: Mutex<Vec<http1::SendRequest<Body>>>,
}

/// The connections to every node the client talked to.
#[derive(Debug)]
pub(crate) struct Pool {
    config: PoolConfig,
    slots: Mutex<HashMap<Endpoint, Arc<Slot>>>,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `outgoing` to `endpoint` and reads the whole answer.
    pub(crate) async fn send(
        &self,
        endpoint: &Endpoint,
        outgoing: &Outgoing,
    ) -> Result<Reply, SendError> {
        let slot = self.slot(endpoint);
        match self.config.protocol {
            Protocol::Http2 => {
                let request = outgoing.request(endpoint, Http::Two)?;
                self.send_h2(endpoint, &slot, request).await
            }
            Protocol::Http1 => self.send_h1(endpoint, &slot, outgoing).await,
        }
    }

    fn slot(&self, endpoint: &Endpoint) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(endpoint.clone())
            .or_default()
            .clone()
    }

    async fn send_h2(
        &self,
        endpoint: &Endpoint,
        slot: &Slot,
        request: Request<Body>,
    ) -> Result<Reply, SendError> {
        let (generation, mut sender) = self.h2_sender(endpoint, slot).await?;
        let answer = sender.send_request(request).await;
        let reply = match answer {
            Ok(response) => read(response).await,
            Err(error) => Err(SendError::Lost(error.to_string())),
        };
        if reply.is_err() && sender.is_closed() {
            let mut cached = slot.h2.lock().await;
            if cached.as_ref().is_some_and(|(g, _)| *g == generation) {
                *cached = None;
            }
        }
        reply
    }

    /// A ready HTTP/2 sender: the cached connection, or a new one if it is gone.
    async fn h2_sender(
        &self,
        endpoint: &Endpoint,
        slot: &Slot,
    ) -> Result<(u64, http2::SendRequest<Body>), SendError> {
        let mut cached = slot.h2.lock().await;
        if let Some((generation, sender)) = cached.as_ref()
            && !sender.is_closed()
        {
            let (generation, mut sender) = (*generation, sender.clone());
            drop(cached);
            // Waits for a free stream when the node's stream limit is reached.
            if sender.ready().await.is_ok() {
                return Ok((generation, sender));
            }
            cached = slot.h2.lock().await;
            if cached.as_ref().is_some_and(|(g, _)| *g == generation) {
                *cached = None;
            }
        }
        if let Some((generation, sender)) = cached.as_ref()
            && !sender.is_closed()
        {
            // Another request replaced it meanwhile.
            return Ok((*generation, sender.clone()));
        }
        let generation = cached.as_ref().map_or(0, |(g, _)| g + 1);
        let sender = self.connect(endpoint, Http::Two).await?;
        let Connected::Two(sender) = sender else {
            return Err(SendError::Connect("not an HTTP/2 connection".to_owned()));
        };
        *cached = Some((generation, sender.clone()));
        Ok((generation, sender))
    }

    async fn send_h1(
        &self,
        endpoint: &Endpoint,
        slot: &Slot,
        outgoing: &Outgoing,
    ) -> Result<Reply, SendError> {
        loop {
            let request = outgoing.request(endpoint, Http::One)?;
            let idle = slot.h1.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let (mut sender, reused) = match idle {
                Some(sender) if sender.is_ready() => (sender, true),
                Some(_) => continue,
                None => match self.connect(endpoint, Http::One).await? {
                    Connected::One(sender) => (sender, false),
                    Connected::Two(_) => {
                        return Err(SendError::Connect("not an HTTP/1.1 connection".to_owned()));
                    }
                },
            };
            match sender.send_request(request).await {
                // The node closed an idle connection before the request left: not sent.
                Err(error) if reused && error.is_canceled() => continue,
                Err(error) => return Err(SendError::Lost(error.to_string())),
                Ok(response) => {
                    let reply = read(response).await?;
                    if sender.is_ready() {
                        let mut idle = slot.h1.lock().unwrap_or_else(PoisonError::into_inner);
                        if idle.len() < MAX_IDLE_HTTP1 {
                            idle.push(sender);
                        }
                    }
                    return Ok(reply);
                }
            }
        }
    }

    /// A new connection to `endpoint`, within the connect timeout.
    async fn connect(&self, endpoint: &Endpoint, http: Http) -> Result<Connected, SendError> {
        let timeout = self.config.connect_timeout;
        tokio::time::timeout(timeout, self.dial(endpoint, http))
            .await
            .map_err(|_| SendError::Connect(format!("no connection within {timeout:?}")))?
            .map_err(SendError::Connect)
    }

    async fn dial(&self, endpoint: &Endpoint, http: Http) -> Result<Connected, String> {
        let stream = TcpStream::connect(&*endpoint.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%endpoint, %error, "cannot set TCP_NODELAY");
        }
        if !endpoint.tls {
            return handshake(stream, http).await;
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.config.tls {
            let stream = tls.connect(endpoint.host(), stream).await?;
            return handshake(stream, http).await;
        }
        Err(format!(
            "{endpoint} is an https endpoint and the client has no TLS configuration"
        ))
    }
}

/// Which handshake to make.
#[derive(Clone, Copy, Debug)]
enum Http {
    One,
    Two,
}

/// A new connection's sender.
enum Connected {
    One(http1::SendRequest<Body>),
    Two(http2::SendRequest<Body>),
}

/// The HTTP handshake on a connected stream; the connection's task runs on its own until the
/// connection closes.
async fn handshake<T>(stream: T, http: Http) -> Result<Connected, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    match http {
        Http::Two => {
            let mut builder = http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                .keep_alive_while_idle(true);
            let (sender, connection) = builder
                .handshake::<_, Body>(io)
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "HTTP/2 connection closed");
                }
            });
            Ok(Connected::Two(sender))
        }
        Http::One => {
            let (sender, connection) = http1::Builder::new()
                .handshake::<_, Body>(io)
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "HTTP/1.1 connection closed");
                }
            });
            Ok(Connected::One(sender))
        }
    }
}

/// Reads the whole answer.
async fn read(response: hyper::Response<hyper::body::Incoming>) -> Result<Reply, SendError> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| SendError::Lost(format!("reading the answer: {e}")))?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
