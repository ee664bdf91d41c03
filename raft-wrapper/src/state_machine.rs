//! [`SessionStateMachine`]: the dedup layer between the log and the application's state machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use metrics::{Counter, Gauge};
use raft_core::{Entry, Error, NodeId, Payload, SnapshotReader, SnapshotSource, StateMachine};

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
/// wrapper answered itself reach it as [`Payload::Blank`] (like a leader's no-op), the others
/// with the bare command. Its snapshots carry the session table after the application's data,
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
        // Requests admitted in this batch, whose results the application has not produced yet.
        let mut admitted: HashMap<(ClientId, RequestId), usize> = HashMap::new();
        for (position, entry) in entries.iter().enumerate() {
            let index = entry.log_id.index;
            let (plan, payload) = match &entry.payload {
                Payload::Blank => (Plan::Pass, Payload::Blank),
                Payload::Command(bytes) => match Envelope::decode(bytes) {
                    Ok(Envelope::Plain(command)) => (Plan::Plain, Payload::Command(command)),
                    Ok(Envelope::Request {
                        client,
                        request,
                        command,
                    }) => {
                        if let Some(&first) = admitted.get(&(client, request)) {
                            // Refresh the session's activity like any retry.
                            let _ = table.admit(client, request, index);
                            self.metrics.duplicates.increment(1);
                            (Plan::SameAs(first), Payload::Blank)
                        } else {
                            match table.admit(client, request, index) {
                                Admission::Apply => {
                                    admitted.insert((client, request), position);
                                    (Plan::Request(client), Payload::Command(command))
                                }
                                Admission::Duplicate { index, result } => {
                                    self.metrics.duplicates.increment(1);
                                    let outcome = Outcome::Duplicate { index, result };
                                    (Plan::Answer(outcome), Payload::Blank)
                                }
                                Admission::Stale { latest } => {
                                    self.metrics.stale.increment(1);
                                    (Plan::Answer(Outcome::Stale { latest }), Payload::Blank)
                                }
                            }
                        }
                    }
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
        let results = self.inner.commit(&forward).await?;
        if results.len() != entries.len() {
            return Err(Error::state_machine(format!(
                "the application's state machine returned {} results for {} entries",
                results.len(),
                entries.len()
            )));
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
