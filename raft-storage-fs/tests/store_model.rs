//! Random operation sequences against an in-memory model, with clean reopens and simulated
//! power losses (SimFs) at random moments: every entry reported durable survives, nothing
//! survives that was never written, and reads always match the model.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;

use common::{entry, open_sim, small_options};
use proptest::prelude::*;
use raft_core::{Entry, HardState, LogIndex, LogStore, NodeId, Term};
use raft_storage_fs::FsLogStore;
use raft_storage_fs::testing::SimFs;

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
    /// Compacts `ahead` entries past the first.
    Compact {
        ahead: u64,
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
        1 => (0u64..60).prop_map(|ahead| Op::Compact { ahead }),
        3 => (0u64..300, 0u64..80).prop_map(|(from, len)| Op::Read { from, len }),
        1 => (0u64..300).prop_map(|commit| Op::SaveHardState { commit }),
        2 => Just(Op::WaitDurable),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(|seed| Op::PowerLoss { seed }),
    ]
}

/// What the log must hold.
struct Model {
    /// Every entry from index 1 (compaction only hides a prefix).
    entries: Vec<Entry>,
    first: u64,
    term: u64,
    hard_state: HardState,
    /// Every version ever appended at each index (a crash may keep one a later truncation
    /// removed, if the truncation was not yet durable).
    versions: BTreeMap<u64, Vec<Entry>>,
}

impl Model {
    fn last(&self) -> u64 {
        self.entries.len() as u64
    }

    fn slice(&self, first: u64, last: u64) -> Vec<Entry> {
        let first = first.max(self.first);
        let last = last.min(self.last());
        if first > last {
            return Vec::new();
        }
        self.entries[first as usize - 1..last as usize].to_vec()
    }
}

async fn run(ops: Vec<Op>) {
    let fs = SimFs::new();
    let mut store = open_sim(&fs, small_options());
    let mut model = Model {
        entries: Vec::new(),
        first: 1,
        term: 1,
        hard_state: HardState::default(),
        versions: BTreeMap::new(),
    };
    for op in ops {
        match op {
            Op::Append { count, new_term } => {
                if new_term {
                    model.term += 1;
                }
                let first = model.last() + 1;
                let batch: Vec<Entry> = (first..first + count)
                    .map(|i| entry(model.term, i))
                    .collect();
                store.append(&batch).await.unwrap();
                for e in &batch {
                    model
                        .versions
                        .entry(e.log_id.index.0)
                        .or_default()
                        .push(e.clone());
                }
                model.entries.extend(batch);
            }
            Op::Truncate { back } => {
                let from = (model.last() + 1).saturating_sub(back).max(model.first);
                store.truncate(LogIndex(from)).await.unwrap();
                model.entries.truncate(from as usize - 1);
                assert!(store.durable().borrow().index.0 < from);
            }
            Op::Compact { ahead } => {
                let before = (model.first + ahead).min(model.last() + 1);
                store.compact(LogIndex(before)).await.unwrap();
                model.first = model.first.max(before);
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
            }
            Op::Reopen => {
                store.close().await;
                drop(store);
                store = open_sim(&fs, small_options());
                assert_eq!(store.last_log_id().index.0, model.last());
                // Reopened, the log starts at its first kept segment (compaction is by segment).
                model.first = store.first_index().0;
            }
            Op::PowerLoss { seed } => {
                let durable = store.durable().borrow().index.0;
                fs.power_loss(seed);
                drop(store);
                store = open_sim(&fs, small_options());
                check_recovered(&store, &mut model, durable).await;
            }
        }
        assert_eq!(store.last_log_id().index.0, model.last());
        assert_eq!(store.hard_state(), model.hard_state);
    }
}

/// After a power loss: every durable entry is there, every other surviving entry is a version
/// that was appended at its index; the model continues from what survived.
async fn check_recovered(store: &FsLogStore, model: &mut Model, durable: u64) {
    let first = store.first_index().0;
    let last = store.last_log_id().index.0;
    assert!(
        last >= durable,
        "durable entry {durable} lost; log ends at {last}"
    );
    assert!(
        first <= model.first.max(1),
        "first {first} after {}",
        model.first
    );
    let recovered = store.read(LogIndex(first), LogIndex(last)).await.unwrap();
    assert_eq!(recovered.len() as u64, last + 1 - first);
    for e in &recovered {
        let index = e.log_id.index.0;
        if index <= durable {
            assert_eq!(
                e,
                &model.entries[index as usize - 1],
                "durable entry {index} changed"
            );
        }
        let known = model.versions.get(&index).is_some_and(|v| v.contains(e));
        assert!(known, "entry {index} was never appended: {e:?}");
    }
    // Continue from the recovered log: keep the model's view of entries below `first` (they
    // were compacted, not lost) and take the rest from the store.
    model.entries.truncate(first as usize - 1);
    model.entries.extend(recovered);
    model.first = first;
    model.term = model.term.max(store.last_log_id().term.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model_across_reopens_and_power_losses(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(ops));
    }
}
