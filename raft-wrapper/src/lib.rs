//! Wait-for-commit and exactly-once client sessions over a raft-core node, with size-triggered snapshots.
//!
//! **Not built yet.** This crate holds its place in the workspace (DESIGN.md §1) and has no
//! public API so far; the work is tracked in the project's issue #7. Nothing here is usable,
//! and nothing here claims to be.
#![forbid(unsafe_code)]
