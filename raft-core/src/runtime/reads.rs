//! Linearizable reads, shared by the callers that arrive together.
//!
//! A caller of `Node::linearizable_read` (or `lease_read`, `follower_read`) joins the *group*
//! of its kind that is queued for the event loop and not yet taken by it; only a caller that
//! finds none queues a new group. The loop takes a group off its slot as it registers it
//! ([`PendingReads::register`]), before it reads the lease clock and hands the group to the
//! engine as one read, so every member arrived before the engine chose the read index: the index the group gets is at least the commit index any member
//! saw when it began, which is what makes each member's read linearizable. A crowd of reads
//! thus costs one event, one engine read and one answer, not one each.
//!
//! [`PendingReads`] keeps the groups the engine has and answers them with `ReadReady` (the read
//! index) or `ReadRejected`. A group's [`ReadTicket`] finishes it with [`Error::Shutdown`] if it
//! is dropped unanswered (the loop stopped), so no caller waits forever.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use crate::error::Error;
use crate::types::LogIndex;

/// The three ways to read, each with its own groups (their engine inputs differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadKind {
    /// `Node::linearizable_read`: ReadIndex.
    Index,
    /// `Node::lease_read`.
    Lease,
    /// `Node::follower_read`.
    Follower,
}

/// Callers waiting for one read index.
#[derive(Debug, Default)]
pub(crate) struct ReadGroup {
    outcome: OnceLock<Result<LogIndex, Error>>,
    done: Notify,
}

impl ReadGroup {
    /// Answers every member; later calls change nothing.
    pub(crate) fn finish(&self, outcome: Result<LogIndex, Error>) {
        if self.outcome.set(outcome).is_ok() {
            self.done.notify_waiters();
        }
    }

    /// Whether the group was answered.
    pub(crate) fn is_finished(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// The group's answer, once it has one.
    pub(crate) async fn outcome(&self) -> Result<LogIndex, Error> {
        loop {
            // Registered before the check, so an answer given in between still wakes it.
            let mut notified = pin!(self.done.notified());
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome.get() {
                return match outcome {
                    Ok(index) => Ok(*index),
                    Err(error) => Err(error.duplicate()),
                };
            }
            notified.await;
        }
    }
}

/// The event loop's hold on a group it was sent: dropped unanswered, it answers
/// [`Error::Shutdown`].
#[derive(Debug)]
pub(crate) struct ReadTicket(Arc<ReadGroup>);

impl ReadTicket {
    /// The group this ticket answers.
    pub(crate) fn group(&self) -> &Arc<ReadGroup> {
        &self.0
    }

    /// Answers the group.
    pub(crate) fn finish(&self, outcome: Result<LogIndex, Error>) {
        self.0.finish(outcome);
    }

    /// Whether no caller waits on the group any more (all gave up).
    fn abandoned(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl Drop for ReadTicket {
    fn drop(&mut self) {
        self.0.finish(Err(Error::Shutdown));
    }
}

/// The group of each kind that is queued for the event loop and not yet taken by it.
#[derive(Debug, Default)]
pub(crate) struct ReadSlots {
    slots: [Mutex<Option<Arc<ReadGroup>>>; 3],
}

impl ReadSlots {
    fn slot(&self, kind: ReadKind) -> std::sync::MutexGuard<'_, Option<Arc<ReadGroup>>> {
        let slot = match kind {
            ReadKind::Index => &self.slots[0],
            ReadKind::Lease => &self.slots[1],
            ReadKind::Follower => &self.slots[2],
        };
        // The lock guards a plain `Option` swap; a panic cannot leave it half-changed.
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group a caller of `kind` waits on: the queued one, or a new one that `queue` sends
    /// to the event loop (its error is the caller's, and nothing is left behind).
    pub(crate) fn join(
        &self,
        kind: ReadKind,
        queue: impl FnOnce(ReadTicket) -> Result<(), Error>,
    ) -> Result<Arc<ReadGroup>, Error> {
        let mut slot = self.slot(kind);
        if let Some(group) = slot.as_ref().filter(|group| !group.is_finished()) {
            return Ok(group.clone());
        }
        let group = Arc::new(ReadGroup::default());
        // Queued under the lock: nobody joins a group before it is on its way to the loop.
        queue(ReadTicket(group.clone()))?;
        *slot = Some(group.clone());
        Ok(group)
    }

    /// The event loop took `group`: callers from now on start a new one.
    fn close(&self, kind: ReadKind, group: &Arc<ReadGroup>) {
        let mut slot = self.slot(kind);
        if slot
            .as_ref()
            .is_some_and(|queued| Arc::ptr_eq(queued, group))
        {
            *slot = None;
        }
    }
}

/// Read groups registered with the engine and not yet answered.
#[derive(Default)]
pub(crate) struct PendingReads {
    waiting: HashMap<u64, ReadTicket>,
    next_id: u64,
}

impl PendingReads {
    /// Takes a queued group of `kind` off its slot in `slots`, so no caller joins it from now
    /// on, then registers it; returns the id to step `Input::ReadRequested` (or its lease and
    /// follower kinds) with. Read the clock and step the engine only after this: the lease is
    /// then judged, and the read index chosen, after every member's arrival.
    pub(crate) fn register(
        &mut self,
        slots: &ReadSlots,
        kind: ReadKind,
        ticket: ReadTicket,
    ) -> u64 {
        slots.close(kind, ticket.group());
        self.next_id += 1;
        self.waiting.insert(self.next_id, ticket);
        self.next_id
    }

    /// The engine confirmed read `id` at `index`.
    pub(crate) fn ready(&mut self, id: u64, index: LogIndex) {
        if let Some(ticket) = self.waiting.remove(&id) {
            ticket.finish(Ok(index));
        }
    }

    /// The engine refused read `id`.
    pub(crate) fn rejected(&mut self, id: u64, error: Error) {
        if let Some(ticket) = self.waiting.remove(&id) {
            ticket.finish(Err(error));
        }
    }

    /// Forgets groups whose callers all gave up (one may never be answered without
    /// check-quorum).
    pub(crate) fn prune_closed(&mut self) {
        self.waiting.retain(|_, ticket| !ticket.abandoned());
    }

    /// Answers every waiting group with `error()`.
    pub(crate) fn refuse_all(&mut self, error: impl Fn() -> Error) {
        for (_, ticket) in self.waiting.drain() {
            ticket.finish(Err(error()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A `queue` that keeps the tickets it is given.
    fn keep(queued: &mut Vec<ReadTicket>) -> impl FnOnce(ReadTicket) -> Result<(), Error> + '_ {
        |ticket| {
            queued.push(ticket);
            Ok(())
        }
    }

    #[test]
    fn callers_join_the_queued_group_until_the_loop_takes_it() {
        let slots = ReadSlots::default();
        let mut queued = Vec::new();
        let first = slots.join(ReadKind::Index, keep(&mut queued)).unwrap();
        let second = slots
            .join(ReadKind::Index, |_| panic!("a queued group exists"))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(queued.len(), 1, "one event for both callers");

        // Another kind has its own group.
        let lease = slots.join(ReadKind::Lease, keep(&mut queued)).unwrap();
        assert!(!Arc::ptr_eq(&first, &lease));

        // Once the loop took the group, a new caller must not join it: the read index may
        // already be chosen.
        let taken = queued.remove(0);
        PendingReads::default().register(&slots, ReadKind::Index, taken);
        let third = slots.join(ReadKind::Index, keep(&mut queued)).unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(queued.len(), 2);
    }

    #[test]
    fn a_group_that_could_not_be_queued_is_not_joined() {
        let slots = ReadSlots::default();
        let refused = slots.join(ReadKind::Index, |_| Err(Error::Overloaded));
        assert!(matches!(refused, Err(Error::Overloaded)));
        let mut queued = Vec::new();
        slots.join(ReadKind::Index, keep(&mut queued)).unwrap();
        assert_eq!(queued.len(), 1, "the next caller queues a group of its own");
    }

    #[test]
    fn an_answered_group_is_not_joined_even_if_still_in_its_slot() {
        let slots = ReadSlots::default();
        let mut queued = Vec::new();
        let first = slots.join(ReadKind::Follower, keep(&mut queued)).unwrap();
        // Refused while still queued (the loop stopping) without being taken.
        queued[0].finish(Err(Error::Shutdown));
        let next = slots.join(ReadKind::Follower, keep(&mut queued)).unwrap();
        assert!(!Arc::ptr_eq(&first, &next));
    }

    #[test]
    fn every_member_gets_the_answer_and_a_dropped_ticket_answers_shutdown() {
        let group = Arc::new(ReadGroup::default());
        let ticket = ReadTicket(group.clone());
        let mut waiting = pin!(group.outcome());
        assert!(poll_once(waiting.as_mut()).is_pending());
        ticket.finish(Ok(LogIndex(7)));
        assert!(matches!(
            poll_once(waiting.as_mut()),
            Poll::Ready(Ok(LogIndex(7)))
        ));
        assert!(matches!(
            poll_once(pin!(group.outcome())),
            Poll::Ready(Ok(LogIndex(7)))
        ));

        let group = Arc::new(ReadGroup::default());
        drop(ReadTicket(group.clone()));
        assert!(matches!(
            poll_once(pin!(group.outcome())),
            Poll::Ready(Err(Error::Shutdown))
        ));
    }

    #[tokio::test]
    async fn members_waiting_in_other_tasks_are_woken_by_the_answer() {
        let group = Arc::new(ReadGroup::default());
        let ticket = ReadTicket(group.clone());
        let members: Vec<_> = (0..3)
            .map(|_| {
                let group = group.clone();
                tokio::spawn(async move { group.outcome().await })
            })
            .collect();
        // The members run and wait before the answer comes.
        tokio::task::yield_now().await;
        assert!(members.iter().all(|member| !member.is_finished()));
        ticket.finish(Ok(LogIndex(3)));
        for member in members {
            assert!(matches!(member.await, Ok(Ok(LogIndex(3)))));
        }
    }

    #[test]
    fn groups_whose_callers_all_left_are_pruned() {
        let (mut pending, slots) = (PendingReads::default(), ReadSlots::default());
        let kept = Arc::new(ReadGroup::default());
        pending.register(&slots, ReadKind::Index, ReadTicket(kept.clone()));
        let left = ReadTicket(Arc::new(ReadGroup::default()));
        pending.register(&slots, ReadKind::Index, left);
        pending.prune_closed();
        assert_eq!(pending.waiting.len(), 1);
        pending.refuse_all(|| Error::NotLeader { leader: None });
        assert!(matches!(
            poll_once(pin!(kept.outcome())),
            Poll::Ready(Err(Error::NotLeader { leader: None }))
        ));
    }
}
