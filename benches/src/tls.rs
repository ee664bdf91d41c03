//! `--tls` for the `http` and `durable` workloads: a CA and one certificate per node made at
//! start (rcgen), written as PEM files in a temporary directory, so the cluster runs with mutual
//! TLS as a deployment would (each node's certificate names `node-<id>.<cluster-id>`).

use raft_core::{Error, NodeId};
use raft_http::TlsFiles;
use raft_http::tls::{ClientTls, ServerTls, node_name};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// The PEM files of a cluster's nodes; removed with it.
#[derive(Debug)]
pub(crate) struct BenchPki {
    dir: TempDir,
}

/// Both sides of one node's TLS.
pub(crate) struct NodeTls {
    pub(crate) server: ServerTls,
    pub(crate) client: ClientTls,
}

impl BenchPki {
    /// A CA and the certificates of `ids` in cluster `cluster_id`.
    pub(crate) fn new(cluster_id: &str, ids: &[NodeId]) -> Result<BenchPki, Error> {
        let dir = tempfile::tempdir().map_err(|e| failed("a directory for the certificates", e))?;
        let ca_key = KeyPair::generate().map_err(|e| failed("a CA key", e))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("a CA", e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "raft-bench CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_certificate = ca.self_signed(&ca_key).map_err(|e| failed("a CA", e))?;
        write(&dir, "ca.pem", &ca_certificate.pem())?;
        let issuer = Issuer::new(ca, ca_key);
        for &id in ids {
            let name = node_name(cluster_id, id);
            let key = KeyPair::generate().map_err(|e| failed("a node key", e))?;
            let mut params =
                CertificateParams::new(vec![name.clone()]).map_err(|e| failed(&name, e))?;
            params.distinguished_name.push(DnType::CommonName, &name);
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let certificate = params
                .signed_by(&key, &issuer)
                .map_err(|e| failed(&name, e))?;
            write(&dir, &format!("node-{id}.pem"), &certificate.pem())?;
            write(&dir, &format!("node-{id}.key"), &key.serialize_pem())?;
        }
        Ok(BenchPki { dir })
    }

    /// Node `id`'s TLS: mutual, requiring client certificates, naming the node.
    pub(crate) fn node(&self, cluster_id: &str, id: NodeId) -> Result<NodeTls, Error> {
        let path = |name: String| self.dir.path().join(name);
        let files = TlsFiles::new(
            path("ca.pem".to_owned()),
            path(format!("node-{id}.pem")),
            path(format!("node-{id}.key")),
        );
        Ok(NodeTls {
            server: ServerTls::load(files.server(cluster_id, id))?,
            client: ClientTls::load(files.client(cluster_id, id))?,
        })
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Config(format!("cannot make {what}: {error}"))
}

fn write(dir: &TempDir, name: &str, contents: &str) -> Result<(), Error> {
    std::fs::write(dir.path().join(name), contents)
        .map_err(|e| Error::Config(format!("cannot write {name}: {e}")))
}
