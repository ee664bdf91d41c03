//! What the `reads` workload measured and how it is printed: each reader's [`Seen`], each
//! trial's [`Trial`], and the table of medians and ranges over the rounds.

use std::time::Duration;

use crate::options::{Consistency, Options};
use crate::report::{peak_rss_kib, percentile, ratio};

/// The trials of each client count: each level's trials in `--consistency` order, trial `i`
/// of every level from round `i`.
pub(crate) type Results = Vec<(usize, Vec<(Consistency, Vec<Trial>)>)>;

/// What one reader saw in a trial.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The latency of each completed read, in nanoseconds.
    pub(crate) latencies_ns: Vec<u32>,
    /// Completed reads that returned a value below the highest one acknowledged to the writer
    /// before they began.
    pub(crate) older: u64,
    /// Failed reads.
    pub(crate) errors: u64,
    /// The first failure's message.
    pub(crate) first_error: Option<String>,
}

/// What one trial measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trial {
    reads: u64,
    ops_per_sec: f64,
    p50_ns: u32,
    p99_ns: u32,
    older: u64,
    errors: u64,
    first_error: Option<String>,
    writes_per_sec: f64,
}

impl Trial {
    /// The trial of readers that saw `seen` over `elapsed`, while `writes` were acknowledged.
    pub(crate) fn new(seen: Vec<Seen>, elapsed: Duration, writes: u64) -> Trial {
        let mut latencies = Vec::new();
        let mut trial = Trial::default();
        for reader in seen {
            latencies.extend(reader.latencies_ns);
            trial.older += reader.older;
            trial.errors += reader.errors;
            trial.first_error = trial.first_error.or(reader.first_error);
        }
        latencies.sort_unstable();
        let secs = elapsed.as_secs_f64();
        Trial {
            reads: latencies.len() as u64,
            ops_per_sec: ratio(latencies.len() as f64, secs),
            p50_ns: percentile(&latencies, 0.50),
            p99_ns: percentile(&latencies, 0.99),
            writes_per_sec: ratio(writes as f64, secs),
            ..trial
        }
    }
}

/// The median, lowest and highest of some figures (the upper median of an even count).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

fn spread(values: impl IntoIterator<Item = f64>) -> Spread {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    Spread {
        median: values.get(values.len() / 2).copied().unwrap_or(0.0),
        low: values.first().copied().unwrap_or(0.0),
        high: values.last().copied().unwrap_or(0.0),
    }
}

/// The lease read's p50 over the linearizable read's, median and range over the rounds (each
/// round's two trials divided), when both levels ran.
fn lease_ratio(levels: &[(Consistency, Vec<Trial>)]) -> Option<Spread> {
    let trials = |wanted| {
        levels
            .iter()
            .find(|(level, _)| *level == wanted)
            .map(|(_, trials)| trials)
    };
    let (lease, linearizable) = (
        trials(Consistency::Lease)?,
        trials(Consistency::Linearizable)?,
    );
    let ratios = lease
        .iter()
        .zip(linearizable)
        .map(|(lease, lin)| ratio(f64::from(lease.p50_ns), f64::from(lin.p50_ns)));
    Some(spread(ratios))
}

/// Prints the table and the `bench:` line; returns the reads that broke the guard (older than
/// an acknowledged write at a linearizable level).
pub(crate) fn print_report(options: &Options, secs: f64, results: &Results) -> u64 {
    println!(
        "workload=reads transport={} nodes=3 workers={} secs={secs} rounds={} write_interval_us={} lease_reads=on tls={}",
        format!("{:?}", options.transport).to_lowercase(),
        options.server_workers,
        options.rounds.max(1),
        options.write_interval_us,
        if options.tls { "on" } else { "off" },
    );
    println!(
        "  {:>7}  {:<12} {:>9} {:>17} {:>8} {:>15} {:>8} {:>19} {:>17} {:>6} {:>8}",
        "clients",
        "level",
        "ops/s",
        "(range)",
        "p50 us",
        "(range)",
        "p99 us",
        "(range)",
        "older than acked",
        "errors",
        "writes/s"
    );
    let mut violations = 0;
    let mut fields = Vec::new();
    let mut notes = Vec::new();
    for (clients, levels) in results {
        for (level, trials) in levels {
            let ops = spread(trials.iter().map(|t| t.ops_per_sec));
            let p50 = spread(trials.iter().map(|t| f64::from(t.p50_ns) / 1e3));
            let p99 = spread(trials.iter().map(|t| f64::from(t.p99_ns) / 1e3));
            let writes = spread(trials.iter().map(|t| t.writes_per_sec));
            let reads: u64 = trials.iter().map(|t| t.reads).sum();
            let older: u64 = trials.iter().map(|t| t.older).sum();
            let errors: u64 = trials.iter().map(|t| t.errors).sum();
            if *level != Consistency::Stale {
                violations += older;
            }
            let share = 100.0 * ratio(older as f64, reads as f64);
            println!(
                "  {clients:>7}  {:<12} {:>9.0} {:>17} {:>8.2} {:>15} {:>8.2} {:>19} {:>17} {errors:>6} {:>8.0}",
                level.name(),
                ops.median,
                format!("({:.0}-{:.0})", ops.low, ops.high),
                p50.median,
                format!("({:.2}-{:.2})", p50.low, p50.high),
                p99.median,
                format!("({:.2}-{:.2})", p99.low, p99.high),
                format!("{older} ({share:.1}%)"),
                writes.median,
            );
            if let Some(error) = trials.iter().find_map(|t| t.first_error.as_ref()) {
                notes.push(format!(
                    "{clients} clients, {}: {errors} errors, the first: {error}",
                    level.name()
                ));
            }
            let key = format!("{}_c{clients}", level.name());
            fields.push(format!(
                "{key}_ops_per_sec={:.0} {key}_p50_us={:.2} {key}_p99_us={:.2}",
                ops.median, p50.median, p99.median
            ));
        }
        if let Some(lease) = lease_ratio(levels) {
            println!(
                "  {clients:>7}  lease p50 / linearizable p50 = {:.3} (rounds {:.3}-{:.3})",
                lease.median, lease.low, lease.high
            );
            fields.push(format!(
                "lease_over_linearizable_p50_c{clients}={:.3}",
                lease.median
            ));
        }
    }
    for note in notes {
        println!("  {note}");
    }
    println!("  peak RSS (MiB)   {:.1}", peak_rss_kib() as f64 / 1024.0);
    let counts: Vec<String> = results.iter().map(|(c, _)| c.to_string()).collect();
    println!(
        "bench: workload=reads transport={} nodes=3 clients={} rounds={} secs={secs} {} violations={violations}",
        format!("{:?}", options.transport).to_lowercase(),
        counts.join(","),
        options.rounds.max(1),
        fields.join(" "),
    );
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_median_and_the_range() {
        let s = spread([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.low, s.high), (2.0, 1.0, 3.0));
        assert_eq!(spread([]), Spread::default());
    }

    #[test]
    fn a_trial_merges_its_readers() {
        let seen = vec![
            Seen {
                latencies_ns: vec![3000, 1000],
                older: 1,
                ..Seen::default()
            },
            Seen {
                latencies_ns: vec![2000],
                errors: 2,
                first_error: Some("no leader".into()),
                ..Seen::default()
            },
        ];
        let trial = Trial::new(seen, Duration::from_secs(2), 10);
        assert_eq!((trial.reads, trial.p50_ns, trial.p99_ns), (3, 2000, 3000));
        assert_eq!((trial.older, trial.errors), (1, 2));
        assert_eq!(trial.first_error.as_deref(), Some("no leader"));
        assert!((trial.ops_per_sec - 1.5).abs() < 1e-9);
        assert!((trial.writes_per_sec - 5.0).abs() < 1e-9);
    }

    #[test]
    fn the_lease_ratio_divides_the_p50s_of_the_same_round() {
        let trial = |p50_ns| Trial {
            p50_ns,
            ..Trial::default()
        };
        let levels = vec![
            (Consistency::Linearizable, vec![trial(100), trial(200)]),
            (Consistency::Lease, vec![trial(10), trial(100)]),
        ];
        let lease = lease_ratio(&levels).unwrap();
        assert_eq!((lease.low, lease.high), (0.1, 0.5));
        assert_eq!(lease_ratio(&levels[..1]), None);
    }
}
