//! Opening a data directory: lock it, read the hard state, find and validate the latest
//! snapshot, validate every segment, cut a torn tail, refuse corruption and gaps (between
//! segments, or between the snapshot and the first segment).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use raft_core::engine::LogEntryMeta;
use raft_core::{Entry, LogId, LogIndex, Membership, Payload};

use crate::error::Error;
use crate::fs::{DirLock, Fs};
use crate::hard_state;
use crate::options::FsOptions;
use crate::record::{self, Record, Tail};
use crate::segment::{self, PREALLOC_FILE, Segment};
use crate::snapshot::file::{self as snapshot, SnapshotFile};
use crate::state::{FsStats, State};

/// What opening a directory yields: the state to start from (with no durability watch yet)
/// and the directory lock.
pub(crate) fn open(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &FsOptions,
) -> Result<(State, DirLock), Error> {
    fs.create_dir_all(dir)
        .map_err(|err| Error::io("creating", dir, err))?;
    let lock = fs.lock_dir(dir).map_err(|err| match err.kind() {
        io::ErrorKind::WouldBlock => Error::Locked {
            dir: dir.to_path_buf(),
        },
        _ => Error::io("locking", dir, err),
    })?;
    let names = fs.list(dir).map_err(|err| Error::io("listing", dir, err))?;
    let hard_state = hard_state::load(&**fs, dir, &names)?;
    let snapshot = snapshot::recover(&**fs, dir, &names)?;
    let snapshot_index = snapshot
        .as_ref()
        .map_or(LogIndex::ZERO, SnapshotFile::index);
    if names.iter().any(|name| name == PREALLOC_FILE) {
        let path = dir.join(PREALLOC_FILE);
        fs.remove(&path)
            .map_err(|err| Error::io("removing", &path, err))?;
    }
    let mut firsts = Vec::new();
    for name in names.iter().filter(|name| name.ends_with(segment::SUFFIX)) {
        match segment::parse_name(name) {
            Some(first) if first.0 > 0 => firsts.push(first),
            _ => {
                return Err(Error::Corrupt {
                    file: dir.join(name),
                    offset: 0,
                    reason: "not a segment name (20 digits of a first index from 1)".to_owned(),
                });
            }
        }
    }
    firsts.sort_unstable();

    let mut loaded = Loaded::default();
    let count = firsts.len();
    for (position, first) in firsts.into_iter().enumerate() {
        loaded.add(&**fs, dir, first, position + 1 == count, options)?;
    }
    if let Some(segment) = loaded.segments.first()
        && segment.first > snapshot_index.next()
    {
        return Err(Error::Uncovered {
            file: segment.path.clone(),
            first: segment.first.0,
            snapshot_index: snapshot_index.0,
        });
    }
    if loaded.segments.is_empty() {
        // A new log, or one whose every segment a compaction removed: it continues after the
        // snapshot.
        segment::prepare(&**fs, dir, options.segment_bytes, options.zero_fill)?;
        loaded
            .segments
            .push(segment::install(&**fs, dir, snapshot_index.next())?);
    }
    sync_recovered(&**fs, dir, &loaded.segments, &names)?;
    let Loaded {
        segments,
        metas,
        memberships,
        tail,
    } = loaded;
    let first = segments
        .first()
        .map_or(LogIndex(1), |segment| segment.first);
    let last = metas.back().map_or(first.prev(), |meta| meta.log_id.index);
    let byte_count = segments.iter().map(|segment| segment.end).sum();
    let mut state = State {
        hard_state,
        // Entries below the first segment were compacted; only the snapshot knows a term.
        prev: LogId::ZERO,
        first,
        metas,
        memberships,
        cache: VecDeque::new(),
        cache_bytes: 0,
        written: last,
        segments,
        byte_count,
        jobs: Vec::new(),
        pending_truncates: VecDeque::new(),
        truncations: 0,
        durable: None,
        poisoned: None,
        durable_at_poison: LogId::ZERO,
        closing: false,
        io_waiting: false,
        stats: FsStats::default(),
        snapshot: snapshot.map(Arc::new),
    };
    state.prev = state.compacted_id(first.prev());
    // Warm the cache with the newest entries (they are the likeliest to be read).
    for entry in tail.into_iter().rev() {
        let bytes = record::encoded_len(&entry) as u64;
        if state.cache_bytes + bytes > options.cache_bytes {
            break;
        }
        state.cache_bytes += bytes;
        state.cache.push_front(entry);
    }
    Ok((state, lock))
}

/// Makes what recovery found durable before any of it is reported durable: a process that
/// died (without a power loss) leaves unsynced writes, renames and segment files readable in the
/// page cache, and a node must not acknowledge them until they are on disk.
fn sync_recovered(
    fs: &dyn Fs,
    dir: &Path,
    segments: &[Segment],
    names: &[String],
) -> Result<(), Error> {
    for segment in segments {
        segment
            .file
            .sync_data()
            .map_err(|err| Error::io("syncing", &segment.path, err))?;
    }
    if names.iter().any(|name| name == hard_state::FILE) {
        let path = dir.join(hard_state::FILE);
        fs.open(&path, false)
            .and_then(|file| file.sync_data())
            .map_err(|err| Error::io("syncing", &path, err))?;
    }
    fs.sync_dir(dir)
        .map_err(|err| Error::io("syncing directory", dir, err))
}

#[derive(Default)]
struct Loaded {
    segments: Vec<Segment>,
    metas: VecDeque<LogEntryMeta>,
    /// The membership entries of every segment, in index order.
    memberships: Vec<(LogId, Membership)>,
    /// The entries of the last segment.
    tail: Vec<Entry>,
}

impl Loaded {
    /// Validates the segment starting at `first` and adds it.
    fn add(
        &mut self,
        fs: &dyn Fs,
        dir: &Path,
        first: LogIndex,
        is_last: bool,
        options: &FsOptions,
    ) -> Result<(), Error> {
        let path = dir.join(segment::name(first));
        let data = Bytes::from(
            fs.read(&path)
                .map_err(|err| Error::io("reading", &path, err))?,
        );
        let scan = record::scan(&data, &path)?;
        let corrupt = |offset: u64, reason: String| Error::Corrupt {
            file: path.clone(),
            offset,
            reason,
        };
        if let Some(previous) = self.segments.last() {
            if previous.offsets.is_empty() {
                return Err(Error::Corrupt {
                    file: previous.path.clone(),
                    offset: 0,
                    reason: "a segment holds no entries but is not the last one".to_owned(),
                });
            }
            let expected = previous.last().0 + 1;
            if first.0 != expected {
                return Err(Error::MissingEntries {
                    file: path,
                    expected,
                    found: first.0,
                });
            }
        }
        if let Some(record) = scan.records.first() {
            let found = record.entry.log_id;
            if found.index != first {
                return Err(corrupt(
                    0,
                    format!("the segment is named for entry {first} but starts with entry {found}"),
                ));
            }
            if let Some(previous) = self.metas.back()
                && found.term < previous.log_id.term
            {
                return Err(corrupt(
                    0,
                    format!("entry {found} cannot follow {}", previous.log_id),
                ));
            }
        }
        let file = fs
            .open(&path, false)
            .map_err(|err| Error::io("opening", &path, err))?;
        if let Tail::Torn { offset } = scan.tail {
            if !is_last {
                return Err(corrupt(
                    offset,
                    "damaged record in a segment that is not the last (it was synced before the next one started)".to_owned(),
                ));
            }
            tracing::warn!(
                file = %path.display(),
                offset,
                "raft log: cutting a torn tail left by a crash (entries after it were never reported durable)"
            );
            let capacity = options.segment_bytes.max(offset);
            file.set_len(offset)
                .and_then(|()| file.set_len(capacity))
                .and_then(|()| file.sync_data())
                .map_err(|err| Error::io("truncating a torn tail of", &path, err))?;
        } else {
            // Zeros after the last record: the last segment keeps room for one segment's worth
            // of records (less, if it was made with larger segments: it is cut to the current
            // size), earlier ones need none (a crash before the I/O thread cut a full segment,
            // or segments made before it did).
            let capacity = if is_last {
                options.segment_bytes.max(scan.valid_len)
            } else {
                scan.valid_len
            };
            if data.len() as u64 > capacity {
                file.set_len(capacity)
                    .map_err(|err| Error::io("cutting the unused space of", &path, err))?;
            }
        }
        let mut offsets = Vec::with_capacity(scan.records.len());
        for Record { offset, entry } in &scan.records {
            offsets.push(*offset);
            self.metas.push_back(LogEntryMeta {
                log_id: entry.log_id,
                payload_len: entry.payload.len(),
            });
            if let Payload::Membership(membership) = &entry.payload {
                self.memberships.push((entry.log_id, membership.clone()));
            }
        }
        if is_last {
            self.tail = scan
                .records
                .into_iter()
                .map(|record| record.entry)
                .collect();
        }
        self.segments.push(Segment {
            first,
            path,
            file,
            offsets,
            end: scan.valid_len,
        });
        Ok(())
    }
}
