//! `serve --join URL`: a new node asks an existing member to add it as a learner, following
//! redirects to the leader and retrying until the cluster answers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use raft_core::NodeId;
use tokio::net::TcpStream;

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

/// Asks the cluster at `url` (`http://host:port` or `host:port`) to add node `id` at `address`
/// as a learner, until it is added or refused for good. Returns the refusal.
pub async fn join(
    url: &str,
    id: NodeId,
    address: &str,
    secret: Option<&str>,
) -> Result<(), String> {
    let body = serde_json::json!({ "id": id.0, "address": address }).to_string();
    let mut delay = Duration::from_millis(200);
    loop {
        match attempt(url, &body, secret).await {
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

async fn attempt(url: &str, body: &str, secret: Option<&str>) -> JoinAnswer {
    let mut target = authority(url).to_owned();
    for _ in 0..MAX_REDIRECTS {
        let answer = post(&target, "/admin/members/learners", body, secret).await;
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
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

async fn post(
    address: &str,
    path: &str,
    body: &str,
    secret: Option<&str>,
) -> Result<(StatusCode, Option<String>, String), String> {
    let exchange = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::HOST, address)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(secret) = secret {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {secret}"));
        }
        let request = builder
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| format!("bad request: {e}"))?;
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
    };
    tokio::time::timeout(Duration::from_secs(70), exchange)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_come_from_urls_and_addresses() {
        assert_eq!(authority("http://127.0.0.1:7001"), "127.0.0.1:7001");
        assert_eq!(authority("http://h:1/admin/members/learners"), "h:1");
        assert_eq!(authority("h:2"), "h:2");
    }
}
