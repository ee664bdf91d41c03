//! Compaction below a snapshot and logs that start after one: restore, compaction past the last
//! entry, truncation of every entry, the sequence a restarting node runs when a snapshot
//! replaced its log, and a small log that shrinks (a retired segment, the small preset).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{
    entries, open_sim, read_all, save_snapshot, small_options, snapshot_data, snapshot_meta,
    wait_durable,
};
use raft_core::{Entry, HardState, LogId, LogIndex, LogStore, Payload};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{FsLogStore, FsOptions};

#[tokio::test]
async fn restore_after_compaction_returns_the_snapshot_and_entries_starting_above_one() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 300)).await.unwrap();
    wait_durable(&store, 300).await;
    let data = snapshot_data(250, 777);
    assert!(save_snapshot(&store, 1, 250, &data, 100).await);
    let bytes = store.byte_count();
    store.compact(LogIndex(200)).await.unwrap();
    store.save_hard_state(HardState::default()).await.unwrap(); // the compaction ran
    assert!(store.byte_count() < bytes, "compaction frees log bytes");
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.snapshot, Some(snapshot_meta(1, 250, &data)));
    let first = restored.entries[0].log_id.index;
    assert!(first > LogIndex(1) && first <= LogIndex(200), "{first}");
    assert_eq!(store.first_index(), first);
    let ids: Vec<LogId> = restored.entries.iter().map(|e| e.log_id).collect();
    let expected: Vec<LogId> = (first.0..=300).map(|i| LogId::new(1, i)).collect();
    assert_eq!(ids, expected);
    assert_eq!(read_all(&store, 1, 300).await, entries(1, first.0, 300));
}

#[tokio::test]
async fn compacting_past_the_last_entry_continues_the_log_there_across_reopen() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 120)).await.unwrap();
    wait_durable(&store, 120).await;
    // A snapshot from the leader, far ahead of this log.
    assert!(save_snapshot(&store, 3, 500, &snapshot_data(500, 64), 64).await);
    store.compact(LogIndex(501)).await.unwrap();
    assert_eq!(store.first_index(), LogIndex(501));
    assert_eq!(store.last_log_id(), LogId::new(3, 500));
    assert!(read_all(&store, 1, 600).await.is_empty());
    // The durable id names the snapshot's entry once the compaction ran.
    assert_eq!(wait_durable(&store, 500).await, LogId::new(3, 500));
    assert_eq!(store.byte_count(), 0, "every segment is gone");
    assert!(
        store.append(&entries(3, 121, 121)).await.is_err(),
        "the log continues at 501"
    );
    store.append(&entries(3, 501, 540)).await.unwrap();
    assert_eq!(wait_durable(&store, 540).await, LogId::new(3, 540));
    assert!(store.segment_paths()[0].ends_with("00000000000000000501.seg"));
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.snapshot.unwrap().last_log_id, LogId::new(3, 500));
    assert_eq!(restored.entries[0].log_id, LogId::new(3, 501));
    assert_eq!(read_all(&store, 1, 600).await, entries(3, 501, 540));
}

#[tokio::test]
async fn an_empty_log_after_a_snapshot_reopens_empty_and_continues_after_it() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    assert!(save_snapshot(&store, 2, 70, &snapshot_data(70, 10), 10).await);
    store.compact(LogIndex(71)).await.unwrap();
    store.save_hard_state(HardState::default()).await.unwrap();
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    let restored = store.restore().await.unwrap();
    assert!(restored.entries.is_empty());
    assert_eq!(store.last_log_id(), LogId::new(2, 70));
    assert_eq!(*store.durable().borrow(), LogId::new(2, 70));
    // What the engine does with an empty log and a snapshot.
    store.compact(LogIndex(71)).await.unwrap();
    store.append(&entries(2, 71, 75)).await.unwrap();
    wait_durable(&store, 75).await;
    assert_eq!(read_all(&store, 1, 100).await, entries(2, 71, 75));
}

#[tokio::test]
async fn truncating_every_entry_then_appending_continues_at_the_truncation_point() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 200)).await.unwrap();
    wait_durable(&store, 200).await;
    assert!(save_snapshot(&store, 1, 150, &snapshot_data(150, 10), 10).await);
    store.compact(LogIndex(151)).await.unwrap();
    let first = store.first_index();
    assert_eq!(first, LogIndex(151));
    store.truncate(first).await.unwrap();
    assert_eq!(store.last_log_id().index, LogIndex(150));
    assert!(store.durable().borrow().index < first);
    assert!(read_all(&store, 1, 300).await.is_empty());
    store.append(&entries(2, 151, 170)).await.unwrap();
    assert_eq!(wait_durable(&store, 170).await, LogId::new(2, 170));
    assert_eq!(read_all(&store, 140, 300).await, entries(2, 151, 170));
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    // Compaction is by whole segments: entries before 151 may be back, the rest is as written.
    let restored = store.restore().await.unwrap();
    assert!(restored.entries[0].log_id.index <= LogIndex(151));
    assert_eq!(read_all(&store, 151, 300).await, entries(2, 151, 170));
}

#[tokio::test]
async fn a_log_the_snapshot_replaced_restarts_as_the_engine_asks() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 90)).await.unwrap();
    wait_durable(&store, 90).await;
    // A snapshot of term 4 at 60: this log's entry 60 is of term 1, so the log disagrees.
    assert!(save_snapshot(&store, 4, 60, &snapshot_data(60, 10), 10).await);
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.entries.len(), 90);
    // The engine's outputs: TruncateLog { from: first }, CompactLog { before: 61 }.
    store.truncate(LogIndex(1)).await.unwrap();
    store.compact(LogIndex(61)).await.unwrap();
    store.append(&entries(4, 61, 66)).await.unwrap();
    assert_eq!(wait_durable(&store, 66).await, LogId::new(4, 66));
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.entries[0].log_id, LogId::new(4, 61));
    assert_eq!(read_all(&store, 1, 100).await, entries(4, 61, 66));
}

/// Entries `first..first + count` of term 1 with 1000-byte payloads (1032 record bytes).
fn kib_entries(first: u64, count: u64) -> Vec<Entry> {
    (first..first + count)
        .map(|index| Entry {
            log_id: LogId::new(1, index),
            payload: Payload::Command(Bytes::from(vec![(index % 251) as u8; 1000])),
        })
        .collect()
}

/// Appends `count` 1 KiB entries at `next`, ten at a time, each batch durable before the
/// next (a small application's pace).
async fn append_kib(store: &FsLogStore, next: &mut u64, count: u64) {
    for _ in 0..count.div_ceil(10) {
        store.append(&kib_entries(*next, 10)).await.unwrap();
        *next += 10;
        wait_durable(store, *next - 1).await;
    }
}

/// The segment files in `dir` and their bytes on disk (file sizes, preallocation included).
fn segment_files(dir: &Path) -> (usize, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        let file = file.unwrap();
        if file.file_name().to_string_lossy().ends_with(".seg") {
            count += 1;
            bytes += file.metadata().unwrap().len();
        }
    }
    (count, bytes)
}

/// What a snapshot and the compaction after it (keeping `keep` entries) did to the log:
/// (byte count, segment files, their bytes) before and after.
async fn snapshot_and_compact(
    store: &FsLogStore,
    last: u64,
    keep: u64,
) -> ((u64, usize, u64), (u64, usize, u64)) {
    let measure = || {
        let (files, bytes) = segment_files(store.dir());
        (store.byte_count(), files, bytes)
    };
    let before = measure();
    assert!(save_snapshot(store, 1, last, &snapshot_data(last, 2000), 1000).await);
    store.compact(LogIndex(last + 1 - keep)).await.unwrap();
    store.save_hard_state(HardState::default()).await.unwrap(); // the compaction ran
    (before, measure())
}

#[tokio::test]
async fn a_small_log_shrinks_after_snapshots_compact_it() {
    const ROUND: u64 = 200; // ~200 KiB of records: five rounds fit in one 1 MiB segment
    const KEEP: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), FsOptions::small()).unwrap();
    let mut next = 1;
    append_kib(&store, &mut next, ROUND).await;
    // The first snapshot covers most of the only segment: nothing can be removed yet (whole
    // segments only), but the segment is retired.
    let (_, after) = snapshot_and_compact(&store, next - 1, KEEP).await;
    assert_eq!(after.1, 1, "one segment");
    let mut shrunk = 0;
    for round in 2..=6 {
        append_kib(&store, &mut next, ROUND).await;
        // The first append after the compaction starts a new segment once the prepared one is
        // ready (at once, unless the machine is busy): give a slow one up to 25 s, with one
        // more entry every 500 ms (at most 50, far from filling the segment). Under a loaded
        // CI machine whose disk was busy with builds, 5 s was once not enough.
        for _ in 0..50 {
            if store.segment_paths().len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            store.append(&kib_entries(next, 1)).await.unwrap();
            next += 1;
            wait_durable(&store, next - 1).await;
        }
        append_kib(&store, &mut next, KEEP + 10).await;
        let (before, after) = snapshot_and_compact(&store, next - 1, KEEP).await;
        let (bytes, files, disk) = after;
        assert!(
            before.1 >= 2,
            "round {round}: a new segment started: {before:?}"
        );
        assert!(
            bytes < before.0,
            "round {round}: byte count {before:?} -> {after:?}"
        );
        assert!(
            files < before.1,
            "round {round}: segment files {before:?} -> {after:?}"
        );
        assert!(
            disk < before.2,
            "round {round}: bytes on disk {before:?} -> {after:?}"
        );
        // What is left: at most this round's entries (the older segment is gone).
        assert!(
            bytes <= (ROUND + 2 * KEEP + 60) * 1032,
            "round {round}: {bytes} bytes left"
        );
        assert_eq!(files, 1, "round {round}");
        shrunk += 1;
    }
    assert_eq!(shrunk, 5);
    // More was written than one segment holds, yet the log never grew past two of them.
    assert!((next - 1) * 1032 > 1 << 20);
    let last = next - 1;
    assert_eq!(store.first_index().0, last + 1 - KEEP);
    store.close().await;
    drop(store);

    // The files reopen as the log they were, starting at the kept segment: this round's.
    let store = FsLogStore::open(dir.path(), FsOptions::small()).unwrap();
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.snapshot.unwrap().last_log_id, LogId::new(1, last));
    let first = store.first_index().0;
    assert!(
        first > last - ROUND - 60 && first <= last + 1 - KEEP,
        "{first}"
    );
    assert_eq!(
        read_all(&store, first, last).await,
        kib_entries(first, last + 1 - first)
    );
    store.close().await;
}

#[tokio::test]
async fn the_small_preset_keeps_a_small_apps_directory_within_a_few_mib() {
    let options = FsOptions::small();
    assert_eq!(options.segment_bytes, 1 << 20);
    assert!(options.zero_fill);
    assert_eq!(options.cache_bytes, 4 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options.clone()).unwrap();
    let directory_bytes = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|file| file.unwrap().metadata().unwrap().len())
            .sum()
    };
    // 6 MiB of entries, a snapshot every 256 KiB keeping raft-core's default 1024 entries
    // (1 MiB here): the directory stays within a few segments.
    let mut next = 1;
    let mut largest = 0;
    while next < 6 * 1024 {
        append_kib(&store, &mut next, 250).await;
        if next > 1100 {
            snapshot_and_compact(&store, next - 1, 1024).await;
        }
        largest = largest.max(directory_bytes(dir.path()));
        let (files, bytes) = segment_files(dir.path());
        // The one being written is preallocated to 1 MiB, full ones are cut to their records.
        assert!(
            bytes <= files as u64 * (1 << 20),
            "segments are 1 MiB at most"
        );
        assert!(
            bytes > (files as u64 - 1) * ((1 << 20) - 1032),
            "full segments are full"
        );
    }
    assert!(largest <= 5 << 20, "{largest} bytes in the directory");
    assert!(store.byte_count() <= 2300 * 1032, "{}", store.byte_count());
    store.close().await;
}
