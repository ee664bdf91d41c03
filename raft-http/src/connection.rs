//! [`Connection`]: what the client learns about one of its connections to a peer, so that a
//! failed request can say why in plain words when the cause lies in TLS rather than in HTTP.
//!
//! The causes that look like something else:
//! - A plaintext client at a TLS port gets a TLS alert in answer to its HTTP/2 preface, which
//!   HTTP/2 reads as a protocol error: the first byte received tells (see `tls/sniff.rs`).
//! - In TLS 1.3 a server refuses the client's certificate after the client finished its side
//!   of the handshake, so the refusal (an alert) arrives while the first request is sent. hyper
//!   reports it on the request, on the connection (the request then only learns that the
//!   connection "was not ready"), or as a broken pipe when the alert was lost to the reset.
//!   The connection's own error is kept for the first two; the third is recognised as a TLS
//!   connection closed under its very first request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

/// How long a failed request waits for its connection to report its own error.
const CONNECTION_ERROR_WAIT: Duration = Duration::from_millis(100);

/// What a connection learned, to explain its failures.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    /// Whether it runs over TLS.
    tls: bool,
    /// On a plaintext connection: the server answered in TLS.
    tls_seen: Arc<AtomicBool>,
    /// An answer came back on it.
    answered: AtomicBool,
    /// How it ended (the error's chain of messages, empty when it closed cleanly).
    ended: OnceLock<String>,
    ended_signal: Notify,
}

impl Connection {
    /// A TLS connection.
    pub(crate) fn tls() -> Connection {
        Connection {
            tls: true,
            ..Connection::default()
        }
    }

    /// A plaintext connection whose first byte sets `tls_seen` if it is a TLS record's.
    pub(crate) fn plaintext(tls_seen: Arc<AtomicBool>) -> Connection {
        Connection {
            tls_seen,
            ..Connection::default()
        }
    }

    /// An answer came back: `true` for the first on this connection.
    pub(crate) fn answered(&self) -> bool {
        !self.answered.swap(true, Ordering::Relaxed)
    }

    /// The connection's task ended, with this error if any.
    pub(crate) fn ended(&self, error: Option<&(dyn std::error::Error + 'static)>) {
        let _ = self.ended.set(error.map(chain).unwrap_or_default());
        self.ended_signal.notify_waiters();
    }

    /// Why a request failed, when the cause lies in TLS; `None` for any other failure.
    pub(crate) async fn tls_failure(&self, error: &hyper::Error) -> Option<String> {
        if !self.tls {
            return self.tls_seen.load(Ordering::Relaxed).then(|| {
                "the peer answered in TLS, and this transport speaks plaintext: configure \
                 ClientConfig::tls"
                    .to_owned()
            });
        }
        if self.answered.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(alert) = alert(&chain(error)) {
            return Some(refused(alert));
        }
        if let Some(ended) = self.wait_ended().await
            && let Some(alert) = alert(&ended)
        {
            return Some(refused(alert));
        }
        let closed = io_error_kind(error).is_some_and(|kind| {
            use std::io::ErrorKind as K;
            matches!(
                kind,
                K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
            )
        });
        closed.then(|| {
            format!(
                "the server closed the new TLS connection under its first request ({error}): \
                 it most likely refused this node's certificate (missing, expired, from \
                 another CA, or not naming this node)"
            )
        })
    }

    /// How the connection ended, waiting a little for its task to tell.
    async fn wait_ended(&self) -> Option<String> {
        let signal = self.ended_signal.notified();
        if let Some(ended) = self.ended.get() {
            return Some(ended.clone());
        }
        let _ = tokio::time::timeout(CONNECTION_ERROR_WAIT, signal).await;
        self.ended.get().cloned()
    }
}

/// The messages of an error and its sources, joined by ": ".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string());
        source = current.source();
    }
    text
}

/// The alert in an error's text. hyper's HTTP/2 layer keeps only the text of an I/O error, so
/// the alert is recognised by rustls's wording.
fn alert(text: &str) -> Option<&str> {
    let (_, after) = text.split_once("received fatal alert: ")?;
    Some(after.split(':').next().unwrap_or(after).trim())
}

fn refused(alert: &str) -> String {
    format!(
        "the server refused this node's certificate (TLS alert {alert}): is there one, signed \
         by the CA the server trusts, current, and naming this node?"
    )
}

/// The kind of the first I/O error in a failure's chain of sources.
fn io_error_kind(error: &hyper::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_found_in_error_text() {
        assert_eq!(
            alert("connection error: received fatal alert: CertificateRequired"),
            Some("CertificateRequired")
        );
        assert_eq!(
            alert("received fatal alert: BadCertificate: x"),
            Some("BadCertificate")
        );
        assert_eq!(alert("connection reset"), None);
    }
}
