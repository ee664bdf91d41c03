//! CI runs the example: `ledger demo` end to end (three node processes, the leader killed and
//! restarted, the books checked) in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_keeps_the_books_through_a_leader_crash() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .arg("demo")
        .arg("--dir")
        .arg(dir.path().join("cluster"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The demo takes a few seconds and bounds itself at 75 s (then it kills its nodes and
    // fails); this bound is only a backstop.
    let output = tokio::time::timeout(Duration::from_secs(120), demo.wait_with_output())
        .await
        .expect("the demo finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("as deposited"), "{stdout}");
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");
}
