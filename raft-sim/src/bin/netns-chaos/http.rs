//! A small blocking HTTP/1.1 client (one request per connection) and `/status`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::basics::Clock;

#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) duplicate: Option<bool>,
    pub(crate) body: String,
}

#[derive(Clone, Debug)]
pub(crate) enum HttpError {
    /// Nothing reached the server (no connection).
    NotSent,
    /// The request may have reached the server: no complete answer.
    Unknown,
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) body: &'a str,
    /// Client-Id and Request-Id.
    pub(crate) ids: Option<(u64, u64)>,
}

pub(crate) fn http(
    address: &str,
    request: Request<'_>,
    timeout: Duration,
    clock: Clock,
) -> Result<Reply, HttpError> {
    let started = clock.nanos();
    let socket: SocketAddr = address.parse().map_err(|_| HttpError::NotSent)?;
    let connect = timeout.min(Duration::from_millis(1000));
    let mut stream =
        TcpStream::connect_timeout(&socket, connect).map_err(|_| HttpError::NotSent)?;
    let unknown = |_: std::io::Error| HttpError::Unknown;
    stream.set_nodelay(true).map_err(unknown)?;
    stream.set_write_timeout(Some(timeout)).map_err(unknown)?;
    let mut text = format!(
        "{} {} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-length: {}\r\n",
        request.method,
        request.path,
        request.body.len()
    );
    if let Some((client, id)) = request.ids {
        let _ = write!(text, "client-id: {client}\r\nrequest-id: {id}\r\n");
    }
    text.push_str("\r\n");
    text.push_str(request.body);
    stream.write_all(text.as_bytes()).map_err(unknown)?;
    let deadline = started.saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(reply) = parse_reply(&received, false) {
            return Ok(reply);
        }
        let now = clock.nanos();
        if now >= deadline {
            return Err(HttpError::Unknown);
        }
        stream
            .set_read_timeout(Some(Duration::from_nanos((deadline - now).max(1_000_000))))
            .map_err(unknown)?;
        match stream.read(&mut chunk) {
            Ok(0) => return parse_reply(&received, true).ok_or(HttpError::Unknown),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HttpError::Unknown),
        }
    }
}

/// A complete answer in `bytes` (`closed`: the server closed the connection), if there is one.
pub(crate) fn parse_reply(bytes: &[u8], closed: bool) -> Option<Reply> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let body = &bytes[end + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut location, mut duplicate) = (None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "location" => location = Some(value.to_owned()),
            "raft-duplicate" => duplicate = Some(value == "true"),
            _ => {}
        }
    }
    let body = match length {
        Some(length) if body.len() >= length => &body[..length],
        None if closed => body,
        _ => return None,
    };
    Some(Reply {
        status,
        location,
        duplicate,
        body: String::from_utf8_lossy(body).trim().to_owned(),
    })
}

/// `host:port` of a `Location` URL.
pub(crate) fn authority(location: &str) -> String {
    let rest = location.strip_prefix("http://").unwrap_or(location);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// The raw token of a top-level field of a flat JSON object (enough for `/status`).
pub(crate) fn json_field<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let start = doc.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &doc[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) role: String,
    pub(crate) term: u64,
    pub(crate) leader: Option<u64>,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
}

pub(crate) fn status(address: &str, clock: Clock) -> Option<Status> {
    let request = Request {
        method: "GET",
        path: "/status",
        body: "",
        ids: None,
    };
    let reply = http(address, request, Duration::from_millis(700), clock).ok()?;
    if reply.status != 200 {
        return None;
    }
    let number = |name| json_field(&reply.body, name).and_then(|v| v.parse::<u64>().ok());
    Some(Status {
        role: json_field(&reply.body, "role")?.to_owned(),
        term: number("term")?,
        leader: number("leader"),
        commit: number("commit_index")?,
        applied: number("applied_index")?,
    })
}
