//! What a proposer is told: [`Appended`] (where its commands landed and their results) and the
//! way it is told, a channel or a callback ([`Notify`]), for the loop and the apply task alike.

use bytes::Bytes;
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

/// A one-shot answer to a caller.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A proposer waiting on `first..first + count`.
pub(crate) struct Wait {
    pub(crate) first: LogId,
    pub(crate) count: u64,
    pub(crate) notify: Notify,
}
