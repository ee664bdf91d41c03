//! How [`RaftService`](crate::RaftService) refuses a request: [`Failure`] (a typed code and a
//! message), the checks every route runs on a request's headers before reading its body
//! ([`check_headers`]) and on the sender a decoded message names ([`check_sender`]), and the
//! failure's answer ([`failure_response`]). The RPC routes (`server.rs`) and the entry stream
//! route (`stream_route.rs`) share them.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use raft_core::NodeId;

use crate::body::ResponseBody;
use crate::codec::{CONTENT_TYPE, DecodeError};
use crate::error::ErrorCode;
use crate::routes::ERROR_CODE_HEADER;
use crate::service_config::ServiceConfig;
use crate::tls::{PeerCertificate, node_name};

/// A refusal: its code (which gives the status) and a message for the body.
pub(crate) struct Failure {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// The methods a 405 names in its `Allow` header.
    pub(crate) allow: &'static str,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            allow: "POST",
        }
    }
}

impl From<DecodeError> for Failure {
    fn from(error: DecodeError) -> Failure {
        let code = match error {
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::Malformed,
        };
        Failure::new(code, error.to_string())
    }
}

impl From<raft_core::Error> for Failure {
    fn from(error: raft_core::Error) -> Failure {
        Failure::new(ErrorCode::of_core(&error), error.to_string())
    }
}

/// The checks before any body is read, each refusing with its own status: method (405),
/// cluster id and secret (401/403), a client certificate when one is required (401), content
/// type (415).
pub(crate) fn check_headers<B>(
    config: &ServiceConfig,
    request: &Request<B>,
) -> Result<(), Failure> {
    if request.method() != Method::POST {
        return Err(Failure::new(ErrorCode::MethodNotAllowed, "use POST"));
    }
    if let Err(code) = config.auth.check(request.headers()) {
        let message = match code {
            ErrorCode::Unauthenticated => "missing cluster id or secret",
            _ => "wrong cluster id or secret",
        };
        return Err(Failure::new(code, message));
    }
    if config.require_peer_certificate && request.extensions().get::<PeerCertificate>().is_none() {
        return Err(Failure::new(
            ErrorCode::CertificateRequired,
            "the Raft routes need a client certificate naming the sending node (mutual TLS)",
        ));
    }
    if !is_msgpack(request.headers().get(header::CONTENT_TYPE)) {
        return Err(Failure::new(
            ErrorCode::UnsupportedMediaType,
            format!("the content type must be {CONTENT_TYPE}"),
        ));
    }
    Ok(())
}

/// With a client certificate, the message's sender must be a node it names (403 otherwise).
pub(crate) fn check_sender(
    config: &ServiceConfig,
    peer: Option<&PeerCertificate>,
    sender: NodeId,
) -> Result<(), Failure> {
    let Some(peer) = peer else {
        return Ok(());
    };
    let cluster_id = config.auth.cluster_id();
    if peer.names_node(cluster_id, sender) {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::WrongNode,
        format!(
            "the request comes from node {sender}, but the client certificate names {}: \
             node {sender}'s certificate must carry the DNS name {}",
            peer.describe(cluster_id),
            node_name(cluster_id, sender)
        ),
    ))
}

pub(crate) fn too_large(limit: usize) -> Failure {
    Failure::new(
        ErrorCode::TooLarge,
        format!("the body is over the limit of {limit} bytes"),
    )
}

/// `application/msgpack` (or the `x-` / `vnd.` spellings), parameters ignored.
fn is_msgpack(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    [
        "application/msgpack",
        "application/x-msgpack",
        "application/vnd.msgpack",
    ]
    .iter()
    .any(|accepted| essence.eq_ignore_ascii_case(accepted))
}

pub(crate) fn failure_response(failure: Failure) -> Response<ResponseBody> {
    let mut builder = Response::builder()
        .status(failure.code.status())
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .header(
            ERROR_CODE_HEADER,
            HeaderValue::from_static(failure.code.as_str()),
        );
    if failure.code == ErrorCode::MethodNotAllowed {
        builder = builder.header(header::ALLOW, HeaderValue::from_static(failure.allow));
    }
    builder
        .body(ResponseBody::from(failure.message))
        .unwrap_or_else(|_| {
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_content_types_are_recognised() {
        let ok = |v: &'static str| is_msgpack(Some(&HeaderValue::from_static(v)));
        assert!(ok("application/msgpack"));
        assert!(ok("Application/MsgPack; charset=binary"));
        assert!(ok("application/x-msgpack"));
        assert!(!ok("application/json"));
        assert!(!ok("application/msgpackx"));
        assert!(!is_msgpack(None));
    }
}
