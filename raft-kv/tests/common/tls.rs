//! TLS test support: certificates made at test time (rcgen) for a test cluster, named by
//! raft-http's rule (`node-<id>.<cluster-id>`) and for `127.0.0.1` (so an HTTPS client checks
//! them as any client would), their PEM files, and an HTTPS client (HTTP/1.1 or h2).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use raft_core::NodeId;
use raft_http::tls::node_name;
use raft_kv::tls::TlsOptions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Answer;

/// The cluster id of the TLS tests.
pub const CLUSTER: &str = "kv-test";
/// The API token of the TLS tests.
pub const TOKEN: &str = "test-api-token";

pub use raft_test_pki::{Issued, TestCa, Validity};

/// The certificates of the test cluster's nodes.
pub trait NodeCertificates {
    /// The certificate of node `id` of the test cluster, also naming `127.0.0.1`.
    fn node(&self, id: u64, validity: Validity) -> Issued;
}

impl NodeCertificates for TestCa {
    fn node(&self, id: u64, validity: Validity) -> Issued {
        let names = [node_name(CLUSTER, NodeId(id)), "127.0.0.1".to_owned()];
        self.issue(&names, validity)
    }
}

/// A directory of PEM files: a CA (`ca.pem`) and node certificates (`node-<id>.pem`, `.key`).
pub struct Pki {
    pub dir: TempDir,
    pub ca: TestCa,
}

impl Pki {
    /// A CA and the certificates of nodes `1..=n`.
    pub fn new(n: u64) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: TestCa::new("test CA"),
        };
        std::fs::write(pki.path("ca.pem"), &pki.ca.pem).unwrap();
        for id in 1..=n {
            pki.write(&format!("node-{id}"), &pki.ca.node(id, Validity::Current));
        }
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `issued` as `<name>.pem` and `<name>.key` (replacing them); their paths.
    pub fn write(&self, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
        let (certificate, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&certificate, &issued.certificate).unwrap();
        std::fs::write(&key, &issued.key).unwrap();
        (certificate, key)
    }

    /// Node `id`'s TLS options: the CA, its certificate and key (`node-<id>.*`).
    pub fn options(&self, id: u64) -> TlsOptions {
        self.options_with(&format!("node-{id}"))
    }

    /// TLS options with the CA and the certificate and key `<name>.*`.
    pub fn options_with(&self, name: &str) -> TlsOptions {
        TlsOptions::new(
            self.path("ca.pem"),
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
    }

    /// An HTTPS client trusting this CA.
    pub fn client(&self) -> HttpsClient {
        HttpsClient::trusting(&self.ca.pem)
    }
}

/// An HTTPS client of the API: verifies the server's certificate for `127.0.0.1` against its
/// CA, presents none.
#[derive(Clone)]
pub struct HttpsClient {
    http1: Arc<rustls::ClientConfig>,
    h2: Arc<rustls::ClientConfig>,
}

#[allow(deprecated)] // ring's provider, as raft-http uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl HttpsClient {
    /// A client trusting the CA certificate `ca_pem`.
    pub fn trusting(ca_pem: &str) -> HttpsClient {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(certificate.unwrap()).unwrap();
        }
        let config = |alpn: &[u8]| {
            let mut config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(config)
        };
        HttpsClient {
            http1: config(b"http/1.1"),
            h2: config(b"h2"),
        }
    }

    async fn connect(
        &self,
        address: &str,
        h2: bool,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let config = if h2 { &self.h2 } else { &self.http1 };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        TlsConnector::from(config.clone())
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())
    }

    /// The end-entity certificate `address` presents (DER), or the handshake's error.
    pub async fn certificate(&self, address: &str) -> Result<Vec<u8>, String> {
        let stream = self.connect(address, false).await?;
        let (_, connection) = stream.get_ref();
        connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|certificate| certificate.to_vec())
            .ok_or_else(|| "no certificate".to_owned())
    }

    /// One request over HTTP/1.1 on a fresh connection; `None` if the node cannot be reached,
    /// the handshake fails or no answer comes within 10 s.
    pub async fn request(
        &self,
        address: &str,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Option<Answer> {
        self.exchange(address, false, method, path, headers, body)
            .await
    }

    /// The same over HTTP/2 (ALPN `h2`).
    pub async fn request_h2(
        &self,
        address: &str,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Option<Answer> {
        self.exchange(address, true, method, path, headers, body)
            .await
    }

    async fn exchange(
        &self,
        address: &str,
        h2: bool,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Option<Answer> {
        let attempt = async {
            let stream = TokioIo::new(self.connect(address, h2).await.ok()?);
            let mut builder = Request::builder()
                .method(method)
                .uri(format!("https://{address}{path}"));
            if !h2 {
                builder = builder.header("host", address);
            }
            for (name, value) in headers {
                builder = builder.header(*name, value);
            }
            let request = builder.body(Full::new(body)).unwrap();
            let response = if h2 {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), stream)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                sender.send_request(request).await.ok()?
            } else {
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(stream).await.ok()?;
                tokio::spawn(connection);
                sender.send_request(request).await.ok()?
            };
            assert_eq!(
                response.version() == hyper::Version::HTTP_2,
                h2,
                "the protocol ALPN chose"
            );
            Answer::read(response).await
        };
        tokio::time::timeout(Duration::from_secs(10), attempt)
            .await
            .ok()
            .flatten()
    }

    /// As `common::request_cluster`, over HTTPS: follows 307s (to `https://` URLs) and retries
    /// 503s, 504s and unreachable nodes for ~30 s.
    pub async fn request_cluster(
        &self,
        addresses: &[String],
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Option<Answer> {
        let mut target = addresses[0].clone();
        for attempt in 0..300 {
            let body = Bytes::copy_from_slice(body);
            let answer = self
                .request(&target, method.clone(), path, headers, body)
                .await;
            match answer {
                Some(answer) if answer.status == StatusCode::TEMPORARY_REDIRECT => {
                    let location = answer.location.clone().unwrap();
                    let rest = location.strip_prefix("https://").unwrap();
                    target = rest[..rest.find('/').unwrap()].to_owned();
                }
                Some(answer)
                    if answer.status != StatusCode::SERVICE_UNAVAILABLE
                        && answer.status != StatusCode::GATEWAY_TIMEOUT =>
                {
                    return Some(answer);
                }
                _ => {
                    target = addresses[(attempt + 1) % addresses.len()].clone();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        None
    }

    /// The `/status` document of a node, if it answers.
    pub async fn status(&self, address: &str) -> Option<serde_json::Value> {
        let answer = self
            .request(address, Method::GET, "/status", &[], Bytes::new())
            .await?;
        serde_json::from_slice(&answer.body).ok()
    }

    /// Waits until one node among `addresses` leads and all of them name it (by an `https://`
    /// URL); returns its address.
    pub async fn wait_for_leader(&self, addresses: &[String]) -> String {
        for _ in 0..300 {
            let mut leaders = Vec::new();
            for address in addresses {
                let doc = self.status(address).await;
                leaders.push(doc.and_then(|d| d["leader_url"].as_str().map(str::to_owned)));
            }
            if let Some(Some(first)) = leaders.first()
                && leaders.iter().all(|l| l.as_deref() == Some(first.as_str()))
            {
                return first.strip_prefix("https://").unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader agreed on among {addresses:?}");
    }
}

/// `Authorization: Bearer <TOKEN>`.
pub fn token() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {TOKEN}"))]
}
