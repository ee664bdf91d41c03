//! The client API: `/kv/{key}`, `/kv/{key}/incr`, the batch route `POST /kv` and `/status`.
//!
//! Keys are one percent-encoded path segment (`/kv/a%2Fb` is the key `a/b`). Writes and
//! linearizable reads on a follower answer 307 with the leader's URL (`curl -L` follows it;
//! `https://` when the node speaks TLS); every failure is a 4xx/5xx with a one-line message.
//! With an API token, writes without it get 401 before anything else (see [`crate::auth`]).
//!
//! Every key has a version, the log index of the write that last set it: a `GET` answers it as
//! `ETag: "<index>"`, and so does a write for itself. `If-Match: "<n>"` makes a write apply
//! only if the key is at version n (compare-and-swap), `If-None-Match: *` only if it is absent
//! (create only); otherwise it answers 412 with the current `ETag`. `POST /kv` applies up to
//! [`MAX_BATCH_OPS`] operations as one log entry, with one result each.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use percent_encoding::percent_decode_str;
use raft_wrapper::{Applied, ClientId, Error as WrapperError, Replica, RequestId};

use crate::admin::Admin;
use crate::auth::Bearer;
pub use crate::batch::{MAX_BATCH_OPS, MAX_KEY_BYTES};
use crate::cas::{condition, write_response};
use crate::command::{Condition, KvCommand, KvOp, OpKind};
pub use crate::params::{CLIENT_ID_HEADER, REQUEST_ID_HEADER};
use crate::params::{Consistency, consistency, session_ids};
pub use crate::reply::{ANSWER_LOST_HEADER, DUPLICATE_HEADER, INDEX_HEADER};
use crate::reply::{Refusal, finish, text, with_etag};
use crate::request_metrics::{OPS, RequestMetrics};
use crate::state::KvState;
pub use crate::status::StatusDoc;
use crate::status::status;

/// The client API of one node.
#[derive(Clone, Debug)]
pub struct KvApi {
    replica: Replica,
    state: KvState,
    max_value_bytes: usize,
    max_batch_bytes: usize,
    read_timeout: Duration,
    body_timeout: Duration,
    metrics: Arc<RequestMetrics>,
    admin: Admin,
    /// The API token writes must carry, if set.
    writes: Bearer,
    /// The cluster secret, which guards the admin routes when there is no API token.
    admin_secret: Option<String>,
    /// `http`, or `https` when the listener speaks TLS: the scheme of the URLs it gives out.
    scheme: &'static str,
}

/// Limits of the client API. `#[non_exhaustive]`: start from [`ApiConfig::default`] and set
/// fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Values over this many bytes are refused with 413.
    pub max_value_bytes: usize,
    /// Batch bodies (`POST /kv`) over this many bytes are refused with 413.
    pub max_batch_bytes: usize,
    /// A linearizable read waits this long for the leader's confirmation (then 504).
    pub read_timeout: Duration,
    /// A request body must arrive within this time (then 408), so slow clients do not hold
    /// connections the peers need.
    pub body_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            max_value_bytes: 1 << 20,
            max_batch_bytes: 4 << 20,
            read_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// The `op` label of requests that name no route.
const INVALID: usize = OPS.len() - 1;

/// What a request asks for.
enum Operation {
    Get {
        key: Bytes,
        consistency: Consistency,
    },
    Put {
        key: Bytes,
    },
    Delete {
        key: Bytes,
    },
    Incr {
        key: Bytes,
    },
    Batch,
    Status,
}

impl Operation {
    /// Its `op` label, as an index into [`OPS`].
    fn label(&self) -> usize {
        match self {
            Operation::Get { .. } => 0,
            Operation::Put { .. } => 1,
            Operation::Delete { .. } => 2,
            Operation::Incr { .. } => 3,
            Operation::Batch => 4,
            Operation::Status => 5,
        }
    }

    /// Whether it changes the map (and needs the API token, when there is one).
    fn writes(&self) -> bool {
        matches!(
            self,
            Operation::Put { .. }
                | Operation::Delete { .. }
                | Operation::Incr { .. }
                | Operation::Batch
        )
    }
}

impl KvApi {
    /// The API over `replica`, whose application state machine is `state`.
    #[must_use]
    pub fn new(replica: Replica, state: KvState, config: ApiConfig) -> KvApi {
        KvApi {
            metrics: Arc::new(RequestMetrics::new(replica.node().id().0.to_string())),
            admin: Admin::new(replica.clone(), Bearer::default(), "http"),
            replica,
            state,
            max_value_bytes: config.max_value_bytes,
            max_batch_bytes: config.max_batch_bytes,
            read_timeout: config.read_timeout,
            body_timeout: config.body_timeout,
            writes: Bearer::default(),
            admin_secret: None,
            scheme: "http",
        }
    }

    /// Guards the admin routes (`/admin/...`) with the cluster secret when there is no API
    /// token: they then want `Authorization: Bearer <secret>`.
    #[must_use]
    pub fn with_admin_secret(mut self, secret: Option<String>) -> KvApi {
        self.admin_secret = secret;
        self.rebuild_admin()
    }

    /// Guards writes and the admin routes with an API token (see [`crate::auth`]): they then
    /// want `Authorization: Bearer <token>` (401 otherwise); reads stay open.
    #[must_use]
    pub fn with_api_token(mut self, token: Option<String>) -> KvApi {
        self.writes = Bearer::new(token.as_deref(), "API token");
        self.rebuild_admin()
    }

    /// Whether the listener speaks TLS: redirects and `/status` then give `https://` URLs.
    #[must_use]
    pub fn with_tls(mut self, tls: bool) -> KvApi {
        self.scheme = if tls { "https" } else { "http" };
        self.rebuild_admin()
    }

    fn rebuild_admin(mut self) -> KvApi {
        let guard = if self.writes.is_set() {
            self.writes.clone()
        } else {
            Bearer::new(self.admin_secret.as_deref(), "cluster secret")
        };
        self.admin = Admin::new(self.replica.clone(), guard, self.scheme);
        self
    }

    /// Answers one request (never fails: errors become 4xx/5xx responses).
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        if Admin::owns(request.uri().path()) {
            return self.admin.handle(request).await;
        }
        let started = tokio::time::Instant::now();
        let (label, response) = match route(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        ) {
            Ok(operation) => {
                let label = operation.label();
                let response = if operation.writes() && !self.writes.allows(request.headers()) {
                    let message = self.writes.refusal("writes");
                    Refusal::new(StatusCode::UNAUTHORIZED, message).into_response()
                } else {
                    match self.run(operation, request).await {
                        Ok(response) => response,
                        Err(refusal) => refusal.into_response(),
                    }
                };
                (label, response)
            }
            Err(refusal) => (INVALID, refusal.into_response()),
        };
        self.metrics
            .record(label, response.status(), started.elapsed());
        response
    }

    async fn run<B>(
        &self,
        operation: Operation,
        request: Request<B>,
    ) -> Result<Response<Full<Bytes>>, Refusal>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        // Kept for a redirect's `Location` (a clone shares the request's bytes).
        let uri = request.uri().clone();
        match operation {
            Operation::Status => Ok(status(&self.replica, self.state.len(), self.scheme)),
            Operation::Get { key, consistency } => {
                if consistency != Consistency::Stale {
                    let node = self.replica.node();
                    let read = async {
                        match consistency {
                            Consistency::Lease => node.lease_read().await,
                            // A follower serves it itself with a read index from the leader.
                            _ => node.follower_read().await,
                        }
                    };
                    match tokio::time::timeout(self.read_timeout, read).await {
                        Err(_) => {
                            return Err(Refusal::new(
                                StatusCode::GATEWAY_TIMEOUT,
                                "the read could not be confirmed by a quorum in time; retry",
                            ));
                        }
                        Ok(Err(error)) => {
                            return Err(refusal(WrapperError::from(error), self.scheme, &uri));
                        }
                        Ok(Ok(_)) => {}
                    }
                }
                Ok(match self.state.get_versioned(&key) {
                    Some((value, version)) => with_etag(
                        finish(
                            Response::builder().header(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("application/octet-stream"),
                            ),
                            value,
                        ),
                        version,
                    ),
                    None => text(StatusCode::NOT_FOUND, "no such key"),
                })
            }
            Operation::Put { key } => self.single(OpKind::Put, key, request, &uri).await,
            Operation::Delete { key } => self.single(OpKind::Delete, key, request, &uri).await,
            Operation::Incr { key } => self.single(OpKind::Incr, key, request, &uri).await,
            Operation::Batch => {
                let ids = session_ids(request.headers())?;
                let binary = crate::binary_batch::is_binary(request.headers());
                let body = self
                    .read_body(request, self.max_batch_bytes, "batch bodies")
                    .await?;
                if binary {
                    let command = crate::binary_batch::parse(body, self.max_value_bytes)?;
                    let applied = self.write(command, ids, &uri).await?;
                    return Ok(crate::binary_batch::response(&applied));
                }
                let command = crate::batch::parse(&body, self.max_value_bytes)?;
                let applied = self.write(command, ids, &uri).await?;
                Ok(crate::batch::response(&applied))
            }
        }
    }

    /// A write of one key, conditional when the request carries `If-Match` or
    /// `If-None-Match`.
    async fn single<B>(
        &self,
        kind: OpKind,
        key: Bytes,
        request: Request<B>,
        uri: &Uri,
    ) -> Result<Response<Full<Bytes>>, Refusal>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        let ids = session_ids(request.headers())?;
        let condition = condition(request.headers())?;
        let value = match kind {
            OpKind::Put => {
                self.read_body(request, self.max_value_bytes, "values")
                    .await?
            }
            OpKind::Delete | OpKind::Incr => Bytes::new(),
        };
        // Unconditional writes keep the encoding older nodes read.
        let command = match (condition, kind) {
            (Condition::Always, OpKind::Put) => KvCommand::Put { key, value },
            (Condition::Always, OpKind::Delete) => KvCommand::Delete { key },
            (Condition::Always, OpKind::Incr) => KvCommand::Incr { key },
            (condition, kind) => KvCommand::Conditional(KvOp {
                kind,
                key,
                value,
                condition,
            }),
        };
        let applied = self.write(command.encode(), ids, uri).await?;
        Ok(write_response(kind, &applied))
    }

    async fn write(
        &self,
        payload: Bytes,
        ids: Option<(ClientId, RequestId)>,
        uri: &Uri,
    ) -> Result<Applied, Refusal> {
        let result = match ids {
            Some((client, request)) => self.replica.submit(client, request, payload).await,
            None => self.replica.execute(payload).await,
        };
        result.map_err(|error| refusal(error, self.scheme, uri))
    }

    /// The request's body, up to `limit` bytes (`what` names them in the 413's message).
    async fn read_body<B>(
        &self,
        request: Request<B>,
        limit: usize,
        what: &str,
    ) -> Result<Bytes, Refusal>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{what} are limited to {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .and_then(|length| length.parse::<usize>().ok());
        if let Some(length) = declared
            && length > limit
        {
            // A connection closed with bytes of the request unread is reset, and the reset can
            // destroy the 413 on its way: a body at most twice the limit is read and dropped
            // first (within the body timeout), so the client gets the answer. A larger one is
            // refused at once.
            if length <= limit.saturating_mul(2) {
                let mut body = std::pin::pin!(request.into_body());
                let discard = async { while let Some(Ok(_)) = body.frame().await {} };
                let _ = tokio::time::timeout(self.body_timeout, discard).await;
            }
            return Err(too_large());
        }
        let mut read = std::pin::pin!(Limited::new(request.into_body(), limit).collect());
        // A body that has already arrived (a small value usually comes with its headers) is
        // taken without arming a timer.
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        let read = match first {
            Poll::Ready(read) => read,
            Poll::Pending => match tokio::time::timeout(self.body_timeout, read).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(Refusal::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("the body did not arrive within {:?}", self.body_timeout),
                    ));
                }
            },
        };
        match read {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Err(error) => Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {error}"),
            )),
        }
    }
}

/// Parses method and path into an operation, or the refusal.
fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Operation, Refusal> {
    if path == "/status" {
        return match *method {
            Method::GET => Ok(Operation::Status),
            _ => Err(not_allowed("GET")),
        };
    }
    if path == "/kv" {
        return match *method {
            Method::POST => Ok(Operation::Batch),
            _ => Err(not_allowed("POST")),
        };
    }
    let Some(rest) = path.strip_prefix("/kv/") else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no such route (try /kv/{key}, POST /kv or /status)",
        ));
    };
    let mut segments = rest.split('/');
    let raw_key = segments.next().unwrap_or_default();
    let action = segments.next();
    if segments.next().is_some() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no such route (encode a / in a key as %2F)",
        ));
    }
    if raw_key.is_empty() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "the key is empty"));
    }
    let key = Bytes::from(percent_decode_str(raw_key).collect::<Vec<u8>>());
    if key.len() > MAX_KEY_BYTES {
        return Err(Refusal::new(
            StatusCode::URI_TOO_LONG,
            format!("keys are limited to {MAX_KEY_BYTES} bytes"),
        ));
    }
    match (action, method) {
        (None, &Method::GET) => Ok(Operation::Get {
            key,
            consistency: consistency(query)?,
        }),
        (None, &Method::PUT) => Ok(Operation::Put { key }),
        (None, &Method::DELETE) => Ok(Operation::Delete { key }),
        (None, _) => Err(not_allowed("GET, PUT, DELETE")),
        (Some("incr"), &Method::POST) => Ok(Operation::Incr { key }),
        (Some("incr"), _) => Err(not_allowed("POST")),
        (Some(_), _) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no such route (the only action is /incr)",
        )),
    }
}

fn not_allowed(allow: &'static str) -> Refusal {
    not_allowed_message(allow).with_header(header::ALLOW, allow.to_owned())
}

fn not_allowed_message(allow: &'static str) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; use {allow}"),
    )
}

/// The response for a failed write or read.
fn refusal(error: WrapperError, scheme: &str, uri: &Uri) -> Refusal {
    let status = match &error {
        WrapperError::NotLeader { leader: Some(hint) } => {
            let location = uri
                .path_and_query()
                .map_or_else(|| uri.path(), |pq| pq.as_str());
            let url = format!("{scheme}://{}{location}", hint.address);
            return Refusal::new(
                StatusCode::TEMPORARY_REDIRECT,
                format!("the leader is at {url}"),
            )
            .with_header(header::LOCATION, url);
        }
        // Known not applied: retry.
        WrapperError::NotLeader { leader: None }
        | WrapperError::Overloaded
        | WrapperError::Shutdown
        | WrapperError::Discarded => StatusCode::SERVICE_UNAVAILABLE,
        // The outcome is unknown (the write may be applied): never reported as a plain failure.
        WrapperError::Timeout | WrapperError::Aborted => StatusCode::GATEWAY_TIMEOUT,
        WrapperError::StaleRequest { .. } => StatusCode::CONFLICT,
        // A retry of a write applied at `index` whose answer was too large to keep (a big
        // batch's): 409, with the index it was applied at, so a client knows it was applied.
        WrapperError::ResultNotKept { index, .. } => {
            let index = index.0.to_string();
            return Refusal::new(StatusCode::CONFLICT, error.to_string())
                .with_header(header::HeaderName::from_static(ANSWER_LOST_HEADER), index);
        }
        WrapperError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Refusal::new(status, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(method: Method, path: &str) -> Option<StatusCode> {
        route(&method, path, None)
            .err()
            .map(|refusal| refusal.status)
    }

    #[test]
    fn keys_over_the_limit_are_refused_as_too_long() {
        let longest = format!("/kv/{}", "k".repeat(MAX_KEY_BYTES));
        assert!(matches!(
            route(&Method::PUT, &longest, None),
            Ok(Operation::Put { key }) if key.len() == MAX_KEY_BYTES
        ));
        // Counted after percent-decoding: three bytes of path per key byte here.
        let longer = format!("/kv/{}", "%41".repeat(MAX_KEY_BYTES + 1));
        let refused = route(&Method::PUT, &longer, None).map(|_| ()).unwrap_err();
        assert_eq!(refused.status, StatusCode::URI_TOO_LONG);
    }

    #[test]
    fn routes_parse_keys_and_refuse_the_rest() {
        assert!(
            matches!(route(&Method::GET, "/kv/a%2Fb", None), Ok(Operation::Get { key, consistency: Consistency::Linearizable }) if key == "a/b")
        );
        assert!(matches!(
            route(&Method::GET, "/kv/x", Some("stale=true")),
            Ok(Operation::Get {
                consistency: Consistency::Stale,
                ..
            })
        ));
        assert!(matches!(
            route(&Method::GET, "/kv/x", Some("consistency=lease")),
            Ok(Operation::Get {
                consistency: Consistency::Lease,
                ..
            })
        ));
        assert!(matches!(
            route(&Method::GET, "/kv/x", Some("consistency=eventual")),
            Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                ..
            })
        ));
        assert!(matches!(
            route(&Method::POST, "/kv/n/incr", None),
            Ok(Operation::Incr { .. })
        ));
        assert!(matches!(
            route(&Method::POST, "/kv", None),
            Ok(Operation::Batch)
        ));
        assert_eq!(
            status_of(Method::GET, "/kv"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(status_of(Method::GET, "/nope"), Some(StatusCode::NOT_FOUND));
        assert_eq!(
            status_of(Method::GET, "/kv/a/b/c"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status_of(Method::GET, "/kv/"),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status_of(Method::POST, "/kv/a"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status_of(Method::GET, "/kv/a/incr"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status_of(Method::PUT, "/status"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert!(matches!(
            route(&Method::GET, "/kv/x", Some("stale=maybe")),
            Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                ..
            })
        ));
    }
}
