//! `serve --join URL`: a new node asks an existing member to add it as a learner, following
//! redirects to the leader and retrying until the cluster answers. With TLS the requests go
//! over HTTPS, to a member that must prove it is a node of the cluster (see [`JoinTls`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use raft_core::NodeId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use crate::tls::JoinTls;

/// The file in a data directory that marks a node started with `--join`: later starts join
/// again instead of bootstrapping a cluster of their own.
pub const JOINED_MARKER: &str = "joined";

/// The most redirects followed in one attempt.
const MAX_REDIRECTS: usize = 5;

/// What one attempt to join got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinAnswer {
    /// Added (or a member already).
    Added,
    /// Refused for good (bad secret, invalid request): the message says why.
    Refused(String),
    /// Try again later (no leader, a change in progress, unreachable).
    Retry(String),
}

/// Asks the cluster at `url` (`http://host:port`, `https://host:port` or `host:port`) to add
/// node `id` at `address` as a learner, until it is added or refused for good. Returns the
/// refusal. `token` goes as `Authorization: Bearer <token>` (the API token, or the cluster
/// secret); with `tls` every request is HTTPS.
pub async fn join(
    url: &str,
    id: NodeId,
    address: &str,
    token: Option<&str>,
    tls: Option<&JoinTls>,
) -> Result<(), String> {
    let body = serde_json::json!({ "id": id.0, "address": address }).to_string();
    let mut delay = Duration::from_millis(200);
    let asking = Asking { token, tls };
    loop {
        match attempt(url, &body, asking).await {
            JoinAnswer::Added => {
                tracing::info!(%url, "added to the cluster as a learner");
                return Ok(());
            }
            JoinAnswer::Refused(reason) => return Err(reason),
            JoinAnswer::Retry(reason) => {
                tracing::info!(%url, %reason, "joining: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How the requests are made: the bearer token, and TLS.
#[derive(Clone, Copy)]
struct Asking<'a> {
    token: Option<&'a str>,
    tls: Option<&'a JoinTls>,
}

async fn attempt(url: &str, body: &str, asking: Asking<'_>) -> JoinAnswer {
    let mut target = authority(url).to_owned();
    for _ in 0..MAX_REDIRECTS {
        let answer = post(&target, "/admin/members/learners", body, asking).await;
        let (status, location, text) = match answer {
            Ok(answer) => answer,
            Err(reason) => return JoinAnswer::Retry(format!("{target}: {reason}")),
        };
        match status {
            StatusCode::OK => return JoinAnswer::Added,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => match location {
                Some(location) => target = authority(&location).to_owned(),
                None => return JoinAnswer::Retry("a redirect without Location".to_owned()),
            },
            StatusCode::UNPROCESSABLE_ENTITY if text.contains("a member already") => {
                return JoinAnswer::Added;
            }
            StatusCode::UNAUTHORIZED
            | StatusCode::BAD_REQUEST
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED => {
                return JoinAnswer::Refused(format!("{target} answered {status}: {text}"));
            }
            _ => return JoinAnswer::Retry(format!("{target} answered {status}: {text}")),
        }
    }
    JoinAnswer::Retry("too many redirects".to_owned())
}

/// `host:port` of a URL or address (`http://host:port/path` gives `host:port`).
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// An answer: status, `Location`, and the body as text.
type Answer = (StatusCode, Option<String>, String);

async fn post(address: &str, path: &str, body: &str, asking: Asking<'_>) -> Result<Answer, String> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, address)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = asking.token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| format!("bad request: {e}"))?;
    let exchange = async {
        match asking.tls {
            None => {
                let stream = TcpStream::connect(address)
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                send(stream, request).await
            }
            Some(tls) => {
                let id = member_id(tls, address).await?;
                send(tls.connect_to_node(address, id).await?, request).await
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(70), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_owned()))
}

/// The id of the member at `address`, from its `/status` (see [`JoinTls`]).
async fn member_id(tls: &JoinTls, address: &str) -> Result<u64, String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri("/status")
        .header(header::HOST, address)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("bad request: {e}"))?;
    let stream = tls.connect_unverified(address).await?;
    let (status, _, text) = send(stream, request).await?;
    if status != StatusCode::OK {
        return Err(format!("/status answered {status}: {text}"));
    }
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|doc| doc.get("id").and_then(serde_json::Value::as_u64))
        .ok_or_else(|| format!("/status gave no node id: {text}"))
}

/// One HTTP/1.1 request on `stream`.
async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((
        status,
        location,
        String::from_utf8_lossy(&text).trim().to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_come_from_urls_and_addresses() {
        assert_eq!(authority("http://127.0.0.1:7001"), "127.0.0.1:7001");
        assert_eq!(authority("http://h:1/admin/members/learners"), "h:1");
        assert_eq!(authority("h:2"), "h:2");
        assert_eq!(authority("https://h:3/x"), "h:3");
    }
}
