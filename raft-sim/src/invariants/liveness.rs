//! `liveness-after-heal`: once the faults stop (the world's heal), a leader commits a new entry
//! within a bound. The world's probe client writes to the leader after the heal, so an applied
//! probe write (a command on [`PROBE_KEY`], a key no client touches) is an entry appended after
//! the heal: applying one shows both that a leader was elected (or kept) and that it commits.
//! Checked after every step; a run that ends before the bound passes is not judged.
//!
//! Only seeds with pre-vote are judged (recovery is timed in all). Without pre-vote Raft lets a
//! node whose log is behind campaign round after round: each of its elections resets the
//! timers of the nodes that could win, and it is refused, so the time to recover has no useful
//! bound (thesis §9.6; recoveries of eleven election timeouts were seen), and the check would
//! report the protocol rather than a bug, as `removed-cannot-disrupt` would.

use raft_core::Payload;

use crate::client::decode_put;

/// The key the probe writes after the heal.
pub(crate) const PROBE_KEY: &str = "liveness";

/// The watch over one heal.
#[derive(Clone, Copy, Debug)]
struct Watch {
    healed_ms: u64,
    /// `None`: not judged (without pre-vote; see the module docs).
    bound_ms: Option<u64>,
    election_timeout_ms: u64,
    /// When the first probe write was applied, after the heal.
    recovered_after_ms: Option<u64>,
}

/// Whether the cluster recovered after the heal, if there was one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Liveness {
    watch: Option<Watch>,
}

impl Liveness {
    /// The faults stopped at `now_ms`: a probe write must be applied within `bound_ms`
    /// (`None`: recovery is timed, not judged).
    pub(crate) fn start(&mut self, now_ms: u64, bound_ms: Option<u64>, election_timeout_ms: u64) {
        self.watch = Some(Watch {
            healed_ms: now_ms,
            bound_ms,
            election_timeout_ms,
            recovered_after_ms: None,
        });
    }

    /// Whether the heal's recovery is judged (a bound was set).
    pub(crate) fn is_judged(&self) -> bool {
        self.watch.is_some_and(|watch| watch.bound_ms.is_some())
    }

    /// How long after the heal the first probe write was applied, if one was.
    pub(crate) fn recovered_after_ms(&self) -> Option<u64> {
        self.watch.and_then(|watch| watch.recovered_after_ms)
    }

    /// A node applied `payload` at `now_ms`.
    pub(crate) fn on_apply(&mut self, payload: &Payload, now_ms: u64) {
        let Some(watch) = self
            .watch
            .as_mut()
            .filter(|w| w.recovered_after_ms.is_none())
        else {
            return;
        };
        let Payload::Command(bytes) = payload else {
            return;
        };
        if decode_put(bytes).is_some_and(|(key, _)| key == PROBE_KEY) {
            watch.recovered_after_ms = Some(now_ms.saturating_sub(watch.healed_ms));
        }
    }

    /// What breaks `liveness-after-heal` at `now_ms`, if the bound passed with no probe write
    /// applied (the checker adds what each running node is doing).
    pub(crate) fn overdue(&self, now_ms: u64) -> Option<String> {
        let watch = self.watch?;
        let bound_ms = watch.bound_ms?;
        let late = now_ms > watch.healed_ms + bound_ms;
        if !late || watch.recovered_after_ms.is_some() {
            return None;
        }
        Some(format!(
            "no new entry committed within {bound_ms} ms ({} election timeouts) of the heal at {} ms;",
            bound_ms / watch.election_timeout_ms.max(1),
            watch.healed_ms
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::encode_put;

    fn probe_write() -> Payload {
        Payload::Command(encode_put(PROBE_KEY, "p1"))
    }

    #[test]
    fn no_probe_write_applied_within_the_bound_is_reported_once_the_bound_passes() {
        let mut liveness = Liveness::default();
        liveness.start(1_000, Some(1_500), 150);
        // A client's write is not the probe's: it may have been appended before the heal.
        liveness.on_apply(&Payload::Command(encode_put("a", "v1")), 2_000);
        assert_eq!(liveness.overdue(2_500), None);
        let detail = liveness.overdue(2_501).expect("the bound passed");
        assert!(detail.contains("(10 election timeouts)"), "{detail}");
        assert_eq!(liveness.recovered_after_ms(), None);
    }

    #[test]
    fn a_probe_write_applied_within_the_bound_satisfies_the_check_for_good() {
        let mut liveness = Liveness::default();
        liveness.start(1_000, Some(1_500), 150);
        liveness.on_apply(&probe_write(), 1_400);
        liveness.on_apply(&probe_write(), 1_900);
        assert_eq!(liveness.recovered_after_ms(), Some(400));
        assert_eq!(liveness.overdue(100_000), None);
    }

    #[test]
    fn without_a_bound_the_recovery_is_timed_but_never_reported() {
        let mut liveness = Liveness::default();
        liveness.start(0, None, 150);
        assert_eq!(liveness.overdue(1_000_000), None);
        liveness.on_apply(&probe_write(), 5_000);
        assert_eq!(liveness.recovered_after_ms(), Some(5_000));
    }

    #[test]
    fn before_a_heal_nothing_is_watched() {
        let mut liveness = Liveness::default();
        liveness.on_apply(&probe_write(), 5_000);
        assert_eq!(liveness.recovered_after_ms(), None);
        assert_eq!(liveness.overdue(1_000_000), None);
    }
}
