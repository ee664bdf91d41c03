//! The targeted nemesis (with `SimOptions::targeted`): faults aimed at the windows where a
//! broken durability rule does its harm, which crashes at random moments hit only rarely.
//!
//! Now and then the nemesis arms a *trap* instead of drawing a fault. A trap crashes nodes
//! right after they do something whose safety rests on their disk, before the write can sync
//! (a crash loses the node's page cache: every queued write, see [`SimNode::crash`]):
//! - the leader, right after it appends new entries to its own log;
//! - the nodes that acknowledge the leader's newest entries, each right after it sends its
//!   acknowledgement (up to a majority of them), with or without the leader;
//! - a candidate right after it sends its vote requests, and voters right after they grant
//!   their vote.
//!
//! Or it slows the disk of exactly the leader for a while (its syncs take tens of milliseconds
//! while the followers' take a few), so that the followers' acknowledgements arrive long before
//! the leader's own entries are durable: the window in which a leader that counts itself too
//! early commits an entry held durably by a minority.
//!
//! A trap is disarmed once it sprang, once it expired (an election timeout or two), and at the
//! heal. With every rule of the engine right, these crashes lose nothing acknowledged; with one
//! of the planted durability bugs (`ack-before-sync`, `forget-vote`, `commit-before-own-sync`,
//! `vote-request-before-sync`) they turn the broken rule into a lost commit or two leaders in a
//! term, which the outcome checks see (see `SimOptions::outcomes_only`).
//!
//! [`SimNode::crash`]: crate::node::SimNode::crash

use raft_core::engine::{Input, Output, RoleKind};
use raft_core::message::{AppendOutcome, Message};
use raft_core::{LogIndex, NodeId};

use super::World;
use super::event::Event;
use super::trap::{SlowDisk, Trap};
use crate::node::node_by_id;

/// The share of the nemesis's strikes that arm a trap or slow a disk.
const TARGETED_PERCENT: u64 = 30;
/// How long a node crashed right after a vote or an append stays down: moments, so that it is
/// back while the term it voted in, or the leader it acknowledged, still runs.
const SHORT_DOWNTIME_MS: (u64, u64) = (1, 60);
/// How long a node crashed right after acknowledging the newest entries stays down: longer
/// than the leader, so that the leader may come back and an election go on without it.
const ACKER_DOWNTIME_MS: (u64, u64) = (300, 1_500);

impl World {
    /// With the targeted nemesis on, now and then (a draw only then): arms a trap, slows a
    /// disk, or both. False when it does not: the nemesis strikes as usual.
    pub(super) fn targeted_strike(&mut self) -> bool {
        if !self.options.targeted || !self.rng.percent(TARGETED_PERCENT) {
            return false;
        }
        let timeout = self.config.election_timeout_ms;
        let until_ms = self.now_ms + self.rng.range(timeout, 2 * timeout + 1);
        let majority = (self.nodes.len() / 2 + 1) as u64;
        let mut trap = Trap {
            until_ms,
            ..Trap::default()
        };
        let leader = self.leader();
        match self.rng.index(6) {
            0 => trap.leader_append = true,
            1 => trap.ackers = self.rng.range(1, majority + 1) as usize,
            2 => {
                // The leader's disk lags; it crashes right after committing, and so do the
                // nodes whose acknowledgements made the commit.
                let Some(leader) = leader else {
                    return false;
                };
                self.slow_disk_of(leader);
                trap.leader_commit = true;
                trap.ackers = self.rng.range(1, majority) as usize;
            }
            3 => {
                trap.voters = self.rng.range(1, 3) as usize;
                trap.elected = true;
            }
            4 => {
                let Some(leader) = leader else {
                    return false;
                };
                self.slow_disk_of(leader);
                self.targeted_counts.traps += 1;
                return true;
            }
            _ => {
                // A follower's disk lags (its term and vote too), leadership is handed to it,
                // and it is crashed right after it wins, back within moments.
                let node = self.pick_node();
                if let Some(leader) = leader.filter(|&leader| leader != node) {
                    self.slow_disk_of(node);
                    let to = self.nodes[node].id;
                    self.step_node(leader, Input::TransferRequested { to });
                }
                trap.elected = true;
                trap.voters = 1;
            }
        }
        self.trap = trap;
        self.targeted_counts.traps += 1;
        true
    }

    fn slow_disk_of(&mut self, node: usize) {
        self.slow_disk = Some(SlowDisk {
            node,
            latency_max_ms: self.rng.range(20, 101),
            until_ms: self.now_ms + self.rng.range(200, 2_001),
        });
        self.targeted_counts.slow_disks += 1;
    }

    /// The longest a sync on `node`'s disk takes now.
    pub(super) fn disk_latency_max(&self, node: usize) -> u64 {
        match self.slow_disk {
            Some(slow) if slow.node == node && self.now_ms < slow.until_ms && !self.healed => {
                slow.latency_max_ms
            }
            _ => self.disk_latency_max_ms,
        }
    }

    /// Disarms the traps and speeds the disks up (at the heal).
    pub(super) fn disarm_targeted(&mut self) {
        self.trap = Trap::default();
        self.slow_disk = None;
    }

    /// Springs an armed trap if `output`, which `node` is about to execute, is the moment it
    /// waits for: the node crashes once the outputs of this step have run (before any write
    /// of them syncs, unless its flush was due at once).
    pub(super) fn spring_trap(&mut self, node: usize, output: &Output) {
        if !self.trap.is_armed(self.now_ms) || self.healed {
            return;
        }
        let Some(status) = self.nodes[node].engine.as_ref().map(|e| e.status()) else {
            return;
        };
        let leading = status.role == RoleKind::Leader;
        let trap = &mut self.trap;
        let downtime = match output {
            Output::AppendLog { entries, .. }
                if trap.leader_append && leading && !entries.is_empty() =>
            {
                trap.leader_append = false;
                SHORT_DOWNTIME_MS
            }
            Output::Commit { .. } if trap.leader_commit && leading => {
                trap.leader_commit = false;
                SHORT_DOWNTIME_MS
            }
            Output::Send { to, message } => match message {
                Message::AppendEntriesResponse(response) if trap.ackers > 0 => {
                    let AppendOutcome::Success { match_index } = response.outcome else {
                        return;
                    };
                    if match_index < self.newest_uncommitted(*to) {
                        return;
                    }
                    self.trap.ackers -= 1;
                    ACKER_DOWNTIME_MS
                }
                Message::RequestVote(request) if trap.voters > 0 && !request.pre_vote => {
                    trap.voters -= 1;
                    SHORT_DOWNTIME_MS
                }
                Message::RequestVoteResponse(response)
                    if trap.voters > 0 && response.granted && !response.pre_vote =>
                {
                    trap.voters -= 1;
                    SHORT_DOWNTIME_MS
                }
                _ => return,
            },
            _ => return,
        };
        self.spring(node, downtime);
    }

    /// Springs an armed trap on a node that just won an election.
    pub(super) fn spring_on_election(&mut self, node: usize) {
        if self.trap.is_armed(self.now_ms) && self.trap.elected && !self.healed {
            self.trap.elected = false;
            self.spring(node, SHORT_DOWNTIME_MS);
        }
    }

    /// Crashes `node` once the outputs of this step have run, for a downtime drawn from
    /// `(min, max)`.
    fn spring(&mut self, node: usize, (min, max): (u64, u64)) {
        self.targeted_counts.crashes += 1;
        let epoch = self.nodes[node].epoch;
        let downtime_ms = self.rng.range(min, max + 1);
        let event = Event::TrapCrash {
            node,
            epoch,
            downtime_ms,
        };
        self.schedule(0, event);
    }

    /// The last index of `leader`'s log if some of it is not committed yet, else an index no
    /// acknowledgement reaches (acknowledgements of entries already committed are not the
    /// newest).
    fn newest_uncommitted(&self, leader: NodeId) -> LogIndex {
        let status = node_by_id(&self.nodes, leader)
            .and_then(|sim| sim.engine.as_ref())
            .map(|engine| engine.status());
        match status {
            Some(status)
                if status.role == RoleKind::Leader
                    && status.last_log_id.index > status.commit_index =>
            {
                status.last_log_id.index
            }
            _ => LogIndex(u64::MAX),
        }
    }
}
