//! What a proposer is told: [`Appended`] (where its commands landed and their results), the
//! [`PendingAppend`] of async-handler mode, and the way it is told, a channel or a callback
//! ([`Notify`]), for the loop and the apply task alike.

use bytes::Bytes;
use metrics::Histogram;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::types::{EntryInfo, LogId};

/// What a proposer gets: where its commands landed and one result per command, in order.
pub type CommitResult = Result<Appended, Error>;

/// Commands appended and applied (or, in async replication mode, pre-committed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The first command's entry; the others follow it at consecutive indexes, same term.
    pub first: EntryInfo,
    /// The state machine's result for each command, in order.
    pub results: Vec<Bytes>,
}

impl Appended {
    /// Each command's entry with its result.
    pub fn entries(&self) -> impl Iterator<Item = (EntryInfo, &Bytes)> + '_ {
        self.results.iter().enumerate().map(|(offset, result)| {
            let info = EntryInfo {
                term: self.first.term,
                index: self.first.index.plus(offset as u64),
            };
            (info, result)
        })
    }
}

/// How a proposer is told its result.
pub(crate) enum Notify {
    Channel(oneshot::Sender<CommitResult>),
    Callback(Box<dyn FnOnce(CommitResult) + Send>),
}

impl Notify {
    pub(crate) fn send(self, result: CommitResult) {
        match self {
            // The caller may have dropped its future; nothing to do then.
            Notify::Channel(sender) => {
                let _ = sender.send(result);
            }
            Notify::Callback(callback) => callback(result),
        }
    }
}

/// Commands accepted into the leader's log, whose result comes later (async-handler mode).
#[derive(Debug)]
pub struct PendingAppend {
    /// The first command's entry; the others follow at consecutive indexes.
    pub first: EntryInfo,
    /// How many commands.
    pub count: u64,
    pub(crate) result: oneshot::Receiver<CommitResult>,
    pub(crate) started: tokio::time::Instant,
    pub(crate) append_latency: Histogram,
}

impl PendingAppend {
    /// Waits for the commit result (or the pre-commit result in async replication mode). The
    /// future may be dropped: the commands commit or not all the same.
    ///
    /// # Errors
    /// [`Error::Discarded`] if a newer leader's log replaced the entries (from its `index` on),
    /// [`Error::Aborted`] if the node stopped first (the outcome is then unknown).
    pub async fn result(self) -> CommitResult {
        let result = self.result.await.unwrap_or(Err(Error::Aborted));
        self.append_latency
            .record(self.started.elapsed().as_secs_f64());
        result
    }
}

/// A one-shot answer to a caller.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A proposer waiting on `first..first + count`.
pub(crate) struct Wait {
    pub(crate) first: LogId,
    pub(crate) count: u64,
    pub(crate) notify: Notify,
}
