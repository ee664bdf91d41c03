//! The snapshot file format: names, the trailer that describes the data, and validation.
//!
//! A snapshot file is the data exactly as the state machine produced it, followed by a trailer
//! (all integers little-endian):
//!
//! ```text
//!  data (size bytes) | meta block (meta_len bytes) | footer (20 bytes)
//!
//!  meta block:  term:u64  index:u64  size:u64  checksum:u32  membership_len:u32  membership
//!  footer:      magic "RAFTSNAP"  version:u32  meta_len:u32  crc:u32
//! ```
//!
//! `membership` is the [`Membership::encode`] form (voters, the outgoing voters of a joint
//! configuration, learners, addresses), `membership_len` bytes long, and the footer's version
//! is 2. Version 1 files, written before memberships had more than voters, are still read: their
//! meta block ends in `voters:u32  voter id:u64 * voters` instead, read as
//! `Membership::new(voters)`. Every file is written in version 2.
//!
//! `checksum` is the CRC-32C of the data (the [`SnapshotMeta`] checksum); the footer's `crc` is
//! the CRC-32C of the meta block followed by the footer's first 16 bytes, so a reader trusts
//! `meta_len` and the meta only after checking it. A trailer (not a header) lets the writer
//! stream the data before it knows the meta. The file's length must be exactly
//! `size + meta_len + 20`, and the index in its name must be the meta's.
//!
//! Files are named `snapshot-<index, 20 digits>.snap`; one being written is
//! `snapshot-<sequence number, 20 digits>.tmp` until it is complete and renamed.
#![deny(clippy::indexing_slicing)]

use std::path::Path;

use bytes::{Buf, BufMut};
use raft_core::{LogId, LogIndex, Membership, NodeId, SnapshotMeta};

use crate::error::Error;
use crate::fs::FsFile;

const PREFIX: &str = "snapshot-";
/// The file name suffix of complete snapshots.
pub(crate) const SUFFIX: &str = ".snap";
/// The file name suffix of snapshots being written.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";
const DIGITS: usize = 20;

const MAGIC: &[u8; 8] = b"RAFTSNAP";
/// The version every snapshot is written in: the meta holds the whole membership.
const VERSION: u32 = 2;
/// The first version, still read: the meta holds only the voters.
const VERSION_VOTERS_ONLY: u32 = 1;
/// Bytes of the footer at the very end of the file.
pub(crate) const FOOTER_BYTES: u64 = 20;
/// Bytes of the meta block before its membership (or, in version 1, its voter ids).
const META_FIXED_BYTES: usize = 32;
/// A meta block larger than this is damage (its membership would name some 100,000 members).
const META_MAX_BYTES: u64 = 1 << 20;
/// How much of the data validation reads at a time.
const READ_CHUNK_BYTES: u64 = 1 << 20;

/// The file name of the complete snapshot covering up to `index`.
pub(crate) fn name(index: LogIndex) -> String {
    format!("{PREFIX}{:0width$}{SUFFIX}", index.0, width = DIGITS)
}

/// The file name of the `seq`th snapshot written since the log was opened.
pub(crate) fn temp_name(seq: u64) -> String {
    format!("{PREFIX}{seq:0width$}{TEMP_SUFFIX}", width = DIGITS)
}

/// Whether `name` is a snapshot file (complete or not): `Some(Some(index))` for a complete one,
/// `Some(None)` for one whose name is damaged, `None` for any other file.
pub(crate) fn parse_name(name: &str) -> Option<Option<LogIndex>> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(None);
    }
    Some(digits.parse().ok().map(LogIndex))
}

/// Whether `name` is a snapshot being written (left behind by a crash when found at open).
pub(crate) fn is_temp(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// The trailer that follows the data of the snapshot `meta`.
///
/// # Errors
/// [`Error::Invalid`] for a membership too large for a meta block (over 1 MiB encoded).
pub(crate) fn encode_trailer(meta: &SnapshotMeta) -> Result<Vec<u8>, Error> {
    let membership = meta.membership.to_bytes();
    let meta_len = META_FIXED_BYTES + membership.len();
    let (Ok(membership_len), Ok(meta_len_u32)) =
        (u32::try_from(membership.len()), u32::try_from(meta_len))
    else {
        return Err(too_large(meta_len));
    };
    if u64::from(meta_len_u32) > META_MAX_BYTES {
        return Err(too_large(meta_len));
    }
    let mut out = Vec::with_capacity(meta_len + FOOTER_BYTES as usize);
    out.put_u64_le(meta.last_log_id.term.0);
    out.put_u64_le(meta.last_log_id.index.0);
    out.put_u64_le(meta.size);
    out.put_u32_le(meta.checksum);
    out.put_u32_le(membership_len);
    out.put_slice(&membership);
    put_footer(&mut out, VERSION, meta_len_u32);
    Ok(out)
}

fn too_large(meta_len: usize) -> Error {
    Error::Invalid(format!(
        "a snapshot meta of {meta_len} bytes (its membership) is over the {META_MAX_BYTES} a snapshot file holds"
    ))
}

/// Appends the footer after the meta block `out` holds (the crc covers both).
fn put_footer(out: &mut Vec<u8>, version: u32, meta_len: u32) {
    out.put_slice(MAGIC);
    out.put_u32_le(version);
    out.put_u32_le(meta_len);
    let crc = crc32c::crc32c(out);
    out.put_u32_le(crc);
}

/// Reads and checks the trailer of the snapshot file `path` (`len` bytes long), and returns
/// the meta it holds. The data itself is checked by [`check_data`].
pub(crate) fn read_trailer(
    file: &dyn FsFile,
    path: &Path,
    len: u64,
) -> Result<SnapshotMeta, Error> {
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    let Some(footer_at) = len.checked_sub(FOOTER_BYTES) else {
        return Err(corrupt(
            0,
            format!("a snapshot file of {len} bytes has no trailer"),
        ));
    };
    let mut footer = [0; FOOTER_BYTES as usize];
    file.read_exact_at(&mut footer, footer_at)
        .map_err(|err| Error::io("reading", path, err))?;
    let mut buf = footer.as_slice();
    let mut magic = [0; 8];
    buf.copy_to_slice(&mut magic);
    let version = buf.get_u32_le();
    let meta_len = u64::from(buf.get_u32_le());
    let crc = buf.get_u32_le();
    if &magic != MAGIC {
        return Err(corrupt(
            footer_at,
            "no snapshot trailer (bad magic)".to_owned(),
        ));
    }
    if version != VERSION && version != VERSION_VOTERS_ONLY {
        return Err(corrupt(
            footer_at,
            format!(
                "unknown snapshot version {version} (this build reads versions {VERSION_VOTERS_ONLY} and {VERSION})"
            ),
        ));
    }
    let Some(meta_at) = footer_at
        .checked_sub(meta_len)
        .filter(|_| meta_len <= META_MAX_BYTES)
    else {
        return Err(corrupt(
            footer_at,
            format!("meta length {meta_len} does not fit the file"),
        ));
    };
    let mut block = vec![0; usize::try_from(meta_len).unwrap_or(0)];
    file.read_exact_at(&mut block, meta_at)
        .map_err(|err| Error::io("reading", path, err))?;
    let covered = footer.get(..16).unwrap_or_default();
    if crc32c::crc32c_append(crc32c::crc32c(&block), covered) != crc {
        return Err(corrupt(
            meta_at,
            "snapshot trailer checksum mismatch".to_owned(),
        ));
    }
    let meta = decode_meta(&block, version).map_err(|reason| corrupt(meta_at, reason))?;
    if meta.size != meta_at {
        return Err(corrupt(
            meta_at,
            format!("{meta} but the trailer starts at byte {meta_at}"),
        ));
    }
    Ok(meta)
}

/// Reads a meta block of `version` (checked by the caller to be one this build reads).
fn decode_meta(block: &[u8], version: u32) -> Result<SnapshotMeta, String> {
    if block.len() < META_FIXED_BYTES {
        return Err(format!(
            "a meta block of {} bytes is too short",
            block.len()
        ));
    }
    let mut buf = block;
    let term = buf.get_u64_le();
    let index = buf.get_u64_le();
    let size = buf.get_u64_le();
    let checksum = buf.get_u32_le();
    let count = buf.get_u32_le() as usize;
    let membership = if version == VERSION_VOTERS_ONLY {
        if buf.len() != count.saturating_mul(8) {
            return Err(format!(
                "the meta block names {count} voters but holds {} bytes for them",
                buf.len()
            ));
        }
        Membership::new((0..count).map(|_| NodeId(buf.get_u64_le())))
    } else {
        if buf.len() != count {
            return Err(format!(
                "the meta block declares a membership of {count} bytes but holds {}",
                buf.len()
            ));
        }
        Membership::decode(buf)
            .map_err(|err| format!("the meta block's membership does not decode: {err}"))?
    };
    Ok(SnapshotMeta {
        last_log_id: LogId::new(term, index),
        membership,
        size,
        checksum,
    })
}

/// Checks the data of the snapshot file `path` against `meta`, reading it in chunks (never
/// whole into memory).
pub(crate) fn check_data(file: &dyn FsFile, path: &Path, meta: &SnapshotMeta) -> Result<(), Error> {
    let mut crc = 0;
    let mut offset = 0;
    let mut buf = Vec::new();
    while offset < meta.size {
        let chunk = (meta.size - offset).min(READ_CHUNK_BYTES);
        buf.resize(usize::try_from(chunk).unwrap_or(0), 0);
        file.read_exact_at(&mut buf, offset)
            .map_err(|err| Error::io("reading", path, err))?;
        crc = crc32c::crc32c_append(crc, &buf);
        offset += chunk;
    }
    if crc != meta.checksum {
        return Err(Error::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason: format!("the data's crc32c is {crc:08x}, the trailer says {meta}"),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fs::Fs;
    use crate::testing::SimFs;

    /// A joint configuration with a learner and addresses: more than voters to keep.
    fn joint() -> Membership {
        use raft_core::MembershipChange;
        Membership::new([NodeId(1), NodeId(2), NodeId(5)])
            .with_address(NodeId(1), "node-1:7000")
            .apply(&MembershipChange::add_learner(NodeId(7), "node-7:7000"))
            .unwrap()
            .apply(&MembershipChange::add_learner(NodeId(8), "node-8:7000"))
            .unwrap()
            .apply(
                &MembershipChange::default()
                    .promote(NodeId(7))
                    .remove(NodeId(2)),
            )
            .unwrap()
    }

    fn meta_of(data: &[u8]) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: LogId::new(3, 77),
            membership: joint(),
            size: data.len() as u64,
            checksum: crc32c::crc32c(data),
        }
    }

    /// The trailer as version 1 wrote it (before memberships had more than voters): the
    /// encoder of that version, kept to check such files still read.
    fn encode_trailer_v1(meta: &SnapshotMeta) -> Vec<u8> {
        let voters: Vec<NodeId> = meta.membership.voters().collect();
        let meta_len = META_FIXED_BYTES + 8 * voters.len();
        let mut out = Vec::new();
        out.put_u64_le(meta.last_log_id.term.0);
        out.put_u64_le(meta.last_log_id.index.0);
        out.put_u64_le(meta.size);
        out.put_u32_le(meta.checksum);
        out.put_u32_le(voters.len() as u32);
        for voter in voters {
            out.put_u64_le(voter.0);
        }
        out.put_slice(MAGIC);
        out.put_u32_le(1);
        out.put_u32_le(meta_len as u32);
        let crc = crc32c::crc32c(&out);
        out.put_u32_le(crc);
        out
    }

    fn read_back(bytes: &[u8]) -> Result<SnapshotMeta, Error> {
        let (_fs, file) = file_with(bytes);
        read_trailer(&*file, Path::new("/s"), bytes.len() as u64)
    }

    #[test]
    fn a_joint_membership_with_learners_and_addresses_round_trips() {
        let data = b"state".to_vec();
        let meta = meta_of(&data);
        assert!(meta.membership.is_joint());
        let mut bytes = data.clone();
        bytes.extend(encode_trailer(&meta).unwrap());
        let back = read_back(&bytes).unwrap();
        assert_eq!(back, meta);
        assert_eq!(back.membership.address(NodeId(8)), Some("node-8:7000"));
        assert!(back.membership.is_learner(NodeId(8)));
        assert_eq!(back.membership.outgoing_voters().count(), 3);
    }

    #[test]
    fn a_version_1_file_with_voters_only_still_reads() {
        let data = b"old state".to_vec();
        let meta = SnapshotMeta {
            membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
            ..meta_of(&data)
        };
        let mut bytes = data.clone();
        bytes.extend(encode_trailer_v1(&meta));
        assert_eq!(read_back(&bytes).unwrap(), meta);
        // The voters of a richer membership are all version 1 kept.
        let mut bytes = data.clone();
        bytes.extend(encode_trailer_v1(&meta_of(&data)));
        let back = read_back(&bytes).unwrap();
        assert_eq!(
            back.membership,
            Membership::new(meta_of(&data).membership.voters())
        );
    }

    #[test]
    fn an_unknown_version_or_a_damaged_membership_is_refused() {
        let data = b"state".to_vec();
        let meta = meta_of(&data);
        let mut trailer = encode_trailer(&meta).unwrap();
        // A future version, with a correct checksum: refused, naming the versions read.
        let meta_len = trailer.len() - FOOTER_BYTES as usize;
        trailer.truncate(meta_len);
        put_footer(&mut trailer, 3, meta_len as u32);
        let mut bytes = data.clone();
        bytes.extend(&trailer);
        let err = read_back(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("unknown snapshot version 3"),
            "{err}"
        );
        // A membership that does not decode, under a correct checksum.
        let mut block = encode_trailer(&meta).unwrap();
        block.truncate(meta_len);
        block[META_FIXED_BYTES] = 99; // the membership's own encoding version
        put_footer(&mut block, VERSION, meta_len as u32);
        let mut bytes = data.clone();
        bytes.extend(&block);
        let err = read_back(&bytes).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if reason.contains("membership does not decode")),
            "{err}"
        );
        // A membership length that disagrees with the block.
        let mut block = encode_trailer(&meta).unwrap();
        block.truncate(meta_len);
        block[28..32].copy_from_slice(&1u32.to_le_bytes());
        put_footer(&mut block, VERSION, meta_len as u32);
        let mut bytes = data;
        bytes.extend(&block);
        let err = read_back(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("declares a membership of 1 bytes"),
            "{err}"
        );
    }

    fn file_with(bytes: &[u8]) -> (SimFs, Arc<dyn FsFile>) {
        let fs = SimFs::new();
        let path = Path::new("/s");
        let file = fs.open(path, true).unwrap();
        file.write_all_at(bytes, 0).unwrap();
        (fs, file)
    }

    #[test]
    fn names_parse_back_and_temp_names_are_recognised() {
        assert_eq!(name(LogIndex(42)), "snapshot-00000000000000000042.snap");
        assert_eq!(parse_name(&name(LogIndex(42))), Some(Some(LogIndex(42))));
        assert_eq!(parse_name("snapshot-42.snap"), Some(None));
        assert_eq!(parse_name("00000000000000000042.seg"), None);
        assert!(is_temp(&temp_name(7)));
        assert!(!is_temp(&name(LogIndex(7))));
        assert_eq!(parse_name(&temp_name(7)), None);
    }

    #[test]
    fn trailer_round_trips_and_rejects_every_bit_flip() {
        let data = b"some snapshot data".to_vec();
        let meta = meta_of(&data);
        let mut bytes = data.clone();
        bytes.extend(encode_trailer(&meta).unwrap());
        let path = Path::new("/s");
        let (_fs, file) = file_with(&bytes);
        let len = bytes.len() as u64;
        assert_eq!(read_trailer(&*file, path, len).unwrap(), meta);
        check_data(&*file, path, &meta).unwrap();
        for bit in data.len() * 8..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let (_fs, file) = file_with(&damaged);
            assert!(
                matches!(read_trailer(&*file, path, len), Err(Error::Corrupt { .. })),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn damaged_data_and_short_files_are_refused() {
        let data = vec![9; 3000];
        let meta = meta_of(&data);
        let mut bytes = data.clone();
        bytes[1234] ^= 4;
        bytes.extend(encode_trailer(&meta).unwrap());
        let path = Path::new("/s");
        let (_fs, file) = file_with(&bytes);
        let read = read_trailer(&*file, path, bytes.len() as u64).unwrap();
        assert!(matches!(
            check_data(&*file, path, &read),
            Err(Error::Corrupt { offset: 0, .. })
        ));
        let (_fs, file) = file_with(&bytes[..10]);
        assert!(matches!(
            read_trailer(&*file, path, 10),
            Err(Error::Corrupt { .. })
        ));
        // A trailer moved away from the end of the data does not match the file's length.
        let mut shifted = vec![0];
        shifted.extend(&bytes);
        let (_fs, file) = file_with(&shifted);
        assert!(matches!(
            read_trailer(&*file, path, shifted.len() as u64),
            Err(Error::Corrupt { .. })
        ));
    }
}
