//! A log sized from its snapshot threshold ([`FsOptions::for_snapshot_threshold`]) stays within
//! about twice the threshold on disk while snapshots compact it; its byte count is the record
//! bytes its segment files hold (full and retired segments keep nothing else, the files exceed
//! the count by at most the two preallocated segments); a log made with larger segments gives
//! the extra space back when reopened with smaller ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{read_all, save_snapshot, snapshot_data, wait_durable};
use raft_core::{Entry, HardState, LogId, LogIndex, LogStore, Payload};
use raft_storage_fs::{FsLogStore, FsOptions};

const THRESHOLD: u64 = 1 << 20;
/// Record bytes of one of [`kib_entries`] (a 32-byte header and the payload).
const RECORD: u64 = 1032;

/// Entries `first..first + count` of term 1 with 1000-byte payloads ([`RECORD`] bytes each).
fn kib_entries(first: u64, count: u64) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry {
            log_id: LogId::new(1, index),
            payload: Payload::Command(Bytes::from(vec![(index % 251) as u8; 1000])),
        })
        .collect()
}

async fn append_durable(store: &FsLogStore, next: &mut u64, count: u64) {
    store.append(&kib_entries(*next, count)).await.unwrap();
    *next += count;
    wait_durable(store, *next - 1).await;
}

/// The log's files in a directory: the segments (first index and length), oldest first, and
/// the length of the segment prepared ahead (0 when there is none).
#[derive(Debug, Default)]
struct LogFiles {
    segments: Vec<(u64, u64)>,
    prepared: u64,
}

impl LogFiles {
    fn read(dir: &Path) -> LogFiles {
        let mut files = LogFiles::default();
        for file in std::fs::read_dir(dir).unwrap() {
            let file = file.unwrap();
            let name = file.file_name().to_string_lossy().into_owned();
            let len = file.metadata().unwrap().len();
            if let Some(first) = name.strip_suffix(".seg") {
                files.segments.push((first.parse().unwrap(), len));
            } else if name == "segment.prealloc" {
                files.prepared = len;
            }
        }
        files.segments.sort_unstable();
        files
    }

    fn segment_len(&self) -> u64 {
        self.segments.iter().map(|(_, len)| len).sum()
    }

    fn len(&self) -> u64 {
        self.segment_len() + self.prepared
    }
}

/// raft-core's size policy (raft-core/src/runtime/snapshots.rs): a snapshot once the log
/// reaches the threshold and grew by half of it since its smallest size after the last one.
struct SizePolicy {
    threshold: u64,
    floor: u64,
}

impl SizePolicy {
    fn new(threshold: u64) -> SizePolicy {
        SizePolicy {
            threshold,
            floor: 0,
        }
    }

    fn due(&mut self, bytes: u64) -> bool {
        self.floor = self.floor.min(bytes);
        bytes >= self.threshold && bytes >= self.floor + self.threshold / 2
    }

    fn snapshot_done(&mut self) {
        self.floor = u64::MAX;
    }
}

/// Snapshots at `last` and compacts below it, keeping `keep` entries, as the runtime does;
/// returns once the compaction ran.
async fn snapshot_and_compact(store: &FsLogStore, last: u64, keep: u64) {
    assert!(save_snapshot(store, 1, last, &snapshot_data(last, 4096), 4096).await);
    let before = (last + 1).saturating_sub(keep);
    if before > store.first_index().0 {
        store.compact(LogIndex(before)).await.unwrap();
    }
    store.save_hard_state(HardState::default()).await.unwrap(); // queued after it
}

#[tokio::test]
async fn a_log_sized_for_its_threshold_stays_within_twice_it_on_disk_while_snapshots_compact_it() {
    // raft-core's default `snapshot_keep_entries`: with 1 KiB entries, about the threshold.
    const KEEP: u64 = 1024;
    let options = FsOptions::for_snapshot_threshold(THRESHOLD);
    let segment = options.segment_bytes;
    assert_eq!(segment, THRESHOLD / 8);
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options).unwrap();
    let mut policy = SizePolicy::new(THRESHOLD);
    let (mut next, mut snapshots, mut peak) = (1, 0, LogFiles::default());
    // 9,000 entries of 1 KiB (9 MiB), 50 at a time, the policy checked after each batch.
    while next <= 9000 {
        append_durable(&store, &mut next, 50).await;
        if policy.due(store.byte_count()) {
            snapshot_and_compact(&store, next - 1, KEEP).await;
            policy.snapshot_done();
            snapshots += 1;
        }
        let files = LogFiles::read(dir.path());
        let bytes = store.byte_count();
        assert!(
            bytes <= files.segment_len(),
            "the files hold every counted byte: {bytes} vs {files:?}"
        );
        assert!(
            files.len() <= bytes + 2 * segment,
            "the files hold at most two preallocated segments more than the count: {bytes} vs {files:?}"
        );
        if files.len() > peak.len() {
            peak = files;
        }
    }
    // Kept entries + half the threshold + three segments (see `for_snapshot_threshold`), and
    // the batch that overshot the policy's trigger: within twice the threshold.
    let expected = KEEP * RECORD + THRESHOLD / 2 + 3 * segment + 50 * RECORD;
    eprintln!(
        "{snapshots} snapshots; peak {} bytes of log files (expected at most {expected}): {peak:?}",
        peak.len()
    );
    assert!(
        peak.len() <= expected && peak.len() <= 2 * THRESHOLD,
        "peak {} bytes on disk, expected at most {expected}: {peak:?}",
        peak.len()
    );
    assert!(snapshots >= 10, "{snapshots} snapshots");
    assert!(store.first_index().0 > 9000 - KEEP - 1000);
    store.close().await;
}

#[tokio::test]
async fn byte_count_is_the_record_bytes_the_segment_files_hold_before_and_after_reopening() {
    let options = FsOptions::for_snapshot_threshold(THRESHOLD);
    let segment = options.segment_bytes;
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options.clone()).unwrap();
    let mut next = 1;
    for _ in 0..12 {
        append_durable(&store, &mut next, 50).await; // 600 entries: about 4.7 segments
    }
    snapshot_and_compact(&store, 500, 200).await; // compacts before 301
    let last = next - 1;
    let check = |store: &FsLogStore| {
        let files = LogFiles::read(dir.path());
        assert!(files.segments.len() >= 2, "{files:?}");
        let (first, _) = files.segments[0];
        assert!(first <= 301, "{files:?}");
        assert_eq!(
            store.byte_count(),
            (last + 1 - first) * RECORD,
            "every record from the oldest segment's first on: {files:?}"
        );
        // Full segments were cut to their records; the last one keeps a segment's room.
        for pair in files.segments.windows(2) {
            let [(first, len), (next, _)] = pair else {
                unreachable!()
            };
            assert_eq!(*len, (next - first) * RECORD, "{files:?}");
        }
        let (first, len) = *files.segments.last().unwrap();
        assert_eq!(len, segment.max((last + 1 - first) * RECORD), "{files:?}");
        files.segments
    };
    let segments = check(&store);
    store.close().await;
    drop(store);

    let store = FsLogStore::open(dir.path(), options).unwrap();
    assert_eq!(check(&store), segments, "reopening changes no file");
    let first = segments[0].0;
    assert_eq!(
        read_all(&store, first, last).await,
        kib_entries(first, last + 1 - first)
    );
    store.close().await;
}

#[tokio::test]
async fn a_retired_segment_keeps_only_its_records_on_disk() {
    let options = FsOptions::for_snapshot_threshold(THRESHOLD);
    let segment = options.segment_bytes;
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options).unwrap();
    let mut next = 1;
    append_durable(&store, &mut next, 60).await; // 60 KiB: under half a segment
    // Compacting 50 of the 60 entries retires the segment; the next append starts a new one
    // once the prepared one is ready.
    snapshot_and_compact(&store, 60, 10).await;
    for _ in 0..50 {
        append_durable(&store, &mut next, 1).await;
        if store.segment_paths().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let files = LogFiles::read(dir.path());
    assert_eq!(files.segments.len(), 2, "{files:?}");
    let [(first, retired), (second, active)] = files.segments[..] else {
        unreachable!()
    };
    assert_eq!(first, 1);
    assert_eq!(
        retired,
        (second - 1) * RECORD,
        "only its records: {files:?}"
    );
    assert!(retired < segment);
    assert_eq!(active, segment);
    // The next compaction removes it.
    snapshot_and_compact(&store, next - 1, 1).await;
    let files = LogFiles::read(dir.path());
    assert_eq!(files.segments, vec![(second, segment)]);
    store.close().await;
}

#[tokio::test]
async fn a_log_made_with_larger_segments_gives_the_space_back_when_reopened_with_smaller_ones() {
    const LARGE: u64 = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), FsOptions::default().segment_bytes(LARGE)).unwrap();
    let mut next = 1;
    for _ in 0..6 {
        append_durable(&store, &mut next, 50).await; // 300 KiB: no segment prepared ahead
    }
    store.close().await;
    drop(store);
    assert_eq!(LogFiles::read(dir.path()).segments, vec![(1, LARGE)]);

    let options = FsOptions::for_snapshot_threshold(THRESHOLD);
    let segment = options.segment_bytes;
    let store = FsLogStore::open(dir.path(), options).unwrap();
    // The last segment is cut to its records (more than a small segment holds).
    assert_eq!(LogFiles::read(dir.path()).segments, vec![(1, 300 * RECORD)]);
    assert_eq!(store.byte_count(), 300 * RECORD);
    assert_eq!(read_all(&store, 1, 300).await, kib_entries(1, 300));
    // Full by the new size: the next entry starts a small segment, and once a snapshot covers
    // the old one, it goes.
    append_durable(&store, &mut next, 10).await;
    assert_eq!(
        LogFiles::read(dir.path()).segments,
        vec![(1, 300 * RECORD), (301, segment)]
    );
    snapshot_and_compact(&store, 310, 5).await;
    let files = LogFiles::read(dir.path());
    assert_eq!(files.segments, vec![(301, segment)]);
    assert_eq!(store.byte_count(), 10 * RECORD);
    store.close().await;
}

#[tokio::test]
async fn a_log_sized_for_a_tiny_threshold_keeps_shrinking_as_snapshots_compact_it() {
    // A ledger's sizes: a 4 KiB threshold, entries of ~130 bytes, few entries kept.
    const TINY: u64 = 4096;
    const KEEP: u64 = 8;
    let options = FsOptions::for_snapshot_threshold(TINY);
    let segment = options.segment_bytes;
    assert_eq!(segment, 64 << 10, "the smallest segment");
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options).unwrap();
    let mut policy = SizePolicy::new(TINY);
    let (mut next, mut snapshots, mut peak, mut most_counted) = (1, 0, 0, 0);
    let entry = |index: u64| Entry {
        log_id: LogId::new(1, index),
        payload: Payload::Command(Bytes::from(format!("transfer {index} {}", "x".repeat(80)))),
    };
    // About 2,000 entries (about 250 KiB, four segments' worth), 5 at a time.
    while next <= 2000 {
        let batch: Vec<Entry> = (next..next + 5).map(entry).collect();
        store.append(&batch).await.unwrap();
        next += 5;
        wait_durable(&store, next - 1).await;
        if policy.due(store.byte_count()) {
            snapshot_and_compact(&store, next - 1, KEEP).await;
            policy.snapshot_done();
            snapshots += 1;
        }
        peak = peak.max(LogFiles::read(dir.path()).len());
        most_counted = most_counted.max(store.byte_count());
    }
    let files = LogFiles::read(dir.path());
    eprintln!(
        "{snapshots} snapshots; peak {peak} bytes of log files, byte count at most \
         {most_counted}; at the end {} bytes counted, files {files:?}",
        store.byte_count()
    );
    // The retired segment (its records only), the one being written and one prepared ahead.
    assert!(peak <= 3 * segment, "{peak} bytes of log files");
    // A retirement needs an eighth of a segment compacted and half the active one (the count
    // stays near a quarter of a segment; more while a busy machine prepares the next one).
    assert!(most_counted <= segment / 2, "{most_counted} bytes counted");
    assert!(files.segments.len() <= 2, "{files:?}");
    assert!(
        files.segments[0].0 > 1500,
        "old segments are gone: {files:?}"
    );
    store.close().await;
}
