//! The runtime's only clock: milliseconds since the node started, fed to the engine as ticks.
//! It is tokio's clock, so tests with paused time control it.

use tokio::time::Instant;

/// Milliseconds since an origin.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
