//! [`Coalesce`]: one write syscall for the responses that complete together.
//!
//! hyper answers each HTTP/2 request in a task of its own, and the connection's task writes
//! what those tasks hand it. When a commit completes many requests at once, tokio runs each
//! request's task and then (through its LIFO slot) the connection's task right after it: the
//! connection writes and flushes one response at a time, a `writev` per response. Measured on a
//! 3-node raft-kv cluster under 256 concurrent PUTs, that was ~0.7 `writev` per request and a
//! fifth of the leader's CPU.
//!
//! The wrapper defers the first write of a flush by one scheduler turn: it wakes its own task
//! and answers `Pending`, which tokio treats as a yield (the task goes to the back of the run
//! queue, not to the LIFO slot). The other request tasks that are ready run meanwhile and queue
//! their responses, and the next turn writes them all in one `writev`.
//!
//! A yield is not free when nothing else is ready: tokio wakes a parked worker to take the
//! queued task, and a lone client's request then waited ~0.1-0.2 ms longer on a busy machine.
//! So the wrapper keeps deferring only while deferring pays: a deferred flush that carried more
//! bytes than were offered when it was deferred gathered other responses; one that did not
//! turns deferral off, and every [`PROBE_EVERY`]th flush after that tries again.
//!
//! On an HTTP/2 connection (recognised by its preface in the first bytes read) it also tells h2
//! that the stream takes no vectored writes (see `is_write_vectored` in its `AsyncWrite`): h2
//! then copies bodies under 1 KiB into its buffer instead of flushing once per response that
//! has one. A larger body h2 writes in two calls (its buffer, then the payload); the wrapper
//! holds a write of up to [`HOLD_BYTES`] until the next write or flush, so the two leave in one
//! `writev` as before. HTTP/1 keeps vectored writes: hyper would otherwise copy every body into
//! its buffer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// While deferring does not pay, one flush in this many is deferred to see whether it does now.
const PROBE_EVERY: u8 = 8;

/// A write of at most this many bytes is held (copied) to leave with the next one.
const HOLD_BYTES: usize = 16 * 1024;

/// The most h2 writes ahead of a large DATA frame's payload when that frame is all it has: the
/// response's headers, the frame's head and the KiB of payload it copies. A deferred first
/// write no larger, joined by the next write, was one response: the two are one offer. A larger
/// one carried other responses, and what follows it counts as joining.
const FRAME_START_BYTES: usize = 2 * 1024;

/// An I/O stream whose writes may wait one scheduler turn at the start of a flush, so that
/// responses completed together leave in one system call. Reads pass straight through.
#[derive(Debug)]
pub(crate) struct Coalesce<T> {
    inner: T,
    /// Whether a flush cycle is under way (its first write has been offered).
    in_cycle: bool,
    /// Whether this cycle's first write was deferred, and how many bytes it offered then.
    deferred: Option<usize>,
    /// Bytes written in this cycle.
    written: usize,
    /// Whether the last deferred flush gathered more than it was offered.
    pays: bool,
    /// Flushes not deferred since deferring last failed to pay.
    skipped: u8,
    /// Bytes accepted and not yet written: they go out ahead of the next write, or at the
    /// flush.
    held: Vec<u8>,
    /// Whether what is held is a deferred cycle's first write, small enough to be the start of
    /// one large DATA frame: the write that joins it belongs to the same offer (h2 hands such a
    /// frame over as its buffer, then its payload; see [`FRAME_START_BYTES`]).
    held_first: bool,
    /// The first bytes read, up to the length of [`H2_PREFACE_START`].
    first_bytes: Vec<u8>,
}

/// How an HTTP/2 connection's preface starts; no HTTP/1 request line does.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

impl<T> Coalesce<T> {
    pub(crate) fn new(inner: T) -> Coalesce<T> {
        Coalesce {
            inner,
            in_cycle: false,
            deferred: None,
            written: 0,
            pays: true,
            skipped: 0,
            held: Vec::new(),
            held_first: false,
            first_bytes: Vec::new(),
        }
    }

    /// At the first write of a flush cycle (offering `offered` bytes): `Pending` after waking
    /// the task, when deferring pays or a probe is due; otherwise, and for every later write
    /// of the cycle, `Ready`.
    fn wait_turn(&mut self, cx: &mut Context<'_>, offered: usize) -> Poll<()> {
        if self.in_cycle {
            return Poll::Ready(());
        }
        self.in_cycle = true;
        self.written = 0;
        if !self.pays && self.skipped < PROBE_EVERY - 1 {
            self.skipped += 1;
            self.deferred = None;
            return Poll::Ready(());
        }
        self.skipped = 0;
        self.deferred = Some(offered);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn wrote(&mut self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result {
            self.written += n;
        }
        result
    }

    /// The cycle ended with a completed flush: learn whether deferring paid.
    fn end_cycle(&mut self) {
        self.held_first = false;
        if let Some(offered) = self.deferred.take() {
            self.pays = self.written > offered;
        }
        self.in_cycle = false;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        let missing = H2_PREFACE_START.len() - self.first_bytes.len();
        if missing > 0 {
            let new = &buf.filled()[before..];
            let take = new.len().min(missing);
            self.first_bytes.extend_from_slice(&new[..take]);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out what is held: `Ready` once nothing is.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is held followed by `buf` in one call: how much of `buf` went.
    fn poll_write_after_held(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let parts = [IoSlice::new(&self.held), IoSlice::new(buf)];
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &parts))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let of_held = n.min(self.held.len());
            self.held.drain(..of_held);
            if self.held.is_empty() && n > of_held {
                return Poll::Ready(Ok(n - of_held));
            }
            if self.held.is_empty() {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        std::task::ready!(self.wait_turn(cx, buf.len()));
        let this = &mut *self;
        let result = if this.held.is_empty() && buf.len() <= HOLD_BYTES {
            // Held for the next write or the flush: h2 writes a large DATA frame's payload
            // right after its buffer, and the two then leave together.
            this.held.extend_from_slice(buf);
            this.held_first =
                this.deferred.is_some() && this.written == 0 && buf.len() <= FRAME_START_BYTES;
            Poll::Ready(Ok(buf.len()))
        } else if this.held.is_empty() {
            Pin::new(&mut this.inner).poll_write(cx, buf)
        } else {
            let joined = this.poll_write_after_held(cx, buf);
            if let Poll::Ready(Ok(n)) = joined
                && std::mem::take(&mut this.held_first)
                && let Some(offered) = this.deferred.as_mut()
            {
                // Part of the deferred offer, not a response that joined it.
                *offered += n;
            }
            joined
        };
        self.wrote(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|buf| buf.len()).sum();
        if offered == 0 {
            return Poll::Ready(Ok(0));
        }
        std::task::ready!(self.wait_turn(cx, offered));
        let this = &mut *self;
        let result = match this.poll_write_held(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        };
        self.wrote(result)
    }

    /// `false` on an HTTP/2 connection, whatever the stream: it decides how h2 lays out DATA
    /// frames. Over a vectored stream h2 keeps any payload of 256 bytes or more apart from its
    /// buffer, to send it in the same `writev`, and must flush before it can queue another
    /// frame: a `writev` per response with a small body (a 256-byte GET answer, for one). Over
    /// a plain stream it copies payloads under 1 KiB into its buffer, so the responses of one
    /// turn leave in one write; a larger payload comes as a second write, which joins the held
    /// first one. HTTP/1 connections stay vectored: hyper's HTTP/1 would otherwise copy each
    /// response into one buffer instead of queueing its parts.
    fn is_write_vectored(&self) -> bool {
        self.first_bytes != H2_PREFACE_START && self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_write_held(cx))?;
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if flushed.is_ready() {
            self.end_cycle();
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_write_held(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A wrapped loopback stream whose peer first sends `first`.
    async fn after_reading(first: &[u8]) -> Coalesce<tokio::net::TcpStream> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        assert!(stream.is_write_vectored());
        client.write_all(first).await.unwrap();
        let mut wrapped = Coalesce::new(stream);
        let mut read = vec![0; first.len()];
        // In small pieces, as a protocol sniffer may read.
        for chunk in read.chunks_mut(5) {
            wrapped.read_exact(chunk).await.unwrap();
        }
        assert_eq!(read, first);
        wrapped
    }

    #[tokio::test]
    async fn an_http2_connection_is_offered_plain_writes_and_http1_keeps_vectored_ones() {
        // So h2 copies small DATA payloads into its buffer instead of flushing per frame.
        let h2 = after_reading(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        assert!(!h2.is_write_vectored());
        let h1 = after_reading(b"GET /kv/a HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(h1.is_write_vectored());
    }

    fn nothing_to_read(far: &mut tokio::io::DuplexStream) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0; 1];
        let mut buf = ReadBuf::new(&mut byte);
        Pin::new(far).poll_read(&mut cx, &mut buf).is_pending()
    }

    #[tokio::test]
    async fn a_held_first_write_and_the_payload_joining_it_are_one_offer() {
        let (near, _far) = tokio::io::duplex(1 << 20);
        let mut writer = Coalesce::new(near);
        let payload = vec![1u8; HOLD_BYTES + 1];
        for _ in 0..2 {
            // A frame's head, deferred once, then held; its payload joins it.
            assert!(write(&mut writer, b"head").is_pending());
            assert_eq!(write(&mut writer, b"head"), Poll::Ready(4));
            assert_eq!(write(&mut writer, &payload), Poll::Ready(payload.len()));
            flush(&mut writer);
            // Nothing else joined: deferring did not pay, so the next flushes go at once
            // until the probe (the loop's next round) defers again.
            assert_eq!(write(&mut writer, b"x"), Poll::Ready(1));
            flush(&mut writer);
            for _ in 0..PROBE_EVERY - 2 {
                assert_eq!(write(&mut writer, b"x"), Poll::Ready(1));
                flush(&mut writer);
            }
        }
    }

    #[tokio::test]
    async fn a_held_write_leaves_with_the_next_one_or_at_the_flush() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut writer = Coalesce::new(near);
        let large = vec![7u8; HOLD_BYTES + 1];
        writer.write_all(b"head").await.unwrap();
        assert!(nothing_to_read(&mut far), "a small write is held");
        writer.write_all(&large).await.unwrap();
        writer.write_all(b"tail").await.unwrap();
        let mut first = vec![0; 4 + large.len()];
        far.read_exact(&mut first).await.unwrap();
        assert_eq!(&first[..4], b"head");
        assert!(first[4..].iter().all(|&b| b == 7));
        // The small last write is held until the flush.
        assert!(nothing_to_read(&mut far), "the last write is held");
        writer.flush().await.unwrap();
        let mut last = [0; 4];
        far.read_exact(&mut last).await.unwrap();
        assert_eq!(&last, b"tail");
    }

    #[tokio::test]
    async fn writes_arrive_whole_and_in_order_across_flushes() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let mut writer = Coalesce::new(near);
        for round in 0..50u8 {
            writer.write_all(&[round; 100]).await.unwrap();
            let written = writer
                .write_vectored(&[IoSlice::new(&[round; 3])])
                .await
                .unwrap();
            assert_eq!(written, 3);
            writer.flush().await.unwrap();
        }
        writer.shutdown().await.unwrap();
        let mut received = Vec::new();
        far.read_to_end(&mut received).await.unwrap();
        let expected: Vec<u8> = (0..50u8)
            .flat_map(|round| std::iter::repeat_n(round, 103))
            .collect();
        assert_eq!(received, expected);
    }

    fn write(writer: &mut Coalesce<tokio::io::DuplexStream>, bytes: &[u8]) -> Poll<usize> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(writer).poll_write(&mut cx, bytes) {
            Poll::Ready(written) => Poll::Ready(written.unwrap()),
            Poll::Pending => Poll::Pending,
        }
    }

    fn flush(writer: &mut Coalesce<tokio::io::DuplexStream>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(writer).poll_flush(&mut cx).is_ready());
    }

    #[tokio::test]
    async fn the_first_write_of_a_flush_yields_once_then_passes() {
        let (near, _far) = tokio::io::duplex(1 << 16);
        let mut writer = Coalesce::new(near);
        assert!(write(&mut writer, b"a").is_pending());
        // Others joined while it waited: more is written than was offered.
        assert_eq!(write(&mut writer, b"ab"), Poll::Ready(2));
        assert_eq!(write(&mut writer, b"c"), Poll::Ready(1));
        flush(&mut writer);
        // Deferring paid, so the next flush waits its turn again.
        assert!(write(&mut writer, b"d").is_pending());
    }

    #[tokio::test]
    async fn deferring_stops_while_nothing_joins_and_is_probed_again() {
        let (near, _far) = tokio::io::duplex(1 << 16);
        let mut writer = Coalesce::new(near);
        assert!(write(&mut writer, b"alone").is_pending());
        assert_eq!(write(&mut writer, b"alone"), Poll::Ready(5));
        flush(&mut writer);
        // Nothing joined: the next flushes go at once, until a probe is due.
        for _ in 0..PROBE_EVERY - 1 {
            assert_eq!(write(&mut writer, b"x"), Poll::Ready(1));
            flush(&mut writer);
        }
        assert!(write(&mut writer, b"probe").is_pending());
        assert_eq!(write(&mut writer, b"probe and more"), Poll::Ready(14));
        flush(&mut writer);
        // The probe gathered more: deferring is back on.
        assert!(write(&mut writer, b"y").is_pending());
    }
}
