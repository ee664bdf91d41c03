//! The crate's errors: [`Error`] for setting things up (addresses, configuration, binding),
//! [`RequestError`] for one failed peer request (it travels inside
//! [`raft_core::Error::Transport`] as the source), and [`ErrorCode`], the typed failure a server
//! puts on the wire so the client can rebuild a useful error.

use std::fmt;
use std::io;
use std::time::Duration;

use raft_core::NodeId;

use crate::codec::{DecodeError, EncodeError};

/// Errors of raft-http's setup: configuration, addresses, binding and metrics installation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A peer address is not `host:port` (or `http://host:port`, or `https://host:port` with
    /// TLS).
    #[error("invalid address {address:?} for node {peer}: {reason}")]
    InvalidAddress {
        /// The peer.
        peer: NodeId,
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration value is out of range or cannot go into a header.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server could not bind its listening address.
    #[error("cannot bind {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// The operating system's answer.
        #[source]
        source: io::Error,
    },
    /// Another I/O failure of the listener (for example reading its local address).
    #[error("listener I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The Prometheus recorder could not be installed (another recorder is already global).
    #[error("cannot install the Prometheus recorder: {0}")]
    Metrics(String),
    /// TLS material is unusable: a file that cannot be read or holds no usable PEM, a key that
    /// does not match its certificate, a certificate that does not name its node, a cluster id
    /// that cannot be part of a node name (see [`tls`](crate::tls)).
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<Error> for raft_core::Error {
    fn from(error: Error) -> raft_core::Error {
        raft_core::Error::Config(error.to_string())
    }
}

/// Why one request to a peer failed. It is the `source` of the [`raft_core::Error::Transport`]
/// that the [`HttpTransport`](crate::HttpTransport) returns, so a caller can downcast to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The transport has no address for this node.
    #[error("node {0} has no address in the transport's member list")]
    UnknownPeer(NodeId),
    /// The TCP connection (or the HTTP/2 handshake on it) could not be made.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The peer's address.
        address: String,
        /// What failed.
        reason: String,
    },
    /// The TLS handshake with the peer failed, or the peer answered in TLS a transport
    /// configured for plaintext (see [`tls`](crate::tls), "Failures").
    #[error("TLS with {address} failed: {reason}")]
    Tls {
        /// The peer's address.
        address: String,
        /// What failed, plainly.
        reason: String,
    },
    /// The last attempt to connect failed recently; the next one waits for the backoff.
    #[error("not reconnecting to {address} for another {retry_in:?} (last failure: {last})")]
    BackingOff {
        /// The peer's address.
        address: String,
        /// How long until the next attempt.
        retry_in: Duration,
        /// The failure that started the wait.
        last: String,
    },
    /// The HTTP exchange failed (connection closed, stream reset, protocol error).
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    /// The answer's body could not be read or was over the size limit.
    #[error("reading the answer failed: {0}")]
    Body(String),
    /// The peer answered with a failure status.
    #[error("the peer answered {status} ({code}): {message}")]
    Remote {
        /// The HTTP status.
        status: u16,
        /// The typed failure the peer sent.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
    /// The answer was not a valid message of the expected type.
    #[error("undecodable answer: {0}")]
    Decode(#[from] DecodeError),
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
}

impl RequestError {
    /// A short, stable name of the failure, used as the `kind` label of
    /// [`CLIENT_ERRORS`](crate::metrics::CLIENT_ERRORS).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::UnknownPeer(_) => "unknown_peer",
            RequestError::Connect { .. } => "connect",
            RequestError::Tls { .. } => "tls",
            RequestError::BackingOff { .. } => "backoff",
            RequestError::Http(_) => "http",
            RequestError::Body(_) => "body",
            RequestError::Remote { .. } => "status",
            RequestError::Decode(_) => "decode",
            RequestError::Encode(_) => "encode",
        }
    }

    /// The core error the transport returns for this failure: a peer's timeout, shutdown,
    /// overload or configuration refusal keep their meaning (as over the in-process
    /// `MemNetwork`); everything else is [`raft_core::Error::Transport`].
    #[must_use]
    pub fn into_core(self, peer: NodeId) -> raft_core::Error {
        match self {
            RequestError::Remote { code, message, .. } => match code {
                ErrorCode::Timeout => raft_core::Error::Timeout,
                ErrorCode::Shutdown => raft_core::Error::Shutdown,
                ErrorCode::Overloaded => raft_core::Error::Overloaded,
                ErrorCode::Config => raft_core::Error::Config(message),
                _ => raft_core::Error::transport(
                    peer,
                    RequestError::Remote {
                        status: code.status().as_u16(),
                        code,
                        message,
                    },
                ),
            },
            other => raft_core::Error::transport(peer, other),
        }
    }
}

/// The typed failure of a request, sent by the server in the
/// [`ERROR_CODE_HEADER`](crate::ERROR_CODE_HEADER) with a plain-text message as the body.
///
/// Each code has one HTTP status; a client reads the header (not the status) to rebuild the
/// error, and a person with `curl` reads the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: the cluster id (or the shared secret, when one is configured) is missing.
    Unauthenticated,
    /// 403: the cluster id or the shared secret is wrong.
    Forbidden,
    /// 401: the server requires a client certificate on the Raft routes (mutual TLS) and the
    /// connection presented none.
    CertificateRequired,
    /// 403: the client certificate does not name the node the request claims to come from
    /// (see [`tls`](crate::tls)).
    WrongNode,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists but not for this method.
    MethodNotAllowed,
    /// 408: the body did not arrive within the body read timeout.
    BodyTimeout,
    /// 413: the body is over the size limit.
    TooLarge,
    /// 415: the content type is not MessagePack.
    UnsupportedMediaType,
    /// 400: the body is not a valid message.
    Malformed,
    /// 400: the body's wire version is not one this server speaks.
    UnsupportedVersion,
    /// 422: the node refused the request as a configuration error (a sender outside its
    /// member list).
    Config,
    /// 503: the node is shutting down or stopped.
    Shutdown,
    /// 503: the node is overloaded.
    Overloaded,
    /// 504: the node did not answer in time.
    Timeout,
    /// 500: any other failure of the node.
    Internal,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::CertificateRequired,
        ErrorCode::WrongNode,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BodyTimeout,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Malformed,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Config,
        ErrorCode::Shutdown,
        ErrorCode::Overloaded,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];

    /// The token on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CertificateRequired => "certificate-required",
            ErrorCode::WrongNode => "wrong-node",
            ErrorCode::NotFound => "not-found",
            ErrorCode::MethodNotAllowed => "method-not-allowed",
            ErrorCode::BodyTimeout => "body-timeout",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::UnsupportedMediaType => "unsupported-media-type",
            ErrorCode::Malformed => "malformed",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::Config => "config",
            ErrorCode::Shutdown => "shutdown",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code of a wire token; unknown tokens (from a newer server) are `Internal`.
    #[must_use]
    pub fn parse(token: &str) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == token)
            .unwrap_or(ErrorCode::Internal)
    }

    /// The HTTP status the server answers with.
    #[must_use]
    pub fn status(self) -> hyper::StatusCode {
        use hyper::StatusCode as S;
        match self {
            ErrorCode::Unauthenticated | ErrorCode::CertificateRequired => S::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::WrongNode => S::FORBIDDEN,
            ErrorCode::NotFound => S::NOT_FOUND,
            ErrorCode::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            ErrorCode::BodyTimeout => S::REQUEST_TIMEOUT,
            ErrorCode::TooLarge => S::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Malformed | ErrorCode::UnsupportedVersion => S::BAD_REQUEST,
            ErrorCode::Config => S::UNPROCESSABLE_ENTITY,
            ErrorCode::Shutdown | ErrorCode::Overloaded => S::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => S::GATEWAY_TIMEOUT,
            ErrorCode::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code a server sends for a handler's error.
    #[must_use]
    pub fn of_core(error: &raft_core::Error) -> ErrorCode {
        match error {
            raft_core::Error::Shutdown | raft_core::Error::Aborted => ErrorCode::Shutdown,
            raft_core::Error::Overloaded => ErrorCode::Overloaded,
            raft_core::Error::Timeout => ErrorCode::Timeout,
            raft_core::Error::Config(_) => ErrorCode::Config,
            _ => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_their_tokens() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(ErrorCode::parse("from-the-future"), ErrorCode::Internal);
    }

    #[test]
    fn remote_failures_keep_their_core_meaning() {
        let remote = |code| RequestError::Remote {
            status: 0,
            code,
            message: "m".to_owned(),
        };
        let peer = NodeId(2);
        assert!(matches!(
            remote(ErrorCode::Timeout).into_core(peer),
            raft_core::Error::Timeout
        ));
        assert!(matches!(
            remote(ErrorCode::Shutdown).into_core(peer),
            raft_core::Error::Shutdown
        ));
        assert!(matches!(
            remote(ErrorCode::Config).into_core(peer),
            raft_core::Error::Config(m) if m == "m"
        ));
        assert!(matches!(
            remote(ErrorCode::Forbidden).into_core(peer),
            raft_core::Error::Transport {
                peer: NodeId(2),
                ..
            }
        ));
    }
}
