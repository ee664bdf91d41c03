//! Crash consistency with a real process: a child appends to a real log directory and prints
//! every index the store reports durable; the parent kills it with SIGKILL at a random moment
//! and reopens the log: every reported index must be there, intact.
//!
//! The child is this same test binary, re-run with `CHILD_ENV` set (see `child_writer`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // the child reports to its parent on stdout

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{entries, read_all};
use raft_core::LogStore;
use raft_storage_fs::{FsLogStore, FsOptions};

const CHILD_ENV: &str = "RAFT_STORAGE_FS_CRASH_CHILD_DIR";

fn options() -> FsOptions {
    FsOptions::default()
        .segment_bytes(64 << 10)
        .cache_bytes(16 << 10)
}

/// The child's side: only does anything when the parent started it with `CHILD_ENV`; then it
/// appends forever, printing each durable index, until it is killed.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = FsLogStore::open(&dir, options()).unwrap();
        let mut next = store.last_log_id().index.0 + 1;
        let mut durable = store.durable();
        loop {
            let count = 1 + next % 31;
            store
                .append(&entries(1, next, next + count - 1))
                .await
                .unwrap();
            next += count;
            durable.changed().await.unwrap();
            let index = durable.borrow_and_update().index.0;
            println!("durable {index}");
        }
    });
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_nothing_reported_durable() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut reported = 0u64;
    for iteration in 0..30u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            let mut last = 0;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(index) = line.strip_prefix("durable ") {
                    last = index.trim().parse().unwrap_or(last);
                }
            }
            last
        });
        tokio::time::sleep(Duration::from_millis(30 + (iteration * 37) % 150)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reported = reported.max(lines.join().unwrap());

        let store = FsLogStore::open(dir.path(), options()).unwrap();
        let last = store.last_log_id().index.0;
        assert!(
            last >= reported,
            "iteration {iteration}: reported {reported} lost, log ends at {last}"
        );
        assert_eq!(read_all(&store, 1, last).await, entries(1, 1, last));
        store.close().await;
    }
    assert!(reported > 0, "the child never reported a durable entry");
}
