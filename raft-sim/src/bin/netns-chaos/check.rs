//! The checks: linearizability per key, exactly-once counters.

use std::collections::{BTreeMap, BTreeSet};

use raft_sim::linearizability::kv::{KvInput, KvModel, KvOutput};
use raft_sim::linearizability::{Budget, Model, Operation, Verdict, check};

use crate::basics::at;
use crate::history::{Applied, OpKind, Outcome, Record, is_counter, parse_count};

/// A counter: incr answers the new value; get reads it (absent = 0).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CounterModel;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CounterInput {
    Incr,
    Get,
}

impl Model for CounterModel {
    type State = i64;
    type Input = CounterInput;
    type Output = i64;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, input: &CounterInput, output: Option<&i64>) -> Option<i64> {
        match input {
            CounterInput::Incr => {
                let next = state + 1;
                output.is_none_or(|&v| v == next).then_some(next)
            }
            CounterInput::Get => output.is_none_or(|v| v == state).then_some(*state),
        }
    }
}

/// A key's operations for the checker, each with the index of its record.
pub(crate) type KeyHistory<I, O> = (Vec<Operation<I, O>>, Vec<usize>);

pub(crate) fn register_history(records: &[Record], key: &str) -> KeyHistory<KvInput, KvOutput> {
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    for (index, record) in records.iter().enumerate().filter(|(_, r)| r.key == key) {
        let op = match &record.kind {
            OpKind::Get => match &record.outcome {
                Outcome::Ok(value) => Operation {
                    client: record.process,
                    input: KvInput::Get { key: key.into() },
                    call: record.call,
                    ret: Some(record.ret),
                    output: Some(KvOutput::Value(value.clone().unwrap_or_default())),
                },
                _ => continue,
            },
            OpKind::Put(_) | OpKind::Delete => {
                let value = match &record.kind {
                    OpKind::Put(value) => value.clone(),
                    _ => String::new(), // an absent key reads as ""
                };
                let input = KvInput::Put {
                    key: key.into(),
                    value,
                };
                match record.effect() {
                    Some((call, ret, _)) => Operation {
                        client: record.process,
                        input,
                        call,
                        ret: Some(ret),
                        output: Some(KvOutput::Done),
                    },
                    None if record.outcome == Outcome::Fail => continue,
                    None => Operation {
                        client: record.process,
                        input,
                        call: record.call,
                        ret: None,
                        output: None,
                    },
                }
            }
            OpKind::Incr => continue,
        };
        ops.push(op);
        origin.push(index);
    }
    (ops, origin)
}

pub(crate) fn counter_history(records: &[Record], key: &str) -> KeyHistory<CounterInput, i64> {
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    for (index, record) in records.iter().enumerate().filter(|(_, r)| r.key == key) {
        let op = match &record.kind {
            OpKind::Get => match &record.outcome {
                Outcome::Ok(value) => Operation {
                    client: record.process,
                    input: CounterInput::Get,
                    call: record.call,
                    ret: Some(record.ret),
                    // Not a number: no counter value fits it, and the check fails on it.
                    output: Some(parse_count(value.as_ref()).unwrap_or(-1)),
                },
                _ => continue,
            },
            OpKind::Incr => match record.effect() {
                Some((call, ret, value)) => Operation {
                    client: record.process,
                    input: CounterInput::Incr,
                    call,
                    ret: Some(ret),
                    output: Some(parse_count(value.as_ref()).unwrap_or(-1)),
                },
                None if record.outcome == Outcome::Fail => continue,
                None => Operation {
                    client: record.process,
                    input: CounterInput::Incr,
                    call: record.call,
                    ret: None,
                    output: None,
                },
            },
            _ => continue,
        };
        ops.push(op);
        origin.push(index);
    }
    (ops, origin)
}

/// The history up to time `t`: operations called by then; those not returned by then become
/// unknown (reads among them are dropped). Linearizable whenever the whole history is, so the
/// earliest `t` at which it is not bounds where the fault shows.
pub(crate) fn truncate<I: Clone, O: Clone>(
    ops: &[Operation<I, O>],
    t: u64,
    is_read: impl Fn(&I) -> bool,
) -> Vec<Operation<I, O>> {
    ops.iter()
        .filter(|op| op.call <= t)
        .filter_map(|op| match op.ret {
            Some(ret) if ret <= t => Some(op.clone()),
            _ if is_read(&op.input) => None,
            _ => Some(Operation {
                ret: None,
                output: None,
                ..op.clone()
            }),
        })
        .collect()
}

/// Checks one key; for a history that is not linearizable, also the earliest time at which
/// its prefix is not.
pub(crate) fn check_key<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: Budget,
    is_read: impl Fn(&M::Input) -> bool + Copy,
) -> (Verdict, Option<u64>)
where
    M::Input: Clone,
    M::Output: Clone,
{
    let verdict = check(model, ops, budget);
    if verdict != Verdict::NotLinearizable {
        return (verdict, None);
    }
    let mut times: Vec<u64> = ops.iter().filter_map(|op| op.ret).collect();
    times.sort_unstable();
    times.dedup();
    let (mut low, mut high) = (0, times.len());
    while low < high {
        let mid = (low + high) / 2;
        let prefix = truncate(ops, times[mid], is_read);
        if check(model, &prefix, budget) == Verdict::NotLinearizable {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    (verdict, times.get(low).copied())
}

#[derive(Debug, Default)]
pub(crate) struct CheckReport {
    pub(crate) unknown_keys: Vec<String>,
    pub(crate) checked_ops: usize,
}

/// Prints the operations of a key around the time its history stops being linearizable.
pub(crate) fn print_window(
    records: &[Record],
    origin: &[usize],
    key: &str,
    first_bad: Option<u64>,
) {
    let Some(t) = first_bad else {
        println!("  (the whole history of {key} is not linearizable; no earliest prefix found)");
        return;
    };
    println!(
        "  the history of {key} stops being linearizable at {} (ops of {key} active in the 3 s before):",
        at(t)
    );
    let window = t.saturating_sub(3_000_000_000);
    let mut shown: Vec<&Record> = origin
        .iter()
        .map(|&i| &records[i])
        .filter(|r| r.call <= t && r.effect().map_or(r.ret, |(_, ret, _)| ret) >= window)
        .collect();
    shown.sort_by_key(|r| r.call);
    let skip = shown.len().saturating_sub(80);
    if skip > 0 {
        println!("  ... {skip} earlier ops left out");
    }
    for record in &shown[skip..] {
        println!("    {}", record.describe());
    }
}

pub(crate) fn check_histories(
    records: &[Record],
    keys: &[String],
    budget: Budget,
    violations: &mut Vec<String>,
) -> CheckReport {
    let mut report = CheckReport::default();
    for key in keys {
        let (verdict, first_bad, origin, count) = if is_counter(key) {
            let (ops, origin) = counter_history(records, key);
            let (verdict, first_bad) =
                check_key(&CounterModel, &ops, budget, |i| *i == CounterInput::Get);
            (verdict, first_bad, origin, ops.len())
        } else {
            let (ops, origin) = register_history(records, key);
            let (verdict, first_bad) =
                check_key(&KvModel, &ops, budget, |i| matches!(i, KvInput::Get { .. }));
            (verdict, first_bad, origin, ops.len())
        };
        report.checked_ops += count;
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Unknown => report.unknown_keys.push(key.clone()),
            Verdict::NotLinearizable => {
                violations.push(format!(
                    "the history of {key} ({count} operations) is not linearizable"
                ));
                println!("VIOLATION: the history of {key} is not linearizable");
                print_window(records, &origin, key, first_bad);
            }
        }
    }
    report
}

#[derive(Debug, Default)]
pub(crate) struct IncrReport {
    pub(crate) acked: u64,
    pub(crate) applied_before: u64,
    pub(crate) applied_by_resubmission: u64,
    pub(crate) applied_either: u64,
    pub(crate) unresolved: u64,
    pub(crate) failed_then_resubmitted: u64,
}

/// Every counter holds exactly the values its incrs answered: 1..=n, each once.
pub(crate) fn check_counters(
    records: &[Record],
    finals: &BTreeMap<String, String>,
    violations: &mut Vec<String>,
) -> IncrReport {
    let mut report = IncrReport::default();
    for (key, final_value) in finals.iter().filter(|(k, _)| is_counter(k)) {
        let mut values: Vec<i64> = Vec::new();
        let mut unresolved = 0u64;
        for record in records
            .iter()
            .filter(|r| r.key == *key && r.kind == OpKind::Incr)
        {
            match (&record.outcome, &record.resolution) {
                (Outcome::Ok(_), _) => report.acked += 1,
                (outcome, Some(resolution)) => {
                    if *outcome == Outcome::Fail {
                        report.failed_then_resubmitted += 1;
                    }
                    match resolution.applied {
                        Applied::Before => report.applied_before += 1,
                        Applied::ByResubmission => report.applied_by_resubmission += 1,
                        Applied::Either => report.applied_either += 1,
                    }
                }
                (_, None) => {
                    unresolved += 1;
                    continue;
                }
            }
            match record
                .effect()
                .and_then(|(_, _, v)| parse_count(v.as_ref()))
            {
                Some(v) => values.push(v),
                None => violations.push(format!("incr without a number: {}", record.describe())),
            }
        }
        report.unresolved += unresolved;
        let Some(final_count) = parse_count(Some(final_value)) else {
            violations.push(format!("counter {key} holds {final_value:?}, not a number"));
            continue;
        };
        values.sort_unstable();
        let mut seen = BTreeSet::new();
        let duplicates: Vec<i64> = values
            .iter()
            .copied()
            .filter(|v| !seen.insert(*v))
            .collect();
        if !duplicates.is_empty() {
            violations.push(format!(
                "counter {key}: the values {duplicates:?} were answered to more than one incr"
            ));
        }
        let known = values.len() as i64;
        let unresolved = unresolved as i64;
        if final_count < known || final_count > known + unresolved {
            violations.push(format!(
                "counter {key} = {final_count}, but {known} incrs are known applied and {unresolved} unknown"
            ));
        }
        if let Some(&max) = values.last()
            && max > final_count
        {
            violations.push(format!(
                "counter {key} = {final_count}, but an incr answered {max}"
            ));
        }
        if unresolved == 0 && values.iter().copied().ne(1..=final_count) {
            violations.push(format!(
                "counter {key} = {final_count}, but its incrs answered {known} values that are not 1..={final_count}"
            ));
        }
    }
    report
}
