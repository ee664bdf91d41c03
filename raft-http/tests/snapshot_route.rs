//! The snapshot route, `POST /raft/v1/snapshot`: chunks travel intact through the client and a
//! fake handler, the route has its own body limit, and it refuses what the other routes refuse
//! with the same statuses, leaving the server serving.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use hyper::StatusCode;
use raft_core::message::{InstallSnapshot, SnapshotOutcome};
use raft_core::{Error, NodeId, Transport};
use raft_http::codec;
use raft_http::{ErrorCode, HttpTransport, RaftService, RequestError, ServerConfig, ServiceConfig};
use tokio::sync::Semaphore;

const PATH: &str = "/raft/v1/snapshot";

async fn serve_with(handler: Arc<FakeHandler>, config: ServiceConfig) -> TestServer {
    serve_on(
        "127.0.0.1:0",
        RaftService::new(handler, config),
        ServerConfig::default(),
    )
    .await
}

fn transport_to(addr: SocketAddr) -> HttpTransport {
    HttpTransport::new([(NodeId(2), addr.to_string())], client_config()).unwrap()
}

/// The `RequestError` inside a transport error.
fn request_error(error: &Error) -> &RequestError {
    let Error::Transport { source, .. } = error else {
        panic!("not a transport error: {error:?}");
    };
    source
        .downcast_ref::<RequestError>()
        .expect("a RequestError")
}

fn assert_too_large(error: &Error) {
    assert!(
        matches!(
            request_error(error),
            RequestError::Remote {
                status: 413,
                code: ErrorCode::TooLarge,
                ..
            }
        ),
        "{error:?}"
    );
}

/// A small valid chunk still gets through (the server was not disturbed).
async fn assert_still_serving(addr: SocketAddr, handler: &FakeHandler) {
    let before = handler.calls();
    let data = snapshot_data(100);
    let body = codec::encode_install_snapshot(&snapshot_request(1, &data, 0, 100)).unwrap();
    let answer = http1(addr, post(PATH, body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(handler.calls(), before + 1);
}

#[test]
fn the_test_checksum_is_crc32c() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[tokio::test]
async fn a_snapshot_travels_chunk_by_chunk_with_its_data_and_meta_intact() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let transport = transport_to(server.addr);
    let data = snapshot_data(200 << 10);
    let chunk = 64 << 10;

    let mut offset = 0;
    let mut sent = Vec::new();
    for seq in 1.. {
        let request = snapshot_request(seq, &data, offset, chunk);
        let answer = transport
            .install_snapshot(NodeId(2), request.clone())
            .await
            .unwrap();
        assert_eq!(answer, snapshot_answer(&request));
        sent.push(request);
        match answer.outcome {
            SnapshotOutcome::Continue { offset: next } => offset = next as usize,
            SnapshotOutcome::Installed => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent.len(), 4, "200 KiB in chunks of 64 KiB");

    let received = handler.snapshots.lock().unwrap().clone();
    assert_eq!(received, sent, "every field of every chunk arrived as sent");
    let reassembled: Vec<u8> = received.iter().flat_map(|c| c.data.to_vec()).collect();
    assert_eq!(reassembled, data);
    for chunk in &received {
        assert_eq!(crc32c(&chunk.data), chunk.chunk_crc);
        assert_eq!(chunk.meta.checksum, crc32c(&reassembled));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_chunk_of_several_mib_passes_when_the_limit_is_configured_for_it() {
    const CHUNK: usize = 8 << 20;
    let handler = FakeHandler::new();
    let config = service_config()
        .with_snapshot_chunk_bytes(CHUNK as u64)
        .unwrap();
    let server = serve_with(handler.clone(), config).await;
    let mut client = client_config();
    // Generous for a debug build on a loaded machine; loopback needs a fraction of it.
    client.request_timeout = Duration::from_secs(20);
    let transport = HttpTransport::new([(NodeId(2), server.addr.to_string())], client).unwrap();
    let data = snapshot_data(CHUNK + 10);

    let first = snapshot_request(1, &data, 0, CHUNK);
    assert_eq!(first.data.len(), CHUNK);
    let answer = transport
        .install_snapshot(NodeId(2), first.clone())
        .await
        .unwrap();
    assert_eq!(
        answer.outcome,
        SnapshotOutcome::Continue {
            offset: CHUNK as u64
        }
    );
    let last = snapshot_request(2, &data, CHUNK, CHUNK);
    let answer = transport
        .install_snapshot(NodeId(2), last.clone())
        .await
        .unwrap();
    assert_eq!(answer.outcome, SnapshotOutcome::Installed);
    assert_eq!(*handler.snapshots.lock().unwrap(), [first, last]);
    server.stop().await;
}

#[tokio::test]
async fn a_chunk_over_the_snapshot_limit_is_refused_with_413_and_the_server_keeps_serving() {
    let handler = FakeHandler::new();
    // The default limit: raft-core's default 1 MiB chunk and room to spare, not 3 MiB.
    let server = serve(handler.clone()).await;
    let transport = transport_to(server.addr);
    let data = snapshot_data(3 << 20);

    let error = transport
        .install_snapshot(NodeId(2), snapshot_request(1, &data, 0, 3 << 20))
        .await
        .expect_err("over the limit");
    assert_too_large(&error);
    // Without a declared length the limit holds too (raw HTTP/1.1, any bytes).
    let answer = http1(
        server.addr,
        post(
            PATH,
            vec![0u8; raft_http::DEFAULT_MAX_SNAPSHOT_BODY_BYTES + 1],
        ),
    )
    .await;
    assert_refused(&answer, StatusCode::PAYLOAD_TOO_LARGE, "too-large");
    assert_eq!(handler.calls(), 0);

    // A chunk of the default size passes on the same client connection, and so do appends.
    let answer = transport
        .install_snapshot(NodeId(2), snapshot_request(2, &data, 0, 1 << 20))
        .await
        .unwrap();
    assert_eq!(
        answer.outcome,
        SnapshotOutcome::Continue { offset: 1 << 20 }
    );
    transport
        .append_entries(NodeId(2), append_request(3, 2))
        .await
        .unwrap();
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn the_snapshot_limit_is_separate_from_the_other_routes_limit() {
    let handler = FakeHandler::new();
    let mut config = service_config();
    config.max_body_bytes = 4 << 10;
    config.max_snapshot_body_bytes = 256 << 10;
    let server = serve_with(handler.clone(), config).await;
    let transport = transport_to(server.addr);
    let data = snapshot_data(128 << 10);

    // A 128 KiB chunk passes the snapshot limit although it is 32 times the append limit.
    transport
        .install_snapshot(NodeId(2), snapshot_request(1, &data, 0, 128 << 10))
        .await
        .unwrap();
    // An append of the same size is refused by its own limit.
    let mut append = append_request(2, 1);
    append.entries[0].payload = raft_core::Payload::Command(data.clone());
    let error = transport
        .append_entries(NodeId(2), append)
        .await
        .expect_err("over the append limit");
    assert_too_large(&error);
    assert_eq!(handler.calls(), 1);
    server.stop().await;
}

/// A valid snapshot chunk posted with one header removed or replaced.
fn chunk_with(
    header: &'static str,
    value: Option<&'static str>,
) -> hyper::Request<http_body_util::Full<Bytes>> {
    let data = snapshot_data(1000);
    let body = codec::encode_install_snapshot(&snapshot_request(1, &data, 0, 1000)).unwrap();
    let mut request = post(PATH, body);
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
async fn missing_or_wrong_credentials_on_the_snapshot_route_get_401_or_403_before_the_handler() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let cases = [
        (
            raft_http::CLUSTER_ID_HEADER,
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            raft_http::CLUSTER_ID_HEADER,
            Some("another-cluster"),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            raft_http::SECRET_HEADER,
            None,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            raft_http::SECRET_HEADER,
            Some("s3cret-valuf"),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (header, value, status, code) in cases {
        let answer = http1(server.addr, chunk_with(header, value)).await;
        assert_refused(&answer, status, code);
    }
    // The same through the client: a wrong secret comes back as a typed 403.
    let mut config = client_config();
    config.auth = raft_http::ClusterAuth::new(CLUSTER)
        .unwrap()
        .with_secret("not-the-secret")
        .unwrap();
    let transport = HttpTransport::new([(NodeId(2), server.addr.to_string())], config).unwrap();
    let data = snapshot_data(10);
    let error = transport
        .install_snapshot(NodeId(2), snapshot_request(1, &data, 0, 10))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            request_error(&error),
            RequestError::Remote {
                status: 403,
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn the_snapshot_route_refuses_other_methods_and_content_types() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let mut get = chunk_with("content-type", Some("application/msgpack"));
    *get.method_mut() = hyper::Method::GET;
    let answer = http1(server.addr, get).await;
    assert_refused(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    );
    assert_eq!(answer.headers.get("allow").unwrap(), "POST");
    let answer = http1(
        server.addr,
        chunk_with("content-type", Some("application/json")),
    )
    .await;
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
async fn malformed_snapshot_bodies_are_refused_with_400() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let data = snapshot_data(5000);
    let valid = codec::encode_install_snapshot(&snapshot_request(1, &data, 0, 5000)).unwrap();

    let mut bodies: Vec<Bytes> = [0, 1, 2, 10, valid.len() / 2, valid.len() - 1]
        .into_iter()
        .map(|cut| valid.slice(..cut))
        .collect();
    // Other messages in a valid envelope are not snapshot chunks.
    bodies.push(codec::encode_append_entries(&append_request(1, 2)).unwrap());
    bodies.push(codec::encode(&snapshot_answer(&snapshot_request(1, &data, 0, 10))).unwrap());
    // A chunk's array with fields of the wrong types (a nil meta, the data as a string).
    bodies.push(Bytes::from_static(
        b"\x92\x02\x98\x07\x01\x01\xc0\x00\xa3abc\x00\xc2",
    ));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..10 {
        let junk: Vec<u8> = (0..(round * 53 % 400 + 1))
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        bodies.push(junk.into());
    }
    for body in bodies {
        let answer = http1(server.addr, post(PATH, body.clone())).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "malformed");
    }

    // Another wire version is named in the refusal.
    let mut other_version = vec![0x92, 42];
    other_version.extend_from_slice(&valid[2..]);
    let answer = http1(server.addr, post(PATH, other_version)).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "unsupported-version");
    assert!(answer.body.contains("42"), "{}", answer.body);

    assert_eq!(handler.calls(), 0);
    assert_still_serving(server.addr, &handler).await;
    server.stop().await;
}

#[tokio::test]
async fn snapshot_handler_errors_and_silences_come_back_as_core_errors() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let mut config = client_config();
    config.request_timeout = Duration::from_millis(300);
    let transport = HttpTransport::new([(NodeId(2), server.addr.to_string())], config).unwrap();
    let data = snapshot_data(10);
    let chunk = || snapshot_request(1, &data, 0, 10);

    handler.behaviour.lock().unwrap().fail_with = Some(|| Error::Shutdown);
    let error = transport.install_snapshot(NodeId(2), chunk()).await;
    assert!(matches!(error, Err(Error::Shutdown)), "{error:?}");

    handler.behaviour.lock().unwrap().fail_with = Some(|| Error::storage("disk full"));
    let error = transport
        .install_snapshot(NodeId(2), chunk())
        .await
        .expect_err("the handler fails");
    assert!(
        matches!(
            request_error(&error),
            RequestError::Remote { status: 500, code: ErrorCode::Internal, message }
                if message.contains("disk full")
        ),
        "{error:?}"
    );

    handler.behaviour.lock().unwrap().fail_with = None;
    handler.behaviour.lock().unwrap().snapshot_delay = Some(Duration::from_secs(5));
    let error = transport.install_snapshot(NodeId(2), chunk()).await;
    assert!(matches!(error, Err(Error::Timeout)), "{error:?}");
    server.stop().await;
}

/// A leader sends a follower no AppendEntries while a snapshot is on its way, so the route has
/// no place in the AppendEntries line; this checks that it also does not disturb the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_held_in_the_handler_neither_holds_up_nor_reorders_appends_on_its_connection() {
    let gate = Arc::new(Semaphore::new(0));
    let handler = FakeHandler::with(Behaviour {
        snapshot_gate: Some(gate.clone()),
        ..Behaviour::default()
    });
    let mut config = service_config();
    // An append waiting on the chunk would wait for the gate, not give up after 100 ms.
    config.order_wait_max = Duration::from_secs(600);
    let server = serve_with(handler.clone(), config).await;
    let mut client = client_config();
    client.request_timeout = Duration::from_secs(600);
    let transport =
        Arc::new(HttpTransport::new([(NodeId(2), server.addr.to_string())], client).unwrap());
    // Warm up the connection so everything below shares it, in creation order.
    transport
        .append_entries(NodeId(2), append_request(0, 1))
        .await
        .unwrap();

    let data = snapshot_data(256 << 10);
    let snapshot = {
        let transport = transport.clone();
        let chunk: InstallSnapshot = snapshot_request(1, &data, 0, 256 << 10);
        tokio::spawn(async move { transport.install_snapshot(NodeId(2), chunk).await })
    };
    // Until the chunk is inside the handler, held by the gate.
    let entered = async {
        while handler.calls() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), entered)
        .await
        .expect("the chunk reaches the handler");
    let appends = (1..=50u64).map(|seq| {
        let transport = &transport;
        async move {
            transport
                .append_entries(NodeId(2), append_request(seq, 3))
                .await
        }
    });
    // Only a deadlock takes this long: the appends would wait for a gate nobody opens.
    let answers = tokio::time::timeout(
        Duration::from_secs(60),
        futures_util::future::join_all(appends),
    )
    .await
    .expect("appends are not held up by the chunk in the handler");
    for answer in answers {
        answer.unwrap();
    }
    assert!(!snapshot.is_finished(), "the chunk is still in the handler");
    let seqs: Vec<u64> = handler
        .appends
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.seq)
        .collect();
    assert_eq!(
        seqs,
        (0..=50).collect::<Vec<_>>(),
        "appends in the order sent"
    );

    gate.add_permits(1);
    let answer = snapshot.await.unwrap().unwrap();
    assert_eq!(answer.outcome, SnapshotOutcome::Installed);
    server.stop().await;
}
