//! Durable file log for raft-core: checksummed segments, group commit on a dedicated I/O thread, crash recovery.
//!
//! **Not built yet.** This crate holds its place in the workspace (DESIGN.md §1) and has no
//! public API so far; the work is tracked in the project's issue #4. Nothing here is usable,
//! and nothing here claims to be.
#![forbid(unsafe_code)]
