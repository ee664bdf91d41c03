//! Linearizability of one key under concurrent reads, writes and compare-and-swaps through the
//! HTTP API of a 3-node in-process cluster, across a leader transfer and the stop of a leader:
//! the history is checked with raft-sim's register model.
//!
//! Every written value is unique, so the version (`ETag`) a read returns names the write whose
//! value it read: a `PUT` with `If-Match` of that version is a compare-and-swap from that value.
//! Writes carry session ids and are retried with them until a definite answer (a retry of an
//! applied write gets its recorded answer); one with none in time is recorded as indeterminate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{authority, request_within, session, start_cluster, wait_for_leader};
use hyper::{Method, StatusCode};
use raft_core::NodeId;
use raft_sim::linearizability::register::{RegisterInput, RegisterModel, RegisterOutput};
use raft_sim::linearizability::{Budget, Operation, Verdict, check};
use tokio::time::Instant;

const KEY_PATH: &str = "/kv/register";
const CLIENTS: u64 = 4;
/// How long the clients start new operations (at least; see `AFTER_STOP`).
const RUN: Duration = Duration::from_secs(6);
/// How long the clients go on after the leader stopped, however long stopping it took: the
/// survivors' operations after the stop are part of what the test checks.
const AFTER_STOP: Duration = Duration::from_secs(2);
/// How long a write is retried before it is recorded as indeterminate.
const WRITE_PATIENCE: Duration = Duration::from_secs(4);

type History = Vec<Operation<RegisterInput, RegisterOutput>>;

/// The shared history and clock.
struct Recorder {
    start: Instant,
    /// When the clients stop starting operations.
    end: Mutex<Instant>,
    history: Mutex<History>,
}

impl Recorder {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap()
    }

    fn record(
        &self,
        client: u64,
        input: RegisterInput,
        call: u64,
        outcome: Option<RegisterOutput>,
    ) {
        // An indeterminate operation never returned: it may take effect at any later point.
        let ret = outcome.is_some().then(|| self.now());
        self.history.lock().unwrap().push(Operation {
            client,
            input,
            call,
            ret,
            output: outcome,
        });
    }
}

/// A small deterministic generator per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One client: reads, unique writes, and CAS from the last value it read, until the run ends.
async fn client(id: u64, addresses: Arc<Vec<String>>, recorder: Arc<Recorder>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1));
    let mut target = addresses[id as usize % addresses.len()].clone();
    let mut next_request = 1u64;
    let mut next_value = 0i64;
    // The value and version of this client's last read that found one.
    let mut last_read: Option<(i64, u64)> = None;
    while Instant::now() < *recorder.end.lock().unwrap() {
        // 5 in 10 reads, 2 writes, 3 compare-and-swaps (a write when no value was read).
        let choice = rng.below(10);
        if choice < 5 {
            let reader = addresses[rng.below(addresses.len() as u64) as usize].clone();
            let call = recorder.now();
            let answer = request_within(
                Duration::from_secs(2),
                &reader,
                Method::GET,
                KEY_PATH,
                &[],
                Bytes::new(),
            )
            .await;
            // A read that failed has no effect: left out of the history.
            match answer {
                Some(answer) if answer.status == StatusCode::OK => {
                    let value: i64 = answer.text().parse().unwrap();
                    last_read = Some((value, answer.version().unwrap()));
                    let output = RegisterOutput::Read(Some(value));
                    recorder.record(id, RegisterInput::Read, call, Some(output));
                }
                Some(answer) if answer.status == StatusCode::NOT_FOUND => {
                    let output = RegisterOutput::Read(None);
                    recorder.record(id, RegisterInput::Read, call, Some(output));
                }
                _ => {}
            }
            continue;
        }
        next_value += 1;
        let value = i64::try_from(id).unwrap() * 1_000_000 + next_value;
        let mut headers = session(100 + id, next_request);
        next_request += 1;
        let input = match last_read.take() {
            Some((old, version)) if choice >= 7 => {
                headers.push(("if-match", format!("\"{version}\"")));
                RegisterInput::Cas(old, value)
            }
            _ => RegisterInput::Write(value),
        };
        let call = recorder.now();
        let status = write(&addresses, &mut target, &headers, value).await;
        let output = match (input, status) {
            (_, None) => None,
            (RegisterInput::Write(_), Some(StatusCode::NO_CONTENT)) => Some(RegisterOutput::Write),
            (RegisterInput::Cas(..), Some(StatusCode::NO_CONTENT)) => {
                Some(RegisterOutput::Cas(true))
            }
            (RegisterInput::Cas(..), Some(StatusCode::PRECONDITION_FAILED)) => {
                Some(RegisterOutput::Cas(false))
            }
            (input, Some(status)) => panic!("{input:?} answered {status}"),
        };
        recorder.record(id, input, call, output);
    }
}

/// Sends a write until a definite answer, following redirects and retrying with the same
/// session ids; `None` if there is none within `WRITE_PATIENCE` (outcome unknown).
async fn write(
    addresses: &[String],
    target: &mut String,
    headers: &[(&'static str, String)],
    value: i64,
) -> Option<StatusCode> {
    let deadline = Instant::now() + WRITE_PATIENCE;
    let mut next = 0;
    while Instant::now() < deadline {
        let answer = request_within(
            Duration::from_secs(2),
            target,
            Method::PUT,
            KEY_PATH,
            headers,
            Bytes::from(value.to_string()),
        )
        .await;
        match answer {
            Some(answer) if answer.status == StatusCode::TEMPORARY_REDIRECT => {
                *target = authority(&answer.location.unwrap());
                continue;
            }
            Some(answer)
                if answer.status != StatusCode::SERVICE_UNAVAILABLE
                    && answer.status != StatusCode::GATEWAY_TIMEOUT =>
            {
                return Some(answer.status);
            }
            // Not applied (503), unknown (504), or no answer: retry, elsewhere.
            _ => {
                next += 1;
                *target = addresses[next % addresses.len()].clone();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_writes_and_cas_stay_linearizable_across_leader_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, addresses) = start_cluster(dir.path(), 3, |_| {}).await;
    wait_for_leader(&addresses).await;
    let addresses = Arc::new(addresses);
    let start = Instant::now();
    let recorder = Arc::new(Recorder {
        start,
        end: Mutex::new(start + RUN),
        history: Mutex::new(Vec::new()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, addresses.clone(), recorder.clone())))
        .collect();

    // A third of the way: the leader hands over to another node.
    tokio::time::sleep(RUN / 3).await;
    let first_term = nodes[0].replica().node().term();
    let leader = nodes.iter().position(|n| n.replica().node().is_leader());
    if let Some(leader) = leader {
        let to = nodes[(leader + 1) % nodes.len()].id();
        // Refused only if the node stopped leading meanwhile: a leader change all the same.
        let _ = nodes[leader].replica().node().transfer_leadership(to);
    }
    // Two thirds of the way: the leader then stops; the other two carry on.
    tokio::time::sleep(RUN / 3).await;
    let transfer_term = nodes[0].replica().node().term();
    let leader = nodes
        .iter()
        .position(|n| n.replica().node().is_leader())
        .unwrap_or(0);
    let stopped: NodeId = nodes[leader].id();
    nodes.remove(leader).shutdown().await;
    let stopped_at = recorder.now();
    {
        let mut end = recorder.end.lock().unwrap();
        *end = (*end).max(Instant::now() + AFTER_STOP);
    }

    for client in clients {
        client.await.unwrap();
    }
    let history = std::mem::take(&mut *recorder.history.lock().unwrap());
    let count = |f: &dyn Fn(&Operation<RegisterInput, RegisterOutput>) -> bool| {
        history.iter().filter(|op| f(op)).count()
    };
    let cas_ok = count(&|op| op.output == Some(RegisterOutput::Cas(true)));
    let cas_failed = count(&|op| op.output == Some(RegisterOutput::Cas(false)));
    let reads = count(&|op| op.input == RegisterInput::Read);
    let unknown = count(&|op| op.output.is_none());
    let after_stop = count(&|op| op.call > stopped_at && op.output.is_some());
    let summary = format!(
        "{} operations: {reads} reads, {cas_ok} CAS applied, {cas_failed} CAS refused, {unknown} indeterminate; transfer: term {} to {}, then node {stopped} stopped",
        history.len(),
        first_term.0,
        transfer_term.0
    );
    eprintln!("{summary}");
    assert!(cas_ok > 0 && cas_failed > 0 && reads > 0, "{summary}");
    assert!(after_stop > 0, "{summary}");
    let verdict = check(
        &RegisterModel,
        &history,
        Budget {
            max_steps: 50_000_000,
        },
    );
    assert_eq!(verdict, Verdict::Linearizable, "{summary}");

    // The check has teeth: an applied CAS whose value was read later, reported as refused,
    // makes the history impossible.
    let read_later = |value: i64| {
        history
            .iter()
            .any(|op| op.output == Some(RegisterOutput::Read(Some(value))))
    };
    let flipped = history.iter().position(|op| {
        matches!(op.input, RegisterInput::Cas(_, new) if read_later(new))
            && op.output == Some(RegisterOutput::Cas(true))
    });
    let position = flipped.expect("an applied CAS whose value a later read saw");
    let mut tampered = history.clone();
    tampered[position].output = Some(RegisterOutput::Cas(false));
    let verdict = check(&RegisterModel, &tampered, Budget::default());
    assert_eq!(verdict, Verdict::NotLinearizable, "{summary}");
    for node in nodes {
        node.shutdown().await;
    }
}
