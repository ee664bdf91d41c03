//! Linearizable reads waiting on the engine: each caller's reply channel under the id the
//! engine answers with `ReadReady` (the read index) or `ReadRejected`.

use std::collections::HashMap;

use super::results::Reply;
use crate::error::Error;
use crate::types::LogIndex;

/// Reads registered with the engine and not yet answered.
#[derive(Default)]
pub(crate) struct PendingReads {
    waiting: HashMap<u64, Reply<LogIndex>>,
    next_id: u64,
}

impl PendingReads {
    /// Registers a caller; returns the id to step `Input::ReadRequested` with.
    pub(crate) fn register(&mut self, reply: Reply<LogIndex>) -> u64 {
        self.next_id += 1;
        self.waiting.insert(self.next_id, reply);
        self.next_id
    }

    /// The engine confirmed read `id` at `index`.
    pub(crate) fn ready(&mut self, id: u64, index: LogIndex) {
        if let Some(reply) = self.waiting.remove(&id) {
            let _ = reply.send(Ok(index));
        }
    }

    /// The engine refused read `id`.
    pub(crate) fn rejected(&mut self, id: u64, error: Error) {
        if let Some(reply) = self.waiting.remove(&id) {
            let _ = reply.send(Err(error));
        }
    }

    /// Forgets reads whose callers gave up (one may never be answered without check-quorum).
    pub(crate) fn prune_closed(&mut self) {
        self.waiting.retain(|_, reply| !reply.is_closed());
    }

    /// Answers every waiting read with `error()`.
    pub(crate) fn refuse_all(&mut self, error: impl Fn() -> Error) {
        for (_, reply) in self.waiting.drain() {
            let _ = reply.send(Err(error()));
        }
    }
}
