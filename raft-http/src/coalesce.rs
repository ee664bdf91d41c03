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

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// While deferring does not pay, one flush in this many is deferred to see whether it does now.
const PROBE_EVERY: u8 = 8;

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
}

impl<T> Coalesce<T> {
    pub(crate) fn new(inner: T) -> Coalesce<T> {
        Coalesce {
            inner,
            in_cycle: false,
            deferred: None,
            written: 0,
            pays: true,
            skipped: 0,
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.wait_turn(cx, buf.len()));
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|buf| buf.len()).sum();
        std::task::ready!(self.wait_turn(cx, offered));
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if flushed.is_ready() {
            self.end_cycle();
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
