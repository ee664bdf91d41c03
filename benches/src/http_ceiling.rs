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
    println!("http-ceiling: answering 204 on http://{address} for {secs} s");
    #[allow(clippy::disallowed_methods)] // the benchmark's wall clock
    let started = Instant::now();
    let requests = serve(server, tokio::time::sleep(serving_time)).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "bench: workload=http-ceiling listen={address} secs={elapsed:.3} requests={requests} workers={}",
        options.server_workers
    );
    Ok(())
}

/// Serves the no-op service on `server` until `stop` completes; returns the requests answered.
async fn serve(server: Server, stop: impl Future<Output = ()>) -> u64 {
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let counter = counter.clone();
        async move { Ok::<_, Infallible>(answer(request, &counter).await) }
    });
    server.serve(service, stop).await;
    answered.load(Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[tokio::test]
    async fn every_request_is_answered_204_and_counted() {
        let server = Server::bind("127.0.0.1:0", ServerConfig::default())
            .await
            .expect("bind");
        let address = server.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve(server, async {
            let _ = stopped.await;
        }));
        let mut stream = TcpStream::connect(address).await.expect("connect");
        for _ in 0..2 {
            stream
                .write_all(b"PUT /kv/a HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
                .await
                .expect("write");
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.expect("read");
                head.push(byte[0]);
            }
            assert!(
                head.starts_with(b"HTTP/1.1 204"),
                "{}",
                String::from_utf8_lossy(&head)
            );
        }
        drop(stream);
        stop.send(()).expect("stop");
        assert_eq!(serving.await.expect("served"), 2);
    }
}
