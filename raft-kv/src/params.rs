//! The parameters of a client request beside its route: the read consistency of a `GET`
//! (`?consistency=...`) and the exactly-once session headers of a write.

use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderName};
use raft_wrapper::{ClientId, RequestId};

use crate::reply::Refusal;

/// Header carrying a client's id (decimal `u64`), for exactly-once retries.
pub const CLIENT_ID_HEADER: &str = "client-id";
/// Header carrying the request's id (decimal `u64`, from 1, increasing per client).
pub const REQUEST_ID_HEADER: &str = "request-id";

/// How a GET is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consistency {
    /// Confirmed by a quorum (ReadIndex); a follower serves it itself once it has applied the
    /// read index its leader gave it: the default (`follower` is the same).
    Linearizable,
    /// Through the leader, from its lease when it holds one (no round trip; trusts clocks).
    Lease,
    /// This replica's state, without asking anyone.
    Stale,
}

/// `?consistency=linearizable|follower|lease|stale` (default linearizable, which a follower
/// serves itself, as `follower` says); `?stale=true` (or `1`) is kept as another way to ask
/// for `stale`.
pub(crate) fn consistency(query: Option<&str>) -> Result<Consistency, Refusal> {
    let mut consistency = Consistency::Linearizable;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, "true"));
        consistency = match (name, value) {
            ("stale", "true" | "1") | ("consistency", "stale") => Consistency::Stale,
            ("stale", "false" | "0") | ("consistency", "linearizable" | "follower") => {
                Consistency::Linearizable
            }
            ("consistency", "lease") => Consistency::Lease,
            ("stale", other) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("stale={other}: use true or false"),
                ));
            }
            ("consistency", other) => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("consistency={other}: use linearizable, follower, lease or stale"),
                ));
            }
            _ => consistency,
        };
    }
    Ok(consistency)
}

/// Both session headers, or neither.
pub(crate) fn session_ids(headers: &HeaderMap) -> Result<Option<(ClientId, RequestId)>, Refusal> {
    // Looked up by prebuilt names: a `&str` name would be parsed and validated on every call.
    const CLIENT_ID: HeaderName = HeaderName::from_static(CLIENT_ID_HEADER);
    const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    let parse = |name: &HeaderName| -> Result<Option<u64>, Refusal> {
        headers
            .get(name)
            .map(|value| {
                value
                    .to_str()
                    .ok()
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Refusal::new(
                            StatusCode::BAD_REQUEST,
                            format!("{name} must be a decimal u64"),
                        )
                    })
            })
            .transpose()
    };
    match (parse(&CLIENT_ID)?, parse(&REQUEST_ID)?) {
        (Some(client), Some(request)) => Ok(Some((ClientId(client), RequestId(request)))),
        (None, None) => Ok(None),
        _ => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "send both Client-Id and Request-Id, or neither",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn session_headers_come_in_pairs_of_numbers() {
        let mut headers = HeaderMap::new();
        assert!(matches!(session_ids(&headers), Ok(None)));
        headers.insert(CLIENT_ID_HEADER, HeaderValue::from_static("7"));
        assert!(session_ids(&headers).is_err());
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("x"));
        assert!(session_ids(&headers).is_err());
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("3"));
        assert!(matches!(
            session_ids(&headers),
            Ok(Some((ClientId(7), RequestId(3))))
        ));
    }
}
