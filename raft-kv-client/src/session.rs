//! Exactly-once sessions: the `Client-Id` / `Request-Id` pairs writes carry.
//!
//! The server applies a client's request ids in increasing order only: once request 7 of a
//! client is applied, a request 5 arriving late is refused, not applied (and a retry of an
//! applied request gets its stored answer). So one session carries one write at a time, and
//! concurrent writes of one [`Client`](crate::Client) each lease a session of their own: the
//! first is the client's own random id, further ones (only while writes overlap) get fresh
//! random ids, and a finished write hands its session back, its next request id one higher.
//! A retry of one logical write reuses its lease, hence the same ids on every attempt.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Idle sessions kept for reuse; more are dropped (the server forgets idle sessions anyway).
const MAX_IDLE_SESSIONS: usize = 1024;

/// One session: a client id and the request id its next write uses.
#[derive(Debug)]
struct Session {
    client: u64,
    next: u64,
}

/// The sessions of one client.
#[derive(Debug)]
pub(crate) struct Sessions {
    /// The client's own id (its first session).
    primary: u64,
    idle: Mutex<Vec<Session>>,
}

impl Sessions {
    /// Sessions under a fresh random client id.
    pub(crate) fn new() -> Sessions {
        let primary = random_id();
        Sessions {
            primary,
            idle: Mutex::new(vec![Session {
                client: primary,
                next: 1,
            }]),
        }
    }

    /// The client's own id.
    pub(crate) fn client_id(&self) -> u64 {
        self.primary
    }

    /// A session for one logical write, until the lease is dropped.
    pub(crate) fn lease(&self) -> Lease<'_> {
        let session = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Session {
                client: random_id(),
                next: 1,
            });
        Lease {
            sessions: self,
            session: Some(session),
        }
    }
}

/// A session leased to one logical write: the same ids on every retry.
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    sessions: &'a Sessions,
    session: Option<Session>,
}

impl Lease<'_> {
    /// The client id and the request id of this write.
    pub(crate) fn ids(&self) -> (u64, u64) {
        self.session
            .as_ref()
            .map_or((0, 0), |session| (session.client, session.next))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // The id is used up whatever the outcome (gaps are allowed; reuse is not).
        if let Some(mut session) = self.session.take() {
            session.next += 1;
            let mut idle = self
                .sessions
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_SESSIONS {
                idle.push(session);
            }
        }
    }
}

/// A random non-zero 64-bit id: SipHash keyed from the OS's randomness (std's `RandomState`)
/// over a process-wide counter and the process id.
pub(crate) fn random_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequential_client_uses_one_id_with_increasing_request_ids() {
        let sessions = Sessions::new();
        let first = sessions.lease().ids();
        let second = sessions.lease().ids();
        assert_eq!(first, (sessions.client_id(), 1));
        assert_eq!(second, (sessions.client_id(), 2));
    }

    #[test]
    fn overlapping_writes_get_distinct_sessions() {
        let sessions = Sessions::new();
        let a = sessions.lease();
        let b = sessions.lease();
        assert_ne!(a.ids().0, b.ids().0);
        assert_eq!(a.ids(), (sessions.client_id(), 1));
        assert_eq!(b.ids().1, 1);
        let b_client = b.ids().0;
        drop(b);
        drop(a);
        // Both come back, each one request further on.
        let mut next = [sessions.lease(), sessions.lease()].map(|l| l.ids());
        next.sort_unstable();
        let mut expected = [(sessions.client_id(), 2), (b_client, 2)];
        expected.sort_unstable();
        assert_eq!(next, expected);
    }

    #[test]
    fn client_ids_are_random_per_client() {
        let ids: std::collections::HashSet<u64> =
            (0..1000).map(|_| Sessions::new().client_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&0));
    }
}
