//! The snapshot format of the key-value map: [`MapSource`] encodes a fixed view chunk by chunk,
//! [`Decoder`] reads one back from chunks of any size.
//!
//! ```text
//! version 2   "RAFTKVSN" 0x02 (key_len:u32 key value_len:u32 value version:u64)*
//! version 1   "RAFTKV01"      (key_len:u32 key value_len:u32 value)*     read, no longer written
//! ```
//!
//! A key read from a version 1 snapshot gets version 0 (unknown): that format did not keep
//! versions, and 0 is no write's index.

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::{Error, SnapshotSource};

use crate::map::{Map, Versioned};
use crate::shards::SHARDS;

/// The magic of the format before versions; its records have no version.
const MAGIC_V1: &[u8; 8] = b"RAFTKV01";
/// The magic of the formats since, each followed by a format version byte.
const MAGIC: &[u8; 8] = b"RAFTKVSN";
/// The format version written.
const FORMAT_VERSION: u8 = 2;
/// Bytes per snapshot chunk produced and read.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

/// Encodes a fixed view lazily, chunk by chunk, on the runtime's snapshot task.
pub(crate) struct MapSource {
    header_sent: bool,
    /// The view as of the snapshot's index.
    map: Map,
    /// Where the next chunk starts: a shard and how many of its entries are encoded.
    shard: usize,
    done_in_shard: usize,
}

impl MapSource {
    /// A source of `map`'s snapshot.
    pub(crate) fn new(map: Map) -> MapSource {
        MapSource {
            header_sent: false,
            map,
            shard: 0,
            done_in_shard: 0,
        }
    }
}

#[async_trait]
impl SnapshotSource for MapSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        let mut chunk = BytesMut::with_capacity(CHUNK_BYTES);
        if !self.header_sent {
            self.header_sent = true;
            chunk.put_slice(MAGIC);
            chunk.put_u8(FORMAT_VERSION);
        }
        // The view never changes, so each shard lists its entries in the same order every time.
        while self.shard < SHARDS && chunk.len() < CHUNK_BYTES {
            for (key, entry) in self.map.shard_entries(self.shard).skip(self.done_in_shard) {
                if chunk.len() >= CHUNK_BYTES {
                    break;
                }
                for field in [key, &entry.value] {
                    let len = u32::try_from(field.len())
                        .map_err(|_| Error::state_machine("a key or value over 4 GiB"))?;
                    chunk.put_u32(len);
                    chunk.put_slice(field);
                }
                chunk.put_u64(entry.version);
                self.done_in_shard += 1;
            }
            if self.done_in_shard == self.map.shard_entries(self.shard).len() {
                self.shard += 1;
                self.done_in_shard = 0;
            }
        }
        Ok((!chunk.is_empty()).then(|| chunk.freeze()))
    }
}

/// Decodes a snapshot of either format from chunks of any size.
#[derive(Default)]
pub(crate) struct Decoder {
    pending: BytesMut,
    /// Whether the records carry versions; `None` until the header is read.
    versioned: Option<bool>,
    map: Map,
}

impl Decoder {
    /// Reads the next chunk.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(chunk);
        let versioned = match self.versioned {
            Some(versioned) => versioned,
            None => match self.header()? {
                Some(versioned) => versioned,
                None => return Ok(()),
            },
        };
        while let Some((key, value, version)) = self.record(versioned) {
            self.map.insert(key, Versioned { value, version });
        }
        Ok(())
    }

    /// The map, once every chunk was fed.
    pub(crate) fn finish(self) -> Result<Map, String> {
        if self.versioned.is_none() || !self.pending.is_empty() {
            return Err("the snapshot data ends in the middle of a record".to_owned());
        }
        Ok(self.map)
    }

    /// Reads the header if it is all there: whether the records carry versions.
    fn header(&mut self) -> Result<Option<bool>, String> {
        if self.pending.len() < MAGIC.len() {
            return Ok(None);
        }
        let versioned = if &self.pending[..MAGIC_V1.len()] == MAGIC_V1 {
            self.pending.advance(MAGIC_V1.len());
            false
        } else if &self.pending[..MAGIC.len()] == MAGIC {
            let Some(&version) = self.pending.get(MAGIC.len()) else {
                return Ok(None);
            };
            if version != FORMAT_VERSION {
                return Err(format!(
                    "raft-kv snapshot format version {version}, unknown to this build (it reads 1 and {FORMAT_VERSION})"
                ));
            }
            self.pending.advance(MAGIC.len() + 1);
            true
        } else {
            return Err("not a raft-kv snapshot (bad magic)".to_owned());
        };
        self.versioned = Some(versioned);
        Ok(Some(versioned))
    }

    /// Takes the next record if it is all there (key and value copied, so the map does not pin
    /// the read buffers).
    fn record(&mut self, versioned: bool) -> Option<(Bytes, Bytes, u64)> {
        let pending = &self.pending;
        let key_len = length_at(pending, 0)?;
        let value_at = 4usize.checked_add(key_len)?;
        let value_len = length_at(pending, value_at)?;
        let value_end = value_at.checked_add(4)?.checked_add(value_len)?;
        let end = value_end + if versioned { 8 } else { 0 };
        if pending.len() < end {
            return None;
        }
        let key = Bytes::copy_from_slice(&pending[4..value_at]);
        let value = Bytes::copy_from_slice(&pending[value_at + 4..value_end]);
        let version = match pending.get(value_end..end) {
            Some(bytes) if versioned => {
                let mut buf = bytes;
                buf.get_u64()
            }
            _ => 0,
        };
        self.pending.advance(end);
        Some((key, value, version))
    }
}

/// The `u32` length at `at`, if those bytes are there.
fn length_at(buf: &[u8], at: usize) -> Option<usize> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &'static [u8], version: u64) -> Versioned {
        Versioned {
            value: Bytes::from_static(value),
            version,
        }
    }

    async fn encode(map: Map) -> Vec<u8> {
        let mut source = MapSource::new(map);
        let mut data = Vec::new();
        while let Some(chunk) = source.next_chunk().await.unwrap() {
            data.extend_from_slice(&chunk);
        }
        data
    }

    fn decode(data: &[u8], piece: usize) -> Result<Map, String> {
        let mut decoder = Decoder::default();
        for chunk in data.chunks(piece) {
            decoder.feed(chunk)?;
        }
        decoder.finish()
    }

    #[tokio::test]
    async fn versions_survive_a_snapshot_read_in_pieces_of_any_size() {
        let mut map = Map::new();
        map.insert(Bytes::from_static(b"a"), entry(b"1", 3));
        map.insert(Bytes::from_static(b""), entry(b"", 1));
        map.insert(Bytes::from_static(b"long"), entry(&[7; 300], u64::MAX));
        let data = encode(map.clone()).await;
        assert_eq!(&data[..9], b"RAFTKVSN\x02");
        for piece in [1, 2, 5, 9, 13, data.len()] {
            assert_eq!(decode(&data, piece), Ok(map.clone()), "pieces of {piece}");
        }
    }

    #[test]
    fn snapshots_of_the_format_without_versions_are_read_with_version_zero() {
        // What an older build wrote for {a: 1, bb: ""}.
        let mut data = b"RAFTKV01".to_vec();
        for field in [&b"a"[..], b"1", b"bb", b""] {
            data.extend_from_slice(&(field.len() as u32).to_be_bytes());
            data.extend_from_slice(field);
        }
        let mut expected = Map::new();
        expected.insert(Bytes::from_static(b"a"), entry(b"1", 0));
        expected.insert(Bytes::from_static(b"bb"), entry(b"", 0));
        for piece in [1, 3, data.len()] {
            assert_eq!(decode(&data, piece), Ok(expected.clone()));
        }
    }

    #[test]
    fn unknown_versions_and_cut_records_are_refused() {
        assert!(decode(b"RAFTKVSN\x03", 4).is_err());
        assert!(decode(b"RAFTKVSN", 4).is_err());
        assert!(decode(b"RAFTKV9", 4).is_err());
        assert!(decode(b"RAFTKVSN\x02\0\0\0\x01a\0\0\0\0\0\0", 4).is_err());
        assert!(decode(b"something else", 4).is_err());
        assert_eq!(decode(b"RAFTKVSN\x02", 4), Ok(Map::new()));
    }
}
