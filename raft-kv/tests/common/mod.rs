//! Test support: a small HTTP/1.1 client and cluster helpers.
// A broken helper should fail the test loudly, hence unwrap and expect.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub mod tls;

/// An answer: status, selected headers and body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub duplicate: Option<bool>,
    /// The `ETag` header, as sent (quoted).
    pub etag: Option<String>,
    /// The `raft-index` header.
    pub index: Option<u64>,
    /// The `raft-answer-lost` header.
    pub answer_lost: Option<u64>,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }

    /// Reads a response's status, the headers the tests look at, and its body (`None` if the
    /// body cannot be read).
    pub async fn read(response: hyper::Response<hyper::body::Incoming>) -> Option<Answer> {
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let duplicate = header("raft-duplicate").map(|v| v == "true");
        let etag = header("etag");
        let index = header("raft-index").and_then(|v| v.parse().ok());
        let answer_lost = header("raft-answer-lost").and_then(|v| v.parse().ok());
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some(Answer {
            status,
            location,
            duplicate,
            etag,
            index,
            answer_lost,
            body,
        })
    }

    /// The version in the `ETag` header (`"12"` is 12).
    pub fn version(&self) -> Option<u64> {
        self.etag.as_deref()?.trim_matches('"').parse().ok()
    }
}

/// One request on a fresh connection to `address` (`host:port`); `None` if the node cannot be
/// reached or does not answer within 10 s.
pub async fn request(
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Option<Answer> {
    request_within(
        Duration::from_secs(10),
        address,
        method,
        path,
        headers,
        body,
    )
    .await
}

/// [`request`] with its own timeout.
pub async fn request_within(
    timeout: Duration,
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Option<Answer> {
    let attempt = async {
        let stream = TcpStream::connect(address).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", address);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let response = sender
            .send_request(builder.body(Full::new(body)).unwrap())
            .await
            .ok()?;
        Answer::read(response).await
    };
    tokio::time::timeout(timeout, attempt).await.ok().flatten()
}

/// Sends a request to any of `addresses`, following 307s to the leader and retrying 503s,
/// unreachable nodes and timeouts (with the same headers, so exactly-once ids are reused) until
/// an answer that is not one of those, or `None` after ~30 s.
pub async fn request_cluster(
    addresses: &[String],
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<Answer> {
    let mut target = addresses[0].clone();
    for attempt in 0..300 {
        let answer = request(
            &target,
            method.clone(),
            path,
            headers,
            Bytes::copy_from_slice(body),
        )
        .await;
        match answer {
            Some(answer) if answer.status == StatusCode::TEMPORARY_REDIRECT => {
                let location = answer.location.clone().unwrap();
                let rest = location.strip_prefix("http://").unwrap();
                target = rest[..rest.find('/').unwrap()].to_owned();
            }
            Some(answer)
                if answer.status != StatusCode::SERVICE_UNAVAILABLE
                    && answer.status != StatusCode::GATEWAY_TIMEOUT =>
            {
                return Some(answer);
            }
            _ => {
                target = addresses[(attempt + 1) % addresses.len()].clone();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    None
}

/// The `/status` document of a node, if it answers.
pub async fn status(address: &str) -> Option<serde_json::Value> {
    let answer = request(address, Method::GET, "/status", &[], Bytes::new()).await?;
    serde_json::from_slice(&answer.body).ok()
}

/// Waits until one node among `addresses` leads and all of them name it; returns its address.
pub async fn wait_for_leader(addresses: &[String]) -> String {
    for _ in 0..300 {
        let mut leaders = Vec::new();
        for address in addresses {
            if let Some(doc) = status(address).await {
                leaders.push(doc["leader_url"].as_str().map(str::to_owned));
            } else {
                leaders.push(None);
            }
        }
        if let Some(Some(first)) = leaders.first()
            && leaders.iter().all(|l| l.as_deref() == Some(first.as_str()))
        {
            return first.strip_prefix("http://").unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader agreed on among {addresses:?}");
}

/// `n` loopback addresses with free ports (bound together, then released).
pub fn free_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// Session headers for exactly-once writes.
pub fn session(client: u64, request: u64) -> Vec<(&'static str, String)> {
    vec![
        ("client-id", client.to_string()),
        ("request-id", request.to_string()),
    ]
}

/// `Authorization: Bearer <secret>` when there is a secret.
pub fn bearer(secret: Option<&str>) -> Vec<(&'static str, String)> {
    secret
        .map(|s| vec![("authorization", format!("Bearer {s}"))])
        .unwrap_or_default()
}

/// The `GET /admin/members` document of a node, if it answers with one.
pub async fn members(address: &str, secret: Option<&str>) -> Option<serde_json::Value> {
    let answer = request(
        address,
        Method::GET,
        "/admin/members",
        &bearer(secret),
        Bytes::new(),
    )
    .await?;
    if answer.status != StatusCode::OK {
        return None;
    }
    serde_json::from_slice(&answer.body).ok()
}

/// The ids in a JSON array of numbers (`[]` if `value` is not one).
pub fn ids(value: &serde_json::Value) -> Vec<u64> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default()
}

/// `host:port` of a `Location` URL (`http://host:port/path`).
pub fn authority(location: &str) -> String {
    let rest = location.strip_prefix("http://").unwrap_or(location);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Starts an in-process cluster of `n` plaintext nodes on loopback (node `i` at
/// `addresses[i - 1]`, data under `dir`), with quick elections; `tweak` adjusts each node's
/// options. Returns the nodes and their addresses.
pub async fn start_cluster(
    dir: &std::path::Path,
    n: u64,
    tweak: impl Fn(&mut raft_kv::server::NodeOptions),
) -> (Vec<raft_kv::server::KvNode>, Vec<String>) {
    use raft_core::NodeId;
    use raft_kv::server::{KvNode, NodeOptions};
    let addresses = free_addresses(n as usize);
    let mut nodes = Vec::new();
    for id in 1..=n {
        let mut options = NodeOptions::new(
            NodeId(id),
            addresses[id as usize - 1].clone(),
            dir.join(format!("node-{id}")),
        );
        options.peers = (1..=n)
            .filter(|&peer| peer != id)
            .map(|peer| (NodeId(peer), addresses[peer as usize - 1].clone()))
            .collect();
        options.raft.raft.election_timeout_ms = 400;
        options.raft.raft.heartbeat_interval_ms = 50;
        tweak(&mut options);
        nodes.push(KvNode::start(options).await.unwrap());
    }
    (nodes, addresses)
}
