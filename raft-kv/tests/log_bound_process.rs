//! A real `raft-kv serve` process keeps its log on disk bounded by `--snapshot-threshold`:
//! 9,000 writes of 1 KiB with a 1 MiB threshold leave (and at no point hold) more than about
//! twice the threshold of segment files, measured from the files' metadata while it runs and
//! with `du` at the end, and `raft_log_bytes` on `/metrics` agrees with the files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{free_addresses, request, request_cluster, wait_for_leader};
use hyper::{Method, StatusCode};
use raft_storage_fs::FsOptions;
use tokio::process::Command;

/// `--snapshot-threshold`, in bytes (the flag takes bytes).
const THRESHOLD: u64 = 1 << 20;
const WRITES: usize = 9_000;
const VALUE_BYTES: usize = 1024;
/// Concurrent clients, so group commit keeps the run short in a debug build.
const WRITERS: usize = 16;

/// The segment size raft-kv chooses for `THRESHOLD`.
fn segment_bytes() -> u64 {
    FsOptions::for_snapshot_threshold(THRESHOLD).segment_bytes
}

/// What the log's files hold on disk: the segments and the segment prepared ahead.
#[derive(Clone, Copy, Debug, Default)]
struct LogFiles {
    /// Segment files.
    segments: usize,
    /// Their lengths.
    segment_len: u64,
    /// The length of the segment prepared ahead (zero when there is none).
    prepared_len: u64,
    /// Blocks allocated to all of them, in bytes (what `du` counts).
    allocated: u64,
}

impl LogFiles {
    fn len(&self) -> u64 {
        self.segment_len + self.prepared_len
    }
}

fn is_log_file(name: &str) -> bool {
    name.ends_with(".seg") || name == "segment.prealloc"
}

/// The log files in `dir`, from their metadata. A file removed meanwhile (by compaction) is
/// skipped.
fn log_files(dir: &Path) -> LogFiles {
    use std::os::unix::fs::MetadataExt;

    let mut files = LogFiles::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_log_file(&name) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if name.ends_with(".seg") {
            files.segments += 1;
            files.segment_len += metadata.len();
        } else {
            files.prepared_len += metadata.len();
        }
        files.allocated += metadata.blocks() * 512;
    }
    files
}

/// `du -B1 -c` over the log files of `dir`: the bytes allocated to them. The node may compact
/// a segment away between the listing and `du`'s look at it: then list again.
fn du_log_files(dir: &Path) -> u64 {
    let mut attempts = 0;
    let output = loop {
        let paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|entry| is_log_file(&entry.file_name().to_string_lossy()))
            .map(|entry| entry.path())
            .collect();
        let output = std::process::Command::new("du")
            .arg("-B1")
            .arg("-c")
            .args(&paths)
            .output()
            .expect("du runs");
        attempts += 1;
        if output.status.success() || attempts == 10 {
            break output;
        }
    };
    assert!(output.status.success(), "du failed: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let total = text.lines().last().expect("du prints a total");
    total
        .split_whitespace()
        .next()
        .and_then(|bytes| bytes.parse().ok())
        .expect("du's total is a number")
}

/// `raft_log_bytes` of node 1 on the node's `/metrics`.
async fn raft_log_bytes(address: &str) -> u64 {
    let answer = request(address, Method::GET, "/metrics", &[], Bytes::new())
        .await
        .expect("/metrics answers");
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.text();
    let line = text
        .lines()
        .find(|line| line.starts_with("raft_log_bytes{") && line.contains("node=\"1\""))
        .unwrap_or_else(|| panic!("no raft_log_bytes in /metrics:\n{text}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    value as u64
}

/// Samples the log files in `data` every 20 ms until `stop`: the largest (by length), and the
/// most bytes allocated to them.
async fn watch_peak(data: PathBuf, stop: Arc<AtomicBool>) -> (LogFiles, u64) {
    let mut peak = LogFiles::default();
    let mut most_allocated = 0;
    while !stop.load(Ordering::Relaxed) {
        let files = log_files(&data);
        if files.len() > peak.len() {
            peak = files;
        }
        most_allocated = most_allocated.max(files.allocated);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (peak, most_allocated)
}

/// Once the node is quiet, `raft_log_bytes` counts the record bytes in the segment files: no
/// more than their lengths, and less only by the zero-filled space preallocated in the segment
/// being written and the one prepared ahead (two segments at most). Retries for up to 5 s
/// while a last snapshot and compaction finish.
async fn metric_agrees_with_files(address: &str, data: &Path, segment: u64) {
    let mut last = None;
    for _ in 0..50 {
        let before = raft_log_bytes(address).await;
        let files = log_files(data);
        let after = raft_log_bytes(address).await;
        if before == after && before <= files.segment_len && files.len() <= before + 2 * segment {
            eprintln!("raft_log_bytes {before} B; log files {files:?}");
            return;
        }
        last = Some((before, files, after));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("raft_log_bytes disagrees with the files (before, files, after): {last:?}");
}

/// Writes keys `key-{i}` for every `i < WRITES` with `i % WRITERS == writer`.
async fn write(address: String, writer: usize) {
    let value = vec![b'v'; VALUE_BYTES];
    for i in (writer..WRITES).step_by(WRITERS) {
        let answer = request_cluster(
            std::slice::from_ref(&address),
            Method::PUT,
            &format!("/kv/key-{i}"),
            &[],
            &value,
        )
        .await
        .expect("a put is answered");
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_on_disk_stays_within_twice_the_snapshot_threshold_and_metrics_match_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node-1");
    let address = free_addresses(1).remove(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_raft-kv"))
        .arg("serve")
        .arg("--id")
        .arg("1")
        .arg("--listen")
        .arg(&address)
        .arg("--data-dir")
        .arg(&data)
        .arg("--snapshot-threshold")
        .arg(THRESHOLD.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("raft-kv starts");
    wait_for_leader(std::slice::from_ref(&address)).await;

    // Watch the files while the writes go on: the bound holds throughout, not only at the end.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(watch_peak(data.clone(), Arc::clone(&stop)));
    #[allow(clippy::disallowed_methods)] // the test's own wall-clock figure, for the report
    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write(address.clone(), writer)))
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let writing = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (peak, most_allocated) = sampler.await.unwrap();

    let segment = segment_bytes();
    let bound = 2 * THRESHOLD + segment;
    let written = (WRITES * VALUE_BYTES) as u64;
    eprintln!(
        "{WRITES} writes of {VALUE_BYTES} B in {writing:?}; segments of {segment} B; \
         peak log files {peak:?} (allocated at most {most_allocated} B); bound {bound} B"
    );
    assert!(
        written > 8 * THRESHOLD,
        "the writes add up to far more than the threshold"
    );
    assert!(
        peak.len() <= bound,
        "at most {bound} bytes of log files, found {peak:?}"
    );
    assert!(
        most_allocated <= bound,
        "at most {bound} bytes allocated to log files, found {most_allocated}"
    );

    metric_agrees_with_files(&address, &data, segment).await;
    let du = du_log_files(&data);
    eprintln!("du -B1 -c of the log files: {du} B");
    assert!(
        du <= bound,
        "du counts {du} bytes of log files, over {bound}"
    );
    assert!(
        raft_log_bytes(&address).await <= du.max(log_files(&data).segment_len),
        "the metric never exceeds what the files hold"
    );

    // The compacted log still serves every value (from the snapshot and the log).
    for key in ["key-0", "key-4500", &format!("key-{}", WRITES - 1)] {
        let answer = request_cluster(
            std::slice::from_ref(&address),
            Method::GET,
            &format!("/kv/{key}"),
            &[],
            b"",
        )
        .await
        .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{key}");
        assert_eq!(answer.body.len(), VALUE_BYTES, "{key}");
    }
    child.kill().await.unwrap();
}
