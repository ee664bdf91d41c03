//! Round trips, truncation, compaction, reopen, locking and failure handling of FsLogStore.

mod common;

use std::sync::Arc;

use common::{
    entries, entry, open_sim, read_all, save_snapshot, small_options, snapshot_data, wait_durable,
};
use raft_core::{HardState, LogId, LogIndex, LogStore, NodeId, Term};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{Error, FsLogStore, FsOptions};

#[tokio::test]
async fn appended_entries_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = FsOptions::default().segment_bytes(4096).cache_bytes(1024);
    let store = FsLogStore::open(dir.path(), options.clone()).unwrap();
    let written = entries(1, 1, 300);
    for chunk in written.chunks(17) {
        store.append(chunk).await.unwrap();
    }
    // Readable at once, durable soon after.
    assert_eq!(read_all(&store, 1, 300).await, written);
    assert_eq!(wait_durable(&store, 300).await, LogId::new(1, 300));
    assert!(store.segment_paths().len() > 3, "small segments roll over");
    let hard_state = HardState {
        term: Term(4),
        vote: Some(NodeId(2)),
        commit: LogIndex(250),
    };
    store.save_hard_state(hard_state).await.unwrap();
    let bytes = store.byte_count();
    store.close().await;
    drop(store);

    let store = FsLogStore::open(dir.path(), options).unwrap();
    assert_eq!(store.last_log_id(), LogId::new(1, 300));
    assert_eq!(store.byte_count(), bytes);
    assert_eq!(*store.durable().borrow(), LogId::new(1, 300));
    assert_eq!(read_all(&store, 1, 300).await, written);
    assert_eq!(read_all(&store, 120, 130).await, written[119..130]);
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.hard_state, hard_state);
    assert_eq!(restored.entries.len(), 300);
    assert_eq!(restored.entries[41].log_id, LogId::new(1, 42));
    assert_eq!(restored.entries[41].payload_len, written[41].payload.len());
}

#[tokio::test]
async fn truncation_replaces_a_suffix_across_segments_and_reopens_clean() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 200)).await.unwrap();
    wait_durable(&store, 200).await;
    let segments_before = store.segment_paths().len();
    store.truncate(LogIndex(51)).await.unwrap();
    // On return the truncated entries are gone and the durable id is below them.
    assert_eq!(store.last_log_id(), LogId::new(1, 50));
    assert!(store.durable().borrow().index <= LogIndex(50));
    assert_eq!(read_all(&store, 45, 200).await, entries(1, 45, 50));
    store.append(&entries(2, 51, 80)).await.unwrap();
    assert_eq!(wait_durable(&store, 80).await, LogId::new(2, 80));
    assert!(store.segment_paths().len() < segments_before);
    let mut expected = entries(1, 1, 50);
    expected.extend(entries(2, 51, 80));
    assert_eq!(read_all(&store, 1, 200).await, expected);
    store.close().await;
    drop(store);

    let store = open_sim(&fs, small_options());
    assert_eq!(read_all(&store, 1, 200).await, expected);
    // Truncating everything leaves an empty log that takes entry 1 again.
    store.truncate(LogIndex(1)).await.unwrap();
    store.append(&entries(3, 1, 5)).await.unwrap();
    wait_durable(&store, 5).await;
    store.close().await;
    drop(store);
    let store = open_sim(&fs, small_options());
    assert_eq!(read_all(&store, 1, 100).await, entries(3, 1, 5));
}

#[tokio::test]
async fn compaction_drops_whole_segments_and_frees_their_bytes() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 300)).await.unwrap();
    wait_durable(&store, 300).await;
    let segments = store.segment_paths().len();
    let bytes = store.byte_count();
    // Compaction needs a snapshot covering what it drops.
    assert!(save_snapshot(&store, 1, 250, &snapshot_data(250, 100), 64).await);
    store.compact(LogIndex(200)).await.unwrap();
    assert_eq!(store.first_index(), LogIndex(200));
    assert!(read_all(&store, 1, 199).await.is_empty());
    assert_eq!(read_all(&store, 1, 205).await, entries(1, 200, 205));
    // A later job proves the compaction ran (jobs run in order).
    store.save_hard_state(HardState::default()).await.unwrap();
    assert!(store.segment_paths().len() < segments);
    assert!(store.byte_count() < bytes);
    assert!(
        store.truncate(LogIndex(150)).await.is_err(),
        "compacted entries cannot be truncated"
    );
    store.close().await;
    drop(store);
    // Reopened, the log starts at the first kept segment (at or below 200).
    let store = open_sim(&fs, small_options());
    assert!(store.first_index() <= LogIndex(200));
    assert_eq!(read_all(&store, 200, 300).await, entries(1, 200, 300));
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), small_options()).unwrap();
    let second = FsLogStore::open(dir.path(), small_options());
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    store.close().await;
    drop(store);
    FsLogStore::open(dir.path(), small_options()).unwrap();
}

#[tokio::test]
async fn appends_that_do_not_follow_the_log_are_refused() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(2, 1, 3)).await.unwrap();
    assert!(store.append(&[entry(2, 5)]).await.is_err(), "gap");
    assert!(
        store.append(&[entry(1, 4)]).await.is_err(),
        "term goes back"
    );
    store.append(&[entry(2, 4)]).await.unwrap();
}

#[tokio::test]
async fn a_failed_fsync_poisons_the_log_and_nothing_more_is_acknowledged() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&entries(1, 1, 10)).await.unwrap();
    wait_durable(&store, 10).await;
    let mut durable = store.durable();
    fs.fail_syncs();
    store.append(&entries(1, 11, 20)).await.unwrap();
    let saved = store.save_hard_state(HardState::default()).await;
    assert!(saved.is_err(), "the hard state was not made durable");
    // The watch closes without reporting entries 11..=20.
    while durable.changed().await.is_ok() {}
    assert_eq!(durable.borrow().index, LogIndex(10));
    assert!(store.poisoned().unwrap().contains("syncing"));
    let refused = store.append(&entries(1, 21, 21)).await.unwrap_err();
    assert!(refused.to_string().contains("poisoned"), "{refused}");
    // Reopening after the fault keeps every durable entry.
    drop(store);
    fs.power_loss(7);
    let store = open_sim(&fs, small_options());
    assert!(store.last_log_id().index >= LogIndex(10));
    assert_eq!(read_all(&store, 1, 10).await, entries(1, 1, 10));
}

#[tokio::test]
async fn a_full_disk_fails_with_a_clear_error_and_keeps_what_was_durable() {
    let fs = SimFs::new();
    let options = small_options().zero_fill(false);
    let store = open_sim(&fs, options.clone());
    store.append(&entries(1, 1, 10)).await.unwrap();
    wait_durable(&store, 10).await;
    fs.set_space_left(Some(0));
    // Enough entries to need a new segment, which the full disk refuses.
    store.append(&entries(1, 11, 200)).await.unwrap();
    let mut durable = store.durable();
    while durable.changed().await.is_ok() {}
    let reason = store.poisoned().unwrap();
    assert!(reason.contains("disk full"), "{reason}");
    assert!(durable.borrow().index < LogIndex(200));
    let durable_index = durable.borrow().index.0;
    drop(store);
    fs.power_loss(3);
    let store = open_sim(&fs, options);
    assert_eq!(
        read_all(&store, 1, durable_index).await,
        entries(1, 1, durable_index)
    );
}

#[tokio::test]
async fn hard_state_is_replaced_atomically() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    for term in 1..=5 {
        store
            .save_hard_state(HardState {
                term: Term(term),
                vote: Some(NodeId(term)),
                commit: LogIndex(0),
            })
            .await
            .unwrap();
    }
    drop(store);
    // Whatever a crash keeps of later unsynced work, the last saved state is there.
    fs.power_loss(11);
    let store = open_sim(&fs, small_options());
    assert_eq!(store.hard_state().term, Term(5));
    assert_eq!(store.hard_state().vote, Some(NodeId(5)));
}

#[tokio::test]
async fn a_store_is_usable_through_the_log_store_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsLogStore::open(dir.path(), FsOptions::default()).unwrap();
    let log: Arc<dyn LogStore> = Arc::new(store.clone());
    log.append(&entries(1, 1, 3)).await.unwrap();
    assert_eq!(
        log.read(LogIndex(2), LogIndex(3)).await.unwrap(),
        entries(1, 2, 3)
    );
    assert_eq!(store.last_log_id(), LogId::new(1, 3));
    assert!(log.byte_count() > 0);
    drop(log);
    store.close().await;
}
