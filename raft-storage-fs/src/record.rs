//! The on-disk record format of a log segment, and the scanner recovery is built on.
//!
//! A record is a 32-byte header followed by the payload, all integers little-endian:
//!
//! ```text
//!  0      2     3      4        8        16        24            28           32
//!  magic  kind  flags  len:u32  term:u64 index:u64 payload_crc   header_crc   payload (len)
//! ```
//!
//! `payload_crc` is crc32c of the payload; `header_crc` is crc32c of bytes 0..28 (so it covers
//! the payload's checksum too, hence the whole record). Two checksums instead of one let the
//! scanner trust `len` before reading the payload, and find later records cheaply (magic plus
//! header checksum) when it must decide whether a bad record is a torn tail or corruption.
//!
//! Recovery rule: after a crash only the data written since the last fsync can be damaged, and
//! it is a suffix of the file. So a bad record after which no valid record exists anywhere in
//! the file is a torn tail (the file is cut there, losing only unsynced data); a bad record
//! followed by a valid one is corruption of synced data, which is refused, never skipped.
#![deny(clippy::indexing_slicing)]

use std::path::Path;

use bytes::{Buf, BufMut, Bytes};
use raft_core::{Entry, LogId, LogIndex, Payload, Term};

use crate::error::Error;

/// Bytes before a record's payload.
pub const HEADER_BYTES: usize = 32;
/// The largest payload a record holds (64 MiB); larger lengths are treated as damage.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

const MAGIC: u16 = 0x4652; // "RF" on disk
const KIND_BLANK: u8 = 0;
const KIND_COMMAND: u8 = 1;

/// Appends the record for `entry` to `out`.
///
/// # Errors
/// [`Error::TooLarge`] for a payload over [`MAX_PAYLOAD_BYTES`].
pub fn encode(entry: &Entry, out: &mut Vec<u8>) -> Result<(), Error> {
    let (kind, payload): (u8, &[u8]) = match &entry.payload {
        Payload::Blank => (KIND_BLANK, &[]),
        Payload::Command(bytes) => (KIND_COMMAND, bytes),
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::TooLarge {
            index: entry.log_id.index.0,
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let start = out.len();
    out.reserve(HEADER_BYTES + payload.len());
    out.put_u16_le(MAGIC);
    out.put_u8(kind);
    out.put_u8(0);
    out.put_u32_le(payload.len() as u32);
    out.put_u64_le(entry.log_id.term.0);
    out.put_u64_le(entry.log_id.index.0);
    out.put_u32_le(crc32c::crc32c(payload));
    let header_crc = crc32c::crc32c(out.get(start..).unwrap_or_default());
    out.put_u32_le(header_crc);
    out.put_slice(payload);
    Ok(())
}

/// The size of `entry`'s record.
#[must_use]
pub fn encoded_len(entry: &Entry) -> usize {
    HEADER_BYTES + usize::try_from(entry.payload.len()).unwrap_or(usize::MAX)
}

/// One decoded record and where it starts in the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Byte offset of the record in the segment.
    pub offset: u64,
    /// The entry (its payload shares the scanned buffer).
    pub entry: Entry,
}

/// What follows the valid records of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Nothing, or only zeros (preallocated space).
    Clean,
    /// A torn write from `offset` on: truncate the file there.
    Torn {
        /// Where the damage starts (the end of the valid prefix).
        offset: u64,
    },
}

/// The result of scanning a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The valid records, in file order, with consecutive indexes.
    pub records: Vec<Record>,
    /// Bytes of valid records: where the next record is written.
    pub valid_len: u64,
    /// What follows them.
    pub tail: Tail,
}

/// A record header that passed its checksum.
struct Header {
    kind: u8,
    len: usize,
    term: u64,
    index: u64,
    payload_crc: u32,
}

/// Decodes the header at the start of `bytes`, if it is one.
fn header(bytes: &[u8]) -> Option<Header> {
    let raw = bytes.get(..HEADER_BYTES)?;
    let covered = raw.get(..HEADER_BYTES - 4)?;
    let mut buf = raw;
    if buf.get_u16_le() != MAGIC {
        return None;
    }
    let kind = buf.get_u8();
    let flags = buf.get_u8();
    let len = buf.get_u32_le() as usize;
    let term = buf.get_u64_le();
    let index = buf.get_u64_le();
    let payload_crc = buf.get_u32_le();
    let header_crc = buf.get_u32_le();
    let valid = header_crc == crc32c::crc32c(covered)
        && flags == 0
        && (kind == KIND_BLANK || kind == KIND_COMMAND)
        && len <= MAX_PAYLOAD_BYTES
        && (kind == KIND_COMMAND || len == 0);
    valid.then_some(Header {
        kind,
        len,
        term,
        index,
        payload_crc,
    })
}

/// Whether a whole valid record (header and payload) starts at `offset`.
fn valid_record_at(data: &[u8], offset: usize) -> bool {
    let Some(rest) = data.get(offset..) else {
        return false;
    };
    let Some(header) = header(rest) else {
        return false;
    };
    rest.get(HEADER_BYTES..HEADER_BYTES + header.len)
        .is_some_and(|payload| crc32c::crc32c(payload) == header.payload_crc)
}

/// Whether any valid record starts after `offset` (so the damage at `offset` is not a tail).
fn valid_record_after(data: &[u8], offset: usize) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    let mut from = offset + 1;
    while let Some(rest) = data.get(from..) {
        let found = rest.windows(2).position(|w| w == magic)?;
        let at = from + found;
        if valid_record_at(data, at) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Scans a segment's bytes. `file` names it in errors.
///
/// # Errors
/// [`Error::Corrupt`] when a damaged record is followed by a valid one, or when valid records
/// do not have consecutive indexes and non-decreasing terms.
pub fn scan(data: &Bytes, file: &Path) -> Result<Scan, Error> {
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        file: file.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut records: Vec<Record> = Vec::new();
    let mut offset = 0;
    let tail = loop {
        let rest = data.get(offset..).unwrap_or_default();
        if rest.iter().all(|&byte| byte == 0) {
            break Tail::Clean;
        }
        let damage = match header(rest) {
            None => "bad record header".to_owned(),
            Some(header) => {
                let payload = rest.get(HEADER_BYTES..HEADER_BYTES + header.len);
                match payload {
                    Some(payload) if crc32c::crc32c(payload) == header.payload_crc => {
                        if let Some(previous) = records.last() {
                            let log_id = previous.entry.log_id;
                            if header.index != log_id.index.0 + 1 || header.term < log_id.term.0 {
                                return Err(corrupt(
                                    offset,
                                    format!(
                                        "entry {}-{} cannot follow {log_id}",
                                        header.term, header.index
                                    ),
                                ));
                            }
                        }
                        let start = offset + HEADER_BYTES;
                        let payload = match header.kind {
                            KIND_COMMAND => Payload::Command(data.slice(start..start + header.len)),
                            _ => Payload::Blank,
                        };
                        records.push(Record {
                            offset: offset as u64,
                            entry: Entry {
                                log_id: LogId {
                                    term: Term(header.term),
                                    index: LogIndex(header.index),
                                },
                                payload,
                            },
                        });
                        offset = start + header.len;
                        continue;
                    }
                    Some(_) => "payload checksum mismatch".to_owned(),
                    None => "record runs past the end of the file".to_owned(),
                }
            }
        };
        if let Some(next) = valid_record_after(data, offset) {
            return Err(corrupt(
                offset,
                format!("{damage}, and a valid record follows at offset {next}"),
            ));
        }
        break Tail::Torn {
            offset: offset as u64,
        };
    };
    Ok(Scan {
        records,
        valid_len: offset as u64,
        tail,
    })
}

/// Decodes `data`, read from `file` at `base_offset`, as whole valid records of consecutive
/// entries starting at `first`: the strict decoder for reads of records known to be written.
///
/// # Errors
/// [`Error::Corrupt`] for any damaged, partial or unexpected record.
pub fn decode_exact(
    data: &Bytes,
    file: &Path,
    base_offset: u64,
    first: LogIndex,
) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let corrupt = |reason: &str| Error::Corrupt {
            file: file.to_path_buf(),
            offset: base_offset + offset as u64,
            reason: reason.to_owned(),
        };
        let rest = data.get(offset..).unwrap_or_default();
        let header = header(rest).ok_or_else(|| corrupt("bad record header"))?;
        let start = offset + HEADER_BYTES;
        let payload = data
            .get(start..start + header.len)
            .ok_or_else(|| corrupt("record runs past the end of the read"))?;
        if crc32c::crc32c(payload) != header.payload_crc {
            return Err(corrupt("payload checksum mismatch"));
        }
        let expected = first.0 + entries.len() as u64;
        if header.index != expected {
            return Err(corrupt(&format!(
                "found entry {} where entry {expected} was written",
                header.index
            )));
        }
        entries.push(Entry {
            log_id: LogId {
                term: Term(header.term),
                index: LogIndex(header.index),
            },
            payload: match header.kind {
                KIND_COMMAND => Payload::Command(data.slice(start..start + header.len)),
                _ => Payload::Blank,
            },
        });
        offset = start + header.len;
    }
    Ok(entries)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn entry(term: u64, index: u64, payload: &str) -> Entry {
        Entry {
            log_id: LogId::new(term, index),
            payload: if payload.is_empty() {
                Payload::Blank
            } else {
                Payload::Command(Bytes::from(payload.to_owned()))
            },
        }
    }

    fn segment(entries: &[Entry]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for entry in entries {
            offsets.push(out.len());
            encode(entry, &mut out).unwrap();
        }
        (out, offsets)
    }

    fn file() -> PathBuf {
        PathBuf::from("00000000000000000001.seg")
    }

    fn sample() -> Vec<Entry> {
        (1..=6)
            .map(|i| entry(1 + i / 3, i, if i == 1 { "" } else { "payload-bytes" }))
            .collect()
    }

    #[test]
    fn records_round_trip_with_a_zero_filled_tail() {
        let entries = sample();
        let (mut bytes, _) = segment(&entries);
        let len = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        let scan = scan(&Bytes::from(bytes), &file()).unwrap();
        let decoded: Vec<Entry> = scan.records.into_iter().map(|r| r.entry).collect();
        assert_eq!(decoded, entries);
        assert_eq!(scan.valid_len, len);
        assert_eq!(scan.tail, Tail::Clean);
    }

    /// Cutting the file at any byte of its last records keeps exactly the whole records before
    /// the cut: a torn tail, never an error, never a partial record.
    #[test]
    fn truncation_at_every_offset_keeps_exactly_the_whole_records_before_it() {
        let entries = sample();
        let (bytes, offsets) = segment(&entries);
        let from = offsets.get(3).copied().unwrap();
        for cut in from..=bytes.len() {
            let data = Bytes::copy_from_slice(&bytes[..cut]);
            let scan = scan(&data, &file()).unwrap();
            let ends: Vec<usize> = offsets
                .iter()
                .skip(1)
                .copied()
                .chain([bytes.len()])
                .collect();
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            let expected_len = if whole == 0 { 0 } else { ends[whole - 1] };
            assert_eq!(scan.records.len(), whole, "cut at {cut}");
            assert_eq!(scan.valid_len as usize, expected_len, "cut at {cut}");
            assert_eq!(
                scan.tail == Tail::Clean,
                cut == expected_len,
                "cut at {cut}"
            );
        }
    }

    /// Every single-bit flip anywhere is either a torn tail that keeps a prefix of the records
    /// (damage in the last record) or refused as corruption naming the damaged record; no flip
    /// ever yields a different entry.
    #[test]
    fn every_bit_flip_is_detected_and_never_returns_altered_entries() {
        let entries = sample();
        let (bytes, offsets) = segment(&entries);
        let last = *offsets.last().unwrap();
        for position in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[position] ^= 1 << bit;
                let record = offsets.iter().rposition(|&o| o <= position).unwrap();
                match scan(&Bytes::from(damaged), &file()) {
                    Ok(scan) => {
                        assert!(position >= last, "flip at {position} taken for a torn tail");
                        assert_eq!(
                            scan.tail,
                            Tail::Torn {
                                offset: last as u64
                            }
                        );
                        let decoded: Vec<Entry> =
                            scan.records.into_iter().map(|r| r.entry).collect();
                        assert_eq!(decoded, entries[..record]);
                    }
                    Err(Error::Corrupt { offset, .. }) => {
                        assert_eq!(offset as usize, offsets[record], "flip at {position}");
                    }
                    Err(other) => panic!("unexpected {other}"),
                }
            }
        }
    }

    #[test]
    fn garbage_after_the_records_is_a_torn_tail() {
        let (mut bytes, _) = segment(&sample());
        let len = bytes.len() as u64;
        bytes.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let scan = scan(&Bytes::from(bytes), &file()).unwrap();
        assert_eq!(scan.records.len(), 6);
        assert_eq!(scan.tail, Tail::Torn { offset: len });
    }

    #[test]
    fn out_of_order_indexes_are_refused() {
        let (bytes, offsets) = segment(&[entry(1, 1, "a"), entry(1, 3, "b")]);
        let err = scan(&Bytes::from(bytes), &file()).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { offset, .. } if offset as usize == offsets[1]),
            "{err}"
        );
        assert!(err.to_string().contains("00000000000000000001.seg"));
    }

    #[test]
    fn oversized_payload_is_refused_at_encode() {
        let big = Entry {
            log_id: LogId::new(1, 1),
            payload: Payload::Command(Bytes::from(vec![0; MAX_PAYLOAD_BYTES + 1])),
        };
        assert!(matches!(
            encode(&big, &mut Vec::new()),
            Err(Error::TooLarge { .. })
        ));
    }
}
