//! Majority math. Joint configurations will extend this file, so every quorum question goes here.

use crate::types::LogIndex;

/// The largest index that at least `quorum` of `indexes` have reached. `indexes` is reordered.
///
/// With fewer values than `quorum`, nothing is reached by a quorum and the answer is zero.
pub(crate) fn quorum_index(indexes: &mut [LogIndex], quorum: usize) -> LogIndex {
    if quorum == 0 || indexes.len() < quorum {
        return LogIndex::ZERO;
    }
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes.get(quorum - 1).copied().unwrap_or(LogIndex::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(values: &[u64]) -> Vec<LogIndex> {
        values.iter().map(|&v| LogIndex(v)).collect()
    }

    #[test]
    fn quorum_index_is_the_majority_th_largest() {
        assert_eq!(quorum_index(&mut idx(&[5, 3, 9]), 2), LogIndex(5));
        assert_eq!(quorum_index(&mut idx(&[1, 2, 3, 4, 5]), 3), LogIndex(3));
        assert_eq!(quorum_index(&mut idx(&[7]), 1), LogIndex(7));
    }

    #[test]
    fn too_few_values_reach_nothing() {
        assert_eq!(quorum_index(&mut idx(&[9]), 2), LogIndex::ZERO);
    }
}
