//! A proxy in front of one node that loses answers on request: it forwards a request, lets the
//! node apply it, then answers 504 or drops the answer (the client's stream fails), so the
//! client must retry a write whose first attempt was applied.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What happens to the answer of a request the proxy forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The client gets a 504 instead of the node's answer.
    GatewayTimeout,
    /// The client's request fails without an answer (stream reset / connection closed).
    Drop,
}

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// Faults for the next requests whose path contains `matching`, in order.
    faults: Arc<Mutex<VecDeque<Fault>>>,
    /// Requests forwarded to the node.
    forwarded: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// A proxy to the node at `upstream` (`http://host:port`) that applies its faults to
    /// requests whose path contains `matching`.
    pub async fn start(upstream: &str, matching: &'static str) -> Proxy {
        let upstream = upstream.strip_prefix("http://").unwrap().to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(VecDeque::new()));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let shared = (faults.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (upstream, faults, forwarded) =
                    (upstream.clone(), shared.0.clone(), shared.1.clone());
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (upstream, faults, forwarded) =
                        (upstream.clone(), faults.clone(), forwarded.clone());
                    async move {
                        let fault = if request.uri().path().contains(matching) {
                            faults.lock().unwrap().pop_front()
                        } else {
                            None
                        };
                        let answer = forward(&upstream, request).await;
                        forwarded.fetch_add(1, Ordering::SeqCst);
                        match fault {
                            None => Ok(answer),
                            Some(Fault::GatewayTimeout) => {
                                let mut lost = Response::new(Full::new(Bytes::from_static(
                                    b"proxy: the answer was lost\n",
                                )));
                                *lost.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                                Ok(lost)
                            }
                            Some(Fault::Drop) => Err(std::io::Error::other("answer dropped")),
                        }
                    }
                });
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            url,
            faults,
            forwarded,
            task,
        }
    }

    /// Queues faults for the next matching requests.
    pub fn inject(&self, faults: &[Fault]) {
        self.faults.lock().unwrap().extend(faults.iter().copied());
    }

    /// How many requests reached the node through the proxy.
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

/// Sends `request` to `upstream` over a new HTTP/1.1 connection; the node's answer.
async fn forward(upstream: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |pq| pq.as_str().to_owned());
    parts.uri = path.parse().unwrap();
    parts.version = hyper::Version::HTTP_11;
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_str(upstream).unwrap());
    let stream = TcpStream::connect(upstream).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, Full::new(body))
}
