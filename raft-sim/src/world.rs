//! The simulated world: nodes, network, clients and a clock, driven by one ordered event queue.
//!
//! Each step pops the earliest event (ties broken by insertion order), feeds the production
//! engine and executes its outputs the way a runtime would, then runs the safety checks (those
//! on the whole cluster once all of the event's outputs have run). Given the same seed and
//! options the run is identical, which is what makes a failing seed a regression test.
//!
//! The events of the queue are defined in [`event`], below the world and its parts. The
//! engine's outputs are carried out in [`outputs`], those that concern snapshots in
//! [`snapshots`], the disks' writes in [`disk`], the requests the
//! leader's peer tasks fill in [`peers`], the nemesis in [`nemesis`] (its split brain for lease
//! reads in [`split_brain`]), membership churn in [`churn`] and the clients' requests in
//! [`clients`], lease reads in [`leases`], follower reads in [`follower_reads`]; the heal that
//! ends the faults, and the probe whose commit shows the cluster recovered, in [`heal`]; the
//! crashes aimed at appends, acknowledgements and votes, and the leader's slow disk, in
//! [`targeted`].
//!
//! Events run on the simulated time; each node's engine sees its own clock
//! ([`Clocks`], exact unless `SimOptions::clocks` makes them drift).

mod churn;
mod clients;
mod disk;
mod event;
mod follower_reads;
mod heal;
mod leases;
mod nemesis;
mod outputs;
mod peers;
mod snapshots;
mod split_brain;
mod stream_table;
mod streams;
mod targeted;
mod trap;

use std::collections::{BTreeMap, BTreeSet};

use raft_core::engine::{Engine, Input, Output, RoleKind};
use raft_core::message::Message;
use raft_core::{Config, LogIndex, Membership, NodeId, Pacing, Replication, Term};

use self::event::{Event, Fill};
use crate::client::Clients;
use crate::clock::{Clocks, TICK_MS};
use crate::faults::{Bug, Network};
use crate::invariants::{Checker, received_term};
use crate::node::{DiskOp, SimNode};
use crate::options::{
    ChurnCounts, FollowerReadCounts, LeaseCounts, SimOptions, SnapshotCounts, SnapshotMode,
    TargetedCounts,
};
use crate::rng::SimRng;

/// Clients added with lease reads on: two lease readers and a writer that follows the newest
/// leader (see [`clients`]).
const LEASE_CLIENTS: usize = 3;

#[derive(Debug)]
pub(crate) struct World {
    seed: u64,
    rng: SimRng,
    pub(crate) now_ms: u64,
    events: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    /// Every node ever started (and, with churn, the ones started later), numbered from 1 in
    /// this order: node `i` has id `i + 1`.
    pub(crate) nodes: Vec<SimNode>,
    config: Config,
    network: Network,
    disk_latency_max_ms: u64,
    /// How often the nemesis strikes: each seed is calm or violent.
    nemesis_min_ms: u64,
    pub(crate) checker: Checker,
    pub(crate) clients: Clients,
    bug: Option<Bug>,
    snapshot_mode: SnapshotMode,
    /// What snapshots did in this run.
    pub(crate) snapshot_counts: SnapshotCounts,
    /// Membership churn on (see [`churn`]).
    churn: bool,
    /// How often churn strikes (the shortest pause between two changes).
    churn_min_ms: u64,
    /// The changes asked for and their answers (the checker counts what committed).
    pub(crate) churn_counts: ChurnCounts,
    next_change_id: u64,
    /// Each node's clock.
    clocks: Clocks,
    /// Lease reads on (see [`clients`]).
    leases: bool,
    /// What the lease reads became.
    pub(crate) lease_counts: LeaseCounts,
    /// The lease read being handed to an engine right now: a `ReadReady` for it in the same
    /// step was served at once.
    lease_read_asked: Option<u64>,
    /// The checks of reads when the engine answers them are on.
    read_checks: bool,
    /// Clients from this one on play the split brain (with lease reads on): this one writes
    /// to the newest leader, the others ask for lease reads.
    writers: usize,
    /// What the run was asked to do (the switches added with follower reads are read here).
    options: SimOptions,
    /// The follower reads asked for and not answered yet.
    follower_reads_pending: BTreeSet<u64>,
    /// Every read-index request a node sent, by node, number, term and leader: the first
    /// life that sent it.
    read_index_sent: BTreeMap<(usize, u64, Term, NodeId), u64>,
    /// The outputs being run answer a read-index request across lives (see [`follower_reads`]).
    answer_across_lives: bool,
    /// What the follower reads became.
    pub(crate) follower_read_counts: FollowerReadCounts,
    /// The step after which the faults stop (see [`heal`]), if they do in this run.
    heal_step: Option<u64>,
    /// The faults stopped: no nemesis, no churn, a calm network.
    healed: bool,
    /// The number of the probe's next write after the heal.
    next_probe: u64,
    /// The targeted nemesis's armed crashes (see [`targeted`]).
    trap: trap::Trap,
    /// The leader's disk made slow by the targeted nemesis, if it is.
    slow_disk: Option<trap::SlowDisk>,
    /// What the targeted nemesis did.
    pub(crate) targeted_counts: TargetedCounts,
    /// The streams of streaming replication (see [`streams`]).
    pub(crate) streams: stream_table::Streams,
}

impl World {
    pub(crate) fn new(seed: u64, options: &SimOptions) -> World {
        let mut rng = SimRng::new(seed);
        let node_count = if rng.percent(50) { 3 } else { 5 };
        let mut config = random_config(&mut rng, options.snapshots);
        if options.streaming {
            config.replication = Replication::Streaming;
            config.stream_max_unacked_bytes = rng.range(64, 8192);
        }
        let clocks = World::lease_config(seed, options, &mut config);
        let ids: Vec<NodeId> = (1..=node_count as u64).map(NodeId).collect();
        let membership = Membership::new(ids.clone());
        let writers = rng.index(4) + 2;
        let client_count = writers + if options.leases { LEASE_CLIENTS } else { 0 };
        let mut checker = Checker::new(membership.clone(), config.pre_vote);
        checker.lease_reads = config.lease_reads;
        checker.outcomes_only = options.outcomes_only;
        let mut world = World {
            seed,
            rng,
            now_ms: 0,
            events: BTreeMap::new(),
            next_event: 0,
            nodes: ids
                .iter()
                .map(|&id| SimNode::new(id, membership.clone()))
                .collect(),
            config,
            network: Network::calm(),
            disk_latency_max_ms: 5,
            nemesis_min_ms: 0,
            checker,
            clients: Clients::new(client_count, node_count),
            bug: options.bug,
            snapshot_mode: options.snapshots,
            snapshot_counts: SnapshotCounts::default(),
            churn: options.churn,
            churn_min_ms: 0,
            churn_counts: ChurnCounts::default(),
            next_change_id: 0,
            clocks,
            leases: options.leases,
            lease_counts: LeaseCounts::default(),
            lease_read_asked: None,
            writers,
            read_checks: options.read_checks,
            options: options.clone(),
            follower_reads_pending: BTreeSet::new(),
            read_index_sent: BTreeMap::new(),
            answer_across_lives: false,
            follower_read_counts: FollowerReadCounts::default(),
            heal_step: None,
            healed: false,
            next_probe: 0,
            trap: trap::Trap::default(),
            slow_disk: None,
            targeted_counts: TargetedCounts::default(),
            streams: stream_table::Streams::default(),
        };
        world.heal_step = world.draw_heal_step(seed);
        world.nemesis_min_ms = [20, 50, 150][world.rng.index(3)];
        for node in 0..node_count {
            world.start_node(node);
        }
        world.schedule(500, Event::Nemesis);
        for client in 0..client_count {
            world.schedule(100 + client as u64, Event::ClientStart(client));
        }
        if world.churn {
            world.start_churn();
        }
        world
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.next_event += 1;
        self.events
            .insert((self.now_ms + delay_ms, self.next_event), event);
    }

    /// Runs one event; false when nothing is left.
    pub(crate) fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now_ms = at;
        self.checker.step += 1;
        self.checker.now_ms = at;
        self.handle(event);
        if self.heal_step == Some(self.checker.step) {
            self.heal();
        }
        self.checker.after_world_step(&self.nodes);
        true
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(node) => {
                if self.nodes[node].is_up() {
                    self.tick(node);
                }
            }
            Event::Deliver { from, to, message } => {
                if self.network.delivers(from, to) {
                    let from = self.nodes[from].id;
                    self.step_node(to, Input::Received { from, message });
                }
            }
            Event::SendFailed {
                node,
                epoch,
                to,
                seq,
            } => {
                if self.nodes[node].epoch == epoch {
                    self.step_node(node, Input::SendFailed { to, seq });
                }
            }
            Event::LogFlush { node, epoch } => self.flush_log(node, epoch),
            Event::LogReport { node, epoch } => self.report_log(node, epoch),
            Event::HardStateFlush { node, epoch } => self.flush_hard_state(node, epoch),
            Event::SnapshotWritten {
                node,
                epoch,
                last_log_id,
                membership,
                data,
            } => self.snapshot_written(node, epoch, last_log_id, membership, data),
            Event::Fill {
                node,
                epoch,
                to,
                fill,
            } => self.deferred_fill(node, epoch, to, *fill),
            Event::Crash { node, epoch } => {
                if self.nodes[node].epoch == epoch && !self.healed {
                    let downtime = self.rng.range(50, 1_000);
                    self.crash(node, downtime);
                }
            }
            Event::TrapCrash {
                node,
                epoch,
                downtime_ms,
            } => {
                if self.nodes[node].epoch == epoch && !self.healed {
                    self.crash(node, downtime_ms);
                }
            }
            Event::Restart(node) => {
                // A heal may have restarted the node already.
                if !self.nodes[node].retired && !self.nodes[node].is_up() {
                    self.start_node(node);
                }
            }
            Event::Nemesis if !self.healed => self.nemesis(),
            Event::Churn if !self.healed => self.churn(),
            Event::Nemesis | Event::Churn => {}
            Event::SplitBrain { node, epoch, cut } => self.split_brain_act(node, epoch, cut),
            Event::Probe => self.probe(),
            Event::StreamOpen {
                key,
                from,
                to,
                message,
            } => self.stream_open_arrives(key, from, to, message),
            Event::StreamDeliver {
                key,
                from,
                to,
                message,
            } => self.stream_delivers(key, from, to, message),
            Event::StreamClosed {
                node,
                epoch,
                peer,
                seq,
            } => self.stream_end_reported(node, epoch, peer, seq),
            Event::ClientStart(client) => self.client_start(client),
            Event::ClientTimeout(op) => {
                let reschedule = self.clients.abandon(op);
                self.reschedule_clients(reschedule);
            }
        }
    }

    /// Builds a node's engine from its durable state (start or restart).
    fn start_node(&mut self, node: usize) {
        let restored = self.nodes[node].restored_state();
        let seed = self.seed ^ (self.nodes[node].epoch << 32) ^ node as u64;
        let id = self.nodes[node].id;
        match Engine::new(
            id,
            self.nodes[node].boot_membership.clone(),
            self.config.clone(),
            restored,
            seed,
        ) {
            Ok(mut engine) => {
                if let Some(bug) = self.bug.and_then(Bug::in_engine) {
                    engine.plant_bug(bug);
                }
                let outputs: Vec<Output> = engine.drain_outputs().collect();
                self.nodes[node].engine = Some(engine);
                // A restart may replace a log that disagrees with the durable snapshot.
                self.nodes[node].starting = true;
                self.run_outputs(node, outputs);
                self.nodes[node].starting = false;
                if self.leases {
                    // As the runtime does: its first tick comes before any message.
                    self.tick(node);
                } else {
                    let delay = self.rng.range(1, TICK_MS + 1);
                    self.schedule(delay, Event::Tick(node));
                }
            }
            Err(error) => self.checker.fail("restore", format!("node {id}: {error}")),
        }
    }

    /// The node's engine hears its clock; the next tick is scheduled.
    fn tick(&mut self, node: usize) {
        let now_ms = self.clocks.tick(node, self.now_ms);
        self.note_tick(node, now_ms);
        self.step_node(node, Input::Tick { now_ms });
        self.schedule(TICK_MS, Event::Tick(node));
    }

    /// Feeds one input to a live node's engine and executes its outputs.
    fn step_node(&mut self, node: usize, input: Input) {
        let across_lives = self.answers_across_lives(node, &input);
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            return;
        };
        let (received, from, timeout_now) = match &input {
            Input::Received { message, from } => (
                received_term(message),
                Some(*from),
                matches!(message, Message::TimeoutNow(_)),
            ),
            _ => (None, None, false),
        };
        let leader_request = World::leader_request_term(&input);
        let before = engine.status();
        let outputs: Vec<Output> = engine.step(input).collect();
        let after = engine.status();
        self.note_leader_contact(node, leader_request, &after);
        let elected = after.role == RoleKind::Leader && before.role != RoleKind::Leader;
        if let Some((term, kind)) = received {
            self.checker
                .on_received(&self.nodes[node], term, kind, &before, &after);
        }
        self.checker
            .check_disruption(&self.nodes, node, from, timeout_now, &before, &after);
        self.checker
            .check_campaign_as_voter(&self.nodes[node], &before, &after);
        self.checker.after_step(&self.nodes[node], before, after);
        self.answer_across_lives = across_lives;
        self.run_outputs(node, outputs);
        self.answer_across_lives = false;
        if elected {
            self.spring_on_election(node);
        }
        if elected && self.leases {
            self.chase_new_leader(node);
        }
    }
}

/// A configuration drawn from the seed. Without snapshots it draws exactly what the
/// simulator drew before snapshots existed, so old seeds replay the same runs.
fn random_config(rng: &mut SimRng, snapshots: SnapshotMode) -> Config {
    let election_timeout_ms = [150, 300][rng.index(2)];
    // Drawn in this order (the order of the fields before `Config` became non-exhaustive),
    // so recorded seeds replay the same runs.
    let mut config = Config::default();
    config.election_timeout_ms = election_timeout_ms;
    config.heartbeat_interval_ms = election_timeout_ms / 5;
    config.pre_vote = rng.percent(75);
    config.check_quorum = rng.percent(75);
    config.pacing = if rng.percent(50) {
        Pacing::Eager
    } else {
        Pacing::Heartbeat
    };
    config.max_inflight_requests = rng.index(8) + 1;
    config.batch_entries_initial = rng.range(1, 9);
    config.batch_entries_max = rng.range(8, 65);
    config.batch_bytes_max = rng.range(64, 4096);
    config.request_timeout_ms = election_timeout_ms;
    // Every value from 1 (the default: only full batches beyond one request in flight) to the
    // window (every entry at once). Derived from an earlier draw instead of drawn, so that the
    // rest of the seed's draws stay what they were.
    let window = config.max_inflight_requests as u64;
    config.max_inflight_partial_requests = (config.batch_bytes_max % window + 1) as usize;
    if snapshots != SnapshotMode::Off {
        // Off by count in a quarter of the seeds: the nemesis still asks for snapshots.
        let by_count = snapshots == SnapshotMode::Always || !rng.percent(25);
        config.snapshot_entries = if by_count { rng.range(3, 41) } else { 0 };
        config.snapshot_keep_entries = rng.range(0, 21);
        // The states are small (tens of bytes): half the seeds use tiny chunks, so transfers
        // take several of them, lose some and resume.
        config.snapshot_chunk_bytes = if rng.percent(50) {
            rng.range(8, 33)
        } else {
            rng.range(8, 257)
        };
    }
    config
}
