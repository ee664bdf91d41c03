//! The claim a running node holds on its log store ([`LogStore::claim`]): taken before the node
//! reads the store, given back when the node has stopped (or failed to start), so that a second
//! node started on a clone of the same store is refused instead of writing the same log.

use std::sync::Arc;

use crate::error::Error;
use crate::storage::LogStore;

/// Holds the store's claim; releases it when dropped.
pub(crate) struct ClaimGuard {
    log: Arc<dyn LogStore>,
}

impl ClaimGuard {
    /// Claims `log` for a starting node.
    ///
    /// # Errors
    /// [`Error::StoreInUse`] when another running node holds it.
    pub(crate) fn acquire(log: &Arc<dyn LogStore>) -> Result<ClaimGuard, Error> {
        log.claim().acquire()?;
        Ok(ClaimGuard { log: log.clone() })
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.log.claim().release();
    }
}
