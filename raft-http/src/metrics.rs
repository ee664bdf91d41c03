//! Metric names (part of the public interface, ARCHITECTURE.md, "Metrics": renamed only with a
//! migration note) and the Prometheus recorder the `/metrics` route renders.
//!
//! Everything goes through the `metrics` facade: without an installed recorder it costs
//! nothing. Server metrics are labelled by `route` (and `status`), client metrics by `peer`;
//! both also by `node` when the configuration names the local node.

use std::time::Duration;

use metrics::{Counter, Histogram, Label};
use metrics_exporter_prometheus::PrometheusBuilder;
use raft_core::NodeId;

use crate::error::Error;
use crate::routes::Rpc;

/// The handle of an installed Prometheus recorder (from `metrics-exporter-prometheus`),
/// re-exported so that callers of [`install_prometheus_recorder`] and
/// [`RaftService::with_metrics`](crate::RaftService::with_metrics) need not depend on that
/// crate at a matching version.
pub use metrics_exporter_prometheus::PrometheusHandle;

/// Counter: requests a server answered, by `route` and `status` (ARCHITECTURE.md, "Metrics").
pub const REQUESTS: &str = "raft_http_requests_total";
/// Counter: request body bytes a server received, by `route`.
pub const SERVER_RECEIVED_BYTES: &str = "raft_http_server_received_bytes_total";
/// Counter: response body bytes a server sent, by `route`.
pub const SERVER_SENT_BYTES: &str = "raft_http_server_sent_bytes_total";
/// Counter: connections a server closed at once because it had `max_connections` open.
pub const CONNECTIONS_REFUSED: &str = "raft_http_connections_refused_total";
/// Counter: connections a server with TLS closed because their TLS handshake failed or did not
/// finish within the header read timeout (a plaintext client, a certificate it refused).
pub const TLS_HANDSHAKE_FAILURES: &str = "raft_http_tls_handshake_failures_total";
/// Counter: request body bytes a client sent, by `peer`.
pub const CLIENT_SENT_BYTES: &str = "raft_http_client_sent_bytes_total";
/// Counter: response body bytes a client received, by `peer`.
pub const CLIENT_RECEIVED_BYTES: &str = "raft_http_client_received_bytes_total";
/// Counter: failed client requests, by `peer` and `kind` (the
/// [`RequestError::kind`](crate::RequestError::kind) names, plus `timeout`).
pub const CLIENT_ERRORS: &str = "raft_http_client_errors_total";
/// Counter: connections a client opened, by `peer`.
pub const CLIENT_CONNECTS: &str = "raft_http_client_connects_total";
/// Histogram: seconds from sending a request to decoding its answer, by `peer` and `route`
/// (successful requests only).
pub const RPC_LATENCY: &str = "raft_http_rpc_latency_seconds";

/// Builds the Prometheus recorder, installs it as the process's global `metrics` recorder and
/// returns the handle that [`RaftService::with_metrics`](crate::RaftService::with_metrics)
/// renders. RPC latencies are rendered as histograms with buckets from 50 µs to 5 s.
///
/// Only one recorder can be installed per process; call this once, at start-up.
///
/// # Errors
/// [`Error::Metrics`] when a recorder is already installed.
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, Error> {
    const BUCKETS: [f64; 12] = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(RPC_LATENCY.to_owned()),
            &BUCKETS,
        )
        .map_err(|e| Error::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| Error::Metrics(e.to_string()))
}

/// Spawns a task that runs the recorder's upkeep (draining histogram samples) every `every`,
/// for processes that are scraped rarely. It runs until the runtime stops or it is aborted.
pub fn spawn_upkeep(handle: PrometheusHandle, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    })
}

/// A `node` label, when the local node is known.
pub(crate) fn node_labels(node: Option<NodeId>) -> Vec<Label> {
    node.map(|id| Label::new("node", id.to_string()))
        .into_iter()
        .collect()
}

/// The counter of bytes the server sent on `route` (an entry stream counts each frame).
pub(crate) fn server_sent_bytes(node: &[Label], route: &'static str) -> Counter {
    let mut labels = node.to_vec();
    labels.push(Label::from_static_parts("route", route));
    metrics::counter!(SERVER_SENT_BYTES, labels)
}

/// Counts one answered request.
pub(crate) fn record_request(
    node: &[Label],
    route: &'static str,
    status: hyper::StatusCode,
    received: usize,
    sent: usize,
) {
    let with_route = |mut labels: Vec<Label>| {
        labels.push(Label::from_static_parts("route", route));
        labels
    };
    let mut labels = with_route(node.to_vec());
    labels.push(Label::new("status", status_label(status)));
    metrics::counter!(REQUESTS, labels).increment(1);
    if received > 0 {
        metrics::counter!(SERVER_RECEIVED_BYTES, with_route(node.to_vec()))
            .increment(received as u64);
    }
    metrics::counter!(SERVER_SENT_BYTES, with_route(node.to_vec())).increment(sent as u64);
}

fn status_label(status: hyper::StatusCode) -> String {
    status.as_str().to_owned()
}

/// The handles of one peer's client metrics, registered once.
#[derive(Debug)]
pub(crate) struct PeerMetrics {
    labels: Vec<Label>,
    pub(crate) sent_bytes: Counter,
    pub(crate) received_bytes: Counter,
    pub(crate) connects: Counter,
    /// By [`Rpc::index`].
    latency: [Histogram; Rpc::ALL.len()],
}

impl PeerMetrics {
    pub(crate) fn new(node: Option<NodeId>, peer: NodeId) -> PeerMetrics {
        let mut labels = node_labels(node);
        labels.push(Label::new("peer", peer.to_string()));
        let latency = |rpc: Rpc| {
            let mut labels = labels.clone();
            labels.push(Label::from_static_parts("route", rpc.label()));
            metrics::histogram!(RPC_LATENCY, labels)
        };
        PeerMetrics {
            sent_bytes: metrics::counter!(CLIENT_SENT_BYTES, labels.clone()),
            received_bytes: metrics::counter!(CLIENT_RECEIVED_BYTES, labels.clone()),
            connects: metrics::counter!(CLIENT_CONNECTS, labels.clone()),
            latency: Rpc::ALL.map(latency),
            labels,
        }
    }

    /// The latency histogram of an RPC route.
    pub(crate) fn latency(&self, rpc: Rpc) -> Option<&Histogram> {
        self.latency.get(rpc.index())
    }

    /// Counts one failed request.
    pub(crate) fn error(&self, kind: &'static str) {
        let mut labels = self.labels.clone();
        labels.push(Label::from_static_parts("kind", kind));
        metrics::counter!(CLIENT_ERRORS, labels).increment(1);
    }
}
