//! Crash consistency under simulated power loss: writers append continuously (segments roll
//! over, groups of many appends share one sync) and the power fails at a random moment; on
//! reopen every entry the store had reported durable is present and intact.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{entries, open_sim, read_all};
use raft_core::{LogIndex, LogStore};
use raft_storage_fs::FsOptions;
use raft_storage_fs::testing::SimFs;

/// SplitMix64, for the test's own choices.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_at_random_moments_keeps_every_durable_entry() {
    let options = FsOptions::default()
        .segment_bytes(16 << 10)
        .cache_bytes(4 << 10);
    for iteration in 0..150u64 {
        let seed = mix(iteration);
        let fs = SimFs::new();
        let store = open_sim(&fs, options.clone());
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut next = 1;
                loop {
                    let count = 1 + next % 23;
                    if store
                        .append(&entries(1, next, next + count - 1))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    next += count;
                    // Stay within a few thousand entries of the disk.
                    while next - store.durable().borrow().index.0 > 4000 {
                        tokio::time::sleep(Duration::from_micros(100)).await;
                        if store.poisoned().is_some() {
                            return;
                        }
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        // Let it run for a random while, then cut the power.
        tokio::time::sleep(Duration::from_micros(200 + seed % 20_000)).await;
        let durable = store.durable().borrow().index;
        fs.power_loss(seed);
        let _ = writer.await;
        drop(store);

        let store = open_sim(&fs, options.clone());
        let last = store.last_log_id().index;
        assert!(
            last >= durable,
            "iteration {iteration}: durable {durable} lost, log ends at {last}"
        );
        // Everything that survived is intact (the scanner checked every checksum), in order.
        assert_eq!(
            read_all(&store, 1, last.0).await,
            entries(1, 1, last.0),
            "iteration {iteration}"
        );
        // And the log takes appends again where it ends.
        store
            .append(&entries(1, last.0 + 1, last.0 + 5))
            .await
            .unwrap();
        assert_eq!(store.last_log_id().index, LogIndex(last.0 + 5));
    }
}
