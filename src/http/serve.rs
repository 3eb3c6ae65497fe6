//! The accept loop: HTTP/1.1 keep-alive over TCP or TLS, a connection limit, header
//! timeouts, and graceful shutdown (in-flight requests finish).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::tls::TlsReloader;
use crate::metrics::Metrics;

/// Limits and TLS for one listener.
#[derive(Clone)]
pub struct ServeOptions {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// A write that makes no progress for this long drops the connection: a client that
    /// does not read its answers must not hold a connection slot.
    pub write_timeout: Duration,
    pub tls: Option<Arc<TlsReloader>>,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(opts.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let m = metrics.clone();
    let reject = move |reason: &str| {
        m.connections_rejected.inc((m.vocab.get(reason),));
    };
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // The watch guard is not Send: drop it inside the branch future.
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            reject("max_connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(opts.write_timeout));
        let stream = Box::pin(stream);
        let router = router.clone();
        let opts2 = opts.clone();
        let watcher = graceful.watcher();
        let metrics = metrics.clone();
        let reject = reject.clone();
        tokio::spawn(async move {
            metrics.connections_active.add((), 1);
            match &opts2.tls {
                None => serve_conn(stream, peer, router, &opts2, watcher).await,
                Some(tls) => {
                    match tokio::time::timeout(opts2.header_timeout, tls.acceptor().accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => serve_conn(s, peer, router, &opts2, watcher).await,
                        Ok(Err(e)) => {
                            reject("tls_handshake");
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => reject("tls_handshake"),
                    }
                }
            }
            metrics.connections_active.add((), -1);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(opts.drain_timeout) => tracing::warn!("connections still open after the drain timeout; closing"),
    }
    Ok(())
}

async fn serve_conn<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    opts: &ServeOptions,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true);
    let conn = b.serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
