//! Checks the checker against every labelled reference history.

use raft_sim::linearizability::jepsen::{parse_jepsen_log, parse_kv_history};
use raft_sim::linearizability::kv::check_kv;
use raft_sim::linearizability::register::RegisterModel;
use raft_sim::linearizability::{Budget, Verdict, check};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/histories");

fn verdict_of(path: &str) -> Result<Verdict, String> {
    let text = std::fs::read_to_string(format!("{DATA}/{path}")).map_err(|e| e.to_string())?;
    if path.starts_with("kv/") {
        let history = parse_kv_history(&text).map_err(|e| e.to_string())?;
        Ok(check_kv(&history, Budget::default()))
    } else {
        let history = parse_jepsen_log(&text).map_err(|e| e.to_string())?;
        Ok(check(&RegisterModel, &history, Budget::default()))
    }
}

#[test]
fn checker_agrees_with_every_labelled_history() {
    let verdicts = std::fs::read_to_string(format!("{DATA}/verdicts.tsv")).unwrap();
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for line in verdicts.lines().filter(|l| !l.trim().is_empty()) {
        let (path, label) = line.split_once('\t').unwrap();
        let expected = match label.trim() {
            "linearizable" => Verdict::Linearizable,
            "not-linearizable" => Verdict::NotLinearizable,
            other => panic!("unknown label {other:?} for {path}"),
        };
        let outcome = verdict_of(path);
        if outcome.as_ref() != Ok(&expected) {
            disagreements.push(format!("{path}: expected {expected:?}, got {outcome:?}"));
        }
        checked += 1;
    }
    assert_eq!(checked, 108, "verdicts.tsv should label 108 histories");
    assert!(
        disagreements.is_empty(),
        "{} disagreement(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
