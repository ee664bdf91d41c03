//! `raft-sim --seeds N [--first-seed S] [--steps K] [--bug NAME] [--snapshots MODE] [--churn]
//! [--leases] [--drift [within|beyond]] [--no-read-checks] [--no-follower-reads]
//! [--no-split-brain] [--no-heal] [--no-targeted] [--outcomes-only] [--streaming]`: runs N seeded
//! simulations and prints a line per violation, a line of snapshot counts, with `--churn` a
//! line of membership-change counts, with `--leases` a line of lease-read counts, with
//! follower reads a line of their counts, with the heal a line of what it did, with the
//! targeted nemesis a line of its traps, and a summary line (last, in the form ARCHITECTURE.md,
//! "Command lines", fixes); exits non-zero iff a violation was seen.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser;
use raft_sim::{
    Bug, ChurnCounts, ClockMode, FollowerReadCounts, HealCounts, LeaseCounts, SeedReport,
    SimOptions, SnapshotCounts, SnapshotMode, StreamCounts, TargetedCounts, run_seed,
};

/// Deterministic fault-injecting simulation of raft-core.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed; seeds run from here upward.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Events per seed.
    #[arg(long, default_value_t = 3_000)]
    steps: u64,
    /// Plant a bug to see the checker catch it: forget-vote, ack-before-sync, stale-read,
    /// commit-by-count, vote-twice, lazy-snapshot, unsafe-wipe (these two need snapshots),
    /// commit-before-own-sync, vote-request-before-sync, ignore-higher-term-response,
    /// skip-joint-phase, config-on-commit, learner-in-quorum (these three need --churn),
    /// lease-too-long (turns --leases on), follower-read-early (needs follower reads),
    /// next-index-past-rejection, candidate-never-retries (a liveness bug: caught after a
    /// heal), stream-open-trusted (turns --streaming on).
    #[arg(long, value_parser = parse_bug)]
    bug: Option<Bug>,
    /// Snapshots: random (drawn per seed, with disk wipes), off (as before snapshots existed;
    /// old seeds replay), always (in every seed).
    #[arg(long, default_value = "random", value_parser = parse_snapshots)]
    snapshots: SnapshotMode,
    /// Membership churn: learners added on fresh nodes, promoted, voters (the leader among
    /// them) and learners removed, several voters changed at once, removed nodes stopped.
    #[arg(long)]
    churn: bool,
    /// Lease reads: engines with lease reads and check-quorum, a clock-drift bound drawn per
    /// seed, and clients asking for lease reads as well as ReadIndex reads.
    #[arg(long)]
    leases: bool,
    /// Per-node clocks that drift and jump forward: within the bound the engines are
    /// configured with (`--drift` alone), or beyond it (`--drift beyond`). Without it every
    /// node sees the simulated time.
    #[arg(long, num_args = 0..=1, default_missing_value = "within", value_parser = parse_drift)]
    drift: Option<ClockMode>,
    /// Leave out the checks of reads when the engine answers them (read-covers-commits,
    /// lease-read-quorum-bound, lease-read-sole-leader): only the linearizability check of
    /// the clients' history judges reads (to see what a broken lease does to clients).
    #[arg(long)]
    no_read_checks: bool,
    /// Leave out follower reads (clients sending some reads to followers).
    #[arg(long)]
    no_follower_reads: bool,
    /// Leave out the split brain the nemesis plays on the leader with lease reads on.
    #[arg(long)]
    no_split_brain: bool,
    /// Leave out the heal: the faults never stop, and liveness is not checked.
    #[arg(long)]
    no_heal: bool,
    /// Leave out the targeted nemesis (crashes right after appends, acknowledgements and
    /// votes; a slow disk on the leader alone).
    #[arg(long)]
    no_targeted: bool,
    /// Judge only outcomes (two leaders in a term, disagreeing logs, a lost commit, a
    /// non-linearizable history, no recovery after the heal, ...), not the rules the engine
    /// follows to get there: shows whether a broken rule does harm under these faults.
    #[arg(long)]
    outcomes_only: bool,
    /// Streaming replication in every seed, with streams cut mid-batch, opens lost,
    /// duplicated and reordered, and stale leaders' streams.
    #[arg(long)]
    streaming: bool,
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    Bug::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {name:?}; known: {}", names.join(", "))
    })
}

fn parse_snapshots(name: &str) -> Result<SnapshotMode, String> {
    SnapshotMode::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = SnapshotMode::ALL.iter().map(|m| m.name()).collect();
        format!(
            "unknown snapshot mode {name:?}; known: {}",
            names.join(", ")
        )
    })
}

fn parse_drift(name: &str) -> Result<ClockMode, String> {
    match ClockMode::from_name(name) {
        Some(mode) if mode != ClockMode::Exact => Ok(mode),
        _ => Err(format!("unknown drift {name:?}; known: within, beyond")),
    }
}

/// The flags to repeat on a replay line, beyond seeds, steps and snapshots.
fn replay_flags(options: &SimOptions) -> String {
    let mut flags = String::new();
    if options.churn {
        flags.push_str(" --churn");
    }
    if options.leases {
        flags.push_str(" --leases");
    }
    if options.clocks != ClockMode::Exact {
        flags.push_str(" --drift ");
        flags.push_str(options.clocks.name());
    }
    if !options.read_checks {
        flags.push_str(" --no-read-checks");
    }
    if !options.follower_reads {
        flags.push_str(" --no-follower-reads");
    }
    if !options.split_brain {
        flags.push_str(" --no-split-brain");
    }
    if !options.heal {
        flags.push_str(" --no-heal");
    }
    if !options.targeted {
        flags.push_str(" --no-targeted");
    }
    if options.outcomes_only {
        flags.push_str(" --outcomes-only");
    }
    if options.streaming {
        flags.push_str(" --streaming");
    }
    if let Some(bug) = options.bug {
        flags.push_str(" --bug ");
        flags.push_str(bug.name());
    }
    flags
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = SimOptions {
        steps: args.steps,
        bug: args.bug,
        snapshots: args.snapshots,
        churn: args.churn,
        leases: args.leases || args.bug == Some(Bug::LeaseTooLong),
        clocks: args.drift.unwrap_or(ClockMode::Exact),
        read_checks: !args.no_read_checks,
        follower_reads: !args.no_follower_reads || args.bug == Some(Bug::FollowerReadEarly),
        split_brain: !args.no_split_brain,
        heal: !args.no_heal,
        targeted: !args.no_targeted,
        outcomes_only: args.outcomes_only,
        streaming: args.streaming || args.bug == Some(Bug::StreamOpenTrusted),
    };
    let (mut violations, mut commits, mut elections, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let mut snapshots = SnapshotCounts::default();
    let mut churn = ChurnCounts::default();
    let mut leases = LeaseCounts::default();
    let mut totals = Totals::default();
    let flags = replay_flags(&options);
    for seed in args.first_seed..args.first_seed.saturating_add(args.seeds) {
        let report = run_seed(seed, &options);
        commits += report.commits;
        elections += report.elections;
        unknown += u64::from(report.linearizability_unknown);
        snapshots.add(&report.snapshots);
        churn.add(&report.churn);
        leases.add(&report.leases);
        totals.add(&report);
        if let Some(violation) = report.violation {
            violations += 1;
            println!(
                "violation: seed={seed} invariant={} step={} {} (replay: --first-seed {seed} --seeds 1 --steps {} --snapshots {}{flags})",
                violation.invariant,
                violation.step,
                violation.detail,
                args.steps,
                args.snapshots.name()
            );
        }
    }
    if unknown > 0 {
        println!("note: {unknown} seeds had histories too large to check for linearizability");
    }
    println!(
        "snapshots: created={} installed={} chunks_sent={} chunks_saved={} chunks_corrupted={} restored={} replaced_at_restart={} compactions={} wipes={}",
        snapshots.created,
        snapshots.installed,
        snapshots.chunks_sent,
        snapshots.chunks_saved,
        snapshots.chunks_corrupted,
        snapshots.restored,
        snapshots.replaced_at_restart,
        snapshots.compactions,
        snapshots.wipes
    );
    if args.churn {
        println!(
            "churn: requested={} accepted={} rejected={} (in_progress={} not_leader={} invalid={}) completed={} joint_committed={} learners_added={} promoted={} nodes_removed={} leaders_removed={} removed_stopped={}",
            churn.requested,
            churn.accepted,
            churn.rejected(),
            churn.rejected_in_progress,
            churn.rejected_not_leader,
            churn.rejected_invalid,
            churn.completed,
            churn.joint_committed,
            churn.learners_added,
            churn.promoted,
            churn.nodes_removed,
            churn.leaders_removed,
            churn.removed_stopped
        );
    }
    if options.leases {
        println!(
            "leases: lease_reads={} served_at_once={} fell_back_to_read_index={} rejected_not_leader={}",
            leases.requested, leases.served_at_once, leases.fell_back, leases.rejected
        );
    }
    if options.follower_reads {
        let reads = totals.follower_reads;
        println!(
            "follower_reads: requested={} confirmed={} rejected={} answered_across_lives={} stale_across_lives={}",
            reads.requested,
            reads.confirmed,
            reads.rejected,
            reads.answered_across_lives,
            reads.stale_across_lives
        );
    }
    if options.heal {
        let heal = totals.heal;
        println!(
            "heal: healed={} judged={} recovered={} unfinished={} slowest_recovery_ms={} slowest_recovery_election_timeouts={}.{:02}",
            heal.healed,
            heal.judged,
            heal.recovered,
            heal.unfinished,
            heal.slowest_recovery_ms,
            heal.slowest_recovery_timeouts_percent / 100,
            heal.slowest_recovery_timeouts_percent % 100
        );
    }
    if options.targeted {
        let targeted = totals.targeted;
        println!(
            "targeted: traps={} crashes={} slow_disks={}",
            targeted.traps, targeted.crashes, targeted.slow_disks
        );
    }
    if options.streaming {
        let streams = totals.streams;
        println!(
            "streams: opened={} open_failed={} cut={} ended={} batches={}",
            streams.opened, streams.open_failed, streams.cut, streams.ended, streams.batches
        );
    }
    println!(
        "sim: seeds={} steps={} violations={violations} commits={commits} elections={elections}",
        args.seeds, args.steps
    );
    if violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The counts summed over the seeds that have no summary variable of their own above.
#[derive(Debug, Default)]
struct Totals {
    follower_reads: FollowerReadCounts,
    heal: HealCounts,
    targeted: TargetedCounts,
    streams: StreamCounts,
}

impl Totals {
    fn add(&mut self, report: &SeedReport) {
        self.follower_reads.add(&report.follower_reads);
        self.heal.add(&report.heal);
        self.targeted.add(&report.targeted);
        self.streams.add(&report.streams);
    }
}
