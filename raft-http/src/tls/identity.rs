//! The naming rule: node `<id>` of cluster `<cluster-id>` is the DNS name
//! `node-<id>.<cluster-id>` in its certificate ([`node_name`]); [`PeerCertificate`] reads the
//! names of a peer's certificate.

use std::sync::Arc;

use raft_core::NodeId;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::Error;

/// The DNS name a certificate of node `id` of cluster `cluster_id` carries:
/// `node-<id>.<cluster-id>` (see the [module docs](crate::tls)).
///
/// ```
/// use raft_core::NodeId;
/// assert_eq!(raft_http::tls::node_name("prod", NodeId(3)), "node-3.prod");
/// ```
#[must_use]
pub fn node_name(cluster_id: &str, id: NodeId) -> String {
    format!("node-{id}.{cluster_id}")
}

/// [`node_name`] as the name a client asks for; refused when the cluster id cannot be part of
/// a DNS name.
pub(crate) fn server_name(cluster_id: &str, id: NodeId) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(node_name(cluster_id, id)).map_err(|_| {
        Error::Tls(format!(
            "the cluster id {cluster_id:?} cannot be part of a DNS name ({}), which is how \
             certificates name nodes: use letters, digits, '-', '_' and dots",
            node_name(cluster_id, id)
        ))
    })
}

/// The names of a peer's certificate: what a [`Server`](crate::Server) with TLS attaches to
/// every request of a connection whose client presented a certificate (chained to the
/// server's client CA: verified during the handshake), as a request extension.
/// [`RaftService`](crate::RaftService) reads it to check the sender's node id; an
/// application's routes may read it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The DNS names of the subject alternative names, lowercase.
    names: Arc<[String]>,
}

impl PeerCertificate {
    /// The names of a DER certificate (the end-entity certificate a peer presented).
    ///
    /// # Errors
    /// [`Error::Tls`] if it is not an X.509 certificate.
    pub fn from_der(certificate: &[u8]) -> Result<PeerCertificate, Error> {
        let der = CertificateDer::from(certificate);
        let parsed = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| Error::Tls(format!("unreadable peer certificate: {e}")))?;
        let names: Vec<String> = parsed
            .valid_dns_names()
            .map(str::to_ascii_lowercase)
            .collect();
        Ok(PeerCertificate {
            names: names.into(),
        })
    }

    /// Its DNS names, lowercase.
    #[must_use]
    pub fn dns_names(&self) -> &[String] {
        &self.names
    }

    /// Whether it names node `id` of cluster `cluster_id` (carries [`node_name`]).
    #[must_use]
    pub fn names_node(&self, cluster_id: &str, id: NodeId) -> bool {
        let wanted = node_name(cluster_id, id);
        self.names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&wanted))
    }

    /// The nodes of cluster `cluster_id` it names.
    #[must_use]
    pub fn node_ids(&self, cluster_id: &str) -> Vec<NodeId> {
        let suffix = format!(".{}", cluster_id.to_ascii_lowercase());
        self.names
            .iter()
            .filter_map(|name| name.strip_suffix(&suffix)?.strip_prefix("node-"))
            .filter_map(|id| id.parse::<u64>().ok().map(NodeId))
            .filter(|id| self.names_node(cluster_id, *id))
            .collect()
    }

    /// What it names, for messages: its nodes of `cluster_id`, or else its names.
    pub(crate) fn describe(&self, cluster_id: &str) -> String {
        let nodes = self.node_ids(cluster_id);
        if !nodes.is_empty() {
            let ids: Vec<String> = nodes.iter().map(ToString::to_string).collect();
            format!("node {} of cluster {cluster_id}", ids.join(", "))
        } else if self.names.is_empty() {
            "no DNS name".to_owned()
        } else {
            format!("only {}", self.names.join(", "))
        }
    }
}

/// Checks that the end-entity certificate of a node's own chain names it.
pub(crate) fn check_own_name(
    chain: &[CertificateDer<'static>],
    cluster_id: &str,
    id: NodeId,
    path: &str,
) -> Result<(), Error> {
    server_name(cluster_id, id)?;
    let Some(own) = chain.first() else {
        return Err(Error::Tls(format!("{path}: no certificate")));
    };
    let certificate = PeerCertificate::from_der(own)?;
    if certificate.names_node(cluster_id, id) {
        return Ok(());
    }
    Err(Error::Tls(format!(
        "the certificate in {path} does not name node {id}: it must carry the DNS name {} \
         (it names {})",
        node_name(cluster_id, id),
        certificate.describe(cluster_id)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_need_a_cluster_id_fit_for_dns() {
        assert_eq!(node_name("raft-kv", NodeId(12)), "node-12.raft-kv");
        assert!(server_name("raft-kv", NodeId(1)).is_ok());
        assert!(server_name("east_1.example", NodeId(1)).is_ok());
        let error = server_name("a/b", NodeId(1)).unwrap_err().to_string();
        assert!(error.contains("node-1.a/b"), "{error}");
    }

    #[test]
    fn node_ids_come_from_exact_names_only() {
        let certificate = PeerCertificate {
            names: vec![
                "node-2.prod".to_owned(),
                "node-007.prod".to_owned(),
                "*.prod".to_owned(),
                "node-3.other".to_owned(),
                "node-x.prod".to_owned(),
            ]
            .into(),
        };
        assert_eq!(certificate.node_ids("prod"), [NodeId(2)]);
        assert_eq!(certificate.node_ids("PROD"), [NodeId(2)]);
        assert!(certificate.names_node("prod", NodeId(2)));
        assert!(!certificate.names_node("prod", NodeId(7)));
        assert!(!certificate.names_node("prod", NodeId(3)));
        assert_eq!(certificate.describe("prod"), "node 2 of cluster prod");
        assert!(certificate.describe("nope").starts_with("only node-2.prod"));
        assert!(PeerCertificate::from_der(b"not a certificate").is_err());
    }
}
