//! The `fslog` workload: the file log alone. W writers each append one entry and wait until
//! the store reports it durable, then append the next; what is measured is group commit (one
//! fdatasync for many appends) and the durable latency one append sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use raft_core::{Entry, LogId, LogIndex, LogStore, Payload, Term};
use raft_storage_fs::{FsLogStore, FsOptions};
use tokio::sync::Mutex;

use crate::options::Options;
use crate::report::{Report, StorageFigures};

/// Runs the workload and measures it, with the log's fsync figures.
pub(crate) async fn run(options: &Options) -> Result<Report, String> {
    let dir = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .map_err(|err| format!("cannot create a data directory: {err}"))?;
    let path = dir.path().to_path_buf();
    let store = tokio::task::spawn_blocking(move || FsLogStore::open(path, FsOptions::default()))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())?;
    let payload = Bytes::from(vec![0x5a; options.payload()]);
    // Appends must be consecutive: writers take turns to pick an index and append it.
    let next = Arc::new(Mutex::new(1u64));
    let done = Arc::new(AtomicU64::new(0));
    let budget = options.secs.map_or(options.ops, |_| u64::MAX);
    #[allow(clippy::disallowed_methods)] // a benchmark measures real time
    let started = std::time::Instant::now();
    let deadline = options
        .secs
        .map(|secs| started + Duration::from_secs_f64(secs));
    let before = store.stats();
    let mut writers = Vec::new();
    for _ in 0..options.clients().max(1) {
        let (store, next, done, payload) = (
            store.clone(),
            Arc::clone(&next),
            Arc::clone(&done),
            payload.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut durable = store.durable();
            loop {
                #[allow(clippy::disallowed_methods)]
                let now = std::time::Instant::now();
                if deadline.is_some_and(|d| now >= d)
                    || done.fetch_add(1, Ordering::Relaxed) >= budget
                {
                    return Ok::<_, String>(latencies);
                }
                let index = {
                    let mut next = next.lock().await;
                    let index = *next;
                    let entry = Entry {
                        log_id: LogId {
                            term: Term(1),
                            index: LogIndex(index),
                        },
                        payload: Payload::Command(payload.clone()),
                    };
                    store
                        .append(&[entry])
                        .await
                        .map_err(|err| err.to_string())?;
                    *next += 1;
                    index
                };
                durable
                    .wait_for(|id| id.index.0 >= index)
                    .await
                    .map_err(|_| "the log failed".to_owned())?;
                latencies.push(u32::try_from(now.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }));
    }
    let mut latencies_us = Vec::new();
    for writer in writers {
        latencies_us.extend(writer.await.map_err(|err| err.to_string())??);
    }
    let elapsed = started.elapsed();
    let after = store.stats();
    store.close().await;
    Ok(Report {
        nodes: 1,
        ops: latencies_us.len() as u64,
        elapsed,
        latencies_us,
        storage: Some(StorageFigures {
            fsyncs: after.fsyncs - before.fsyncs,
            entries: after.entries_written - before.entries_written,
        }),
        ..Report::default()
    })
}
