//! The nodes' processes, the network faults and the nemesis.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::basics::{Clock, Rng};
use crate::history::key_path;
use crate::http::{Request, Status, http, status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    Partition,
    OneWay,
    IsolateLeader,
    LinkDown,
    Pause,
    Kill,
}

impl Fault {
    pub(crate) const ALL: [Fault; 6] = [
        Fault::Partition,
        Fault::OneWay,
        Fault::IsolateLeader,
        Fault::LinkDown,
        Fault::Pause,
        Fault::Kill,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Partition => "partition",
            Fault::OneWay => "one-way",
            Fault::IsolateLeader => "isolate-leader",
            Fault::LinkDown => "link-down",
            Fault::Pause => "pause",
            Fault::Kill => "kill",
        }
    }

    pub(crate) fn is_process(self) -> bool {
        matches!(self, Fault::Pause | Fault::Kill)
    }
}

pub(crate) fn parse_faults(text: &str) -> Result<Vec<Fault>, String> {
    let mut faults = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "none" {
            continue;
        }
        let fault = Fault::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| format!("unknown fault {name:?}"))?;
        faults.push(fault);
    }
    Ok(faults)
}

/// The nodes' processes and the network faults in force.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) raft_kv: PathBuf,
    pub(crate) ns_prefix: String,
    pub(crate) hub: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) subnet: String,
    pub(crate) port: u16,
    pub(crate) nodes: u64,
    pub(crate) snapshot_threshold: u64,
    pub(crate) lease_reads: bool,
    pub(crate) clock: Clock,
    pub(crate) children: BTreeMap<u64, Child>,
    pub(crate) paused: BTreeSet<u64>,
    /// (a, b): a cannot send to b (a blackhole route in a's namespace).
    pub(crate) blackholes: BTreeSet<(u64, u64)>,
    pub(crate) links_down: BTreeSet<u64>,
    pub(crate) starts: u64,
}

pub(crate) fn run_command(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Cluster {
    pub(crate) fn ids(&self) -> Vec<u64> {
        (1..=self.nodes).collect()
    }

    pub(crate) fn namespace(&self, id: u64) -> String {
        format!("{}-n{id}", self.ns_prefix)
    }

    pub(crate) fn ip(&self, id: u64) -> String {
        format!("{}.{id}", self.subnet)
    }

    pub(crate) fn address(&self, id: u64) -> String {
        format!("{}:{}", self.ip(id), self.port)
    }

    pub(crate) fn start(&mut self, id: u64) -> Result<(), String> {
        let log_path = self.data_dir.join(format!("node-{id}.log"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(id)])
            .arg(&self.raft_kv)
            .args([
                "serve",
                "--id",
                &id.to_string(),
                "--listen",
                &self.address(id),
            ])
            .arg("--data-dir")
            .arg(self.data_dir.join(format!("node-{id}")))
            .args(["--snapshot-threshold", &self.snapshot_threshold.to_string()]);
        for peer in self.ids().into_iter().filter(|&p| p != id) {
            command
                .arg("--peer")
                .arg(format!("{peer}={}", self.address(peer)));
        }
        if self.lease_reads {
            command.arg("--lease-reads");
        }
        command
            .env("RUST_LOG", "warn")
            // A secret between the peers: raft-kv refuses to serve a routable address without
            // one (or TLS).
            .env("RAFT_KV_SECRET", "netns-chaos")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command
            .spawn()
            .map_err(|e| format!("starting node {id}: {e}"))?;
        self.children.insert(id, child);
        self.starts += 1;
        Ok(())
    }

    pub(crate) fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.remove(&id);
    }

    pub(crate) fn signal(&self, id: u64, signal: &str) -> Result<(), String> {
        let Some(child) = self.children.get(&id) else {
            return Ok(());
        };
        run_command(
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string()),
        )
    }

    pub(crate) fn pause(&mut self, id: u64) -> Result<(), String> {
        if self.children.contains_key(&id) && self.paused.insert(id) {
            self.signal(id, "STOP")?;
        }
        Ok(())
    }

    pub(crate) fn blackhole(&mut self, from: u64, to: u64) -> Result<(), String> {
        if from == to || !self.blackholes.insert((from, to)) {
            return Ok(());
        }
        run_command(Command::new("ip").args([
            "-n",
            &self.namespace(from),
            "route",
            "add",
            "blackhole",
            &format!("{}/32", self.ip(to)),
        ]))
    }

    pub(crate) fn link_down(&mut self, id: u64) -> Result<(), String> {
        if !self.links_down.insert(id) {
            return Ok(());
        }
        run_command(Command::new("ip").args([
            "-n",
            &self.hub,
            "link",
            "set",
            &format!("v{id}"),
            "down",
        ]))
    }

    /// Nodes that exited without being killed, with their exit status.
    pub(crate) fn exited(&mut self) -> Vec<(u64, String)> {
        let mut exited = Vec::new();
        for (&id, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push((id, status.to_string()));
            }
        }
        for (id, _) in &exited {
            self.children.remove(id);
            self.paused.remove(id);
        }
        exited
    }

    /// Heals every fault: the network, then SIGCONT, then restarts.
    pub(crate) fn heal(&mut self) -> Result<(), String> {
        for (from, to) in std::mem::take(&mut self.blackholes) {
            run_command(Command::new("ip").args([
                "-n",
                &self.namespace(from),
                "route",
                "del",
                "blackhole",
                &format!("{}/32", self.ip(to)),
            ]))?;
        }
        for id in std::mem::take(&mut self.links_down) {
            run_command(Command::new("ip").args([
                "-n",
                &self.hub,
                "link",
                "set",
                &format!("v{id}"),
                "up",
            ]))?;
        }
        for id in std::mem::take(&mut self.paused) {
            self.signal(id, "CONT")?;
        }
        for id in self.ids() {
            if !self.children.contains_key(&id) {
                self.start(id)?;
            }
        }
        Ok(())
    }

    /// The leader (with the highest term) among the nodes that answer.
    pub(crate) fn leader(&self) -> Option<u64> {
        self.ids()
            .into_iter()
            .filter(|id| !self.paused.contains(id) && self.children.contains_key(id))
            .filter_map(|id| status(&self.address(id), self.clock).map(|s| (id, s)))
            .filter(|(_, s)| s.role == "leader")
            .max_by_key(|(_, s)| s.term)
            .map(|(id, _)| id)
    }

    /// Waits until every node answers and names the same leader, which says it leads.
    pub(crate) fn wait_for_agreed_leader(&self, within: Duration) -> Option<u64> {
        let until = self.clock.nanos() + u64::try_from(within.as_nanos()).unwrap_or(u64::MAX);
        while self.clock.nanos() < until {
            let statuses: Vec<Option<Status>> = self
                .ids()
                .into_iter()
                .map(|id| status(&self.address(id), self.clock))
                .collect();
            let first = statuses.first().cloned().flatten().and_then(|s| s.leader);
            if let Some(leader) = first
                && statuses
                    .iter()
                    .all(|s| s.as_ref().is_some_and(|s| s.leader == Some(leader)))
                && statuses
                    .get(leader as usize - 1)
                    .cloned()
                    .flatten()
                    .is_some_and(|s| s.role == "leader")
            {
                return Some(leader);
            }
            thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A node to hit: the leader half the time (when one is known), otherwise any; and whether
/// it is the leader.
pub(crate) fn victim(cluster: &Cluster, rng: &mut Rng) -> (u64, bool) {
    let leader = if rng.percent(50) {
        cluster.leader()
    } else {
        None
    };
    leader.map_or_else(|| (1 + rng.below(cluster.nodes), false), |l| (l, true))
}

/// Cuts every link between the nodes of `a` and those of `b`, both ways.
fn cut(cluster: &mut Cluster, a: &[u64], b: &[u64]) -> Result<(), String> {
    for &x in a {
        for &y in b {
            cluster.blackhole(x, y)?;
            cluster.blackhole(y, x)?;
        }
    }
    Ok(())
}

/// Injects one fault; returns its label for the counts and what it did.
pub(crate) fn inject(
    cluster: &mut Cluster,
    fault: Fault,
    rng: &mut Rng,
) -> Result<(&'static str, String), String> {
    let n = cluster.nodes;
    let ids = cluster.ids();
    let leader_mark = |is_leader: bool| if is_leader { " (the leader)" } else { "" };
    Ok(match fault {
        Fault::Partition => {
            let mut shuffled = ids.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i as u64 + 1) as usize);
            }
            if n >= 5 && rng.percent(30) {
                // A bridge: two sides that cannot talk, and one node that talks to both.
                let (middle, rest) = (shuffled[0], &shuffled[1..]);
                let (a, b) = rest.split_at(rest.len() / 2);
                cut(cluster, a, b)?;
                (
                    "partition-bridge",
                    format!("partition {a:?} | {b:?}, bridged by {middle}"),
                )
            } else {
                let minority = 1 + rng.below(n / 2) as usize;
                let (a, b) = shuffled.split_at(minority);
                cut(cluster, a, b)?;
                ("partition", format!("partition {a:?} | {b:?}"))
            }
        }
        Fault::OneWay => {
            let (x, is_leader) = victim(cluster, rng);
            let others: Vec<u64> = ids.iter().copied().filter(|&i| i != x).collect();
            let mut chosen: Vec<u64> = others.iter().copied().filter(|_| rng.percent(50)).collect();
            if chosen.is_empty() {
                chosen = others;
            }
            let mark = leader_mark(is_leader);
            if rng.percent(50) {
                for &y in &chosen {
                    cluster.blackhole(x, y)?;
                }
                (
                    "one-way-out",
                    format!("one-way: {x}{mark} cannot send to {chosen:?}"),
                )
            } else {
                for &y in &chosen {
                    cluster.blackhole(y, x)?;
                }
                (
                    "one-way-in",
                    format!("one-way: {chosen:?} cannot send to {x}{mark}"),
                )
            }
        }
        Fault::IsolateLeader => {
            let leader = cluster.leader();
            let x = leader.unwrap_or_else(|| 1 + rng.below(n));
            let others: Vec<u64> = ids.into_iter().filter(|&y| y != x).collect();
            cut(cluster, &[x], &others)?;
            match leader {
                Some(_) => (
                    "isolate-leader",
                    format!("isolate leader {x} from its peers (clients still reach it)"),
                ),
                None => (
                    "isolate-node",
                    format!("isolate {x} from its peers (no leader known)"),
                ),
            }
        }
        Fault::LinkDown => {
            let (x, is_leader) = victim(cluster, rng);
            cluster.link_down(x)?;
            let label = if is_leader {
                "link-down-leader"
            } else {
                "link-down"
            };
            (
                label,
                format!("link of node {x}{} down", leader_mark(is_leader)),
            )
        }
        Fault::Pause => {
            let (x, is_leader) = victim(cluster, rng);
            cluster.pause(x)?;
            let label = if is_leader { "pause-leader" } else { "pause" };
            (label, format!("SIGSTOP node {x}{}", leader_mark(is_leader)))
        }
        Fault::Kill => {
            if rng.percent(15) {
                for id in ids {
                    cluster.kill(id);
                }
                ("kill-all", "SIGKILL every node".to_owned())
            } else {
                let (x, is_leader) = victim(cluster, rng);
                cluster.kill(x);
                let label = if is_leader { "kill-leader" } else { "kill" };
                (label, format!("SIGKILL node {x}{}", leader_mark(is_leader)))
            }
        }
    })
}

/// Sleeps until `until` (history time).
pub(crate) fn sleep_until(clock: Clock, until: u64) {
    let now = clock.nanos();
    if until > now {
        thread::sleep(Duration::from_nanos(until - now));
    }
}

#[derive(Debug, Default)]
pub(crate) struct NemesisReport {
    pub(crate) counts: BTreeMap<&'static str, u64>,
    pub(crate) crashes: Vec<String>,
}

pub(crate) fn nemesis(
    cluster: &mut Cluster,
    faults: &[Fault],
    quiet_ms: (u64, u64),
    hold_ms: (u64, u64),
    rng: &mut Rng,
    until: u64,
    log: &mut File,
) -> Result<NemesisReport, String> {
    let clock = cluster.clock;
    let mut report = NemesisReport::default();
    let ms = |ms: u64| ms * 1_000_000;
    let note = |log: &mut File, text: &str| {
        let line = format!("[{:8.3}s] nemesis: {text}", clock.secs());
        println!("{line}");
        let _ = writeln!(log, "{line}");
    };
    loop {
        let quiet = clock.nanos() + ms(rng.between(quiet_ms));
        sleep_until(clock, quiet.min(until));
        for (id, exit) in cluster.exited() {
            let text = format!("node {id} exited by itself ({exit}); see node-{id}.log");
            note(log, &format!("CRASH: {text}"));
            report.crashes.push(text);
        }
        if clock.nanos() >= until || faults.is_empty() {
            break;
        }
        let Some(first) = rng.pick(faults) else { break };
        let mut chosen = vec![first];
        if rng.percent(25) {
            let others: Vec<Fault> = faults
                .iter()
                .copied()
                .filter(|f| f.is_process() != first.is_process())
                .collect();
            chosen.extend(rng.pick(&others));
        }
        for fault in chosen {
            let (label, text) = inject(cluster, fault, rng)?;
            *report.counts.entry(label).or_default() += 1;
            note(log, &text);
        }
        let hold = clock.nanos() + ms(rng.between(hold_ms));
        sleep_until(clock, hold.min(until));
        cluster.heal()?;
        note(log, "heal");
    }
    cluster.heal()?;
    note(log, "heal (end of the nemesis)");
    Ok(report)
}

/// Every replica, once caught up, holds the same value of every key as the final reads.
pub(crate) fn check_convergence(
    cluster: &Cluster,
    finals: &BTreeMap<String, String>,
    violations: &mut Vec<String>,
) -> Result<(), String> {
    let clock = cluster.clock;
    let leader = cluster
        .wait_for_agreed_leader(Duration::from_secs(30))
        .ok_or("no leader for the convergence check")?;
    let commit = status(&cluster.address(leader), clock)
        .ok_or("the leader does not answer /status")?
        .commit;
    for id in cluster.ids() {
        let until = clock.nanos() + 30_000_000_000;
        loop {
            if status(&cluster.address(id), clock).is_some_and(|s| s.applied >= commit) {
                break;
            }
            if clock.nanos() > until {
                violations.push(format!(
                    "node {id} did not apply up to the commit index {commit} within 30 s of the heal"
                ));
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        for (key, expected) in finals {
            let path = format!("{}?consistency=stale", key_path(key));
            let request = Request {
                method: "GET",
                path: &path,
                body: "",
                ids: None,
            };
            let got = match http(&cluster.address(id), request, Duration::from_secs(3), clock) {
                Ok(reply) if reply.status == 200 => reply.body,
                Ok(reply) if reply.status == 404 => String::new(),
                other => return Err(format!("stale read of {key} at node {id}: {other:?}")),
            };
            if got != *expected {
                violations.push(format!(
                    "replicas diverge: node {id} holds {key} = {got:?}, the cluster read {expected:?}"
                ));
            }
        }
    }
    Ok(())
}
