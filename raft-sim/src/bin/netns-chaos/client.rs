//! The clients, and after the faults: resubmission of unanswered writes and final reads.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crate::basics::{Clock, Rng};
use crate::history::{
    Applied, OpKind, Outcome, Record, Resolution, counter_key, key_path, register_key,
};
use crate::http::{HttpError, Request, authority, http};

/// What every client shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    pub(crate) addresses: Vec<String>,
    pub(crate) registers: u64,
    pub(crate) counters: u64,
    /// Milliseconds, MIN..MAX.
    pub(crate) op_timeout_ms: (u64, u64),
    pub(crate) attempt_timeout: Duration,
    pub(crate) lease_reads: bool,
    pub(crate) stop: AtomicBool,
    pub(crate) next_client_id: AtomicU64,
    pub(crate) anomalies: Mutex<Vec<String>>,
}

impl Shared {
    pub(crate) fn anomaly(&self, text: String) {
        println!("[{:8.3}s] ANOMALY: {text}", self.clock.secs());
        self.anomalies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }

    pub(crate) fn new_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn node_of(&self, address: &str) -> u64 {
        self.addresses
            .iter()
            .position(|a| a == address)
            .map_or(0, |i| i as u64 + 1)
    }

    pub(crate) fn random_node(&self, rng: &mut Rng) -> String {
        let i = rng.below(self.addresses.len() as u64) as usize;
        self.addresses[i].clone()
    }
}

/// The result of one write or read, over all its attempts.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) outcome: Outcome,
    /// The answer said the write was a retry of one applied before.
    pub(crate) duplicate: bool,
    /// Some attempt before the answer may have applied the write.
    pub(crate) maybe_applied_before: bool,
    pub(crate) node: u64,
    pub(crate) attempts: u32,
    /// The address that answered (the leader, for a write).
    pub(crate) answered_by: Option<String>,
}

/// Runs a write with its ids until an answer or the deadline.
pub(crate) fn write_op(
    shared: &Shared,
    rng: &mut Rng,
    request: Request<'_>,
    deadline: u64,
    first_target: Option<String>,
) -> Done {
    let clock = shared.clock;
    let mut target = first_target.unwrap_or_else(|| shared.random_node(rng));
    let mut maybe_applied = false;
    let mut attempts = 0;
    let mut node = 0;
    let mut redirects = 0;
    let end = |outcome, node, attempts, maybe| Done {
        outcome,
        duplicate: false,
        maybe_applied_before: maybe,
        node,
        attempts,
        answered_by: None,
    };
    loop {
        let now = clock.nanos();
        if now >= deadline {
            let outcome = if maybe_applied {
                Outcome::Info
            } else {
                Outcome::Fail
            };
            return end(outcome, node, attempts, maybe_applied);
        }
        let budget = Duration::from_nanos(deadline - now).min(shared.attempt_timeout);
        attempts += 1;
        node = shared.node_of(&target);
        match http(&target, request, budget, clock) {
            Ok(reply) => match reply.status {
                200 | 204 => {
                    return Done {
                        outcome: Outcome::Ok((reply.status == 200).then_some(reply.body)),
                        duplicate: reply.duplicate.unwrap_or(false),
                        maybe_applied_before: maybe_applied,
                        node,
                        attempts,
                        answered_by: Some(target),
                    };
                }
                307 => {
                    redirects += 1;
                    if redirects % 4 == 0 {
                        // A redirect loop during an election: let it settle.
                        thread::sleep(Duration::from_millis(50));
                    }
                    target = reply
                        .location
                        .map_or_else(|| shared.random_node(rng), |l| authority(&l));
                }
                // Known not applied: retry elsewhere, a little later.
                503 => {
                    thread::sleep(Duration::from_millis(30 + rng.below(70)));
                    target = shared.random_node(rng);
                }
                // Outcome unknown: retry with the same ids (never applied twice).
                504 => {
                    maybe_applied = true;
                    target = shared.random_node(rng);
                }
                other => {
                    shared.anomaly(format!(
                        "{} {} ids {:?} at node {node}: unexpected status {other}: {:?}",
                        request.method, request.path, request.ids, reply.body
                    ));
                    return end(Outcome::Info, node, attempts, true);
                }
            },
            Err(HttpError::NotSent) => {
                thread::sleep(Duration::from_millis(30 + rng.below(70)));
                target = shared.random_node(rng);
            }
            Err(HttpError::Unknown) => {
                maybe_applied = true;
                target = shared.random_node(rng);
            }
        }
    }
}

/// Runs a linearizable read until an answer or the deadline (`Fail` then).
pub(crate) fn read_op(
    shared: &Shared,
    rng: &mut Rng,
    key: &str,
    deadline: u64,
    lease: bool,
) -> Done {
    let clock = shared.clock;
    let path = if lease {
        format!("{}?consistency=lease", key_path(key))
    } else {
        key_path(key)
    };
    let request = Request {
        method: "GET",
        path: &path,
        body: "",
        ids: None,
    };
    let mut target = shared.random_node(rng);
    let mut attempts = 0;
    let mut node = 0;
    loop {
        let now = clock.nanos();
        let failed = |node, attempts| Done {
            outcome: Outcome::Fail,
            duplicate: false,
            maybe_applied_before: false,
            node,
            attempts,
            answered_by: None,
        };
        if now >= deadline {
            return failed(node, attempts);
        }
        let budget = Duration::from_nanos(deadline - now).min(shared.attempt_timeout);
        attempts += 1;
        node = shared.node_of(&target);
        match http(&target, request, budget, clock) {
            Ok(reply) if reply.status == 200 || reply.status == 404 => {
                let value = if reply.status == 200 {
                    reply.body
                } else {
                    String::new()
                };
                return Done {
                    outcome: Outcome::Ok(Some(value)),
                    duplicate: false,
                    maybe_applied_before: false,
                    node,
                    attempts,
                    answered_by: Some(target),
                };
            }
            Ok(reply) if reply.status == 307 => {
                target = reply
                    .location
                    .map_or_else(|| shared.random_node(rng), |l| authority(&l));
            }
            Ok(reply) if reply.status == 503 || reply.status == 504 => {
                thread::sleep(Duration::from_millis(20 + rng.below(50)));
                target = shared.random_node(rng);
            }
            Ok(reply) => {
                shared.anomaly(format!(
                    "GET {path} at node {node}: unexpected status {}: {:?}",
                    reply.status, reply.body
                ));
                return failed(node, attempts);
            }
            Err(_) => {
                thread::sleep(Duration::from_millis(20 + rng.below(50)));
                target = shared.random_node(rng);
            }
        }
    }
}

/// Picks the next operation of a client.
pub(crate) fn next_op(
    shared: &Shared,
    rng: &mut Rng,
    client: u64,
    puts: &mut u64,
) -> (String, OpKind) {
    let roll = rng.below(100);
    let keys = shared.registers + shared.counters;
    if roll < 45 {
        let k = rng.below(keys);
        let key = if k < shared.registers {
            register_key(k)
        } else {
            counter_key(k - shared.registers)
        };
        return (key, OpKind::Get);
    }
    let register = shared.counters == 0 || (shared.registers > 0 && roll < 80);
    if register {
        let key = register_key(rng.below(shared.registers));
        if !(76..80).contains(&roll) {
            *puts += 1;
            return (key, OpKind::Put(format!("{client}-{puts}")));
        }
        return (key, OpKind::Delete);
    }
    (counter_key(rng.below(shared.counters)), OpKind::Incr)
}

pub(crate) fn client_loop(shared: &Shared, client: u64, clients: u64, mut rng: Rng) -> Vec<Record> {
    let clock = shared.clock;
    let mut records = Vec::new();
    let mut process = client;
    let mut client_id = shared.new_client_id();
    let mut request_id = 0u64;
    let mut leader: Option<String> = None;
    let mut puts = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let (key, kind) = next_op(shared, &mut rng, client, &mut puts);
        let call = clock.nanos();
        let deadline = call + rng.between(shared.op_timeout_ms) * 1_000_000;
        let mut ids = None;
        let mut lease = false;
        let done = if kind.is_write() {
            request_id += 1;
            ids = Some((client_id, request_id));
            let (method, path, body) = kind.request(&key);
            let request = Request {
                method,
                path: &path,
                body: &body,
                ids,
            };
            write_op(shared, &mut rng, request, deadline, leader.clone())
        } else {
            lease = shared.lease_reads && rng.percent(33);
            read_op(shared, &mut rng, &key, deadline, lease)
        };
        let ret = clock.nanos();
        if kind.is_write() {
            leader.clone_from(&done.answered_by);
            if !matches!(done.outcome, Outcome::Ok(_)) {
                // These ids stay their session's latest, so the write can be resubmitted after
                // the faults to learn its outcome; the client goes on with a new session.
                client_id = shared.new_client_id();
                request_id = 0;
            } else if done.duplicate && !done.maybe_applied_before {
                shared.anomaly(format!(
                    "{} {key} ids {ids:?}: answered as a retry of a request no attempt could have applied",
                    kind.name()
                ));
            }
        }
        let info = done.outcome == Outcome::Info;
        records.push(Record {
            process,
            key,
            kind,
            call,
            ret,
            outcome: done.outcome,
            ids,
            node: done.node,
            attempts: done.attempts,
            resolution: None,
            lease,
        });
        if info {
            process += clients;
        }
    }
    records
}

/// Resubmits every failed or indeterminate write with its ids (the faults are healed).
pub(crate) fn resolve(
    shared: &Shared,
    records: &mut [Record],
    rng: &mut Rng,
    violations: &mut Vec<String>,
) -> u64 {
    let clock = shared.clock;
    let mut unresolved = 0;
    for record in records.iter_mut() {
        if !record.kind.is_write() || matches!(record.outcome, Outcome::Ok(_)) {
            continue;
        }
        let (method, path, body) = record.request();
        let request = Request {
            method,
            path: &path,
            body: &body,
            ids: record.ids,
        };
        let call = clock.nanos();
        let done = write_op(shared, rng, request, call + 30_000_000_000, None);
        let ret = clock.nanos();
        let Outcome::Ok(value) = done.outcome else {
            unresolved += 1;
            continue;
        };
        let applied = match (done.duplicate, done.maybe_applied_before) {
            (false, _) => Applied::ByResubmission,
            (true, false) => Applied::Before,
            (true, true) => Applied::Either,
        };
        record.resolution = Some(Resolution {
            call,
            ret,
            applied,
            value,
        });
        if record.outcome == Outcome::Fail && applied == Applied::Before {
            violations.push(format!(
                "a write answered as not applied was applied: {}",
                record.describe()
            ));
        }
    }
    unresolved
}

/// Reads every key linearizably once more (recorded in the history).
pub(crate) fn final_reads(
    shared: &Shared,
    rng: &mut Rng,
    keys: &[String],
    process: u64,
) -> Vec<Record> {
    let clock = shared.clock;
    keys.iter()
        .map(|key| {
            let call = clock.nanos();
            let done = read_op(shared, rng, key, call + 30_000_000_000, false);
            Record {
                process,
                key: key.clone(),
                kind: OpKind::Get,
                call,
                ret: clock.nanos(),
                outcome: done.outcome,
                ids: None,
                node: done.node,
                attempts: done.attempts,
                resolution: None,
                lease: false,
            }
        })
        .collect()
}
