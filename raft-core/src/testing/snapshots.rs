//! Snapshot round trips for tests: a state machine's snapshot drained to bytes and read back
//! through a [`SnapshotReader`], and a snapshot written to a [`LogStore`] and read back.
//!
//! ```
//! use raft_core::testing::{MemKv, snapshots};
//! use raft_core::{LogId, StateMachine};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), raft_core::Error> {
//! let kv = MemKv::new(); // nothing applied: its snapshot is at index 0
//! let data = snapshots::drain(kv.snapshot().await?.as_mut()).await?;
//! let fresh = MemKv::new();
//! fresh.restore(snapshots::reader(LogId::ZERO, data)).await?;
//! assert!(fresh.dump().is_empty());
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::error::Error;
use crate::snapshot::{BytesReader, SnapshotMeta, SnapshotReader, SnapshotSource, read_to_vec};
use crate::storage::LogStore;
use crate::types::{LogId, Membership, NodeId};

/// CRC-32C (Castagnoli) of `data`: the checksum a [`SnapshotMeta`] and a snapshot chunk carry.
#[must_use]
pub fn checksum(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// The meta of a snapshot of `data` covering the log up to `last_log_id`, with `membership`.
#[must_use]
pub fn meta(last_log_id: LogId, membership: Membership, data: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id,
        membership,
        size: data.len() as u64,
        checksum: checksum(data),
    }
}

/// `data` as a stored snapshot up to `last_log_id` of a one-node cluster (node 1), for a state
/// machine's [`restore`](crate::StateMachine::restore).
#[must_use]
pub fn reader(last_log_id: LogId, data: impl Into<Bytes>) -> Arc<dyn SnapshotReader> {
    let data = data.into();
    let meta = meta(last_log_id, Membership::new([NodeId(1)]), &data);
    Arc::new(BytesReader::new(meta, data))
}

/// Every chunk of `source`, concatenated.
///
/// # Errors
/// The source's error, or [`Error::Storage`] if it yields an empty chunk (the contract says
/// chunks are non-empty).
pub async fn drain(source: &mut dyn SnapshotSource) -> Result<Bytes, Error> {
    let mut data = BytesMut::new();
    while let Some(chunk) = source.next_chunk().await? {
        if chunk.is_empty() {
            return Err(Error::storage("the snapshot source yielded an empty chunk"));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}

/// Writes `data` to `store` as the snapshot `meta` describes, in chunks of `chunk` bytes (at
/// least 1); returns whether it became the store's latest (see
/// [`SnapshotWriter::finish`](crate::SnapshotWriter::finish)).
///
/// # Errors
/// The store's error at any step.
pub async fn write(
    store: &dyn LogStore,
    meta: SnapshotMeta,
    data: &[u8],
    chunk: usize,
) -> Result<bool, Error> {
    let mut writer = store.begin_snapshot().await?;
    for piece in data.chunks(chunk.max(1)) {
        writer.write(Bytes::copy_from_slice(piece)).await?;
    }
    writer.finish(meta).await
}

/// The store's latest snapshot, meta and data, read back (and checked against the meta), or
/// `None` if it has none.
///
/// # Errors
/// The store's error, or [`Error::Storage`] if the data does not match the meta.
pub async fn read_latest(store: &dyn LogStore) -> Result<Option<(SnapshotMeta, Vec<u8>)>, Error> {
    let Some(reader) = store.open_snapshot().await? else {
        return Ok(None);
    };
    // Small reads, so a store's reader serves many ranges.
    let data = read_to_vec(reader.as_ref(), 1000).await?;
    Ok(Some((reader.meta().clone(), data)))
}
