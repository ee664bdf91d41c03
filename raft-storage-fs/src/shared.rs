//! What the parts of an open log share: [`Shared`] (the [`State`] under its mutex, the I/O
//! thread's wake-up call, the directory, file system and options), which the store, its I/O
//! thread and its snapshot writers all reach; and [`Handle`], the open log itself, which owns
//! the I/O thread and the directory lock.
//!
//! Every clone of the store and every snapshot writer holds an `Arc<Handle>`. The directory
//! lock is released by [`Handle::close`] (`FsLogStore::close`) or when the last `Arc` is
//! dropped, whichever comes first, and in both cases only after the I/O thread has written the
//! queued jobs and stopped. Outside the I/O thread only snapshot writers touch the directory by
//! name (create, rename, remove); they do it through [`Handle::directory`], which holds the
//! lock's mutex for the step and fails with [`Error::Closed`] once the lock is gone, so nothing
//! of a closed log can touch a directory another open log may hold since.
//! This module sits below the store, the I/O thread, recovery and the snapshot writer, and
//! depends on none of them.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use raft_core::StoreClaim;

use crate::error::Error;
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
    /// The I/O thread until it was joined. The mutex is held while joining, so a second
    /// `stop` returns only once the thread has stopped.
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Held by the node this store backs (one at a time).
    claim: StoreClaim,
    /// The directory lock, `None` once the log is closed. The mutex is also held while a
    /// snapshot is created, installed or removed by name (see [`Handle::directory`]), so two
    /// finishing at once cannot both become current and none outlives the lock.
    directory: Mutex<Option<DirLock>>,
}

impl fmt::Debug for Handle {
    /// As the store's: it is what an `FsLogStore` holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsLogStore")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// The directory of an open log, locked for one step of a snapshot writer: while it is held
/// the log cannot release its directory lock.
pub(crate) type Directory<'a> = MutexGuard<'a, Option<DirLock>>;

impl Handle {
    /// The open log of `shared`, whose I/O thread is `thread`, holding `dir`'s `lock`.
    pub(crate) fn new(shared: Arc<Shared>, thread: JoinHandle<()>, lock: DirLock) -> Handle {
        Handle {
            shared,
            thread: Mutex::new(Some(thread)),
            claim: StoreClaim::default(),
            directory: Mutex::new(Some(lock)),
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

    /// The directory, for a step that creates, renames or removes files in it by name; held
    /// until the guard is dropped. Blocking (it waits for another snapshot's step).
    ///
    /// # Errors
    /// [`Error::Closed`] once the log released the directory lock.
    pub(crate) fn directory(&self) -> Result<Directory<'_>, Error> {
        let directory = self
            .directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if directory.is_none() {
            return Err(Error::Closed);
        }
        Ok(directory)
    }

    /// Tells the I/O thread to finish the queued jobs and stop, and waits for it. Later
    /// writes fail with [`Error::Closed`].
    pub(crate) fn stop(&self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(thread) = thread.take() {
            let _ = thread.join();
        }
    }

    /// [`stop`](Handle::stop)s the log, then waits for a snapshot step in progress and
    /// releases the directory lock: the directory can be opened again, and every later call of
    /// this log that would touch it fails with [`Error::Closed`]. Blocking.
    pub(crate) fn close(&self) {
        self.stop();
        // `closing` is set: a snapshot step that takes the directory after this sees it.
        let lock = self
            .directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(lock);
    }
}

impl Drop for Handle {
    /// Blocks until the I/O thread has written the queued jobs (one group), then releases the
    /// directory lock (if `close` did not already): call `FsLogStore::close` from async code to
    /// wait off the runtime's threads instead.
    fn drop(&mut self) {
        self.close();
    }
}
