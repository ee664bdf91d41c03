//! The client API: `/kv/{key}`, `/kv/{key}/incr` and `/status`.
//!
//! Keys are one percent-encoded path segment (`/kv/a%2Fb` is the key `a/b`). Writes and
//! linearizable reads on a follower answer 307 with the leader's URL (`curl -L` follows it;
//! `https://` when the node speaks TLS); every failure is a 4xx/5xx with a one-line message.
//! With an API token, writes without it get 401 before anything else (see [`crate::auth`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use raft_core::engine::RoleKind;
use raft_wrapper::{Applied, ClientId, Error as WrapperError, Replica, RequestId};
use serde::Serialize;

use crate::admin::Admin;
use crate::auth::Bearer;
use crate::command::{IncrAnswer, KvCommand};
pub use crate::params::{CLIENT_ID_HEADER, REQUEST_ID_HEADER};
use crate::params::{Consistency, consistency, session_ids};
use crate::reply::{Refusal, empty, finish, text};
use crate::state::KvState;

/// Response header: the log index at which a write was applied.
pub const INDEX_HEADER: &str = "raft-index";
/// Response header: `true` when a write was a retry of one applied before.
pub const DUPLICATE_HEADER: &str = "raft-duplicate";

/// The client API of one node.
#[derive(Clone, Debug)]
pub struct KvApi {
    replica: Replica,
    state: KvState,
    max_value_bytes: usize,
    read_timeout: Duration,
    body_timeout: Duration,
    node_label: String,
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
            read_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// The `/status` document.
#[derive(Clone, Debug, Serialize)]
pub struct StatusDoc {
    /// This node's id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: &'static str,
    /// The current term.
    pub term: u64,
    /// The leader this node knows, if any.
    pub leader: Option<u64>,
    /// The leader's URL, if known.
    pub leader_url: Option<String>,
    /// The commit index.
    pub commit_index: u64,
    /// The last index applied to the key-value map.
    pub applied_index: u64,
    /// The last index in this node's log.
    pub last_log_index: u64,
    /// The index of the latest snapshot (0: none).
    pub snapshot_index: u64,
    /// Keys held by this replica.
    pub keys: usize,
}

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
    Status,
}

impl Operation {
    fn label(&self) -> &'static str {
        match self {
            Operation::Get { .. } => "get",
            Operation::Put { .. } => "put",
            Operation::Delete { .. } => "delete",
            Operation::Incr { .. } => "incr",
            Operation::Status => "status",
        }
    }

    /// Whether it changes the map (and needs the API token, when there is one).
    fn writes(&self) -> bool {
        matches!(
            self,
            Operation::Put { .. } | Operation::Delete { .. } | Operation::Incr { .. }
        )
    }
}

impl KvApi {
    /// The API over `replica`, whose application state machine is `state`.
    #[must_use]
    pub fn new(replica: Replica, state: KvState, config: ApiConfig) -> KvApi {
        KvApi {
            node_label: replica.node().id().0.to_string(),
            admin: Admin::new(replica.clone(), Bearer::default(), "http"),
            replica,
            state,
            max_value_bytes: config.max_value_bytes,
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
            Err(refusal) => ("invalid", refusal.into_response()),
        };
        let node = self.node_label.clone();
        metrics::counter!("raft_kv_requests_total", "node" => node.clone(), "op" => label, "status" => response.status().as_u16().to_string())
            .increment(1);
        metrics::histogram!("raft_kv_request_seconds", "node" => node, "op" => label)
            .record(started.elapsed().as_secs_f64());
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
        let location = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |pq| pq.as_str().to_owned(),
        );
        match operation {
            Operation::Status => Ok(self.status()),
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
                            return Err(refusal(WrapperError::from(error), self.scheme, &location));
                        }
                        Ok(Ok(_)) => {}
                    }
                }
                Ok(match self.state.get(&key) {
                    Some(value) => finish(
                        Response::builder().header(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/octet-stream"),
                        ),
                        value,
                    ),
                    None => text(StatusCode::NOT_FOUND, "no such key"),
                })
            }
            Operation::Put { key } => {
                let ids = session_ids(request.headers())?;
                let value = self.read_value(request).await?;
                let applied = self
                    .write(KvCommand::Put { key, value }, ids, &location)
                    .await?;
                Ok(with_write_headers(empty(StatusCode::NO_CONTENT), &applied))
            }
            Operation::Delete { key } => {
                let ids = session_ids(request.headers())?;
                let applied = self
                    .write(KvCommand::Delete { key }, ids, &location)
                    .await?;
                Ok(with_write_headers(empty(StatusCode::NO_CONTENT), &applied))
            }
            Operation::Incr { key } => {
                let ids = session_ids(request.headers())?;
                let applied = self.write(KvCommand::Incr { key }, ids, &location).await?;
                let response = match IncrAnswer::decode(&applied.result) {
                    Ok(IncrAnswer::Value(value)) => text(StatusCode::OK, &value.to_string()),
                    Ok(IncrAnswer::Refused(reason)) => text(StatusCode::CONFLICT, &reason),
                    // A retry whose ids were first used for another command (a put, say): its
                    // stored answer is not an incr's.
                    Err(_) if applied.duplicate => text(
                        StatusCode::CONFLICT,
                        "these Client-Id/Request-Id were first used for a different command",
                    ),
                    Err(reason) => text(StatusCode::INTERNAL_SERVER_ERROR, &reason),
                };
                Ok(with_write_headers(response, &applied))
            }
        }
    }

    async fn write(
        &self,
        command: KvCommand,
        ids: Option<(ClientId, RequestId)>,
        location: &str,
    ) -> Result<Applied, Refusal> {
        let payload = command.encode();
        let result = match ids {
            Some((client, request)) => self.replica.submit(client, request, payload).await,
            None => self.replica.execute(payload).await,
        };
        result.map_err(|error| refusal(error, self.scheme, location))
    }

    async fn read_value<B>(&self, request: Request<B>) -> Result<Bytes, Refusal>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("values are limited to {} bytes", self.max_value_bytes),
            )
        };
        if let Some(length) = request.headers().get(header::CONTENT_LENGTH)
            && length
                .to_str()
                .ok()
                .and_then(|l| l.parse::<usize>().ok())
                .is_some_and(|l| l > self.max_value_bytes)
        {
            return Err(too_large());
        }
        let read = Limited::new(request.into_body(), self.max_value_bytes).collect();
        let Ok(read) = tokio::time::timeout(self.body_timeout, read).await else {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {:?}", self.body_timeout),
            ));
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

    fn status(&self) -> Response<Full<Bytes>> {
        let node = self.replica.node();
        let status = node.status();
        let doc = StatusDoc {
            id: status.id.0,
            role: match status.role {
                RoleKind::Leader => "leader",
                RoleKind::Follower => "follower",
                RoleKind::Candidate => "candidate",
                RoleKind::PreCandidate => "pre-candidate",
            },
            term: status.term.0,
            leader: status.leader.map(|l| l.0),
            leader_url: status
                .leader
                .and_then(|l| node.address_of(l))
                .map(|address| format!("{}://{address}", self.scheme)),
            commit_index: status.commit_index.0,
            applied_index: status.applied_index.0,
            last_log_index: status.last_log_index.0,
            snapshot_index: status.snapshot_index.0,
            keys: self.state.len(),
        };
        let mut body = serde_json::to_vec(&doc).unwrap_or_default();
        body.push(b'\n');
        finish(
            Response::builder().header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            Bytes::from(body),
        )
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
    let Some(rest) = path.strip_prefix("/kv/") else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "no such route (try /kv/{key} or /status)",
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
fn refusal(error: WrapperError, scheme: &str, location: &str) -> Refusal {
    let status = match &error {
        WrapperError::NotLeader { leader: Some(hint) } => {
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
        WrapperError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Refusal::new(status, error.to_string())
}

fn with_write_headers(
    mut response: Response<Full<Bytes>>,
    applied: &Applied,
) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    headers.insert(INDEX_HEADER, HeaderValue::from(applied.index.0));
    headers.insert(
        DUPLICATE_HEADER,
        HeaderValue::from_static(if applied.duplicate { "true" } else { "false" }),
    );
    response
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
