//! [`RaftService`]: the peer endpoint as a hyper service that forwards each request to any
//! [`ServiceHandler`] (a raft-core `Node`, or a fake in tests), plus the `/metrics` route.
//!
//! It is a router, not a server: an application mounts it beside its own routes by calling
//! [`RaftService::route`] first and falling back to its own routing when it hands the request
//! back; or it serves it alone with [`Server`](crate::Server). AppendEntries reach the handler
//! in the order they arrived on their connection (`order.rs`). Checks run in this order, each
//! refusing with its own status before any work is done: route (404), method (405), cluster id
//! and secret (401/403: the handler is never called), a client certificate when one is required
//! (401), content type (415), declared size (413); then the body is read under the size limit
//! (413) and a time limit (408), decoded (400), its sender checked against the client
//! certificate's names when there is one (403, see [`crate::tls`]) and handed to the handler.
//!
//! Snapshot chunks (`/raft/v1/snapshot`) go through the same checks under their own size limit
//! (see `service_config.rs`): one request carries one chunk, decoded without copying its data,
//! so a server holds at most a chunk of a snapshot per request. They take no place in the
//! AppendEntries line: a leader sends a follower no AppendEntries while it sends it a snapshot,
//! so there is no order to keep between the two, and a slow chunk never holds up an append.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response};
use metrics::Label;
use metrics_exporter_prometheus::PrometheusHandle;
use raft_core::{NodeId, ServiceHandler};
use tracing::debug;

use crate::body::ResponseBody;
use crate::codec::{self, CONTENT_TYPE};
use crate::error::ErrorCode;
use crate::metrics::{node_labels, record_request, server_sent_bytes};
use crate::order::{ConnectionOrder, Sequencer, Ticket};
use crate::refusal::{Failure, check_headers, check_sender, failure_response, too_large};
use crate::routes::{Route, Rpc};
use crate::service_config::ServiceConfig;
use crate::stream_route;
use crate::tls::PeerCertificate;

/// The future of one answer.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

/// Where [`RaftService::route`] sent a request.
// Returned once per request and matched at once: boxing the request would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Routed<B> {
    /// One of raft-http's paths: the future of the answer.
    Raft(ResponseFuture),
    /// Not raft-http's: the request, untouched, for the application's own routes.
    Elsewhere(Request<B>),
}

/// The peer endpoint as a cheap, cloneable hyper service.
///
/// ```
/// use std::sync::Arc;
/// use hyper::{Request, Response, StatusCode};
/// use raft_http::{ClusterAuth, RaftService, ResponseBody, Routed, ServiceConfig};
/// # use raft_core::message::*;
/// # struct MyHandler;
/// # #[async_trait::async_trait]
/// # impl raft_core::ServiceHandler for MyHandler {
/// #     async fn append_entries(&self, _: AppendEntries) -> Result<AppendEntriesResponse, raft_core::Error> { Err(raft_core::Error::Shutdown) }
/// #     async fn request_vote(&self, _: RequestVote) -> Result<RequestVoteResponse, raft_core::Error> { Err(raft_core::Error::Shutdown) }
/// #     async fn timeout_now(&self, _: TimeoutNow) -> Result<(), raft_core::Error> { Ok(()) }
/// #     async fn install_snapshot(&self, _: InstallSnapshot) -> Result<InstallSnapshotResponse, raft_core::Error> { Err(raft_core::Error::Shutdown) }
/// # }
///
/// # async fn example() -> Result<(), raft_http::Error> {
/// // `node` is a raft_core::Node in a real program; any ServiceHandler will do.
/// let node: Arc<dyn raft_core::ServiceHandler> = Arc::new(MyHandler);
/// let raft = RaftService::new(node, ServiceConfig::new(ClusterAuth::new("my-cluster")?));
///
/// // An application's own router: raft-http's routes first, then the application's. The
/// // routing runs synchronously in the service call, before the future (see `route`).
/// let app = move |request: Request<hyper::body::Incoming>| {
///     let routed = raft.route(request);
///     async move {
///         match routed {
///             Routed::Raft(answer) => Ok::<_, std::convert::Infallible>(answer.await),
///             Routed::Elsewhere(_request) => Ok(Response::builder()
///                 .status(StatusCode::OK)
///                 .body(ResponseBody::from("the application's own route"))
///                 .unwrap_or_default()),
///         }
///     }
/// };
/// let service = hyper::service::service_fn(app);
/// # let _ = service;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RaftService {
    handler: Arc<dyn ServiceHandler>,
    config: Arc<ServiceConfig>,
    metrics: Option<PrometheusHandle>,
    node_labels: Arc<[Label]>,
    /// The line of AppendEntries that come without a per-connection one (see `order.rs`).
    sequencer: Arc<Sequencer>,
}

impl<B> std::fmt::Debug for Routed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Routed::Raft(_) => f.write_str("Routed::Raft(..)"),
            Routed::Elsewhere(request) => f
                .debug_tuple("Routed::Elsewhere")
                .field(request.uri())
                .finish(),
        }
    }
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService")
            .field("config", &self.config)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl RaftService {
    /// A service forwarding to `handler`, without a `/metrics` route. A snapshot body limit
    /// over [`MAX_SNAPSHOT_BODY_BYTES`](crate::MAX_SNAPSHOT_BODY_BYTES) is lowered to it.
    #[must_use]
    pub fn new(handler: Arc<dyn ServiceHandler>, config: ServiceConfig) -> RaftService {
        let config = config.clamped();
        RaftService {
            handler,
            node_labels: node_labels(config.node).into(),
            config: Arc::new(config),
            metrics: None,
            sequencer: Arc::new(Sequencer::default()),
        }
    }

    /// Serves `/metrics` from this Prometheus handle (see
    /// [`install_prometheus_recorder`](crate::metrics::install_prometheus_recorder)). The route
    /// needs no cluster credentials, so a Prometheus server can scrape it.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> RaftService {
        self.metrics = Some(handle);
        self
    }

    /// Whether `path` is one of raft-http's (its RPC routes, anything under `/raft/`, and
    /// `/metrics` when a handle is set).
    #[must_use]
    pub fn handles(&self, path: &str) -> bool {
        match Route::of(path) {
            Some(Route::Metrics) => self.metrics.is_some(),
            Some(_) => true,
            None => false,
        }
    }

    /// Routes a request: for one of raft-http's paths, the future of its answer; for any other
    /// path, the request back untouched, so the caller can route it elsewhere.
    ///
    /// Call it synchronously from the hyper service's `call` (not from inside a future): the
    /// AppendEntries of one connection then reach the handler in the order they arrived (see
    /// the `order` module), which keeps a leader's pipelined requests in sequence. Under
    /// [`Server`](crate::Server) each connection has its own order; under another accept loop
    /// the whole service shares one.
    pub fn route<B>(&self, request: Request<B>) -> Routed<B>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<raft_core::BoxError>,
    {
        if !self.handles(request.uri().path()) {
            return Routed::Elsewhere(request);
        }
        let Some(route) = Route::of(request.uri().path()) else {
            return Routed::Elsewhere(request);
        };
        let ticket = match route {
            Route::Rpc(Rpc::Append) => Some(match request.extensions().get::<ConnectionOrder>() {
                Some(connection) => connection.0.ticket(),
                None => self.sequencer.ticket(),
            }),
            _ => None,
        };
        let service = self.clone();
        Routed::Raft(Box::pin(async move {
            let (response, received) = match route {
                Route::Rpc(Rpc::Stream) => {
                    let sent = server_sent_bytes(&service.node_labels, route.label());
                    let handler = service.handler.clone();
                    stream_route::open(handler, service.config.clone(), request, sent).await
                }
                Route::Rpc(rpc) => service.rpc(rpc, request, ticket).await,
                Route::Metrics => (service.metrics(request.method()), 0),
                Route::UnknownRaft => (
                    failure_response(Failure::new(ErrorCode::NotFound, "no such route")),
                    0,
                ),
            };
            let sent = response.body().size_hint().exact().unwrap_or(0) as usize;
            record_request(
                &service.node_labels,
                route.label(),
                response.status(),
                received,
                sent,
            );
            response
        }))
    }

    /// Answers any request: raft-http's routes, 404 for everything else. Call it synchronously
    /// from the service's `call`, as [`route`](RaftService::route).
    pub fn respond<B>(&self, request: Request<B>) -> ResponseFuture
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<raft_core::BoxError>,
    {
        match self.route(request) {
            Routed::Raft(answer) => answer,
            Routed::Elsewhere(_) => Box::pin(async {
                failure_response(Failure::new(ErrorCode::NotFound, "no such route"))
            }),
        }
    }

    /// One RPC: the response and the body bytes received.
    async fn rpc<B>(
        &self,
        rpc: Rpc,
        request: Request<B>,
        ticket: Option<Ticket>,
    ) -> (Response<ResponseBody>, usize)
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        let peer = request.extensions().get::<PeerCertificate>().cloned();
        let body = match self.read_body(request, self.config.body_limit(rpc)).await {
            Ok(body) => body,
            Err(failure) => return (failure_response(failure), 0),
        };
        let received = body.len();
        let response = match self.dispatch(rpc, body, ticket, peer.as_ref()).await {
            Ok(answer) => Response::builder()
                .header(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))
                .body(ResponseBody::from(answer))
                .unwrap_or_default(),
            Err(failure) => {
                debug!(route = rpc.label(), code = %failure.code, message = %failure.message, "request refused");
                failure_response(failure)
            }
        };
        (response, received)
    }

    /// Every check before the handler, then the body under the size limit `limit`.
    async fn read_body<B>(&self, request: Request<B>, limit: usize) -> Result<Bytes, Failure>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        check_headers(&self.config, &request)?;
        let body = request.into_body();
        let declared = declared_length(&body);
        if declared > limit as u64 {
            return Err(too_large(limit));
        }
        let timeout = self.config.body_read_timeout;
        match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(error)) if error.is::<LengthLimitError>() => Err(too_large(limit)),
            Ok(Err(error)) => Err(Failure::new(
                ErrorCode::Malformed,
                format!("cannot read the body: {error}"),
            )),
            Err(_) => Err(Failure::new(
                ErrorCode::BodyTimeout,
                format!("the body did not arrive within {timeout:?}"),
            )),
        }
    }

    async fn dispatch(
        &self,
        rpc: Rpc,
        body: Bytes,
        ticket: Option<Ticket>,
        peer: Option<&PeerCertificate>,
    ) -> Result<Bytes, Failure> {
        let encoded = match rpc {
            Rpc::Append => {
                let request = codec::decode_append_entries(&body)?;
                drop(body);
                self.check_sender(peer, request.leader_id)?;
                let answer = match ticket {
                    Some(ticket) => {
                        if !ticket.wait_turn(self.config.order_wait_max).await {
                            debug!("an earlier AppendEntries is late; not waiting for it");
                        }
                        let call = self.handler.append_entries(request);
                        in_order(call, ticket).await?
                    }
                    None => self.handler.append_entries(request).await?,
                };
                codec::encode(&answer)
            }
            Rpc::Vote => {
                let request: raft_core::message::RequestVote = codec::decode(&body)?;
                self.check_sender(peer, request.candidate_id)?;
                let answer = self.handler.request_vote(request).await?;
                codec::encode(&answer)
            }
            Rpc::TimeoutNow => {
                let request: raft_core::message::TimeoutNow = codec::decode(&body)?;
                self.check_sender(peer, request.leader_id)?;
                self.handler.timeout_now(request).await?;
                codec::encode(&())
            }
            Rpc::Snapshot => {
                let request = codec::decode_install_snapshot(&body)?;
                // The chunk's data is a slice of the body: the buffer now lives as long as it.
                drop(body);
                self.check_sender(peer, request.leader_id)?;
                let answer = self.handler.install_snapshot(request).await?;
                codec::encode(&answer)
            }
            Rpc::ReadIndex => {
                let request: raft_core::message::ReadIndex = codec::decode(&body)?;
                self.check_sender(peer, request.follower_id)?;
                let answer = self.handler.read_index(request).await?;
                codec::encode(&answer)
            }
            Rpc::Stream => {
                // Routed to `stream_route` before any body is read.
                return Err(Failure::new(
                    ErrorCode::Internal,
                    "an entry stream is not a single exchange",
                ));
            }
        };
        encoded.map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))
    }

    /// With a client certificate, the request's sender must be a node it names.
    fn check_sender(&self, peer: Option<&PeerCertificate>, sender: NodeId) -> Result<(), Failure> {
        check_sender(&self.config, peer, sender)
    }

    fn metrics(&self, method: &Method) -> Response<ResponseBody> {
        let Some(handle) = &self.metrics else {
            return failure_response(Failure::new(ErrorCode::NotFound, "no metrics here"));
        };
        if method != Method::GET && method != Method::HEAD {
            return failure_response(Failure {
                allow: "GET, HEAD",
                ..Failure::new(ErrorCode::MethodNotAllowed, "use GET")
            });
        }
        let text = if method == Method::GET {
            handle.render()
        } else {
            String::new()
        };
        Response::builder()
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )
            .body(ResponseBody::from(text))
            .unwrap_or_default()
    }
}

/// Polls the handler's call once (a raft-core `Node` queues the request for its event loop on
/// that first poll), lets the next request in line go, then waits for the answer.
async fn in_order<T>(call: impl Future<Output = T>, ticket: Ticket) -> T {
    tokio::pin!(call);
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    ticket.finish();
    match first {
        Poll::Ready(answer) => answer,
        Poll::Pending => call.await,
    }
}

/// The body's declared length (Content-Length, or what HTTP/2 framing tells), 0 if unknown.
fn declared_length<B: Body>(body: &B) -> u64 {
    body.size_hint().lower()
}

impl hyper::service::Service<Request<Incoming>> for RaftService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // Routed here, synchronously, so tickets follow the connection's stream order.
        let answer = self.respond(request);
        Box::pin(async move { Ok(answer.await) })
    }
}
