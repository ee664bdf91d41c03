//! `raft-sim --seeds N [--first-seed S] [--steps K] [--bug NAME]`: runs N seeded simulations
//! and prints a line per violation and a summary line; exits non-zero iff a violation was seen.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser;
use raft_sim::{Bug, SimOptions, run_seed};

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
    /// commit-by-count, vote-twice.
    #[arg(long, value_parser = parse_bug)]
    bug: Option<Bug>,
}

fn parse_bug(name: &str) -> Result<Bug, String> {
    Bug::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown bug {name:?}; known: {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = SimOptions {
        steps: args.steps,
        bug: args.bug,
    };
    let (mut violations, mut commits, mut elections, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    for seed in args.first_seed..args.first_seed.saturating_add(args.seeds) {
        let report = run_seed(seed, &options);
        commits += report.commits;
        elections += report.elections;
        unknown += u64::from(report.linearizability_unknown);
        if let Some(violation) = report.violation {
            violations += 1;
            println!(
                "violation: seed={seed} invariant={} step={} {} (replay: --first-seed {seed} --seeds 1 --steps {})",
                violation.invariant, violation.step, violation.detail, args.steps
            );
        }
    }
    if unknown > 0 {
        println!("note: {unknown} seeds had histories too large to check for linearizability");
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
