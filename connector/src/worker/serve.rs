//! The worker's HTTP server: connections accepted one task each, over TLS when it is given,
//! with limits so that slow or idle clients cannot take the worker from everyone else.
//!
//! - A connection must deliver a whole request head within [`HEAD_TIMEOUT`] of opening (the
//!   TLS handshake included), and again after each answer; hyper closes it otherwise.
//! - A request's body must arrive whole within [`BODY_TIMEOUT`] and be at most [`MAX_BODY_BYTES`]
//!   (the worker's forms are a few bytes), or the request is answered 408 or 413 and closed: a
//!   body that trickles in keeps no connection busy.
//! - At most [`MAX_CONNECTIONS`] are open. When a new one arrives at the cap, the connection that
//!   has been idle longest (no request in progress) is closed for it, so a crowd of idle
//!   connections delays nobody's `/healthz`; when none is idle, the new one waits for a slot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::panic::lock;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// How long a connection may take to deliver a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request's body may take to arrive, once its head has.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body taken.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The open connections, and since when each has been idle (`None` while it has a request).
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, (Option<Instant>, CancellationToken)>>,
}

impl Connections {
    fn open(&self) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        lock(&self.open).insert(id, (Some(Instant::now()), close.clone()));
        (id, close)
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(entry) = lock(&self.open).get_mut(&id) {
            entry.0 = idle.then(Instant::now);
        }
    }

    fn closed(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    /// Closes the connection idle the longest, if one is idle.
    fn close_longest_idle(&self) {
        let open = lock(&self.open);
        let longest = open
            .values()
            .filter_map(|(since, close)| since.map(|s| (s, close)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, close)) = longest {
            close.cancel();
        }
    }
}

/// Serves `app` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, app: Router, tls: Option<TlsAcceptor>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let connections = Arc::new(Connections::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "the worker cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                connections.close_longest_idle();
                match slots.clone().acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => return,
                }
            }
        };
        tracing::trace!(%peer, "connection");
        let (app, tls, connections) = (app.clone(), tls.clone(), connections.clone());
        tokio::spawn(async move {
            let (id, close) = connections.open();
            serve_connection(stream, app, tls, &connections, id, close).await;
            connections.closed(id);
            drop(slot);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    tls: Option<TlsAcceptor>,
    connections: &Arc<Connections>,
    id: u64,
    close: CancellationToken,
) {
    let opened = Instant::now();
    let _ = stream.set_nodelay(true);
    let service = {
        let connections = connections.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut app = app.clone();
            let connections = connections.clone();
            connections.set_idle(id, false);
            async move {
                let response = match whole(request).await {
                    Ok(request) => app.call(request).await,
                    Err(refused) => Ok(refused),
                };
                connections.set_idle(id, true);
                response
            }
        })
    };
    // Plain or TLS, the connection is served the same way: one stream type for both.
    let (io, head_timeout): (Box<dyn Io>, Duration) = match tls {
        None => (Box::new(stream), HEAD_TIMEOUT),
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                shaken = handshake => match shaken {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake took too long"),
                },
                () = close.cancelled() => return,
            };
            // The head is due within the same ten seconds of opening.
            let left = HEAD_TIMEOUT.saturating_sub(opened.elapsed()).max(Duration::from_millis(100));
            (Box::new(stream), left)
        }
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(head_timeout);
    let connection = http.serve_connection(TokioIo::new(io), service);
    tokio::select! { _ = connection => {}, () = close.cancelled() => {} }
}

/// A connection's byte stream, plain TCP or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The request with its body read whole, in time and within bounds; or the answer to it.
async fn whole(request: hyper::Request<Incoming>) -> Result<axum::extract::Request, axum::response::Response> {
    use axum::response::IntoResponse;
    use http_body_util::{BodyExt, Limited};
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let refused = |status: axum::http::StatusCode, why: &str| {
        let mut response = (status, [(axum::http::header::CONNECTION, "close")], format!("{why}\n")).into_response();
        super::headers::apply(response.headers_mut());
        response
    };
    match read {
        Ok(Ok(body)) => Ok(axum::extract::Request::from_parts(parts, axum::body::Body::from(body.to_bytes()))),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(refused(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "a request body to the worker is at most 64 KiB",
        )),
        Ok(Err(_)) => Err(refused(axum::http::StatusCode::BAD_REQUEST, "the request body broke off")),
        Err(_) => Err(refused(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive within 10 s",
        )),
    }
}
