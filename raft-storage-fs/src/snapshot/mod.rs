//! Snapshot files beside the log: writing one, making it current, reading it, finding it at open.
//!
//! **Writing** ([`FsSnapshotWriter`]): chunks go to a temporary file of their own
//! (`snapshot-<sequence>.tmp`) on tokio's blocking threads, and their CRC-32C is computed as
//! they go. [`finish`](SnapshotWriter::finish) then, on a blocking thread:
//! 1. checks the size and checksum against the meta (else [`Error::SnapshotMismatch`] and the
//!    file is removed);
//! 2. appends the trailer ([`format`]) and fsyncs the file;
//! 3. under the store's install lock, discards the file and answers `false` if the store
//!    already has a snapshot at the same or a higher index;
//! 4. renames the file to `snapshot-<index>.snap` and fsyncs the directory: from here on the
//!    snapshot is durable and current;
//! 5. removes older snapshot files and fsyncs the directory again.
//!
//! A crash before the rename is durable leaves a temporary file (removed at open) and the
//! previous snapshot current; a crash after it leaves the new one current and maybe older ones
//! beside it (removed at open). A failed directory fsync after the rename poisons the log, as a
//! failed log fsync does: what the directory holds is unknown. Other failures only fail the
//! snapshot (nothing was reported durable); leftovers of step 5 are only warned about.
//!
//! **Reading** ([`SnapshotFile`]): every reader holds its own open file, so it goes on reading
//! the same data after a newer snapshot replaced (unlinked) its file. Reads are positional and
//! run on blocking threads.
//!
//! **At open** ([`recover`]): temporary files are removed and the latest complete snapshot is
//! validated: its trailer and then the whole data's checksum, read in chunks. A damaged one is
//! refused with [`Error::Corrupt`] naming it, and the log is not opened. Falling back to an
//! older snapshot would be wrong: a renamed snapshot was fsynced before its rename, so damage
//! means the disk lost synced data; the older snapshots were removed once the new one was
//! durable, and the log may already be compacted past them.

pub(crate) mod format;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::{LogId, LogIndex, SnapshotMeta, SnapshotReader, SnapshotWriter};

use crate::error::Error;
use crate::fs::{Fs, FsFile};
use crate::store::FsLogStore;

/// A complete snapshot file: the store's current snapshot, or one a reader still holds after a
/// newer one replaced it.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    meta: SnapshotMeta,
    path: PathBuf,
    file: Arc<dyn FsFile>,
}

impl SnapshotFile {
    /// The index the snapshot covers up to.
    pub(crate) fn index(&self) -> LogIndex {
        self.meta.last_log_id.index
    }

    /// The last entry the snapshot covers.
    pub(crate) fn last_log_id(&self) -> LogId {
        self.meta.last_log_id
    }
}

#[async_trait]
impl SnapshotReader for SnapshotFile {
    fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    async fn read(&self, offset: u64, len: usize) -> Result<Bytes, raft_core::Error> {
        let end = offset
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX))
            .min(self.meta.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let count = usize::try_from(end - offset).unwrap_or(0);
        let file = Arc::clone(&self.file);
        let path = self.path.clone();
        let bytes = blocking("snapshot read", move || {
            let mut buf = vec![0; count];
            file.read_exact_at(&mut buf, offset)
                .map_err(|err| Error::io("reading", &path, err))?;
            Ok(Bytes::from(buf))
        })
        .await?;
        Ok(bytes)
    }
}

/// Runs `work` on tokio's blocking threads (file I/O must not stall the async workers).
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::Invalid(format!("{what} task failed: {err}")))?
}

/// A snapshot being written to a temporary file of the store's directory.
#[derive(Debug)]
pub(crate) struct FsSnapshotWriter {
    /// Keeps the directory locked while the snapshot may still be renamed into it.
    store: FsLogStore,
    file: Arc<dyn FsFile>,
    /// The temporary file; `None` once `finish` took it over.
    temp: Option<PathBuf>,
    /// Bytes written so far, and their CRC-32C.
    len: u64,
    crc: u32,
    /// Why an earlier write failed (the data is incomplete, so `finish` refuses).
    failed: Option<String>,
}

impl FsSnapshotWriter {
    /// Creates the temporary file of a new snapshot.
    pub(crate) async fn begin(store: FsLogStore) -> Result<FsSnapshotWriter, Error> {
        let shared = store.shared();
        shared.lock().check_writable()?;
        let seq = shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let path = shared.dir.join(format::temp_name(seq));
        let fs = Arc::clone(&shared.fs);
        let file = {
            let path = path.clone();
            blocking("snapshot create", move || {
                let file = fs
                    .open(&path, true)
                    .map_err(|err| Error::io("creating", &path, err))?;
                file.set_len(0)
                    .map_err(|err| Error::io("emptying", &path, err))?;
                Ok(file)
            })
            .await?
        };
        Ok(FsSnapshotWriter {
            store,
            file,
            temp: Some(path),
            len: 0,
            crc: 0,
            failed: None,
        })
    }
}

#[async_trait]
impl SnapshotWriter for FsSnapshotWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), raft_core::Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Invalid(format!(
                "an earlier write of this snapshot failed: {reason}"
            ))
            .into());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let path = self.temp.clone().unwrap_or_default();
        let file = Arc::clone(&self.file);
        let (offset, crc) = (self.len, self.crc);
        let len = chunk.len() as u64;
        let written = blocking("snapshot write", move || {
            file.write_all_at(&chunk, offset)
                .map_err(|err| Error::io("writing", &path, err))?;
            Ok(crc32c::crc32c_append(crc, &chunk))
        })
        .await;
        match written {
            Ok(crc) => {
                self.crc = crc;
                self.len += len;
                Ok(())
            }
            Err(err) => {
                self.failed = Some(err.to_string());
                Err(err.into())
            }
        }
    }

    async fn finish(mut self: Box<Self>, meta: SnapshotMeta) -> Result<bool, raft_core::Error> {
        let Some(temp) = self.temp.take() else {
            return Err(Error::Invalid("the snapshot was already finished".to_owned()).into());
        };
        let job = Finish {
            store: self.store.clone(),
            file: Arc::clone(&self.file),
            temp,
            len: self.len,
            crc: self.crc,
            failed: self.failed.take(),
        };
        Ok(blocking("snapshot finish", move || job.run(meta)).await?)
    }
}

impl Drop for FsSnapshotWriter {
    /// Abandons an unfinished snapshot: its temporary file is removed off the async threads
    /// (or at the next open, if that fails).
    fn drop(&mut self) {
        let Some(temp) = self.temp.take() else {
            return;
        };
        let store = self.store.clone();
        let remove = move || {
            if let Err(err) = store.shared().fs.remove(&temp) {
                tracing::debug!(file = %temp.display(), %err, "could not remove an abandoned snapshot");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// The blocking part of [`SnapshotWriter::finish`].
struct Finish {
    store: FsLogStore,
    file: Arc<dyn FsFile>,
    temp: PathBuf,
    len: u64,
    crc: u32,
    failed: Option<String>,
}

impl Finish {
    fn run(self, meta: SnapshotMeta) -> Result<bool, Error> {
        if let Err(err) = self.seal(&meta) {
            self.discard();
            return Err(err);
        }
        let shared = self.store.shared();
        // One install at a time: the check of the current index and the rename are one step.
        let _install = shared
            .snapshot_install
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let index = meta.last_log_id.index;
        let current = {
            let state = shared.lock();
            state
                .check_writable()
                .map(|()| state.snapshot.as_ref().map(|s| s.index()))
        };
        match current {
            Err(err) => {
                self.discard();
                return Err(err);
            }
            Ok(Some(current)) if current >= index => {
                tracing::debug!(%index, %current, "discarding a snapshot older than the current one");
                self.discard();
                return Ok(false);
            }
            Ok(_) => {}
        }
        let path = shared.dir.join(format::name(index));
        if let Err(err) = shared.fs.rename(&self.temp, &path) {
            self.discard();
            return Err(Error::io("renaming", &self.temp, err));
        }
        if let Err(err) = shared.fs.sync_dir(&shared.dir) {
            let err = Error::io("syncing directory", &shared.dir, err);
            shared.lock().poison(err.to_string());
            return Err(err);
        }
        shared.lock().snapshot = Some(Arc::new(SnapshotFile {
            meta,
            path,
            file: self.file,
        }));
        tracing::info!(%index, "snapshot saved");
        remove_older(&*shared.fs, &shared.dir, index);
        Ok(true)
    }

    /// Checks the data against `meta`, then appends the trailer and makes the file durable.
    fn seal(&self, meta: &SnapshotMeta) -> Result<(), Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Invalid(format!(
                "an earlier write of this snapshot failed: {reason}"
            )));
        }
        if self.len != meta.size || self.crc != meta.checksum {
            return Err(Error::SnapshotMismatch {
                file: self.temp.clone(),
                expected: Box::new(meta.clone()),
                size: self.len,
                checksum: self.crc,
            });
        }
        let trailer = format::encode_trailer(meta);
        self.file
            .write_all_at(&trailer, self.len)
            .map_err(|err| Error::io("writing", &self.temp, err))?;
        self.file
            .sync_data()
            .map_err(|err| Error::io("syncing", &self.temp, err))
    }

    fn discard(&self) {
        if let Err(err) = self.store.shared().fs.remove(&self.temp) {
            tracing::warn!(file = %self.temp.display(), %err, "could not remove a discarded snapshot (it is removed at the next open)");
        }
    }
}

/// Removes the snapshot files older than `index` (best effort: leftovers are removed at open).
fn remove_older(fs: &dyn Fs, dir: &Path, index: LogIndex) {
    let names = match fs.list(dir) {
        Ok(names) => names,
        Err(err) => {
            tracing::warn!(dir = %dir.display(), %err, "could not list older snapshots to remove");
            return;
        }
    };
    let mut removed = false;
    for name in names {
        if let Some(Some(older)) = format::parse_name(&name)
            && older < index
        {
            let path = dir.join(&name);
            match fs.remove(&path) {
                Ok(()) => removed = true,
                Err(err) => {
                    tracing::warn!(file = %path.display(), %err, "could not remove an older snapshot");
                }
            }
        }
    }
    if removed && let Err(err) = fs.sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), %err, "could not sync the removal of older snapshots");
    }
}

/// Finds the latest snapshot in `dir` at open (`names` are its files): removes temporary files
/// and older snapshots, and validates the latest, which it syncs (a process that died after the
/// rename may have left it in the page cache only).
pub(crate) fn recover(
    fs: &dyn Fs,
    dir: &Path,
    names: &[String],
) -> Result<Option<SnapshotFile>, Error> {
    let mut complete = Vec::new();
    for name in names {
        let path = dir.join(name);
        if format::is_temp(name) {
            fs.remove(&path)
                .map_err(|err| Error::io("removing", &path, err))?;
            continue;
        }
        match format::parse_name(name) {
            Some(Some(index)) => complete.push(index),
            Some(None) => {
                return Err(Error::Corrupt {
                    file: path,
                    offset: 0,
                    reason: "not a snapshot name (snapshot- and 20 digits of an index)".to_owned(),
                });
            }
            None => {}
        }
    }
    complete.sort_unstable();
    let Some((&latest, older)) = complete.split_last() else {
        return Ok(None);
    };
    let snapshot = open_file(fs, dir, latest)?;
    for &index in older {
        let path = dir.join(format::name(index));
        fs.remove(&path)
            .map_err(|err| Error::io("removing", &path, err))?;
    }
    Ok(Some(snapshot))
}

/// Opens and validates the snapshot file covering up to `index`.
fn open_file(fs: &dyn Fs, dir: &Path, index: LogIndex) -> Result<SnapshotFile, Error> {
    let path = dir.join(format::name(index));
    let file = fs
        .open(&path, false)
        .map_err(|err| Error::io("opening", &path, err))?;
    let len = file
        .size()
        .map_err(|err| Error::io("reading the size of", &path, err))?;
    let meta = format::read_trailer(&*file, &path, len)?;
    if meta.last_log_id.index != index {
        return Err(Error::Corrupt {
            file: path,
            offset: len.saturating_sub(format::FOOTER_BYTES),
            reason: format!("the file is named for index {index} but holds the {meta}"),
        });
    }
    format::check_data(&*file, &path, &meta)?;
    file.sync_data()
        .map_err(|err| Error::io("syncing", &path, err))?;
    Ok(SnapshotFile { meta, path, file })
}
