//! The client API's per-request metrics, `raft_kv_requests_total{node, op, status}` and
//! `raft_kv_request_seconds{node, op}`, with their handles looked up once.
//!
//! A `metrics::counter!` with labels builds its key (the label strings included) and looks it
//! up in the recorder's registry at every call; per request that was a few allocations and two
//! hash lookups. Here each (op, status) handle is resolved at its first use and kept.

use std::sync::OnceLock;
use std::time::Duration;

use hyper::StatusCode;
use metrics::{Counter, Histogram};

/// The `op` label values, in the order of the handle tables.
pub(crate) const OPS: [&str; 7] = ["get", "put", "delete", "incr", "batch", "status", "invalid"];

/// The statuses the API answers with; any other is counted through the registry each time.
const STATUSES: [u16; 16] = [
    200, 204, 307, 400, 401, 403, 404, 405, 408, 409, 412, 413, 414, 500, 503, 504,
];

/// One node's per-request metric handles.
#[derive(Debug)]
pub(crate) struct RequestMetrics {
    node: String,
    seconds: [OnceLock<Histogram>; OPS.len()],
    requests: [[OnceLock<Counter>; STATUSES.len()]; OPS.len()],
}

impl RequestMetrics {
    /// The handles of the node labelled `node`, resolved as they are first used.
    pub(crate) fn new(node: String) -> RequestMetrics {
        RequestMetrics {
            node,
            seconds: std::array::from_fn(|_| OnceLock::new()),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Counts one request of `op` (one of [`OPS`]) answered with `status` after `elapsed`.
    pub(crate) fn record(&self, op: usize, status: StatusCode, elapsed: Duration) {
        let label = OPS[op];
        let code = status.as_u16();
        match STATUSES.iter().position(|known| *known == code) {
            Some(at) => self.requests[op][at]
                .get_or_init(|| self.counter(label, code))
                .increment(1),
            None => self.counter(label, code).increment(1),
        }
        self.seconds[op]
            .get_or_init(|| {
                metrics::histogram!("raft_kv_request_seconds", "node" => self.node.clone(), "op" => label)
            })
            .record(elapsed.as_secs_f64());
    }

    fn counter(&self, op: &'static str, status: u16) -> Counter {
        metrics::counter!("raft_kv_requests_total", "node" => self.node.clone(), "op" => op, "status" => status.to_string())
    }
}
