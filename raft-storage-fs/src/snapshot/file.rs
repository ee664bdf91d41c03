//! [`SnapshotFile`], a complete snapshot file open for reading, and [`recover`], which finds
//! and validates the latest one when a log is opened; also [`blocking`], which runs the
//! snapshot files' I/O on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::{LogId, LogIndex, SnapshotMeta, SnapshotReader};

use crate::error::Error;
use crate::fs::{Fs, FsFile};

use super::format;

/// A complete snapshot file: the store's current snapshot, or one a reader still holds after a
/// newer one replaced it.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    meta: SnapshotMeta,
    path: PathBuf,
    file: Arc<dyn FsFile>,
}

impl SnapshotFile {
    /// The snapshot described by `meta`, complete and durable in `file` at `path`.
    pub(crate) fn new(meta: SnapshotMeta, path: PathBuf, file: Arc<dyn FsFile>) -> SnapshotFile {
        SnapshotFile { meta, path, file }
    }

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
