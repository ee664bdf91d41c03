//! Real processes: `raft-kv serve` nodes on loopback, killed with SIGKILL and restarted; every
//! acknowledged write is still readable and every incr applied once. Also a graceful SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{free_addresses, request_cluster, session, status, wait_for_leader};
use hyper::{Method, StatusCode};
use tokio::process::{Child, Command};

/// The cluster's processes, by node id (1-based).
struct Processes {
    addresses: Vec<String>,
    dir: PathBuf,
    children: BTreeMap<usize, Child>,
}

impl Processes {
    fn new(dir: &Path, n: usize) -> Processes {
        Processes {
            addresses: free_addresses(n),
            dir: dir.to_owned(),
            children: BTreeMap::new(),
        }
    }

    fn start(&mut self, id: usize) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_raft-kv"));
        command
            .arg("serve")
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(&self.addresses[id - 1])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{id}")))
            // Small snapshots, so restarts also go through snapshot files.
            .arg("--snapshot-threshold")
            .arg("16384")
            // Errors (a failed bind, a damaged log) show in the test output.
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if id == 3 {
            // One node with sparse segments (`--no-zero-fill`): the checks read both kinds of
            // log file, and recovery from sparse ones runs whenever node 3 is a leader killed.
            command.arg("--no-zero-fill");
        }
        for (peer, address) in self.addresses.iter().enumerate() {
            if peer + 1 != id {
                command.arg("--peer").arg(format!("{}={address}", peer + 1));
            }
        }
        self.children
            .insert(id, command.spawn().expect("raft-kv starts"));
    }

    async fn kill(&mut self, id: usize) {
        let mut child = self.children.remove(&id).unwrap();
        child.kill().await.unwrap(); // SIGKILL
    }

    fn id_of(&self, address: &str) -> usize {
        self.addresses.iter().position(|a| a == address).unwrap() + 1
    }
}

/// What clients were told: acknowledged keys and the incr count.
#[derive(Default)]
struct Acknowledged {
    keys: BTreeMap<String, String>,
    incrs: u64,
}

async fn write_keys(cluster: &Processes, acked: &mut Acknowledged, range: std::ops::Range<u32>) {
    for i in range {
        let (key, value) = (format!("key-{i}"), format!("value-{i}-{}", "x".repeat(200)));
        let answer = request_cluster(
            &cluster.addresses,
            Method::PUT,
            &format!("/kv/{key}"),
            &[],
            value.as_bytes(),
        )
        .await
        .expect("a put is answered");
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
        acked.keys.insert(key, value);
    }
}

/// Incrs of client 77, requests `range`; each answer must be the next count.
async fn incr(cluster: &Processes, acked: &mut Acknowledged, range: std::ops::RangeInclusive<u64>) {
    for request in range {
        let answer = request_cluster(
            &cluster.addresses,
            Method::POST,
            "/kv/counter/incr",
            &session(77, request),
            b"",
        )
        .await
        .expect("an incr is answered");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        // Each distinct request counts once, whether this answer was the first or a retry's.
        assert_eq!(answer.text(), request.to_string(), "request {request}");
        acked.incrs = request;
    }
}

/// Every acknowledged key is readable (linearizably, through the leader).
async fn check(cluster: &Processes, acked: &Acknowledged) {
    for (key, value) in &acked.keys {
        let answer = request_cluster(
            &cluster.addresses,
            Method::GET,
            &format!("/kv/{key}"),
            &[],
            b"",
        )
        .await
        .expect("a read is answered");
        assert_eq!(answer.status, StatusCode::OK, "{key}");
        assert_eq!(answer.text(), *value, "{key}");
    }
    let counter = request_cluster(&cluster.addresses, Method::GET, "/kv/counter", &[], b"")
        .await
        .unwrap();
    if acked.incrs == 0 {
        assert_eq!(counter.status, StatusCode::NOT_FOUND);
    } else {
        assert_eq!(
            counter.text(),
            acked.incrs.to_string(),
            "every incr applied once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_write_and_incr_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Processes::new(dir.path(), 3);
    for id in 1..=3 {
        cluster.start(id);
    }
    let mut acked = Acknowledged::default();
    wait_for_leader(&cluster.addresses).await;
    write_keys(&cluster, &mut acked, 0..60).await;
    incr(&cluster, &mut acked, 1..=10).await;

    // SIGKILL the leader; the others elect a new one and still know every request.
    let leader = cluster.id_of(&wait_for_leader(&cluster.addresses).await);
    cluster.kill(leader).await;
    let survivors: Vec<String> = (1..=3)
        .filter(|&id| id != leader)
        .map(|id| cluster.addresses[id - 1].clone())
        .collect();
    wait_for_leader(&survivors).await;
    // The client never saw the answer to request 10, say, and retries it.
    let retry = request_cluster(
        &survivors,
        Method::POST,
        "/kv/counter/incr",
        &session(77, 10),
        b"",
    )
    .await
    .unwrap();
    assert_eq!(
        (retry.text(), retry.duplicate),
        ("10".to_owned(), Some(true))
    );
    write_keys(&cluster, &mut acked, 60..120).await;
    incr(&cluster, &mut acked, 11..=15).await;
    check(&cluster, &acked).await;

    // The killed node comes back and catches up.
    cluster.start(leader);
    let back = cluster.addresses[leader - 1].clone();
    let mut caught_up = false;
    for _ in 0..300 {
        let commit = status(&survivors[0])
            .await
            .and_then(|s| s["commit_index"].as_u64());
        let applied = status(&back)
            .await
            .and_then(|s| s["applied_index"].as_u64());
        if let (Some(commit), Some(applied)) = (commit, applied)
            && applied >= commit
        {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the restarted node caught up");
    let spot_checks = ["key-0", "key-59", "key-60", "key-119"]; // before and while it was down
    for key in spot_checks {
        let value = &acked.keys[key];
        let stale = common::request(
            &back,
            Method::GET,
            &format!("/kv/{key}?stale=true"),
            &[],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            stale.text(),
            *value,
            "the restarted node caught up on {key}"
        );
    }

    // The whole cluster dies at once and restarts from its disks.
    for id in 1..=3 {
        cluster.kill(id).await;
    }
    for id in 1..=3 {
        cluster.start(id);
    }
    wait_for_leader(&cluster.addresses).await;
    check(&cluster, &acked).await;
    incr(&cluster, &mut acked, 16..=17).await;
    check(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_gracefully_and_its_data_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Processes::new(dir.path(), 1);
    cluster.start(1);
    wait_for_leader(&cluster.addresses).await;
    let mut acked = Acknowledged::default();
    write_keys(&cluster, &mut acked, 0..5).await;

    let mut child = cluster.children.remove(&1).unwrap();
    let pid = child.id().unwrap();
    let sent = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the node stops within 20 s")
        .unwrap();
    assert!(exit.success(), "graceful exit: {exit:?}");

    cluster.start(1);
    wait_for_leader(&cluster.addresses).await;
    check(&cluster, &acked).await;
}
