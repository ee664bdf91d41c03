//! How a log is laid out and cached: [`FsOptions`], with the defaults (sized for throughput)
//! and [`FsOptions::small`] (sized for a small application's disk).

use raft_core::NodeId;

/// Options of [`FsLogStore`](crate::FsLogStore).
///
/// The defaults are sized for throughput: 64 MiB segments, zero-filled one ahead, so a busy log
/// rolls over rarely and every `fdatasync` flushes data only. A log takes at least one segment
/// on disk, plus the one prepared ahead once the current one is half full, so a small
/// application (a few MiB of log between snapshots, or less) should start from
/// [`FsOptions::small`] instead.
///
/// Compaction removes whole segments. How much disk a log holds after a snapshot therefore
/// depends on the segment size: about the entries kept after the snapshot, rounded up to
/// whole segments, plus the segment being written and one prepared ahead. A log whose live
/// part fits in one segment still shrinks: a compaction covering most of that segment (at
/// least half of its records and an eighth of `segment_bytes`) makes the next append start a
/// new segment, and the compaction after that removes the old one.
///
/// ```
/// use raft_storage_fs::FsOptions;
///
/// let options = FsOptions::small();
/// assert_eq!(options.segment_bytes, 1 << 20);
/// // Every setting can still be changed.
/// let options = FsOptions::small().segment_bytes(4 << 20);
/// assert!(options.zero_fill);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsOptions {
    /// The size segment files are preallocated to; a new segment starts when the next record
    /// would not fit (a record larger than this gets a segment of its own). It also bounds the
    /// I/O thread's write buffer, which holds at most one segment's worth of records (it
    /// shrinks back after a larger record). Default 64 MiB; [`small`](FsOptions::small): 1 MiB.
    pub segment_bytes: u64,
    /// Preallocate segments by writing zeros (on a background thread, one segment ahead) so
    /// appends overwrite allocated blocks: an fdatasync then flushes data only, no block
    /// allocation metadata (measured here ~2x faster than on a growing or sparse file). When
    /// off, segments are sparse files. Default on (also in [`small`](FsOptions::small), where
    /// a segment of zeros is 1 MiB).
    pub zero_fill: bool,
    /// The newest entries kept in memory for reads (replication and apply read them back);
    /// older ones are read from the segment files. Entries not yet written to a file are
    /// always kept, and compacted entries never are, so the cache holds at most the live log.
    /// Default 64 MiB; [`small`](FsOptions::small): 4 MiB.
    pub cache_bytes: u64,
    /// The `node` label of this store's metrics, when set.
    pub node: Option<NodeId>,
}

impl Default for FsOptions {
    fn default() -> FsOptions {
        FsOptions {
            segment_bytes: 64 << 20,
            zero_fill: true,
            cache_bytes: 64 << 20,
            node: None,
        }
    }
}

impl FsOptions {
    /// Sizes for a small application (a log of a few MiB or less between snapshots, say a
    /// ledger of a few accounts, or raft-core's `snapshot_log_bytes` at a few MiB): 1 MiB
    /// segments, zero-filled, and a 4 MiB read cache. In steady state the directory then holds
    /// a few MiB of segment files: the one being written, one prepared ahead, and those holding
    /// the entries kept after the last snapshot (raft-core keeps `snapshot_keep_entries`).
    /// Every MiB of records costs a rollover (a segment fsync, a rename and a directory fsync)
    /// and a MiB of zeros written ahead: nothing for a small application, but a log with many
    /// concurrent writers is better served by the defaults, which the benchmarks measure.
    #[must_use]
    pub fn small() -> FsOptions {
        FsOptions {
            segment_bytes: 1 << 20,
            zero_fill: true,
            cache_bytes: 4 << 20,
            node: None,
        }
    }

    /// Sets [`segment_bytes`](FsOptions::segment_bytes).
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> FsOptions {
        self.segment_bytes = bytes;
        self
    }

    /// Sets [`zero_fill`](FsOptions::zero_fill).
    #[must_use]
    pub fn zero_fill(mut self, on: bool) -> FsOptions {
        self.zero_fill = on;
        self
    }

    /// Sets [`cache_bytes`](FsOptions::cache_bytes).
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> FsOptions {
        self.cache_bytes = bytes;
        self
    }

    /// Sets [`node`](FsOptions::node).
    #[must_use]
    pub fn node(mut self, node: NodeId) -> FsOptions {
        self.node = Some(node);
        self
    }
}
