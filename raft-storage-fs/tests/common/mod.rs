//! Helpers shared by the store's integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft_core::testing::snapshots;
use raft_core::{Entry, LogId, LogIndex, LogStore, Membership, NodeId, Payload, SnapshotMeta};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{FsLogStore, FsOptions};

/// An entry whose payload names its term and index (so a read proves which version it is).
pub fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: LogId::new(term, index),
        payload: if index.is_multiple_of(7) {
            Payload::Blank
        } else {
            Payload::Command(Bytes::from(format!(
                "t{term}-i{index}-{}",
                "x".repeat((index % 50) as usize)
            )))
        },
    }
}

pub fn entries(term: u64, first: u64, last: u64) -> Vec<Entry> {
    (first..=last).map(|index| entry(term, index)).collect()
}

/// Small segments, so a few hundred entries span many files.
pub fn small_options() -> FsOptions {
    FsOptions::default().segment_bytes(4096).cache_bytes(2048)
}

pub fn open_sim(fs: &SimFs, options: FsOptions) -> FsLogStore {
    FsLogStore::open_with(Arc::new(fs.process()), Path::new("/log"), options).unwrap()
}

/// Waits until the store reports `index` durable.
pub async fn wait_durable(store: &FsLogStore, index: u64) -> LogId {
    let mut durable = store.durable();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let id = *durable.borrow_and_update();
            if id.index >= LogIndex(index) {
                return id;
            }
            durable.changed().await.expect("durability watch closed");
        }
    })
    .await
    .expect("entries never became durable")
}

/// Reads the whole log `first..=last`.
pub async fn read_all(store: &FsLogStore, first: u64, last: u64) -> Vec<Entry> {
    store.read(LogIndex(first), LogIndex(last)).await.unwrap()
}

/// Snapshot data that names its index (so a read proves which snapshot it is).
pub fn snapshot_data(index: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ index.wrapping_mul(7)) as u8)
        .collect()
}

/// The meta of a snapshot of `data` covering up to entry (`term`, `index`).
pub fn snapshot_meta(term: u64, index: u64, data: &[u8]) -> SnapshotMeta {
    let membership = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
    snapshots::meta(LogId::new(term, index), membership, data)
}

/// Writes `data` as a snapshot in chunks of `chunk` bytes; returns whether it became the
/// latest.
pub async fn save_snapshot(
    store: &FsLogStore,
    term: u64,
    index: u64,
    data: &[u8],
    chunk: usize,
) -> bool {
    let meta = snapshot_meta(term, index, data);
    snapshots::write(store, meta, data, chunk).await.unwrap()
}

/// The latest snapshot's meta and data, read back through the store.
pub async fn latest_snapshot(store: &FsLogStore) -> Option<(SnapshotMeta, Vec<u8>)> {
    snapshots::read_latest(store).await.unwrap()
}
