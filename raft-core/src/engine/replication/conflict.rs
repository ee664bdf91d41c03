//! Where a leader resumes replicating to a follower whose log disagrees with the position it
//! tried (a rejection, or a stream opened at an entry the leader lacks).

use crate::engine::core::Core;
use crate::message::ConflictHint;
use crate::types::LogIndex;

/// Where to resume after a rejection of a request whose `prev` was `rejected_prev`: one step per
/// term, never at or below `match_index` (clamped by `Progress::on_failure`) and never past the
/// rejected position.
pub(crate) fn next_after_conflict(
    core: &Core,
    hint: ConflictHint,
    rejected_prev: LogIndex,
) -> LogIndex {
    let next = match hint.term {
        None => hint.index,
        Some(term) => match core.log.last_index_of_term(term) {
            Some(last_of_term) => last_of_term.next(),
            None => hint.index,
        },
    };
    next.min(rejected_prev).max(LogIndex(1))
}
