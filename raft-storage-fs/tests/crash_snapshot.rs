//! Crashes at every step of a snapshot's write, a compaction past the log, a truncation and the
//! rollover and removal of a retired segment: the simulated disk (SimFs) loses power, or the
//! process dies, just before the n-th file-system call, for every n; the store always reopens
//! with a usable snapshot and every durable entry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::Path;

use common::{
    entries, latest_snapshot, open_sim, read_all, save_snapshot, snapshot_data, snapshot_meta,
    wait_durable,
};
use raft_core::testing::snapshots;
use raft_core::{HardState, LogIndex, LogStore};
use raft_storage_fs::fs::Fs;
use raft_storage_fs::testing::{Crash, SimFs};
use raft_storage_fs::{FsLogStore, FsOptions};

/// Segments that never get half full in these tests, so no preallocation thread runs and the
/// calls counted are the snapshot's or the compaction's alone.
fn options() -> FsOptions {
    FsOptions::default()
        .segment_bytes(64 << 10)
        .zero_fill(false)
}

fn crashes() -> Vec<Crash> {
    let mut crashes = vec![Crash::Processes];
    crashes.extend((1..=8).map(|seed| Crash::PowerLoss { seed }));
    crashes
}

/// The files in the simulated log directory whose names end with `suffix`.
fn count_ending(fs: &SimFs, suffix: &str) -> usize {
    fs.list(Path::new("/log"))
        .unwrap()
        .iter()
        .filter(|name| name.ends_with(suffix))
        .count()
}

/// Writes snapshot 80 over snapshot 50 with a crash scheduled after `calls` file-system calls;
/// returns what `finish` answered (an error when the crash came first).
async fn write_new_snapshot(store: &FsLogStore) -> Result<bool, raft_core::Error> {
    let data = snapshot_data(80, 5000);
    snapshots::write(store, snapshot_meta(1, 80, &data), &data, 1000).await
}

#[tokio::test]
async fn a_crash_at_every_step_of_writing_a_snapshot_leaves_a_usable_snapshot() {
    for crash in crashes() {
        for calls in 0.. {
            let fs = SimFs::new();
            let store = open_sim(&fs, options());
            store.append(&entries(1, 1, 100)).await.unwrap();
            wait_durable(&store, 100).await;
            assert!(save_snapshot(&store, 1, 50, &snapshot_data(50, 2000), 700).await);
            store.compact(LogIndex(51)).await.unwrap();
            store.save_hard_state(HardState::default()).await.unwrap();

            fs.crash_after(calls, crash);
            let finished = write_new_snapshot(&store).await;
            let crashed = fs.cancel_crash();
            if !crashed {
                // Done before the crash: then it is durable, whatever a power loss keeps.
                assert!(matches!(finished, Ok(true)), "{crash:?}: {finished:?}");
                fs.power_loss(calls);
            }
            drop(store);

            let store = open_sim(&fs, options());
            let (meta, data) = latest_snapshot(&store).await.unwrap();
            let index = meta.last_log_id.index.0;
            assert!(
                index == 50 || index == 80,
                "{crash:?} at call {calls}: {meta}"
            );
            if !crashed || matches!(finished, Ok(true)) {
                assert_eq!(
                    index, 80,
                    "{crash:?} at call {calls}: a finished snapshot was lost"
                );
            }
            assert_eq!(meta, snapshot_meta(1, index, &data));
            assert_eq!(data, snapshot_data(index, data.len()));
            assert_eq!(store.restore().await.unwrap().snapshot, Some(meta));
            assert_eq!(count_ending(&fs, ".tmp"), 0, "{crash:?} at call {calls}");
            assert_eq!(count_ending(&fs, ".snap"), 1, "{crash:?} at call {calls}");
            let first = store.first_index().0;
            assert!(first <= 51);
            assert_eq!(read_all(&store, 1, 100).await, entries(1, first, 100));
            if !crashed {
                assert!(calls > 10, "every step was crashed: {calls} calls in all");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_crash_at_every_step_of_compacting_past_the_log_leaves_a_log_that_opens() {
    for crash in crashes() {
        for calls in 0.. {
            let fs = SimFs::new();
            let store = open_sim(&fs, options().segment_bytes(1024));
            store.append(&entries(1, 1, 60)).await.unwrap();
            wait_durable(&store, 60).await;
            assert!(store.segment_paths().len() > 2);
            assert!(save_snapshot(&store, 2, 90, &snapshot_data(90, 100), 100).await);

            fs.crash_after(calls, crash);
            let compacted = store.compact(LogIndex(91)).await;
            let saved = store.save_hard_state(HardState::default()).await;
            let crashed = fs.cancel_crash();
            if !crashed {
                compacted.unwrap();
                saved.unwrap();
                fs.power_loss(calls);
            }
            drop(store);

            // Whatever survived, the log opens and the engine's restart sequence works.
            let store = open_sim(&fs, options().segment_bytes(1024));
            let restored = store.restore().await.unwrap();
            assert_eq!(restored.snapshot.unwrap().last_log_id.index, LogIndex(90));
            if !crashed {
                assert!(restored.entries.is_empty(), "{crash:?}: compaction lost");
                assert_eq!(store.first_index(), LogIndex(91));
            }
            if let Some(first) = restored.entries.first() {
                // A suffix of the old segments: entries first..=60, intact.
                let first = first.log_id.index.0;
                assert_eq!(read_all(&store, 1, 100).await, entries(1, first, 60));
                store.truncate(LogIndex(first)).await.unwrap();
            }
            store.compact(LogIndex(91)).await.unwrap();
            store.append(&entries(2, 91, 95)).await.unwrap();
            wait_durable(&store, 95).await;
            assert_eq!(read_all(&store, 1, 100).await, entries(2, 91, 95));
            if !crashed {
                assert!(calls > 3, "every step was crashed: {calls} calls in all");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_crash_at_every_step_of_a_truncation_leaves_a_log_that_opens() {
    // The whole log (every segment goes, the first is emptied) and from the middle of one.
    for from in [1, 37] {
        for crash in crashes() {
            for calls in 0.. {
                let fs = SimFs::new();
                let store = open_sim(&fs, options().segment_bytes(1024));
                store.append(&entries(1, 1, 60)).await.unwrap();
                wait_durable(&store, 60).await;
                assert!(store.segment_paths().len() > 2);

                fs.crash_after(calls, crash);
                let truncated = store.truncate(LogIndex(from)).await;
                let saved = store.save_hard_state(HardState::default()).await;
                let crashed = fs.cancel_crash();
                if !crashed {
                    truncated.unwrap();
                    saved.unwrap();
                    fs.power_loss(calls);
                }
                drop(store);

                let store = open_sim(&fs, options().segment_bytes(1024));
                let last = store.last_log_id().index.0;
                assert!(last + 1 >= from, "{crash:?} at call {calls}: lost entries");
                assert_eq!(read_all(&store, 1, 100).await, entries(1, 1, last));
                if !crashed {
                    assert_eq!(last + 1, from, "{crash:?}: truncation lost");
                    assert!(calls > 3, "every step was crashed: {calls} calls in all");
                    break;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_crash_at_every_step_of_retiring_a_segment_keeps_every_durable_entry() {
    // 64 KiB segments: 400 entries (~26 KiB) fit in one, and a compaction before 391 covers
    // most of it, which retires it: the next append starts a new segment, and the compaction
    // after the next snapshot removes the old one.
    let prealloc = Path::new("/log/segment.prealloc");
    for crash in crashes() {
        for calls in 0.. {
            let fs = SimFs::new();
            let store = open_sim(&fs, options());
            store.append(&entries(1, 1, 400)).await.unwrap();
            wait_durable(&store, 400).await;
            assert!(save_snapshot(&store, 1, 400, &snapshot_data(400, 300), 100).await);
            store.compact(LogIndex(391)).await.unwrap();
            store.save_hard_state(HardState::default()).await.unwrap();
            // The retirement prepares the next segment on a helper thread: let it finish, so
            // the calls counted below are the rollover's and the compaction's.
            for _ in 0..500 {
                if fs.contents(prealloc).map(|data| data.len()) == Some(64 << 10) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;

            fs.crash_after(calls, crash);
            let appended = store.append(&entries(1, 401, 430)).await;
            let saved = store.save_hard_state(HardState::default()).await;
            let durable = store.durable().borrow().index.0;
            let data = snapshot_data(430, 300);
            let snapshot = snapshots::write(&store, snapshot_meta(1, 430, &data), &data, 100).await;
            let compacted = store.compact(LogIndex(421)).await;
            let saved_again = store.save_hard_state(HardState::default()).await;
            let crashed = fs.cancel_crash();
            if !crashed {
                appended.unwrap();
                saved.unwrap();
                assert!(snapshot.unwrap());
                compacted.unwrap();
                saved_again.unwrap();
                // The old segment is gone: the log lives in the one the rollover started.
                let paths = store.segment_paths();
                assert_eq!(paths.len(), 1, "{paths:?}");
                assert!(paths[0].ends_with("00000000000000000401.seg"), "{paths:?}");
                fs.power_loss(calls);
            }
            let durable = durable.max(store.durable().borrow().index.0);
            drop(store);

            let store = open_sim(&fs, options());
            let restored = store.restore().await.unwrap();
            let covered = restored.snapshot.unwrap().last_log_id.index.0;
            assert!(
                covered == 400 || covered == 430,
                "{crash:?} at call {calls}"
            );
            let first = store.first_index().0;
            let last = store.last_log_id().index.0;
            assert!(
                last.max(covered) >= durable,
                "{crash:?} at call {calls}: durable {durable} lost, log ends at {last}"
            );
            assert!(
                first <= covered + 1 && first <= 401,
                "{crash:?} at call {calls}"
            );
            assert_eq!(read_all(&store, 1, 500).await, entries(1, first, last));
            if !crashed {
                assert_eq!((first, last, covered), (401, 430, 430), "{crash:?}");
            }
            // The log takes appends where it ends.
            store.append(&entries(1, last + 1, last + 5)).await.unwrap();
            wait_durable(&store, last + 5).await;
            if !crashed {
                assert!(calls > 10, "every step was crashed: {calls} calls in all");
                break;
            }
        }
    }
}
