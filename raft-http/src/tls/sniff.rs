//! [`Sniffed`]: a plaintext client connection that notices when the server answers in TLS, so
//! that a plaintext transport dialling a TLS port fails with a message that says so instead of
//! an HTTP/2 protocol error.
//!
//! A TLS server that receives the HTTP/2 preface answers with a TLS alert record and closes;
//! every TLS record starts with a content type byte of 20 to 23 (an alert is 21, a handshake
//! 22), which no HTTP/2 server sends first (its first frame is SETTINGS, whose first byte is
//! the high byte of a length under 2^24, 0 for any sane settings frame).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream whose first byte received is checked for a TLS record.
#[derive(Debug)]
pub(crate) struct Sniffed<T> {
    inner: T,
    checked: bool,
    tls_seen: Arc<AtomicBool>,
}

impl<T> Sniffed<T> {
    /// Wraps `inner`; the flag turns true when its first byte is a TLS record's.
    pub(crate) fn new(inner: T) -> (Sniffed<T>, Arc<AtomicBool>) {
        let tls_seen = Arc::new(AtomicBool::new(false));
        let sniffed = Sniffed {
            inner,
            checked: false,
            tls_seen: tls_seen.clone(),
        };
        (sniffed, tls_seen)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.checked
            && let Some(first) = buf.filled().get(before).copied()
        {
            self.checked = true;
            if (20..=23).contains(&first) {
                self.tls_seen.store(true, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
