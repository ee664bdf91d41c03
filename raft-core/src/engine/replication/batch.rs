//! The per-follower batch sizer: TCP congestion control in the shape of quinn's controller.
//!
//! The threshold starts at the configured cap ("infinite"). On each success the batch doubles
//! while below the threshold (never jumping past it) and grows by one at or above it; on a
//! failure (transport error, timeout or log-mismatch rejection) `threshold = max(1, batch / 2)`
//! and `batch = 1`. Both stay within `1..=cap`.

/// Adaptive entries-per-request for one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchSizer {
    batch: u64,
    threshold: u64,
    cap: u64,
}

impl BatchSizer {
    pub(crate) fn new(initial: u64, cap: u64) -> BatchSizer {
        let cap = cap.max(1);
        BatchSizer {
            batch: initial.clamp(1, cap),
            threshold: cap,
            cap,
        }
    }

    /// Entries to put in the next request.
    pub(crate) fn batch(&self) -> u64 {
        self.batch
    }

    /// The slow-start threshold.
    pub(crate) fn threshold(&self) -> u64 {
        self.threshold
    }

    pub(crate) fn on_success(&mut self) {
        self.batch = if self.batch < self.threshold {
            (self.batch.saturating_mul(2)).min(self.threshold)
        } else {
            self.batch + 1
        }
        .min(self.cap);
    }

    pub(crate) fn on_failure(&mut self) {
        self.threshold = (self.batch / 2).max(1);
        self.batch = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_doubles_below_threshold_then_adds_one() {
        let mut sizer = BatchSizer::new(1, 64);
        let mut seen = Vec::new();
        for _ in 0..8 {
            sizer.on_success();
            seen.push(sizer.batch());
        }
        assert_eq!(seen, [2, 4, 8, 16, 32, 64, 64, 64]);
        sizer.on_failure();
        assert_eq!((sizer.batch(), sizer.threshold()), (1, 32));
        let mut seen = Vec::new();
        for _ in 0..8 {
            sizer.on_success();
            seen.push(sizer.batch());
        }
        assert_eq!(seen, [2, 4, 8, 16, 32, 33, 34, 35]);
    }

    #[test]
    fn failure_halves_threshold_and_resets_batch() {
        let mut sizer = BatchSizer::new(40, 1024);
        sizer.on_failure();
        assert_eq!((sizer.batch(), sizer.threshold()), (1, 20));
        sizer.on_failure();
        assert_eq!((sizer.batch(), sizer.threshold()), (1, 1));
        sizer.on_success();
        assert_eq!(sizer.batch(), 2, "at the threshold the batch grows by one");
    }

    #[test]
    fn batch_never_exceeds_cap() {
        let mut sizer = BatchSizer::new(1000, 10);
        assert_eq!(sizer.batch(), 10);
        for _ in 0..5 {
            sizer.on_success();
        }
        assert_eq!(sizer.batch(), 10);
    }
}
