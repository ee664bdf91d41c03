//! The wrapper's snapshot: the application's snapshot data, then the session table, then a
//! fixed trailer that locates both.
//!
//! ```text
//! [application data: inner_len bytes][session table: table_len bytes][trailer: 32 bytes]
//! trailer = "RWSS" version:u8 0 0 0 inner_len:u64 inner_crc:u32 table_len:u64 table_crc:u32
//! ```
//!
//! The table goes after the data so the application's chunks stream through unchanged while
//! their checksum is computed; the application's state machine restores from a reader that sees
//! only its own bytes, with its own size and checksum.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::{Error, SnapshotMeta, SnapshotReader, SnapshotSource};

const MAGIC: &[u8; 4] = b"RWSS";
const VERSION: u8 = 1;
/// Bytes of the trailer.
pub(crate) const TRAILER_LEN: u64 = 32;
/// Largest read when loading the session table.
const READ_CHUNK: usize = 1 << 20;

/// Where the two parts of a wrapper snapshot are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub(crate) inner_len: u64,
    pub(crate) inner_crc: u32,
    pub(crate) table_len: u64,
    pub(crate) table_crc: u32,
}

impl Trailer {
    fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(TRAILER_LEN as usize);
        buf.put_slice(MAGIC);
        buf.put_slice(&[VERSION, 0, 0, 0]);
        buf.put_u64(self.inner_len);
        buf.put_u32(self.inner_crc);
        buf.put_u64(self.table_len);
        buf.put_u32(self.table_crc);
        buf.freeze()
    }

    fn decode(mut bytes: Bytes, total: u64) -> Result<Trailer, String> {
        if bytes.len() as u64 != TRAILER_LEN {
            return Err(format!("trailer of {} bytes, expected 32", bytes.len()));
        }
        if &bytes[..4] != MAGIC {
            return Err("no raft-wrapper trailer (was it written by raft-wrapper?)".to_owned());
        }
        if bytes[5..8] != [0, 0, 0] {
            return Err("reserved trailer bytes are not zero".to_owned());
        }
        if bytes[4] != VERSION {
            return Err(format!(
                "trailer version {}, this build reads {VERSION}",
                bytes[4]
            ));
        }
        bytes.advance(8);
        let trailer = Trailer {
            inner_len: bytes.get_u64(),
            inner_crc: bytes.get_u32(),
            table_len: bytes.get_u64(),
            table_crc: bytes.get_u32(),
        };
        let expected = trailer
            .inner_len
            .checked_add(trailer.table_len)
            .and_then(|n| n.checked_add(TRAILER_LEN));
        if expected != Some(total) {
            return Err(format!(
                "trailer says {} + {} + 32 bytes, the snapshot has {total}",
                trailer.inner_len, trailer.table_len
            ));
        }
        Ok(trailer)
    }
}

/// Streams the application's chunks (summing their length and checksum), then the session
/// table, then the trailer.
pub(crate) struct WrappedSource {
    inner: Option<Box<dyn SnapshotSource>>,
    inner_len: u64,
    inner_crc: u32,
    table: Option<Bytes>,
    trailer: Option<Bytes>,
}

impl WrappedSource {
    pub(crate) fn new(inner: Box<dyn SnapshotSource>, table: Bytes) -> WrappedSource {
        WrappedSource {
            inner: Some(inner),
            inner_len: 0,
            inner_crc: 0,
            table: Some(table),
            trailer: None,
        }
    }
}

#[async_trait]
impl SnapshotSource for WrappedSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        while let Some(inner) = self.inner.as_mut() {
            match inner.next_chunk().await? {
                Some(chunk) if chunk.is_empty() => {}
                Some(chunk) => {
                    self.inner_len += chunk.len() as u64;
                    self.inner_crc = crc32c::crc32c_append(self.inner_crc, &chunk);
                    return Ok(Some(chunk));
                }
                None => self.inner = None,
            }
        }
        // The table, then the trailer: two chunks, no copy.
        if let Some(table) = self.table.take() {
            let trailer = Trailer {
                inner_len: self.inner_len,
                inner_crc: self.inner_crc,
                table_len: table.len() as u64,
                table_crc: crc32c::crc32c(&table),
            };
            self.trailer = Some(trailer.encode());
            if !table.is_empty() {
                return Ok(Some(table));
            }
        }
        if let Some(trailer) = self.trailer.take() {
            return Ok(Some(trailer));
        }
        Ok(None)
    }
}

/// Reads a wrapper snapshot's trailer and session table.
pub(crate) async fn read_parts(reader: &dyn SnapshotReader) -> Result<(Trailer, Vec<u8>), String> {
    let total = reader.meta().size;
    let start = total
        .checked_sub(TRAILER_LEN)
        .ok_or_else(|| format!("{total} bytes is too short for a raft-wrapper snapshot"))?;
    let trailer_bytes = reader
        .read(start, TRAILER_LEN as usize)
        .await
        .map_err(|e| format!("cannot read the trailer: {e}"))?;
    let trailer = Trailer::decode(trailer_bytes, total)?;
    let table_len = usize::try_from(trailer.table_len)
        .map_err(|_| format!("session table of {} bytes", trailer.table_len))?;
    let mut table = Vec::with_capacity(table_len);
    while table.len() < table_len {
        let want = (table_len - table.len()).min(READ_CHUNK);
        let chunk = reader
            .read(trailer.inner_len + table.len() as u64, want)
            .await
            .map_err(|e| format!("cannot read the session table: {e}"))?;
        if chunk.is_empty() {
            return Err("the snapshot ends inside its session table".to_owned());
        }
        table.extend_from_slice(&chunk);
    }
    if crc32c::crc32c(&table) != trailer.table_crc {
        return Err("the session table's checksum does not match".to_owned());
    }
    Ok((trailer, table))
}

/// The application's part of a wrapper snapshot, as a snapshot of its own.
pub(crate) struct InnerReader {
    outer: Arc<dyn SnapshotReader>,
    meta: SnapshotMeta,
}

impl InnerReader {
    pub(crate) fn new(outer: Arc<dyn SnapshotReader>, trailer: &Trailer) -> InnerReader {
        let meta = SnapshotMeta {
            size: trailer.inner_len,
            checksum: trailer.inner_crc,
            ..outer.meta().clone()
        };
        InnerReader { outer, meta }
    }
}

#[async_trait]
impl SnapshotReader for InnerReader {
    fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, Error> {
        if offset >= self.meta.size {
            return Ok(Bytes::new());
        }
        let left = self.meta.size - offset;
        let len = usize::try_from(left).map_or(len, |left| len.min(left));
        self.outer.read(offset, len).await
    }
}

#[cfg(test)]
mod tests {
    use raft_core::LogId;
    use raft_core::snapshot::{BytesSource, read_to_vec};
    use raft_core::testing::snapshots;

    use super::*;

    /// Every chunk of `source` (never an empty one), concatenated.
    async fn drain(mut source: WrappedSource) -> Bytes {
        snapshots::drain(&mut source).await.unwrap()
    }

    fn reader_of(data: Bytes) -> Arc<dyn SnapshotReader> {
        snapshots::reader(LogId::new(2, 40), data)
    }

    #[tokio::test]
    async fn application_data_and_table_come_back_apart() {
        let app = Bytes::from(vec![7u8; 10_000]);
        let source = WrappedSource::new(
            Box::new(BytesSource::new(app.clone(), 999)),
            Bytes::from_static(b"table"),
        );
        let reader = reader_of(drain(source).await);
        let (trailer, table) = read_parts(reader.as_ref()).await.unwrap();
        assert_eq!(table, b"table");
        let inner = InnerReader::new(reader.clone(), &trailer);
        assert_eq!(inner.meta().last_log_id, LogId::new(2, 40));
        assert_eq!(read_to_vec(&inner, 333).await.unwrap(), app);
        assert!(inner.read(10_000, 5).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn empty_application_snapshot_is_allowed() {
        let source = WrappedSource::new(
            Box::new(BytesSource::new(Bytes::new(), 8)),
            Bytes::from_static(b"t"),
        );
        let reader = reader_of(drain(source).await);
        let (trailer, _) = read_parts(reader.as_ref()).await.unwrap();
        assert_eq!(trailer.inner_len, 0);
        let inner = InnerReader::new(reader, &trailer);
        assert!(read_to_vec(&inner, 8).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn damaged_or_foreign_snapshots_are_refused() {
        let source = WrappedSource::new(
            Box::new(BytesSource::new(Bytes::from_static(b"app"), 8)),
            Bytes::from_static(b"table"),
        );
        let good = drain(source).await;
        // A flipped bit in the table.
        let mut bad = good.to_vec();
        bad[4] ^= 1;
        let error = read_parts(reader_of(Bytes::from(bad)).as_ref())
            .await
            .unwrap_err();
        assert!(error.contains("checksum"), "{error}");
        // Too short, and not a wrapper snapshot.
        assert!(
            read_parts(reader_of(Bytes::from_static(b"tiny")).as_ref())
                .await
                .is_err()
        );
        let foreign = Bytes::from(vec![0u8; 64]);
        let error = read_parts(reader_of(foreign).as_ref()).await.unwrap_err();
        assert!(error.contains("trailer"), "{error}");
        // Lengths that do not add up.
        let mut truncated = good.to_vec();
        truncated.remove(0);
        assert!(
            read_parts(reader_of(Bytes::from(truncated)).as_ref())
                .await
                .is_err()
        );
    }
}
