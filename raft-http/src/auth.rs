//! Who may talk to a node: every request carries the cluster id and, when one is configured,
//! a shared secret. A server refuses a request without them (401) or with wrong ones (403)
//! before it reads the body, so a stranger never reaches the Raft node.
//!
//! The secret is compared in constant time (`subtle`), so response timing does not reveal how
//! many leading bytes of a guess were right. The cluster id is not a secret, but it goes through
//! the same comparison for simplicity.

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorCode};

/// The request header that carries the cluster id.
pub const CLUSTER_ID_HEADER: &str = "raft-cluster-id";
/// The request header that carries the shared secret.
pub const SECRET_HEADER: &str = "raft-secret";

/// The cluster id and optional shared secret, the same on every node and client of a cluster.
#[derive(Clone)]
pub struct ClusterAuth {
    cluster_id: HeaderValue,
    secret: Option<HeaderValue>,
}

impl std::fmt::Debug for ClusterAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAuth")
            .field("cluster_id", &self.cluster_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ClusterAuth {
    /// A cluster id, without a secret.
    ///
    /// # Errors
    /// [`Error::Config`] if the id is empty or cannot go into an HTTP header (visible ASCII).
    pub fn new(cluster_id: &str) -> Result<ClusterAuth, Error> {
        Ok(ClusterAuth {
            cluster_id: header_value("cluster id", cluster_id)?,
            secret: None,
        })
    }

    /// Adds a shared secret that every request must carry.
    ///
    /// # Errors
    /// [`Error::Config`] if the secret is empty or not visible ASCII.
    pub fn with_secret(mut self, secret: &str) -> Result<ClusterAuth, Error> {
        let mut value = header_value("secret", secret)?;
        value.set_sensitive(true);
        self.secret = Some(value);
        Ok(self)
    }

    /// The cluster id.
    #[must_use]
    pub fn cluster_id(&self) -> &str {
        // Checked visible ASCII at construction.
        self.cluster_id.to_str().unwrap_or_default()
    }

    /// Adds this side's credentials to a request's headers.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(CLUSTER_ID_HEADER, self.cluster_id.clone());
        if let Some(secret) = &self.secret {
            headers.insert(SECRET_HEADER, secret.clone());
        }
    }

    /// Checks a request's credentials: `Err(Unauthenticated)` when one is missing,
    /// `Err(Forbidden)` when one is wrong.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), ErrorCode> {
        check_one(headers, CLUSTER_ID_HEADER, &self.cluster_id)?;
        if let Some(secret) = &self.secret {
            check_one(headers, SECRET_HEADER, secret)?;
        }
        Ok(())
    }
}

fn check_one(headers: &HeaderMap, name: &str, expected: &HeaderValue) -> Result<(), ErrorCode> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // Missing, or sent twice (ambiguous: refused as missing).
        return Err(ErrorCode::Unauthenticated);
    };
    if bool::from(value.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ErrorCode::Forbidden)
    }
}

fn header_value(what: &str, value: &str) -> Result<HeaderValue, Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "the {what} must be non-empty visible ASCII (no spaces)"
        )));
    }
    HeaderValue::from_str(value).map_err(|e| Error::Config(format!("the {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn missing_credentials_are_unauthenticated_and_wrong_ones_forbidden() {
        let auth = ClusterAuth::new("c1")
            .unwrap()
            .with_secret("s3cret")
            .unwrap();
        let ok = headers(&[(CLUSTER_ID_HEADER, "c1"), (SECRET_HEADER, "s3cret")]);
        assert_eq!(auth.check(&ok), Ok(()));
        let no_secret = headers(&[(CLUSTER_ID_HEADER, "c1")]);
        assert_eq!(auth.check(&no_secret), Err(ErrorCode::Unauthenticated));
        let wrong_secret = headers(&[(CLUSTER_ID_HEADER, "c1"), (SECRET_HEADER, "s3cre")]);
        assert_eq!(auth.check(&wrong_secret), Err(ErrorCode::Forbidden));
        let wrong_cluster = headers(&[(CLUSTER_ID_HEADER, "c2"), (SECRET_HEADER, "s3cret")]);
        assert_eq!(auth.check(&wrong_cluster), Err(ErrorCode::Forbidden));
        let twice = headers(&[
            (CLUSTER_ID_HEADER, "c1"),
            (CLUSTER_ID_HEADER, "c1"),
            (SECRET_HEADER, "s3cret"),
        ]);
        assert_eq!(auth.check(&twice), Err(ErrorCode::Unauthenticated));
    }

    #[test]
    fn credentials_must_be_visible_ascii() {
        assert!(ClusterAuth::new("").is_err());
        assert!(ClusterAuth::new("a b").is_err());
        assert!(ClusterAuth::new("c").unwrap().with_secret("é").is_err());
        let debug = format!("{:?}", ClusterAuth::new("c").unwrap().with_secret("hidden"));
        assert!(!debug.contains("hidden"), "{debug}");
    }
}
