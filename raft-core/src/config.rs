//! Engine configuration, validated once at start.
//!
//! Durations are plain milliseconds with the unit last in the name (`election_timeout_ms`); the
//! engine never reads a clock, so they are compared against the `now_ms` of [`Input::Tick`].
//!
//! [`Input::Tick`]: crate::engine::Input::Tick

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The largest snapshot chunk a node sends (transports size their body limits after it).
pub const MAX_SNAPSHOT_CHUNK_BYTES: u64 = 64 << 20;

/// When a leader sends AppendEntries to a follower.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pacing {
    /// Send only when the follower's heartbeat timer fires: each firing sends
    /// `[next_index, next_index + batch)` (or an empty heartbeat), resets the timer and advances
    /// `next_index`, so several requests are in flight when the round trip exceeds the interval.
    Heartbeat,
    /// Send new entries as soon as the in-flight window has room; the heartbeat timer still
    /// guarantees a floor when there is nothing to send. Past
    /// [`Config::max_inflight_partial_requests`] requests in flight, only a full batch goes.
    #[default]
    Eager,
}

/// How a leader carries entries to its followers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replication {
    /// Entries travel in AppendEntries requests, each answered on its own, up to
    /// [`Config::max_inflight_requests`] in flight per follower (paced by [`Pacing`]).
    #[default]
    Pipelined,
    /// Each follower opens one long-lived stream to the leader it recognises, stating where its
    /// durable log ends ([`Message::OpenStream`](crate::message::Message::OpenStream)); the
    /// leader checks that position once and then sends batches on the stream as entries
    /// arrive, with no cap on the number in flight: at most
    /// [`Config::stream_max_unacked_bytes`] of entries sent and not yet acknowledged durable.
    /// Heartbeats stay separate small messages on their own timer, never behind a batch. The
    /// runtime reports a stream's end with
    /// [`Input::StreamClosed`](crate::engine::Input::StreamClosed); the follower reopens it
    /// at the leader's next message. Without an open stream batches go one at a time as
    /// requests (a follower that cannot reach its leader still catches up).
    Streaming,
}

/// Configuration of one Raft node. Build it with [`Config::default`] and adjust fields (the
/// struct is `#[non_exhaustive]`, so a later release can add settings without breaking your
/// code); a serialized config that lacks a field reads it as the default.
///
/// ```
/// let mut config = raft_core::Config::default();
/// config.election_timeout_ms = 500;
/// config.heartbeat_interval_ms = 50;
/// config.validate()?;
/// # Ok::<(), raft_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Config {
    /// `T`: a follower starts an election after a random timeout in `[T, 2T)` without a leader.
    pub election_timeout_ms: u64,
    /// Interval between AppendEntries to each follower when there is nothing else to send.
    pub heartbeat_interval_ms: u64,
    /// Run a pre-vote round before incrementing the term (Raft thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down, and
    /// followers that heard from a leader within it ignore vote requests.
    pub check_quorum: bool,
    /// When AppendEntries go out; see [`Pacing`].
    pub pacing: Pacing,
    /// The most AppendEntries requests carrying entries in flight to one follower.
    pub max_inflight_requests: usize,
    /// Under [`Pacing::Eager`], the most requests in flight to one follower before the next one
    /// waits for a full batch (the follower's current batch size in entries, or
    /// `batch_bytes_max` bytes). Below it a request leaves with whatever is new, so a lone client
    /// is answered after one round trip; at it, new entries accumulate while requests are in
    /// flight and leave together (Nagle's rule for TCP), which under load makes requests fewer
    /// and larger: each request has a fixed cost (a transport call, a wake-up of both event
    /// loops) that batching shares. A follower far behind still gets up to
    /// `max_inflight_requests` full batches at once. In `1..=max_inflight_requests`; setting it
    /// to `max_inflight_requests` sends every entry as soon as the window has room.
    pub max_inflight_partial_requests: usize,
    /// Entries per request for a fresh follower (the batch sizer's starting point).
    pub batch_entries_initial: u64,
    /// The most entries in one AppendEntries request.
    pub batch_entries_max: u64,
    /// The most payload bytes in one AppendEntries request (a single larger entry still goes).
    pub batch_bytes_max: u64,
    /// An AppendEntries without a response after this long counts as failed.
    pub request_timeout_ms: u64,
    /// Take a snapshot once this many entries were committed since the last one (0: never by
    /// count; the runtime's log-size policy or an explicit request still takes them).
    pub snapshot_entries: u64,
    /// Entries kept in the log below a new snapshot's index when compacting, so followers that
    /// lag a little catch up from the log instead of a whole snapshot.
    pub snapshot_keep_entries: u64,
    /// The most data bytes in one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: u64,
    /// Serve lease reads (`Input::LeaseReadRequested`) from the leader's state without a round
    /// trip while its lease holds: after a quorum acknowledged requests sent at time `t`, no
    /// other leader can be elected before `t + election_timeout_ms` on the followers' clocks,
    /// so the lease ends at `t + election_timeout_ms - max_clock_drift_ms` on the leader's.
    /// Needs `check_quorum`. Off by default: it trusts clocks to run at nearly the same rate;
    /// with it off, lease reads are served by ReadIndex.
    pub lease_reads: bool,
    /// How far (ms) the clocks of two nodes may drift apart over one election timeout; the
    /// lease is that much shorter than the election timeout. Below `election_timeout_ms`.
    pub max_clock_drift_ms: u64,
    /// How entries reach followers; see [`Replication`].
    pub replication: Replication,
    /// Under [`Replication::Streaming`], the most payload bytes sent to one follower and not
    /// yet acknowledged (one batch still goes when nothing is outstanding): the bound on what a
    /// slow follower makes the leader hold in flight.
    pub stream_max_unacked_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            election_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            pre_vote: true,
            check_quorum: true,
            pacing: Pacing::Eager,
            max_inflight_requests: 8,
            max_inflight_partial_requests: 1,
            batch_entries_initial: 16,
            batch_entries_max: 1024,
            batch_bytes_max: 1 << 20,
            request_timeout_ms: 1000,
            snapshot_entries: 0,
            snapshot_keep_entries: 1024,
            snapshot_chunk_bytes: 1 << 20,
            lease_reads: false,
            max_clock_drift_ms: 100,
            replication: Replication::Pipelined,
            stream_max_unacked_bytes: 8 << 20,
        }
    }
}

impl Config {
    /// Checks that the values make sense together.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first field that is out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |message: &str| Err(Error::Config(message.to_owned()));
        if self.heartbeat_interval_ms == 0 {
            return fail("heartbeat_interval_ms must be positive");
        }
        if self.election_timeout_ms <= self.heartbeat_interval_ms {
            return fail("election_timeout_ms must exceed heartbeat_interval_ms");
        }
        if self.max_inflight_requests == 0 {
            return fail("max_inflight_requests must be at least 1");
        }
        if self.max_inflight_partial_requests == 0
            || self.max_inflight_partial_requests > self.max_inflight_requests
        {
            return fail("max_inflight_partial_requests must be in 1..=max_inflight_requests");
        }
        if self.batch_entries_max == 0 || self.batch_bytes_max == 0 {
            return fail("batch_entries_max and batch_bytes_max must be positive");
        }
        if self.batch_entries_initial == 0 || self.batch_entries_initial > self.batch_entries_max {
            return fail("batch_entries_initial must be in 1..=batch_entries_max");
        }
        if self.request_timeout_ms == 0 {
            return fail("request_timeout_ms must be positive");
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_chunk_bytes > MAX_SNAPSHOT_CHUNK_BYTES {
            return fail("snapshot_chunk_bytes must be in 1..=64 MiB");
        }
        if self.max_clock_drift_ms >= self.election_timeout_ms {
            return fail("max_clock_drift_ms must be below election_timeout_ms");
        }
        if self.stream_max_unacked_bytes == 0 {
            return fail("stream_max_unacked_bytes must be positive");
        }
        if self.lease_reads && !self.check_quorum {
            return fail(
                "lease_reads needs check_quorum (followers must ignore elections while a leader is alive)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn election_timeout_not_above_heartbeat_is_rejected() {
        let config = Config {
            election_timeout_ms: 100,
            heartbeat_interval_ms: 100,
            ..Config::default()
        };
        assert!(matches!(config.validate(), Err(Error::Config(_))));
    }

    #[test]
    fn partial_requests_above_the_window_are_rejected() {
        for partial in [0, 9] {
            let config = Config {
                max_inflight_requests: 8,
                max_inflight_partial_requests: partial,
                ..Config::default()
            };
            assert!(
                matches!(config.validate(), Err(Error::Config(_))),
                "{partial}"
            );
        }
    }

    /// The fields of `Config` before `max_inflight_partial_requests` existed.
    #[derive(Serialize)]
    struct ConfigWithoutPartialWindow {
        election_timeout_ms: u64,
        heartbeat_interval_ms: u64,
        pre_vote: bool,
        check_quorum: bool,
        pacing: Pacing,
        max_inflight_requests: usize,
        batch_entries_initial: u64,
        batch_entries_max: u64,
        batch_bytes_max: u64,
        request_timeout_ms: u64,
        snapshot_entries: u64,
        snapshot_keep_entries: u64,
        snapshot_chunk_bytes: u64,
    }

    #[test]
    fn a_config_serialized_before_the_partial_window_reads_with_its_default() {
        let d = Config::default();
        let old = ConfigWithoutPartialWindow {
            election_timeout_ms: d.election_timeout_ms,
            heartbeat_interval_ms: d.heartbeat_interval_ms,
            pre_vote: d.pre_vote,
            check_quorum: d.check_quorum,
            pacing: d.pacing,
            max_inflight_requests: d.max_inflight_requests,
            batch_entries_initial: d.batch_entries_initial,
            batch_entries_max: d.batch_entries_max,
            batch_bytes_max: d.batch_bytes_max,
            request_timeout_ms: d.request_timeout_ms,
            snapshot_entries: d.snapshot_entries,
            snapshot_keep_entries: d.snapshot_keep_entries,
            snapshot_chunk_bytes: d.snapshot_chunk_bytes,
        };
        let bytes = rmp_serde::to_vec_named(&old).unwrap();
        let config: Config = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(config, d);
    }

    #[test]
    fn a_config_serialized_with_only_some_fields_reads_the_rest_as_defaults() {
        #[derive(Serialize)]
        struct Partial {
            election_timeout_ms: u64,
            pacing: Pacing,
        }
        let bytes = rmp_serde::to_vec_named(&Partial {
            election_timeout_ms: 3000,
            pacing: Pacing::Heartbeat,
        })
        .unwrap();
        let config: Config = rmp_serde::from_slice(&bytes).unwrap();
        let expected = Config {
            election_timeout_ms: 3000,
            pacing: Pacing::Heartbeat,
            ..Config::default()
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn initial_batch_above_max_is_rejected() {
        let config = Config {
            batch_entries_initial: 2048,
            ..Config::default()
        };
        assert!(matches!(config.validate(), Err(Error::Config(_))));
    }
}
