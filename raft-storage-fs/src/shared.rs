//! What the parts of an open log share: [`Shared`] (the [`State`] under its mutex, the I/O
//! thread's wake-up call, the directory, file system and options), which the store, its I/O
//! thread and its snapshot writers all reach; and [`Handle`], the open log itself, which owns
//! the I/O thread and the directory lock.
//!
//! Every clone of the store and every snapshot writer holds an `Arc<Handle>`: dropping the
//! last one stops the I/O thread (after it wrote the queued jobs) and then frees the directory
//! lock, so no snapshot can be renamed into a directory another process may have opened since.
//! This module sits below the store, the I/O thread, recovery and the snapshot writer, and
//! depends on none of them.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use raft_core::StoreClaim;

use crate::fs::{DirLock, Fs};
use crate::options::FsOptions;
use crate::state::State;

/// What callers and the I/O thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the I/O thread when a job is queued or the store closes.
    pub(crate) wake: Condvar,
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) options: FsOptions,
    /// Numbers the temporary files of snapshots being written.
    pub(crate) snapshot_seq: AtomicU64,
    /// Held while a finished snapshot is checked against the current one and renamed into
    /// place, so two finishing at once cannot both become current.
    pub(crate) snapshot_install: Mutex<()>,
}

impl Shared {
    /// The state, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data behind (every update is a few
        // plain assignments); the I/O thread's panic poisons the log through its guard.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open log: its shared state, its I/O thread and its directory lock. The store's clones
/// and its snapshot writers share one.
pub(crate) struct Handle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Held by the node this store backs (one at a time).
    claim: StoreClaim,
    /// Held until the I/O thread has stopped (fields drop after `Drop::drop`).
    _lock: DirLock,
}

impl fmt::Debug for Handle {
    /// As the store's: it is what an `FsLogStore` holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsLogStore")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The open log of `shared`, whose I/O thread is `thread`, holding `dir`'s `lock`.
    pub(crate) fn new(shared: Arc<Shared>, thread: JoinHandle<()>, lock: DirLock) -> Handle {
        Handle {
            shared,
            thread: Mutex::new(Some(thread)),
            claim: StoreClaim::default(),
            _lock: lock,
        }
    }

    /// The claim of the node this store backs.
    pub(crate) fn claim(&self) -> &StoreClaim {
        &self.claim
    }

    /// What the store's callers and its I/O thread share.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Tells the I/O thread to finish the queued jobs and stop, and waits for it.
    pub(crate) fn stop(&self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Handle {
    /// Blocks until the I/O thread has written the queued jobs (one group): call
    /// `FsLogStore::close` from async code to wait off the runtime's threads instead.
    fn drop(&mut self) {
        self.stop();
    }
}
