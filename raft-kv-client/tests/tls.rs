//! HTTPS: a raft-kv node with TLS (certificates made at test time), reached over h2 and
//! HTTP/1.1 by a client trusting its CA; a client trusting another CA reaches nothing.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Cluster;
use raft_kv::tls::TlsOptions;
use raft_kv_client::{Client, Error, Protocol, TlsConfig};
use raft_test_pki::{Issued, TestCa, Validity};

/// Node 1's certificate and key, naming it for its peers and `127.0.0.1` for clients.
fn node_certificate(ca: &TestCa) -> Issued {
    let names = ["node-1.raft-kv".to_owned(), "127.0.0.1".to_owned()];
    ca.issue(&names, Validity::Current)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_node_is_reached_over_h2_and_http1_by_a_client_trusting_its_ca() {
    let files = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let ca_pem = ca.pem.clone();
    let Issued { certificate, key } = node_certificate(&ca);
    let path = |name: &str| files.path().join(name);
    std::fs::write(path("ca.pem"), &ca_pem).unwrap();
    std::fs::write(path("node.pem"), certificate).unwrap();
    std::fs::write(path("node.key"), key).unwrap();
    let cluster = Cluster::start(1, |options| {
        options.tls = Some(TlsOptions::new(
            path("ca.pem"),
            path("node.pem"),
            path("node.key"),
        ));
    })
    .await;
    let url = cluster.urls[0].clone();
    assert!(url.starts_with("https://"), "{url}");

    for protocol in [Protocol::Http2, Protocol::Http1] {
        let client = Client::builder([url.clone()])
            .protocol(protocol)
            .tls(TlsConfig::with_ca_file(path("ca.pem")).unwrap())
            .build()
            .unwrap();
        let key = format!("k-{protocol:?}");
        client.put(&key, "secret").await.unwrap();
        assert_eq!(client.get(&key).await.unwrap().value, "secret");
        assert!(!client.incr("n").await.unwrap().duplicate);
    }
    // Without a scheme, an endpoint is https when the client has TLS.
    let bare = Client::builder([url.strip_prefix("https://").unwrap()])
        .tls(TlsConfig::with_ca_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert_eq!(bare.get("n").await.unwrap().value, "2");

    let other_ca = TestCa::new("another CA").pem;
    let stranger = Client::builder([url.clone()])
        .tls(TlsConfig::with_ca_pem(other_ca.as_bytes()).unwrap())
        .deadline(Duration::from_millis(500))
        .build()
        .unwrap();
    match stranger.get("n").await {
        Err(Error::Transport(error)) => assert!(error.reason.contains("TLS"), "{error}"),
        other => panic!("{other:?}"),
    }
    cluster.shutdown().await;
}
