//! Snapshots: the state machine's state at one log index, moved in chunks.
//!
//! Three roles, all object-based (NuRaft's transfer), so a snapshot larger than memory can move:
//! - a [`SnapshotSource`] produces the data of a snapshot the state machine just captured
//!   ([`StateMachine::snapshot`](crate::StateMachine::snapshot)), chunk after chunk, while
//!   commits go on;
//! - a [`SnapshotWriter`] (from [`LogStore::begin_snapshot`](crate::LogStore::begin_snapshot))
//!   stores the chunks and makes the snapshot durable and current in one atomic step;
//! - a [`SnapshotReader`] (from [`LogStore::open_snapshot`](crate::LogStore::open_snapshot))
//!   reads any range of the latest snapshot: the leader sends it to a follower in chunks, and a
//!   state machine restores itself from it.
//!
//! [`BytesSource`] and [`BytesReader`] serve a snapshot held in memory (tests, small states).

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::types::{LogId, Membership};

/// What a snapshot is: the log position it covers and the shape of its data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot covers: the state is exactly the one after applying the log
    /// up to and including this entry.
    pub last_log_id: LogId,
    /// The voting members as of `last_log_id`.
    pub membership: Membership,
    /// The data's length in bytes.
    pub size: u64,
    /// CRC-32C (Castagnoli) of the whole data.
    pub checksum: u32,
}

impl fmt::Display for SnapshotMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "snapshot at {} ({} bytes, crc32c {:08x})",
            self.last_log_id, self.size, self.checksum
        )
    }
}

/// The data of a snapshot being created, produced in chunks after the state was captured.
///
/// The runtime pulls chunks until `None` and writes each to the log store; this runs on its own
/// task, concurrently with commits, so the state machine must have fixed its view of the state
/// when [`StateMachine::snapshot`](crate::StateMachine::snapshot) returned.
#[async_trait]
pub trait SnapshotSource: Send {
    /// The next chunk of data, or `None` at the end. Chunks may have any non-zero size.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error>;
}

/// Stores one snapshot as it is written, chunk after chunk, in order.
///
/// Dropping a writer without [`finish`](SnapshotWriter::finish) abandons the snapshot; the
/// previous one stays current, and a crash at any point leaves the previous one usable.
#[async_trait]
pub trait SnapshotWriter: Send {
    /// Appends `chunk` to the data. It need not be durable yet.
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error>;

    /// Checks the data against `meta` (size and checksum), makes it durable and, in one atomic
    /// step, the store's latest snapshot, unless the store already has one at a higher or equal
    /// index (then the new one is discarded). Older snapshots are removed only after the new one
    /// is durable. Returns whether the snapshot became the latest.
    async fn finish(self: Box<Self>, meta: SnapshotMeta) -> Result<bool, Error>;
}

/// Reads the data of one stored snapshot; any range, any number of times, concurrently.
#[async_trait]
pub trait SnapshotReader: Send + Sync {
    /// The snapshot's description.
    fn meta(&self) -> &SnapshotMeta;

    /// Reads up to `len` bytes at `offset`. Fewer are returned only at the end of the data;
    /// none at or past it.
    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, Error>;
}

/// Reads a whole snapshot into memory in chunks of `chunk` bytes; for state machines whose state
/// fits in memory anyway. Checks the data's size and checksum against the meta.
///
/// # Errors
/// The reader's error, or [`Error::Storage`] if the data does not match its meta.
pub async fn read_to_vec(reader: &dyn SnapshotReader, chunk: usize) -> Result<Vec<u8>, Error> {
    let meta = reader.meta().clone();
    let capacity = usize::try_from(meta.size).unwrap_or(0);
    let mut data = Vec::with_capacity(capacity);
    loop {
        let bytes = reader.read(data.len() as u64, chunk.max(1)).await?;
        if bytes.is_empty() {
            break;
        }
        data.extend_from_slice(&bytes);
    }
    if data.len() as u64 != meta.size || crc32c::crc32c(&data) != meta.checksum {
        return Err(Error::storage(format!(
            "{meta}: the data read back ({} bytes) does not match it",
            data.len()
        )));
    }
    Ok(data)
}

/// A [`SnapshotSource`] over data already in memory, cut into chunks of a given size.
#[derive(Clone, Debug)]
pub struct BytesSource {
    data: Bytes,
    chunk: usize,
}

impl BytesSource {
    /// Serves `data` in chunks of at most `chunk` bytes.
    #[must_use]
    pub fn new(data: Bytes, chunk: usize) -> BytesSource {
        BytesSource {
            data,
            chunk: chunk.max(1),
        }
    }
}

#[async_trait]
impl SnapshotSource for BytesSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let take = self.chunk.min(self.data.len());
        Ok(Some(self.data.split_to(take)))
    }
}

/// A [`SnapshotReader`] over a snapshot held in memory.
#[derive(Clone, Debug)]
pub struct BytesReader {
    meta: SnapshotMeta,
    data: Bytes,
}

impl BytesReader {
    /// A reader of `data`, described by `meta`.
    #[must_use]
    pub fn new(meta: SnapshotMeta, data: Bytes) -> BytesReader {
        BytesReader { meta, data }
    }
}

#[async_trait]
impl SnapshotReader for BytesReader {
    fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, Error> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let end = start.saturating_add(len).min(self.data.len());
        Ok(self.data.slice(start..end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_of(data: &[u8]) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: LogId::new(2, 9),
            membership: Membership::new([crate::NodeId(1)]),
            size: data.len() as u64,
            checksum: crc32c::crc32c(data),
        }
    }

    #[tokio::test]
    async fn bytes_source_cuts_chunks_and_reader_reads_ranges() {
        let data = Bytes::from_static(b"0123456789");
        let mut source = BytesSource::new(data.clone(), 4);
        let mut chunks = Vec::new();
        while let Some(chunk) = source.next_chunk().await.unwrap() {
            chunks.push(chunk);
        }
        assert_eq!(chunks, ["0123", "4567", "89"]);
        let reader = BytesReader::new(meta_of(&data), data.clone());
        assert_eq!(reader.read(8, 5).await.unwrap(), "89");
        assert!(reader.read(10, 5).await.unwrap().is_empty());
        assert!(reader.read(99, 5).await.unwrap().is_empty());
        assert_eq!(read_to_vec(&reader, 3).await.unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn read_to_vec_refuses_data_that_does_not_match_its_meta() {
        let mut meta = meta_of(b"abc");
        meta.checksum ^= 1;
        let reader = BytesReader::new(meta, Bytes::from_static(b"abc"));
        assert!(matches!(
            read_to_vec(&reader, 2).await,
            Err(Error::Storage(_))
        ));
    }
}
