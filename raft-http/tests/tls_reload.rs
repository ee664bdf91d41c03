//! Certificates reloaded from disk without a restart: after `reload` (or by the watch, when the
//! files change) new connections use the new certificate and open ones keep theirs; a reload
//! of unusable files keeps the certificates in force; the client side reloads its CA too.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{NodeCertificates, Pki, TestCa, service_config, write};
use common::{FakeHandler, TestServer, client_config, serve_on, vote_request};
use raft_core::{NodeId, Transport};
use raft_http::tls::{ClientTls, ClientTlsFiles, ServerTls};
use raft_http::{HttpTransport, RaftService, ServerConfig};

/// Node 1 served with `tls`.
async fn serve_tls(handler: Arc<FakeHandler>, tls: ServerTls) -> TestServer {
    let mut config = ServerConfig::default();
    config.tls = Some(tls);
    serve_on(
        "127.0.0.1:0",
        RaftService::new(handler, service_config()),
        config,
    )
    .await
}

/// A transport of node 2 to node 1 at `server`, trusting the CA in `ca` (a file of `pki`).
fn node_2_trusting(pki: &Pki, ca: &str, server: &TestServer) -> (HttpTransport, ClientTls) {
    let files = ClientTlsFiles::new(pki.path(ca))
        .with_certificate(pki.path("node-2.pem"), pki.path("node-2.key"));
    let tls = ClientTls::load(files).unwrap();
    let mut config = client_config();
    config.tls = Some(tls.clone());
    let transport = HttpTransport::new([(NodeId(1), server.addr.to_string())], config).unwrap();
    (transport, tls)
}

/// Whether a vote request from node 2 gets an answer.
async fn answers(transport: &HttpTransport) -> bool {
    transport
        .request_vote(NodeId(1), vote_request(2, true))
        .await
        .is_ok()
}

/// Asks until an answer comes (the client backs off after a failure), for at most `within`.
async fn answers_within(transport: &HttpTransport, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if answers(transport).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A new CA whose certificate is written to `ca-new.pem`, and node 1's certificate from it
/// written over node 1's files.
fn rotate_node_1(pki: &Pki) -> TestCa {
    let new_ca = TestCa::new("new CA");
    write(&pki.path("ca-new.pem"), &new_ca.pem);
    pki.write_node(1, &new_ca.node(1));
    new_ca
}

#[tokio::test]
async fn after_a_reload_new_connections_get_the_new_certificate_and_open_ones_keep_going() {
    let pki = Pki::new(2);
    let server_tls = pki.server_tls(1);
    let server = serve_tls(FakeHandler::new(), server_tls.clone()).await;
    let (old_client, _) = node_2_trusting(&pki, "ca.pem", &server);
    assert!(
        answers(&old_client).await,
        "connected with the first certificate"
    );

    rotate_node_1(&pki);
    server_tls.reload().unwrap();

    // The open connection (with the old certificate) goes on: a new one would fail for this
    // client, which trusts only the old CA.
    for _ in 0..3 {
        assert!(
            answers(&old_client).await,
            "the open connection keeps going"
        );
    }
    let (new_old_ca, _) = node_2_trusting(&pki, "ca.pem", &server);
    assert!(
        !answers(&new_old_ca).await,
        "a new connection has the new certificate"
    );
    let (new_client, _) = node_2_trusting(&pki, "ca-new.pem", &server);
    assert!(answers(&new_client).await, "which the new CA verifies");
    server.stop().await;
}

#[tokio::test]
async fn the_watch_picks_up_changed_files_by_itself() {
    let pki = Pki::new(2);
    let server_tls = pki.server_tls(1);
    server_tls.watch(Duration::from_millis(50)).unwrap();
    let server = serve_tls(FakeHandler::new(), server_tls.clone()).await;
    rotate_node_1(&pki);
    let (new_client, _) = node_2_trusting(&pki, "ca-new.pem", &server);
    assert!(
        answers_within(&new_client, Duration::from_secs(10)).await,
        "the new certificate is served without a call"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_reload_of_unusable_files_keeps_the_certificates_in_force() {
    let pki = Pki::new(2);
    let server_tls = pki.server_tls(1);
    let server = serve_tls(FakeHandler::new(), server_tls.clone()).await;

    // A half-written key.
    write(
        &pki.path("node-1.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    );
    let error = server_tls.reload().unwrap_err().to_string();
    assert!(error.contains("node-1.key"), "{error}");
    // A certificate of another node, with its key.
    pki.write_node(1, &pki.ca.node(2));
    let error = server_tls.reload().unwrap_err().to_string();
    assert!(error.contains("does not name node 1"), "{error}");
    // A file gone.
    std::fs::remove_file(pki.path("node-1.pem")).unwrap();
    assert!(server_tls.reload().is_err());

    let (client, _) = node_2_trusting(&pki, "ca.pem", &server);
    assert!(
        answers(&client).await,
        "the first certificate is still served"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_reload_trusts_a_new_ca_for_its_next_connection() {
    let pki = Pki::new(2);
    rotate_node_1(&pki);
    let server_tls = pki.server_tls(1);
    let server = serve_tls(FakeHandler::new(), server_tls).await;
    // The client's CA file still holds the old CA: the server's new certificate is refused.
    write(&pki.path("client-ca.pem"), &pki.ca.pem);
    let (client, client_tls) = node_2_trusting(&pki, "client-ca.pem", &server);
    assert!(!answers(&client).await);

    write(
        &pki.path("client-ca.pem"),
        &std::fs::read_to_string(pki.path("ca-new.pem")).unwrap(),
    );
    client_tls.reload().unwrap();
    assert!(
        answers_within(&client, Duration::from_secs(5)).await,
        "the next connection trusts the new CA"
    );
    server.stop().await;
}
