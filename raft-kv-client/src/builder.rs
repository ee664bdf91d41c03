//! [`ClientBuilder`]: a client's endpoints, HTTP version, token, TLS and timeouts.

use std::fmt;
use std::time::Duration;

use hyper::header::HeaderValue;

use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::engine::{Engine, Timeouts};
use crate::error::Error;
use crate::options::{Consistency, Protocol};
use crate::pool::{Pool, PoolConfig};
use crate::route::Router;
use crate::session::Sessions;
#[cfg(feature = "tls")]
use crate::tls::TlsConfig;

/// Default [`ClientBuilder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`ClientBuilder::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ClientBuilder::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Builds a [`Client`].
///
/// ```
/// use std::time::Duration;
///
/// use raft_kv_client::{Client, Consistency, Protocol};
///
/// let client = Client::builder(["http://kv-1.example:7001", "http://kv-2.example:7001", "kv-3.example:7001"])
///     .api_token("s3cret")
///     .protocol(Protocol::Http2)
///     .request_timeout(Duration::from_secs(2))
///     .deadline(Duration::from_secs(10))
///     .consistency(Consistency::Lease)
///     .build()?;
/// # Ok::<(), raft_kv_client::Error>(())
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    protocol: Protocol,
    api_token: Option<String>,
    connect_timeout: Duration,
    timeouts: Timeouts,
    consistency: Consistency,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoints", &self.endpoints)
            .field("protocol", &self.protocol)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeouts", &self.timeouts)
            .field("consistency", &self.consistency)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for a client of the cluster at `endpoints` (`http://host:port`,
    /// `https://host:port`, or `host:port`: then `https` with [`ClientBuilder::tls`], else
    /// `http`). Any members will do: the client finds the leader from them.
    #[must_use]
    pub fn builder<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            protocol: Protocol::default(),
            api_token: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeouts: Timeouts {
                request: DEFAULT_REQUEST_TIMEOUT,
                deadline: DEFAULT_DEADLINE,
            },
            consistency: Consistency::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// A client of the cluster at `endpoints` with the default settings (HTTP/2, no token,
    /// linearizable reads, [`DEFAULT_DEADLINE`]).
    ///
    /// # Errors
    /// [`Error::Config`] as [`ClientBuilder::build`].
    pub fn new<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Client::builder(endpoints).build()
    }
}

impl ClientBuilder {
    /// The HTTP version (default [`Protocol::Http2`]).
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> ClientBuilder {
        self.protocol = protocol;
        self
    }

    /// The API token, sent as `Authorization: Bearer <token>` with every request (a node
    /// started with an API token refuses writes without it).
    #[must_use]
    pub fn api_token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.api_token = Some(token.into());
        self
    }

    /// The longest a new connection (TCP, TLS and HTTP handshakes) may take before the client
    /// tries another node (default [`DEFAULT_CONNECT_TIMEOUT`]).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// The longest one attempt of a call may take, connecting included, before it is retried
    /// (default [`DEFAULT_REQUEST_TIMEOUT`]).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeouts.request = timeout;
        self
    }

    /// The longest a call may take, retries included (default [`DEFAULT_DEADLINE`]); see
    /// [`Client::with_deadline`] for one call.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> ClientBuilder {
        self.timeouts.deadline = deadline;
        self
    }

    /// The consistency of [`Client::get`] (default [`Consistency::Linearizable`]).
    #[must_use]
    pub fn consistency(mut self, consistency: Consistency) -> ClientBuilder {
        self.consistency = consistency;
        self
    }

    /// How `https` endpoints are verified; endpoints without a scheme are then `https`.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> ClientBuilder {
        self.tls = Some(tls);
        self
    }

    /// The client. Needs no runtime; its calls run on Tokio.
    ///
    /// # Errors
    /// [`Error::Config`]: no endpoint, a malformed one, an `https` endpoint without
    /// [`ClientBuilder::tls`], or a token that cannot be a header.
    pub fn build(self) -> Result<Client, Error> {
        #[cfg(feature = "tls")]
        let tls_configured = self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls_configured = false;
        let endpoints = self
            .endpoints
            .iter()
            .map(|text| Endpoint::parse(text, tls_configured))
            .collect::<Result<Vec<_>, String>>()
            .map_err(Error::Config)?;
        if endpoints.is_empty() {
            return Err(Error::Config("no endpoints".to_owned()));
        }
        if let Some(https) = endpoints.iter().find(|e| e.tls && !tls_configured) {
            return Err(Error::Config(format!(
                "{https} needs TLS: {}",
                if cfg!(feature = "tls") {
                    "give the client a TlsConfig"
                } else {
                    "build raft-kv-client with its tls feature"
                }
            )));
        }
        let authorization = self
            .api_token
            .map(|token| {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        Error::Config("the API token cannot be sent in a header".into())
                    })?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let pool = Pool::new(PoolConfig {
            protocol: self.protocol,
            connect_timeout: self.connect_timeout,
            #[cfg(feature = "tls")]
            tls: self.tls.map(|tls| {
                tls.connector(match self.protocol {
                    Protocol::Http2 => b"h2",
                    Protocol::Http1 => b"http/1.1",
                })
            }),
        });
        let engine = Engine {
            router: Router::new(endpoints),
            pool,
            sessions: Sessions::new(),
            authorization,
        };
        Ok(Client::from_parts(engine, self.timeouts, self.consistency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_configurations_are_refused() {
        assert!(matches!(
            Client::new(Vec::<String>::new()),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new(["http://h:1", "nonsense"]),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new(["https://h:1"]),
            Err(Error::Config(message)) if message.contains("TLS")
        ));
        assert!(matches!(
            Client::builder(["h:1"]).api_token("bad\ntoken").build(),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn a_built_client_has_a_random_id_and_no_leader_yet() {
        let a = Client::new(["127.0.0.1:1"]).unwrap();
        let b = Client::new(["127.0.0.1:1"]).unwrap();
        assert_ne!(a.client_id(), b.client_id());
        assert_eq!(a.clone().client_id(), a.client_id());
        assert_eq!(a.leader(), None);
        let debug = format!("{:?}", Client::builder(["h:1"]).api_token("s3cret"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
