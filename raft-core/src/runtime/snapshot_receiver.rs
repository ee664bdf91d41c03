//! Installing a snapshot from the leader on this node's side: writing its chunks to the log
//! store as the engine accepts them (`Output::SaveSnapshotChunk`), and opening it for the
//! apply task once the engine installs it (`Output::RestoreSnapshot`).
//!
//! The loop awaits these writes like log appends: a follower receiving a snapshot has nothing
//! else to write meanwhile.

use std::sync::Arc;

use bytes::Bytes;

use super::snapshots::SnapshotMetrics;
use crate::error::Error;
use crate::snapshot::{SnapshotMeta, SnapshotReader, SnapshotWriter};
use crate::storage::LogStore;

/// A snapshot from the leader being written to the store, chunk by chunk.
struct Receiving {
    meta: SnapshotMeta,
    writer: Box<dyn SnapshotWriter>,
    started: tokio::time::Instant,
}

/// The snapshot being received, if any.
pub(crate) struct SnapshotReceiver {
    receiving: Option<Receiving>,
    metrics: SnapshotMetrics,
}

impl SnapshotReceiver {
    pub(crate) fn new(metrics: SnapshotMetrics) -> SnapshotReceiver {
        SnapshotReceiver {
            receiving: None,
            metrics,
        }
    }

    /// Writes a chunk at `offset` of the snapshot `meta`; the chunk at 0 starts a new one, the
    /// `done` one makes it durable and current. Returns whether a snapshot became durable.
    pub(crate) async fn save_chunk(
        &mut self,
        log: &dyn LogStore,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
    ) -> Result<bool, Error> {
        if offset == 0 {
            self.receiving = Some(Receiving {
                meta: meta.clone(),
                writer: log.begin_snapshot().await?,
                started: tokio::time::Instant::now(),
            });
        }
        let Some(receiving) = self.receiving.as_mut().filter(|r| r.meta == meta) else {
            return Err(Error::Fatal(format!(
                "a chunk at {offset} of the {meta} arrived without its beginning"
            )));
        };
        receiving.writer.write(data).await?;
        let Some(receiving) = self.receiving.take_if(|_| done) else {
            return Ok(false);
        };
        if !receiving.writer.finish(meta.clone()).await? {
            // The engine installs only snapshots above its commit index, so the store cannot
            // hold one as new already: it broke the contract.
            return Err(Error::storage(format!(
                "the store refused the {meta} from the leader as older than its own"
            )));
        }
        self.metrics.installed.increment(1);
        self.metrics.bytes.set(meta.size as f64);
        self.metrics
            .install_seconds
            .record(receiving.started.elapsed().as_secs_f64());
        Ok(true)
    }
}

/// Opens the store's latest snapshot, which must be `meta` (it was made current by the output
/// before this one, or found at start), for the apply task: the reader stays valid even if a
/// newer snapshot replaces it before the apply task gets to it.
pub(crate) async fn open_installed(
    log: &dyn LogStore,
    meta: &SnapshotMeta,
) -> Result<Arc<dyn SnapshotReader>, Error> {
    let reader = log
        .open_snapshot()
        .await?
        .ok_or_else(|| Error::storage(format!("the {meta} is missing from the store")))?;
    if reader.meta() != meta {
        return Err(Error::storage(format!(
            "the store's latest snapshot is the {}, expected the {meta}",
            reader.meta()
        )));
    }
    Ok(reader)
}
