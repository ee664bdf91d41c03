//! What TLS refuses, with certificates made at test time, against a fake node that counts its
//! calls: certificates from another CA, expired or naming another node (on either side), a
//! request claiming a node its certificate does not name, a wildcard, no certificate, and the
//! two plaintext/TLS mix-ups, which fail at once with a message that says so. None of them
//! reaches the node.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{NodeCertificates, Pki, TestCa, Validity, service_config, write};
use common::{CLUSTER, FakeHandler, TestServer, append_request, client_config, serve, serve_on};
use raft_core::{Error, NodeId, Transport};
use raft_http::tls::{ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles, node_name};
use raft_http::{ClientAuth, ErrorCode, HttpTransport, RaftService, RequestError, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `RequestError` inside a transport error.
fn request_error(error: &Error) -> &RequestError {
    let Error::Transport { source, .. } = error else {
        panic!("not a transport error: {error:?}");
    };
    source
        .downcast_ref::<RequestError>()
        .expect("a RequestError")
}

/// The reason of a TLS failure.
fn tls_reason(error: &Error) -> String {
    match request_error(error) {
        RequestError::Tls { reason, .. } => reason.clone(),
        other => panic!("not a TLS failure: {other:?}"),
    }
}

/// Node `id`'s certificate signed by the test's `ca`, written under `pki` as `name`.
fn write_issued(pki: &Pki, name: &str, issued: &common::tls::Issued) -> (String, String) {
    let certificate = pki.path(&format!("{name}.pem"));
    let key = pki.path(&format!("{name}.key"));
    write(&certificate, &issued.certificate);
    write(&key, &issued.key);
    (certificate.display().to_string(), key.display().to_string())
}

/// Node 1 served with mutual TLS (its own certificate from `pki`, unless `server` says which).
async fn serve_tls(handler: Arc<FakeHandler>, server: ServerTls) -> TestServer {
    let mut config = ServerConfig::default();
    config.tls = Some(server);
    serve_on(
        "127.0.0.1:0",
        RaftService::new(handler, service_config()),
        config,
    )
    .await
}

/// A transport that dials node `as_node` at `server` with `tls`.
fn transport(server: &TestServer, as_node: u64, tls: Option<ClientTls>) -> HttpTransport {
    let mut config = client_config();
    config.tls = tls;
    HttpTransport::new([(NodeId(as_node), server.addr.to_string())], config).unwrap()
}

/// An AppendEntries from `leader`.
fn append_from(leader: u64) -> raft_core::message::AppendEntries {
    let mut request = append_request(1, 1);
    request.leader_id = NodeId(leader);
    request
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_and_reaches_no_node() {
    let pki = Pki::new(2);
    let handler = FakeHandler::new();
    let server = serve_tls(handler.clone(), pki.server_tls(1)).await;
    let other_ca = TestCa::new("other CA");
    let (certificate, key) = write_issued(&pki, "foreign-2", &other_ca.node(2));
    let tls =
        ClientTls::load(ClientTlsFiles::new(pki.path("ca.pem")).with_certificate(certificate, key))
            .unwrap();
    let error = transport(&server, 1, Some(tls))
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(
        reason.contains("refused this node's certificate"),
        "{reason}"
    );
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_by_the_client() {
    let pki = Pki::new(2);
    let other_ca = TestCa::new("other CA");
    let (certificate, key) = write_issued(&pki, "foreign-1", &other_ca.node(1));
    let foreign =
        ServerTls::load(ServerTlsFiles::new(certificate, key).with_client_ca(pki.path("ca.pem")))
            .unwrap();
    let handler = FakeHandler::new();
    let server = serve_tls(handler.clone(), foreign).await;
    let error = transport(&server, 1, Some(pki.client_tls(2)))
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(reason.contains("not signed by this node's CA"), "{reason}");
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn node_2_s_certificate_answering_at_node_3_s_address_is_refused_by_the_client() {
    let pki = Pki::new(3);
    let handler = FakeHandler::new();
    // The server at "node 3's" address presents node 2's (valid) certificate.
    let server = serve_tls(handler.clone(), pki.server_tls(2)).await;
    let error = transport(&server, 3, Some(pki.client_tls(1)))
        .append_entries(NodeId(3), append_from(1))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(reason.contains("node 2 of cluster"), "{reason}");
    assert!(reason.contains(&node_name(CLUSTER, NodeId(3))), "{reason}");
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_request_claiming_node_3_with_node_2_s_certificate_gets_403_wrong_node() {
    let pki = Pki::new(3);
    let handler = FakeHandler::new();
    let server = serve_tls(handler.clone(), pki.server_tls(1)).await;
    let as_node_2 = transport(&server, 1, Some(pki.client_tls(2)));
    for error in [
        as_node_2
            .append_entries(NodeId(1), append_from(3))
            .await
            .unwrap_err(),
        as_node_2
            .request_vote(NodeId(1), common::vote_request(3, false))
            .await
            .unwrap_err(),
    ] {
        match request_error(&error) {
            RequestError::Remote {
                status,
                code,
                message,
            } => {
                assert_eq!((*status, *code), (403, ErrorCode::WrongNode));
                assert!(message.contains("node 2 of cluster"), "{message}");
                assert!(message.contains("node-3.test-cluster"), "{message}");
            }
            other => panic!("not a refusal: {other:?}"),
        }
    }
    assert_eq!(handler.calls(), 0, "the node never saw them");
    // The same connection, as the node it is: accepted.
    as_node_2
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap();
    assert_eq!(handler.calls(), 1);
    server.stop().await;
}

#[tokio::test]
async fn wildcard_certificates_name_no_node() {
    let pki = Pki::new(1);
    let wildcard = pki.ca.issue(&[format!("*.{CLUSTER}")], Validity::Current);
    let (certificate, key) = write_issued(&pki, "wildcard", &wildcard);
    let handler = FakeHandler::new();
    // As a server: the client dialling node 1 refuses it.
    let server_files = ServerTlsFiles::new(&certificate, &key).with_client_ca(pki.path("ca.pem"));
    let server = serve_tls(handler.clone(), ServerTls::load(server_files).unwrap()).await;
    let error = transport(&server, 1, Some(pki.client_tls(1)))
        .append_entries(NodeId(1), append_from(1))
        .await
        .unwrap_err();
    assert!(tls_reason(&error).contains("not the node dialled"));
    server.stop().await;
    // As a client: the server refuses its requests.
    let server = serve_tls(handler.clone(), pki.server_tls(1)).await;
    let client_files = ClientTlsFiles::new(pki.path("ca.pem")).with_certificate(&certificate, &key);
    let error = transport(&server, 1, Some(ClientTls::load(client_files).unwrap()))
        .append_entries(NodeId(1), append_from(1))
        .await
        .unwrap_err();
    assert!(matches!(
        request_error(&error),
        RequestError::Remote {
            code: ErrorCode::WrongNode,
            ..
        }
    ));
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn expired_certificates_are_refused_on_both_sides() {
    let pki = Pki::new(2);
    let expired_1 = pki
        .ca
        .issue(&[node_name(CLUSTER, NodeId(1))], Validity::Expired);
    let expired_2 = pki
        .ca
        .issue(&[node_name(CLUSTER, NodeId(2))], Validity::Expired);
    let handler = FakeHandler::new();

    // The server's is expired: the client refuses it.
    let (certificate, key) = write_issued(&pki, "expired-1", &expired_1);
    let files = ServerTlsFiles::new(certificate, key).with_client_ca(pki.path("ca.pem"));
    let server = serve_tls(handler.clone(), ServerTls::load(files).unwrap()).await;
    let error = transport(&server, 1, Some(pki.client_tls(2)))
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(reason.contains("expired"), "{reason}");
    server.stop().await;

    // The client's is expired: the server refuses it.
    let server = serve_tls(handler.clone(), pki.server_tls(1)).await;
    let (certificate, key) = write_issued(&pki, "expired-2", &expired_2);
    let files = ClientTlsFiles::new(pki.path("ca.pem")).with_certificate(certificate, key);
    let error = transport(&server, 1, Some(ClientTls::load(files).unwrap()))
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(
        reason.contains("refused this node's certificate"),
        "{reason}"
    );
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn without_a_client_certificate_the_raft_routes_answer_401_certificate_required() {
    let pki = Pki::new(1);
    let handler = FakeHandler::new();
    // A listener that admits clients without certificates (an application's own clients).
    let files = ServerTlsFiles::new(pki.path("node-1.pem"), pki.path("node-1.key"))
        .with_client_ca(pki.path("ca.pem"))
        .with_client_auth(ClientAuth::Optional);
    let server = serve_tls(handler.clone(), ServerTls::load(files).unwrap()).await;
    let anonymous = ClientTls::load(ClientTlsFiles::new(pki.path("ca.pem"))).unwrap();
    let error = transport(&server, 1, Some(anonymous))
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            request_error(&error),
            RequestError::Remote {
                status: 401,
                code: ErrorCode::CertificateRequired,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn plaintext_at_a_tls_port_fails_at_once_with_a_clear_error() {
    let pki = Pki::new(1);
    let handler = FakeHandler::new();
    let server = serve_tls(handler.clone(), pki.server_tls(1)).await;
    let started = tokio::time::Instant::now();
    let error = transport(&server, 1, None)
        .append_entries(NodeId(1), append_from(2))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(reason.contains("answered in TLS"), "{reason}");
    assert!(started.elapsed() < client_config().connect_timeout);

    // A plaintext HTTP/1.1 client: the connection is closed at once, not held open.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /raft/v1/append HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "closed at once");
    assert!(!answer.starts_with(b"HTTP/"), "no HTTP answer in clear");
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn tls_at_a_plaintext_port_fails_at_once_with_a_clear_error() {
    let pki = Pki::new(1);
    let handler = FakeHandler::new();
    let server = serve(handler.clone()).await;
    let started = tokio::time::Instant::now();
    let error = transport(&server, 1, Some(pki.client_tls(1)))
        .append_entries(NodeId(1), append_from(1))
        .await
        .unwrap_err();
    let reason = tls_reason(&error);
    assert!(reason.contains("plaintext server"), "{reason}");
    assert!(started.elapsed() < client_config().connect_timeout);
    assert_eq!(handler.calls(), 0);
    server.stop().await;
}

#[test]
fn https_addresses_need_tls_and_http_addresses_are_refused_with_it() {
    let pki = Pki::new(1);
    let plaintext = HttpTransport::new([(NodeId(2), "https://127.0.0.1:1")], client_config());
    assert!(matches!(
        plaintext,
        Err(raft_http::Error::InvalidAddress { ref reason, .. }) if reason.contains("needs TLS")
    ));
    let with_tls = HttpTransport::new([(NodeId(2), "http://127.0.0.1:1")], pki.client_config(1));
    assert!(matches!(
        with_tls,
        Err(raft_http::Error::InvalidAddress { ref reason, .. }) if reason.contains("plaintext")
    ));
    let transport = HttpTransport::new(
        [
            (NodeId(2), "https://127.0.0.1:1"),
            (NodeId(3), "127.0.0.1:2"),
        ],
        pki.client_config(1),
    )
    .unwrap();
    assert_eq!(
        transport.peer_address(NodeId(2)).as_deref(),
        Some("127.0.0.1:1")
    );
    assert!(transport.tls().is_some());
}
