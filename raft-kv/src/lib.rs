//! The example replicated key-value server built from the workspace crates.
//!
//! **Not built yet.** This crate holds its place in the workspace (DESIGN.md §1) and has no
//! public API so far; the work is tracked in the project's issue #8. Nothing here is usable,
//! and nothing here claims to be.
#![forbid(unsafe_code)]
