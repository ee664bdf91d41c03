//! A linearizability checker for recorded histories of concurrent operations.
//!
//! This module owns the generic search: given a sequential specification (a
//! [`Model`]) and a history of [`Operation`]s with call and return times, it
//! decides whether some total order of the operations, consistent with real
//! time, explains every observed output. The search is the Wing–Gong–Lowe
//! algorithm as refined by Lowe ("Testing for linearisability") and used by
//! porcupine: an event list of calls and returns, a doubly linked list from
//! which linearized operations are lifted, an explicit backtracking stack, and
//! a cache of (linearized set, model state) pairs already explored. Concrete
//! models live in [`register`] and [`kv`]; parsers for recorded histories live
//! in [`jepsen`].

pub mod jepsen;
pub mod kv;
pub mod register;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A sequential specification.
pub trait Model {
    /// The abstract state of the object.
    type State: Clone + Eq + Hash + std::fmt::Debug;
    /// The input (request) of an operation.
    type Input: std::fmt::Debug;
    /// The output (response) of an operation.
    type Output: std::fmt::Debug;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after applying `input` with observed `output` (None = outcome
    /// unknown, matches any output), or None if that output is impossible from
    /// `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a history. Times are any monotone clock (event positions
/// are fine); intervals are closed, so an operation returning at `t` overlaps
/// one called at `t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (process) that issued the operation; informational only.
    pub client: u64,
    /// The request.
    pub input: I,
    /// When the operation was invoked.
    pub call: u64,
    /// When it returned; None = never returned (unknown outcome): it may take
    /// effect at any point after `call`, or never. A value below `call` is
    /// treated as `call`.
    pub ret: Option<u64>,
    /// The observed response; None = unknown, matches any response.
    pub output: Option<O>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Some real-time-respecting order explains every output.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The search budget ran out before a verdict was reached.
    Unknown,
}

/// Limits on how much work one check may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The maximum number of search steps (one step visits one event).
    pub max_steps: u64,
}

impl Default for Budget {
    /// Ten million steps: a few seconds and well under a gigabyte of cache
    /// even unoptimized, far more than well-formed histories of a few thousand
    /// operations usually need.
    fn default() -> Self {
        Self {
            max_steps: 10_000_000,
        }
    }
}

/// Decides whether `history` is linearizable with respect to `model`.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> Verdict {
    check_partitions(model, std::slice::from_ref(&history), budget)
}

/// Checks independent sub-histories (e.g. one per key), each against `model`.
///
/// Linearizability is compositional, so the whole is linearizable iff every
/// part is. The parts' searches are interleaved in slices of steps, so one
/// quickly refuted part ends the check even when another part's search is
/// long. Not linearizable if any part is not; otherwise Unknown if any part
/// ran out of budget (each part gets the whole `budget`); otherwise
/// linearizable.
pub fn check_partitions<M: Model, H: AsRef<[Operation<M::Input, M::Output>]>>(
    model: &M,
    partitions: &[H],
    budget: Budget,
) -> Verdict {
    let mut searches: Vec<Search<'_, M>> = partitions
        .iter()
        .map(|part| Search::new(model, part.as_ref()))
        .collect();
    let mut verdict = Verdict::Linearizable;
    let mut until: u64 = 0;
    while !searches.is_empty() {
        until = budget.max_steps.min(until.saturating_add(SLICE_STEPS));
        let mut refuted = false;
        searches.retain_mut(|search| match search.advance(until) {
            Some(Verdict::NotLinearizable) => {
                refuted = true;
                false
            }
            Some(_) => false,
            None if until >= budget.max_steps => {
                verdict = Verdict::Unknown;
                false
            }
            None => true,
        });
        if refuted {
            return Verdict::NotLinearizable;
        }
    }
    verdict
}

/// How many steps each part's search takes before the next part's turn.
const SLICE_STEPS: u64 = 10_000;

/// Marks "no node" in the event list's links.
const NONE: usize = usize::MAX;
/// The sentinel node in front of the event list.
const HEAD: usize = 0;

/// A doubly linked list of call and return events, from which a call and its
/// return are lifted together when the call is linearized. Node 0 is the head
/// sentinel; nodes 1.. are events in time order.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation (history index) of each node.
    op: Vec<usize>,
    /// For a call node, its return node; NONE for return nodes.
    ret_node: Vec<usize>,
}

/// A sort key for one event: finite times first, then by time, calls before
/// returns at equal times, then by operation index for determinism.
type EventKey = (bool, u64, bool, usize);

impl EventList {
    fn new<I, O>(history: &[Operation<I, O>]) -> Self {
        let mut events: Vec<EventKey> = Vec::with_capacity(2 * history.len());
        for (index, op) in history.iter().enumerate() {
            events.push((false, op.call, false, index));
            match op.ret {
                Some(ret) => events.push((false, ret.max(op.call), true, index)),
                None => events.push((true, 0, true, index)),
            }
        }
        events.sort_unstable();
        let nodes = events.len() + 1;
        let mut list = Self {
            next: (1..=nodes).collect(),
            prev: (0..nodes).map(|node| node.wrapping_sub(1)).collect(),
            op: vec![NONE; nodes],
            ret_node: vec![NONE; nodes],
        };
        list.next[nodes - 1] = NONE;
        list.prev[HEAD] = NONE;
        let mut call_node = vec![NONE; history.len()];
        for (position, &(_, _, is_return, index)) in events.iter().enumerate() {
            let node = position + 1;
            list.op[node] = index;
            if is_return {
                list.ret_node[call_node[index]] = node;
            } else {
                call_node[index] = node;
            }
        }
        list
    }

    fn is_call(&self, node: usize) -> bool {
        self.ret_node[node] != NONE
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NONE {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NONE {
            self.prev[next] = node;
        }
    }

    /// Removes a call and its return from the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.ret_node[call]);
    }

    /// Undoes [`EventList::lift`] (in reverse order, as dancing links require).
    fn unlift(&mut self, call: usize) {
        self.relink(self.ret_node[call]);
        self.relink(call);
    }
}

/// A fixed-size set of operation indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }

    fn set(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    fn clear(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

/// The (linearized set, state) pairs already explored. States are interned,
/// so each distinct state is stored once however many sets reach it.
struct Cache<S> {
    ids: HashMap<S, usize, FastHash>,
    seen: HashSet<(Box<[u64]>, usize), FastHash>,
}

impl<S: Eq + Hash + Clone> Cache<S> {
    fn new() -> Self {
        Self {
            ids: HashMap::default(),
            seen: HashSet::default(),
        }
    }

    /// Records the pair; false if it was already present.
    fn insert(&mut self, linearized: &Bitset, state: &S) -> bool {
        let id = match self.ids.get(state) {
            Some(&id) => id,
            None => {
                let id = self.ids.len();
                self.ids.insert(state.clone(), id);
                id
            }
        };
        self.seen.insert((linearized.0.as_slice().into(), id))
    }
}

/// A fast, non-cryptographic hasher (the Fx multiply-rotate scheme); the
/// cache is the search's hot spot and its keys are not attacker-controlled.
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

/// Builds [`FxHasher`]s for the cache's tables.
type FastHash = BuildHasherDefault<FxHasher>;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut rest = [0; 8];
        rest[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(rest));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One resumable search over one history.
struct Search<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    list: EventList,
    /// The event to visit next.
    entry: usize,
    steps: u64,
    state: M::State,
    linearized: Bitset,
    cache: Cache<M::State>,
    /// Linearized calls with the model state before each.
    stack: Vec<(usize, M::State)>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, history: &'a [Operation<M::Input, M::Output>]) -> Self {
        let list = EventList::new(history);
        Self {
            model,
            history,
            entry: list.next[HEAD],
            list,
            steps: 0,
            state: model.init(),
            linearized: Bitset::new(history.len()),
            cache: Cache::new(),
            stack: Vec::new(),
        }
    }

    /// Searches until a verdict (Some) or until `until` steps in total (None).
    fn advance(&mut self, until: u64) -> Option<Verdict> {
        while self.list.next[HEAD] != NONE {
            if self.steps >= until {
                return None;
            }
            self.steps += 1;
            if self.entry == NONE {
                // Unreachable: every call is followed by its return.
                return Some(Verdict::NotLinearizable);
            }
            self.entry = if self.list.is_call(self.entry) {
                self.try_linearize(self.entry)
            } else {
                match self.backtrack() {
                    Some(next) => next,
                    None => return Some(Verdict::NotLinearizable),
                }
            };
        }
        Some(Verdict::Linearizable)
    }

    /// Tries to linearize the call at `entry` now; returns the next entry to
    /// visit.
    fn try_linearize(&mut self, entry: usize) -> usize {
        let index = self.list.op[entry];
        let op = &self.history[index];
        let next_state = self.model.step(&self.state, &op.input, op.output.as_ref());
        let Some(next_state) = next_state else {
            return self.list.next[entry];
        };
        self.linearized.set(index);
        if self.cache.insert(&self.linearized, &next_state) {
            let previous = std::mem::replace(&mut self.state, next_state);
            self.stack.push((entry, previous));
            self.list.lift(entry);
            self.list.next[HEAD]
        } else {
            self.linearized.clear(index);
            self.list.next[entry]
        }
    }

    /// Undoes the most recent linearization; returns the entry after it, or
    /// None when there is nothing left to undo.
    fn backtrack(&mut self) -> Option<usize> {
        let (call, previous) = self.stack.pop()?;
        self.state = previous;
        self.linearized.clear(self.list.op[call]);
        self.list.unlift(call);
        Some(self.list.next[call])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter whose only operation adds one and returns the new value.
    struct Counter;

    impl Model for Counter {
        type State = u64;
        type Input = ();
        type Output = u64;
        fn init(&self) -> u64 {
            0
        }
        fn step(&self, state: &u64, _: &(), output: Option<&u64>) -> Option<u64> {
            let next = state + 1;
            output.is_none_or(|&out| out == next).then_some(next)
        }
    }

    fn inc(call: u64, ret: Option<u64>, output: Option<u64>) -> Operation<(), u64> {
        Operation {
            client: 0,
            input: (),
            call,
            ret,
            output,
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(
            check(&Counter, &[], Budget::default()),
            Verdict::Linearizable
        );
    }

    #[test]
    fn overlapping_operations_may_be_reordered() {
        let history = [inc(0, Some(3), Some(2)), inc(1, Some(2), Some(1))];
        assert_eq!(
            check(&Counter, &history, Budget::default()),
            Verdict::Linearizable
        );
    }

    #[test]
    fn sequential_operations_may_not_be_reordered() {
        let history = [inc(0, Some(1), Some(2)), inc(2, Some(3), Some(1))];
        assert_eq!(
            check(&Counter, &history, Budget::default()),
            Verdict::NotLinearizable
        );
    }

    #[test]
    fn operations_touching_at_one_instant_overlap() {
        let history = [inc(0, Some(1), Some(2)), inc(1, Some(2), Some(1))];
        assert_eq!(
            check(&Counter, &history, Budget::default()),
            Verdict::Linearizable
        );
    }

    #[test]
    fn exhausted_budget_gives_unknown() {
        let history: Vec<_> = (0..20).map(|i| inc(0, Some(1), Some(20 - i))).collect();
        let budget = Budget { max_steps: 5 };
        assert_eq!(check(&Counter, &history, budget), Verdict::Unknown);
        assert_eq!(
            check(&Counter, &history, Budget::default()),
            Verdict::Linearizable
        );
    }

    #[test]
    fn refuted_part_ends_the_check_before_a_long_part_finishes() {
        let bad = vec![inc(0, Some(1), Some(2)), inc(2, Some(3), Some(1))];
        let long: Vec<_> = (0..20).map(|i| inc(0, Some(1), Some(20 - i))).collect();
        let budget = Budget { max_steps: 5 };
        let parts = [long.clone(), bad];
        assert_eq!(
            check_partitions(&Counter, &parts, budget),
            Verdict::NotLinearizable
        );
        let parts = [long.clone(), long];
        assert_eq!(check_partitions(&Counter, &parts, budget), Verdict::Unknown);
    }
}
