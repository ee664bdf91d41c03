//! Client proposals on their way through the event loop, tracked in one place.
//!
//! A round's proposals are gathered, then stepped as one `Input::Proposed` under one id; the
//! engine answers that id in the same step, accepted (with the first entry's position) or
//! rejected. [`Proposals`] keeps each proposal from the moment the loop takes it until it is
//! handed to the apply task as a [`Wait`] or answered with an error, so nothing else in the
//! loop holds a proposal.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::results::{Notify, Reply, Wait};
use crate::error::Error;
use crate::types::{EntryInfo, LogId};

/// One caller's commands.
pub(crate) struct Proposal {
    pub(crate) payloads: Vec<Bytes>,
    /// `payloads.len()` as proposed (the batch takes the payloads out).
    pub(crate) count: usize,
    /// Async-handler mode: told the entries' position as soon as they are appended.
    pub(crate) accepted: Option<Reply<EntryInfo>>,
    /// Told the result: the commit result, or the pre-commit result in async replication mode.
    pub(crate) notify: Notify,
}

impl Proposal {
    /// Answers the caller with `error` (on whichever channel it waits).
    pub(crate) fn refuse(self, error: Error) {
        match self.accepted {
            Some(accepted) => {
                let _ = accepted.send(Err(error));
            }
            None => self.notify.send(Err(error)),
        }
    }
}

/// Every proposal the loop holds.
#[derive(Default)]
pub(crate) struct Proposals {
    /// Taken this round, not yet stepped.
    gathered: Vec<Proposal>,
    /// Stepped under an id, not yet answered by the engine.
    stepping: BTreeMap<u64, Vec<Proposal>>,
    /// Async-handler callers to tell their position once the step's log append has run.
    accepted: Vec<(Reply<EntryInfo>, EntryInfo)>,
    next_id: u64,
}

impl Proposals {
    /// Adds a proposal to the current round.
    pub(crate) fn gather(&mut self, proposal: Proposal) {
        self.gathered.push(proposal);
    }

    /// The round's proposals as one batch under a new id: the id and every command, in order.
    /// `None` if the round had none.
    pub(crate) fn take_batch(&mut self) -> Option<(u64, Vec<Bytes>)> {
        if self.gathered.is_empty() {
            return None;
        }
        let mut proposals = std::mem::take(&mut self.gathered);
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
        self.next_id += 1;
        let id = self.next_id;
        self.stepping.insert(id, proposals);
        Some((id, payloads))
    }

    /// The engine accepted batch `id` at `first`: the waits to hand to the apply task, one per
    /// caller at consecutive positions. Async-handler callers are told their position by
    /// [`Proposals::finish_step`], once the log append has run.
    pub(crate) fn accepted(&mut self, id: u64, first: LogId) -> Vec<Wait> {
        let Some(proposals) = self.stepping.remove(&id) else {
            return Vec::new();
        };
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
        waits
    }

    /// The engine refused batch `id`: every caller gets `error()`.
    pub(crate) fn rejected(&mut self, id: u64, error: impl Fn() -> Error) {
        for proposal in self.stepping.remove(&id).into_iter().flatten() {
            proposal.refuse(error());
        }
    }

    /// The step of a batch ended (`appended` tells whether its outputs ran): tells the
    /// async-handler callers their position, or `Aborted` if the append failed (the entries may
    /// or may not be in the log). A batch the engine did not answer (cannot happen; a guard)
    /// is refused with `Shutdown`.
    pub(crate) fn finish_step(&mut self, appended: bool) {
        for (reply, info) in self.accepted.drain(..) {
            let answer = if appended {
                Ok(info)
            } else {
                Err(Error::Aborted)
            };
            let _ = reply.send(answer);
        }
        for proposal in std::mem::take(&mut self.stepping).into_values().flatten() {
            proposal.refuse(Error::Shutdown);
        }
    }

    /// Refuses every proposal still held (the node is stopping).
    pub(crate) fn refuse_all(&mut self, error: impl Fn() -> Error) {
        self.finish_step(false);
        for proposal in self.gathered.drain(..) {
            proposal.refuse(error());
        }
    }
}
