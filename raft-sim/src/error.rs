//! The crate's single error type.
//!
//! Everything that can fail in this crate reports through [`Error`], so callers
//! match on one enum. Today the only fallible operation is parsing a recorded
//! history; each variant names where the input went wrong.

/// An error raised by this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A recorded history could not be parsed.
    #[error("history line {line}: {message}")]
    HistoryParse {
        /// The 1-based line number of the offending line.
        line: usize,
        /// What was wrong with it.
        message: String,
    },
}
