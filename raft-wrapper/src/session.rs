//! Client sessions: the dedup table every replica builds from the committed log.
//!
//! A session is a client's latest applied request id, the results of its most recent requests
//! and the log index of its last activity. Everything in it is a function of the committed log
//! and of [`SessionConfig`], so every replica holds the same table at the same index (which is
//! why the config must be the same on every node).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use bytes::Bytes;
use raft_core::LogIndex;
use serde::{Deserialize, Serialize};

/// Identifies a client session (chosen by the client: a random 64-bit number is fine).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ClientId(pub u64);

/// A client's request number: at least 1, and increasing over the client's requests (gaps are
/// allowed). A retry of a request reuses its id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Bounds of the session table. **Cluster-wide**: set them the same on every node, since they
/// decide which retries are recognised, hence what is applied.
///
/// Eviction rule: when a request from a client without a session arrives and the table already
/// holds `max_clients` sessions, the session whose last request (applied, retried or refused)
/// has the lowest log index is forgotten first. Log indexes are unique and the same on every
/// replica, so every replica evicts the same session at the same entry. A client whose session
/// was evicted (or cleared) starts a new one with its next request: a retry of an old request
/// after that is applied again, so size `max_clients` above the number of clients active within
/// the longest retry window (the metric `raft_wrapper_sessions_evicted_total` counts evictions).
///
/// `#[non_exhaustive]`: start from [`SessionConfig::default`] and set fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Most client sessions tracked (at least 1).
    pub max_clients: usize,
    /// Results kept per client, most recent first (at least 1): a retry of one of the client's
    /// last `results_per_client` requests gets its original result; an older one gets
    /// [`Error::StaleRequest`](crate::Error::StaleRequest).
    pub results_per_client: usize,
    /// The largest result kept for retries, in bytes. A larger one is still answered to the
    /// request that applied it, but a retry of that request gets
    /// [`Error::ResultNotKept`](crate::Error::ResultNotKept) (it was applied, once): without
    /// it, a table of `max_clients * results_per_client` large results (answers to big
    /// batches, say) could outgrow memory and every snapshot.
    pub max_result_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            max_clients: 65_536,
            results_per_client: 4,
            max_result_bytes: 64 << 10,
        }
    }
}

impl SessionConfig {
    /// Checks both bounds.
    ///
    /// # Errors
    /// A message naming the value out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_clients == 0 {
            return Err("max_clients must be at least 1".to_owned());
        }
        if self.results_per_client == 0 {
            return Err("results_per_client must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// What to do with a session request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// New: apply it (its result is recorded with [`SessionTable::record`]).
    Apply,
    /// A retry of a request applied at `index`, which answered `result`.
    Duplicate { index: LogIndex, result: Bytes },
    /// A retry of a request applied at `index` whose result was too large to keep.
    DuplicateNotKept { index: LogIndex },
    /// Not above the latest applied id, and no result kept for it.
    Stale { latest: RequestId },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    request: RequestId,
    index: LogIndex,
    result: Bytes,
    /// The result was over `max_result_bytes` and is not kept (`result` is empty). Absent
    /// from images written before it existed.
    #[serde(default)]
    not_kept: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    client: ClientId,
    latest: RequestId,
    last_active: LogIndex,
    /// Oldest first; at most `results_per_client`.
    results: VecDeque<Stored>,
}

/// The table's image in a snapshot (MessagePack): sessions oldest activity first.
#[derive(Deserialize)]
struct Image {
    version: u8,
    sessions: Vec<Session>,
}

/// [`Image`] by reference, to encode without cloning the sessions.
#[derive(Serialize)]
struct ImageRef<'a> {
    version: u8,
    sessions: Vec<&'a Session>,
}

const IMAGE_VERSION: u8 = 1;

/// The dedup table.
#[derive(Debug)]
pub(crate) struct SessionTable {
    config: SessionConfig,
    sessions: HashMap<ClientId, Session>,
    /// Last activity index → client: the eviction order.
    by_activity: BTreeMap<LogIndex, ClientId>,
    evicted: u64,
}

impl SessionTable {
    pub(crate) fn new(config: SessionConfig) -> SessionTable {
        SessionTable {
            config,
            sessions: HashMap::new(),
            by_activity: BTreeMap::new(),
            evicted: 0,
        }
    }

    /// How many sessions are tracked.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions evicted since this table was created (not replicated; for metrics).
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The latest applied request of `client`, if it has a session.
    pub(crate) fn latest(&self, client: ClientId) -> Option<RequestId> {
        self.sessions.get(&client).map(|session| session.latest)
    }

    /// Decides what to do with request `request` of `client`, committed at `index`, and updates
    /// the session: a new request becomes the latest (with an empty result until
    /// [`record`](SessionTable::record)); every request refreshes the session's activity.
    pub(crate) fn admit(
        &mut self,
        client: ClientId,
        request: RequestId,
        index: LogIndex,
    ) -> Admission {
        if !self.sessions.contains_key(&client) {
            while self.sessions.len() >= self.config.max_clients && self.evict_oldest() {}
            self.sessions.insert(
                client,
                Session {
                    client,
                    latest: RequestId(0),
                    last_active: index,
                    results: VecDeque::new(),
                },
            );
            self.by_activity.insert(index, client);
        }
        let Some(session) = self.sessions.get_mut(&client) else {
            return Admission::Stale {
                latest: RequestId(0),
            };
        };
        if session.last_active != index {
            self.by_activity.remove(&session.last_active);
            self.by_activity.insert(index, client);
            session.last_active = index;
        }
        if request <= session.latest {
            return match session.results.iter().find(|s| s.request == request) {
                Some(stored) if stored.not_kept => Admission::DuplicateNotKept {
                    index: stored.index,
                },
                Some(stored) => Admission::Duplicate {
                    index: stored.index,
                    result: stored.result.clone(),
                },
                None => Admission::Stale {
                    latest: session.latest,
                },
            };
        }
        session.latest = request;
        session.results.push_back(Stored {
            request,
            index,
            result: Bytes::new(),
            not_kept: false,
        });
        while session.results.len() > self.config.results_per_client {
            session.results.pop_front();
        }
        Admission::Apply
    }

    /// Whether a result this large is kept for retries.
    pub(crate) fn keeps(&self, result: &Bytes) -> bool {
        result.len() <= self.config.max_result_bytes
    }

    /// Stores the result of the request admitted at `index`, if its session still keeps it
    /// (a result over `max_result_bytes` only as "not kept").
    pub(crate) fn record(&mut self, client: ClientId, index: LogIndex, result: Bytes) {
        let max_result_bytes = self.config.max_result_bytes;
        if let Some(session) = self.sessions.get_mut(&client)
            && let Some(stored) = session.results.iter_mut().find(|s| s.index == index)
        {
            if result.len() > max_result_bytes {
                stored.not_kept = true;
                stored.result = Bytes::new();
            } else {
                stored.result = result;
            }
        }
    }

    /// Forgets `client`'s session. Returns whether it had one.
    pub(crate) fn clear(&mut self, client: ClientId) -> bool {
        match self.sessions.remove(&client) {
            Some(session) => {
                self.by_activity.remove(&session.last_active);
                true
            }
            None => false,
        }
    }

    /// Forgets the least recently active session; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, client)) = self.by_activity.pop_first() else {
            return false;
        };
        self.sessions.remove(&client);
        self.evicted += 1;
        tracing::debug!(%client, "session evicted: the table is full");
        true
    }

    /// The table's snapshot image: deterministic bytes (sessions in activity order).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let sessions = self
            .by_activity
            .values()
            .filter_map(|client| self.sessions.get(client))
            .collect();
        rmp_serde::to_vec(&ImageRef {
            version: IMAGE_VERSION,
            sessions,
        })
        .map_err(|e| format!("cannot encode the session table: {e}"))
    }

    /// Rebuilds a table from its image under `config` (evicting the oldest sessions if the image
    /// holds more than `config.max_clients`).
    pub(crate) fn decode(config: SessionConfig, image: &[u8]) -> Result<SessionTable, String> {
        let image: Image = rmp_serde::from_slice(image)
            .map_err(|e| format!("malformed session table in the snapshot: {e}"))?;
        if image.version != IMAGE_VERSION {
            return Err(format!(
                "session table version {} in the snapshot, this build reads {IMAGE_VERSION}",
                image.version
            ));
        }
        let mut table = SessionTable::new(config);
        for mut session in image.sessions {
            if table.sessions.contains_key(&session.client)
                || table.by_activity.contains_key(&session.last_active)
            {
                return Err(format!(
                    "the snapshot's session table repeats client {} or index {}",
                    session.client, session.last_active
                ));
            }
            while session.results.len() > config.results_per_client {
                session.results.pop_front();
            }
            for stored in &mut session.results {
                if stored.result.len() > config.max_result_bytes {
                    stored.result = Bytes::new();
                    stored.not_kept = true;
                }
            }
            table
                .by_activity
                .insert(session.last_active, session.client);
            table.sessions.insert(session.client, session);
        }
        while table.sessions.len() > config.max_clients && table.evict_oldest() {}
        table.evicted = 0;
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_clients: usize, results_per_client: usize) -> SessionTable {
        SessionTable::new(SessionConfig {
            max_clients,
            results_per_client,
            ..SessionConfig::default()
        })
    }

    fn applied(table: &mut SessionTable, client: u64, request: u64, index: u64, result: &str) {
        let admission = table.admit(ClientId(client), RequestId(request), LogIndex(index));
        assert_eq!(admission, Admission::Apply);
        table.record(
            ClientId(client),
            LogIndex(index),
            Bytes::from(result.to_owned()),
        );
    }

    #[test]
    fn retry_of_the_latest_request_gets_its_stored_result() {
        let mut t = table(10, 2);
        applied(&mut t, 1, 1, 5, "one");
        assert_eq!(
            t.admit(ClientId(1), RequestId(1), LogIndex(6)),
            Admission::Duplicate {
                index: LogIndex(5),
                result: Bytes::from_static(b"one")
            }
        );
    }

    #[test]
    fn request_older_than_the_kept_results_is_stale() {
        let mut t = table(10, 2);
        applied(&mut t, 1, 1, 1, "a");
        applied(&mut t, 1, 2, 2, "b");
        applied(&mut t, 1, 4, 3, "d");
        // Results of 2 and 4 are kept; 1 fell out, 3 was never applied.
        assert_eq!(
            t.admit(ClientId(1), RequestId(1), LogIndex(4)),
            Admission::Stale {
                latest: RequestId(4)
            }
        );
        assert_eq!(
            t.admit(ClientId(1), RequestId(3), LogIndex(5)),
            Admission::Stale {
                latest: RequestId(4)
            }
        );
        assert!(matches!(
            t.admit(ClientId(1), RequestId(2), LogIndex(6)),
            Admission::Duplicate { .. }
        ));
    }

    #[test]
    fn least_recently_active_session_is_evicted_first() {
        let mut t = table(2, 1);
        applied(&mut t, 1, 1, 1, "a");
        applied(&mut t, 2, 1, 2, "b");
        // Client 1 retries, so client 2 is now the least recently active.
        assert!(matches!(
            t.admit(ClientId(1), RequestId(1), LogIndex(3)),
            Admission::Duplicate { .. }
        ));
        applied(&mut t, 3, 1, 4, "c");
        assert_eq!(t.len(), 2);
        assert_eq!(t.latest(ClientId(2)), None);
        assert_eq!(t.latest(ClientId(1)), Some(RequestId(1)));
        assert_eq!(t.evicted(), 1);
    }

    #[test]
    fn cleared_client_starts_a_new_session() {
        let mut t = table(10, 1);
        applied(&mut t, 1, 7, 1, "a");
        assert!(t.clear(ClientId(1)));
        assert!(!t.clear(ClientId(1)));
        assert_eq!(
            t.admit(ClientId(1), RequestId(1), LogIndex(3)),
            Admission::Apply
        );
    }

    #[test]
    fn image_round_trip_keeps_sessions_and_eviction_order() {
        let mut t = table(3, 2);
        applied(&mut t, 9, 1, 1, "a");
        applied(&mut t, 8, 1, 2, "b");
        applied(&mut t, 9, 2, 3, "c");
        let image = t.encode().unwrap();
        let mut restored = SessionTable::decode(t.config, &image).unwrap();
        assert_eq!(restored.encode().unwrap(), image);
        assert!(matches!(
            restored.admit(ClientId(9), RequestId(1), LogIndex(4)),
            Admission::Duplicate { .. }
        ));
        // Client 8 is now the least recently active.
        applied(&mut restored, 7, 1, 5, "d");
        applied(&mut restored, 6, 1, 6, "e");
        assert_eq!(restored.latest(ClientId(8)), None);
        assert_eq!(restored.len(), 3);
    }

    #[test]
    fn image_restored_under_a_smaller_bound_evicts_the_oldest() {
        let mut t = table(3, 1);
        applied(&mut t, 1, 1, 1, "a");
        applied(&mut t, 2, 1, 2, "b");
        applied(&mut t, 3, 1, 3, "c");
        let image = t.encode().unwrap();
        let config = SessionConfig {
            max_clients: 2,
            results_per_client: 1,
            ..SessionConfig::default()
        };
        let restored = SessionTable::decode(config, &image).unwrap();
        assert_eq!(restored.latest(ClientId(1)), None);
        assert_eq!(restored.len(), 2);
    }

    #[test]
    fn malformed_image_is_an_error() {
        let config = SessionConfig::default();
        assert!(SessionTable::decode(config, b"\x01\x02garbage").is_err());
        assert!(SessionTable::decode(config, &[]).is_err());
    }

    #[test]
    fn a_result_over_the_bound_is_answered_once_and_not_kept() {
        let mut t = SessionTable::new(SessionConfig {
            max_result_bytes: 4,
            ..SessionConfig::default()
        });
        applied(&mut t, 1, 1, 5, "four");
        applied(&mut t, 1, 2, 6, "fives");
        assert_eq!(
            t.admit(ClientId(1), RequestId(1), LogIndex(7)),
            Admission::Duplicate {
                index: LogIndex(5),
                result: Bytes::from_static(b"four")
            }
        );
        assert_eq!(
            t.admit(ClientId(1), RequestId(2), LogIndex(8)),
            Admission::DuplicateNotKept { index: LogIndex(6) }
        );
        // The marker survives a snapshot; a smaller bound at restore drops larger results.
        let image = t.encode().unwrap();
        let restored = SessionTable::decode(t.config, &image).unwrap();
        let mut smaller = SessionTable::decode(
            SessionConfig {
                max_result_bytes: 3,
                ..SessionConfig::default()
            },
            &image,
        )
        .unwrap();
        let mut restored = restored;
        assert_eq!(
            restored.admit(ClientId(1), RequestId(2), LogIndex(9)),
            Admission::DuplicateNotKept { index: LogIndex(6) }
        );
        assert_eq!(
            smaller.admit(ClientId(1), RequestId(1), LogIndex(9)),
            Admission::DuplicateNotKept { index: LogIndex(5) }
        );
    }

    /// Images written before results could go unkept (no `not_kept` field) still decode.
    #[test]
    fn an_image_without_the_not_kept_marker_decodes() {
        #[derive(Serialize)]
        struct OldStored {
            request: RequestId,
            index: LogIndex,
            result: Bytes,
        }
        #[derive(Serialize)]
        struct OldSession {
            client: ClientId,
            latest: RequestId,
            last_active: LogIndex,
            results: Vec<OldStored>,
        }
        #[derive(Serialize)]
        struct OldImage {
            version: u8,
            sessions: Vec<OldSession>,
        }
        let old = OldImage {
            version: IMAGE_VERSION,
            sessions: vec![OldSession {
                client: ClientId(1),
                latest: RequestId(1),
                last_active: LogIndex(5),
                results: vec![OldStored {
                    request: RequestId(1),
                    index: LogIndex(5),
                    result: Bytes::from_static(b"one"),
                }],
            }],
        };
        let image = rmp_serde::to_vec(&old).unwrap();
        let mut t = SessionTable::decode(SessionConfig::default(), &image).unwrap();
        assert_eq!(
            t.admit(ClientId(1), RequestId(1), LogIndex(6)),
            Admission::Duplicate {
                index: LogIndex(5),
                result: Bytes::from_static(b"one")
            }
        );
    }
}
