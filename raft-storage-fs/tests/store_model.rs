//! Random operation sequences against an in-memory model, with snapshots, compaction (also past
//! the end of the log, and covering most of the segment being written, which retires it), clean
//! reopens and simulated power losses (SimFs) at random moments:
//! every entry reported durable survives (or a snapshot covers it), every finished snapshot
//! survives, nothing survives that was never written, reads always match the model, and
//! `restore` reports exactly the membership entries among the live ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;

use common::{latest_snapshot, open_sim, save_snapshot, small_options, snapshot_data};
use proptest::prelude::*;
use raft_core::{Entry, HardState, LogId, LogIndex, LogStore, Membership, NodeId, Payload, Term};
use raft_storage_fs::testing::SimFs;
use raft_storage_fs::{FsLogStore, FsOptions};

#[derive(Clone, Debug)]
enum Op {
    /// Appends `count` entries, in a new term when `new_term`.
    Append {
        count: u64,
        new_term: bool,
    },
    /// Truncates the last `back` entries.
    Truncate {
        back: u64,
    },
    /// Compacts `ahead` entries past the first (at most up to the snapshot).
    Compact {
        ahead: u64,
    },
    /// Saves a snapshot `back` entries before the last one, or, when `beyond`, one from a
    /// leader `back` entries past the log's end (which then replaces the log, as a follower
    /// does: truncate the log, compact past the snapshot).
    Snapshot {
        back: u64,
        beyond: bool,
    },
    Read {
        from: u64,
        len: u64,
    },
    SaveHardState {
        commit: u64,
    },
    WaitDurable,
    Reopen,
    PowerLoss {
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..40, any::<bool>()).prop_map(|(count, new_term)| Op::Append { count, new_term }),
        2 => (0u64..30).prop_map(|back| Op::Truncate { back }),
        2 => (0u64..60).prop_map(|ahead| Op::Compact { ahead }),
        1 => (0u64..40, any::<bool>()).prop_map(|(back, beyond)| Op::Snapshot { back, beyond }),
        3 => (0u64..300, 0u64..80).prop_map(|(from, len)| Op::Read { from, len }),
        1 => (0u64..300).prop_map(|commit| Op::SaveHardState { commit }),
        2 => Just(Op::WaitDurable),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(|seed| Op::PowerLoss { seed }),
    ]
}

/// Like [`op`], with snapshots near the end of the log and compactions far more often.
fn compacting_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u64..40, any::<bool>()).prop_map(|(count, new_term)| Op::Append { count, new_term }),
        1 => (0u64..30).prop_map(|back| Op::Truncate { back }),
        3 => (20u64..200).prop_map(|ahead| Op::Compact { ahead }),
        3 => (0u64..10, proptest::bool::weighted(0.1))
            .prop_map(|(back, beyond)| Op::Snapshot { back, beyond }),
        2 => (0u64..300, 0u64..80).prop_map(|(from, len)| Op::Read { from, len }),
        1 => (0u64..300).prop_map(|commit| Op::SaveHardState { commit }),
        2 => Just(Op::WaitDurable),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(|seed| Op::PowerLoss { seed }),
    ]
}

/// The common entries, with a membership (naming its term and index) every eleventh index.
fn entry(term: u64, index: u64) -> Entry {
    if index.is_multiple_of(11) {
        let membership = Membership::new([NodeId(term), NodeId(index)])
            .with_address(NodeId(term), format!("node-{term}:{index}"));
        Entry {
            log_id: LogId::new(term, index),
            payload: Payload::Membership(membership),
        }
    } else {
        common::entry(term, index)
    }
}

/// `restore` reports the membership entries among the model's live entries.
async fn check_memberships(store: &FsLogStore, model: &Model) {
    let expected: Vec<(LogId, Membership)> = model
        .slice(model.first, model.last())
        .into_iter()
        .filter_map(|e| match e.payload {
            Payload::Membership(m) => Some((e.log_id, m)),
            _ => None,
        })
        .collect();
    assert_eq!(store.restore().await.unwrap().memberships, expected);
}

/// What the log must hold.
struct Model {
    /// The entries of the log by index, compacted ones included (a reopened log may hold some
    /// again: compaction is by whole segments).
    entries: BTreeMap<u64, Entry>,
    /// The first live entry (the next one, when the log is empty).
    first: u64,
    /// The index the next append starts at.
    next: u64,
    term: u64,
    hard_state: HardState,
    /// Every version ever appended at each index (a crash may keep one a later truncation
    /// removed, if the truncation was not yet durable).
    versions: BTreeMap<u64, Vec<Entry>>,
    /// The latest snapshot: (term, index).
    snapshot: Option<(u64, u64)>,
}

impl Model {
    fn last(&self) -> u64 {
        self.next - 1
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.map_or(0, |(_, index)| index)
    }

    fn slice(&self, first: u64, last: u64) -> Vec<Entry> {
        let first = first.max(self.first);
        let last = last.min(self.last());
        if first > last {
            return Vec::new();
        }
        self.entries
            .range(first..=last)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Removes every entry at `from` and above.
    fn remove_from(&mut self, from: u64) {
        self.entries.split_off(&from);
        self.next = self.next.min(from);
    }
}

async fn run(ops: Vec<Op>, options: FsOptions) {
    let fs = SimFs::new();
    let mut store = open_sim(&fs, options.clone());
    let mut model = Model {
        entries: BTreeMap::new(),
        first: 1,
        next: 1,
        term: 1,
        hard_state: HardState::default(),
        versions: BTreeMap::new(),
        snapshot: None,
    };
    for op in ops {
        match op {
            Op::Append { count, new_term } => {
                if new_term {
                    model.term += 1;
                }
                let first = model.next;
                let batch: Vec<Entry> = (first..first + count)
                    .map(|i| entry(model.term, i))
                    .collect();
                store.append(&batch).await.unwrap();
                for e in batch {
                    let index = e.log_id.index.0;
                    model.versions.entry(index).or_default().push(e.clone());
                    model.entries.insert(index, e);
                }
                model.next = first + count;
            }
            Op::Truncate { back } => {
                let from = model.next.saturating_sub(back).max(model.first);
                store.truncate(LogIndex(from)).await.unwrap();
                model.remove_from(from);
                assert!(store.durable().borrow().index.0 < from);
            }
            Op::Compact { ahead } => {
                let before = (model.first + ahead).min(model.snapshot_index() + 1);
                store.compact(LogIndex(before)).await.unwrap();
                model.first = model.first.max(before);
                model.next = model.next.max(model.first);
            }
            Op::Snapshot { back, beyond } => {
                snapshot(&store, &mut model, back, beyond).await;
            }
            Op::Read { from, len } => {
                let got = store
                    .read(LogIndex(from), LogIndex(from + len))
                    .await
                    .unwrap();
                assert_eq!(got, model.slice(from, from + len), "read {from}+{len}");
            }
            Op::SaveHardState { commit } => {
                let hard_state = HardState {
                    term: Term(model.term),
                    vote: Some(NodeId(commit % 3)),
                    commit: LogIndex(commit),
                };
                store.save_hard_state(hard_state).await.unwrap();
                model.hard_state = hard_state;
            }
            Op::WaitDurable => {
                common::wait_durable(&store, model.last()).await;
                check_memberships(&store, &model).await;
            }
            Op::Reopen => {
                store.close().await;
                drop(store);
                store = open_sim(&fs, options.clone());
                assert_eq!(store.last_log_id().index.0, model.last());
                // Reopened, the log starts at its first kept segment (compaction is by segment).
                model.first = store.first_index().0;
                check_snapshot(&store, &model).await;
                check_memberships(&store, &model).await;
            }
            Op::PowerLoss { seed } => {
                let durable = store.durable().borrow().index.0;
                fs.power_loss(seed);
                drop(store);
                store = open_sim(&fs, options.clone());
                check_recovered(&store, &mut model, durable).await;
                check_memberships(&store, &model).await;
            }
        }
        assert_eq!(store.last_log_id().index.0, model.last());
        assert_eq!(store.first_index().0, model.first);
        assert_eq!(store.hard_state(), model.hard_state);
        let snapshot_index = store.snapshot_meta().map_or(0, |m| m.last_log_id.index.0);
        assert_eq!(snapshot_index, model.snapshot_index());
    }
}

/// Saves a snapshot (see [`Op::Snapshot`]).
async fn snapshot(store: &FsLogStore, model: &mut Model, back: u64, beyond: bool) {
    let (term, index) = if beyond {
        (model.term, model.next + back)
    } else {
        let index = model.last().saturating_sub(back);
        match model.entries.get(&index) {
            Some(e) if index >= model.first => (e.log_id.term.0, index),
            _ => return,
        }
    };
    let data = snapshot_data(index, (index * 37 % 3000) as usize);
    let chunk = 1 + (back * 131 % 1000) as usize;
    let newer = index > model.snapshot_index();
    assert_eq!(save_snapshot(store, term, index, &data, chunk).await, newer);
    if !newer {
        return;
    }
    model.snapshot = Some((term, index));
    if beyond {
        // The log ends before the snapshot: the snapshot replaces it.
        if model.first <= model.last() {
            store.truncate(LogIndex(model.first)).await.unwrap();
            model.remove_from(model.first);
        }
        store.compact(LogIndex(index + 1)).await.unwrap();
        model.first = index + 1;
        model.next = index + 1;
    }
}

/// The store's snapshot is the model's, with the data written for it.
async fn check_snapshot(store: &FsLogStore, model: &Model) {
    let latest = latest_snapshot(store).await;
    match (latest, model.snapshot) {
        (None, None) => {}
        (Some((meta, data)), Some((term, index))) => {
            assert_eq!(meta.last_log_id, LogId::new(term, index));
            assert_eq!(data, snapshot_data(index, (index * 37 % 3000) as usize));
        }
        (latest, expected) => panic!("snapshot {latest:?}, expected {expected:?}"),
    }
}

/// After a power loss: the snapshot is the last one saved; every durable entry the snapshot does
/// not cover is there, every other surviving entry is a version that was appended at its index;
/// the model continues from what survived, as a restarting node would.
async fn check_recovered(store: &FsLogStore, model: &mut Model, durable: u64) {
    check_snapshot(store, model).await;
    let covered = model.snapshot_index();
    let first = store.first_index().0;
    let last = store.last_log_id().index.0;
    assert!(
        last.max(covered) >= durable,
        "durable entry {durable} lost; log ends at {last}, snapshot at {covered}"
    );
    // Compaction is by whole segments and may be undone; a log whose every segment was removed
    // (a compaction past its end, cut short) opens empty after the snapshot.
    let emptied = last < first && first == covered + 1;
    assert!(
        first <= model.first.max(1) || emptied,
        "first {first} after {}",
        model.first
    );
    assert!(
        first <= covered + 1,
        "first {first} after snapshot {covered}"
    );
    let recovered = store.read(LogIndex(first), LogIndex(last)).await.unwrap();
    assert_eq!(recovered.len() as u64, last + 1 - first);
    for e in &recovered {
        let index = e.log_id.index.0;
        if index <= durable && index > covered {
            assert_eq!(
                Some(e),
                model.entries.get(&index),
                "durable entry {index} changed"
            );
        }
        let known = model.versions.get(&index).is_some_and(|v| v.contains(e));
        assert!(known, "entry {index} was never appended: {e:?}");
    }
    // Continue from the recovered log.
    model.entries.split_off(&first);
    model
        .entries
        .extend(recovered.into_iter().map(|e| (e.log_id.index.0, e)));
    model.first = first;
    model.next = last + 1;
    model.term = model.term.max(store.last_log_id().term.0);
    // A log that ends before the snapshot or disagrees with it is replaced by it (the engine's
    // restart: truncate the log, compact past the snapshot).
    if let Some((term, index)) = model.snapshot {
        let disagrees = model
            .entries
            .get(&index)
            .is_some_and(|e| index >= first && e.log_id.term.0 != term);
        if last < index || disagrees {
            if first <= last {
                store.truncate(LogIndex(first)).await.unwrap();
                model.remove_from(first);
            }
            store.compact(LogIndex(index + 1)).await.unwrap();
            model.first = index + 1;
            model.next = index + 1;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model_across_reopens_and_power_losses(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops, small_options()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Larger segments and frequent snapshots: compactions often cover most of the segment
    /// being written, which retires it (the next append starts a new segment).
    #[test]
    fn random_operations_match_the_model_when_compactions_retire_segments(
        ops in proptest::collection::vec(compacting_op(), 1..80)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops, small_options().segment_bytes(8 << 10)));
    }
}
