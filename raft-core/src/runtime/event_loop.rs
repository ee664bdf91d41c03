//! The event loop: the one task that owns a node's engine.
//!
//! It takes events first in, first out, in rounds: everything queued is taken at once, client
//! proposals of the round are merged into one `Input::Proposed` (one log append, however many
//! callers), and every other event is stepped in order. Each output is executed right away, in
//! order: log writes are awaited (the store returns before they are durable), everything slow is
//! handed to a task (hard state, peers, the apply task). What waits on the engine is kept by
//! the concern it belongs to: [`Proposals`], [`PendingReads`], [`PeerReplies`] and the
//! [`SnapshotReceiver`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info};

use super::claim::ClaimGuard;
use super::clock::Clock;
use super::events::{Event, Inbound};
use super::executor::Executor;
use super::membership::MembershipStatus;
use super::node_metrics::NodeMetrics;
use super::reads::ReadKind;
use super::shared::Shared;
use super::status::NodeStatus;
use crate::engine::{Engine, Input, Output, RoleKind};
use crate::error::Error;
use crate::message::Message;
use crate::storage::LogStore;
use crate::types::{LogId, LogIndex, NodeId, Term};

/// Most events taken from the queue in one round.
const EVENTS_PER_ROUND: usize = 1024;

/// Whether the loop goes on after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

pub(crate) struct EventLoop {
    engine: Engine,
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    log: Arc<dyn LogStore>,
    executor: Executor,
    tasks: Vec<JoinHandle<()>>,
    durable: watch::Receiver<LogId>,
    metrics: NodeMetrics,
    clock: Clock,
    /// The clock reading of the last `Input::Tick` stepped.
    last_tick_ms: Option<u64>,
    /// Events after a shutdown request in its round; answered when stopping.
    leftover: Vec<Event>,
    /// Reused buffer of the engine's outputs.
    outputs: Vec<Output>,
    /// The configuration the peer tasks follow (its entry's index and term: a configuration
    /// that replaced another at the same index is a different one).
    synced_membership: (LogIndex, Option<Term>),
    /// The configurations (in force, committed) last published.
    published_membership: MembershipKey,
    /// The node's claim on its log store, given back when the loop is dropped (after every
    /// task was joined).
    _claim: ClaimGuard,
}

impl EventLoop {
    /// A loop for `engine`, fed by `events`, executing outputs with `executor`; it joins
    /// `tasks` when it stops, then gives back the `claim` on the log store.
    pub(crate) fn new(
        engine: Engine,
        events: mpsc::UnboundedReceiver<Event>,
        log: Arc<dyn LogStore>,
        executor: Executor,
        tasks: Vec<JoinHandle<()>>,
        claim: ClaimGuard,
    ) -> EventLoop {
        let mut durable = log.durable();
        durable.mark_unchanged();
        let shared = executor.shared().clone();
        EventLoop {
            engine,
            metrics: NodeMetrics::new(shared.id),
            shared,
            events,
            log,
            executor,
            tasks,
            durable,
            clock: Clock::start(),
            last_tick_ms: None,
            leftover: Vec::new(),
            outputs: Vec::new(),
            synced_membership: (LogIndex::ZERO, None),
            published_membership: (LogIndex::ZERO, None, LogIndex::ZERO, None),
            _claim: claim,
        }
    }

    /// Runs the node until shutdown or a fatal error, then stops every task.
    pub(crate) async fn run(mut self) {
        let _stopped = StoppedGuard(self.shared.clone());
        self.synced_membership = config_id(&self.engine, self.engine.status().membership_index);
        self.executor.peers.set_span(tracing::Span::current());
        self.executor.peers.sync(self.engine.membership());
        self.publish_status();
        let mut outputs: Vec<Output> = self.engine.drain_outputs().collect();
        let mut result = self.run_outputs(&mut outputs).await;
        if result.is_ok() {
            result = self.main_loop().await;
        }
        self.stop(result).await;
    }

    async fn main_loop(&mut self) -> Result<(), Error> {
        let tick = Duration::from_millis(self.shared.config.tick_interval_ms);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut round = Vec::with_capacity(EVENTS_PER_ROUND);
        loop {
            // Ticks and durability first: a flood of client events must never starve the
            // heartbeats (followers would elect a new leader) or the commit of durable entries.
            tokio::select! {
                biased;
                _ = ticker.tick() => self.on_tick().await?,
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return Err(Error::storage("the log store closed its durability watch"));
                    }
                    self.on_durable().await?;
                }
                received = self.events.recv_many(&mut round, EVENTS_PER_ROUND) => {
                    if received == 0 {
                        return Ok(());
                    }
                    self.gather_callers(&mut round).await;
                    if self.engine.config().lease_reads {
                        // Leases count on when messages were really received: a follower that
                        // recorded its leader's heartbeat at the time of a late tick (a busy
                        // loop delays ticks) would stop refusing votes too early.
                        self.step_clock().await?;
                    }
                    if self.on_round(&mut round).await? == Flow::Stop {
                        return Ok(());
                    }
                }
            }
            self.publish_status();
        }
    }

    /// Lets the callers that are ready to run join a round that holds client requests.
    ///
    /// A caller that queues a request wakes the loop, and tokio runs a task woken by another
    /// one next on the same worker (its LIFO slot): without a pause the loop would take each
    /// round as soon as the first of a crowd of callers queued into it, and step one or two
    /// proposals at a time. Yielding once puts the loop behind the tasks already runnable; what
    /// they queued meanwhile joins the round, so one log append and one send serve them all.
    /// Measured on the `http` benchmark with 256 clients: 2 proposals per round before, 55
    /// after. With one caller the pause is one trip through the scheduler (a microsecond or
    /// two), and rounds of only peer traffic do not pause.
    async fn gather_callers(&mut self, round: &mut Vec<Event>) {
        let from_callers = round
            .iter()
            .any(|event| matches!(event, Event::Propose(_) | Event::Read(..)));
        if !from_callers || round.len() >= EVENTS_PER_ROUND {
            return;
        }
        tokio::task::yield_now().await;
        while round.len() < EVENTS_PER_ROUND {
            match self.events.try_recv() {
                Ok(event) => round.push(event),
                Err(_) => break,
            }
        }
    }

    /// Tells the engine the time now, unless it already knows it.
    async fn step_clock(&mut self) -> Result<(), Error> {
        let now_ms = self.clock.now_ms();
        if self.last_tick_ms.is_some_and(|last| last >= now_ms) {
            return Ok(());
        }
        self.last_tick_ms = Some(now_ms);
        self.step(Input::Tick { now_ms }).await
    }

    async fn on_tick(&mut self) -> Result<(), Error> {
        self.step_clock().await?;
        // Answers the engine will never give (a request it ignored, a read without
        // check-quorum) leave closed senders behind.
        self.executor.replies.prune_closed();
        self.executor.reads.prune_closed();
        let engine = &self.engine;
        if engine.role_kind() == RoleKind::Leader {
            let last = engine.status().last_log_id.index;
            self.metrics.record_followers(&engine.followers(), last);
        } else {
            self.metrics.clear_followers();
        }
        let log_bytes = self.log.byte_count();
        self.metrics.record_log_bytes(log_bytes);
        if self.executor.size_policy.due(log_bytes) {
            // The engine ignores it while a snapshot is being made or nothing new committed.
            self.step(Input::SnapshotRequested).await?;
        }
        Ok(())
    }

    async fn on_durable(&mut self) -> Result<(), Error> {
        // Read now, not when the store changed it: every write the engine asked for has been
        // issued, so the value describes the log the engine holds (see `LogStore::durable`).
        let upto = *self.durable.borrow_and_update();
        let epoch = self.executor.log_epoch;
        self.step(Input::LogPersisted { upto, epoch }).await
    }

    async fn on_round(&mut self, round: &mut Vec<Event>) -> Result<Flow, Error> {
        let mut events = round.drain(..);
        while let Some(event) = events.next() {
            let handled = match event {
                Event::Propose(proposal) => {
                    self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                    self.executor.proposals.gather(proposal);
                    Ok(())
                }
                Event::Shutdown => {
                    self.leftover.extend(events);
                    return Ok(Flow::Stop);
                }
                Event::Failed(err) => Err(err),
                other => self.on_event(other).await,
            };
            if let Err(err) = handled {
                self.leftover.extend(events);
                return Err(err);
            }
        }
        drop(events);
        self.flush_proposals().await?;
        Ok(Flow::Continue)
    }

    async fn on_event(&mut self, event: Event) -> Result<(), Error> {
        let input = match event {
            Event::Read(kind, ticket) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                // Taken off its slot as it is registered, before the clock is read and the
                // engine sees it: every caller in the group arrived before its lease is judged
                // and its read index chosen. (If the clock step fails, the node stops and
                // refuses the registered group with the rest.)
                let id = self
                    .executor
                    .reads
                    .register(&self.shared.reads, kind, ticket);
                if kind == ReadKind::Lease {
                    // The lease is judged by the engine's clock, which moves only with ticks:
                    // after a stall (a paused process, a starved thread) the last tick can be
                    // long past, and a lease that ended meanwhile would still look valid.
                    self.step_clock().await?;
                }
                match kind {
                    ReadKind::Index => Input::ReadRequested { id },
                    ReadKind::Lease => Input::LeaseReadRequested { id },
                    ReadKind::Follower => Input::FollowerReadRequested { id },
                }
            }
            Event::Transfer(to) => Input::TransferRequested { to },
            Event::ChangeMembership(change, reply) => Input::MembershipChangeRequested {
                id: self.executor.changes.register(reply),
                change,
            },
            Event::Followers(reply) => {
                let engine = &self.engine;
                let last = engine.status().last_log_id.index;
                let _ = reply.send(Ok((last, engine.followers())));
                return Ok(());
            }
            Event::Inbound(inbound) => match self.admit(inbound) {
                Some((from, message)) => Input::Received { from, message },
                None => return Ok(()),
            },
            Event::Answer { from, message } => Input::Received { from, message },
            Event::SendFailed { to, seq } => Input::SendFailed { to, seq },
            Event::HardStatePersisted(hard_state) => Input::HardStatePersisted { hard_state },
            Event::SnapshotRequested => Input::SnapshotRequested,
            Event::SnapshotCreated(meta) => {
                self.executor.size_policy.snapshot_done();
                Input::SnapshotCreated { meta }
            }
            Event::SnapshotFailed => Input::SnapshotFailed,
            Event::StreamOpened { open, entries } => {
                let from = open.follower_id;
                // Batches for the follower go on this stream from now on (before the engine's
                // first one for it: the peer task takes commands in order).
                self.executor.stream_from(from, open.seq, entries)?;
                Input::Received {
                    from,
                    message: Message::OpenStream(open),
                }
            }
            Event::StreamEnded { peer, seq } => {
                let labels = [
                    ("node", self.shared.id.to_string()),
                    ("peer", peer.to_string()),
                ];
                ::metrics::counter!(crate::metrics::STREAM_ENDS, &labels).increment(1);
                Input::StreamClosed { peer, seq }
            }
            // Handled by `on_round`.
            Event::Propose(_) | Event::Shutdown | Event::Failed(_) => return Ok(()),
        };
        self.step(input).await
    }

    /// Parks a peer's request for the engine's answer, or refuses it at once when it comes
    /// from a node outside the cluster (the engine would ignore it, leaving its sender to time
    /// out).
    fn admit(&mut self, inbound: Inbound) -> Option<(NodeId, Message)> {
        let shared = &self.shared;
        if let Some(from) = inbound.requester()
            && (from == shared.id || self.executor.changes.is_removed(from))
        {
            debug!(%from, "refusing a request from a node outside the cluster");
            let message = format!("node {from} is not a member of this cluster");
            inbound.refuse(Error::Config(message));
            return None;
        }
        Some(self.executor.replies.park(inbound))
    }

    /// Steps the proposals of this round as one batch: one log append for all callers.
    async fn flush_proposals(&mut self) -> Result<(), Error> {
        let Some((id, payloads)) = self.executor.proposals.take_batch() else {
            return Ok(());
        };
        self.metrics.proposals.increment(payloads.len() as u64);
        let result = self.step(Input::Proposed { id, payloads }).await;
        self.executor.proposals.finish_step(result.is_ok());
        result
    }

    async fn step(&mut self, input: Input) -> Result<(), Error> {
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.extend(self.engine.step(input));
        let in_force = config_id(&self.engine, self.engine.status().membership_index);
        if in_force != self.synced_membership {
            // Before the outputs run: the first request to a new member needs its task.
            self.synced_membership = in_force;
            self.executor.peers.sync(self.engine.membership());
        }
        let result = self.run_outputs(&mut outputs).await;
        outputs.clear();
        self.outputs = outputs;
        result
    }

    async fn run_outputs(&mut self, outputs: &mut Vec<Output>) -> Result<(), Error> {
        for output in outputs.drain(..) {
            self.executor.run(output).await?;
        }
        Ok(())
    }

    fn publish_status(&mut self) {
        let key = membership_key(&self.engine);
        if key != self.published_membership {
            self.published_membership = key;
            let membership = MembershipStatus::from_engine(&self.engine);
            self.metrics.record_membership(&membership);
            self.executor.changes.on_committed(&membership.committed);
            self.shared.membership.send_replace(membership);
        }
        self.executor.changes.after_round(&self.engine);
        let status = NodeStatus::from_engine(&self.engine.status());
        let changed = self.shared.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
        if changed {
            self.metrics.record_status(&status);
        }
    }

    /// Refuses what is still queued, closes every task's channel and joins the tasks.
    async fn stop(mut self, result: Result<(), Error>) {
        let shared = self.shared.clone();
        shared.lifecycle.begin_shutdown();
        let reason = match &result {
            Ok(()) => None,
            Err(err) => {
                error!(%err, "stopping the node after a fatal error");
                Some(err.to_string())
            }
        };
        let refusal = || match &reason {
            None => Error::Shutdown,
            Some(reason) => Error::Fatal(reason.clone()),
        };
        self.events.close();
        let mut queued = std::mem::take(&mut self.leftover);
        while let Ok(event) = self.events.try_recv() {
            queued.push(event);
        }
        for event in queued {
            event.refuse(refusal());
        }
        self.executor.proposals.refuse_all(refusal);
        self.executor.reads.refuse_all(refusal);
        self.executor.replies.refuse_all();
        self.executor.changes.refuse_all(refusal);
        let peer_tasks = self.executor.close_channels();
        self.tasks.extend(peer_tasks);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        shared.status.send_modify(|status| status.running = false);
        shared.lifecycle.set_stopped();
        info!(node = %shared.id, "stopped");
    }
}

/// The configurations in force and committed, each named by its entry's index and term.
type MembershipKey = (LogIndex, Option<Term>, LogIndex, Option<Term>);

/// A configuration named by the index and term of its entry.
fn config_id(engine: &Engine, index: LogIndex) -> (LogIndex, Option<Term>) {
    (index, engine.log_term(index))
}

fn membership_key(engine: &Engine) -> MembershipKey {
    let (in_force, in_force_term) = config_id(engine, engine.status().membership_index);
    let (committed, committed_term) = config_id(engine, engine.committed_membership().0);
    (in_force, in_force_term, committed, committed_term)
}

/// Marks the node stopped however the loop ends, even by a panic (a bug), so that callers
/// waiting for the stop, and new calls, are not left hanging.
struct StoppedGuard(Arc<Shared>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.mark_stopped();
    }
}
