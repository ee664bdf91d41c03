//! [`Client`]: the calls of the raft-kv API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use hyper::header::{self, HeaderValue};
use percent_encoding::{NON_ALPHANUMERIC, percent_encode};

use crate::answer::{self, Incremented, Versioned, Written};
use crate::batch::{Batch, BatchOutcome};
use crate::engine::{Call, Engine, Timeouts};
use crate::error::Error;
use crate::options::{Condition, Consistency};
use crate::route::Target;

/// A raft-kv client: cheap to clone (clones share connections, the leader found and the
/// exactly-once sessions) and safe to use from many tasks at once.
///
/// Every call is retried until it gets an answer or its deadline passes (see
/// [`ClientBuilder::deadline`](crate::ClientBuilder::deadline)); writes are exactly-once across
/// those retries. Build one with [`Client::builder`] or [`Client::new`].
///
/// ```no_run
/// use raft_kv_client::{Client, Error};
///
/// # async fn example() -> Result<(), Error> {
/// let client = Client::new(["http://127.0.0.1:7001", "http://127.0.0.1:7002"])?;
/// client.put("greeting", "hello").await?;
/// let read = client.get("greeting").await?;
/// assert_eq!(read.value, "hello");
/// let visits = client.incr("visits").await?.value;
/// match client.get("missing").await {
///     Err(Error::NotFound) => {}
///     other => panic!("{other:?}"),
/// }
/// # let _ = visits;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    engine: Arc<Engine>,
    timeouts: Timeouts,
    consistency: Consistency,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id())
            .field("leader", &self.leader())
            .field("timeouts", &self.timeouts)
            .field("consistency", &self.consistency)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client over `engine`.
    pub(crate) fn from_parts(
        engine: Engine,
        timeouts: Timeouts,
        consistency: Consistency,
    ) -> Client {
        Client {
            engine: Arc::new(engine),
            timeouts,
            consistency,
        }
    }

    /// This client's id (random, chosen when it was built): its writes carry it as
    /// `Client-Id` (writes overlapping in time use further random ids, see the crate docs).
    #[must_use]
    pub fn client_id(&self) -> u64 {
        self.engine.sessions.client_id()
    }

    /// The leader's URL, if the client knows it.
    #[must_use]
    pub fn leader(&self) -> Option<String> {
        self.engine.router.leader().map(|e| e.to_string())
    }

    /// This client with another deadline for each call (retries included); it shares
    /// everything else with `self`.
    #[must_use]
    pub fn with_deadline(&self, deadline: Duration) -> Client {
        let mut client = self.clone();
        client.timeouts.deadline = deadline;
        client
    }

    /// This client with another timeout for each attempt of a call; it shares everything else
    /// with `self`.
    #[must_use]
    pub fn with_request_timeout(&self, timeout: Duration) -> Client {
        let mut client = self.clone();
        client.timeouts.request = timeout;
        client
    }

    /// Reads `key` with the client's default consistency (linearizable unless the builder
    /// said otherwise).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key does not exist; see [`Error`] for the others.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Versioned, Error> {
        self.get_with(key, self.consistency).await
    }

    /// Reads `key` with `consistency`.
    ///
    /// ```no_run
    /// use raft_kv_client::{Client, Consistency};
    ///
    /// # async fn example(client: Client) -> Result<(), raft_kv_client::Error> {
    /// // Any replica's current state, possibly behind: no quorum round trip.
    /// let cached = client.get_with("config", Consistency::Stale).await?;
    /// # let _ = cached;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key does not exist; see [`Error`] for the others.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        consistency: Consistency,
    ) -> Result<Versioned, Error> {
        let path = format!(
            "{}?consistency={}",
            key_path(key.as_ref()),
            consistency.as_str()
        );
        let target = if consistency.wants_leader() {
            Target::Leader
        } else {
            Target::Any
        };
        let call = Call::new(Method::GET, path, target, false);
        answer::versioned(self.execute(call).await?)
    }

    /// Sets `key` to `value`, exactly once.
    ///
    /// # Errors
    /// See [`Error`]; a failed write was not applied unless
    /// [`Error::is_outcome_unknown`].
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
    ) -> Result<Written, Error> {
        self.write_put(key.as_ref(), value.into(), None).await
    }

    /// Sets `key` to `value` if `condition` holds: compare-and-set on the key's version, or
    /// create-only.
    ///
    /// ```no_run
    /// use raft_kv_client::{Client, Condition, Error};
    ///
    /// # async fn example(client: Client) -> Result<(), Error> {
    /// // Read, change, write back unless someone wrote in between.
    /// let read = client.get("doc").await?;
    /// let version = read.version.unwrap_or_default();
    /// let mut doc = read.value.to_vec();
    /// doc.extend_from_slice(b" and more");
    /// match client.put_if("doc", doc, Condition::Version(version)).await {
    ///     Ok(written) => println!("now at version {}", written.version),
    ///     Err(Error::PreconditionFailed { current }) => println!("lost the race to {current:?}"),
    ///     Err(error) => return Err(error),
    /// }
    /// // Create-only: fails with PreconditionFailed if "lock" exists.
    /// client.put_if("lock", "owner-1", Condition::Absent).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] (not applied) when the condition does not hold; see
    /// [`Error`] for the others.
    pub async fn put_if(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        condition: Condition,
    ) -> Result<Written, Error> {
        self.write_put(key.as_ref(), value.into(), Some(condition))
            .await
    }

    async fn write_put(
        &self,
        key: &[u8],
        value: Bytes,
        condition: Option<Condition>,
    ) -> Result<Written, Error> {
        let mut call = Call::new(Method::PUT, key_path(key), Target::Leader, true);
        call.body = value;
        call.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        match condition {
            Some(Condition::Version(version)) => {
                call.headers.insert(header::IF_MATCH, etag(version));
            }
            Some(Condition::Absent) => {
                call.headers
                    .insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
            }
            None => {}
        }
        answer::written(self.execute(call).await?)
    }

    /// Removes `key`, exactly once (removing an absent key succeeds).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<Written, Error> {
        let call = Call::new(Method::DELETE, key_path(key.as_ref()), Target::Leader, true);
        answer::written(self.execute(call).await?)
    }

    /// Removes `key` if its version is `version`.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] (not applied) when the key's version is another or the
    /// key is absent; see [`Error`] for the others.
    pub async fn delete_if(&self, key: impl AsRef<[u8]>, version: u64) -> Result<Written, Error> {
        let mut call = Call::new(Method::DELETE, key_path(key.as_ref()), Target::Leader, true);
        call.headers.insert(header::IF_MATCH, etag(version));
        answer::written(self.execute(call).await?)
    }

    /// Adds 1 to the decimal integer at `key` (absent counts as 0), exactly once, and returns
    /// the new value.
    ///
    /// ```no_run
    /// # async fn example(client: raft_kv_client::Client) -> Result<(), raft_kv_client::Error> {
    /// let ticket = client.incr("tickets").await?;
    /// // Retries inside the call never count twice: a retry of an applied incr gets the same
    /// // value back, flagged as a duplicate.
    /// println!("ticket {} (retry answered from the record: {})", ticket.value, ticket.duplicate);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Rejected`] with 409 when the value is not an integer (or would overflow); see
    /// [`Error`] for the others.
    pub async fn incr(&self, key: impl AsRef<[u8]>) -> Result<Incremented, Error> {
        let call = Call::new(Method::POST, incr_path(key.as_ref()), Target::Leader, true);
        answer::incremented(self.execute(call).await?)
    }

    /// Adds 1 to the integer at `key` if its version is `version`.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] (not applied) when the key's version is another; see
    /// [`Client::incr`].
    pub async fn incr_if(&self, key: impl AsRef<[u8]>, version: u64) -> Result<Incremented, Error> {
        let mut call = Call::new(Method::POST, incr_path(key.as_ref()), Target::Leader, true);
        call.headers.insert(header::IF_MATCH, etag(version));
        answer::incremented(self.execute(call).await?)
    }

    /// Applies `batch` in one log entry, exactly once; each operation has its own outcome.
    ///
    /// ```no_run
    /// use raft_kv_client::{Batch, Client, OpOutcome};
    ///
    /// # async fn example(client: Client) -> Result<(), raft_kv_client::Error> {
    /// let batch = Batch::new().put("a", "1").put_if_absent("b", "2").incr("count");
    /// let outcome = client.batch(&batch).await?;
    /// for result in &outcome.results {
    ///     if let OpOutcome::PreconditionFailed { current } = result {
    ///         println!("not applied: the key is at version {current:?}");
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Rejected`] with 400 for an empty batch, 413 for more than
    /// [`MAX_BATCH_OPS`](crate::MAX_BATCH_OPS) operations; see [`Error`] for the others.
    pub async fn batch(&self, batch: &Batch) -> Result<BatchOutcome, Error> {
        let mut call = Call::new(Method::POST, "/kv".to_owned(), Target::Leader, true);
        call.body = batch.body();
        call.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::batch::BATCH_CONTENT_TYPE),
        );
        let reply = self.execute(call).await?;
        if !reply.status.is_success() {
            return Err(answer::refusal(&reply));
        }
        batch.outcome(&reply.headers, &reply.body)
    }

    async fn execute(&self, call: Call) -> Result<crate::pool::Reply, Error> {
        self.engine.execute(call, self.timeouts).await
    }
}

/// `/kv/{key}`, the key percent-encoded as one path segment.
fn key_path(key: &[u8]) -> String {
    format!("/kv/{}", percent_encode(key, NON_ALPHANUMERIC))
}

fn incr_path(key: &[u8]) -> String {
    format!("{}/incr", key_path(key))
}

/// `"<version>"`, an entity tag.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_percent_encoded_segment() {
        assert_eq!(key_path(b"a/b c"), "/kv/a%2Fb%20c");
        assert_eq!(key_path(b"plain09"), "/kv/plain09");
        assert_eq!(key_path(b".."), "/kv/%2E%2E");
        assert_eq!(key_path(&[0xff, b'x', 0x00]), "/kv/%FFx%00");
        assert_eq!(key_path("é".as_bytes()), "/kv/%C3%A9");
        assert_eq!(incr_path(b"n"), "/kv/n/incr");
        assert_eq!(etag(12), "\"12\"");
    }
}
