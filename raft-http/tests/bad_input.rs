//! Requests a peer endpoint must refuse: each gets its status, never reaches the handler when it
//! must not, and leaves the server serving. Sent as raw HTTP/1.1 (hyper's client, or bytes on a
//! TCP stream where hyper's client would refuse to send them).

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use raft_http::codec;
use raft_http::{RaftService, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 4096;

/// A server with a small body limit and a short header timeout.
async fn strict_server(handler: Arc<FakeHandler>) -> TestServer {
    let mut service = service_config();
    service.max_body_bytes = LIMIT;
    let mut config = ServerConfig::default();
    config.header_read_timeout = Duration::from_millis(300);
    serve_on("127.0.0.1:0", RaftService::new(handler, service), config).await
}

fn valid_append() -> Bytes {
    codec::encode_append_entries(&append_request(1, 2)).unwrap()
}

/// A valid request still gets through (the server was not disturbed).
async fn assert_still_serving(addr: SocketAddr, handler: &FakeHandler) {
    let before = handler.calls();
    let answer = http1(addr, post("/raft/v1/append", valid_append())).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(handler.calls(), before + 1);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let answer = http1(server.addr, post("/raft/v1/append", vec![0u8; LIMIT + 1])).await;
    assert_refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "too-large");
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_chunked_body_without_a_length_is_refused_with_413() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /raft/v1/append HTTP/1.1\r\nhost: x\r\ncontent-type: application/msgpack\r\n\
         raft-cluster-id: {CLUSTER}\r\nraft-secret: {SECRET}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 1024];
    for _ in 0..8 {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        // The server may answer and close before the whole body is sent.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn truncated_bodies_are_refused_with_400() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let body = valid_append();
    for cut in [0, 1, 2, body.len() / 2, body.len() - 1] {
        let answer = http1(server.addr, post("/raft/v1/append", body.slice(..cut))).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "malformed");
    }
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn random_bodies_are_refused_with_400() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..20 {
        let body: Vec<u8> = (0..(round * 37 % 300 + 1))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for path in [
            "/raft/v1/append",
            "/raft/v1/vote",
            "/raft/v1/timeout-now",
            "/raft/v1/snapshot",
        ] {
            let answer = http1(server.addr, post(path, body.clone())).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}: {answer:?}");
        }
    }
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn an_unsupported_wire_version_is_refused_with_400_naming_it() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    // [99, message]: a fixarray of 2, the positive fixint 99, then any message.
    let mut body = vec![0x92, 99];
    body.extend_from_slice(&valid_append()[2..]);
    let answer = http1(server.addr, post("/raft/v1/append", body)).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "unsupported-version");
    assert!(answer.body.contains("99"), "{}", answer.body);
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

/// `post` with one header removed or replaced.
fn post_with(header: &'static str, value: Option<&'static str>) -> Request<Full<Bytes>> {
    let mut request = post("/raft/v1/append", valid_append());
    match value {
        Some(value) => {
            request.headers_mut().insert(header, value.parse().unwrap());
        }
        None => {
            request.headers_mut().remove(header);
        }
    }
    request
}

#[tokio::test]
async fn a_missing_cluster_id_is_refused_with_401_before_the_handler() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let answer = http1(server.addr, post_with(raft_http::CLUSTER_ID_HEADER, None)).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn wrong_cluster_id_is_refused_with_403_before_the_handler() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let request = post_with(raft_http::CLUSTER_ID_HEADER, Some("another-cluster"));
    let answer = http1(server.addr, request).await;
    assert_refused(&answer, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_refused_with_401_or_403_before_the_handler() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let answer = http1(server.addr, post_with(raft_http::SECRET_HEADER, None)).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "unauthenticated");
    let request = post_with(raft_http::SECRET_HEADER, Some("s3cret-valuf"));
    let answer = http1(server.addr, request).await;
    assert_refused(&answer, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_content_type_is_refused_with_415() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    let request = post_with("content-type", Some("application/json"));
    let answer = http1(server.addr, request).await;
    assert_refused(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
    let answer = http1(server.addr, post_with("content-type", None)).await;
    assert_refused(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    for path in [
        "/raft/v1/snapshots",
        "/raft/v2/snapshot",
        "/raft/v2/append",
        "/elsewhere",
        "/metrics",
    ] {
        let answer = http1(server.addr, post(path, valid_append())).await;
        assert_refused(&answer, StatusCode::NOT_FOUND, "not-found");
    }
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_refused_with_405_naming_the_allowed_one() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    for method in ["GET", "PUT", "DELETE"] {
        let mut request = post("/raft/v1/vote", Bytes::new());
        *request.method_mut() = method.parse().unwrap();
        let answer = http1(server.addr, request).await;
        assert_refused(
            &answer,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        );
        assert_eq!(answer.headers.get("allow").unwrap(), "POST");
    }
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

/// Writes `bytes`, then waits: the server must close the connection (EOF or reset).
async fn assert_disconnected_after_sending(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("the server closes the connection well before 5 s");
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => {
            // hyper may answer 408 before closing; then the connection must end.
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            assert!(text.starts_with("HTTP/1.1 408"), "unexpected answer {text}");
            let rest = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("closed after the 408");
            assert!(matches!(rest, Ok(0) | Err(_)));
        }
    }
}

#[tokio::test]
async fn a_client_sending_half_a_header_is_disconnected_after_the_header_timeout() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    assert_disconnected_after_sending(
        server.addr,
        b"POST /raft/v1/append HTTP/1.1\r\nhost: x\r\ncontent-",
    )
    .await;
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_sending_half_the_http2_preface_is_disconnected_after_the_header_timeout() {
    let handler = FakeHandler::new();
    let server = strict_server(handler.clone()).await;
    assert_disconnected_after_sending(server.addr, b"PRI * HTTP/2.0\r\n").await;
    // And one that sends nothing at all.
    assert_disconnected_after_sending(server.addr, b"").await;
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let handler = FakeHandler::new();
    let mut config = ServerConfig::default();
    config.max_connections = 1;
    let server = serve_on(
        "127.0.0.1:0",
        RaftService::new(handler.clone(), service_config()),
        config,
    )
    .await;
    // Hold the only slot with an open HTTP/1.1 keep-alive connection.
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let held = tokio::spawn(connection);
    let response = sender
        .send_request(post("/raft/v1/append", valid_append()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut buffer))
        .await
        .expect("closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Once the slot is free, new connections are served again.
    drop(sender);
    held.abort();
    let mut served = false;
    for _ in 0..100 {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        if let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
        {
            tokio::spawn(connection);
            if let Ok(response) = sender
                .send_request(post("/raft/v1/append", valid_append()))
                .await
            {
                served = response.status() == StatusCode::OK;
                if served {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served, "the freed slot is reused");
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_append_on_one_connection_does_not_hold_up_another() {
    let handler = FakeHandler::new();
    let mut service = service_config();
    // Long enough that only per-connection ordering lets the second request through in time.
    service.order_wait_max = Duration::from_secs(60);
    let server = serve_on(
        "127.0.0.1:0",
        RaftService::new(handler.clone(), service),
        ServerConfig::default(),
    )
    .await;
    // An AppendEntries whose body stops after 10 of its 1000 declared bytes.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /raft/v1/append HTTP/1.1\r\nhost: x\r\ncontent-type: application/msgpack\r\n\
         raft-cluster-id: {CLUSTER}\r\nraft-secret: {SECRET}\r\ncontent-length: 1000\r\n\r\n"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&[0u8; 10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        http1(server.addr, post("/raft/v1/append", valid_append())),
    )
    .await
    .expect("not held up by the other connection");
    assert_eq!(answer.status, StatusCode::OK);
    drop(stalled);
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_refused_with_408() {
    let handler = FakeHandler::new();
    let mut service = service_config();
    service.body_read_timeout = Duration::from_millis(200);
    let server = serve_on(
        "127.0.0.1:0",
        RaftService::new(handler.clone(), service),
        ServerConfig::default(),
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /raft/v1/vote HTTP/1.1\r\nhost: x\r\ncontent-type: application/msgpack\r\n\
         raft-cluster-id: {CLUSTER}\r\nraft-secret: {SECRET}\r\ncontent-length: 100\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0x92, 0x02]).await.unwrap();
    let mut answer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered well before 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}
