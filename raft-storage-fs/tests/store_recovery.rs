//! Recovery from damaged files: a torn tail is cut to exactly the valid prefix, damage before
//! the tail and missing segments are refused with errors naming the file and offset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{entries, open_sim, read_all, small_options, wait_durable};
use raft_core::{LogIndex, LogStore};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{Error, FsLogStore, FsOptions};

fn try_open(fs: &SimFs, options: FsOptions) -> Result<FsLogStore, Error> {
    FsLogStore::open_with(Arc::new(fs.process()), Path::new("/log"), options)
}

/// A log of `count` entries in one segment, closed; returns its segment path and the end
/// offset of every record.
async fn one_segment_log(fs: &SimFs, count: u64) -> (PathBuf, Vec<u64>) {
    let store = open_sim(fs, FsOptions::default().segment_bytes(64 << 10));
    let mut ends = Vec::new();
    let mut end = 0;
    for e in entries(1, 1, count) {
        end += raft_storage_fs::record::encoded_len(&e) as u64;
        ends.push(end);
        store.append(&[e]).await.unwrap();
    }
    wait_durable(&store, count).await;
    let path = store.segment_paths()[0].clone();
    store.close().await;
    (path, ends)
}

#[tokio::test]
async fn a_tail_cut_at_every_byte_offset_recovers_exactly_the_whole_records() {
    let fs = SimFs::new();
    let (path, ends) = one_segment_log(&fs, 12).await;
    let original = fs.contents(&path).unwrap();
    let from = ends[8];
    for cut in from..=ends[11] {
        // A crash mid-write: bytes after `cut` never reached the disk (zeros of the
        // preallocated file), or the file itself is short.
        for zero_filled in [true, false] {
            let mut damaged = original[..cut as usize].to_vec();
            if zero_filled {
                damaged.resize(original.len(), 0);
            }
            fs.overwrite(&path, damaged).unwrap();
            let store = try_open(&fs, FsOptions::default().segment_bytes(64 << 10)).unwrap();
            let whole = ends.iter().filter(|&&end| end <= cut).count() as u64;
            assert_eq!(store.last_log_id().index, LogIndex(whole), "cut at {cut}");
            assert_eq!(read_all(&store, 1, 20).await, entries(1, 1, whole));
            // The torn bytes are gone: the next append lands right after the valid prefix.
            store
                .append(&entries(1, whole + 1, whole + 1))
                .await
                .unwrap();
            wait_durable(&store, whole + 1).await;
            store.close().await;
            drop(store);
            fs.overwrite(&path, original.clone()).unwrap();
        }
    }
}

#[tokio::test]
async fn a_flipped_bit_before_the_tail_is_refused_naming_file_and_offset() {
    let fs = SimFs::new();
    let (path, ends) = one_segment_log(&fs, 12).await;
    let mut damaged = fs.contents(&path).unwrap();
    let at = ends[3] + 40; // inside record 5's payload
    damaged[at as usize] ^= 0x10;
    fs.overwrite(&path, damaged).unwrap();
    match try_open(&fs, FsOptions::default()) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, path);
            assert_eq!(offset, ends[3]);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_segment_is_refused() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 300)).await.unwrap();
    wait_durable(&store, 300).await;
    let segments = store.segment_paths();
    assert!(segments.len() >= 3);
    store.close().await;
    drop(store);
    fs.overwrite(&segments[1], Vec::new()).unwrap(); // emptied: its entries are gone
    let err = try_open(&fs, small_options()).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. } | Error::MissingEntries { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(".seg"), "{err}");
}

#[tokio::test]
async fn a_damaged_hard_state_file_is_refused() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store
        .save_hard_state(raft_core::HardState::default())
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let path = Path::new("/log/hard_state");
    let mut damaged = fs.contents(path).unwrap();
    damaged[9] ^= 1;
    fs.overwrite(path, damaged).unwrap();
    let err = try_open(&fs, small_options()).unwrap_err();
    assert!(err.to_string().contains("hard_state"), "{err}");
}
