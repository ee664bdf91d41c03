//! Real `raft-kv serve` processes: an mTLS cluster with an API token survives a SIGKILL of its
//! leader and a restart, takes snapshots, and reloads a certificate on SIGHUP; `serve` refuses
//! to start on an address others can reach without TLS or a secret (and starts with
//! `--insecure`, saying so), and with a certificate that names another node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use common::free_addresses;
use common::tls::{CLUSTER, HttpsClient, NodeCertificates, Pki, TOKEN, Validity, token};
use hyper::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// `raft-kv serve` with these arguments, stdout and stderr piped, errors and warnings logged.
fn serve(args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raft-kv"));
    command
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RAFT_KV_SECRET")
        .env_remove("RAFT_KV_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&arg| arg.to_owned()).collect()
}

/// Runs `serve` and expects it to exit at once with status 1; its stderr.
async fn refused(args: &[String]) -> String {
    let output = tokio::time::timeout(Duration::from_secs(10), serve(args).output())
        .await
        .expect("serve exits at once")
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits for `ready` on the child's stdout (panics if it exits first).
async fn wait_ready(child: &mut Child) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("ready") {
                return true;
            }
        }
        false
    };
    let ready = tokio::time::timeout(Duration::from_secs(20), ready).await;
    assert_eq!(ready.ok(), Some(true), "serve printed ready");
}

/// The cluster's processes, by node id.
struct Cluster<'a> {
    pki: &'a Pki,
    dir: &'a Path,
    addresses: Vec<String>,
    children: BTreeMap<usize, Child>,
}

impl Cluster<'_> {
    fn start(&mut self, id: usize) {
        let mut args = strings(&["--id", &id.to_string(), "--listen", &self.addresses[id - 1]]);
        args.extend(strings(&[
            "--cluster-id",
            CLUSTER,
            "--snapshot-threshold",
            "16384",
        ]));
        args.extend(strings(&["--tls-reload-secs", "0"]));
        let files = [
            ("--tls-ca", "ca.pem".to_owned()),
            ("--tls-cert", format!("node-{id}.pem")),
            ("--tls-key", format!("node-{id}.key")),
        ];
        for (flag, file) in files {
            args.push(flag.to_owned());
            args.push(self.pki.path(&file).display().to_string());
        }
        args.push("--data-dir".to_owned());
        args.push(self.dir.join(format!("node-{id}")).display().to_string());
        for (peer, address) in self.addresses.iter().enumerate() {
            if peer + 1 != id {
                args.push("--peer".to_owned());
                args.push(format!("{}={address}", peer + 1));
            }
        }
        let mut command = serve(&args);
        command
            .env("RAFT_KV_API_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "error");
        self.children.insert(id, command.spawn().unwrap());
    }

    async fn kill(&mut self, id: usize) {
        self.children.remove(&id).unwrap().kill().await.unwrap();
    }

    fn id_of(&self, address: &str) -> usize {
        self.addresses.iter().position(|a| a == address).unwrap() + 1
    }
}

async fn write(client: &HttpsClient, addresses: &[String], keys: std::ops::Range<u32>) {
    for i in keys {
        let value = format!("value-{i}-{}", "x".repeat(200));
        let path = format!("/kv/key-{i}");
        let answer = client
            .request_cluster(addresses, Method::PUT, &path, &token(), value.as_bytes())
            .await
            .expect("a put is answered");
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    }
}

async fn check(client: &HttpsClient, addresses: &[String], keys: std::ops::Range<u32>) {
    for i in keys {
        let path = format!("/kv/key-{i}");
        let answer = client
            .request_cluster(addresses, Method::GET, &path, &[], b"")
            .await
            .unwrap();
        assert_eq!(
            answer.text(),
            format!("value-{i}-{}", "x".repeat(200)),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mtls_cluster_of_processes_survives_a_leader_kill_snapshots_and_reloads_on_sighup() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(3));
    let mut cluster = Cluster {
        pki: &pki,
        dir: dir.path(),
        addresses: free_addresses(3),
        children: BTreeMap::new(),
    };
    for id in 1..=3 {
        cluster.start(id);
    }
    let client = pki.client();
    let addresses = cluster.addresses.clone();
    client.wait_for_leader(&addresses).await;
    write(&client, &addresses, 0..60).await;
    let unauthorized = client
        .request(
            &addresses[0],
            Method::PUT,
            "/kv/key-0",
            &[],
            Bytes::from("x"),
        )
        .await
        .unwrap();
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);

    // SIGKILL the leader; the others go on; it comes back and catches up over mTLS.
    let leader = cluster.id_of(&client.wait_for_leader(&addresses).await);
    cluster.kill(leader).await;
    let survivors: Vec<String> = (1..=3)
        .filter(|&id| id != leader)
        .map(|id| addresses[id - 1].clone())
        .collect();
    write(&client, &survivors, 60..120).await;
    cluster.start(leader);
    let back = addresses[leader - 1].clone();
    let mut caught_up = false;
    for _ in 0..300 {
        let commit = client
            .status(&survivors[0])
            .await
            .and_then(|s| s["commit_index"].as_u64());
        let applied = client
            .status(&back)
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
    check(&client, &addresses, 0..120).await;
    let snapshots: Vec<u64> = {
        let mut indexes = Vec::new();
        for address in &addresses {
            let status = client.status(address).await.unwrap();
            indexes.push(status["snapshot_index"].as_u64().unwrap());
        }
        indexes
    };
    assert!(
        snapshots.iter().any(|&index| index > 0),
        "snapshots taken: {snapshots:?}"
    );

    // A rotated certificate is served after SIGHUP (the files are not watched here).
    let before = client.certificate(&addresses[0]).await.unwrap();
    pki.write("node-1", &pki.ca.node(1, Validity::Current));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.certificate(&addresses[0]).await.unwrap(), before);
    let pid = cluster.children[&1].id().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rotated = false;
    for _ in 0..50 {
        if client.certificate(&addresses[0]).await.unwrap() != before {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "SIGHUP reloaded the certificate");
    write(&client, &addresses, 120..125).await;
    check(&client, &addresses, 120..125).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_reachable_addresses_without_tls_or_secret_and_starts_with_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node-1").display().to_string();
    let loopback = free_addresses(1).remove(0);
    let port = loopback.rsplit_once(':').unwrap().1.to_owned();
    let everywhere = format!("0.0.0.0:{port}");
    let base = strings(&["--id", "1", "--data-dir", &data_dir]);
    let with = |more: &[&str]| {
        let mut args = base.clone();
        args.extend(strings(more));
        args
    };

    let listen = refused(&with(&["--listen", &everywhere, "--advertise", &loopback])).await;
    assert!(
        listen.contains(&format!("--listen {everywhere} is not a loopback address")),
        "{listen}"
    );
    assert!(listen.contains("--insecure"), "{listen}");
    let peer = refused(&with(&[
        "--listen",
        &loopback,
        "--peer",
        "2=192.0.2.7:7001",
    ]))
    .await;
    assert!(peer.contains("--peer 2 at 192.0.2.7:7001"), "{peer}");
    let join = refused(&with(&[
        "--listen",
        &loopback,
        "--join",
        "http://192.0.2.7:7001",
    ]))
    .await;
    assert!(join.contains("--join 192.0.2.7:7001"), "{join}");
    assert!(
        !dir.path().join("node-1").exists(),
        "a refused node touched no data"
    );

    // --insecure: it starts, on every interface, and says what it is doing.
    let mut child = serve(&with(&[
        "--listen",
        &everywhere,
        "--advertise",
        &loopback,
        "--insecure",
    ]))
    .spawn()
    .unwrap();
    wait_ready(&mut child).await;
    let status = common::status(&loopback).await.expect("the node answers");
    assert_eq!(status["id"], 1);
    child.kill().await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(
        stderr.contains("WARN")
            && stderr.contains("--insecure: serving the peer routes unprotected"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_certificate_that_names_another_node() {
    let (dir, pki) = (tempfile::tempdir().unwrap(), Pki::new(2));
    let address = free_addresses(1).remove(0);
    let path = |name: &str| pki.path(name).display().to_string();
    let data_dir = dir.path().join("node-3").display().to_string();
    let stderr = refused(&strings(&[
        "--id",
        "3",
        "--listen",
        &address,
        "--data-dir",
        &data_dir,
        "--cluster-id",
        CLUSTER,
        "--tls-ca",
        &path("ca.pem"),
        "--tls-cert",
        &path("node-2.pem"),
        "--tls-key",
        &path("node-2.key"),
    ]))
    .await;
    assert!(
        stderr.contains(&format!(
            "does not name node 3: it must carry the DNS name node-3.{CLUSTER}"
        )),
        "{stderr}"
    );
    // And an http:// peer with TLS on is a clear error too.
    let stderr = refused(&strings(&[
        "--id",
        "1",
        "--listen",
        &address,
        "--data-dir",
        &data_dir,
        "--cluster-id",
        CLUSTER,
        "--tls-ca",
        &path("ca.pem"),
        "--tls-cert",
        &path("node-1.pem"),
        "--tls-key",
        &path("node-1.key"),
        "--peer",
        "2=http://127.0.0.1:1",
    ]))
    .await;
    assert!(stderr.contains("use https:// or HOST:PORT"), "{stderr}");
}
