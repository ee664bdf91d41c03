//! Compaction below a snapshot and logs that start after one: restore, compaction past the last
//! entry, truncation of every entry, and the sequence a restarting node runs when a snapshot
//! replaced its log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use common::{
    entries, open_sim, read_all, save_snapshot, small_options, snapshot_data, snapshot_meta,
    wait_durable,
};
use raft_core::{HardState, LogId, LogIndex, LogStore};
use raft_storage_fs::testing::SimFs;

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
