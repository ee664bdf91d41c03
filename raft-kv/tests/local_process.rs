//! `raft-kv local` as a process: it prints `ready` only once its nodes know their leader, so a
//! write sent right after it is applied (or redirected to the leader), never refused for want
//! of one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use common::request;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A base port whose next two ports are free too.
fn free_consecutive_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let rest: Vec<_> = (1..n)
            .map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_says_ready_only_when_a_write_right_after_it_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_consecutive_ports(3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
        .arg("local")
        .arg("--nodes")
        .arg("3")
        .arg("--base-port")
        .arg(base.to_string())
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("ready") {
                return;
            }
        }
        panic!("raft-kv local exited before ready");
    };
    tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("ready within a minute");

    // At once, to every node: applied by the leader, redirected by the followers.
    for port in base..base + 3 {
        let address = format!("127.0.0.1:{port}");
        let put = request(
            &address,
            Method::PUT,
            "/kv/first",
            &[],
            Bytes::from_static(b"1"),
        )
        .await
        .unwrap();
        assert!(
            put.status == StatusCode::NO_CONTENT || put.status == StatusCode::TEMPORARY_REDIRECT,
            "{address}: {} {}",
            put.status,
            put.text()
        );
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
