//! Group commit: appends queued while the I/O thread is busy share one `fdatasync`.
//!
//! The log runs on the real file system behind a thin [`Fs`] wrapper that can hold the I/O
//! thread inside its first segment sync and counts the segment syncs it sees, so the test
//! decides what is queued while that sync is in flight instead of racing the I/O thread.

mod common;

use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::{entries, read_all};
use raft_core::{LogId, LogIndex, LogStore};
use raft_storage_fs::fs::{DirLock, Fs, FsFile, StdFs};
use raft_storage_fs::{FsLogStore, FsOptions};

/// How long a test waits for something that takes milliseconds before it calls it a hang.
const HANG: Duration = Duration::from_secs(60);

/// Holds the first segment sync after [`Gate::arm`] until [`Gate::release`], and counts the
/// segment syncs after `arm`.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    /// A sync is waiting at the gate.
    holding: bool,
    released: bool,
    /// `sync_data` calls on segment files since `arm`.
    segment_syncs: u64,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts counting segment syncs and holding the next one.
    fn arm(&self) {
        self.lock().armed = true;
    }

    /// Called by a segment file's `sync_data` before it syncs.
    fn on_segment_sync(&self) {
        let mut state = self.lock();
        if !state.armed {
            return;
        }
        state.segment_syncs += 1;
        if state.released {
            return;
        }
        state.holding = true;
        self.changed.notify_all();
        let _released = self
            .changed
            .wait_while(state, |state| !state.released)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Blocks until a sync waits at the gate.
    fn wait_holding(&self) {
        let (state, timeout) = self
            .changed
            .wait_timeout_while(self.lock(), HANG, |state| !state.holding)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            state.holding && !timeout.timed_out(),
            "the I/O thread never synced the first append"
        );
    }

    /// Lets the held sync (and every later one) through.
    fn release(&self) {
        self.lock().released = true;
        self.changed.notify_all();
    }

    fn segment_syncs(&self) -> u64 {
        self.lock().segment_syncs
    }
}

/// Releases the gate when dropped, so a failing test does not leave the I/O thread held (the
/// store's drop waits for that thread).
struct ReleaseOnDrop(Arc<Gate>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The real file system, with the segment files' syncs going through a [`Gate`].
#[derive(Debug)]
struct GatedFs {
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn FsFile>,
    /// Set for segment files (`<index>.seg`); other files sync straight through.
    gate: Option<Arc<Gate>>,
}

impl FsFile for GatedFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn sync_data(&self) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.on_segment_sync();
        }
        self.inner.sync_data()
    }
}

impl Fs for GatedFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        StdFs.lock_dir(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdFs.list(dir)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let is_segment = path.extension().is_some_and(|ext| ext == "seg");
        Ok(Arc::new(GatedFile {
            inner: StdFs.open(path, create)?,
            gate: is_segment.then(|| Arc::clone(&self.gate)),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFs.read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        StdFs.remove(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }
}

/// Waits until the store reports `index` durable.
async fn wait_durable(store: &FsLogStore, index: u64) -> LogId {
    let mut durable = store.durable();
    let reached = async {
        loop {
            let id = *durable.borrow_and_update();
            if id.index >= LogIndex(index) {
                return id;
            }
            assert!(durable.changed().await.is_ok(), "durability watch closed");
        }
    };
    match tokio::time::timeout(HANG, reached).await {
        Ok(id) => id,
        Err(_) => panic!("entry {index} never became durable"),
    }
}

/// 64 appends, none waiting for durability: the first is taken by the I/O thread alone and
/// held inside its sync; the other 63 are queued meanwhile (each `append` returns once its
/// entry is queued and readable). When the sync is let go, the I/O thread takes every queued
/// append as one group, so the 64 appends cost exactly 2 `fdatasync`s: one for the first, one
/// shared by the other 63.
///
/// No timing is involved: the I/O thread cannot take a job while it is held, every append has
/// been queued before it is let go, and it takes all queued jobs at once. So the counts are
/// the same whatever the scheduling.
#[tokio::test]
async fn concurrent_appends_share_one_fdatasync() {
    const APPENDS: u64 = 64;
    let dir = tempfile::tempdir().unwrap();
    // Large enough that 64 small entries neither roll over nor start a preallocation.
    let options = FsOptions::default().segment_bytes(1 << 20);
    let gate = Arc::new(Gate::default());
    let fs = GatedFs {
        gate: Arc::clone(&gate),
    };
    let store = FsLogStore::open_with(Arc::new(fs), dir.path(), options.clone()).unwrap();
    // Recovery's syncs at open are behind us: count from here, and hold the first sync.
    gate.arm();
    let _release = ReleaseOnDrop(Arc::clone(&gate));
    let written = entries(1, 1, APPENDS);
    let (first, rest) = written.split_first().unwrap();

    store.append(std::slice::from_ref(first)).await.unwrap();
    {
        let gate = Arc::clone(&gate);
        tokio::task::spawn_blocking(move || gate.wait_holding())
            .await
            .unwrap();
    }
    // The I/O thread is inside the first group's sync: everything appended now queues.
    for entry in rest {
        store.append(std::slice::from_ref(entry)).await.unwrap();
    }
    assert_eq!(store.last_log_id(), LogId::new(1, APPENDS));
    assert_eq!(
        store.durable().borrow().index,
        LogIndex::ZERO,
        "nothing is durable before its sync returns"
    );
    assert_eq!(store.stats().fsyncs, 0);
    assert_eq!(
        gate.segment_syncs(),
        1,
        "only the first append's sync started"
    );
    assert_eq!(
        read_all(&store, 1, APPENDS).await,
        written,
        "readable at once"
    );

    gate.release();
    assert_eq!(wait_durable(&store, APPENDS).await, LogId::new(1, APPENDS));
    let stats = store.stats();
    assert_eq!(
        stats.fsyncs, 2,
        "one fdatasync for the first append, one shared by the 63 queued behind it: {stats:?}"
    );
    assert!(stats.fsyncs < APPENDS);
    assert_eq!(stats.groups, 2, "{stats:?}");
    assert_eq!(stats.entries_written, APPENDS, "{stats:?}");
    assert_eq!(
        gate.segment_syncs(),
        2,
        "the file system saw as many segment syncs as the store counted"
    );
    assert_eq!(read_all(&store, 1, APPENDS).await, written);
    store.close().await;
    drop(store);

    // Durable means on disk: a fresh open finds every entry.
    let store = FsLogStore::open(dir.path(), options).unwrap();
    let restored = store.restore().await.unwrap();
    assert_eq!(restored.entries.len() as u64, APPENDS);
    assert_eq!(store.last_log_id(), LogId::new(1, APPENDS));
    assert_eq!(read_all(&store, 1, APPENDS).await, written);
}
