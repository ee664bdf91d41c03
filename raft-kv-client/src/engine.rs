//! [`Engine`]: one logical call, attempted until it gets an answer or its deadline passes.
//!
//! Each attempt goes to the leader when one is known (else to the configured endpoints in
//! turn) and is bounded by the request timeout. A 307 names the leader: it is remembered and
//! the call goes there at once. A 503 (no leader, overloaded, shutting down), a 504 or 502, a
//! failed connection or an attempt that timed out make the call forget that node as the leader
//! and try again after a short, growing, jittered pause. A write keeps the same client and
//! request ids on every attempt, so the server applies it at most once and answers a retry of
//! an applied write from its record. Any other answer ends the call.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use tokio::time::Instant;

use crate::endpoint::Endpoint;
use crate::error::{Error, TransportError};
use crate::pool::{Outgoing, Pool, Reply, SendError};
use crate::route::{Router, Target};
use crate::session::{Sessions, random_id};

/// Request header: the client's id, for exactly-once writes.
pub(crate) const CLIENT_ID_HEADER: &str = "client-id";
/// Request header: the write's id (increasing per client id; the same on every retry).
pub(crate) const REQUEST_ID_HEADER: &str = "request-id";

/// The first pause between attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(640);
/// Redirects followed in a row before pausing (two nodes naming each other during an
/// election).
const MAX_REDIRECTS: u32 = 4;

/// How long a call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Each attempt (one request and its answer).
    pub(crate) request: Duration,
    /// The whole call, retries included.
    pub(crate) deadline: Duration,
}

/// One logical call.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// Path and query.
    pub(crate) path: String,
    /// Headers beside the session and token ones (`If-Match`, `Content-Type`).
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) target: Target,
    /// Whether it writes: it then carries session ids, and an attempt that may have reached
    /// the server makes its outcome unknown until an answer arrives.
    pub(crate) write: bool,
}

impl Call {
    /// A call without body or extra headers.
    pub(crate) fn new(method: Method, path: String, target: Target, write: bool) -> Call {
        Call {
            method,
            path,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            target,
            write,
        }
    }
}

/// What the client shares between its clones: routing, connections, sessions, token.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) router: Router,
    pub(crate) pool: Pool,
    pub(crate) sessions: Sessions,
    /// `Bearer <token>`, sent with every request.
    pub(crate) authorization: Option<HeaderValue>,
}

/// What the attempts so far tell, for the error at the deadline.
#[derive(Debug)]
struct Attempts {
    /// A write's attempt may have been applied.
    maybe_applied: bool,
    last: Last,
    /// Failures since the last pause or redirect.
    failures: usize,
    redirects: u32,
    pause: Duration,
}

/// The last failure.
#[derive(Debug)]
enum Last {
    None,
    NoLeader(String),
    Transport(TransportError),
    Timeout,
}

impl Engine {
    /// Runs `call` until an answer that ends it (any but a redirect, 502, 503 or 504), or the
    /// deadline.
    pub(crate) async fn execute(&self, call: Call, timeouts: Timeouts) -> Result<Reply, Error> {
        let lease = call.write.then(|| self.sessions.lease());
        let mut headers = call.headers;
        if let Some(lease) = &lease {
            let (client, request) = lease.ids();
            headers.insert(CLIENT_ID_HEADER, HeaderValue::from(client));
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from(request));
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        let outgoing = Outgoing {
            method: call.method,
            path: call.path,
            headers,
            body: call.body,
        };
        let deadline = Instant::now() + timeouts.deadline;
        let mut attempts = Attempts {
            maybe_applied: false,
            last: Last::None,
            failures: 0,
            redirects: 0,
            pause: FIRST_PAUSE,
        };
        let mut redirected: Option<Endpoint> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(attempts.give_up(timeouts.deadline));
            }
            let endpoint = match redirected.take() {
                Some(endpoint) => endpoint,
                None => self
                    .router
                    .pick(call.target)
                    .ok_or_else(|| Error::Config("no endpoints".to_owned()))?,
            };
            let budget = timeouts.request.min(deadline - now);
            let sent = tokio::time::timeout(budget, self.pool.send(&endpoint, &outgoing)).await;
            let reply = match sent {
                Ok(Ok(reply)) => reply,
                Ok(Err(SendError::Connect(reason))) => {
                    self.failed(&mut attempts, &endpoint, reason, false);
                    self.pause(&mut attempts, deadline).await;
                    continue;
                }
                Ok(Err(SendError::Lost(reason))) => {
                    self.failed(&mut attempts, &endpoint, reason, call.write);
                    self.pause(&mut attempts, deadline).await;
                    continue;
                }
                Err(_) => {
                    tracing::debug!(%endpoint, ?budget, "no answer in time");
                    self.router.forget_leader(&endpoint);
                    attempts.maybe_applied |= call.write;
                    attempts.last = Last::Timeout;
                    attempts.failures = usize::MAX;
                    self.pause(&mut attempts, deadline).await;
                    continue;
                }
            };
            match reply.status {
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
                    let leader = reply
                        .headers
                        .get(header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Endpoint::from_location);
                    let Some(leader) = leader else {
                        return Err(Error::Protocol(format!(
                            "{endpoint} redirected without a usable Location"
                        )));
                    };
                    if endpoint.tls && !leader.tls {
                        // The request (and the API token) would leave in cleartext.
                        return Err(Error::Protocol(format!(
                            "{endpoint} redirected to {leader}, from HTTPS to plain HTTP: refused"
                        )));
                    }
                    self.router.set_leader(&leader);
                    redirected = Some(leader);
                    attempts.redirects += 1;
                    if attempts.redirects > MAX_REDIRECTS {
                        attempts.redirects = 0;
                        attempts.failures = usize::MAX;
                        self.pause(&mut attempts, deadline).await;
                    }
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    self.router.forget_leader(&endpoint);
                    attempts.last = Last::NoLeader(format!(
                        "{endpoint}: {}",
                        crate::answer::message(&reply.body)
                    ));
                    attempts.failures = usize::MAX;
                    self.pause(&mut attempts, deadline).await;
                }
                StatusCode::GATEWAY_TIMEOUT | StatusCode::BAD_GATEWAY => {
                    // The node could not finish it in time: maybe applied, maybe not.
                    self.router.forget_leader(&endpoint);
                    attempts.maybe_applied |= call.write;
                    attempts.last = Last::Timeout;
                    attempts.failures = usize::MAX;
                    self.pause(&mut attempts, deadline).await;
                }
                status => {
                    if call.write && status.is_success() {
                        self.router.set_leader(&endpoint);
                    }
                    return Ok(reply);
                }
            }
        }
    }

    /// A failed connection: forget the node as leader, note why.
    fn failed(&self, attempts: &mut Attempts, endpoint: &Endpoint, reason: String, sent: bool) {
        tracing::debug!(%endpoint, %reason, sent, "attempt failed");
        self.router.forget_leader(endpoint);
        attempts.maybe_applied |= sent;
        attempts.last = Last::Transport(TransportError {
            endpoint: endpoint.to_string(),
            reason,
        });
        attempts.failures = attempts.failures.saturating_add(1);
    }

    /// Pauses before the next attempt: at once to another node after a failed connection,
    /// until every configured node failed in a row; otherwise a growing, jittered pause.
    async fn pause(&self, attempts: &mut Attempts, deadline: Instant) {
        if attempts.failures < self.router.len() {
            return;
        }
        attempts.failures = 0;
        let pause = attempts.pause;
        attempts.pause = (pause * 2).min(MAX_PAUSE);
        // Between half and all of it, so clients that failed together do not retry together.
        let half = pause / 2;
        let jitter = Duration::from_micros(random_id() % (half.as_micros().max(1) as u64));
        let until = (Instant::now() + half + jitter).min(deadline);
        tokio::time::sleep_until(until).await;
    }
}

impl Attempts {
    /// The error when the deadline has passed.
    fn give_up(self, after: Duration) -> Error {
        if self.maybe_applied {
            return Error::Timeout {
                after,
                outcome_unknown: true,
            };
        }
        match self.last {
            Last::NoLeader(message) => Error::NoLeader { message },
            Last::Transport(error) => Error::Transport(error),
            Last::None | Last::Timeout => Error::Timeout {
                after,
                outcome_unknown: false,
            },
        }
    }
}
