//! HTTP/2 peer transport for raft-core on hyper with MessagePack bodies, plus a Prometheus /metrics route.
//!
//! **Not built yet.** This crate holds its place in the workspace (DESIGN.md §1) and has no
//! public API so far; the work is tracked in the project's issue #5. Nothing here is usable,
//! and nothing here claims to be.
#![forbid(unsafe_code)]
