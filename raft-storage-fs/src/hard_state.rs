//! The hard-state file: term, vote and commit index, replaced atomically (write a temp file,
//! fsync it, rename it over the old one, fsync the directory).
//!
//! Layout (36 bytes, little-endian): magic `u32`, version `u8`, has-vote `u8`, two zero bytes,
//! term `u64`, vote `u64`, commit `u64`, crc32c of bytes 0..32 `u32`.
#![deny(clippy::indexing_slicing)]

use std::path::Path;

use bytes::{Buf, BufMut};
use raft_core::{HardState, LogIndex, NodeId, Term};

use crate::error::Error;
use crate::fs::Fs;

/// The file's name in the data directory.
pub(crate) const FILE: &str = "hard_state";
/// The temporary file a new hard state is written to before the rename.
pub(crate) const TEMP_FILE: &str = "hard_state.tmp";

const MAGIC: u32 = 0x5346_4852; // "RHFS"
const VERSION: u8 = 1;
const BYTES: usize = 36;

fn encode(hard_state: HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(BYTES);
    out.put_u32_le(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(u8::from(hard_state.vote.is_some()));
    out.put_u16_le(0);
    out.put_u64_le(hard_state.term.0);
    out.put_u64_le(hard_state.vote.map_or(0, |vote| vote.0));
    out.put_u64_le(hard_state.commit.0);
    let crc = crc32c::crc32c(&out);
    out.put_u32_le(crc);
    out
}

fn decode(bytes: &[u8], file: &Path) -> Result<HardState, Error> {
    let corrupt = |reason: &str| Error::Corrupt {
        file: file.to_path_buf(),
        offset: 0,
        reason: reason.to_owned(),
    };
    if bytes.len() != BYTES {
        return Err(corrupt(&format!(
            "hard state is {} bytes, expected {BYTES}",
            bytes.len()
        )));
    }
    let covered = bytes.get(..BYTES - 4).unwrap_or_default();
    let mut buf = bytes;
    let magic = buf.get_u32_le();
    let version = buf.get_u8();
    let has_vote = buf.get_u8();
    let padding = buf.get_u16_le();
    let term = buf.get_u64_le();
    let vote = buf.get_u64_le();
    let commit = buf.get_u64_le();
    let crc = buf.get_u32_le();
    if magic != MAGIC || crc != crc32c::crc32c(covered) {
        return Err(corrupt("hard state checksum mismatch"));
    }
    if version != VERSION || has_vote > 1 || padding != 0 {
        return Err(corrupt(&format!("unknown hard state version {version}")));
    }
    Ok(HardState {
        term: Term(term),
        vote: (has_vote == 1).then_some(NodeId(vote)),
        commit: LogIndex(commit),
    })
}

/// Reads the hard state of `dir` (the default one if there is none yet). A leftover temp file
/// (a crash before its rename) is removed.
pub(crate) fn load(fs: &dyn Fs, dir: &Path, names: &[String]) -> Result<HardState, Error> {
    let temp = dir.join(TEMP_FILE);
    if names.iter().any(|name| name == TEMP_FILE) {
        fs.remove(&temp)
            .map_err(|err| Error::io("removing", &temp, err))?;
    }
    if !names.iter().any(|name| name == FILE) {
        return Ok(HardState::default());
    }
    let path = dir.join(FILE);
    let bytes = fs
        .read(&path)
        .map_err(|err| Error::io("reading", &path, err))?;
    decode(&bytes, &path)
}

/// Replaces the hard state of `dir` atomically and durably.
pub(crate) fn save(fs: &dyn Fs, dir: &Path, hard_state: HardState) -> Result<(), Error> {
    let temp = dir.join(TEMP_FILE);
    let file = fs
        .open(&temp, true)
        .map_err(|err| Error::io("creating", &temp, err))?;
    let bytes = encode(hard_state);
    file.set_len(0)
        .and_then(|()| file.write_all_at(&bytes, 0))
        .map_err(|err| Error::io("writing", &temp, err))?;
    file.sync_data()
        .map_err(|err| Error::io("syncing", &temp, err))?;
    let path = dir.join(FILE);
    fs.rename(&temp, &path)
        .map_err(|err| Error::io("renaming", &temp, err))?;
    fs.sync_dir(dir)
        .map_err(|err| Error::io("syncing directory", dir, err))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures
mod tests {
    use super::*;

    #[test]
    fn hard_state_round_trips_and_rejects_every_bit_flip() {
        let hard_state = HardState {
            term: Term(7),
            vote: Some(NodeId(3)),
            commit: LogIndex(42),
        };
        let bytes = encode(hard_state);
        let path = Path::new("hard_state");
        assert_eq!(decode(&bytes, path).unwrap(), hard_state);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode(&damaged, path), Err(Error::Corrupt { .. })),
                "bit {bit}"
            );
        }
        assert!(decode(&bytes[..20], path).is_err());
    }
}
