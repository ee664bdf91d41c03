//! Executing the engine's outputs, in the order the engine emitted them (the runtime's side of
//! the engine's output contract).
//!
//! Log writes (`AppendLog`, `TruncateLog`, `CompactLog`, snapshot chunks from the leader) are
//! awaited here, since the store returns before they are durable; everything slower is handed to
//! a task: hard state to its writer, sends to the peer's task, pre-commits, commits, rollbacks
//! and snapshots to the apply task. Answers to callers go back through what holds them:
//! [`Proposals`], [`PendingReads`] and [`PeerReplies`].

use std::sync::Arc;

use tokio::sync::mpsc;

use super::applier::ApplyOp;
use super::membership::Changes;
use super::peer::PeerCommand;
use super::peer_replies::PeerReplies;
use super::peers::PeerSet;
use super::proposals::Proposals;
use super::reads::PendingReads;
use super::shared::Shared;
use super::snapshot_receiver::{SnapshotReceiver, open_installed};
use super::snapshots::{SizePolicy, SnapshotMetrics};
use crate::engine::{ChangeRejection, Output};
use crate::error::Error;
use crate::message::{AppendEntries, Message};
use crate::storage::LogStore;
use crate::types::{Entry, HardState, LogIndex, NodeId};

/// The outputs' executor and what waits on the engine's answers.
pub(crate) struct Executor {
    shared: Arc<Shared>,
    log: Arc<dyn LogStore>,
    applier: mpsc::UnboundedSender<ApplyOp>,
    hard_state: mpsc::UnboundedSender<HardState>,
    pub(crate) peers: PeerSet,
    /// The epoch of the last `AppendLog` run: durability reports echo it.
    pub(crate) log_epoch: u64,
    /// The entries of the last `AppendLog`, for the `PreCommit` that follows it.
    last_appended: Vec<Entry>,
    pub(crate) proposals: Proposals,
    pub(crate) reads: PendingReads,
    pub(crate) replies: PeerReplies,
    pub(crate) changes: Changes,
    receiver: SnapshotReceiver,
    pub(crate) size_policy: SizePolicy,
}

/// The channels the executor sends work on.
pub(crate) struct Channels {
    pub(crate) applier: mpsc::UnboundedSender<ApplyOp>,
    pub(crate) hard_state: mpsc::UnboundedSender<HardState>,
    pub(crate) peers: PeerSet,
}

impl Executor {
    pub(crate) fn new(shared: Arc<Shared>, log: Arc<dyn LogStore>, channels: Channels) -> Executor {
        let size_policy = SizePolicy::new(shared.config.snapshot_log_bytes);
        let receiver = SnapshotReceiver::new(SnapshotMetrics::new(shared.id));
        Executor {
            shared,
            log,
            applier: channels.applier,
            hard_state: channels.hard_state,
            peers: channels.peers,
            log_epoch: 0,
            last_appended: Vec::new(),
            proposals: Proposals::default(),
            reads: PendingReads::default(),
            replies: PeerReplies::default(),
            changes: Changes::default(),
            receiver,
            size_policy,
        }
    }

    /// The node's shared state.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Closes the channels to the node's tasks, which ends them: peers abandon calls in
    /// flight, the hard-state writer finishes its writes, the apply task applies what is
    /// committed and answers the waiters left with `Aborted`.
    /// Returns the peer tasks, for the caller to join.
    pub(crate) fn close_channels(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        self.hard_state = mpsc::unbounded_channel().0;
        self.applier = mpsc::unbounded_channel().0;
        self.peers.close()
    }

    /// Executes one output of the engine.
    pub(crate) async fn run(&mut self, output: Output) -> Result<(), Error> {
        let log = self.log.as_ref();
        match output {
            Output::PersistHardState(hard_state) => self
                .hard_state
                .send(hard_state)
                .map_err(|_| Error::Fatal("the hard-state writer stopped".to_owned())),
            Output::AppendLog { entries, epoch } => {
                log.append(&entries).await?;
                self.log_epoch = epoch;
                self.last_appended = entries;
                Ok(())
            }
            Output::TruncateLog { from } => {
                self.last_appended.clear();
                log.truncate(from).await
            }
            Output::PreCommit { first, last } => self.run_pre_commit(first, last).await,
            Output::Rollback { first, last } => self.to_applier(ApplyOp::Rollback { first, last }),
            Output::Commit { upto } => self.to_applier(ApplyOp::Commit(upto)),
            Output::Send { to, message } => match self.replies.answer(to, message) {
                Some(open @ Message::OpenStream(_)) => self.peers.open_stream(to, open),
                Some(request) => self.to_peer(to, PeerCommand::Message(request)),
                None => Ok(()),
            },
            Output::SendEntries {
                to,
                request,
                first,
                last_log_id,
            } => {
                let command = PeerCommand::Entries {
                    request,
                    first,
                    last_log_id,
                };
                self.to_peer(to, command)
            }
            Output::ProposalAccepted { id, first, .. } => {
                // One message for the round's callers: the apply task is woken once.
                let waits = self.proposals.accepted(id, first);
                self.to_applier(ApplyOp::Wait(waits))
            }
            Output::ProposalRejected { id, leader } => {
                let shared = &self.shared;
                let error = || Error::NotLeader {
                    leader: shared.leader_hint(leader),
                };
                self.proposals.rejected(id, error);
                Ok(())
            }
            Output::ReadReady { id, index } => {
                self.reads.ready(id, index);
                Ok(())
            }
            Output::ReadRejected { id, leader } => {
                let leader = self.shared.leader_hint(leader);
                self.reads.rejected(id, Error::NotLeader { leader });
                Ok(())
            }
            Output::CompactLog { before } => log.compact(before).await,
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
            } => {
                let receiver = &mut self.receiver;
                if receiver.save_chunk(log, meta, offset, data, done).await? {
                    self.size_policy.snapshot_done();
                }
                Ok(())
            }
            Output::RestoreSnapshot { meta } => {
                let reader = open_installed(log, &meta).await?;
                self.to_applier(ApplyOp::Restore(reader))
            }
            Output::SendSnapshot { to, request, len } => {
                self.to_peer(to, PeerCommand::Snapshot { request, len })
            }
            Output::MembershipChangeAccepted {
                id,
                log_id,
                membership,
            } => {
                self.changes.accepted(id, log_id, &membership);
                Ok(())
            }
            Output::MembershipChangeRejected { id, reason } => {
                let hint = match &reason {
                    ChangeRejection::NotLeader { leader } => self.shared.leader_hint(*leader),
                    _ => None,
                };
                self.changes.rejected(id, reason, hint);
                Ok(())
            }
        }
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
    /// A follower's entry stream: its peer task sends its batches on `entries`.
    pub(crate) fn stream_from(
        &self,
        follower: NodeId,
        seq: u64,
        entries: mpsc::UnboundedSender<AppendEntries>,
    ) -> Result<(), Error> {
        self.to_peer(follower, PeerCommand::StreamFrom { seq, entries })
    }

    fn to_peer(&self, to: NodeId, command: PeerCommand) -> Result<(), Error> {
        self.peers.send(to, command)
    }
}
