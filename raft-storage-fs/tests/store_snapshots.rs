//! Snapshot files of FsLogStore: chunked writes, the checks of `finish`, readers that outlive
//! their snapshot, and what opening a directory does with snapshot files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::{
    entries, latest_snapshot, open_sim, save_snapshot, small_options, snapshot_data, snapshot_meta,
    wait_durable,
};
use raft_core::snapshot::read_to_vec;
use raft_core::{LogId, LogIndex, LogStore};
use raft_storage_fs::fs::Fs;
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{Error, FsLogStore, FsOptions};

fn try_open(fs: &SimFs, options: FsOptions) -> Result<FsLogStore, Error> {
    FsLogStore::open_with(Arc::new(fs.process()), Path::new("/log"), options)
}

/// The files of the simulated log directory whose names end with `suffix`.
fn files_ending(fs: &SimFs, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs
        .list(Path::new("/log"))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn snapshot_path(index: u64) -> PathBuf {
    PathBuf::from(format!("/log/snapshot-{index:020}.snap"))
}

#[tokio::test]
async fn a_large_snapshot_written_in_chunks_reads_back_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), FsOptions::default()).unwrap();
    assert!(store.open_snapshot().await.unwrap().is_none());
    store.append(&entries(1, 1, 40)).await.unwrap();
    let data = snapshot_data(40, 3 << 20); // 3 MiB
    let bytes = store.byte_count();
    assert!(save_snapshot(&store, 1, 40, &data, 64 << 10).await);
    assert_eq!(
        store.byte_count(),
        bytes,
        "snapshot files are not log bytes"
    );
    let reader = store.open_snapshot().await.unwrap().unwrap();
    assert_eq!(reader.meta(), &snapshot_meta(1, 40, &data));
    assert_eq!(read_to_vec(&*reader, 100_000).await.unwrap(), data);
    // Any range; short only at the end; empty at and past it.
    let middle = reader.read(1_000_003, 77_777).await.unwrap();
    assert_eq!(middle, data[1_000_003..1_077_780]);
    let end = data.len() as u64;
    assert_eq!(
        reader.read(end - 5, 100).await.unwrap(),
        data[data.len() - 5..]
    );
    assert!(reader.read(end, 100).await.unwrap().is_empty());
    assert!(reader.read(u64::MAX, 100).await.unwrap().is_empty());
    drop(reader);
    store.close().await;
    drop(store);

    let store = FsLogStore::open(dir.path(), FsOptions::default()).unwrap();
    assert_eq!(store.snapshot_meta(), Some(snapshot_meta(1, 40, &data)));
    let (meta, read) = latest_snapshot(&store).await.unwrap();
    assert_eq!(meta.last_log_id, LogId::new(1, 40));
    assert_eq!(read, data);
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.snapshot, Some(meta));
    assert_eq!(restored.entries.len(), 40);
}

#[tokio::test]
async fn finish_with_a_wrong_checksum_or_size_is_refused_and_the_previous_snapshot_stays_current() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let first = snapshot_data(10, 5000);
    assert!(save_snapshot(&store, 1, 10, &first, 999).await);
    let newer = snapshot_data(20, 3000);
    for damage in ["checksum", "size"] {
        let mut meta = snapshot_meta(1, 20, &newer);
        match damage {
            "checksum" => meta.checksum ^= 1,
            _ => meta.size += 1,
        }
        let mut writer = store.begin_snapshot().await.unwrap();
        writer.write(Bytes::from(newer.clone())).await.unwrap();
        let err = writer.finish(meta).await.unwrap_err();
        assert!(
            err.to_string().contains("does not match"),
            "{damage}: {err}"
        );
        assert_eq!(latest_snapshot(&store).await.unwrap().1, first, "{damage}");
    }
    // The refused data left no file behind, and the store still works.
    assert!(files_ending(&fs, ".tmp").is_empty());
    assert!(save_snapshot(&store, 1, 20, &newer, 1000).await);
    assert_eq!(latest_snapshot(&store).await.unwrap().1, newer);
}

#[tokio::test]
async fn a_snapshot_at_or_below_the_current_index_is_discarded() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let current = snapshot_data(30, 2000);
    // Two writers in progress at once; the newer one finishes first.
    let mut older = store.begin_snapshot().await.unwrap();
    older
        .write(Bytes::from(snapshot_data(20, 1000)))
        .await
        .unwrap();
    assert!(save_snapshot(&store, 2, 30, &current, 700).await);
    let finished = older
        .finish(snapshot_meta(2, 20, &snapshot_data(20, 1000)))
        .await
        .unwrap();
    assert!(!finished, "an older snapshot never replaces a newer one");
    assert!(!save_snapshot(&store, 2, 30, &snapshot_data(31, 10), 10).await);
    assert_eq!(store.snapshot_meta(), Some(snapshot_meta(2, 30, &current)));
    assert_eq!(latest_snapshot(&store).await.unwrap().1, current);
    assert!(files_ending(&fs, ".tmp").is_empty());
    assert_eq!(
        files_ending(&fs, ".snap"),
        ["snapshot-00000000000000000030.snap"]
    );
}

#[tokio::test]
async fn a_reader_keeps_reading_its_snapshot_after_a_newer_one_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), FsOptions::default()).unwrap();
    let old = snapshot_data(10, 300_000);
    assert!(save_snapshot(&store, 1, 10, &old, 50_000).await);
    let reader = store.open_snapshot().await.unwrap().unwrap();
    let new = snapshot_data(20, 200_000);
    assert!(save_snapshot(&store, 1, 20, &new, 50_000).await);
    // The old file is gone from the directory, but the reader holds it open.
    let snapshots: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".snap"))
        .collect();
    assert_eq!(snapshots, ["snapshot-00000000000000000020.snap"]);
    assert_eq!(reader.meta().last_log_id.index, LogIndex(10));
    assert_eq!(read_to_vec(&*reader, 65_536).await.unwrap(), old);
    assert_eq!(latest_snapshot(&store).await.unwrap().1, new);
}

#[tokio::test]
async fn an_empty_snapshot_round_trips() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let writer = store.begin_snapshot().await.unwrap();
    assert!(writer.finish(snapshot_meta(1, 3, &[])).await.unwrap());
    store.close().await;
    drop(store);
    let store = try_open(&fs, small_options()).unwrap();
    let (meta, data) = latest_snapshot(&store).await.unwrap();
    assert_eq!(meta, snapshot_meta(1, 3, &[]));
    assert!(data.is_empty());
}

#[tokio::test]
async fn an_abandoned_writer_leaves_no_file_and_no_snapshot() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let mut writer = store.begin_snapshot().await.unwrap();
    writer.write(Bytes::from_static(b"partial")).await.unwrap();
    drop(writer);
    // The removal runs on a blocking thread: wait for it.
    for _ in 0..1000 {
        if files_ending(&fs, ".tmp").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(files_ending(&fs, ".tmp").is_empty());
    assert!(store.open_snapshot().await.unwrap().is_none());
    assert_eq!(store.restore().await.unwrap().snapshot, None);
}

#[tokio::test]
async fn leftover_temporary_and_older_snapshot_files_are_removed_at_open() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let data = snapshot_data(12, 100);
    assert!(save_snapshot(&store, 1, 12, &data, 30).await);
    store.close().await;
    drop(store);
    // A crash mid-write, and a crash between a rename and the removal of the older file.
    let mut leftover = data.clone();
    leftover.truncate(40);
    write_file(
        &fs,
        Path::new("/log/snapshot-00000000000000000003.tmp"),
        &leftover,
    );
    let older = snapshot_path(12);
    let older_bytes = fs.contents(&older).unwrap();
    // (a copy of the file at 12: recovery never reads a snapshot older than the latest)
    write_file(&fs, &snapshot_path(5), &older_bytes);
    let store = try_open(&fs, small_options()).unwrap();
    assert_eq!(store.snapshot_meta(), Some(snapshot_meta(1, 12, &data)));
    assert!(files_ending(&fs, ".tmp").is_empty());
    assert_eq!(
        files_ending(&fs, ".snap"),
        ["snapshot-00000000000000000012.snap"]
    );
}

/// Creates `path` with `bytes`, durably.
fn write_file(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let file = fs.open(path, true).unwrap();
    file.write_all_at(bytes, 0).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(Path::new("/log")).unwrap();
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_naming_the_file() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let data = snapshot_data(9, 4000);
    assert!(save_snapshot(&store, 1, 9, &data, 1000).await);
    store.close().await;
    drop(store);
    let path = snapshot_path(9);
    let original = fs.contents(&path).unwrap();
    // A flipped bit in the data, in the trailer, and a file cut short.
    let mut in_data = original.clone();
    in_data[1234] ^= 0x20;
    let mut in_trailer = original.clone();
    let at = original.len() - 30;
    in_trailer[at] ^= 1;
    let short = original[..original.len() - 1].to_vec();
    for (what, damaged) in [("data", in_data), ("trailer", in_trailer), ("short", short)] {
        fs.overwrite(&path, damaged).unwrap();
        match try_open(&fs, small_options()) {
            Err(Error::Corrupt { file, .. }) => assert_eq!(file, path, "{what}"),
            other => panic!("{what}: expected corruption, got {other:?}"),
        }
    }
    fs.overwrite(&path, original).unwrap();
    let store = try_open(&fs, small_options()).unwrap();
    assert_eq!(latest_snapshot(&store).await.unwrap().1, data);
}

#[tokio::test]
async fn a_log_starting_above_one_without_a_covering_snapshot_is_refused() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 300)).await.unwrap();
    wait_durable(&store, 300).await;
    let small = snapshot_data(10, 50);
    assert!(save_snapshot(&store, 1, 250, &snapshot_data(250, 50), 50).await);
    store.compact(LogIndex(200)).await.unwrap();
    store.close().await;
    drop(store);
    let first_segment = format!("/log/{:020}.seg", 1);
    assert!(
        fs.contents(Path::new(&first_segment)).is_none(),
        "compacted"
    );

    // Without the snapshot, the entries before the first segment are missing.
    let snapshot = fs.contents(&snapshot_path(250)).unwrap();
    fs.remove(&snapshot_path(250)).unwrap();
    fs.sync_dir(Path::new("/log")).unwrap();
    match try_open(&fs, small_options()) {
        Err(Error::Uncovered {
            first,
            snapshot_index: 0,
            file,
        }) => {
            assert!(first > 1 && first <= 200, "{first}");
            assert!(file.to_string_lossy().ends_with(".seg"), "{file:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nor does a snapshot that ends before it.
    let scratch = SimFs::new();
    let other = open_sim(&scratch, small_options());
    assert!(save_snapshot(&other, 1, 10, &small, 50).await);
    other.close().await;
    write_file(
        &fs,
        &snapshot_path(10),
        &scratch.contents(&snapshot_path(10)).unwrap(),
    );
    let err = try_open(&fs, small_options()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Uncovered {
                snapshot_index: 10,
                ..
            }
        ),
        "{err}"
    );
    // With its snapshot back, the log opens.
    write_file(&fs, &snapshot_path(250), &snapshot);
    let store = try_open(&fs, small_options()).unwrap();
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.snapshot.unwrap().last_log_id.index, LogIndex(250));
    assert_eq!(restored.entries.last().unwrap().log_id.index, LogIndex(300));
}

#[tokio::test]
async fn compaction_beyond_the_latest_snapshot_is_refused() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 50)).await.unwrap();
    let err = store.compact(LogIndex(2)).await.unwrap_err();
    assert!(err.to_string().contains("snapshot"), "{err}");
    assert!(save_snapshot(&store, 1, 20, &snapshot_data(20, 10), 10).await);
    assert!(store.compact(LogIndex(22)).await.is_err());
    store.compact(LogIndex(21)).await.unwrap();
    assert_eq!(store.first_index(), LogIndex(21));
    assert_eq!(store.last_log_id(), LogId::new(1, 50));
}
