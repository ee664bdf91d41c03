//! `FsLogStore::close`: it closes every clone, releases the directory lock at once (so the
//! directory opens again while clones and snapshot writers of the closed store still exist),
//! and everything of the closed store then fails with `Error::Closed` without touching the
//! directory its successor holds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{entries, read_all, save_snapshot, snapshot_data, snapshot_meta, wait_durable};
use raft_core::{HardState, LogId, LogIndex, LogStore};
use raft_storage_fs::{Error, FsLogStore, FsOptions};

fn options() -> FsOptions {
    FsOptions::small().segment_bytes(64 << 10)
}

/// Whether `err` is this crate's [`Error::Closed`], as the `LogStore` methods wrap it.
fn is_closed(err: &raft_core::Error) -> bool {
    match err {
        raft_core::Error::Storage(source) => {
            matches!(source.downcast_ref::<Error>(), Some(Error::Closed))
        }
        _ => false,
    }
}

#[track_caller]
fn assert_closed<T: std::fmt::Debug>(result: Result<T, raft_core::Error>, call: &str) {
    match result {
        Err(err) => assert!(is_closed(&err), "{call}: {err}"),
        Ok(value) => panic!("{call} succeeded after close: {value:?}"),
    }
}

#[tokio::test]
async fn close_releases_the_directory_while_clones_still_exist() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options()).unwrap();
    store.append(&entries(1, 1, 20)).await.unwrap();
    let clone = store.clone();
    // The last entries are only queued when `close` starts: it writes them first.
    clone.append(&entries(1, 21, 30)).await.unwrap();
    store.close().await;

    // Reopened at once, with every entry, while `clone` is alive.
    let reopened = FsLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(reopened.last_log_id(), LogId::new(1, 30));
    assert_eq!(read_all(&reopened, 1, 30).await, entries(1, 1, 30));

    // The clone fails cleanly: the crate's Closed error, no panic, nothing written.
    assert_closed(clone.append(&entries(1, 31, 31)).await, "append");
    assert_closed(clone.truncate(LogIndex(10)).await, "truncate");
    assert_closed(clone.compact(LogIndex(5)).await, "compact");
    assert_closed(
        clone.save_hard_state(HardState::default()).await,
        "save_hard_state",
    );
    assert_closed(clone.read(LogIndex(1), LogIndex(30)).await, "read");
    assert_closed(clone.restore().await.map(|_| ()), "restore");
    assert_closed(clone.begin_snapshot().await.map(|_| ()), "begin_snapshot");
    assert_closed(clone.open_snapshot().await.map(|_| ()), "open_snapshot");
    // What needs no file still answers.
    assert_eq!(clone.last_log_id(), LogId::new(1, 30));
    assert!(clone.byte_count() > 0);
    let _ = clone.durable();
    // Closing again, and dropping the clones, changes nothing for the new owner.
    clone.close().await;
    drop(clone);
    drop(store);
    let third = FsLogStore::open(dir.path(), options());
    assert!(matches!(third, Err(Error::Locked { .. })), "{third:?}");

    reopened.append(&entries(1, 31, 40)).await.unwrap();
    assert_eq!(wait_durable(&reopened, 40).await, LogId::new(1, 40));
    reopened.close().await;
    drop(reopened);
    let store = FsLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(read_all(&store, 1, 40).await, entries(1, 1, 40));
    store.close().await;
}

#[tokio::test]
async fn a_snapshot_writer_of_a_closed_store_fails_and_leaves_the_new_owners_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options()).unwrap();
    store.append(&entries(1, 1, 50)).await.unwrap();
    wait_durable(&store, 50).await;
    // Two writers of the old store: one unfinished, one about to finish.
    let mut abandoned = store.begin_snapshot().await.unwrap();
    abandoned
        .write(Bytes::from_static(b"partial"))
        .await
        .unwrap();
    let data = snapshot_data(40, 500);
    let mut late = store.begin_snapshot().await.unwrap();
    late.write(Bytes::from(data.clone())).await.unwrap();
    store.close().await;

    let reopened = FsLogStore::open(dir.path(), options()).unwrap();
    // The new owner's first snapshot gets the same temporary file name as the old store's
    // first writer.
    let newer = snapshot_data(45, 400);
    let mut current = reopened.begin_snapshot().await.unwrap();
    current.write(Bytes::from(newer.clone())).await.unwrap();

    let write = late.write(Bytes::from_static(b"more")).await;
    assert_closed(write, "a writer's write");
    assert_closed(late.finish(snapshot_meta(1, 40, &data)).await, "finish");
    drop(abandoned);
    // Give a (wrong) background removal of the abandoned file time to run.
    tokio::time::sleep(Duration::from_millis(50)).await;

    assert!(current.finish(snapshot_meta(1, 45, &newer)).await.unwrap());
    let reader = reopened.open_snapshot().await.unwrap().unwrap();
    assert_eq!(reader.meta(), &snapshot_meta(1, 45, &newer));
    reopened.close().await;
    drop(reopened);
    let store = FsLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.snapshot_meta(), Some(snapshot_meta(1, 45, &newer)));
    store.close().await;
}

#[tokio::test]
async fn a_reader_opened_before_close_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), options()).unwrap();
    store.append(&entries(1, 1, 10)).await.unwrap();
    let data = snapshot_data(10, 3000);
    assert!(save_snapshot(&store, 1, 10, &data, 1000).await);
    let reader = store.open_snapshot().await.unwrap().unwrap();
    store.close().await;
    let _reopened = FsLogStore::open(dir.path(), options()).unwrap();
    // Snapshot files are never changed once complete: the open file reads as before.
    assert_eq!(
        raft_core::snapshot::read_to_vec(&*reader, 1000)
            .await
            .unwrap(),
        data
    );
}
