//! Test certificates made at test time (rcgen): CAs, node certificates named by the crate's
//! rule (`node-<id>.<cluster-id>`), and their PEM files in a temporary directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft_core::NodeId;
use raft_http::tls::{ClientTls, ServerTls, node_name};
use raft_http::{ClientConfig, ServerConfig, ServiceConfig, TlsFiles};
use tempfile::TempDir;

use super::{CLUSTER, auth, client_config};

pub use raft_test_pki::{Issued, TestCa, Validity};

/// The certificates of the test cluster's nodes.
pub trait NodeCertificates {
    /// The certificate of node `id` of the test cluster.
    fn node(&self, id: u64) -> Issued;
}

impl NodeCertificates for TestCa {
    fn node(&self, id: u64) -> Issued {
        self.issue(&[node_name(CLUSTER, NodeId(id))], Validity::Current)
    }
}

/// A directory of PEM files: a CA and the certificates of the nodes of a test cluster.
pub struct Pki {
    pub dir: TempDir,
    pub ca: TestCa,
}

impl Pki {
    /// A CA, and the certificates of nodes `1..=n` (named by the rule) written with it.
    pub fn new(n: u64) -> Arc<Pki> {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca: TestCa::new("test CA"),
        };
        write(&pki.path("ca.pem"), &pki.ca.pem);
        for id in 1..=n {
            pki.write_node(id, &pki.ca.node(id));
        }
        Arc::new(pki)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `issued` as node `id`'s certificate and key (replacing them).
    pub fn write_node(&self, id: u64, issued: &Issued) {
        write(&self.path(&format!("node-{id}.pem")), &issued.certificate);
        write(&self.path(&format!("node-{id}.key")), &issued.key);
    }

    /// Node `id`'s files: the CA, its certificate and key.
    pub fn files(&self, id: u64) -> TlsFiles {
        TlsFiles::new(
            self.path("ca.pem"),
            self.path(&format!("node-{id}.pem")),
            self.path(&format!("node-{id}.key")),
        )
    }

    /// Node `id`'s server TLS (mutual, naming the node).
    pub fn server_tls(&self, id: u64) -> ServerTls {
        ServerTls::load(self.files(id).server(CLUSTER, NodeId(id))).unwrap()
    }

    /// Node `id`'s client TLS (trusting the CA, presenting its certificate).
    pub fn client_tls(&self, id: u64) -> ClientTls {
        ClientTls::load(self.files(id).client(CLUSTER, NodeId(id))).unwrap()
    }

    /// A server configuration with node `id`'s TLS.
    pub fn server_config(&self, id: u64) -> ServerConfig {
        let mut config = ServerConfig::default();
        config.tls = Some(self.server_tls(id));
        config
    }

    /// The test client configuration with node `id`'s TLS.
    pub fn client_config(&self, id: u64) -> ClientConfig {
        let mut config = client_config();
        config.tls = Some(self.client_tls(id));
        config
    }
}

/// The test service configuration, requiring peer certificates.
pub fn service_config() -> ServiceConfig {
    let mut config = ServiceConfig::new(auth());
    config.require_peer_certificate = true;
    config
}

pub fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}
