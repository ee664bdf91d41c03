//! The client against a server with a fake handler over real loopback TCP: every message type,
//! pipelining on one connection, restarts, timeouts and dead peers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use hyper_util::rt::{TokioExecutor, TokioIo};
use raft_core::message::TimeoutNow;
use raft_core::{Entry, Error, LogId, NodeId, Payload, Term, Transport};
use raft_http::{ErrorCode, HttpTransport, RaftService, RequestError};
use tokio::net::TcpListener;
use tokio::sync::Barrier;

#[allow(clippy::unwrap_used)] // test support
fn transport_to(peers: &[(u64, String)]) -> HttpTransport {
    let members = peers.iter().map(|(id, addr)| (NodeId(*id), addr.clone()));
    HttpTransport::new(members, client_config()).unwrap()
}

/// The `RequestError` inside a transport error.
#[allow(clippy::expect_used)] // test support
fn request_error(error: &Error) -> &RequestError {
    let Error::Transport { source, .. } = error else {
        panic!("not a transport error: {error:?}");
    };
    source
        .downcast_ref::<RequestError>()
        .expect("a RequestError")
}

#[tokio::test]
async fn every_message_type_round_trips() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let transport = transport_to(&[(2, server.addr.to_string())]);
    let to = NodeId(2);

    let mut append = append_request(7, 3);
    append.entries.insert(
        0,
        Entry {
            log_id: LogId::new(3, 11),
            payload: Payload::Blank,
        },
    );
    append.entries.truncate(3);
    let answer = transport.append_entries(to, append.clone()).await.unwrap();
    assert_eq!(answer, append_answer(&append));
    let heartbeat = append_request(8, 0);
    let answer = transport
        .append_entries(to, heartbeat.clone())
        .await
        .unwrap();
    assert_eq!(answer, append_answer(&heartbeat));

    for (candidate, pre_vote) in [(3, true), (4, false)] {
        let vote = vote_request(candidate, pre_vote);
        let answer = transport.request_vote(to, vote.clone()).await.unwrap();
        assert_eq!(answer, vote_answer(&vote));
    }
    let timeout_now = TimeoutNow {
        term: Term(9),
        leader_id: NodeId(1),
    };
    transport
        .timeout_now(to, timeout_now.clone())
        .await
        .unwrap();

    assert_eq!(*handler.appends.lock().unwrap(), [append, heartbeat]);
    assert_eq!(
        *handler.votes.lock().unwrap(),
        [vote_request(3, true), vote_request(4, false)]
    );
    assert_eq!(*handler.timeouts.lock().unwrap(), [timeout_now]);
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_in_flight_together_on_one_connection() {
    const REQUESTS: usize = 32;
    // Every AppendEntries waits until all of them are inside the handler: the test completes
    // only if the requests overlap.
    let handler = FakeHandler::with(Behaviour {
        append_barrier: Some(Arc::new(Barrier::new(REQUESTS))),
        ..Behaviour::default()
    });
    // An accept loop of our own, to count connections: the service mounted by hand.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let service = RaftService::new(handler.clone(), service_config());
    let counted = connections.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let service = service.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let transport = Arc::new(transport_to(&[(2, addr.to_string())]));
    let calls: Vec<_> = (0..REQUESTS as u64)
        .map(|seq| {
            let transport = transport.clone();
            tokio::spawn(async move {
                transport
                    .append_entries(NodeId(2), append_request(seq, 2))
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for call in calls {
        seqs.push(call.await.unwrap().expect("answered").seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..REQUESTS as u64).collect::<Vec<_>>());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one connection for all"
    );
    server.abort();
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let addr = server.addr;
    let transport = transport_to(&[(2, addr.to_string())]);
    transport
        .append_entries(NodeId(2), append_request(1, 1))
        .await
        .unwrap();

    server.stop().await;
    let error = transport
        .append_entries(NodeId(2), append_request(2, 1))
        .await
        .expect_err("the peer is down");
    assert!(
        matches!(
            error,
            Error::Transport {
                peer: NodeId(2),
                ..
            }
        ),
        "{error:?}"
    );

    let restarted = serve_on(
        &addr.to_string(),
        RaftService::new(handler.clone(), service_config()),
        raft_http::ServerConfig::default(),
    )
    .await;
    let mut reconnected = false;
    for seq in 3..200 {
        if transport
            .append_entries(NodeId(2), append_request(seq, 1))
            .await
            .is_ok()
        {
            reconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reconnected, "the client reconnects after the peer restarts");
    restarted.stop().await;
}

#[tokio::test]
async fn a_request_without_an_answer_in_time_times_out_and_the_connection_still_serves() {
    let handler = FakeHandler::with(Behaviour {
        delay: Some(Duration::from_secs(5)),
        ..Behaviour::default()
    });
    let server = serve(handler.clone()).await;
    let mut config = client_config();
    config.request_timeout = Duration::from_millis(200);
    let transport = HttpTransport::new([(NodeId(2), server.addr.to_string())], config).unwrap();

    let error = transport
        .request_vote(NodeId(2), vote_request(1, false))
        .await
        .expect_err("no answer in time");
    assert!(matches!(error, Error::Timeout), "{error:?}");

    handler.behaviour.lock().unwrap().delay = None;
    let answer = transport
        .request_vote(NodeId(2), vote_request(1, false))
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_dead_peer_does_not_block_requests_to_another() {
    let (dead, _hole) = black_hole().await;
    let live = serve(FakeHandler::new()).await;
    let transport = Arc::new(transport_to(&[
        (2, dead.to_string()),
        (3, live.addr.to_string()),
    ]));

    let stuck = {
        let transport = transport.clone();
        tokio::spawn(async move {
            transport
                .append_entries(NodeId(2), append_request(1, 1))
                .await
        })
    };
    for seq in 0..20 {
        transport
            .append_entries(NodeId(3), append_request(seq, 4))
            .await
            .expect("the live peer answers");
    }
    assert!(
        !stuck.is_finished(),
        "the dead peer's request is still waiting"
    );
    let error = stuck
        .await
        .unwrap()
        .expect_err("the dead peer never answers");
    assert!(matches!(error, Error::Timeout), "{error:?}");
    live.stop().await;
}

#[tokio::test]
async fn an_unreachable_peer_fails_fast_and_then_backs_off() {
    let nowhere = closed_port().await;
    let transport = transport_to(&[(2, nowhere.to_string())]);
    let first = transport
        .append_entries(NodeId(2), append_request(1, 1))
        .await
        .expect_err("nothing listens");
    assert_eq!(request_error(&first).kind(), "connect", "{first}");
    let second = transport
        .append_entries(NodeId(2), append_request(2, 1))
        .await
        .expect_err("nothing listens");
    assert_eq!(request_error(&second).kind(), "backoff", "{second}");
}

#[tokio::test]
async fn an_unknown_peer_is_a_transport_error() {
    let transport = transport_to(&[]);
    let error = transport
        .request_vote(NodeId(9), vote_request(1, true))
        .await
        .expect_err("no address");
    assert!(matches!(
        request_error(&error),
        RequestError::UnknownPeer(NodeId(9))
    ));
}

#[tokio::test]
async fn handler_errors_come_back_as_core_errors() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let transport = transport_to(&[(2, server.addr.to_string())]);
    type Case = (fn() -> Error, fn(&Error) -> bool);
    let cases: [Case; 4] = [
        (|| Error::Shutdown, |e| matches!(e, Error::Shutdown)),
        (|| Error::Timeout, |e| matches!(e, Error::Timeout)),
        (
            || Error::Config("node 7 is not a member".to_owned()),
            |e| matches!(e, Error::Config(m) if m.contains("node 7 is not a member")),
        ),
        (
            || Error::storage("disk on fire"),
            |e| {
                matches!(
                    request_error(e),
                    RequestError::Remote { status: 500, code: ErrorCode::Internal, message }
                        if message.contains("disk on fire")
                )
            },
        ),
    ];
    for (fail, expected) in cases {
        handler.behaviour.lock().unwrap().fail_with = Some(fail);
        let error = transport
            .append_entries(NodeId(2), append_request(1, 1))
            .await
            .expect_err("the handler fails");
        assert!(expected(&error), "{error:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_with_the_wrong_secret_is_refused_before_the_handler() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let mut config = client_config();
    config.auth = raft_http::ClusterAuth::new(CLUSTER)
        .unwrap()
        .with_secret("not-the-secret")
        .unwrap();
    let transport = HttpTransport::new([(NodeId(2), server.addr.to_string())], config).unwrap();
    let error = transport
        .append_entries(NodeId(2), append_request(1, 1))
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
    server.stop().await;
}

#[tokio::test]
async fn a_changed_peer_address_is_used_for_the_next_request() {
    let first = serve(FakeHandler::new()).await;
    let second_handler = FakeHandler::new();
    let second = serve(second_handler.clone()).await;
    let transport = transport_to(&[(2, first.addr.to_string())]);
    transport
        .append_entries(NodeId(2), append_request(1, 1))
        .await
        .unwrap();
    transport
        .set_peer(NodeId(2), &format!("http://{}", second.addr))
        .unwrap();
    assert_eq!(
        transport.peer_address(NodeId(2)),
        Some(second.addr.to_string())
    );
    transport
        .append_entries(NodeId(2), append_request(2, 1))
        .await
        .unwrap();
    assert_eq!(second_handler.calls(), 1);
    transport.remove_peer(NodeId(2));
    assert!(
        transport
            .append_entries(NodeId(2), append_request(3, 1))
            .await
            .is_err()
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn payloads_survive_the_trip_byte_for_byte() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let transport = transport_to(&[(2, server.addr.to_string())]);
    let mut request = append_request(1, 0);
    // A large, binary batch: 64 entries of 16 KiB (more than one HTTP/2 frame and window).
    request.entries = (0..64u64)
        .map(|i| Entry {
            log_id: LogId::new(3, 11 + i),
            payload: Payload::Command(Bytes::from(
                (0..16 << 10)
                    .map(|b| (b as u64 * 31 + i) as u8)
                    .collect::<Vec<u8>>(),
            )),
        })
        .collect();
    transport
        .append_entries(NodeId(2), request.clone())
        .await
        .unwrap();
    assert_eq!(*handler.appends.lock().unwrap(), [request]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_reach_the_handler_in_the_order_they_were_sent() {
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let transport = transport_to(&[(2, server.addr.to_string())]);
    // Warm up the connection, so every request below goes out on it in creation order.
    transport
        .append_entries(NodeId(2), append_request(0, 1))
        .await
        .unwrap();
    for round in 0..10u64 {
        let calls = (1..=50u64).map(|i| {
            let transport = &transport;
            async move {
                transport
                    .append_entries(NodeId(2), append_request(round * 100 + i, 3))
                    .await
            }
        });
        for answer in futures_util::future::join_all(calls).await {
            answer.unwrap();
        }
    }
    let seqs: Vec<u64> = handler
        .appends
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.seq)
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(seqs.len(), 501);
    assert_eq!(
        seqs, sorted,
        "the handler saw the requests in the order they were sent"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_service_mounts_beside_an_application_s_own_routes() {
    use hyper::{Request, Response};
    use raft_http::{ResponseBody, Routed};

    let handler = FakeHandler::new();
    let raft = RaftService::new(handler.clone(), service_config());
    let app = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let routed = raft.route(request);
        async move {
            Ok::<_, std::convert::Infallible>(match routed {
                Routed::Raft(answer) => answer.await,
                Routed::Elsewhere(request) => Response::new(ResponseBody::from(format!(
                    "app saw {}",
                    request.uri().path()
                ))),
            })
        }
    });
    let server = raft_http::Server::bind("127.0.0.1:0", raft_http::ServerConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(app, async {
        let _ = stopped.await;
    }));

    let transport = transport_to(&[(2, addr.to_string())]);
    let vote = vote_request(1, false);
    assert_eq!(
        transport
            .request_vote(NodeId(2), vote.clone())
            .await
            .unwrap(),
        vote_answer(&vote)
    );
    let answer = http1(addr, post("/kv/greeting", Bytes::new())).await;
    assert_eq!(answer.body, "app saw /kv/greeting");
    let _ = stop.send(());
    serving.await.unwrap();
}
