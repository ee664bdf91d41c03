//! The sequential specification of a string key-value store, checked per key.
//!
//! This module owns [`KvModel`] (one key holding a string, absent = "") and
//! [`check_kv`], which splits a multi-key history into one history per key and
//! checks each independently. Linearizability is compositional (a history is
//! linearizable iff each object's sub-history is), so partitioning is sound and
//! keeps the search small.

use std::collections::BTreeMap;

use super::{Budget, Model, Operation, Verdict, check_partitions};

/// A key-value request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read the key's value.
    Get {
        /// The key.
        key: String,
    },
    /// Replace the key's value.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Concatenate onto the key's value.
    Append {
        /// The key.
        key: String,
        /// The suffix to append.
        value: String,
    },
}

impl KvInput {
    /// The key this request touches.
    pub fn key(&self) -> &str {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Append { key, .. } => key,
        }
    }
}

/// A key-value response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value a get returned ("" for an absent key).
    Value(String),
    /// A put or append took effect.
    Done,
}

/// The model of ONE key: its state is the key's string value, initially "".
/// Feed it only operations on a single key (see [`check_kv`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvModel;

impl Model for KvModel {
    type State = String;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> String {
        String::new()
    }

    fn step(&self, state: &String, input: &KvInput, output: Option<&KvOutput>) -> Option<String> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Value(value))) => {
                (value == state).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, None | Some(KvOutput::Done)) => Some(value.clone()),
            (KvInput::Append { value, .. }, None | Some(KvOutput::Done)) => {
                Some(format!("{state}{value}"))
            }
            _ => None,
        }
    }
}

/// Checks a multi-key history by checking each key's operations on their own
/// (see [`check_partitions`]): not linearizable if any key is not; otherwise
/// Unknown if any key's search ran out of budget (each key gets the whole
/// budget); otherwise linearizable.
pub fn check_kv(history: &[Operation<KvInput, KvOutput>], budget: Budget) -> Verdict {
    let mut per_key: BTreeMap<&str, Vec<Operation<KvInput, KvOutput>>> = BTreeMap::new();
    for op in history {
        per_key.entry(op.input.key()).or_default().push(op.clone());
    }
    let partitions: Vec<_> = per_key.into_values().collect();
    check_partitions(&KvModel, &partitions, budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(input: KvInput, call: u64, ret: u64, output: KvOutput) -> Operation<KvInput, KvOutput> {
        Operation {
            client: call,
            input,
            call,
            ret: Some(ret),
            output: Some(output),
        }
    }

    fn get(key: &str, call: u64, ret: u64, value: &str) -> Operation<KvInput, KvOutput> {
        let input = KvInput::Get { key: key.into() };
        op(input, call, ret, KvOutput::Value(value.into()))
    }

    fn append(key: &str, call: u64, ret: u64, value: &str) -> Operation<KvInput, KvOutput> {
        let input = KvInput::Append {
            key: key.into(),
            value: value.into(),
        };
        op(input, call, ret, KvOutput::Done)
    }

    fn put(key: &str, call: u64, ret: u64, value: &str) -> Operation<KvInput, KvOutput> {
        let input = KvInput::Put {
            key: key.into(),
            value: value.into(),
        };
        op(input, call, ret, KvOutput::Done)
    }

    #[test]
    fn absent_key_reads_as_empty_string() {
        let history = [get("a", 0, 1, "")];
        assert_eq!(check_kv(&history, Budget::default()), Verdict::Linearizable);
    }

    #[test]
    fn appends_concatenate_in_linearization_order() {
        let history = [
            append("a", 0, 3, "x"),
            append("a", 1, 2, "y"),
            get("a", 4, 5, "yx"),
        ];
        assert_eq!(check_kv(&history, Budget::default()), Verdict::Linearizable);
    }

    #[test]
    fn sequential_appends_cannot_be_reordered() {
        let history = [
            append("a", 0, 1, "x"),
            append("a", 2, 3, "y"),
            get("a", 4, 5, "yx"),
        ];
        assert_eq!(
            check_kv(&history, Budget::default()),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn put_replaces_previous_value() {
        let history = [
            append("a", 0, 1, "x"),
            put("a", 2, 3, "z"),
            get("a", 4, 5, "z"),
        ];
        assert_eq!(check_kv(&history, Budget::default()), Verdict::Linearizable);
    }

    #[test]
    fn keys_are_independent() {
        let history = [append("a", 0, 1, "x"), get("b", 2, 3, "")];
        assert_eq!(check_kv(&history, Budget::default()), Verdict::Linearizable);
    }

    #[test]
    fn one_bad_key_makes_the_history_not_linearizable() {
        let history = [
            append("a", 0, 1, "x"),
            get("b", 2, 3, ""),
            get("a", 4, 5, ""),
        ];
        assert_eq!(
            check_kv(&history, Budget::default()),
            Verdict::NotLinearizable
        );
    }
}
