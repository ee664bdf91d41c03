//! A TLS listener shared by the peers and an application's own clients (as raft-kv serves its
//! client API beside the Raft routes): clients without certificates are admitted when client
//! certificates are optional, get the application's certificate (from another CA) unless they
//! ask for the node's name, speak HTTP/1.1 over TLS, and are still refused on the Raft routes.

// Helpers of this test file: a broken one should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::tls::{Pki, TestCa, Validity, service_config, write};
use common::{FakeHandler, TestServer, append_request, post, serve_on, vote_request};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use raft_core::{NodeId, Transport};
use raft_http::tls::{ServerTls, ServerTlsFiles};
use raft_http::{ClientAuth, HttpTransport, RaftService, ServerConfig};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Node 1 with its certificate for peers, `kv.example`'s (from another CA) for everyone else,
/// and optional client certificates.
async fn shared_listener(pki: &Pki, handler: Arc<FakeHandler>) -> TestServer {
    let api_ca = TestCa::new("API CA");
    write(&pki.path("api-ca.pem"), &api_ca.pem);
    let api = api_ca.issue(&["kv.example".to_owned()], Validity::Current);
    write(&pki.path("api.pem"), &api.certificate);
    write(&pki.path("api.key"), &api.key);
    let files = ServerTlsFiles::new(pki.path("node-1.pem"), pki.path("node-1.key"))
        .with_client_ca(pki.path("ca.pem"))
        .with_client_auth(ClientAuth::Optional)
        .with_other_certificate(pki.path("api.pem"), pki.path("api.key"));
    let mut config = ServerConfig::default();
    config.tls = Some(ServerTls::load(files).unwrap());
    serve_on(
        "127.0.0.1:0",
        RaftService::new(handler, service_config()),
        config,
    )
    .await
}

/// An application client: trusts only the API CA, asks for `kv.example`, no certificate, and
/// sends one HTTP/1.1 request.
async fn api_request(pki: &Pki, server: &TestServer, request: Request<Full<Bytes>>) -> StatusCode {
    let mut roots = RootCertStore::empty();
    let ca = std::fs::read(pki.path("api-ca.pem")).unwrap();
    roots
        .add(CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        #[allow(deprecated)]
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("kv.example").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .expect("the application's certificate, verified by the API CA");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn application_clients_get_the_other_certificate_and_peers_the_node_s() {
    let pki = Pki::new(2);
    let handler = FakeHandler::new();
    let server = shared_listener(&pki, handler.clone()).await;

    // An application route over HTTP/1.1 and TLS (RaftService alone answers 404 for it).
    let request = Request::get("/kv/key")
        .header("host", "kv.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        api_request(&pki, &server, request).await,
        StatusCode::NOT_FOUND
    );
    // The Raft routes still want a peer's certificate.
    let forged = raft_http::codec::encode_append_entries(&append_request(1, 1)).unwrap();
    let status = api_request(&pki, &server, post("/raft/v1/append", forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(handler.calls(), 0);

    // A peer asks for node-1's name and gets node 1's certificate.
    let transport =
        HttpTransport::new([(NodeId(1), server.addr.to_string())], pki.client_config(2)).unwrap();
    transport
        .request_vote(NodeId(1), vote_request(2, true))
        .await
        .unwrap();
    assert_eq!(handler.calls(), 1);
    server.stop().await;
}
