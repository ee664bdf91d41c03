//! How a log is laid out and cached: [`FsOptions`], with the defaults (sized for throughput)
//! and [`FsOptions::small`] (sized for a small application's disk).

use raft_core::NodeId;

/// The smallest segment [`FsOptions::for_snapshot_threshold`] chooses (64 KiB).
const MIN_BOUNDED_SEGMENT_BYTES: u64 = 64 << 10;
/// The largest segment [`FsOptions::for_snapshot_threshold`] chooses (64 MiB, the default).
const MAX_BOUNDED_SEGMENT_BYTES: u64 = 64 << 20;
/// Segments chosen from a threshold are a whole number of 4 KiB pages.
const SEGMENT_ALIGN: u64 = 4 << 10;

/// Options of [`FsLogStore`](crate::FsLogStore).
///
/// The defaults are sized for throughput: 64 MiB segments, zero-filled one ahead, so a busy log
/// rolls over rarely and every `fdatasync` flushes data only. A log takes at least one segment
/// on disk, plus the one prepared ahead once the current one is half full, so a log that
/// snapshots bound should start from [`FsOptions::for_snapshot_threshold`] (segments sized
/// from the threshold), and a small application (a few MiB of log between snapshots, or less)
/// may use [`FsOptions::small`].
///
/// Compaction removes whole segments. How much disk a log holds after a snapshot therefore
/// depends on the segment size: about the entries kept after the snapshot, rounded up to
/// whole segments, plus the segment being written and one prepared ahead (a full segment is
/// cut to its records when the next one starts, so only those two hold preallocated zeros,
/// and no segment is preallocated larger than `segment_bytes`). A log whose live
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

    /// Sizes for a log that snapshots bound: raft-core's `snapshot_log_bytes` (raft-kv's
    /// `--snapshot-threshold`) of `threshold` bytes. Segments are an eighth of the threshold,
    /// at least 64 KiB and at most 64 MiB (the default), rounded down to 4 KiB; everything
    /// else is as in [`default`](FsOptions::default). A threshold of 0 (no size-triggered
    /// snapshots) gives the defaults.
    ///
    /// Why an eighth: compaction removes whole segments, so after a snapshot the files hold
    /// the entries kept below it (raft-core's `snapshot_keep_entries`) rounded up to a whole
    /// segment, the segment being written (its unwritten part preallocated) and the one
    /// prepared ahead. The size policy snapshots again once the log reaches the threshold and
    /// has grown by half of it since, so the files stay within about the larger of the
    /// threshold and the kept entries plus half the threshold, plus three segments (plus what
    /// is written while a snapshot is being made): 1.375 times the threshold when the kept
    /// entries take at most half of it, about twice the threshold when they take as much as
    /// it (1,024 entries of 1 KiB under a 1 MiB threshold). Small segments cost a rollover (a
    /// segment sync, a rename and a directory sync) per segment written; an eighth of the
    /// threshold keeps that to 4 to 8 rollovers per snapshot, which writes the whole state
    /// machine anyway.
    ///
    /// ```
    /// use raft_storage_fs::FsOptions;
    ///
    /// assert_eq!(FsOptions::for_snapshot_threshold(1 << 20).segment_bytes, 128 << 10);
    /// assert_eq!(FsOptions::for_snapshot_threshold(4096).segment_bytes, 64 << 10);
    /// assert_eq!(FsOptions::for_snapshot_threshold(1 << 30).segment_bytes, 64 << 20);
    /// assert_eq!(FsOptions::for_snapshot_threshold(0), FsOptions::default());
    /// ```
    #[must_use]
    pub fn for_snapshot_threshold(threshold: u64) -> FsOptions {
        let defaults = FsOptions::default();
        if threshold == 0 {
            return defaults;
        }
        let segment_bytes = (threshold / 8)
            .clamp(MIN_BOUNDED_SEGMENT_BYTES, MAX_BOUNDED_SEGMENT_BYTES)
            & !(SEGMENT_ALIGN - 1);
        defaults.segment_bytes(segment_bytes)
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
