//! The simulator's seeded PRNG: every fault and delay comes from it, so a seed replays a run
//! exactly. It is the engine's SplitMix64 generator, seeded apart from the engines'.

use raft_core::engine::Rng;

/// Deterministic random numbers for one simulation.
#[derive(Clone, Debug)]
pub(crate) struct SimRng {
    rng: Rng,
}

impl SimRng {
    pub(crate) fn new(seed: u64) -> SimRng {
        SimRng {
            rng: Rng::new(seed ^ 0x5DEE_CE66_D1CE_4E5B),
        }
    }

    /// A value in `[low, high)`; `low` for an empty range.
    pub(crate) fn range(&mut self, low: u64, high: u64) -> u64 {
        self.rng.range(low, high)
    }

    /// True with probability `percent / 100`.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    /// An index below `len` (0 when `len` is 0).
    pub(crate) fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.range(0, len as u64)).unwrap_or(0)
    }
}
