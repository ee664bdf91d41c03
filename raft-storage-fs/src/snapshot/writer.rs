//! [`FsSnapshotWriter`]: writes a new snapshot to a temporary file and makes it the log's
//! current one (the steps and their crash rules are in the `snapshot` module's docs). It holds
//! the open log's [`Handle`], not the store: the handle gives the shared state the install
//! step reads and updates, and every step that creates, renames or removes a file by name
//! runs under [`Handle::directory`], so none of them reaches a directory the log no longer
//! holds. After `FsLogStore::close` every call fails with [`Error::Closed`], and an abandoned
//! temporary file is left to the next open (which removes leftovers).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::{LogIndex, SnapshotMeta, SnapshotWriter};

use crate::error::Error;
use crate::fs::{Fs, FsFile};
use crate::shared::{Directory, Handle};

use super::file::{SnapshotFile, blocking};
use super::format;

/// A snapshot being written to a temporary file of the store's directory.
#[derive(Debug)]
pub(crate) struct FsSnapshotWriter {
    /// The open log (what a store's clone holds).
    store: Arc<Handle>,
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
    pub(crate) async fn begin(store: Arc<Handle>) -> Result<FsSnapshotWriter, Error> {
        let shared = store.shared();
        shared.lock().check_writable()?;
        let seq = shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let path = shared.dir.join(format::temp_name(seq));
        let file = {
            let (store, path) = (Arc::clone(&store), path.clone());
            blocking("snapshot create", move || {
                let _directory = store.directory()?;
                let shared = store.shared();
                shared.lock().check_writable()?;
                let file = shared
                    .fs
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
        self.store.shared().lock().check_open()?;
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
            store: Arc::clone(&self.store),
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
        let store = Arc::clone(&self.store);
        let remove = move || {
            // After close the directory may be another open log's: the next open removes it.
            let Ok(_directory) = store.directory() else {
                return;
            };
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
    store: Arc<Handle>,
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
        // One install at a time: the check of the current index and the rename are one step,
        // and the log cannot release the directory meanwhile.
        let Ok(directory) = self.store.directory() else {
            // Closed: the temporary file is left to the next open.
            return Err(Error::Closed);
        };
        let index = meta.last_log_id.index;
        let current = {
            let state = shared.lock();
            state
                .check_writable()
                .map(|()| state.snapshot.as_ref().map(|s| s.index()))
        };
        match current {
            Err(err) => {
                self.discard_in(&directory);
                return Err(err);
            }
            Ok(Some(current)) if current >= index => {
                tracing::debug!(%index, %current, "discarding a snapshot older than the current one");
                self.discard_in(&directory);
                return Ok(false);
            }
            Ok(_) => {}
        }
        let path = shared.dir.join(format::name(index));
        if let Err(err) = shared.fs.rename(&self.temp, &path) {
            self.discard_in(&directory);
            return Err(Error::io("renaming", &self.temp, err));
        }
        if let Err(err) = shared.fs.sync_dir(&shared.dir) {
            let err = Error::io("syncing directory", &shared.dir, err);
            shared.lock().poison(err.to_string());
            return Err(err);
        }
        shared.lock().snapshot = Some(Arc::new(SnapshotFile::new(meta, path, self.file)));
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
        let trailer = format::encode_trailer(meta)?;
        self.file
            .write_all_at(&trailer, self.len)
            .map_err(|err| Error::io("writing", &self.temp, err))?;
        self.file
            .sync_data()
            .map_err(|err| Error::io("syncing", &self.temp, err))
    }

    /// Removes the temporary file, unless the log was closed (the next open removes it).
    /// Must not be called while the caller holds the directory: call
    /// [`discard_in`](Finish::discard_in) then.
    fn discard(&self) {
        if let Ok(directory) = self.store.directory() {
            self.discard_in(&directory);
        }
    }

    /// Removes the temporary file from `_directory`, which the caller holds.
    fn discard_in(&self, _directory: &Directory<'_>) {
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
