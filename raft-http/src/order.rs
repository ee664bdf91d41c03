//! Arrival order for AppendEntries: requests are handed to the handler in the order they
//! arrived, although each is read and decoded on its own task.
//!
//! Why: a leader pipelines AppendEntries to a follower, each continuing the previous one. On a
//! multi-threaded runtime the per-request tasks race, and a follower that sees request N+1 before N
//! rejects it as a log mismatch. The leader used to treat that as a failure, halve its batch and
//! resend (ARCHITECTURE.md, "Engine", adaptive batch), which collapsed throughput (measured: ~8,000
//! such conflicts in 3 s, 11k ops/s instead of 100k+); raft-core now recognises a request that only
//! overtook an earlier one and resends it without the penalty, but each such refusal still costs a
//! wasted request and a resend. HTTP/2 keeps the streams of a connection in order and hyper calls
//! the service for each stream in that order, so a ticket taken in that synchronous call and
//! honoured before the handler call restores the sender's order.
//!
//! Lines are per connection: [`Server`](crate::Server) gives each connection its own
//! [`ConnectionOrder`] (a request extension), so a stalled request on one connection never
//! holds up another (think of an old leader cut off in the middle of a body while the new leader
//! sends on its own connection). A `RaftService` served by another accept loop falls back to one
//! line for the whole service. Either way the order is only an optimisation (the engine is
//! correct in any order), so a request waits for its turn at most `order_wait_max`, and then
//! goes ahead.
//!
//! A ticket is done when its request reached the handler, failed before it, or was dropped (the
//! client reset the stream): a broken request never blocks the ones behind it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// One connection's line, carried to the service as a request extension.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnectionOrder(pub(crate) Arc<Sequencer>);

/// Hands out tickets and serves them in order.
#[derive(Debug, Default)]
pub(crate) struct Sequencer {
    state: Mutex<State>,
    turn: Notify,
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    /// The ticket whose turn it is.
    serving: u64,
    /// Tickets after `serving` that are already done.
    done: BTreeSet<u64>,
}

/// One request's place in line. Dropping it counts as done.
#[derive(Debug)]
pub(crate) struct Ticket {
    sequencer: Arc<Sequencer>,
    number: u64,
    finished: bool,
}

impl Sequencer {
    /// The next place in line (call it in arrival order).
    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        let mut state = self.lock();
        let number = state.next_ticket;
        state.next_ticket += 1;
        Ticket {
            sequencer: self.clone(),
            number,
            finished: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent: a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finish(&self, number: u64) {
        let mut state = self.lock();
        if number < state.serving {
            // Passed over by a later ticket that stopped waiting for it.
            return;
        }
        if number > state.serving {
            state.done.insert(number);
            return;
        }
        state.serving += 1;
        loop {
            let next = state.serving;
            if !state.done.remove(&next) {
                break;
            }
            state.serving += 1;
        }
        drop(state);
        self.turn.notify_waiters();
    }
}

impl Ticket {
    /// Waits until every earlier ticket is done, or `at_most`; returns whether it was its turn.
    /// After `at_most` the earlier tickets still not done are passed over for good, so the
    /// tickets behind this one do not wait for them again.
    pub(crate) async fn wait_turn(&self, at_most: Duration) -> bool {
        if tokio::time::timeout(at_most, self.turn()).await.is_ok() {
            return true;
        }
        let mut state = self.sequencer.lock();
        if state.serving < self.number {
            state.serving = self.number;
            let number = self.number;
            state.done.retain(|&done| done > number);
        }
        false
    }

    async fn turn(&self) {
        loop {
            let notified = self.sequencer.turn.notified();
            tokio::pin!(notified);
            // Registered before the check, so a finish in between is not missed.
            notified.as_mut().enable();
            if self.sequencer.lock().serving == self.number {
                return;
            }
            notified.await;
        }
    }

    /// Lets the next ticket go.
    pub(crate) fn finish(mut self) {
        self.finished = true;
        self.sequencer.finish(self.number);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.sequencer.finish(self.number);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn tickets_are_served_in_order_and_dropped_ones_are_skipped() {
        let sequencer = Arc::new(Sequencer::default());
        let tickets: Vec<Ticket> = (0..4).map(|_| sequencer.ticket()).collect();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let mut tickets = tickets.into_iter().enumerate().collect::<Vec<_>>();
        // Ticket 1 is abandoned (its request failed); 3, 2 and 0 start in reverse order.
        let (_, abandoned) = tickets.remove(1);
        for (i, ticket) in tickets.into_iter().rev() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                assert!(ticket.wait_turn(Duration::from_secs(10)).await);
                order.lock().unwrap().push(i);
                ticket.finish();
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(abandoned);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ticket_stuck_in_front_delays_the_next_ones_once_and_only_for_the_bound() {
        let sequencer = Arc::new(Sequencer::default());
        let stuck = sequencer.ticket();
        let next = sequencer.ticket();
        let after = sequencer.ticket();
        let bound = Duration::from_millis(100);
        assert!(!next.wait_turn(bound).await);
        next.finish();
        // The stuck ticket was passed over: the one after it does not wait for it again.
        assert!(after.wait_turn(bound).await);
        // The stuck one finishing late changes nothing.
        stuck.finish();
        after.finish();
        let last = sequencer.ticket();
        assert!(last.wait_turn(bound).await);
    }
}
