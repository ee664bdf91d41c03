//! Membership entries in the log and in snapshots: `restore` reports the membership entries it
//! holds (found at open, kept in step with appends, truncations and compactions), and a snapshot
//! keeps a whole membership (joint, learners, addresses) across a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use bytes::Bytes;
use common::{open_sim, read_all, save_snapshot, small_options, snapshot_data, wait_durable};
use raft_core::testing::snapshots;
use raft_core::{Entry, LogId, LogIndex, LogStore, Membership, MembershipChange, NodeId, Payload};
use raft_storage_fs::FsLogStore;
use raft_storage_fs::testing::SimFs;

/// The cluster {1, 2, 3} after `step` changes: learner 4 added (1), then joint {1, 2, 4} with
/// outgoing {1, 2, 3} (2), then the final {1, 2, 4} (3 and more).
fn membership(step: u64) -> Membership {
    let mut m = Membership::new([NodeId(1), NodeId(2), NodeId(3)])
        .with_address(NodeId(1), "10.0.0.1:7000")
        .with_address(NodeId(2), "10.0.0.2:7000")
        .with_address(NodeId(3), "10.0.0.3:7000");
    if step >= 1 {
        m = m
            .apply(&MembershipChange::add_learner(NodeId(4), "10.0.0.4:7000"))
            .unwrap();
    }
    if step >= 2 {
        let change = MembershipChange::default()
            .promote(NodeId(4))
            .remove(NodeId(3));
        m = m.apply(&change).unwrap();
    }
    if step >= 3 {
        m = m.leave_joint();
    }
    m
}

/// Entries `first..=last` of `term`: memberships at the indexes of `at` (the n-th one is
/// `membership(n)`), else blanks every fifth index and commands.
fn log(term: u64, first: u64, last: u64, at: &[u64]) -> Vec<Entry> {
    (first..=last)
        .map(|index| {
            let payload = if let Some(n) = at.iter().position(|&i| i == index) {
                Payload::Membership(membership(n as u64 + 1))
            } else if index.is_multiple_of(5) {
                Payload::Blank
            } else {
                Payload::Command(Bytes::from(format!("t{term}-i{index}-{}", "y".repeat(40))))
            };
            Entry {
                log_id: LogId::new(term, index),
                payload,
            }
        })
        .collect()
}

/// The `(id, membership)` of every membership entry of `entries`.
fn memberships_of(entries: &[Entry]) -> Vec<(LogId, Membership)> {
    entries
        .iter()
        .filter_map(|entry| match &entry.payload {
            Payload::Membership(m) => Some((entry.log_id, m.clone())),
            _ => None,
        })
        .collect()
}

async fn reopen(fs: &SimFs, store: FsLogStore) -> FsLogStore {
    store.close().await;
    drop(store);
    open_sim(fs, small_options())
}

#[tokio::test]
async fn restore_reports_membership_entries_after_reopen_and_forgets_truncated_ones() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    // Small segments: the three memberships land in different files.
    let written = log(1, 1, 120, &[3, 40, 100]);
    store.append(&written).await.unwrap();
    wait_durable(&store, 120).await;
    assert!(store.segment_paths().len() > 2);
    let expected = memberships_of(&written);
    assert_eq!(expected.len(), 3);
    assert_eq!(store.restore().await.unwrap().memberships, expected);

    let store = reopen(&fs, store).await;
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.memberships, expected);
    assert_eq!(restored.entries.len(), 120);
    // The payloads read back whole, from the files and not only the cache.
    assert_eq!(read_all(&store, 1, 120).await, written);

    // A new leader's log replaces entries from 90 on: the membership at 100 is gone at once…
    store.truncate(LogIndex(90)).await.unwrap();
    assert_eq!(store.restore().await.unwrap().memberships, expected[..2]);
    let replacement = log(2, 90, 95, &[]);
    store.append(&replacement).await.unwrap();
    wait_durable(&store, 95).await;
    assert_eq!(store.restore().await.unwrap().memberships, expected[..2]);

    // …and after a reopen.
    let store = reopen(&fs, store).await;
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.memberships, expected[..2]);
    assert_eq!(restored.entries.last().unwrap().log_id, LogId::new(2, 95));

    // A membership appended after the truncation is reported, before and after a reopen.
    let newer = Entry {
        log_id: LogId::new(2, 96),
        payload: Payload::Membership(membership(3)),
    };
    store.append(std::slice::from_ref(&newer)).await.unwrap();
    let mut now = expected[..2].to_vec();
    now.push((newer.log_id, membership(3)));
    assert_eq!(store.restore().await.unwrap().memberships, now);
    let store = reopen(&fs, store).await;
    assert_eq!(store.restore().await.unwrap().memberships, now);
    store.close().await;
}

#[tokio::test]
async fn compaction_drops_the_membership_entries_it_removes() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    let written = log(1, 1, 200, &[10, 120, 180]);
    store.append(&written).await.unwrap();
    wait_durable(&store, 200).await;
    assert!(save_snapshot(&store, 1, 150, &snapshot_data(150, 300), 100).await);
    store.compact(LogIndex(151)).await.unwrap();
    let expected = memberships_of(&written);
    // Entries below 151 left the log at once, and their memberships with them.
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.entries[0].log_id.index, LogIndex(151));
    assert_eq!(restored.memberships, expected[2..]);

    // Compaction removes whole segments: after a reopen the log may start lower again, and
    // reports the membership entries among whatever entries it holds.
    let store = reopen(&fs, store).await;
    let restored = store.restore().await.unwrap();
    let first = restored.entries[0].log_id.index;
    assert!(first <= LogIndex(151), "{first}");
    let held: Vec<_> = expected
        .iter()
        .filter(|(id, _)| id.index >= first)
        .cloned()
        .collect();
    assert_eq!(restored.memberships, held);
    assert!(held.iter().any(|(id, _)| id.index == LogIndex(180)));
    store.close().await;
}

#[tokio::test]
async fn a_snapshot_keeps_a_joint_membership_with_learners_and_addresses_across_reopen() {
    let fs = SimFs::new();
    let store = open_sim(&fs, small_options());
    store.append(&log(1, 1, 30, &[])).await.unwrap();
    wait_durable(&store, 30).await;
    let data = snapshot_data(25, 500);
    let joint = membership(2);
    assert!(joint.is_joint() && joint.learners().count() == 0);
    let with_learner = joint
        .leave_joint()
        .apply(&MembershipChange::add_learner(NodeId(9), "10.0.0.9:7000"))
        .unwrap()
        .apply(&MembershipChange::default().remove(NodeId(1)))
        .unwrap();
    assert!(with_learner.is_joint() && with_learner.is_learner(NodeId(9)));
    let meta = snapshots::meta(LogId::new(1, 25), with_learner.clone(), &data);
    assert!(
        snapshots::write(&store, meta.clone(), &data, 128)
            .await
            .unwrap()
    );
    assert_eq!(store.snapshot_meta(), Some(meta.clone()));

    let store = reopen(&fs, store).await;
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.snapshot, Some(meta));
    let kept = restored.snapshot.unwrap().membership;
    assert_eq!(kept, with_learner);
    assert_eq!(kept.address(NodeId(9)), Some("10.0.0.9:7000"));
    store.close().await;
}
