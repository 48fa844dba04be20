//! Connections whose client stops reading are dropped: a write that makes
//! no progress for [`crate::ApiSettings::send_timeout`] fails, and hyper
//! closes the connection. Without it, a client that never reads an event
//! stream would keep its connection (and the stream's task) open forever,
//! and hold up a graceful shutdown, which waits for every connection: once
//! the server is shutting down, a write may wait at most
//! [`SHUTDOWN_SEND_TIMEOUT`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a write may wait once the server is shutting down.
pub const SHUTDOWN_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A TCP listener whose connections fail writes that wait too long.
pub(crate) struct GuardedListener {
    inner: TcpListener,
    timeout: Duration,
    shutdown: CancellationToken,
}

impl GuardedListener {
    /// Guards the connections of `inner`.
    pub(crate) fn new(inner: TcpListener, timeout: Duration, shutdown: CancellationToken) -> Self {
        Self {
            inner,
            timeout,
            shutdown,
        }
    }
}

impl Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let stream = GuardedStream {
            inner: stream,
            timeout: self.timeout,
            stalled: None,
            shutdown: Box::pin(self.shutdown.clone().cancelled_owned()),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Listener::local_addr(&self.inner)
    }
}

/// A connection that fails a write pending for too long.
pub(crate) struct GuardedStream {
    inner: TcpStream,
    timeout: Duration,
    /// Armed while a write is pending: when it fires, the write fails.
    stalled: Option<Pin<Box<Sleep>>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl GuardedStream {
    /// Passes a ready write through (disarming the timer); fails a pending
    /// one whose timer has fired.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if self.shutdown.as_mut().poll(cx).is_ready() {
            let soon = Instant::now() + SHUTDOWN_SEND_TIMEOUT;
            if stalled.deadline() > soon {
                stalled.as_mut().reset(soon);
            }
        }
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, poll)
    }
}
