//! Segment files: naming, preallocation and installation, and [`Segment`], an open segment
//! with the offsets of its written records.
//!
//! A segment is named for its first entry (`00000000000000000001.seg`), so the names alone
//! say the order and recovery can tell a missing segment from a gap. New segments are prepared
//! ahead of need under a temporary name ([`PREALLOC_FILE`]: zero-filled and synced), then
//! renamed into place and the directory synced before any entry in them counts as durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft_core::LogIndex;

use crate::error::Error;
use crate::fs::{Fs, FsFile};

/// The file a segment is prepared in before it is renamed into place.
pub(crate) const PREALLOC_FILE: &str = "segment.prealloc";
/// The file name suffix of segments.
pub(crate) const SUFFIX: &str = ".seg";
const DIGITS: usize = 20;
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// One segment file and where its written records are.
#[derive(Debug)]
pub(crate) struct Segment {
    /// The index of its first entry (also its file name).
    pub(crate) first: LogIndex,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn FsFile>,
    /// Where each written record starts: entry `first + i` at `offsets[i]`.
    pub(crate) offsets: Vec<u64>,
    /// The end of the last written record.
    pub(crate) end: u64,
}

impl Segment {
    /// The index of the last written entry (`first - 1` when none).
    pub(crate) fn last(&self) -> LogIndex {
        LogIndex(self.first.0 + self.offsets.len() as u64 - 1)
    }

    /// The byte range of entries `first..=last` (all written, all in this segment).
    pub(crate) fn byte_range(&self, first: LogIndex, last: LogIndex) -> Option<(u64, u64)> {
        let start = *self
            .offsets
            .get(usize::try_from(first.0 - self.first.0).ok()?)?;
        let after = usize::try_from(last.0 + 1 - self.first.0).ok()?;
        let end = match self.offsets.get(after) {
            Some(&next) => next,
            None if after == self.offsets.len() => self.end,
            None => return None,
        };
        Some((start, end))
    }
}

/// The file name of the segment starting at `first`.
pub(crate) fn name(first: LogIndex) -> String {
    format!("{:0width$}{SUFFIX}", first.0, width = DIGITS)
}

/// The first index of a segment file name, if `name` is one.
pub(crate) fn parse_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// Prepares the next segment in [`PREALLOC_FILE`]: `bytes` long, zero-filled (written, so its
/// blocks are allocated) when `zero_fill`, and synced.
pub(crate) fn prepare(fs: &dyn Fs, dir: &Path, bytes: u64, zero_fill: bool) -> Result<(), Error> {
    let path = dir.join(PREALLOC_FILE);
    let file = fs
        .open(&path, true)
        .map_err(|err| Error::io("creating", &path, err))?;
    let write = || {
        file.set_len(0)?;
        if zero_fill {
            let mut offset = 0;
            while offset < bytes {
                let chunk = (bytes - offset).min(ZEROS.len() as u64);
                file.write_all_at(ZEROS.get(..chunk as usize).unwrap_or_default(), offset)?;
                offset += chunk;
            }
        } else {
            file.set_len(bytes)?;
        }
        file.sync_data()
    };
    write().map_err(|err| Error::io("preallocating", &path, err))
}

/// Renames the prepared segment into place as the segment starting at `first`, durably.
pub(crate) fn install(fs: &dyn Fs, dir: &Path, first: LogIndex) -> Result<Segment, Error> {
    let from = dir.join(PREALLOC_FILE);
    let path = dir.join(name(first));
    fs.rename(&from, &path)
        .map_err(|err| Error::io("renaming", &from, err))?;
    fs.sync_dir(dir)
        .map_err(|err| Error::io("syncing directory", dir, err))?;
    let file = fs
        .open(&path, false)
        .map_err(|err| Error::io("opening", &path, err))?;
    Ok(Segment {
        first,
        path,
        file,
        offsets: Vec::new(),
        end: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_index_and_parse_back() {
        assert_eq!(name(LogIndex(42)), "00000000000000000042.seg");
        assert_eq!(parse_name(&name(LogIndex(42))), Some(LogIndex(42)));
        assert!(name(LogIndex(9)) < name(LogIndex(10)));
        for bad in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.se",
            "LOCK",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
