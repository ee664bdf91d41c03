//! Snapshot work off the event loop: writing a new snapshot from the state machine's source to
//! the log store (on its own task, so commits go on meanwhile), and the log-size policy that
//! asks for one.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::events::Event;
use crate::error::Error;
use crate::metrics::{SNAPSHOT_BYTES, SNAPSHOT_SECONDS, SNAPSHOTS_CREATED, SNAPSHOTS_INSTALLED};
use crate::snapshot::{SnapshotMeta, SnapshotSource};
use crate::storage::LogStore;
use crate::types::{LogId, Membership, NodeId};

/// One node's snapshot metrics.
#[derive(Clone, Debug)]
pub(crate) struct SnapshotMetrics {
    pub(crate) created: Counter,
    pub(crate) installed: Counter,
    pub(crate) bytes: Gauge,
    pub(crate) create_seconds: Histogram,
    pub(crate) install_seconds: Histogram,
}

impl SnapshotMetrics {
    pub(crate) fn new(id: NodeId) -> SnapshotMetrics {
        let node = id.to_string();
        SnapshotMetrics {
            created: metrics::counter!(SNAPSHOTS_CREATED, "node" => node.clone()),
            installed: metrics::counter!(SNAPSHOTS_INSTALLED, "node" => node.clone()),
            bytes: metrics::gauge!(SNAPSHOT_BYTES, "node" => node.clone()),
            create_seconds: metrics::histogram!(
                SNAPSHOT_SECONDS, "node" => node.clone(), "kind" => "create"
            ),
            install_seconds: metrics::histogram!(
                SNAPSHOT_SECONDS, "node" => node, "kind" => "install"
            ),
        }
    }
}

/// Drains `source` into a new snapshot of the log store and reports the outcome to the loop.
pub(crate) async fn write_snapshot(
    log: Arc<dyn LogStore>,
    mut source: Box<dyn SnapshotSource>,
    last_log_id: LogId,
    membership: Membership,
    events: mpsc::UnboundedSender<Event>,
    metrics: SnapshotMetrics,
) {
    let started = tokio::time::Instant::now();
    let event = match drain(log.as_ref(), source.as_mut(), last_log_id, membership).await {
        Ok(Some(meta)) => {
            info!(%meta, "snapshot stored");
            metrics.created.increment(1);
            metrics.bytes.set(meta.size as f64);
            metrics
                .create_seconds
                .record(started.elapsed().as_secs_f64());
            Event::SnapshotCreated(meta)
        }
        Ok(None) => {
            info!(%last_log_id, "a newer snapshot arrived first; this one was discarded");
            Event::SnapshotFailed
        }
        Err(err) => {
            warn!(%err, %last_log_id, "creating a snapshot failed; the node will try again later");
            Event::SnapshotFailed
        }
    };
    let _ = events.send(event);
}

async fn drain(
    log: &dyn LogStore,
    source: &mut dyn SnapshotSource,
    last_log_id: LogId,
    membership: Membership,
) -> Result<Option<SnapshotMeta>, Error> {
    let mut writer = log.begin_snapshot().await?;
    let mut size = 0u64;
    let mut checksum = 0u32;
    while let Some(chunk) = source.next_chunk().await? {
        size += chunk.len() as u64;
        checksum = crc32c::crc32c_append(checksum, &chunk);
        writer.write(chunk).await?;
    }
    let meta = SnapshotMeta {
        last_log_id,
        membership,
        size,
        checksum,
    };
    Ok(writer.finish(meta.clone()).await?.then_some(meta))
}

/// The log-size policy: ask for a snapshot when the log passes `threshold` bytes and has grown
/// by half the threshold since its smallest size after the last snapshot (so a log that
/// compaction cannot shrink below the threshold does not ask for a snapshot at every tick).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SizePolicy {
    threshold: u64,
    /// The smallest log size seen since the last snapshot completed.
    floor: u64,
}

impl SizePolicy {
    pub(crate) fn new(threshold: u64) -> SizePolicy {
        SizePolicy {
            threshold,
            floor: 0,
        }
    }

    /// Called at every tick with the log size: whether to ask for a snapshot now.
    pub(crate) fn due(&mut self, bytes: u64) -> bool {
        self.floor = self.floor.min(bytes);
        self.threshold > 0
            && bytes >= self.threshold
            && bytes >= self.floor.saturating_add(self.threshold / 2)
    }

    /// A snapshot completed: measure the floor afresh.
    pub(crate) fn snapshot_done(&mut self) {
        self.floor = u64::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_policy_waits_for_growth_after_a_snapshot_that_could_not_shrink_the_log() {
        let mut policy = SizePolicy::new(100);
        assert!(!policy.due(99));
        assert!(policy.due(100));
        policy.snapshot_done();
        // Compaction shrank the log only to 120: no new request until it grows by 50.
        assert!(!policy.due(130));
        assert!(!policy.due(120));
        assert!(!policy.due(169));
        assert!(policy.due(170));
        assert!(
            !SizePolicy::new(0).due(u64::MAX),
            "0 switches the policy off"
        );
    }
}
