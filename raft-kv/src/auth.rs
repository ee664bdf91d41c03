//! Bearer tokens on the client API.
//!
//! With an API token (`--api-token`), every write (`PUT` and `DELETE` on `/kv/{key}`, `POST`
//! on `/kv/{key}/incr`) and every admin route (`/admin/...`, listing the members included) want
//! `Authorization: Bearer <token>`, and answer 401 without it. Reads (`GET /kv/{key}`,
//! `/status`, `/metrics`) stay open: they change nothing, and a deployment that must hide its
//! data keeps the client API on a private network or behind a proxy. Without an API token the
//! admin routes want the cluster secret instead, when there is one (the behaviour before API
//! tokens), and writes are open. The token is compared in constant time.

use std::fmt;
use std::sync::Arc;

use hyper::header::{self, HeaderMap};

/// A bearer token a request must carry, if one is set.
#[derive(Clone, Default)]
pub(crate) struct Bearer {
    token: Option<Arc<str>>,
    /// What the token is, for the 401 message ("API token", "cluster secret").
    what: &'static str,
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("what", &self.what)
            .finish()
    }
}

impl Bearer {
    /// `token`, if set, named `what` in refusals.
    pub(crate) fn new(token: Option<&str>, what: &'static str) -> Bearer {
        Bearer {
            token: token.map(Arc::from),
            what,
        }
    }

    /// Whether a token is set.
    pub(crate) fn is_set(&self) -> bool {
        self.token.is_some()
    }

    /// Whether a request with these headers may pass: it carries the token, or none is set.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|presented| constant_time_eq(presented.as_bytes(), token.as_bytes()))
    }

    /// The message of a 401 for a request without the token.
    pub(crate) fn refusal(&self, routes: &str) -> String {
        format!("{routes} need Authorization: Bearer <{}>", self.what)
    }
}

/// Equality that takes as long whatever the first difference (the lengths may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let bearer = Bearer::new(Some("s3cret"), "API token");
        let mut headers = HeaderMap::new();
        assert!(!bearer.allows(&headers));
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret ",
            "bearer s3cret",
            "s3cret",
            "Basic x",
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(wrong));
            assert!(!bearer.allows(&headers), "{wrong}");
        }
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(bearer.allows(&headers));
        assert!(Bearer::new(None, "API token").allows(&HeaderMap::new()));
        assert!(!format!("{bearer:?}").contains("s3cret"));
        assert_eq!(
            bearer.refusal("writes"),
            "writes need Authorization: Bearer <API token>"
        );
    }
}
