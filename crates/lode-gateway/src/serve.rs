//! The accept loop: per-address connection caps and a header-read deadline,
//! in front of the axum router.
//!
//! `axum::serve` reads headers with no deadline and accepts any number of
//! connections, so a few hundred slow or idle sockets from one address could
//! hold the gateway's per-address budget forever. Here every connection:
//!
//! * counts against its client key (IPv4 address, IPv6 /64; see
//!   [`crate::ratelimit::client_key`]): past `max_per_ip` open connections, or
//!   `max_total` in all, a new one is closed at once, before any byte is read;
//! * must deliver each request's headers within `header_timeout` (hyper's
//!   header-read timer, which also closes idle keep-alive connections), so a
//!   slow client frees its slot after a bounded time;
//! * has its request bodies read under [`crate::http`]'s per-route size limits
//!   and a body-inactivity timeout.

use crate::ratelimit::ConnectionCounter;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Deadline for a request's headers (and for an idle keep-alive connection).
    pub header_timeout: Duration,
    /// Open connections one client key may hold.
    pub max_per_ip: u32,
    /// Open connections in all.
    pub max_total: u32,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            max_per_ip: 256,
            max_total: 8192,
            drain_timeout: Duration::from_secs(25),
        }
    }
}

/// Releases a connection's slot when the connection ends.
struct Slot {
    ip: std::net::IpAddr,
    counter: Arc<Mutex<ConnectionCounter>>,
    total: Arc<AtomicU32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .close(self.ip);
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counter = Arc::new(Mutex::new(ConnectionCounter::default()));
    let total = Arc::new(AtomicU32::new(0));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let admitted = total.load(Ordering::Relaxed) < limits.max_total
            && counter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_open(peer.ip(), limits.max_per_ip);
        if !admitted {
            metrics.connections_refused.inc();
            drop(stream);
            continue;
        }
        total.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            ip: peer.ip(),
            counter: counter.clone(),
            total: total.clone(),
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; closing them");
    }
    Ok(())
}
