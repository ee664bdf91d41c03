//! `ledger demo`: three `ledger node` child processes on loopback; clients submit deposits and
//! transfers over HTTP, retrying with the same ids; the leader is killed with SIGKILL and
//! restarted from its directory. Then the checks: every node holds the same balances, no money
//! was made or lost, and every request was applied exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use raft_core::{BoxError, LeaderHint, NodeId};
use raft_wrapper::{Error, RetryPolicy, retry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use crate::ledger::{Accounts, apply};

const ACCOUNTS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Transfers each of the 3 concurrent clients submits per phase.
const TRANSFERS: usize = 30;

/// An answered request: what was submitted and the cluster's answer.
#[derive(Clone, Debug)]
struct Ack {
    ids: (u64, u64),
    command: String,
    index: u64,
    duplicate: bool,
    result: String,
}

/// A client: its id, its next request id, the node that answered it last (the leader then).
struct Client {
    id: u64,
    request: u64,
    leader: usize,
}

impl Client {
    fn new(id: u64) -> Client {
        let (request, leader) = (0, 0);
        Client {
            id,
            request,
            leader,
        }
    }

    /// Submits `command` as this client's next request, retrying with the same ids until it is
    /// answered: leader hints at once, other failures after a backoff, at the next node.
    async fn submit(&mut self, nodes: &[String], command: String) -> Result<Ack, Error> {
        self.request += 1;
        let body = format!("{} {} {command}", self.id, self.request);
        let mut policy = RetryPolicy::default();
        policy.deadline = Duration::from_secs(30);
        let mut target = self.leader;
        let ((index, duplicate, result), at) = retry(&policy, |attempt| {
            let address = match attempt.leader {
                Some(hint) => hint.address,
                None if attempt.number == 1 => nodes[target].clone(),
                None => {
                    target = (target + 1) % nodes.len();
                    nodes[target].clone()
                }
            };
            let wait = attempt.remaining.min(Duration::from_secs(5));
            let body = body.clone();
            async move { Ok((post(&address, &body, wait).await?, address)) }
        })
        .await?;
        self.leader = nodes.iter().position(|node| *node == at).unwrap_or(0);
        let ids = (self.id, self.request);
        Ok(Ack {
            ids,
            command,
            index,
            duplicate,
            result,
        })
    }
}

/// One attempt of `POST /ledger`, its answer turned into what `retry` needs to know: where the
/// leader is, and whether the request may have been applied.
async fn post(address: &str, body: &str, wait: Duration) -> Result<(u64, bool, String), Error> {
    let (status, text) = http(address, "POST", body, wait).await?;
    let mut words = text.splitn(3, ' ');
    match (status, words.next(), words.next(), words.next()) {
        (200, Some(index), Some(duplicate), Some(result)) => {
            match (index.parse(), duplicate.parse()) {
                (Ok(index), Ok(duplicate)) => Ok((index, duplicate, result.to_owned())),
                _ => Err(Error::InvalidRequest(text)),
            }
        }
        (421, Some(id), Some(address), _) => Err(Error::NotLeader {
            leader: id.parse().ok().map(|id| LeaderHint {
                id: NodeId(id),
                address: address.to_owned(),
            }),
        }),
        (503, ..) => Err(Error::NotLeader { leader: None }), // not applied: try another node
        (504, ..) => Err(Error::Timeout),                    // maybe applied: same ids again
        _ => Err(Error::InvalidRequest(format!("HTTP {status}: {text}"))),
    }
}

/// One HTTP/1.1 exchange on a new connection. A connection refused means nothing was sent
/// (`Shutdown`); a failure after that leaves the outcome unknown (`Timeout`).
async fn http(
    address: &str,
    method: &str,
    body: &str,
    wait: Duration,
) -> Result<(u16, String), Error> {
    let request = format!(
        "{method} /ledger HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let connect = tokio::net::TcpStream::connect(address).await;
        let mut stream = connect.map_err(|_| Error::Shutdown)?;
        let mut response = String::new();
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|_| Error::Timeout)?;
        stream
            .read_to_string(&mut response)
            .await
            .map_err(|_| Error::Timeout)?;
        let (head, text) = response.split_once("\r\n\r\n").ok_or(Error::Timeout)?;
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
        Ok((status.ok_or(Error::Timeout)?, text.to_owned()))
    };
    timeout(wait, exchange).await.unwrap_or(Err(Error::Timeout))
}

/// A node's `GET /ledger`: its status line and its balances.
async fn balances(address: &str) -> Option<(String, Accounts)> {
    let (_, text) = http(address, "GET", "", Duration::from_secs(5))
        .await
        .ok()?;
    let (status, lines) = text.split_once('\n')?;
    let parse = |line: &str| {
        let (account, balance) = line.split_once(' ')?;
        Some((account.to_owned(), balance.parse().ok()?))
    };
    Some((
        status.to_owned(),
        lines.lines().map(parse).collect::<Option<_>>()?,
    ))
}

/// Starts node `i` (0-based) as a child process of this program.
fn start(dir: &Path, nodes: &[String], i: usize) -> Result<Child, BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["node", "--id", &(i + 1).to_string(), "--listen", &nodes[i]]);
    command
        .arg("--dir")
        .arg(dir.join(format!("node-{}", i + 1)));
    // Small, so that the few hundred entries of the demo take snapshots, and the restarted
    // node restores one.
    command.args(["--snapshot-bytes", "4096"]);
    for (j, address) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
        command.arg("--peer").arg(format!("{}={address}", j + 1));
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "error"); // the killed node's peers would warn about it
    }
    command
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok(command.spawn()?)
}

/// Runs the demo in `dir` (it must be empty or missing), by default in a temporary directory
/// removed after a successful run. Any node still running when it returns is killed.
pub(crate) async fn run(dir: Option<PathBuf>) -> Result<(), BoxError> {
    let temporary = std::env::temp_dir().join(format!("ledger-demo-{}", std::process::id()));
    let dir = dir.unwrap_or(temporary.clone());
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!("{} is not empty", dir.display()).into());
    }
    // Free loopback ports: bound here, released, then bound by the nodes.
    let ports = (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0"));
    let ports = ports.collect::<std::io::Result<Vec<_>>>()?;
    let nodes = ports.iter().map(|p| Ok(p.local_addr()?.to_string()));
    let nodes: Arc<[String]> = nodes.collect::<std::io::Result<_>>()?;
    drop(ports);
    println!("ledger demo: 3 nodes in {}", dir.display());
    let mut children = Vec::new();
    let outcome = timeout(
        Duration::from_secs(75),
        scenario(&dir, &nodes, &mut children),
    )
    .await;
    drop(children); // kills the nodes left running after a failure
    match outcome.unwrap_or_else(|_| Err("not done in 75 s".into())) {
        Ok(()) if dir == temporary => Ok(std::fs::remove_dir_all(&dir)?),
        Ok(()) => Ok(()),
        Err(error) => Err(format!("{error} (the nodes' data is in {})", dir.display()).into()),
    }
}

async fn scenario(
    dir: &Path,
    nodes: &Arc<[String]>,
    children: &mut Vec<Child>,
) -> Result<(), BoxError> {
    let started = Instant::now();
    for i in 0..3 {
        children.push(start(dir, nodes, i)?);
        println!("  node {} at http://{}", i + 1, nodes[i]);
    }
    let mut acks = Vec::new();
    let mut banker = Client::new(1);
    for account in ACCOUNTS {
        acks.push(
            banker
                .submit(nodes, format!("deposit {account} 1000"))
                .await?,
        );
    }
    println!("deposited 1000 into each of {} accounts", ACCOUNTS.len());
    // The reply was lost, say: the same ids again are answered from the session table.
    banker.request -= 1;
    let (first, again) = (
        acks[3].clone(),
        banker.submit(nodes, acks[3].command.clone()).await?,
    );
    if !again.duplicate || (again.index, &again.result) != (first.index, &first.result) {
        return Err(format!("a retry was applied again: {again:?} after {first:?}").into());
    }
    println!(
        "resubmitted request 4 of client 1: a duplicate of index {}, {:?}",
        again.index, again.result
    );
    acks.push(again);

    let mut clients: Vec<Client> = (2..5).map(Client::new).collect();
    transfers(nodes, &mut clients, &mut acks, "with 3 nodes up").await?;
    let leader = clients[0].leader; // the node that answered last
    children[leader].kill().await?; // SIGKILL: whatever was in flight is cut off
    println!("killed node {} (the leader) with SIGKILL", leader + 1);
    transfers(nodes, &mut clients, &mut acks, "with 2 nodes up").await?;
    children[leader] = start(dir, nodes, leader)?;
    println!("restarted node {} from its directory", leader + 1);
    transfers(nodes, &mut clients, &mut acks, "with 3 nodes up again").await?;

    let expected = replay(&acks)?;
    let total: i64 = expected.values().sum();
    if total != 1000 * ACCOUNTS.len() as i64 {
        return Err(format!("the books hold {total}: money was made or lost").into());
    }
    let statuses = converge(nodes, &expected).await?;
    let requests = acks
        .iter()
        .map(|ack| ack.ids)
        .collect::<BTreeSet<_>>()
        .len();
    println!("every node holds {expected:?}, {total} in all, as deposited");
    println!("{requests} requests applied once each, with the results a replay in log order gives");
    for status in statuses {
        println!("  {status}");
    }
    for child in children.iter() {
        // SIGTERM, a graceful stop (the shell's `kill`: std and tokio only send SIGKILL).
        let pid = child.id().ok_or("a node exited")?.to_string();
        let term = ["-c", "kill -TERM \"$0\"", &pid];
        std::process::Command::new("sh").args(term).status()?;
    }
    for child in children.iter_mut() {
        let exit = timeout(Duration::from_secs(20), child.wait()).await??;
        exit.success()
            .then_some(())
            .ok_or(format!("a node stopped with {exit}"))?;
    }
    println!(
        "stopped the nodes (SIGTERM, clean exits); {:.1} s in all: ok",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One phase: each client submits `TRANSFERS` transfers between random accounts, concurrently.
async fn transfers(
    nodes: &Arc<[String]>,
    clients: &mut Vec<Client>,
    acks: &mut Vec<Ack>,
    when: &str,
) -> Result<(), BoxError> {
    let mut tasks = tokio::task::JoinSet::new();
    for mut client in clients.drain(..) {
        let nodes = nodes.clone();
        tasks.spawn(async move {
            let mut acks = Vec::new();
            let mut random = client.id * 0x9E37_79B9 + client.request; // xorshift
            for _ in 0..TRANSFERS {
                let mut draw = |n: u64| {
                    random ^= random << 13;
                    random ^= random >> 7;
                    random ^= random << 17;
                    (random % n) as usize
                };
                let (from, to) = (draw(4), draw(3));
                let to = (from + 1 + to) % 4; // another account
                let transfer = format!(
                    "transfer {} {} {}",
                    ACCOUNTS[from],
                    ACCOUNTS[to],
                    1 + draw(600)
                );
                acks.push(client.submit(&nodes, transfer).await?);
            }
            Ok::<_, Error>((client, acks))
        });
    }
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        let (client, done) = done??;
        refused += done
            .iter()
            .filter(|ack| ack.result == "insufficient funds")
            .count();
        clients.push(client);
        acks.extend(done);
    }
    clients.sort_by_key(|client| client.id);
    println!(
        "{} transfers {when} ({refused} refused: insufficient funds)",
        3 * TRANSFERS
    );
    Ok(())
}

/// Replays the answered commands in log order through the ledger's own `apply`: each request
/// must have exactly one index, and each result must be the one its client got.
fn replay(acks: &[Ack]) -> Result<Accounts, BoxError> {
    let mut log: BTreeMap<u64, &Ack> = BTreeMap::new();
    for ack in acks {
        let first = *log.entry(ack.index).or_insert(ack);
        if (first.ids, &first.result) != (ack.ids, &ack.result) {
            return Err(format!("index {}: {first:?} and {ack:?}", ack.index).into());
        }
    }
    let requests = acks.iter().map(|ack| ack.ids).collect::<BTreeSet<_>>();
    if requests.len() != log.len() {
        return Err(format!("{} requests at {} indexes", requests.len(), log.len()).into());
    }
    let mut accounts = Accounts::new();
    for ack in log.values() {
        if apply(&mut accounts, &ack.command) != ack.result {
            return Err(format!("the replay disagrees with {ack:?}").into());
        }
    }
    Ok(accounts)
}

/// Waits until every node's balances are `expected`; returns their status lines.
async fn converge(nodes: &[String], expected: &Accounts) -> Result<Vec<String>, BoxError> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen.clear();
        for node in nodes {
            seen.push(balances(node).await);
        }
        if seen.iter().all(|node| {
            node.as_ref()
                .is_some_and(|(_, accounts)| accounts == expected)
        }) {
            return Ok(seen
                .into_iter()
                .flatten()
                .map(|(status, _)| status)
                .collect());
        }
        sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the nodes did not converge on {expected:?}: {seen:?}").into())
}
