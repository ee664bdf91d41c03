//! Durable file log for raft-core: checksummed segments, group commit on a dedicated I/O
//! thread, crash recovery.
//!
//! **In progress (issue #4).** What exists so far is the on-disk record format and the scanner
//! that recovery is built on ([`record`]): it decodes a segment's bytes into the valid prefix of
//! records, tells a torn tail (a crash mid-write: truncated away) from corruption before the
//! tail (refused, with the offset), and never panics on any input. The `LogStore`
//! implementation, the I/O thread with group commit and the hard-state file come next; until
//! then this crate offers no log store.
#![forbid(unsafe_code)]

pub mod error;
pub mod record;

pub use error::Error;
