//! Per-node clocks ([`ClockMode`]): the time each node's engine sees, drifting and jumping
//! away from the simulated (real) time the world's events run on.
//!
//! Every node's clock starts at its own origin (a random offset: engines never compare their
//! clocks, a runtime's origin is its start) and runs at its own rate, piecewise constant: now
//! and then, at one of the node's ticks, the rate changes (as a clock disciplined by NTP slews)
//! or the clock jumps forward (a step, a paused virtual machine). A clock never goes back.
//!
//! The bound is stated as `Config::max_clock_drift_ms` states it, `d`: over any stretch of
//! real time in which one node's clock advances at most an election timeout `ET`, another
//! node's clock advances at most `d` more. What a leader's lease needs is that bound on the
//! time the engines *see*, which moves only at ticks: a reading lags the clock by up to one
//! tick's advance (`g`), and a lease involves two readings on each side (when a request is
//! sent and the lease is checked on the leader, when it is received and a vote is asked for
//! on the follower), so the clocks themselves must keep within `d - 2g` (and a millisecond
//! more for each rounding to whole milliseconds). With rates in `[1 - rho, 1 + rho]` and forward
//! jumps of at most `J` spaced more than an election timeout apart on each node, two clocks
//! drift apart by at most `2 rho ET / (1 - rho) + J` over such a stretch (it lasts at most
//! `ET / (1 - rho)` of real time and holds at most one jump). [`ClockPlan::within`] spends the
//! budget `d - 2g - 2` on jumps and rates; [`ClockPlan::beyond`] exceeds it several times over,
//! with fast rates and jumps up to two election timeouts.
//!
//! The clocks draw from their own generator, so the world's draws stay what they were; with
//! [`ClockMode::Exact`] every node sees the simulated time itself and nothing is drawn.

use crate::rng::SimRng;

/// How often each node's engine hears the clock (simulated milliseconds).
pub(crate) const TICK_MS: u64 = 10;
/// Rates in parts per million: `PPM` is a rate of 1.
const PPM: u64 = 1_000_000;
/// The fastest drift inside the bound: rates within 25% of 1.
const MAX_RHO_WITHIN_PPM: u64 = 250_000;
/// Per mille of a node's ticks at which its rate changes, and at which it jumps.
const RATE_CHANGE_PER_MILLE: u64 = 5;
const JUMP_PER_MILLE: u64 = 3;
/// The clocks' generator is seeded apart from the world's and the engines'.
const CLOCK_SEED: u64 = 0xC10C_D21F_7A5E_0B1D;

/// How the nodes' clocks relate to the simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockMode {
    /// Every node sees the simulated time: seeds replay the runs they gave before per-node
    /// clocks existed.
    #[default]
    Exact,
    /// Clocks drift and jump forward within the bound `Config::max_clock_drift_ms` states:
    /// lease reads must stay linearizable.
    Drift,
    /// Clocks drift and jump well beyond that bound: leases can break (a documented
    /// experiment, not a safety requirement).
    BeyondBound,
}

impl ClockMode {
    /// Every mode.
    pub const ALL: [ClockMode; 3] = [ClockMode::Exact, ClockMode::Drift, ClockMode::BeyondBound];

    /// The name used on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ClockMode::Exact => "exact",
            ClockMode::Drift => "within",
            ClockMode::BeyondBound => "beyond",
        }
    }

    /// Parses a command-line name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<ClockMode> {
        ClockMode::ALL.into_iter().find(|mode| mode.name() == name)
    }
}

/// How far one seed's clocks may stray.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClockPlan {
    /// Rates lie in `[1 - rho, 1 + rho]` (parts per million).
    pub(crate) rho_ppm: u64,
    /// Forward jumps of at most this many milliseconds.
    pub(crate) jump_max_ms: u64,
    /// Two jumps of one node are at least this far apart (simulated milliseconds).
    pub(crate) jump_spacing_ms: u64,
}

impl ClockPlan {
    /// No drift at all.
    const EXACT: ClockPlan = ClockPlan {
        rho_ppm: 0,
        jump_max_ms: 0,
        jump_spacing_ms: 0,
    };

    /// A plan inside the bound `max_drift_ms` over `election_timeout_ms` (see the module
    /// docs): part of the budget goes to jumps (none, a third or two thirds of it), the rest
    /// to the rates.
    pub(crate) fn within(rng: &mut SimRng, election_timeout_ms: u64, max_drift_ms: u64) -> Self {
        let budget = max_drift_ms.saturating_sub(2 * tick_lag_ms(MAX_RHO_WITHIN_PPM) + 2);
        let jump_max_ms = budget * rng.range(0, 3) / 3;
        let rates = budget - jump_max_ms;
        // The largest rho with 2 rho ET / (1 - rho) <= rates.
        let rho_ppm = (rates * PPM / (2 * election_timeout_ms + rates)).min(MAX_RHO_WITHIN_PPM);
        ClockPlan {
            rho_ppm,
            jump_max_ms,
            jump_spacing_ms: 2 * election_timeout_ms,
        }
    }

    /// A plan well beyond the bound: rates of 1 plus or minus 35% or 50%, jumps up to one
    /// election timeout or two, a quarter of an election timeout apart.
    pub(crate) fn beyond(rng: &mut SimRng, election_timeout_ms: u64, max_drift_ms: u64) -> Self {
        let rho_ppm = [350_000, 500_000][rng.index(2)];
        let jump_max_ms = [election_timeout_ms, 2 * election_timeout_ms][rng.index(2)];
        let plan = ClockPlan {
            rho_ppm,
            jump_max_ms: jump_max_ms.max(max_drift_ms),
            jump_spacing_ms: election_timeout_ms / 4,
        };
        debug_assert!(plan.worst_drift_ms(election_timeout_ms) > max_drift_ms);
        plan
    }

    /// How far apart the time two engines see can drift over an election timeout, at worst:
    /// rates, one jump, a tick's lag on each of two readings on each side, and rounding.
    pub(crate) fn worst_drift_ms(&self, election_timeout_ms: u64) -> u64 {
        self.clock_drift_ms(election_timeout_ms) + 2 * tick_lag_ms(self.rho_ppm) + 2
    }

    /// How far apart two clocks can drift while the slower advances an election timeout.
    pub(crate) fn clock_drift_ms(&self, election_timeout_ms: u64) -> u64 {
        let rates = (2 * self.rho_ppm * election_timeout_ms).div_ceil(PPM - self.rho_ppm);
        rates + self.jump_max_ms
    }
}

/// The most a clock advances between two ticks of its node (rounded up), plus the
/// millisecond a reading rounds off.
fn tick_lag_ms(rho_ppm: u64) -> u64 {
    (TICK_MS * (PPM + rho_ppm)).div_ceil(PPM) + 1
}

/// One node's clock: `local_us` at simulated time `real_ms`, running at `rate_ppm` since.
#[derive(Clone, Copy, Debug)]
struct NodeClock {
    real_ms: u64,
    local_us: u64,
    rate_ppm: u64,
    last_jump_ms: Option<u64>,
}

impl NodeClock {
    fn at_us(&self, real_ms: u64) -> u64 {
        self.local_us + real_ms.saturating_sub(self.real_ms) * self.rate_ppm / 1_000
    }

    /// Restarts the segment at `real_ms` (before a change of rate or a jump).
    fn rebase(&mut self, real_ms: u64) {
        self.local_us = self.at_us(real_ms);
        self.real_ms = real_ms;
    }
}

/// The clocks of every node of one run.
#[derive(Debug)]
pub(crate) struct Clocks {
    mode: ClockMode,
    plan: ClockPlan,
    rng: SimRng,
    /// By node position; a node's clock is made at its first tick.
    nodes: Vec<NodeClock>,
}

impl Clocks {
    /// The generator the clocks (and the drift bound they are drawn against) draw from.
    pub(crate) fn rng(seed: u64) -> SimRng {
        SimRng::new(seed.rotate_left(17) ^ CLOCK_SEED)
    }

    pub(crate) fn new(
        mode: ClockMode,
        mut rng: SimRng,
        election_timeout_ms: u64,
        max_drift_ms: u64,
    ) -> Clocks {
        let plan = match mode {
            ClockMode::Exact => ClockPlan::EXACT,
            ClockMode::Drift => ClockPlan::within(&mut rng, election_timeout_ms, max_drift_ms),
            ClockMode::BeyondBound => {
                ClockPlan::beyond(&mut rng, election_timeout_ms, max_drift_ms)
            }
        };
        Clocks {
            mode,
            plan,
            rng,
            nodes: Vec::new(),
        }
    }

    /// The time node `node`'s engine sees at its tick at simulated time `real_ms`; its clock
    /// may first change its rate or jump forward.
    pub(crate) fn tick(&mut self, node: usize, real_ms: u64) -> u64 {
        if self.mode == ClockMode::Exact {
            return real_ms;
        }
        while self.nodes.len() <= node {
            let rate_ppm = self.draw_rate();
            let local_us = self.rng.range(0, 1_000_000) * 1_000;
            self.nodes.push(NodeClock {
                real_ms,
                local_us,
                rate_ppm,
                last_jump_ms: None,
            });
        }
        if self.rng.range(0, 1_000) < RATE_CHANGE_PER_MILLE {
            let rate_ppm = self.draw_rate();
            let clock = &mut self.nodes[node];
            clock.rebase(real_ms);
            clock.rate_ppm = rate_ppm;
        }
        let spaced = self.nodes[node]
            .last_jump_ms
            .is_none_or(|at| real_ms >= at + self.plan.jump_spacing_ms);
        if self.plan.jump_max_ms > 0 && spaced && self.rng.range(0, 1_000) < JUMP_PER_MILLE {
            let jump_ms = self.rng.range(1, self.plan.jump_max_ms + 1);
            let clock = &mut self.nodes[node];
            clock.rebase(real_ms);
            clock.local_us += jump_ms * 1_000;
            clock.last_jump_ms = Some(real_ms);
        }
        self.nodes[node].at_us(real_ms) / 1_000
    }

    /// A rate in `[1 - rho, 1 + rho]`: either end in a third of the draws each, as clocks at
    /// the edge of their tolerance are what a lease must survive (beyond the bound, always an
    /// end).
    fn draw_rate(&mut self) -> u64 {
        let rho = self.plan.rho_ppm;
        let ends = if self.mode == ClockMode::BeyondBound {
            2
        } else {
            3
        };
        match self.rng.index(ends) {
            0 => PPM - rho,
            1 => PPM + rho,
            _ => self.rng.range(PPM - rho, PPM + rho + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs three clocks of `mode` for a minute of simulated time, read at every tick.
    fn readings(mode: ClockMode, seed: u64, et: u64, drift: u64) -> (ClockPlan, Vec<Vec<u64>>) {
        let mut clocks = Clocks::new(mode, Clocks::rng(seed), et, drift);
        let mut readings = vec![Vec::new(); 3];
        for real in (0..60_000).step_by(TICK_MS as usize) {
            for (node, reading) in readings.iter_mut().enumerate() {
                reading.push(clocks.tick(node, real));
            }
        }
        (clocks.plan, readings)
    }

    /// The most one clock ran ahead of another over a stretch in which the slower one
    /// advanced at most `et`.
    fn widest_drift(readings: &[Vec<u64>], et: u64) -> u64 {
        let mut widest = 0;
        for slow in readings {
            for fast in readings {
                for start in 0..slow.len() {
                    for end in start..slow.len() {
                        if slow[end] - slow[start] > et {
                            break;
                        }
                        let ahead =
                            (fast[end] - fast[start]).saturating_sub(slow[end] - slow[start]);
                        widest = widest.max(ahead);
                    }
                }
            }
        }
        widest
    }

    #[test]
    fn exact_clocks_show_the_simulated_time() {
        let mut clocks = Clocks::new(ClockMode::Exact, Clocks::rng(1), 150, 40);
        assert_eq!(clocks.tick(2, 1_234), 1_234);
    }

    #[test]
    fn clocks_within_the_bound_drift_apart_by_less_than_the_bound_minus_two_ticks() {
        for seed in 0..12 {
            let (et, drift) = if seed % 2 == 0 { (150, 40) } else { (300, 150) };
            let (plan, readings) = readings(ClockMode::Drift, seed, et, drift);
            assert!(plan.worst_drift_ms(et) <= drift, "{plan:?}");
            let widest = widest_drift(&readings, et);
            // Readings round down to whole milliseconds: one more on each of the two.
            assert!(
                widest <= plan.clock_drift_ms(et) + 2,
                "seed {seed}: {widest} {plan:?}"
            );
            assert!(
                widest + 2 * TICK_MS + 4 <= drift,
                "seed {seed}: {widest} {plan:?}"
            );
        }
    }

    #[test]
    fn clocks_within_the_bound_really_drift_and_jump() {
        let (plan, readings) = readings(ClockMode::Drift, 3, 300, 150);
        assert!(plan.rho_ppm > 0 || plan.jump_max_ms > 0, "{plan:?}");
        assert!(widest_drift(&readings, 300) > 10);
        let advanced: Vec<u64> = readings.iter().map(|r| r[r.len() - 1] - r[0]).collect();
        assert!(advanced.iter().any(|&a| a != advanced[0]), "{advanced:?}");
    }

    #[test]
    fn clocks_beyond_the_bound_drift_apart_by_more_than_the_bound() {
        for seed in 0..6 {
            let (plan, readings) = readings(ClockMode::BeyondBound, seed, 150, 40);
            assert!(plan.worst_drift_ms(150) > 40, "{plan:?}");
            assert!(widest_drift(&readings, 150) > 40, "seed {seed}: {plan:?}");
        }
    }

    #[test]
    fn clocks_never_go_back() {
        for mode in ClockMode::ALL {
            let (_, readings) = readings(mode, 9, 150, 40);
            for reading in readings {
                assert!(reading.windows(2).all(|w| w[0] <= w[1]), "{mode:?}");
            }
        }
    }
}
