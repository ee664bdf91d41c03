//! The small option types of the API: the HTTP version, a read's consistency and a write's
//! condition.

/// The HTTP version the client speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/2 (prior knowledge on plain TCP, `h2` by ALPN over TLS): one connection per node
    /// carries every concurrent request. The default.
    #[default]
    Http2,
    /// HTTP/1.1: a pool of keep-alive connections per node, one request at a time on each.
    Http1,
}

/// How a `GET` is served (`?consistency=` on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Consistency {
    /// Linearizable, confirmed by a quorum (ReadIndex). Sent to the leader. The default.
    #[default]
    Linearizable,
    /// Linearizable too, but sent to any configured node in turn, which serves it itself once
    /// it has applied the read index its leader gave it: spreads reads over the replicas.
    Follower,
    /// Served by the leader from its lease when it holds one (no round trip; trusts bounded
    /// clock drift). Sent to the leader.
    Lease,
    /// The state of whichever node answers, without asking anyone: may be behind. Sent to any
    /// configured node in turn.
    Stale,
}

impl Consistency {
    /// The value of `?consistency=`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Follower => "follower",
            Consistency::Lease => "lease",
            Consistency::Stale => "stale",
        }
    }

    /// Whether the leader should serve it (else any node may).
    pub(crate) fn wants_leader(self) -> bool {
        matches!(self, Consistency::Linearizable | Consistency::Lease)
    }
}

/// The condition of a conditional `put`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Condition {
    /// Applied only if the key's version is this one (`If-Match: "<n>"`): compare-and-set.
    Version(u64),
    /// Applied only if the key does not exist (`If-None-Match: *`): create-only.
    Absent,
}
