//! The event loop: the one task that owns a node's engine.
//!
//! It takes events first in, first out, in rounds: everything queued is taken at once, client
//! proposals of the round are merged into one `Input::Proposed` (one log append, however many
//! callers), and every other event is stepped in order. Each output is executed right away, in
//! order: log writes are awaited (the store returns before they are durable), everything slow is
//! handed to a task (hard state, peers, the apply task).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info};

use super::applier::{ApplyOp, Wait};
use super::clock::Clock;
use super::events::{Event, Inbound, Proposal, Reply};
use super::node::Shared;
use super::node_metrics::NodeMetrics;
use super::peer::PeerCommand;
use super::snapshots::{SizePolicy, SnapshotMetrics};
use super::status::NodeStatus;
use crate::engine::{Engine, Input, Output, RoleKind};
use crate::error::{Error, LeaderHint};
use crate::message::{
    AppendEntriesResponse, InstallSnapshotResponse, Message, RequestVoteResponse,
};
use crate::snapshot::{SnapshotMeta, SnapshotWriter};
use crate::storage::LogStore;
use crate::types::{Entry, EntryInfo, HardState, LogId, LogIndex, NodeId, Term};

/// Most events taken from the queue in one round.
const EVENTS_PER_ROUND: usize = 1024;

/// A vote request's term and the way back to its candidate.
type VoteWaiter = (Term, Reply<RequestVoteResponse>);

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
    durable: watch::Receiver<LogId>,
    applier: mpsc::UnboundedSender<ApplyOp>,
    hard_state: mpsc::UnboundedSender<HardState>,
    peers: BTreeMap<NodeId, mpsc::UnboundedSender<PeerCommand>>,
    tasks: Vec<JoinHandle<()>>,
    metrics: NodeMetrics,
    clock: Clock,
    /// The epoch of the last `AppendLog` run: durability reports echo it.
    log_epoch: u64,
    /// The entries of the last `AppendLog`, for the `PreCommit` that follows it.
    last_appended: Vec<Entry>,
    inbound_appends: HashMap<(NodeId, u64), Reply<AppendEntriesResponse>>,
    inbound_snapshots: HashMap<(NodeId, u64), Reply<InstallSnapshotResponse>>,
    /// Vote requests waiting for an answer, by candidate and kind, with the request's term (a
    /// retry in a newer term can arrive before the older request is answered).
    inbound_votes: HashMap<(NodeId, bool), Vec<VoteWaiter>>,
    /// Async-handler callers to tell their position once the step's log append succeeded.
    accepted: Vec<(Reply<EntryInfo>, EntryInfo)>,
    reads: HashMap<u64, Reply<LogIndex>>,
    /// Proposals taken this round, not yet stepped.
    proposing: Vec<Proposal>,
    /// The proposals of the `Input::Proposed` being stepped, by its id.
    stepping: Option<(u64, Vec<Proposal>)>,
    /// Events after a shutdown request in its round; answered when stopping.
    leftover: Vec<Event>,
    next_id: u64,
    outputs: Vec<Output>,
    /// The snapshot being received from the leader.
    receiving: Option<Receiving>,
    size_policy: SizePolicy,
    snapshot_metrics: SnapshotMetrics,
}

/// A snapshot from the leader being written to the store, chunk by chunk.
struct Receiving {
    meta: SnapshotMeta,
    writer: Box<dyn SnapshotWriter>,
    started: tokio::time::Instant,
}

/// The channels and tasks the loop drives, built by `Node::start`.
pub(crate) struct LoopParts {
    pub(crate) engine: Engine,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
    pub(crate) log: Arc<dyn LogStore>,
    pub(crate) applier: mpsc::UnboundedSender<ApplyOp>,
    pub(crate) hard_state: mpsc::UnboundedSender<HardState>,
    pub(crate) peers: BTreeMap<NodeId, mpsc::UnboundedSender<PeerCommand>>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl EventLoop {
    pub(crate) fn new(parts: LoopParts) -> EventLoop {
        let mut durable = parts.log.durable();
        durable.mark_unchanged();
        let metrics = NodeMetrics::new(parts.shared.id);
        let size_policy = SizePolicy::new(parts.shared.config.snapshot_log_bytes);
        let snapshot_metrics = SnapshotMetrics::new(parts.shared.id);
        EventLoop {
            engine: parts.engine,
            shared: parts.shared,
            events: parts.events,
            log: parts.log,
            durable,
            applier: parts.applier,
            hard_state: parts.hard_state,
            peers: parts.peers,
            tasks: parts.tasks,
            metrics,
            clock: Clock::start(),
            log_epoch: 0,
            last_appended: Vec::new(),
            inbound_appends: HashMap::new(),
            inbound_snapshots: HashMap::new(),
            inbound_votes: HashMap::new(),
            accepted: Vec::new(),
            reads: HashMap::new(),
            proposing: Vec::new(),
            stepping: None,
            leftover: Vec::new(),
            next_id: 1,
            outputs: Vec::new(),
            receiving: None,
            size_policy,
            snapshot_metrics,
        }
    }

    /// Runs the node until shutdown or a fatal error, then stops every task.
    pub(crate) async fn run(mut self) {
        let _stopped = StoppedGuard(self.shared.clone());
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
            .any(|event| matches!(event, Event::Propose(_) | Event::Read(_)));
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

    async fn on_tick(&mut self) -> Result<(), Error> {
        let now_ms = self.clock.now_ms();
        self.step(Input::Tick { now_ms }).await?;
        // Answers the engine will never give (a request it ignored) leave closed senders behind.
        self.inbound_appends.retain(|_, reply| !reply.is_closed());
        self.inbound_snapshots.retain(|_, reply| !reply.is_closed());
        self.inbound_votes.retain(|_, waiting| {
            waiting.retain(|(_, reply)| !reply.is_closed());
            !waiting.is_empty()
        });
        // A read whose caller gave up (it may never be answered without check-quorum).
        self.reads.retain(|_, reply| !reply.is_closed());
        if self.engine.role_kind() == RoleKind::Leader {
            let last = self.engine.status().last_log_id.index;
            self.metrics
                .record_followers(&self.engine.followers(), last);
        } else {
            self.metrics.clear_followers();
        }
        let log_bytes = self.log.byte_count();
        self.metrics.record_log_bytes(log_bytes);
        if self.size_policy.due(log_bytes) {
            // The engine ignores it while a snapshot is being made or nothing new committed.
            self.step(Input::SnapshotRequested).await?;
        }
        Ok(())
    }

    async fn on_durable(&mut self) -> Result<(), Error> {
        // Read now, not when the store changed it: every write the engine asked for has been
        // issued, so the value describes the log the engine holds (see `LogStore::durable`).
        let upto = *self.durable.borrow_and_update();
        let epoch = self.log_epoch;
        self.step(Input::LogPersisted { upto, epoch }).await
    }

    async fn on_round(&mut self, round: &mut Vec<Event>) -> Result<Flow, Error> {
        let mut events = round.drain(..);
        while let Some(event) = events.next() {
            match event {
                Event::Propose(proposal) => {
                    self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                    self.proposing.push(proposal);
                }
                Event::Shutdown => {
                    self.leftover.extend(events);
                    return Ok(Flow::Stop);
                }
                Event::Failed(err) => {
                    self.leftover.extend(events);
                    return Err(err);
                }
                other => {
                    if let Err(err) = self.on_event(other).await {
                        self.leftover.extend(events);
                        return Err(err);
                    }
                }
            }
        }
        drop(events);
        self.flush_proposals().await?;
        Ok(Flow::Continue)
    }

    async fn on_event(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::Read(reply) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                let id = self.take_id();
                self.reads.insert(id, reply);
                self.step(Input::ReadRequested { id }).await
            }
            Event::Transfer(to) => self.step(Input::TransferRequested { to }).await,
            Event::Inbound(inbound) => self.on_inbound(inbound).await,
            Event::Answer { from, message } => self.step(Input::Received { from, message }).await,
            Event::SendFailed { to, seq } => self.step(Input::SendFailed { to, seq }).await,
            Event::HardStatePersisted(hard_state) => {
                self.step(Input::HardStatePersisted { hard_state }).await
            }
            Event::SnapshotRequested => self.step(Input::SnapshotRequested).await,
            Event::SnapshotCreated(meta) => {
                self.size_policy.snapshot_done();
                self.step(Input::SnapshotCreated { meta }).await
            }
            Event::SnapshotFailed => self.step(Input::SnapshotFailed).await,
            // Handled by `on_round`.
            Event::Propose(_) | Event::Shutdown | Event::Failed(_) => Ok(()),
        }
    }

    async fn on_inbound(&mut self, inbound: Inbound) -> Result<(), Error> {
        let (from, message) = match inbound {
            Inbound::Append(request, reply) => {
                let from = request.leader_id;
                if let Some(error) = self.refuse_stranger(from) {
                    let _ = reply.send(Err(error));
                    return Ok(());
                }
                self.inbound_appends.insert((from, request.seq), reply);
                (from, Message::AppendEntries(request))
            }
            Inbound::Vote(request, reply) => {
                let from = request.candidate_id;
                if let Some(error) = self.refuse_stranger(from) {
                    let _ = reply.send(Err(error));
                    return Ok(());
                }
                let waiting = self
                    .inbound_votes
                    .entry((from, request.pre_vote))
                    .or_default();
                waiting.push((request.term, reply));
                (from, Message::RequestVote(request))
            }
            Inbound::Snapshot(request, reply) => {
                let from = request.leader_id;
                if let Some(error) = self.refuse_stranger(from) {
                    let _ = reply.send(Err(error));
                    return Ok(());
                }
                self.inbound_snapshots.insert((from, request.seq), reply);
                (from, Message::InstallSnapshot(request))
            }
            Inbound::TimeoutNow(request) => (request.leader_id, Message::TimeoutNow(request)),
        };
        self.step(Input::Received { from, message }).await
    }

    /// The error for a request from a node outside the cluster (the engine would ignore it,
    /// leaving its sender to time out).
    fn refuse_stranger(&self, from: NodeId) -> Option<Error> {
        if from != self.shared.id && self.shared.members.contains_key(&from) {
            return None;
        }
        debug!(%from, "refusing a request from a node outside the cluster");
        Some(Error::Config(format!(
            "node {from} is not a member of this cluster"
        )))
    }

    /// Steps the proposals of this round as one batch: one log append for all callers.
    async fn flush_proposals(&mut self) -> Result<(), Error> {
        if self.proposing.is_empty() {
            return Ok(());
        }
        let mut proposals = std::mem::take(&mut self.proposing);
        let payloads = if let [only] = proposals.as_mut_slice() {
            std::mem::take(&mut only.payloads)
        } else {
            let total = proposals.iter().map(|p| p.payloads.len()).sum();
            let mut payloads = Vec::with_capacity(total);
            for proposal in &mut proposals {
                payloads.append(&mut proposal.payloads);
            }
            payloads
        };
        self.metrics.proposals.increment(payloads.len() as u64);
        let id = self.take_id();
        self.stepping = Some((id, proposals));
        let result = self.step(Input::Proposed { id, payloads }).await;
        for (reply, info) in self.accepted.drain(..) {
            // On a failed append the entries may or may not be in the log.
            let answer = match &result {
                Ok(()) => Ok(info),
                Err(_) => Err(Error::Aborted),
            };
            let _ = reply.send(answer);
        }
        if let Some((_, proposals)) = self.stepping.take() {
            // The engine answers every proposal in the same step; this is only a guard.
            for proposal in proposals {
                answer_proposal(proposal, Error::Shutdown);
            }
        }
        result
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn step(&mut self, input: Input) -> Result<(), Error> {
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.extend(self.engine.step(input));
        let result = self.run_outputs(&mut outputs).await;
        outputs.clear();
        self.outputs = outputs;
        result
    }

    async fn run_outputs(&mut self, outputs: &mut Vec<Output>) -> Result<(), Error> {
        for output in outputs.drain(..) {
            self.run_output(output).await?;
        }
        Ok(())
    }

    async fn run_output(&mut self, output: Output) -> Result<(), Error> {
        match output {
            Output::PersistHardState(hard_state) => self
                .hard_state
                .send(hard_state)
                .map_err(|_| Error::Fatal("the hard-state writer stopped".to_owned())),
            Output::AppendLog { entries, epoch } => {
                self.log.append(&entries).await?;
                self.log_epoch = epoch;
                self.last_appended = entries;
                Ok(())
            }
            Output::TruncateLog { from } => {
                self.last_appended.clear();
                self.log.truncate(from).await
            }
            Output::PreCommit { first, last } => self.run_pre_commit(first, last).await,
            Output::Rollback { first, last } => self.to_applier(ApplyOp::Rollback { first, last }),
            Output::Commit { upto } => self.to_applier(ApplyOp::Commit(upto)),
            Output::Send { to, message } => self.run_send(to, message),
            Output::SendEntries {
                to,
                request,
                first,
                last_log_id,
            } => self.to_peer(
                to,
                PeerCommand::Entries {
                    request,
                    first,
                    last_log_id,
                },
            ),
            Output::ProposalAccepted { id, first, count } => self.run_accepted(id, first, count),
            Output::ProposalRejected { id, leader } => {
                self.run_rejected(id, leader);
                Ok(())
            }
            Output::ReadReady { id, index } => {
                if let Some(reply) = self.reads.remove(&id) {
                    let _ = reply.send(Ok(index));
                }
                Ok(())
            }
            Output::CompactLog { before } => self.log.compact(before).await,
            Output::CreateSnapshot {
                last_log_id,
                membership,
            } => self.to_applier(ApplyOp::Snapshot {
                last_log_id,
                membership,
            }),
            Output::SaveSnapshotChunk {
                meta,
                offset,
                data,
                done,
            } => self.save_snapshot_chunk(meta, offset, data, done).await,
            Output::RestoreSnapshot { meta } => self.run_restore(meta).await,
            Output::SendSnapshot { to, request, len } => {
                self.to_peer(to, PeerCommand::Snapshot { request, len })
            }
            Output::ReadRejected { id, leader } => {
                if let Some(reply) = self.reads.remove(&id) {
                    let leader = self.leader_hint(leader);
                    let _ = reply.send(Err(Error::NotLeader { leader }));
                }
                Ok(())
            }
        }
    }

    /// Writes a chunk of the snapshot the leader is sending; the last one makes it durable.
    /// Awaited by the loop like a log append: the follower has nothing else to write meanwhile.
    async fn save_snapshot_chunk(
        &mut self,
        meta: SnapshotMeta,
        offset: u64,
        data: bytes::Bytes,
        done: bool,
    ) -> Result<(), Error> {
        if offset == 0 {
            self.receiving = Some(Receiving {
                meta: meta.clone(),
                writer: self.log.begin_snapshot().await?,
                started: tokio::time::Instant::now(),
            });
        }
        let Some(receiving) = self.receiving.as_mut().filter(|r| r.meta == meta) else {
            return Err(Error::Fatal(format!(
                "a chunk at {offset} of the {meta} arrived without its beginning"
            )));
        };
        receiving.writer.write(data).await?;
        if done && let Some(receiving) = self.receiving.take() {
            if !receiving.writer.finish(meta.clone()).await? {
                // The engine installs only snapshots above its commit index, so the store
                // cannot hold one as new already: it broke the contract.
                return Err(Error::storage(format!(
                    "the store refused the {meta} from the leader as older than its own"
                )));
            }
            self.size_policy.snapshot_done();
            self.snapshot_metrics.installed.increment(1);
            self.snapshot_metrics.bytes.set(meta.size as f64);
            self.snapshot_metrics
                .install_seconds
                .record(receiving.started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Opens the store's latest snapshot, which must be `meta` (it was made current by the
    /// output before this one, or found at start), for the apply task: the reader stays valid
    /// even if a newer snapshot replaces it before the apply task gets to it.
    async fn run_restore(&mut self, meta: SnapshotMeta) -> Result<(), Error> {
        let reader = self
            .log
            .open_snapshot()
            .await?
            .ok_or_else(|| Error::storage(format!("the {meta} is missing from the store")))?;
        if *reader.meta() != meta {
            return Err(Error::storage(format!(
                "the store's latest snapshot is the {}, expected the {meta}",
                reader.meta()
            )));
        }
        self.to_applier(ApplyOp::Restore(reader))
    }

    async fn run_pre_commit(&mut self, first: LogIndex, last: LogIndex) -> Result<(), Error> {
        let covers = self.last_appended.first().map(|e| e.log_id.index) == Some(first)
            && self.last_appended.last().map(|e| e.log_id.index) == Some(last);
        let entries = if covers {
            std::mem::take(&mut self.last_appended)
        } else {
            // Entries restored from the log at start.
            self.log.read(first, last).await?
        };
        self.to_applier(ApplyOp::PreCommit(entries))
    }

    fn to_applier(&self, op: ApplyOp) -> Result<(), Error> {
        self.applier
            .send(op)
            .map_err(|_| Error::Fatal("the apply task stopped".to_owned()))
    }

    /// A peer task that is gone (it panicked) would silently end replication to that peer:
    /// stop the node instead.
    fn to_peer(&self, to: NodeId, command: PeerCommand) -> Result<(), Error> {
        match self.peers.get(&to) {
            Some(peer) => peer
                .send(command)
                .map_err(|_| Error::Fatal(format!("the sender task for node {to} stopped"))),
            None => Ok(()),
        }
    }

    /// Answers go back on the request they answer; requests go to the peer's task.
    fn run_send(&mut self, to: NodeId, message: Message) -> Result<(), Error> {
        match message {
            Message::AppendEntriesResponse(response) => {
                if let Some(reply) = self.inbound_appends.remove(&(to, response.seq)) {
                    let _ = reply.send(Ok(response));
                }
            }
            Message::InstallSnapshotResponse(response) => {
                if let Some(reply) = self.inbound_snapshots.remove(&(to, response.seq)) {
                    let _ = reply.send(Ok(response));
                }
            }
            Message::RequestVoteResponse(response) => {
                let key = (to, response.pre_vote);
                let Some(waiting) = self.inbound_votes.get_mut(&key) else {
                    return Ok(());
                };
                // A grant carries the request's term; a refusal may carry a newer one, and
                // then answers the newest request.
                let position = waiting
                    .iter()
                    .position(|(term, _)| *term == response.term)
                    .unwrap_or(waiting.len().saturating_sub(1));
                if position < waiting.len() {
                    let (_, reply) = waiting.remove(position);
                    let _ = reply.send(Ok(response));
                }
                if waiting.is_empty() {
                    self.inbound_votes.remove(&key);
                }
            }
            request => return self.to_peer(to, PeerCommand::Message(request)),
        }
        Ok(())
    }

    fn run_accepted(&mut self, id: u64, first: LogId, count: u64) -> Result<(), Error> {
        let Some((stepping, proposals)) = self.stepping.take() else {
            return Ok(());
        };
        debug_assert_eq!(stepping, id, "the engine answered another proposal");
        let total: u64 = proposals.iter().map(|p| p.count as u64).sum();
        debug_assert_eq!(
            total, count,
            "the engine accepted a different number of entries"
        );
        let mut index = first.index;
        let mut waits = Vec::with_capacity(proposals.len());
        for proposal in proposals {
            let at = LogId {
                term: first.term,
                index,
            };
            if let Some(accepted) = proposal.accepted {
                let info = EntryInfo {
                    term: at.term,
                    index: at.index,
                };
                // Told once the log append of this step has run (see `flush_proposals`).
                self.accepted.push((accepted, info));
            }
            let count = proposal.count as u64;
            waits.push(Wait {
                first: at,
                count,
                notify: proposal.notify,
            });
            index = index.plus(count);
        }
        // One message for the round's callers: the apply task is woken once, not per caller.
        self.to_applier(ApplyOp::Wait(waits))
    }

    fn run_rejected(&mut self, id: u64, leader: Option<NodeId>) {
        let Some((stepping, proposals)) = self.stepping.take() else {
            return;
        };
        debug_assert_eq!(stepping, id, "the engine answered another proposal");
        for proposal in proposals {
            let leader = self.leader_hint(leader);
            answer_proposal(proposal, Error::NotLeader { leader });
        }
    }

    fn leader_hint(&self, leader: Option<NodeId>) -> Option<LeaderHint> {
        let id = leader?;
        let address = self.shared.members.get(&id)?.clone();
        Some(LeaderHint { id, address })
    }

    fn publish_status(&mut self) {
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
        self.shared.lifecycle.begin_shutdown();
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
            refuse_event(event, refusal());
        }
        for proposal in self.proposing.drain(..) {
            answer_proposal(proposal, refusal());
        }
        for (_, reply) in self.reads.drain() {
            let _ = reply.send(Err(refusal()));
        }
        for (_, reply) in self.inbound_appends.drain() {
            let _ = reply.send(Err(Error::Shutdown));
        }
        for (_, reply) in self.inbound_snapshots.drain() {
            let _ = reply.send(Err(Error::Shutdown));
        }
        for (_, waiting) in self.inbound_votes.drain() {
            for (_, reply) in waiting {
                let _ = reply.send(Err(Error::Shutdown));
            }
        }
        // Closing the channels ends the tasks: peers abandon calls in flight, the hard-state
        // writer finishes its writes, the apply task applies what is committed and answers
        // the waiters left with `Aborted`.
        self.peers.clear();
        self.hard_state = mpsc::unbounded_channel().0;
        self.applier = mpsc::unbounded_channel().0;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.shared
            .status
            .send_modify(|status| status.running = false);
        self.shared.lifecycle.set_stopped();
        info!(node = %self.shared.id, "stopped");
    }
}

fn answer_proposal(proposal: Proposal, error: Error) {
    match proposal.accepted {
        Some(accepted) => {
            let _ = accepted.send(Err(error));
        }
        None => proposal.notify.send(Err(error)),
    }
}

fn refuse_event(event: Event, error: Error) {
    match event {
        Event::Propose(proposal) => answer_proposal(proposal, error),
        Event::Read(reply) => {
            let _ = reply.send(Err(error));
        }
        Event::Inbound(Inbound::Append(_, reply)) => {
            let _ = reply.send(Err(Error::Shutdown));
        }
        Event::Inbound(Inbound::Vote(_, reply)) => {
            let _ = reply.send(Err(Error::Shutdown));
        }
        Event::Inbound(Inbound::Snapshot(_, reply)) => {
            let _ = reply.send(Err(Error::Shutdown));
        }
        _ => {}
    }
}

/// Marks the node stopped however the loop ends, even by a panic (a bug), so that callers
/// waiting for the stop, and new calls, are not left hanging.
struct StoppedGuard(Arc<Shared>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.lifecycle.begin_shutdown();
        self.0.status.send_modify(|status| status.running = false);
        self.0.lifecycle.set_stopped();
    }
}
