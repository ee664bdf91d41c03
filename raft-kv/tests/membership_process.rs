//! Membership changes on real `raft-kv serve` processes on loopback: a cluster grows 3 -> 5
//! with `--join` and one promotion while a follower is SIGKILLed; shrinks 5 -> 3 removing its
//! leader; replaces a dead node (its disk lost) by an empty one; and the admin routes refuse
//! bad requests. Writes and exactly-once incrs run throughout; at the end every acknowledged
//! write is readable, every incr applied once, and every member agrees on the voters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{
    Answer, authority, bearer, free_addresses, ids, members, request, request_cluster, session,
    status, wait_for_leader,
};
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The founding nodes' snapshot threshold: small, so their logs are compacted and a joining
/// node catches up by InstallSnapshot. Joining nodes keep the default (64 MiB) and never take
/// a snapshot of their own here, so a snapshot on one of them was installed by the leader.
const SMALL_SNAPSHOTS: &str = "16384";
/// Entries kept below a snapshot when the log is compacted (raft-core's default
/// `snapshot_keep_entries`): once the leader's snapshot is past this, a new node can no longer
/// start from the leader's log.
const KEPT_BELOW_SNAPSHOT: u64 = 1024;
/// How long the workload retries one request before it reports it unanswered.
const OP_DEADLINE: Duration = Duration::from_secs(30);

/// How a node starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// With `--peer` for every other founder (ids `1..=founders`).
    Founder,
    /// With `--join http://<address of this member>`.
    Join(usize),
    /// With neither: a node that joined once restarts from its disk (its `joined` marker).
    Rejoin,
}

/// The cluster's processes, by node id (1-based).
struct Cluster {
    dir: PathBuf,
    addresses: Vec<String>,
    founders: usize,
    secret: Option<String>,
    children: BTreeMap<usize, Child>,
}

impl Cluster {
    /// `total` addresses; nodes `1..=founders` create the cluster.
    fn new(dir: &Path, total: usize, founders: usize, secret: Option<&str>) -> Cluster {
        Cluster {
            dir: dir.to_owned(),
            addresses: free_addresses(total),
            founders,
            secret: secret.map(str::to_owned),
            children: BTreeMap::new(),
        }
    }

    fn address(&self, id: usize) -> String {
        self.addresses[id - 1].clone()
    }

    fn addresses_of(&self, ids: &[usize]) -> Vec<String> {
        ids.iter().map(|&id| self.address(id)).collect()
    }

    fn id_of(&self, address: &str) -> usize {
        self.addresses.iter().position(|a| a == address).unwrap() + 1
    }

    fn data_dir(&self, id: usize) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    fn auth(&self) -> Vec<(&'static str, String)> {
        bearer(self.secret.as_deref())
    }

    fn spawn(&mut self, id: usize, how: Start) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_raft-kv"));
        command
            .arg("serve")
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(self.address(id))
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .env_remove("RAFT_KV_SECRET")
            // Errors (a failed bind, a refused join) show in the test output.
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(secret) = &self.secret {
            command.arg("--secret").arg(secret);
        }
        match how {
            Start::Founder => {
                command.arg("--snapshot-threshold").arg(SMALL_SNAPSHOTS);
                for peer in (1..=self.founders).filter(|&peer| peer != id) {
                    command
                        .arg("--peer")
                        .arg(format!("{peer}={}", self.address(peer)));
                }
            }
            Start::Join(via) => {
                command
                    .arg("--join")
                    .arg(format!("http://{}", self.address(via)));
            }
            Start::Rejoin => {}
        }
        let child = command.spawn().expect("raft-kv starts");
        assert!(
            self.children.insert(id, child).is_none(),
            "{id} runs already"
        );
    }

    fn start(&mut self, id: usize) {
        assert!(id <= self.founders);
        self.spawn(id, Start::Founder);
    }

    fn join(&mut self, id: usize, via: usize) {
        assert!(id > self.founders);
        self.spawn(id, Start::Join(via));
    }

    /// Starts a stopped node again from its data directory.
    fn restart(&mut self, id: usize) {
        let how = if id <= self.founders {
            Start::Founder
        } else {
            Start::Rejoin
        };
        self.spawn(id, how);
    }

    async fn kill(&mut self, id: usize) {
        let mut child = self.children.remove(&id).unwrap();
        child.kill().await.unwrap(); // SIGKILL
    }

    /// Waits until node `id` answers `/status`.
    async fn wait_serving(&self, id: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(&self.address(id)).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "node {id} does not answer\n{}",
                self.report().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Node `id`'s process has not exited.
    async fn assert_running(&mut self, id: usize) {
        let exit = self.children.get_mut(&id).unwrap().try_wait().unwrap();
        assert!(
            exit.is_none(),
            "node {id} exited: {exit:?}\n{}",
            self.report().await
        );
    }

    /// Every running node's `/status` and `/admin/members`, for failure messages.
    async fn report(&self) -> String {
        let mut report = String::from("cluster state:\n");
        for &id in self.children.keys() {
            let address = self.address(id);
            let status = status(&address).await;
            let members = members(&address, self.secret.as_deref()).await;
            let show = |v: Option<Value>| v.map_or("(no answer)".to_owned(), |v| v.to_string());
            let _ = writeln!(
                report,
                "  node {id} at {address}\n    status  {}\n    members {}",
                show(status),
                show(members)
            );
        }
        report
    }

    /// The leader all of `ids` agree on, once it is one of them.
    async fn leader_among(&self, ids: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leader = self.id_of(&wait_for_leader(&self.addresses_of(ids)).await);
            if ids.contains(&leader) {
                return leader;
            }
            if Instant::now() > deadline {
                panic!(
                    "{ids:?} still follow {leader}, not one of them\n{}",
                    self.report().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the committed membership (as the nodes `ask` see it) has `learners` as
    /// learners.
    async fn wait_for_learners(&self, ask: &[usize], learners: &[u64]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for &id in ask {
                if let Some(doc) = members(&self.address(id), self.secret.as_deref()).await {
                    let have = ids(&doc["committed"]["learners"]);
                    if learners.iter().all(|l| have.contains(l)) {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "learners {learners:?} were not added\n{}",
                    self.report().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the leader among `ids` has a snapshot past what it keeps of its log, so a
    /// node joining now needs InstallSnapshot.
    async fn wait_for_compaction(&self, ids: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self.address(self.leader_among(ids).await);
            let snapshot = status(&leader)
                .await
                .and_then(|s| s["snapshot_index"].as_u64())
                .unwrap_or(0);
            if snapshot > KEPT_BELOW_SNAPSHOT + 10 {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the leader never compacted its log\n{}",
                    self.report().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `id` has applied up to `slack` entries short of the leader's commit.
    async fn wait_caught_up(&self, id: usize, among: &[usize], slack: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self.address(self.leader_among(among).await);
            let commit = status(&leader)
                .await
                .and_then(|s| s["commit_index"].as_u64());
            let applied = status(&self.address(id))
                .await
                .and_then(|s| s["applied_index"].as_u64());
            if let (Some(commit), Some(applied)) = (commit, applied)
                && applied + slack >= commit
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("node {id} did not catch up\n{}", self.report().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node of `ids` has applied the same, committed, log (the same commit
    /// and applied index and the same number of keys).
    async fn wait_converged(&self, ids: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut seen = Vec::new();
            for &id in ids {
                seen.push(status(&self.address(id)).await.map(|s| {
                    (
                        s["commit_index"].as_u64(),
                        s["applied_index"].as_u64(),
                        s["keys"].as_u64(),
                    )
                }));
            }
            if let Some(Some((Some(commit), Some(applied), _))) = seen.first()
                && commit == applied
                && seen.iter().all(|s| s == &seen[0])
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "nodes {ids:?} did not converge: {seen:?}\n{}",
                    self.report().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every node of `ids` knows `voters` as the committed membership, with no
    /// learners, no change in progress and no other addresses.
    async fn wait_members_agree(&self, ids: &[usize], voters: &[u64]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut agree = true;
            for &id in ids {
                let doc = members(&self.address(id), self.secret.as_deref()).await;
                agree &= doc.is_some_and(|doc| {
                    let committed = &doc["committed"];
                    let addresses: Vec<u64> = committed["addresses"]
                        .as_object()
                        .map(|a| a.keys().filter_map(|k| k.parse().ok()).collect())
                        .unwrap_or_default();
                    common::ids(&committed["voters"]) == voters
                        && committed["outgoing"].is_null()
                        && common::ids(&committed["learners"]).is_empty()
                        && addresses == voters
                        && doc["current"] == *committed
                        && doc["index"] == doc["committed_index"]
                });
            }
            if agree {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "nodes {ids:?} do not agree on voters {voters:?}\n{}",
                    self.report().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The checks at the end of a run: the nodes `ids` converge and agree on `voters`, every
    /// acknowledged write is readable and every incr applied once.
    async fn check(&self, ids: &[usize], voters: &[u64], written: &[&Outcomes]) {
        for outcome in written {
            assert!(
                outcome.errors.is_empty(),
                "the workload failed: {:?}\n{}",
                outcome.errors,
                self.report().await
            );
        }
        self.wait_members_agree(ids, voters).await;
        self.wait_converged(ids).await;
        let targets = self.addresses_of(ids);
        let keys: Vec<(String, String)> = written
            .iter()
            .flat_map(|o| o.keys.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        let count = keys.len();
        // Linearizable reads (through the leader), a few at a time.
        let mut readers = Vec::new();
        for part in 0..4 {
            let share: Vec<(String, String)> = keys
                .iter()
                .skip(part)
                .step_by(4)
                .cloned()
                .collect::<Vec<_>>();
            let targets = targets.clone();
            readers.push(tokio::spawn(async move {
                let mut wrong = Vec::new();
                for (key, value) in share {
                    let answer =
                        request_cluster(&targets, Method::GET, &format!("/kv/{key}"), &[], b"")
                            .await;
                    match answer {
                        Some(a) if a.status == StatusCode::OK && a.text() == value => {}
                        other => {
                            wrong.push(format!("{key}: {:?}", other.map(|a| (a.status, a.text()))))
                        }
                    }
                }
                wrong
            }));
        }
        let mut wrong = Vec::new();
        for reader in readers {
            wrong.extend(reader.await.unwrap());
        }
        assert!(
            wrong.is_empty(),
            "{} of {count} acknowledged writes are not readable, e.g. {:?}\n{}",
            wrong.len(),
            &wrong[..wrong.len().min(5)],
            self.report().await
        );
        for outcome in written {
            let key = format!("counter-{}", outcome.client);
            let counter =
                request_cluster(&targets, Method::GET, &format!("/kv/{key}"), &[], b"").await;
            let counter = counter.map(|a| (a.status, a.text()));
            let expected = if outcome.incrs == 0 {
                (StatusCode::NOT_FOUND, "no such key".to_owned())
            } else {
                (StatusCode::OK, outcome.incrs.to_string())
            };
            assert_eq!(
                counter,
                Some(expected),
                "every incr of client {} applied once",
                outcome.client
            );
        }
        eprintln!(
            "checked {count} writes and {:?} incrs on nodes {ids:?}",
            written.iter().map(|o| o.incrs).collect::<Vec<_>>()
        );
    }
}

/// A number below `n`, different from run to run.
fn random_below(n: usize) -> usize {
    (std::collections::hash_map::RandomState::new().hash_one(0u8) % n as u64) as usize
}

/// The `raft-kv` JSON for ids.
fn json_ids(ids: &[usize]) -> String {
    serde_json::to_string(ids).unwrap()
}

/// Makes a membership change through any of `targets` (following redirects, retrying while
/// there is no leader) and returns the committed membership, which must have `voters`. A
/// change retried after an unknown outcome (504, a lost connection) may have committed
/// already: the committed membership then tells.
async fn change_members(
    targets: Vec<String>,
    secret: Option<String>,
    path: &str,
    body: String,
    voters: Vec<u64>,
) -> Result<Value, String> {
    let auth = bearer(secret.as_deref());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answers = Vec::new();
    loop {
        let answer = request_cluster(&targets, Method::POST, path, &auth, body.as_bytes()).await;
        if let Some(answer) = &answer
            && answer.status == StatusCode::OK
        {
            let doc: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
            return if ids(&doc["voters"]) == voters && doc["outgoing"].is_null() {
                Ok(doc)
            } else {
                Err(format!(
                    "{path} {body} answered {doc}, not voters {voters:?}"
                ))
            };
        }
        answers.push(answer.as_ref().map(|a| (a.status, a.text())));
        for target in &targets {
            if let Some(doc) = members(target, secret.as_deref()).await
                && ids(&doc["committed"]["voters"]) == voters
                && doc["committed"]["outgoing"].is_null()
            {
                return Ok(doc["committed"].clone());
            }
        }
        let retry = match &answer {
            None => true,
            Some(a) => a.status == StatusCode::CONFLICT,
        };
        if !retry || Instant::now() > deadline {
            return Err(format!("{path} {body} answered {answers:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends requests to the cluster like a client: sticks to the node that answered last,
/// follows redirects, and moves on to another node when one is down, has no leader or times
/// out, retrying with the same headers (so an incr's ids are reused) for up to `OP_DEADLINE`.
struct Client {
    targets: Arc<Mutex<Vec<String>>>,
    target: String,
}

impl Client {
    fn new(targets: Arc<Mutex<Vec<String>>>) -> Client {
        let target = targets.lock().unwrap()[0].clone();
        Client { targets, target }
    }

    fn next_target(&mut self) {
        let targets = self.targets.lock().unwrap();
        let at = targets.iter().position(|t| *t == self.target);
        self.target = targets[at.map_or(0, |i| (i + 1) % targets.len())].clone();
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Option<Answer> {
        let deadline = Instant::now() + OP_DEADLINE;
        let mut redirects = 0;
        while Instant::now() < deadline {
            let answer = request(
                &self.target,
                method.clone(),
                path,
                headers,
                Bytes::copy_from_slice(body),
            )
            .await;
            match answer {
                Some(a) if a.status == StatusCode::TEMPORARY_REDIRECT && redirects < 5 => {
                    redirects += 1;
                    self.target = authority(a.location.as_deref().unwrap_or_default());
                    continue;
                }
                Some(a)
                    if a.status != StatusCode::TEMPORARY_REDIRECT
                        && a.status != StatusCode::SERVICE_UNAVAILABLE
                        && a.status != StatusCode::GATEWAY_TIMEOUT =>
                {
                    return Some(a);
                }
                _ => {
                    redirects = 0;
                    self.next_target();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        None
    }
}

/// What a workload's client was told: acknowledged puts and how many incrs (each answered
/// with its own request id: applied once, in order).
#[derive(Debug, Default)]
struct Outcomes {
    client: u64,
    keys: BTreeMap<String, String>,
    incrs: u64,
    errors: Vec<String>,
}

/// One client in the background: a put, then an incr of its counter, again and again.
struct Workload {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    targets: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<Outcomes>,
}

impl Workload {
    fn start(targets: Vec<String>, client: u64) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let targets = Arc::new(Mutex::new(targets));
        let task = tokio::spawn(Workload::run(
            Client::new(targets.clone()),
            client,
            stop.clone(),
            done.clone(),
        ));
        Workload {
            stop,
            done,
            targets,
            task,
        }
    }

    async fn run(
        mut client: Client,
        id: u64,
        stop: Arc<AtomicBool>,
        done: Arc<AtomicU64>,
    ) -> Outcomes {
        let mut outcomes = Outcomes {
            client: id,
            ..Outcomes::default()
        };
        let counter = format!("/kv/counter-{id}/incr");
        let mut request = 0;
        while !stop.load(Ordering::Relaxed) {
            request += 1;
            let key = format!("w{id}-{request}");
            let value = format!("value-{request}-{}", "x".repeat(200));
            let put = client
                .send(Method::PUT, &format!("/kv/{key}"), &[], value.as_bytes())
                .await;
            match put {
                Some(a) if a.status == StatusCode::NO_CONTENT => {
                    outcomes.keys.insert(key, value);
                }
                other => {
                    let other = other.map(|a| (a.status, a.text()));
                    outcomes.errors.push(format!("put {key}: {other:?}"));
                    break;
                }
            }
            let incr = client
                .send(Method::POST, &counter, &session(id, request), b"")
                .await;
            match incr {
                Some(a) if a.status == StatusCode::OK && a.text() == request.to_string() => {
                    outcomes.incrs = request;
                }
                other => {
                    let other = other.map(|a| (a.status, a.text()));
                    outcomes.errors.push(format!(
                        "incr request {request}: {other:?}, expected 200 {request}"
                    ));
                    break;
                }
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        outcomes
    }

    /// The nodes the client may send to.
    fn set_targets(&self, targets: Vec<String>) {
        *self.targets.lock().unwrap() = targets;
    }

    /// Waits until `more` further put+incr pairs were acknowledged.
    async fn progress(&self, more: u64, cluster: &Cluster) {
        let goal = self.done.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.done.load(Ordering::Relaxed) < goal {
            if self.task.is_finished() || Instant::now() > deadline {
                let outcomes = self.finish_now().await;
                panic!(
                    "the workload made no progress: {:?}\n{}",
                    outcomes.errors,
                    cluster.report().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish_now(&self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        while !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Outcomes {
            errors: vec!["(stopped early)".to_owned()],
            ..Outcomes::default()
        }
    }

    /// Stops after the request in flight and returns what the client was told.
    async fn finish(self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `count` puts from 8 concurrent clients, so the log grows fast; returns them.
async fn preload(targets: &[String], count: usize) -> Outcomes {
    let mut writers = Vec::new();
    for part in 0..8 {
        let targets = targets.to_vec();
        writers.push(tokio::spawn(async move {
            let mut keys = BTreeMap::new();
            for i in (part..count).step_by(8) {
                let (key, value) = (format!("pre-{i}"), format!("pre-{i}-{}", "y".repeat(200)));
                let answer = request_cluster(
                    &targets,
                    Method::PUT,
                    &format!("/kv/{key}"),
                    &[],
                    value.as_bytes(),
                )
                .await
                .map(|a| (a.status, a.text()));
                assert_eq!(
                    answer.as_ref().map(|a| a.0),
                    Some(StatusCode::NO_CONTENT),
                    "{key}: {answer:?}"
                );
                keys.insert(key, value);
            }
            keys
        }));
    }
    let mut outcomes = Outcomes {
        client: 0,
        ..Outcomes::default()
    };
    for writer in writers {
        outcomes.keys.extend(writer.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_grow_to_five_by_join_and_one_promotion_while_a_follower_is_killed() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(dir.path(), 5, 3, None);
    for id in 1..=3 {
        cluster.start(id);
    }
    let founders = [1, 2, 3];
    cluster.leader_among(&founders).await;
    let workload = Workload::start(cluster.addresses_of(&founders), 1);
    let preloaded = preload(&cluster.addresses_of(&founders), 1200).await;
    cluster.wait_for_compaction(&founders).await;

    // Nodes 4 and 5 join through a member (a follower redirects them to the leader).
    cluster.join(4, 1);
    cluster.join(5, 2);
    cluster.wait_for_learners(&founders, &[4, 5]).await;
    workload.set_targets(cluster.addresses_of(&[1, 2, 3, 4, 5]));

    // One promotion of both; it waits for them to catch up. Meanwhile a follower dies.
    let leader = cluster.leader_among(&founders).await;
    let followers: Vec<usize> = founders.into_iter().filter(|&f| f != leader).collect();
    let victim = followers[random_below(followers.len())];
    let promotion = tokio::spawn(change_members(
        cluster.addresses_of(&[leader]),
        None,
        "/admin/members/promote",
        r#"{"ids":[4,5],"max_lag":100}"#.to_owned(),
        vec![1, 2, 3, 4, 5],
    ));
    cluster.kill(victim).await;
    eprintln!(
        "leader {leader}; SIGKILLed follower {victim} (promotion finished already: {})",
        promotion.is_finished()
    );
    workload.progress(20, &cluster).await;
    cluster.restart(victim);
    if let Err(failure) = promotion.await.unwrap() {
        panic!(
            "the promotion failed: {failure}\n{}",
            cluster.report().await
        );
    }
    // Joining nodes take no snapshot of their own: theirs came by InstallSnapshot.
    for id in [4, 5] {
        let snapshot = status(&cluster.address(id))
            .await
            .and_then(|s| s["snapshot_index"].as_u64());
        assert!(
            snapshot.is_some_and(|s| s > 0),
            "node {id} caught up by InstallSnapshot\n{}",
            cluster.report().await
        );
    }
    workload.progress(20, &cluster).await;

    // A joined voter restarted with --join again stays a voter (its request to be added is
    // answered "a member already").
    cluster.kill(5).await;
    cluster.spawn(5, Start::Join(3));
    cluster.wait_serving(5).await;
    workload.progress(20, &cluster).await;
    let written = workload.finish().await;

    cluster
        .check(&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5], &[&preloaded, &written])
        .await;
    eprintln!("grow 3 -> 5 took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_shrink_to_three_removing_the_leader_and_removed_nodes_stay_out() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(dir.path(), 5, 5, None);
    let all = [1, 2, 3, 4, 5];
    for id in all {
        cluster.start(id);
    }
    let leader = cluster.leader_among(&all).await;
    let workload = Workload::start(cluster.addresses_of(&all), 2);
    workload.progress(20, &cluster).await;

    // One change removes the leader and a follower.
    let followers: Vec<usize> = all.into_iter().filter(|&id| id != leader).collect();
    let follower = followers[random_below(followers.len())];
    let removed = [leader, follower];
    let remaining: Vec<usize> = all.into_iter().filter(|id| !removed.contains(id)).collect();
    let voters: Vec<u64> = remaining.iter().map(|&id| id as u64).collect();
    eprintln!("removing leader {leader} and follower {follower}");
    let change = change_members(
        cluster.addresses_of(&[leader]),
        None,
        "/admin/members/change",
        format!(r#"{{"remove":{}}}"#, json_ids(&removed)),
        voters.clone(),
    )
    .await;
    if let Err(failure) = change {
        panic!("the change failed: {failure}\n{}", cluster.report().await);
    }
    workload.set_targets(cluster.addresses_of(&remaining));

    // The removed leader steps down; the remaining three elect one of them.
    let new_leader = cluster.leader_among(&remaining).await;
    assert!(remaining.contains(&new_leader));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut leading = Vec::new();
        for id in removed {
            let role = status(&cluster.address(id))
                .await
                .map(|s| s["role"].clone());
            if role.as_ref().and_then(Value::as_str) == Some("leader") {
                leading.push(id);
            }
        }
        if leading.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removed nodes {leading:?} still lead\n{}",
            cluster.report().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in removed {
        cluster.kill(id).await;
    }
    workload.progress(20, &cluster).await;
    let written = workload.finish().await;
    cluster.check(&remaining, &voters, &[&written]).await;

    // The removed nodes come back from their disks: they do not disturb the cluster, whose
    // leader and term stay put while it serves writes.
    for id in removed {
        cluster.restart(id);
    }
    for id in removed {
        cluster.wait_serving(id).await;
    }
    let leader = cluster.leader_among(&remaining).await;
    let terms = |docs: &[Option<Value>]| {
        docs.iter()
            .map(|d| d.as_ref().and_then(|d| d["term"].as_u64()))
            .collect::<Vec<_>>()
    };
    let mut before = Vec::new();
    for &id in &remaining {
        before.push(status(&cluster.address(id)).await);
    }
    let before = terms(&before);
    let workload = Workload::start(cluster.addresses_of(&remaining), 3);
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(4) {
        let mut now = Vec::new();
        for &id in &remaining {
            now.push(status(&cluster.address(id)).await);
        }
        let leaders: Vec<Option<u64>> = now
            .iter()
            .map(|d| d.as_ref().and_then(|d| d["leader"].as_u64()))
            .collect();
        let stable = terms(&now) == before && leaders.iter().all(|&l| l == Some(leader as u64));
        assert!(
            stable,
            "the cluster was disturbed: terms {before:?} -> {:?}, leaders {leaders:?} (was {leader})\n{}",
            terms(&now),
            cluster.report().await
        );
        for id in removed {
            let role = status(&cluster.address(id))
                .await
                .map(|s| s["role"].clone());
            assert_ne!(
                role.as_ref().and_then(Value::as_str),
                Some("leader"),
                "removed node {id} leads\n{}",
                cluster.report().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in removed {
        cluster.assert_running(id).await;
    }
    eprintln!(
        "after 4 s with the removed nodes back: {}",
        cluster.report().await
    );
    workload.progress(5, &cluster).await;
    let more = workload.finish().await;
    cluster.check(&remaining, &voters, &[&written, &more]).await;
    eprintln!("shrink 5 -> 3 took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_whose_disk_is_lost_is_replaced_by_an_empty_joining_node() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(dir.path(), 4, 3, None);
    for id in 1..=3 {
        cluster.start(id);
    }
    cluster.leader_among(&[1, 2, 3]).await;
    let workload = Workload::start(cluster.addresses_of(&[1, 2, 3]), 4);
    let preloaded = preload(&cluster.addresses_of(&[1, 2, 3]), 1200).await;
    cluster.wait_for_compaction(&[1, 2, 3]).await;

    // Node 3 dies with its disk.
    cluster.kill(3).await;
    std::fs::remove_dir_all(cluster.data_dir(3)).unwrap();
    workload.set_targets(cluster.addresses_of(&[1, 2]));

    // An empty node 4 joins as a learner, catches up, and takes 3's place in one change.
    cluster.join(4, 1);
    cluster.wait_for_learners(&[1, 2], &[4]).await;
    cluster.wait_caught_up(4, &[1, 2], 50).await;
    let change = change_members(
        cluster.addresses_of(&[1, 2]),
        None,
        "/admin/members/change",
        r#"{"promote":[4],"remove":[3]}"#.to_owned(),
        vec![1, 2, 4],
    )
    .await;
    if let Err(failure) = change {
        panic!("the change failed: {failure}\n{}", cluster.report().await);
    }
    workload.set_targets(cluster.addresses_of(&[1, 2, 4]));
    let snapshot = status(&cluster.address(4))
        .await
        .and_then(|s| s["snapshot_index"].as_u64());
    assert!(
        snapshot.is_some_and(|s| s > 0),
        "node 4 caught up by InstallSnapshot\n{}",
        cluster.report().await
    );
    workload.progress(20, &cluster).await;

    // Node 4 restarts from its own disk without --join (its `joined` marker) and still votes.
    cluster.kill(4).await;
    cluster.restart(4);
    workload.progress(20, &cluster).await;
    let written = workload.finish().await;
    cluster
        .check(&[1, 2, 4], &[1, 2, 4], &[&preloaded, &written])
        .await;
    eprintln!("replace 3 by 4 took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_refuse_bad_requests_with_clear_client_errors() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let secret = "admin-test-secret";
    let mut cluster = Cluster::new(dir.path(), 3, 3, Some(secret));
    for id in 1..=3 {
        cluster.start(id);
    }
    let leader = cluster.leader_among(&[1, 2, 3]).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let (at_leader, at_follower) = (cluster.address(leader), cluster.address(follower));
    let token = cluster.auth();
    let send = |address: String, method: Method, path: &'static str, auth: bool, body: &str| {
        let headers = if auth { token.clone() } else { Vec::new() };
        let body = Bytes::from(body.to_owned());
        async move {
            request(&address, method, path, &headers, body)
                .await
                .expect("the node answers")
        }
    };
    let expect = |answer: Answer, status: StatusCode, says: &str, what: &str| {
        assert_eq!(answer.status, status, "{what}: {}", answer.text());
        assert!(
            answer.text().contains(says),
            "{what}: {:?} should say {says:?}",
            answer.text()
        );
        answer
    };

    // The secret guards every admin route: no token, or a wrong one, is 401.
    let a = send(at_leader.clone(), Method::GET, "/admin/members", false, "").await;
    expect(a, StatusCode::UNAUTHORIZED, "Bearer", "no token");
    let wrong = request(
        &at_leader,
        Method::GET,
        "/admin/members",
        &bearer(Some("not-the-secret")),
        Bytes::new(),
    )
    .await
    .unwrap();
    expect(wrong, StatusCode::UNAUTHORIZED, "Bearer", "a wrong token");
    let change = r#"{"add_learners":{"4":"127.0.0.1:9"}}"#;
    let a = send(
        at_leader.clone(),
        Method::POST,
        "/admin/members/change",
        false,
        change,
    )
    .await;
    expect(
        a,
        StatusCode::UNAUTHORIZED,
        "Bearer",
        "a change without a token",
    );
    let a = send(at_leader.clone(), Method::GET, "/admin/members", true, "").await;
    let doc: Value =
        serde_json::from_slice(&expect(a, StatusCode::OK, "", "the token").body).unwrap();
    assert_eq!(ids(&doc["committed"]["voters"]), [1, 2, 3], "{doc}");
    assert_eq!(doc["leader"].as_u64(), Some(leader as u64), "{doc}");

    // Bad bodies are 400.
    for (path, body) in [
        ("/admin/members/change", "{not json"),
        ("/admin/members/change", r#"{"remove":"3"}"#),
        ("/admin/members/change", r#"{"evict":[3]}"#),
        ("/admin/members/promote", r#"{"ids":[]}"#),
        ("/admin/members/learners", r#"{"id":4}"#),
        ("/admin/members/learners", r#"{"id":4,"address":" "}"#),
    ] {
        let a = send(at_leader.clone(), Method::POST, path, true, body).await;
        expect(a, StatusCode::BAD_REQUEST, "", &format!("{path} {body}"));
    }
    let a = send(
        at_leader.clone(),
        Method::POST,
        "/admin/members/change",
        true,
        "{not json",
    )
    .await;
    expect(a, StatusCode::BAD_REQUEST, "bad JSON", "bad JSON");

    // Changes that do not fit the members are 422, saying why. A follower is the voter
    // promoted: for the leader's own id the answer says "not a member" (the promotion looks
    // for it among the leader's followers), which is misleading.
    let promote_voter = format!(r#"{{"ids":[{follower}]}}"#);
    let not_a_learner = format!("node {follower} is not a learner");
    for (method, path, body, says) in [
        (
            Method::POST,
            "/admin/members/promote",
            r#"{"ids":[9]}"#,
            "node 9 is not a member",
        ),
        (
            Method::POST,
            "/admin/members/promote",
            promote_voter.as_str(),
            not_a_learner.as_str(),
        ),
        (
            Method::POST,
            "/admin/members/change",
            r#"{"promote":[9]}"#,
            "node 9 is not a learner",
        ),
        (
            Method::POST,
            "/admin/members/change",
            r#"{"remove":[9]}"#,
            "node 9 is not a member",
        ),
        (Method::POST, "/admin/members/change", "{}", "nothing"),
        (
            Method::POST,
            "/admin/members/change",
            r#"{"remove":[1,2,3]}"#,
            "no voter",
        ),
        (
            Method::POST,
            "/admin/members/learners",
            r#"{"id":2,"address":"127.0.0.1:9"}"#,
            "already",
        ),
        (
            Method::DELETE,
            "/admin/members/9",
            "",
            "node 9 is not a member",
        ),
    ] {
        let what = format!("{method} {path} {body}");
        let a = send(at_leader.clone(), method, path, true, body).await;
        expect(a, StatusCode::UNPROCESSABLE_ENTITY, says, &what);
    }

    // A follower sends changes to the leader.
    let a = send(
        at_follower.clone(),
        Method::POST,
        "/admin/members/change",
        true,
        change,
    )
    .await;
    let a = expect(
        a,
        StatusCode::TEMPORARY_REDIRECT,
        "leader",
        "a change on a follower",
    );
    assert_eq!(
        a.location.as_deref(),
        Some(format!("http://{at_leader}/admin/members/change").as_str())
    );
    let a = send(
        at_follower.clone(),
        Method::DELETE,
        "/admin/members/3",
        true,
        "",
    )
    .await;
    let a = expect(
        a,
        StatusCode::TEMPORARY_REDIRECT,
        "leader",
        "a removal on a follower",
    );
    assert_eq!(
        a.location.as_deref(),
        Some(format!("http://{at_leader}/admin/members/3").as_str())
    );

    // None of that changed anything; with the token a change works.
    let doc = members(&at_leader, Some(secret)).await.unwrap();
    assert_eq!(ids(&doc["committed"]["voters"]), [1, 2, 3], "{doc}");
    assert_eq!(
        ids(&doc["committed"]["learners"]),
        Vec::<u64>::new(),
        "{doc}"
    );
    let a = send(
        at_leader.clone(),
        Method::POST,
        "/admin/members/change",
        true,
        change,
    )
    .await;
    let added: Value =
        serde_json::from_slice(&expect(a, StatusCode::OK, "", "a change").body).unwrap();
    assert_eq!(ids(&added["learners"]), [4], "{added}");
    let a = send(
        at_leader.clone(),
        Method::POST,
        "/admin/members/change",
        true,
        change,
    )
    .await;
    expect(
        a,
        StatusCode::UNPROCESSABLE_ENTITY,
        "node 4 is a member already",
        "adding twice",
    );
    let a = send(
        at_leader.clone(),
        Method::DELETE,
        "/admin/members/4",
        true,
        "",
    )
    .await;
    let gone: Value =
        serde_json::from_slice(&expect(a, StatusCode::OK, "", "a removal").body).unwrap();
    assert_eq!(ids(&gone["learners"]), Vec::<u64>::new(), "{gone}");
    assert_eq!(ids(&gone["voters"]), [1, 2, 3], "{gone}");
    eprintln!("admin refusals took {:?}", started.elapsed());
}
