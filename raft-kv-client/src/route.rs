//! [`Router`]: where the next attempt goes. It remembers the leader (learned from a redirect or
//! from a write it answered), forgets it when it stops answering as one, and otherwise turns
//! through the configured endpoints.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::endpoint::Endpoint;

/// Where a request should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The leader (writes, linearizable and lease reads); any endpoint while it is unknown.
    Leader,
    /// Any node (follower and stale reads), turning through the configured endpoints.
    Any,
}

/// The configured endpoints and the leader last seen.
#[derive(Debug)]
pub(crate) struct Router {
    endpoints: Vec<Endpoint>,
    leader: RwLock<Option<Endpoint>>,
    /// The next configured endpoint to try.
    turn: AtomicUsize,
}

impl Router {
    /// A router over `endpoints` (at least one).
    pub(crate) fn new(endpoints: Vec<Endpoint>) -> Router {
        Router {
            endpoints,
            leader: RwLock::new(None),
            turn: AtomicUsize::new(0),
        }
    }

    /// How many endpoints are configured.
    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// The leader, if known.
    pub(crate) fn leader(&self) -> Option<Endpoint> {
        self.leader
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Where the next attempt for `target` goes.
    pub(crate) fn pick(&self, target: Target) -> Option<Endpoint> {
        match (target, self.leader()) {
            (Target::Leader, Some(leader)) => Some(leader),
            _ => self.next_configured(),
        }
    }

    /// The next configured endpoint, in turn.
    pub(crate) fn next_configured(&self) -> Option<Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        self.endpoints.get(turn % self.endpoints.len()).cloned()
    }

    /// `endpoint` leads (it redirected us there, or it applied a write).
    pub(crate) fn set_leader(&self, endpoint: &Endpoint) {
        let mut leader = self.leader.write().unwrap_or_else(PoisonError::into_inner);
        if leader.as_ref() != Some(endpoint) {
            tracing::debug!(leader = %endpoint, "leader found");
            *leader = Some(endpoint.clone());
        }
    }

    /// `endpoint` failed or no longer leads: forget it as the leader (if it still is the one
    /// remembered; another task may have found the new leader meanwhile).
    pub(crate) fn forget_leader(&self, endpoint: &Endpoint) {
        let mut leader = self.leader.write().unwrap_or_else(PoisonError::into_inner);
        if leader.as_ref() == Some(endpoint) {
            tracing::debug!(leader = %endpoint, "leader forgotten");
            *leader = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<Endpoint> {
        ["a:1", "b:2", "c:3"]
            .iter()
            .map(|e| Endpoint::parse(e, false).unwrap())
            .collect()
    }

    #[test]
    fn without_a_leader_attempts_turn_through_the_endpoints() {
        let router = Router::new(endpoints());
        let picked: Vec<String> = (0..4)
            .map(|_| router.pick(Target::Leader).unwrap().authority.to_string())
            .collect();
        assert_eq!(picked, ["a:1", "b:2", "c:3", "a:1"]);
    }

    #[test]
    fn a_known_leader_takes_leader_requests_until_forgotten() {
        let router = Router::new(endpoints());
        let leader = Endpoint::parse("d:4", false).unwrap();
        router.set_leader(&leader);
        assert_eq!(router.pick(Target::Leader), Some(leader.clone()));
        assert_ne!(router.pick(Target::Any), Some(leader.clone()));
        // Forgetting another endpoint keeps it.
        router.forget_leader(&endpoints()[0]);
        assert_eq!(router.leader(), Some(leader.clone()));
        router.forget_leader(&leader);
        assert_eq!(router.leader(), None);
    }
}
