//! The `http-ceiling` workload: raft-http's [`Server`] (the accept loop, limits and hyper
//! settings every raft-kv node serves its clients with) in front of a service that does
//! nothing: it reads each request's body and answers `204 No Content`. No Raft, no disk, no
//! state machine. Point an outside load generator at `--listen` for `--secs` (30 by default):
//! the rate it reaches is the most any server on this stack can answer on this machine, the
//! ceiling against which raft-kv's own figures are read.
//!
//! ```text
//! raft-bench http-ceiling --listen 127.0.0.1:7200 --secs 30 &
//! h2load -n 200000 -c 8 -m 32 -d value -H ':method: PUT' http://127.0.0.1:7200/kv/bench
//! wrk -t2 -c256 -d10 http://127.0.0.1:7200/kv/bench
//! ```
//!
//! The report counts the requests answered; the load generator reports the rate.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use raft_http::{Server, ServerConfig};

use crate::options::Options;

/// Seconds served when `--secs` is not given.
const DEFAULT_SECS: f64 = 30.0;

pub(crate) async fn run(options: &Options) -> Result<(), String> {
    let secs = options.secs.unwrap_or(DEFAULT_SECS);
    let serving_time = Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|time| !time.is_zero())
        .ok_or_else(|| format!("--secs {secs}: the server needs a positive duration"))?;
    let server = Server::bind(&options.listen, ServerConfig::default())
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", options.listen))?;
    let address = server
        .local_addr()
        .map_err(|err| format!("cannot read the listening address: {err}"))?;
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let counter = counter.clone();
        async move { Ok::<_, Infallible>(answer(request, &counter).await) }
    });
    println!("http-ceiling: answering 204 on http://{address} for {secs} s");
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let started = Instant::now();
    server
        .serve(service, tokio::time::sleep(serving_time))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let requests = answered.load(Ordering::Relaxed);
    println!(
        "bench: workload=http-ceiling listen={address} secs={elapsed:.3} requests={requests} workers={}",
        options.server_workers
    );
    Ok(())
}

/// Reads the request's body (as a real route would) and answers `204`, or `400` when the body
/// could not be read.
async fn answer(request: Request<Incoming>, answered: &AtomicU64) -> Response<Empty<Bytes>> {
    let status = match request.into_body().collect().await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::BAD_REQUEST,
    };
    answered.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}
