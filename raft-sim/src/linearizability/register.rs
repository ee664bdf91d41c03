//! The sequential specification of a single compare-and-set register.
//!
//! This module owns [`RegisterModel`], the model behind Jepsen's etcd register
//! histories: a cell holding an optional integer (initially nil) that supports
//! read, write and compare-and-set. It exists so recorded register histories
//! and the simulator's register workloads share one definition of "correct".

use super::Model;

/// A register request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the current value.
    Read,
    /// Overwrite the value.
    Write(i64),
    /// Set the value to the second field if it currently equals the first.
    Cas(i64, i64),
}

/// A register response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// The value read (None = nil, never written).
    Read(Option<i64>),
    /// The write took effect.
    Write,
    /// Whether the compare-and-set succeeded.
    Cas(bool),
}

/// A register holding `Option<i64>`, starting at None (nil).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegisterModel;

impl Model for RegisterModel {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(RegisterOutput::Read(value))) => {
                (value == state).then_some(*state)
            }
            (RegisterInput::Write(value), None | Some(RegisterOutput::Write)) => Some(Some(*value)),
            (RegisterInput::Cas(old, new), None) => Some(if *state == Some(*old) {
                Some(*new)
            } else {
                *state
            }),
            (RegisterInput::Cas(old, new), Some(RegisterOutput::Cas(succeeded))) => {
                match (*state == Some(*old), succeeded) {
                    (true, true) => Some(Some(*new)),
                    (false, false) => Some(*state),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{Budget, Operation, Verdict, check};

    fn op(
        input: RegisterInput,
        call: u64,
        ret: Option<u64>,
        output: Option<RegisterOutput>,
    ) -> Operation<RegisterInput, RegisterOutput> {
        Operation {
            client: call,
            input,
            call,
            ret,
            output,
        }
    }

    fn verdict(history: &[Operation<RegisterInput, RegisterOutput>]) -> Verdict {
        check(&RegisterModel, history, Budget::default())
    }

    fn read(call: u64, ret: u64, value: Option<i64>) -> Operation<RegisterInput, RegisterOutput> {
        op(
            RegisterInput::Read,
            call,
            Some(ret),
            Some(RegisterOutput::Read(value)),
        )
    }

    fn write(call: u64, ret: u64, value: i64) -> Operation<RegisterInput, RegisterOutput> {
        op(
            RegisterInput::Write(value),
            call,
            Some(ret),
            Some(RegisterOutput::Write),
        )
    }

    #[test]
    fn concurrent_write_and_read_of_new_value_is_linearizable() {
        assert_eq!(
            verdict(&[write(0, 3, 1), read(1, 2, Some(1))]),
            Verdict::Linearizable
        );
    }

    #[test]
    fn concurrent_write_and_read_of_old_value_is_linearizable() {
        assert_eq!(
            verdict(&[write(0, 3, 1), read(1, 2, None)]),
            Verdict::Linearizable
        );
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let history = [write(0, 1, 1), read(2, 3, None)];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn read_of_never_written_value_is_not_linearizable() {
        assert_eq!(
            verdict(&[write(0, 1, 1), read(2, 3, Some(2))]),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn unknown_outcome_write_may_never_take_effect() {
        let history = [
            op(RegisterInput::Write(1), 0, None, None),
            read(1, 2, None),
            read(3, 4, None),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn unknown_outcome_write_may_take_effect_late() {
        let history = [
            op(RegisterInput::Write(1), 0, None, None),
            read(1, 2, None),
            read(3, 4, Some(1)),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn unknown_outcome_write_cannot_be_undone() {
        let history = [
            op(RegisterInput::Write(1), 0, None, None),
            read(1, 2, Some(1)),
            read(3, 4, None),
        ];
        assert_eq!(verdict(&history), Verdict::NotLinearizable);
    }

    #[test]
    fn unknown_outcome_cas_that_cannot_apply_is_harmless() {
        let history = [
            op(RegisterInput::Cas(5, 6), 0, None, None),
            read(1, 2, None),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn cas_success_must_match_current_value() {
        let succeeded = |call, ret| {
            op(
                RegisterInput::Cas(1, 2),
                call,
                Some(ret),
                Some(RegisterOutput::Cas(true)),
            )
        };
        assert_eq!(
            verdict(&[write(0, 1, 1), succeeded(2, 3)]),
            Verdict::Linearizable
        );
        assert_eq!(
            verdict(&[write(0, 1, 3), succeeded(2, 3)]),
            Verdict::NotLinearizable
        );
    }
}
