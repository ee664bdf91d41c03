//! [`SessionStateMachine`]: the dedup layer between the log and the application's state machine.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use metrics::{Counter, Gauge};
use raft_core::{
    Entry, Error, LogIndex, NodeId, Payload, SnapshotReader, SnapshotSource, StateMachine,
};

use crate::envelope::{Envelope, Outcome};
use crate::session::{Admission, ClientId, RequestId, SessionConfig, SessionTable};
use crate::snapshot::{InnerReader, WrappedSource, read_parts};

/// A [`StateMachine`] that applies each client request at most once and hands the application's
/// state machine only what it must apply.
///
/// It reads the wrapper's envelopes from the log: a session request is checked against the
/// client's session first (a retry is answered with the stored result, an old request with an
/// error), a plain command goes straight through, a clear-client entry forgets a session. The
/// application's state machine sees every index in order, as raft-core promises: entries the
/// wrapper answered itself reach `commit` as [`Payload::Blank`] (like a leader's no-op), the
/// others with the bare command. `pre_commit` runs before the dedup decision, so it sees the
/// bare command of every request, retries included: an application must apply only what
/// `commit` hands it (`rollback` sees what `pre_commit` saw). Its snapshots carry the session table after the application's data,
/// and `restore` gives the application a reader of its own part only.
///
/// [`Replica`](crate::Replica) builds one; use it directly only to start the node yourself. Do
/// not append to such a node other than through the wrapper: foreign entries are answered with
/// [`Error::Malformed`](crate::Error::Malformed) and not applied.
pub struct SessionStateMachine {
    inner: Arc<dyn StateMachine>,
    table: Mutex<SessionTable>,
    config: SessionConfig,
    metrics: SessionMetrics,
}

impl std::fmt::Debug for SessionStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStateMachine")
            .field("config", &self.config)
            .field("sessions", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// What the commit of one entry does, decided before the application runs.
enum Plan {
    /// The application's own answer (a no-op entry).
    Pass,
    /// A plain command: the application's answer, as applied.
    Plain,
    /// A new session request: the application's answer, recorded in the session.
    Request(ClientId),
    /// A retry of a request applied earlier in this batch, at that position.
    SameAs(usize),
    /// Answered by the wrapper.
    Answer(Outcome),
}

impl SessionStateMachine {
    /// Wraps `inner` with a session table bounded by `config` (which must be the same on every
    /// node). `node` labels the metrics.
    ///
    /// # Errors
    /// [`Error::Config`] if `config` is out of range.
    pub fn new(
        node: NodeId,
        inner: Arc<dyn StateMachine>,
        config: SessionConfig,
    ) -> Result<SessionStateMachine, Error> {
        config.validate().map_err(Error::Config)?;
        Ok(SessionStateMachine {
            inner,
            table: Mutex::new(SessionTable::new(config)),
            config,
            metrics: SessionMetrics::new(node),
        })
    }

    /// How many client sessions are tracked now.
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.lock().len()
    }

    /// The latest applied request of `client`, if it has a session.
    #[must_use]
    pub fn latest_request(&self, client: ClientId) -> Option<RequestId> {
        self.lock().latest(client)
    }

    fn lock(&self) -> MutexGuard<'_, SessionTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entries as the application sees them before commit: bare commands, and blanks for
    /// what is not a command.
    fn unwrapped(entries: &[Entry]) -> Vec<Entry> {
        entries
            .iter()
            .map(|entry| {
                let payload = match &entry.payload {
                    Payload::Command(bytes) => match Envelope::decode(bytes) {
                        Ok(Envelope::Request { command, .. } | Envelope::Plain(command)) => {
                            Payload::Command(command)
                        }
                        Ok(Envelope::Clear(_)) | Err(_) => Payload::Blank,
                    },
                    Payload::Blank => Payload::Blank,
                    Payload::Membership(membership) => Payload::Membership(membership.clone()),
                };
                Entry {
                    log_id: entry.log_id,
                    payload,
                }
            })
            .collect()
    }

    /// Decides every entry of a batch against the session table; returns the plans and the
    /// entries to hand the application.
    fn plan(&self, entries: &[Entry]) -> (Vec<Plan>, Vec<Entry>) {
        let mut table = self.lock();
        let evicted_before = table.evicted();
        let mut plans = Vec::with_capacity(entries.len());
        let mut forward = Vec::with_capacity(entries.len());
        // Decided exactly as if the entries came one by one: the table alone says what a
        // request is, so batch boundaries (which differ between replicas and runs) change
        // nothing. Only the result of a request admitted in this batch is not known yet.
        let first = entries.first().map_or(LogIndex::ZERO, |e| e.log_id.index);
        for entry in entries {
            let index = entry.log_id.index;
            let (plan, payload) = match &entry.payload {
                Payload::Blank => (Plan::Pass, Payload::Blank),
                Payload::Membership(membership) => {
                    (Plan::Pass, Payload::Membership(membership.clone()))
                }
                Payload::Command(bytes) => match Envelope::decode(bytes) {
                    Ok(Envelope::Plain(command)) => (Plan::Plain, Payload::Command(command)),
                    Ok(Envelope::Request {
                        client,
                        request,
                        command,
                    }) => match table.admit(client, request, index) {
                        Admission::Apply => (Plan::Request(client), Payload::Command(command)),
                        // A retry of a request admitted earlier in this batch: its result
                        // comes from the application below.
                        Admission::Duplicate {
                            index: original, ..
                        } if original >= first => {
                            self.metrics.duplicates.increment(1);
                            let position = entries
                                .iter()
                                .position(|e| e.log_id.index == original)
                                .unwrap_or_default();
                            (Plan::SameAs(position), Payload::Blank)
                        }
                        Admission::Duplicate { index, result } => {
                            self.metrics.duplicates.increment(1);
                            let outcome = Outcome::Duplicate { index, result };
                            (Plan::Answer(outcome), Payload::Blank)
                        }
                        Admission::DuplicateNotKept { index } => {
                            self.metrics.duplicates.increment(1);
                            (Plan::Answer(Outcome::NotKept { index }), Payload::Blank)
                        }
                        Admission::Stale { latest } => {
                            self.metrics.stale.increment(1);
                            (Plan::Answer(Outcome::Stale { latest }), Payload::Blank)
                        }
                    },
                    Ok(Envelope::Clear(client)) => {
                        table.clear(client);
                        (Plan::Answer(Outcome::Cleared), Payload::Blank)
                    }
                    Err(reason) => {
                        tracing::warn!(%index, %reason, "committed entry is not a raft-wrapper envelope; not applied");
                        (Plan::Answer(Outcome::Malformed(reason)), Payload::Blank)
                    }
                },
            };
            plans.push(plan);
            forward.push(Entry {
                log_id: entry.log_id,
                payload,
            });
        }
        self.metrics
            .evicted
            .increment(table.evicted().saturating_sub(evicted_before));
        (plans, forward)
    }

    fn publish_gauges(&self, table: &SessionTable) {
        self.metrics.sessions.set(table.len() as f64);
    }
}

#[async_trait]
impl StateMachine for SessionStateMachine {
    async fn pre_commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        self.inner.pre_commit(&Self::unwrapped(entries)).await
    }

    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let (plans, forward) = self.plan(entries);
        let mut results = self.inner.commit(&forward).await?;
        if results.len() != entries.len() {
            // As raft-core does for a state machine that breaks the one-result-per-entry rule.
            tracing::warn!(
                results = results.len(),
                entries = entries.len(),
                "the application's state machine returned the wrong number of results; padding with empty ones"
            );
            results.resize(entries.len(), Bytes::new());
        }
        let mut table = self.lock();
        let outcomes = plans
            .into_iter()
            .enumerate()
            .map(|(position, plan)| match plan {
                Plan::Pass => Bytes::new(),
                Plan::Plain => Outcome::Applied(results[position].clone()).encode(),
                Plan::Request(client) => {
                    let result = results[position].clone();
                    table.record(client, entries[position].log_id.index, result.clone());
                    Outcome::Applied(result).encode()
                }
                // As a retry in a later batch would be answered (see `SessionTable::record`).
                Plan::SameAs(first) if !table.keeps(&results[first]) => Outcome::NotKept {
                    index: entries[first].log_id.index,
                }
                .encode(),
                Plan::SameAs(first) => Outcome::Duplicate {
                    index: entries[first].log_id.index,
                    result: results[first].clone(),
                }
                .encode(),
                Plan::Answer(outcome) => outcome.encode(),
            })
            .collect();
        self.publish_gauges(&table);
        Ok(outcomes)
    }

    async fn rollback(&self, entries: &[Entry]) -> Result<(), Error> {
        self.inner.rollback(&Self::unwrapped(entries)).await
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        // The table is encoded here, on the apply task (it is bounded by `SessionConfig`: a few
        // milliseconds for tens of thousands of sessions); the application's data is produced
        // later by its own source.
        let table = self.lock().encode().map_err(Error::state_machine)?;
        let inner = self.inner.snapshot().await?;
        Ok(Box::new(WrappedSource::new(inner, Bytes::from(table))))
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let meta = snapshot.meta().clone();
        let (trailer, image) = read_parts(snapshot.as_ref())
            .await
            .map_err(|reason| Error::state_machine(format!("{meta}: {reason}")))?;
        let table = SessionTable::decode(self.config, &image)
            .map_err(|reason| Error::state_machine(format!("{meta}: {reason}")))?;
        self.inner
            .restore(Arc::new(InnerReader::new(snapshot, &trailer)))
            .await?;
        let mut current = self.lock();
        *current = table;
        self.publish_gauges(&current);
        Ok(())
    }
}

/// The wrapper's metrics, labelled by node.
struct SessionMetrics {
    duplicates: Counter,
    stale: Counter,
    evicted: Counter,
    sessions: Gauge,
}

impl SessionMetrics {
    fn new(node: NodeId) -> SessionMetrics {
        let node = node.0.to_string();
        SessionMetrics {
            duplicates: metrics::counter!("raft_wrapper_duplicates_total", "node" => node.clone()),
            stale: metrics::counter!("raft_wrapper_stale_requests_total", "node" => node.clone()),
            evicted: metrics::counter!("raft_wrapper_sessions_evicted_total", "node" => node.clone()),
            sessions: metrics::gauge!("raft_wrapper_sessions", "node" => node),
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_core::snapshot::read_to_vec;
    use raft_core::testing::{MemKv, snapshots};
    use raft_core::{LogId, LogIndex};

    use super::*;

    fn layer(kv: &MemKv, config: SessionConfig) -> SessionStateMachine {
        SessionStateMachine::new(NodeId(1), kv.clone().into_arc(), config).unwrap()
    }

    fn entry(index: u64, envelope: &Envelope) -> Entry {
        Entry {
            log_id: LogId::new(1, index),
            payload: Payload::Command(envelope.encode()),
        }
    }

    fn request(client: u64, request: u64, command: Bytes) -> Envelope {
        Envelope::Request {
            client: ClientId(client),
            request: RequestId(request),
            command,
        }
    }

    fn outcomes(results: &[Bytes]) -> Vec<Outcome> {
        results
            .iter()
            .map(|r| Outcome::decode(r).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn retry_in_the_same_batch_gets_the_first_ones_result() {
        let kv = MemKv::new();
        let sm = layer(&kv, SessionConfig::default());
        let put = MemKv::put("k", "v1");
        let batch = [
            entry(1, &request(7, 1, put.clone())),
            entry(2, &request(7, 1, put.clone())),
            entry(3, &request(7, 2, MemKv::put("k", "v2"))),
        ];
        let results = outcomes(&sm.commit(&batch).await.unwrap());
        // MemKv answers a put with the previous value.
        assert_eq!(results[0], Outcome::Applied(Bytes::new()));
        assert_eq!(
            results[1],
            Outcome::Duplicate {
                index: LogIndex(1),
                result: Bytes::new()
            }
        );
        assert_eq!(results[2], Outcome::Applied(Bytes::from_static(b"v1")));
        // The application saw every index in order, the retry as a no-op.
        let applied: Vec<u64> = kv.applied().iter().map(|(i, _)| i.0).collect();
        assert_eq!(applied, [1, 3]);
        assert_eq!(kv.last_applied(), LogIndex(3));
        assert!(kv.out_of_order_commits().is_empty());
        // And the stored result is the first one's, for a later retry.
        let later = outcomes(&sm.commit(&[entry(4, &request(7, 1, put))]).await.unwrap());
        assert_eq!(
            later[0],
            Outcome::Duplicate {
                index: LogIndex(1),
                result: Bytes::new()
            }
        );
    }

    #[tokio::test]
    async fn foreign_and_blank_entries_apply_nothing() {
        let kv = MemKv::new();
        let sm = layer(&kv, SessionConfig::default());
        let batch = [
            Entry {
                log_id: LogId::new(1, 1),
                payload: Payload::Blank,
            },
            Entry {
                log_id: LogId::new(1, 2),
                payload: Payload::Command(MemKv::put("raw", "x")),
            },
        ];
        let results = sm.commit(&batch).await.unwrap();
        assert!(results[0].is_empty());
        assert!(matches!(
            Outcome::decode(&results[1]).unwrap(),
            Outcome::Malformed(_)
        ));
        assert_eq!(kv.get(b"raw"), None);
        assert_eq!(kv.last_applied(), LogIndex(2));
    }

    #[tokio::test]
    async fn snapshot_carries_the_table_and_the_application_state() {
        let kv = MemKv::new();
        let sm = layer(&kv, SessionConfig::default());
        let batch = [
            entry(1, &request(7, 1, MemKv::put("a", "1"))),
            entry(2, &Envelope::Plain(MemKv::put("b", "2"))),
            entry(3, &request(8, 4, MemKv::put("c", "3"))),
        ];
        sm.commit(&batch).await.unwrap();
        let mut source = sm.snapshot().await.unwrap();
        let data = snapshots::drain(source.as_mut()).await.unwrap();
        let reader = snapshots::reader(LogId::new(1, 3), data);
        assert_eq!(
            read_to_vec(reader.as_ref(), 7).await.unwrap().len() as u64,
            reader.meta().size
        );

        let restored_kv = MemKv::new();
        let restored = layer(&restored_kv, SessionConfig::default());
        restored.restore(reader).await.unwrap();
        assert_eq!(restored_kv.dump(), kv.dump());
        assert_eq!(restored.latest_request(ClientId(7)), Some(RequestId(1)));
        assert_eq!(restored.latest_request(ClientId(8)), Some(RequestId(4)));
        let retry = outcomes(
            &restored
                .commit(&[entry(4, &request(8, 4, MemKv::put("c", "3")))])
                .await
                .unwrap(),
        );
        assert!(matches!(
            retry[0],
            Outcome::Duplicate {
                index: LogIndex(3),
                ..
            }
        ));
    }

    #[tokio::test]
    async fn restore_of_a_foreign_snapshot_fails_with_a_reason() {
        let sm = layer(&MemKv::new(), SessionConfig::default());
        let data = Bytes::from_static(b"not a wrapper snapshot at all, just bytes");
        let error = sm
            .restore(snapshots::reader(LogId::new(1, 3), data))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("trailer"), "{error}");
    }

    #[tokio::test]
    async fn pre_commit_and_rollback_see_bare_commands() {
        let kv = MemKv::new();
        let sm = layer(&kv, SessionConfig::default());
        let put = MemKv::put("a", "1");
        let batch = [
            entry(1, &request(7, 1, put.clone())),
            entry(2, &Envelope::Clear(ClientId(7))),
        ];
        // MemKv's speculative answer is the command itself.
        let answers = sm.pre_commit(&batch).await.unwrap();
        assert_eq!(answers, [put, Bytes::new()]);
        sm.rollback(&batch).await.unwrap();
        assert_eq!(kv.rolled_back(), [LogIndex(1), LogIndex(2)]);
    }

    /// One log entry of the batch-boundary property: a request or a clear.
    #[derive(Clone, Debug)]
    enum Op {
        Request(u64, u64),
        Clear(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..3u64, 1..5u64).prop_map(|(c, r)| Op::Request(c, r)),
            1 => (0..3u64).prop_map(Op::Clear),
        ]
    }

    /// Applies `ops` in batches cut at `cuts`; returns the outcomes, the application's state
    /// and the table's snapshot image.
    fn run(
        ops: &[Op],
        cuts: &[usize],
        config: SessionConfig,
    ) -> (Vec<Bytes>, Vec<(Bytes, Bytes)>, Vec<u8>) {
        let entries: Vec<Entry> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let index = i as u64 + 1;
                let envelope = match op {
                    // The application records which entry applied for the client.
                    Op::Request(c, r) => {
                        request(*c, *r, MemKv::put(format!("c{c}"), format!("{index}")))
                    }
                    Op::Clear(c) => Envelope::Clear(ClientId(*c)),
                };
                entry(index, &envelope)
            })
            .collect();
        let kv = MemKv::new();
        let sm = layer(&kv, config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut outcomes = Vec::new();
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (entries.len() + 1)).collect();
        bounds.push(entries.len());
        bounds.sort_unstable();
        for end in bounds {
            if end > start {
                outcomes.extend(runtime.block_on(sm.commit(&entries[start..end])).unwrap());
                start = end;
            }
        }
        let image = sm.lock().encode().unwrap();
        (outcomes, kv.dump(), image)
    }

    proptest::proptest! {
        #[test]
        fn batch_boundaries_change_nothing(
            ops in proptest::collection::vec(op(), 1..40),
            cuts in proptest::collection::vec(0..64usize, 0..8),
            max_clients in 1..3usize,
            results_per_client in 1..3usize,
            max_result_bytes in 0..4usize,
        ) {
            let config = SessionConfig { max_clients, results_per_client, max_result_bytes };
            let one_by_one: Vec<usize> = (1..ops.len()).collect();
            let reference = run(&ops, &one_by_one, config);
            proptest::prop_assert_eq!(&run(&ops, &[], config), &reference);
            proptest::prop_assert_eq!(&run(&ops, &cuts, config), &reference);
        }
    }

    #[tokio::test]
    async fn retry_after_a_clear_in_the_same_batch_is_a_new_request() {
        let kv = MemKv::new();
        let sm = layer(&kv, SessionConfig::default());
        let put = MemKv::put("k", "v");
        let batch = [
            entry(1, &request(7, 1, put.clone())),
            entry(2, &Envelope::Clear(ClientId(7))),
            entry(3, &request(7, 1, put)),
        ];
        let results = outcomes(&sm.commit(&batch).await.unwrap());
        assert!(matches!(results[2], Outcome::Applied(_)), "{results:?}");
        assert_eq!(kv.applied().len(), 2);
    }
}
