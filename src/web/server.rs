//! The accept loop and each connection: the caps are applied before a byte
//! is read, hyper's header timer is armed on every connection, and a
//! connection that moves no byte for `idle_timeout` is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::limits::{ConnectionGuard, Refusal};
use super::{handler, Shared};
use crate::deadline::Later;
use crate::shutdown::Shutdown;

/// Largest request head (request line and headers), in bytes; more is
/// answered 431.
pub const MAX_HEAD_BYTES: usize = 8192;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 32;
/// Pause after a failed accept (e.g. out of file descriptors): never a hot
/// loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Time open connections get to finish their response at shutdown.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Serve `listener` until `stop`; connections still open then are closed.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: Shutdown) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => shared.activity.notify_one(),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // The page's counters change: the web actor publishes.
                    shared.activity.notify_one();
                    match shared.limits.try_acquire(peer.ip()) {
                        Ok(guard) => {
                            conns.spawn(connection(stream, peer, guard, shared.clone(), stop.clone()));
                        }
                        Err(refusal) => refuse(stream, refusal, &shared),
                    }
                }
                Err(e) => {
                    tracing::debug!("web: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    // Each connection saw `stop` too and is finishing; bound the wait.
    let _ = tokio::time::timeout(CLOSE_GRACE + Duration::from_millis(200), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// Close at once, with a reset: no slot, no buffer, no TIME_WAIT kept here.
fn refuse(stream: TcpStream, refusal: Refusal, shared: &Shared) {
    let counter = match refusal {
        Refusal::PerClient => &shared.counters.rejected_per_client,
        Refusal::Total => &shared.counters.rejected_total,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_zero_linger();
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _slot: ConnectionGuard,
    shared: Arc<Shared>,
    mut stop: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    // The address the client reached: a Host naming it is ours (0.0.0.0).
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let activity = Activity::new();
    let in_flight = Arc::new(AtomicU32::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let (shared, in_flight) = (shared.clone(), in_flight.clone());
        service_fn(move |req| {
            let busy = Busy::enter(&in_flight);
            let shared = shared.clone();
            async move {
                let _busy = busy;
                handler::handle(shared, peer, local, req).await
            }
        })
    };
    let cfg = &shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout.get())
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = cfg.idle_timeout.get();
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    if e.is_timeout() {
                        shared.counters.header_timeouts.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tracing::debug!("web: connection from {peer}: {e}");
                    }
                }
                return;
            }
            _ = tokio::time::sleep_until(activity.last() + idle) => {
                let quiet = activity.last().elapsed() >= idle;
                if quiet && in_flight.load(Ordering::Relaxed) == 0 {
                    // Dropping the connection closes the socket.
                    shared.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = stop.wait() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                return;
            }
        }
    }
}

/// Counts a request while its handler runs.
struct Busy(Arc<AtomicU32>);

impl Busy {
    fn enter(n: &Arc<AtomicU32>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// When a connection last moved a byte either way.
#[derive(Clone)]
struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start
            .later(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records every byte moved in [`Activity`].
struct Tracked<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
