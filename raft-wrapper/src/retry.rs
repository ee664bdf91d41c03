//! Retrying a request until it is answered, with backoff and a deadline.
//!
//! [`submit_with_retry`] is the client loop for replicas in one process: it submits a command
//! with the *same* client and request ids on every attempt (which is what makes retrying safe:
//! the session dedup applies it at most once), follows leader hints at once, backs off on the
//! other retryable errors, and gives up at the [`RetryPolicy`]'s deadline with
//! [`Error::RetriesExhausted`]. [`retry`] is the same policy for any transport: a client of
//! remote replicas sends each [`Attempt`] where its leader hint points.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use raft_core::{LeaderHint, NodeId};
use tokio::time::Instant;

use crate::error::Error;
use crate::replica::{Applied, Replica};
use crate::session::{ClientId, RequestId};

/// How many leader hints in a row are followed at once; after that the helper backs off once
/// before following more, so nodes with stale hints pointing at each other cannot spin it.
const REDIRECTS_WITHOUT_BACKOFF: u32 = 3;

/// Deadlines are capped at this (a century), so that adding one to the clock cannot overflow.
const MAX_DEADLINE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How [`retry`] and [`submit_with_retry`] retry. `#[non_exhaustive]`: start from
/// [`RetryPolicy::default`] and set fields.
///
/// After an error that is [retryable](Error::is_retryable) the helper waits before the next
/// attempt: `initial_backoff` the first time, doubling each time up to `max_backoff`, never past
/// the deadline. A `NotLeader` error naming the leader is retried there at once, without
/// waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How long to keep trying, from the first attempt: an attempt still running then is cut
    /// off (its outcome is unknown), and the helper returns [`Error::RetriesExhausted`].
    /// Default 10 s.
    pub deadline: Duration,
    /// The first wait between attempts. Default 10 ms.
    pub initial_backoff: Duration,
    /// The longest wait between attempts. Default 500 ms.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// One attempt of [`retry`]: where and how long to try.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the first attempt, then 2, 3, ...
    pub number: u32,
    /// The leader named by the previous attempt's [`Error::NotLeader`], if it named one: send
    /// this attempt there. `None` on the first attempt and after any other error: send it to
    /// another node (a guess, the next in a list).
    pub leader: Option<LeaderHint>,
    /// The time left before the deadline: wait no longer than this for an answer (the helper
    /// cuts the attempt off then anyway).
    pub remaining: Duration,
}

/// Runs `attempt` until it succeeds, fails with an error that is not
/// [retryable](Error::is_retryable), or the policy's deadline passes.
///
/// `attempt` makes one request and returns its answer. To be safe to retry, each attempt must
/// send the *same* request (for a session command, the same client and request ids). After a
/// retryable error the helper waits (see [`RetryPolicy`]) and calls `attempt` again, except
/// after `NotLeader` with a leader hint: then it calls again at once, with the hint in
/// [`Attempt::leader`] (up to three hints in a row before it waits once).
///
/// There is always at least one attempt. An attempt still running at the deadline is cut off
/// and counts as an [`Error::Timeout`] (its outcome is unknown).
///
/// ```
/// # use std::time::Duration;
/// # use bytes::Bytes;
/// # use raft_core::{LeaderHint, LogIndex, NodeId};
/// use raft_wrapper::{retry, Applied, Attempt, ClientId, Error, RequestId, RetryPolicy};
///
/// /// An embedder's client of remote replicas (over HTTP, say): here node 1 says node 2 leads.
/// struct Remote;
///
/// impl Remote {
///     async fn submit(&self, address: &str, _: ClientId, _: RequestId, _: Bytes, _: Duration)
///         -> Result<Applied, Error> {
///         match address {
///             "10.0.0.2:7001" => Ok(Applied { index: LogIndex(9), result: Bytes::new(), duplicate: false }),
///             _ => Err(Error::NotLeader {
///                 leader: Some(LeaderHint { id: NodeId(2), address: "10.0.0.2:7001".to_owned() }),
///             }),
///         }
///     }
/// }
///
/// async fn submit_remote(
///     remote: &Remote,
///     nodes: &[&str],
///     client: ClientId,
///     request: RequestId,
///     command: Bytes,
/// ) -> Result<Applied, Error> {
///     let mut guess = 0;
///     retry(&RetryPolicy::default(), |attempt: Attempt| {
///         // Where the last answer said the leader is, else the next node of the list.
///         let address = match attempt.leader {
///             Some(hint) => hint.address,
///             None => {
///                 guess += 1;
///                 nodes[(guess - 1) % nodes.len()].to_owned()
///             }
///         };
///         let command = command.clone();
///         async move { remote.submit(&address, client, request, command, attempt.remaining).await }
///     })
///     .await
/// }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Error> {
/// let nodes = ["10.0.0.1:7001", "10.0.0.2:7001", "10.0.0.3:7001"];
/// let applied = submit_remote(&Remote, &nodes, ClientId(7), RequestId(1), Bytes::from("x")).await?;
/// assert_eq!(applied.index, LogIndex(9));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The first error that is not retryable, as it is; or, at the deadline,
/// [`Error::RetriesExhausted`] with the number of attempts, the last error, and whether any
/// attempt's outcome is unknown (see [`Error::is_outcome_unknown`]).
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, Error>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + policy.deadline.min(MAX_DEADLINE);
    let mut backoff = policy.initial_backoff.min(policy.max_backoff);
    let mut number: u32 = 0;
    let mut leader: Option<LeaderHint> = None;
    let mut redirects = 0;
    let mut outcome_unknown = false;
    loop {
        number = number.saturating_add(1);
        let this = Attempt {
            number,
            leader: leader.take(),
            remaining: deadline.saturating_duration_since(Instant::now()),
        };
        let error = match tokio::time::timeout_at(deadline, attempt(this)).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) => error,
            Err(_) => Error::Timeout,
        };
        if !error.is_retryable() {
            return Err(error);
        }
        outcome_unknown |= error.is_outcome_unknown();
        if let Error::NotLeader { leader: Some(hint) } = &error {
            leader = Some(hint.clone());
            if redirects < REDIRECTS_WITHOUT_BACKOFF && Instant::now() < deadline {
                redirects += 1;
                continue;
            }
        }
        redirects = 0;
        if Instant::now() < deadline {
            tracing::debug!(attempt = number, %error, ?backoff, "retrying after a backoff");
            tokio::time::sleep_until((Instant::now() + backoff).min(deadline)).await;
            backoff = backoff.saturating_mul(2).min(policy.max_backoff);
        }
        if Instant::now() >= deadline {
            tracing::debug!(attempts = number, %error, "giving up at the retry deadline");
            return Err(Error::RetriesExhausted {
                attempts: number,
                outcome_unknown,
                last: Box::new(error),
            });
        }
    }
}

/// Submits `command` as request `request` of client `client` to whichever of `replicas` leads,
/// retrying with the same ids until it is answered or the policy's deadline passes: the
/// client loop of an application holding the [`Replica`] handles of a cluster in one process.
///
/// The first attempt goes to a replica that believes it leads, else to the first one. A
/// `NotLeader` hint naming one of `replicas` is followed at once; after any other retryable
/// error (an election in progress, an overloaded or stopped node, a timeout) the helper backs
/// off and tries a replica that now believes it leads, else the next one in order. Each attempt
/// waits at most the replica's `submit_timeout`, and never past the deadline. Whatever happens,
/// the command is applied at most once (while the client's session is kept, see
/// [`Replica::submit`]).
///
/// ```
/// # use std::time::Duration;
/// # use bytes::Bytes;
/// # use raft_core::testing::{MemKv, MemLogStore, MemNetwork};
/// # use raft_core::NodeId;
/// use raft_wrapper::{submit_with_retry, ClientId, Replica, ReplicaConfig, RequestId, RetryPolicy};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), raft_wrapper::Error> {
/// # let network = MemNetwork::new(1);
/// # let members = [(NodeId(1), "n1"), (NodeId(2), "n2"), (NodeId(3), "n3")];
/// # let mut replicas = Vec::new();
/// # for (id, _) in members {
/// #     let replica = Replica::start(id, members, ReplicaConfig::default(),
/// #         MemLogStore::new().into_arc(), MemKv::new().into_arc(), network.transport(id)).await?;
/// #     network.register(id, replica.node());
/// #     replicas.push(replica);
/// # }
/// // Three replicas in this process; the leader stops, and an election follows.
/// let leader = replicas[0].node().wait_for_leader(Duration::from_secs(5)).await?;
/// for replica in replicas.iter().filter(|replica| replica.node().id() == leader) {
///     replica.shutdown().await;
/// }
///
/// let policy = RetryPolicy::default();
/// let put = MemKv::put("x", "1");
/// let applied = submit_with_retry(&replicas, ClientId(7), RequestId(1), put, &policy).await?;
/// assert!(!applied.duplicate);
/// # for replica in &replicas { replica.shutdown().await; }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`retry`]: an error that is not retryable at once ([`Error::StaleRequest`],
/// [`Error::InvalidRequest`] for request id 0 or no replicas, ...), or
/// [`Error::RetriesExhausted`] at the deadline. A `NotLeader` hint naming a node outside
/// `replicas` is treated as no hint (it comes back as `NotLeader { leader: None }`).
pub async fn submit_with_retry(
    replicas: &[Replica],
    client: ClientId,
    request: RequestId,
    command: Bytes,
    policy: &RetryPolicy,
) -> Result<Applied, Error> {
    if replicas.is_empty() {
        return Err(Error::InvalidRequest("no replica to submit to".to_owned()));
    }
    let ids: Vec<NodeId> = replicas.iter().map(|replica| replica.node().id()).collect();
    let ids = ids.as_slice();
    let mut last: Option<usize> = None;
    retry(policy, |attempt| {
        let target = pick(replicas, ids, attempt.leader.as_ref(), last);
        last = Some(target);
        let replica = &replicas[target];
        let timeout = replica.default_submit_timeout().min(attempt.remaining);
        let command = command.clone();
        async move {
            match replica
                .submit_timeout(client, request, command, timeout)
                .await
            {
                Err(Error::NotLeader { leader: Some(hint) }) if !ids.contains(&hint.id) => {
                    Err(Error::NotLeader { leader: None })
                }
                answer => answer,
            }
        }
    })
    .await
}

/// The replica to try next: the hinted leader if it is one of them; else a running replica,
/// other than the one tried last, that believes it leads; else the next running one in order
/// after the last; else simply the next one.
fn pick(
    replicas: &[Replica],
    ids: &[NodeId],
    hint: Option<&LeaderHint>,
    last: Option<usize>,
) -> usize {
    if let Some(hinted) = hint.and_then(|hint| ids.iter().position(|id| *id == hint.id)) {
        return hinted;
    }
    let running = |index: usize| replicas[index].node().status().running;
    let leading = (0..replicas.len())
        .find(|&index| Some(index) != last && running(index) && replicas[index].node().is_leader());
    if let Some(leading) = leading {
        return leading;
    }
    let start = last.map_or(0, |last| last + 1) % replicas.len();
    (0..replicas.len())
        .map(|offset| (start + offset) % replicas.len())
        .find(|&index| running(index))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn hint(id: u64) -> LeaderHint {
        LeaderHint {
            id: NodeId(id),
            address: format!("node-{id}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap_and_gives_up_at_the_deadline() {
        let policy = RetryPolicy {
            deadline: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let start = Instant::now();
        let mut starts = Vec::new();
        let error = retry(&policy, |attempt| {
            starts.push(start.elapsed());
            assert_eq!(attempt.number as usize, starts.len());
            async { Err::<(), _>(Error::Overloaded) }
        })
        .await
        .unwrap_err();
        assert_eq!(start.elapsed(), policy.deadline, "gives up at the deadline");
        let ms = |ms| Duration::from_millis(ms);
        // Waits of 10, 20, 40, ..., 320, then 500 ms until the deadline.
        assert_eq!(
            starts,
            [0, 10, 30, 70, 150, 310, 630, 1130, 1630].map(ms),
            "attempt start times"
        );
        let Error::RetriesExhausted {
            attempts,
            outcome_unknown,
            last,
        } = error
        else {
            panic!("{error:?}");
        };
        assert_eq!(attempts, 9);
        assert!(!outcome_unknown, "every attempt was refused");
        assert!(matches!(*last, Error::Overloaded), "{last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn leader_hints_are_followed_at_once_then_the_helper_backs_off() {
        let start = Instant::now();
        let mut seen = Vec::new();
        let answer = retry(&RetryPolicy::default(), |attempt| {
            seen.push((attempt.leader.clone(), start.elapsed()));
            let number = attempt.number;
            async move {
                match number {
                    1..=4 => Err(Error::NotLeader {
                        leader: Some(hint(u64::from(number) + 1)),
                    }),
                    _ => Ok(number),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(answer, 5);
        let zero = Duration::ZERO;
        assert_eq!(
            seen,
            [
                (None, zero),
                (Some(hint(2)), zero),
                (Some(hint(3)), zero),
                (Some(hint(4)), zero),
                // The fourth hint in a row: one backoff first, then the hint is still given.
                (Some(hint(5)), Duration::from_millis(10)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_outcome_is_remembered_and_a_hanging_attempt_is_cut_off() {
        let policy = RetryPolicy {
            deadline: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let error = retry(&policy, |attempt| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                match attempt.number {
                    1 => Err::<(), _>(Error::Timeout),
                    2 => Err(Error::NotLeader { leader: None }),
                    // Never answers: cut off at the deadline.
                    _ => std::future::pending().await,
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(start.elapsed(), policy.deadline);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert!(error.is_outcome_unknown(), "{error}");
        assert!(!error.is_retryable());
        let Error::RetriesExhausted { attempts, last, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*attempts, 3);
        assert!(matches!(**last, Error::Timeout), "{last:?}");
        assert!(error.to_string().contains("outcome is unknown"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_that_is_not_retryable_is_returned_at_once() {
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let error = retry(&RetryPolicy::default(), |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(Error::InvalidRequest("bad".to_owned())) }
        })
        .await
        .unwrap_err();
        assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
