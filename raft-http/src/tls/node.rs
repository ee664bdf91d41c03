//! [`TlsFiles`] (one node's PEM files for both directions) and [`TlsReloader`] (both
//! directions reloaded together).

use std::path::PathBuf;

use raft_core::NodeId;

use super::client::{ClientTls, ClientTlsFiles};
use super::server::{ServerTls, ServerTlsFiles};
use crate::error::Error;

/// The PEM files of one node's TLS for both directions: the peers' CA, and this node's
/// certificate chain and private key (the certificate naming the node, see the
/// [module docs](crate::tls)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The CA certificate(s) that signed the peers' certificates.
    pub ca: PathBuf,
    /// This node's certificate chain, its own certificate first.
    pub certificate: PathBuf,
    /// This node's private key.
    pub private_key: PathBuf,
}

impl TlsFiles {
    /// The three files.
    #[must_use]
    pub fn new(
        ca: impl Into<PathBuf>,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> TlsFiles {
        TlsFiles {
            ca: ca.into(),
            certificate: certificate.into(),
            private_key: private_key.into(),
        }
    }

    /// The server side of node `id`: this certificate (checked to name the node), client
    /// certificates required and verified against the CA.
    #[must_use]
    pub fn server(&self, cluster_id: &str, id: NodeId) -> ServerTlsFiles {
        ServerTlsFiles::new(&self.certificate, &self.private_key)
            .with_client_ca(&self.ca)
            .for_node(cluster_id, id)
    }

    /// The client side of node `id`: servers verified against the CA, this certificate (checked
    /// to name the node) presented to them.
    #[must_use]
    pub fn client(&self, cluster_id: &str, id: NodeId) -> ClientTlsFiles {
        ClientTlsFiles::new(&self.ca)
            .with_certificate(&self.certificate, &self.private_key)
            .for_node(cluster_id, id)
    }
}

/// Reloads a node's server and client TLS together (see the [module docs](crate::tls)), for example
/// on SIGHUP; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TlsReloader {
    server: Option<ServerTls>,
    client: Option<ClientTls>,
}

impl TlsReloader {
    /// A reloader of these configurations.
    #[must_use]
    pub fn new(server: Option<ServerTls>, client: Option<ClientTls>) -> TlsReloader {
        TlsReloader { server, client }
    }

    /// Reloads both from their files. Each keeps its configuration in force if its reload
    /// fails.
    ///
    /// # Errors
    /// The first failure ([`Error::Tls`]); the other side is reloaded all the same.
    pub fn reload(&self) -> Result<(), Error> {
        let server = self.server.as_ref().map_or(Ok(()), ServerTls::reload);
        let client = self.client.as_ref().map_or(Ok(()), ClientTls::reload);
        server.and(client)
    }

    /// Checks both sides' files every `every` and reloads on a change (see
    /// [`ServerTls::watch`]).
    ///
    /// # Errors
    /// [`Error::Config`] outside a tokio runtime or for a zero interval.
    pub fn watch(&self, every: std::time::Duration) -> Result<(), Error> {
        if let Some(server) = &self.server {
            server.watch(every)?;
        }
        if let Some(client) = &self.client {
            client.watch(every)?;
        }
        Ok(())
    }
}
