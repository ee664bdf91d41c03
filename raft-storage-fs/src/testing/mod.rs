//! [`SimFs`]: an in-memory file system that simulates power loss, failing syncs and a full disk,
//! for crash-consistency tests of the log (and of anything else built on [`Fs`]).
//!
//! The model of a crash, per file: what was made durable by `sync_data` survives; of what was
//! written since, an arbitrary prefix survives, cut at a 512-byte sector boundary, and the
//! sector at the cut holds the old bytes, zeros, garbage or a torn mix of old and new. A size
//! change since the last sync may or may not survive, as a whole: `set_len` is metadata (on a
//! journaling file system a truncation is one transaction, completed at mount if it was cut
//! short), so bytes it cut off either all come back or all read as zeros, never torn sectors
//! of old records. Directory changes (create, rename,
//! remove) since the last `sync_dir` survive as an arbitrary prefix of them, in order. Handles
//! opened before the crash fail every later call, like the dead process they belonged to.
//!
//! [`SimFs::crash_after`] schedules a crash for just before the n-th later call, so a test can
//! crash a multi-step operation (a snapshot's rename and directory sync, a compaction) at every
//! step in turn.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::fs::{DirLock, Fs, FsFile};

const SECTOR_BYTES: u64 = 512;
const ENOSPC: i32 = 28;
const EIO: i32 = 5;

/// An in-memory [`Fs`] with simulated power loss and disk faults. Clones share one disk.
///
/// Give each simulated process its own view, [`SimFs::process`]: after a power loss every call
/// through a view of an earlier boot fails, as the process that held it is dead (it must not
/// go on writing to the rebooted disk). The handle from [`SimFs::new`] is the test's own and
/// always works.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
    /// The boot this view belongs to; `None` for the test's own handle.
    boot: Option<u64>,
}

/// How a crash treats the sector where the surviving prefix of unsynced writes ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CutSector {
    Old,
    Zeros,
    Garbage,
    Torn,
}

/// A crash [`SimFs::crash_after`] can schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// [`SimFs::power_loss`] with this seed.
    PowerLoss {
        /// Chooses what of the unsynced writes survives.
        seed: u64,
    },
    /// [`SimFs::crash_processes`]: the processes die, the disk keeps every write.
    Processes,
}

#[derive(Debug, Default)]
struct Disk {
    files: HashMap<u64, FileData>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    /// Directory changes since the last `sync_dir`, in order.
    dir_ops: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    /// Bumped by every power loss; handles of an earlier boot are dead.
    boot: u64,
    next_id: u64,
    fail_syncs: bool,
    space_left: Option<u64>,
    syncs: u64,
    /// Calls left before a scheduled crash, and the crash.
    crash_after: Option<(u64, Crash)>,
}

impl Disk {
    /// Counts one call of a process, crashing first if one is due at it.
    fn tick(&mut self) {
        let Some((left, crash)) = self.crash_after else {
            return;
        };
        if left > 0 {
            self.crash_after = Some((left - 1, crash));
            return;
        }
        self.crash_after = None;
        match crash {
            Crash::PowerLoss { seed } => self.power_loss(seed),
            Crash::Processes => self.crash_processes(),
        }
    }

    fn power_loss(&mut self, seed: u64) {
        let mut rng = Rng(seed);
        self.crash_processes();
        let mut names = self.durable_names.clone();
        let kept_ops = rng.upto(self.dir_ops.len() as u64) as usize;
        for op in self.dir_ops.iter().take(kept_ops) {
            match op {
                DirOp::Link(path, id) => {
                    names.insert(path.clone(), *id);
                }
                DirOp::Unlink(path) => {
                    names.remove(path);
                }
            }
        }
        self.dir_ops.clear();
        let live: BTreeSet<u64> = names.values().copied().collect();
        self.files.retain(|id, _| live.contains(id));
        for file in self.files.values_mut() {
            let survived = crash_content(file, &mut rng);
            file.data = survived.clone();
            file.durable = survived;
            file.settle();
        }
        self.names = names.clone();
        self.durable_names = names;
    }

    fn crash_processes(&mut self) {
        self.boot += 1;
        self.locks.clear();
        self.fail_syncs = false;
        self.space_left = None;
    }
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

#[derive(Debug, Default)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// The byte range written since the last sync.
    dirty: Option<(u64, u64)>,
    /// Whether `set_len` changed the size since the last sync.
    resized: bool,
    /// The smallest size `set_len` cut the file to since the last sync.
    shrunk_to: Option<u64>,
}

impl FileData {
    /// Forgets what changed since the last sync (all of it is durable now).
    fn settle(&mut self) {
        self.dirty = None;
        self.resized = false;
        self.shrunk_to = None;
    }

    fn touch(&mut self, from: u64, to: u64) {
        self.dirty = Some(match self.dirty {
            None => (from, to),
            Some((lo, hi)) => (lo.min(from), hi.max(to)),
        });
    }
}

fn lock(disk: &Mutex<Disk>) -> MutexGuard<'_, Disk> {
    disk.lock().unwrap_or_else(PoisonError::into_inner)
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss: this handle belonged to the process that died")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// A small deterministic generator (SplitMix64) for crash choices.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next()
        } else {
            self.next() % (max + 1)
        }
    }
}

impl SimFs {
    /// An empty disk.
    #[must_use]
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// A view for one process, dead after the next power loss.
    #[must_use]
    pub fn process(&self) -> SimFs {
        SimFs {
            disk: Arc::clone(&self.disk),
            boot: Some(lock(&self.disk).boot),
        }
    }

    /// The disk, locked, if this view's process is alive (counting the call towards a
    /// scheduled crash).
    fn alive(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let mut disk = lock(&self.disk);
        if self.boot.is_some() {
            disk.tick();
        }
        match self.boot {
            Some(boot) if boot != disk.boot => Err(dead()),
            _ => Ok(disk),
        }
    }

    /// Simulates a power loss: every handle dies, locks are released, and each file keeps what
    /// was synced plus a prefix of the rest chosen by `seed` (see the module docs).
    pub fn power_loss(&self, seed: u64) {
        lock(&self.disk).power_loss(seed);
    }

    /// Simulates the death of every process using the disk *without* a power loss (SIGKILL,
    /// OOM): their handles die and locks are released, but every write stays (readable from the
    /// page cache, not yet durable), so a later [`power_loss`](SimFs::power_loss) can still
    /// lose what nobody synced. Injected faults are cleared.
    pub fn crash_processes(&self) {
        lock(&self.disk).crash_processes();
    }

    /// Schedules `crash` for just before the call after the next `calls` ones (counting the
    /// directory calls of process views and every call on an open file, not the directory
    /// calls of the test's own handle): that call and every later one of the dead processes
    /// fail. Replaces any crash scheduled before.
    pub fn crash_after(&self, calls: u64, crash: Crash) {
        lock(&self.disk).crash_after = Some((calls, crash));
    }

    /// Cancels the crash [`crash_after`](SimFs::crash_after) scheduled; returns `true` if it
    /// had already happened.
    pub fn cancel_crash(&self) -> bool {
        lock(&self.disk).crash_after.take().is_none()
    }

    /// Makes every later `sync_data` and `sync_dir` fail with EIO (until a power loss).
    pub fn fail_syncs(&self) {
        lock(&self.disk).fail_syncs = true;
    }

    /// Lets files grow by only `bytes` more in all; writes past that fail with ENOSPC (until a
    /// power loss). `None` lifts the limit.
    pub fn set_space_left(&self, bytes: Option<u64>) {
        lock(&self.disk).space_left = bytes;
    }

    /// How many `sync_data` and `sync_dir` calls succeeded.
    #[must_use]
    pub fn syncs(&self) -> u64 {
        lock(&self.disk).syncs
    }

    /// The current bytes of the file at `path` (what a read sees), if it exists.
    #[must_use]
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = lock(&self.disk);
        let id = disk.names.get(path)?;
        disk.files.get(id).map(|file| file.data.clone())
    }

    /// Replaces the bytes of the file at `path` (durably), to plant damage.
    ///
    /// # Errors
    /// `NotFound` when there is no such file.
    pub fn overwrite(&self, path: &Path, bytes: Vec<u8>) -> io::Result<()> {
        let mut disk = lock(&self.disk);
        let id = *disk.names.get(path).ok_or_else(|| not_found(path))?;
        let file = disk.files.get_mut(&id).ok_or_else(|| not_found(path))?;
        file.data.clone_from(&bytes);
        file.durable = bytes;
        file.settle();
        Ok(())
    }

    fn handle(&self, id: u64, boot: u64) -> Arc<dyn FsFile> {
        Arc::new(SimFile {
            disk: Arc::clone(&self.disk),
            id,
            boot,
        })
    }
}

/// What of `file` survives a crash.
fn crash_content(file: &FileData, rng: &mut Rng) -> Vec<u8> {
    if file.dirty.is_none() && !file.resized {
        return file.data.clone();
    }
    let size_survived = rng.upto(1) == 1;
    let mut out = file.durable.clone();
    let len = if size_survived {
        // Whatever a truncation cut off is gone (reads as zeros if the file grew again).
        if let Some(shrunk) = file.shrunk_to {
            out.truncate(shrunk as usize);
        }
        file.data.len()
    } else {
        file.durable.len()
    };
    out.resize(len, 0);
    let Some((lo, hi)) = file.dirty else {
        return out;
    };
    let first_sector = lo / SECTOR_BYTES;
    let last_sector = hi.div_ceil(SECTOR_BYTES);
    let cut = (first_sector + rng.upto(last_sector - first_sector)) * SECTOR_BYTES;
    let copy_new = |out: &mut Vec<u8>, from: u64, to: u64| {
        for at in from..to {
            let at = at as usize;
            if let (Some(slot), Some(byte)) = (out.get_mut(at), file.data.get(at)) {
                *slot = *byte;
            }
        }
    };
    copy_new(&mut out, lo, cut.min(hi));
    if cut < hi {
        // Only the unsynced bytes of the cut sector are at risk: synced bytes sharing it survive.
        let cut = cut.max(lo);
        let sector_end = ((cut / SECTOR_BYTES + 1) * SECTOR_BYTES).min(hi);
        match [
            CutSector::Old,
            CutSector::Zeros,
            CutSector::Garbage,
            CutSector::Torn,
        ][rng.upto(3) as usize]
        {
            CutSector::Old => {}
            CutSector::Torn => copy_new(&mut out, cut, cut + rng.upto(sector_end - cut)),
            mode => {
                for at in cut..sector_end {
                    if let Some(slot) = out.get_mut(at as usize) {
                        *slot = if mode == CutSector::Zeros {
                            0
                        } else {
                            rng.next() as u8
                        };
                    }
                }
            }
        }
    }
    out
}

#[derive(Debug)]
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    id: u64,
    boot: u64,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut Disk, u64) -> io::Result<T>) -> io::Result<T> {
        let mut disk = lock(&self.disk);
        disk.tick();
        if disk.boot != self.boot {
            return Err(dead());
        }
        f(&mut disk, self.id)
    }
}

/// Charges `grow` bytes of new space, or fails with ENOSPC.
fn charge(disk: &mut Disk, grow: u64) -> io::Result<()> {
    if let Some(left) = disk.space_left {
        if grow > left {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        disk.space_left = Some(left - grow);
    }
    Ok(())
}

fn file_mut(disk: &mut Disk, id: u64) -> io::Result<&mut FileData> {
    disk.files
        .get_mut(&id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file was removed"))
}

impl FsFile for SimFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|disk, id| {
            let end = offset + buf.len() as u64;
            let old_len = file_mut(disk, id)?.data.len() as u64;
            charge(disk, end.saturating_sub(old_len))?;
            let file = file_mut(disk, id)?;
            if file.data.len() < end as usize {
                file.data.resize(end as usize, 0);
            }
            if let Some(target) = file.data.get_mut(offset as usize..end as usize) {
                target.copy_from_slice(buf);
            }
            file.touch(offset.min(old_len), end);
            Ok(())
        })
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|disk, id| {
            let file = file_mut(disk, id)?;
            let source = file
                .data
                .get(offset as usize..offset as usize + buf.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
            buf.copy_from_slice(source);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|disk, id| {
            let old_len = file_mut(disk, id)?.data.len() as u64;
            charge(disk, len.saturating_sub(old_len))?;
            let file = file_mut(disk, id)?;
            file.data.resize(len as usize, 0);
            file.resized = true;
            if len < old_len {
                file.shrunk_to = Some(file.shrunk_to.map_or(len, |shrunk| shrunk.min(len)));
            }
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with(|disk, id| Ok(file_mut(disk, id)?.data.len() as u64))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|disk, id| {
            if disk.fail_syncs {
                return Err(io::Error::from_raw_os_error(EIO));
            }
            disk.syncs += 1;
            let file = file_mut(disk, id)?;
            file.durable.clone_from(&file.data);
            file.settle();
            Ok(())
        })
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.alive()?.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        let mut disk = self.alive()?;
        if !disk.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the directory is locked by another open log",
            ));
        }
        Ok(DirLock::new(Box::new(SimLock {
            disk: Arc::clone(&self.disk),
            dir: dir.to_path_buf(),
            boot: disk.boot,
        })))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.alive()?;
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(disk
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn FsFile>> {
        let mut disk = self.alive()?;
        let boot = disk.boot;
        if let Some(&id) = disk.names.get(path) {
            return Ok(self.handle(id, boot));
        }
        if !create {
            return Err(not_found(path));
        }
        let id = disk.next_id;
        disk.next_id += 1;
        disk.files.insert(id, FileData::default());
        disk.names.insert(path.to_path_buf(), id);
        disk.dir_ops.push(DirOp::Link(path.to_path_buf(), id));
        Ok(self.handle(id, boot))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.alive()?;
        let id = disk.names.get(path).ok_or_else(|| not_found(path))?;
        let file = disk.files.get(id).ok_or_else(|| not_found(path))?;
        Ok(file.data.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_path_buf(), id);
        // One atomic step: a crash keeps both changes or neither (the order of a prefix of
        // `dir_ops` can split them, so link the new name first: at worst both names survive,
        // which is what a crash after `link` and before `unlink` also leaves).
        disk.dir_ops.push(DirOp::Link(to.to_path_buf(), id));
        disk.dir_ops.push(DirOp::Unlink(from.to_path_buf()));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        disk.names.remove(path).ok_or_else(|| not_found(path))?;
        // The data stays while a durable name or an open handle may still reach it; the next
        // power loss decides.
        disk.dir_ops.push(DirOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    /// Makes the entries of every directory durable (a log uses one directory).
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        if disk.fail_syncs {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        disk.syncs += 1;
        disk.durable_names = disk.names.clone();
        disk.dir_ops.clear();
        Ok(())
    }
}

#[derive(Debug)]
struct SimLock {
    disk: Arc<Mutex<Disk>>,
    dir: PathBuf,
    boot: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut disk = lock(&self.disk);
        if disk.boot == self.boot {
            disk.locks.remove(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests;
