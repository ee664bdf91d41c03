//! [`ServiceConfig`]: how a [`RaftService`](crate::RaftService) checks requests, and its body
//! limits.
//!
//! Two body limits, because two routes carry bulk data under different bounds: AppendEntries
//! batches (raft-core's `batch_bytes_max`, though a single larger entry still goes) and snapshot
//! chunks (raft-core's `snapshot_chunk_bytes`, at most [`MAX_SNAPSHOT_CHUNK_BYTES`]). A snapshot
//! never travels in one body: raft-core sends it one chunk per request, so the snapshot limit is
//! sized for one chunk plus its envelope, and a server holds at most that much of a snapshot per
//! request in memory. Keeping the limits apart lets a cluster with large chunks admit them
//! without admitting AppendEntries bodies of that size, and the other way round.

use std::time::Duration;

use raft_core::NodeId;
use raft_core::config::MAX_SNAPSHOT_CHUNK_BYTES;
use tracing::warn;

use crate::auth::ClusterAuth;
use crate::error::Error;
use crate::routes::Rpc;

/// The default body limit of every route but the snapshot route: 8 MiB, room for raft-core's
/// default 1 MiB batches eight times over.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// The room a snapshot body needs besides its chunk's data: the envelope, the fixed fields and
/// the meta. The meta grows by at most 9 bytes per voter, so this covers thousands of voters.
pub const SNAPSHOT_BODY_OVERHEAD_BYTES: usize = 64 << 10;

/// The default body limit of the snapshot route: 2 MiB, raft-core's default 1 MiB chunk plus
/// ample room for the envelope.
pub const DEFAULT_MAX_SNAPSHOT_BODY_BYTES: usize = 2 << 20;

/// The highest body limit of the snapshot route: the largest chunk raft-core ever sends plus
/// [`SNAPSHOT_BODY_OVERHEAD_BYTES`]. A higher configured limit is lowered to it, since no
/// legitimate chunk needs more.
// 64 MiB fits in the usize of every target tokio runs on.
pub const MAX_SNAPSHOT_BODY_BYTES: usize =
    MAX_SNAPSHOT_CHUNK_BYTES as usize + SNAPSHOT_BODY_OVERHEAD_BYTES;

/// The largest frame a follower sends on its entry stream (its opening, then its answers to
/// the leader's batches: each under a hundred bytes).
pub const MAX_STREAM_CONTROL_FRAME_BYTES: usize = 64 << 10;

/// How a [`RaftService`](crate::RaftService) checks requests.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The cluster id and secret every request must carry.
    pub auth: ClusterAuth,
    /// Whether the Raft routes refuse a request whose connection presented no client
    /// certificate (401, `certificate-required`), checked with the credentials before the body
    /// is read. Set it with mutual TLS (a [`Server`](crate::Server) whose
    /// [`ServerTls`](crate::tls::ServerTls) has a client CA). Whether set or not, a request
    /// that came with a certificate must come from a node that it names, or it is refused with
    /// 403 (`wrong-node`; see [`crate::tls`]). `/metrics` needs no certificate.
    pub require_peer_certificate: bool,
    /// Request bodies over this many bytes are refused with 413, on every route but the snapshot
    /// route. Keep it above the Raft configuration's `batch_bytes_max` plus framing.
    pub max_body_bytes: usize,
    /// Snapshot chunk bodies (`/raft/v1/snapshot`) over this many bytes are refused with 413.
    /// It must be at least the nodes' `snapshot_chunk_bytes` plus
    /// [`SNAPSHOT_BODY_OVERHEAD_BYTES`], or every full chunk is refused and no snapshot ever
    /// installs; [`with_snapshot_chunk_bytes`](ServiceConfig::with_snapshot_chunk_bytes) sets it
    /// so. Values over [`MAX_SNAPSHOT_BODY_BYTES`] are lowered to it.
    pub max_snapshot_body_bytes: usize,
    /// The local node, for the `node` label of the metrics.
    pub node: Option<NodeId>,
    /// How long an AppendEntries waits for the ones that arrived before it on its connection to
    /// reach the handler (see the `order` module); then it goes ahead out of order.
    pub order_wait_max: Duration,
    /// A request body that has not fully arrived this long after its head is refused with 408,
    /// so a client that stops mid-body does not hold a stream (or an HTTP/1 connection) forever.
    /// It must also cover the transfer of the largest body, a full snapshot chunk.
    pub body_read_timeout: Duration,
}

impl ServiceConfig {
    /// The defaults with these credentials.
    #[must_use]
    pub fn new(auth: ClusterAuth) -> ServiceConfig {
        ServiceConfig {
            auth,
            require_peer_certificate: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_snapshot_body_bytes: DEFAULT_MAX_SNAPSHOT_BODY_BYTES,
            node: None,
            order_wait_max: Duration::from_millis(100),
            body_read_timeout: Duration::from_secs(10),
        }
    }

    /// Sizes the snapshot route's body limit for chunks of `chunk_bytes` (the nodes'
    /// `snapshot_chunk_bytes`): the chunk plus [`SNAPSHOT_BODY_OVERHEAD_BYTES`].
    ///
    /// ```
    /// use raft_http::{ClusterAuth, SNAPSHOT_BODY_OVERHEAD_BYTES, ServiceConfig};
    ///
    /// let mut node = raft_core::NodeConfig::default();
    /// node.raft.snapshot_chunk_bytes = 16 << 20;
    /// let config = ServiceConfig::new(ClusterAuth::new("my-cluster")?)
    ///     .with_snapshot_chunk_bytes(node.raft.snapshot_chunk_bytes)?;
    /// assert_eq!(config.max_snapshot_body_bytes, (16 << 20) + SNAPSHOT_BODY_OVERHEAD_BYTES);
    /// # Ok::<(), raft_http::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] unless `chunk_bytes` is in `1..=MAX_SNAPSHOT_CHUNK_BYTES`, the range
    /// raft-core accepts.
    pub fn with_snapshot_chunk_bytes(mut self, chunk_bytes: u64) -> Result<ServiceConfig, Error> {
        if chunk_bytes == 0 || chunk_bytes > MAX_SNAPSHOT_CHUNK_BYTES {
            return Err(Error::Config(format!(
                "snapshot chunks of {chunk_bytes} bytes: raft-core sends 1 to \
                 {MAX_SNAPSHOT_CHUNK_BYTES} bytes per chunk"
            )));
        }
        let chunk_bytes = usize::try_from(chunk_bytes)
            .map_err(|_| Error::Config(format!("{chunk_bytes} bytes do not fit in memory")))?;
        self.max_snapshot_body_bytes = chunk_bytes + SNAPSHOT_BODY_OVERHEAD_BYTES;
        Ok(self)
    }

    /// The configuration with its limits in range (see
    /// [`max_snapshot_body_bytes`](ServiceConfig::max_snapshot_body_bytes)).
    pub(crate) fn clamped(mut self) -> ServiceConfig {
        if self.max_snapshot_body_bytes > MAX_SNAPSHOT_BODY_BYTES {
            warn!(
                configured = self.max_snapshot_body_bytes,
                used = MAX_SNAPSHOT_BODY_BYTES,
                "the snapshot body limit is over what any chunk needs; lowered"
            );
            self.max_snapshot_body_bytes = MAX_SNAPSHOT_BODY_BYTES;
        }
        self
    }

    /// The body limit of an RPC's route.
    pub(crate) fn body_limit(&self, rpc: Rpc) -> usize {
        match rpc {
            Rpc::Snapshot => self.max_snapshot_body_bytes,
            // Per frame: a stream's opening and the follower's answers are small.
            Rpc::Stream => MAX_STREAM_CONTROL_FRAME_BYTES,
            Rpc::Append | Rpc::Vote | Rpc::TimeoutNow | Rpc::ReadIndex => self.max_body_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServiceConfig {
        ServiceConfig::new(ClusterAuth::new("c").unwrap())
    }

    #[test]
    fn the_default_snapshot_limit_admits_raft_core_s_default_chunk() {
        let chunk = raft_core::Config::default().snapshot_chunk_bytes as usize;
        assert!(DEFAULT_MAX_SNAPSHOT_BODY_BYTES >= chunk + SNAPSHOT_BODY_OVERHEAD_BYTES);
        let config = config();
        assert_eq!(
            config.body_limit(Rpc::Snapshot),
            DEFAULT_MAX_SNAPSHOT_BODY_BYTES
        );
        assert_eq!(config.body_limit(Rpc::Append), DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn chunk_sizes_outside_raft_core_s_range_are_refused() {
        assert!(matches!(
            config().with_snapshot_chunk_bytes(0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            config().with_snapshot_chunk_bytes(MAX_SNAPSHOT_CHUNK_BYTES + 1),
            Err(Error::Config(_))
        ));
        let largest = config()
            .with_snapshot_chunk_bytes(MAX_SNAPSHOT_CHUNK_BYTES)
            .unwrap();
        assert_eq!(largest.max_snapshot_body_bytes, MAX_SNAPSHOT_BODY_BYTES);
    }

    #[test]
    fn a_snapshot_limit_over_the_largest_chunk_is_lowered() {
        let mut config = config();
        config.max_snapshot_body_bytes = usize::MAX;
        config.max_body_bytes = usize::MAX;
        let config = config.clamped();
        assert_eq!(config.max_snapshot_body_bytes, MAX_SNAPSHOT_BODY_BYTES);
        // The other routes' limit is the application's choice.
        assert_eq!(config.max_body_bytes, usize::MAX);
        let mut small = self::config();
        small.max_snapshot_body_bytes = 100;
        assert_eq!(small.clamped().max_snapshot_body_bytes, 100);
    }
}
