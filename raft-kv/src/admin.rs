//! The admin API: list the members, add a learner, promote learners, remove a member, or make
//! a change of several at once. JSON in and out.
//!
//! | route | body | does |
//! |---|---|---|
//! | `GET /admin/members` | | the membership this node knows |
//! | `POST /admin/members/learners` | `{"id": 4, "address": "10.0.0.4:7001"}` | adds a learner |
//! | `POST /admin/members/promote` | `{"ids": [4], "max_lag": 1000}` | waits until each learner is at most `max_lag` entries behind (default 1000), then makes them voters |
//! | `DELETE /admin/members/{id}` | | removes a voter or learner |
//! | `POST /admin/members/change` | `{"add_learners": {"4": "host:port"}, "promote": [4], "remove": [3]}` | any change in one call |
//!
//! Changes answer with the membership once it has committed (after the joint phase when the
//! voters change). On a follower they answer 307 with the leader's URL. Every admin route
//! wants `Authorization: Bearer <API token>` when the node has one, or else
//! `Authorization: Bearer <cluster secret>` when it has a secret (401 otherwise; see
//! [`crate::auth`]). A bad body
//! is 400; a change that does not fit the members (an unknown node, a node that is no
//! learner) 422; another change in progress 409; no leader or a replaced change 503; a change
//! that did not finish in time 504 (its outcome is unknown: read `GET /admin/members`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use raft_core::runtime::MembershipStatus;
use raft_core::{Membership, MembershipChange, NodeId};
use raft_wrapper::{Error as WrapperError, Replica};
use serde::{Deserialize, Serialize};

use crate::auth::Bearer;

/// A refusal, boxed: responses are large and refusals rare.
type Failure = Box<Response<Full<Bytes>>>;

/// The largest admin request body.
const MAX_BODY_BYTES: usize = 64 << 10;
/// How long a promotion waits for learners to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// The default lag (entries) a learner may have when it is promoted.
const DEFAULT_MAX_LAG: u64 = 1000;

/// The admin routes of one node.
#[derive(Clone, Debug)]
pub(crate) struct Admin {
    replica: Replica,
    guard: Bearer,
    /// `http` or `https`: the scheme of the leader's URL in redirects.
    scheme: &'static str,
}

/// A membership, as the admin routes show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersDoc {
    /// The voters (the incoming ones while a change of voters is in progress).
    pub voters: Vec<u64>,
    /// The voters being left, while a change of voters is in progress.
    pub outgoing: Option<Vec<u64>>,
    /// The learners.
    pub learners: Vec<u64>,
    /// Each member's address (`host:port`).
    pub addresses: BTreeMap<u64, String>,
}

impl MembersDoc {
    fn of(membership: &Membership) -> MembersDoc {
        let ids = |it: &mut dyn Iterator<Item = NodeId>| it.map(|id| id.0).collect::<Vec<_>>();
        MembersDoc {
            voters: ids(&mut membership.voters()),
            outgoing: membership
                .is_joint()
                .then(|| ids(&mut membership.outgoing_voters())),
            learners: ids(&mut membership.learners()),
            addresses: membership
                .addresses()
                .iter()
                .map(|(id, address)| (id.0, address.clone()))
                .collect(),
        }
    }
}

/// `GET /admin/members`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MembershipDoc {
    /// The configuration in force on this node (the latest in its log).
    pub current: MembersDoc,
    /// The index of its log entry (0: the one the node started with).
    pub index: u64,
    /// The latest committed configuration.
    pub committed: MembersDoc,
    /// The index of its log entry.
    pub committed_index: u64,
    /// The leader this node knows, if any.
    pub leader: Option<u64>,
}

impl MembershipDoc {
    fn of(status: &MembershipStatus, leader: Option<NodeId>) -> MembershipDoc {
        MembershipDoc {
            current: MembersDoc::of(&status.membership),
            index: status.index.0,
            committed: MembersDoc::of(&status.committed),
            committed_index: status.committed_index.0,
            leader: leader.map(|l| l.0),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddLearner {
    id: u64,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    ids: Vec<u64>,
    max_lag: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Change {
    add_learners: BTreeMap<u64, String>,
    promote: Vec<u64>,
    remove: Vec<u64>,
}

/// What an admin request asks for.
enum Operation {
    List,
    AddLearner,
    Promote,
    Remove(NodeId),
    Change,
}

impl Admin {
    /// The admin routes of `replica`, guarded by `guard`; redirects name `scheme`.
    pub(crate) fn new(replica: Replica, guard: Bearer, scheme: &'static str) -> Admin {
        Admin {
            replica,
            guard,
            scheme,
        }
    }

    /// Whether `path` is an admin route.
    pub(crate) fn owns(path: &str) -> bool {
        path == "/admin" || path.starts_with("/admin/")
    }

    /// Answers one admin request (errors become 4xx/5xx responses with a message).
    pub(crate) async fn handle<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        match self.run(request).await {
            Ok(response) => response,
            Err(failure) => *failure,
        }
    }

    async fn run<B>(&self, request: Request<B>) -> Result<Response<Full<Bytes>>, Failure>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: Into<raft_core::BoxError>,
    {
        self.authorize(&request)?;
        let path = request.uri().path().to_owned();
        let operation = route(request.method(), &path)?;
        let node = self.replica.node();
        let changed = match operation {
            Operation::List => {
                let doc = MembershipDoc::of(&node.membership(), node.leader());
                return Ok(json(StatusCode::OK, &doc));
            }
            Operation::AddLearner => {
                let body: AddLearner = read_json(request).await?;
                if body.address.trim().is_empty() {
                    return Err(fail(StatusCode::BAD_REQUEST, "the address is empty"));
                }
                self.replica
                    .add_learner(NodeId(body.id), body.address)
                    .await
            }
            Operation::Promote => {
                let body: Promote = read_json(request).await?;
                if body.ids.is_empty() {
                    return Err(fail(StatusCode::BAD_REQUEST, "ids is empty"));
                }
                let max_lag = body.max_lag.unwrap_or(DEFAULT_MAX_LAG);
                let mut change = MembershipChange::default();
                for &id in &body.ids {
                    let waited = node
                        .wait_for_learner(NodeId(id), max_lag, CATCH_UP_TIMEOUT)
                        .await;
                    waited.map_err(|error| {
                        Box::new(self.refusal(WrapperError::from(error), &path))
                    })?;
                    change = change.promote(NodeId(id));
                }
                self.replica.change_membership(change).await
            }
            Operation::Remove(id) => self.replica.remove_member(id).await,
            Operation::Change => {
                let body: Change = read_json(request).await?;
                let mut change = MembershipChange::default();
                for (id, address) in body.add_learners {
                    change = change.with_learner(NodeId(id), address);
                }
                for id in body.promote {
                    change = change.promote(NodeId(id));
                }
                for id in body.remove {
                    change = change.remove(NodeId(id));
                }
                self.replica.change_membership(change).await
            }
        };
        match changed {
            Ok(membership) => Ok(json(StatusCode::OK, &MembersDoc::of(&membership))),
            Err(error) => Err(Box::new(self.refusal(error, &path))),
        }
    }

    /// With an API token or a cluster secret, `Authorization: Bearer <it>` is required.
    fn authorize<B>(&self, request: &Request<B>) -> Result<(), Failure> {
        if self.guard.allows(request.headers()) {
            return Ok(());
        }
        Err(fail(
            StatusCode::UNAUTHORIZED,
            &self.guard.refusal("admin routes"),
        ))
    }

    fn refusal(&self, error: WrapperError, path: &str) -> Response<Full<Bytes>> {
        let status = match &error {
            WrapperError::NotLeader { leader: Some(hint) } => {
                let url = format!("{}://{}{path}", self.scheme, hint.address);
                let mut response = text(
                    StatusCode::TEMPORARY_REDIRECT,
                    &format!("the leader is at {url}"),
                );
                if let Ok(value) = HeaderValue::from_str(&url) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                return response;
            }
            WrapperError::Raft(raft_core::Error::InvalidChange(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            WrapperError::Raft(raft_core::Error::ChangeInProgress) => StatusCode::CONFLICT,
            WrapperError::NotLeader { leader: None }
            | WrapperError::Discarded
            | WrapperError::Overloaded
            | WrapperError::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
            WrapperError::Timeout | WrapperError::Aborted => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        text(status, &error.to_string())
    }
}

fn route(method: &Method, path: &str) -> Result<Operation, Failure> {
    let not_allowed = |allow: &'static str| {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method not allowed here; use {allow}"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    };
    match path {
        "/admin/members" => match *method {
            Method::GET => Ok(Operation::List),
            _ => Err(Box::new(not_allowed("GET"))),
        },
        "/admin/members/learners" => match *method {
            Method::POST => Ok(Operation::AddLearner),
            _ => Err(Box::new(not_allowed("POST"))),
        },
        "/admin/members/promote" => match *method {
            Method::POST => Ok(Operation::Promote),
            _ => Err(Box::new(not_allowed("POST"))),
        },
        "/admin/members/change" => match *method {
            Method::POST => Ok(Operation::Change),
            _ => Err(Box::new(not_allowed("POST"))),
        },
        _ => {
            let Some(id) = path.strip_prefix("/admin/members/") else {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    "no such route (try /admin/members)",
                ));
            };
            let id: u64 = id.parse().map_err(|_| {
                fail(
                    StatusCode::NOT_FOUND,
                    "no such route (a member is /admin/members/{numeric id})",
                )
            })?;
            match *method {
                Method::DELETE => Ok(Operation::Remove(NodeId(id))),
                _ => Err(Box::new(not_allowed("DELETE"))),
            }
        }
    }
}

async fn read_json<T, B>(request: Request<B>) -> Result<T, Failure>
where
    T: for<'de> Deserialize<'de>,
    B: Body<Data = Bytes> + Send,
    B::Error: Into<raft_core::BoxError>,
{
    let read = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    let body = match tokio::time::timeout(Duration::from_secs(10), read).await {
        Err(_) => {
            return Err(fail(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            ));
        }
        Ok(Err(error)) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body (at most {MAX_BODY_BYTES} bytes): {error}"),
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    serde_json::from_slice(&body)
        .map_err(|error| fail(StatusCode::BAD_REQUEST, &format!("bad JSON body: {error}")))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    response(status, "application/json", Bytes::from(body))
}

fn fail(status: StatusCode, message: &str) -> Failure {
    Box::new(text(status, message))
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{message}\n")),
    )
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_routes_parse_and_refuse_the_rest() {
        assert!(matches!(
            route(&Method::GET, "/admin/members"),
            Ok(Operation::List)
        ));
        assert!(matches!(
            route(&Method::DELETE, "/admin/members/7"),
            Ok(Operation::Remove(NodeId(7)))
        ));
        let status = |m: Method, p: &str| route(&m, p).err().map(|r| r.status());
        assert_eq!(
            status(Method::POST, "/admin/members"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            status(Method::GET, "/admin/members/x"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(Method::GET, "/admin/nope"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status(Method::GET, "/admin/members/learners"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
    }

    #[test]
    fn a_joint_membership_shows_its_outgoing_voters() {
        let joint = Membership::new([NodeId(1), NodeId(2), NodeId(3)])
            .apply(&MembershipChange::add_learner(NodeId(4), "h:4"))
            .unwrap()
            .apply(
                &MembershipChange::default()
                    .promote(NodeId(4))
                    .remove(NodeId(3)),
            )
            .unwrap();
        let doc = MembersDoc::of(&joint);
        assert_eq!(doc.voters, [1, 2, 4]);
        assert_eq!(doc.outgoing, Some(vec![1, 2, 3]));
        assert_eq!(doc.addresses.get(&4).map(String::as_str), Some("h:4"));
    }
}
