//! The HTTP server loop: axum's router on hyper, with what `axum::serve` leaves out.
//! - A header-read timeout (HTTP_HEADER_READ_TIMEOUT_MS): a client that opens a connection and
//!   sends its request head slowly (slowloris) is cut off instead of holding the socket.
//! - The client address (`ConnectInfo<SocketAddr>`) on every request, for the per-address
//!   rate limits.
//! - Graceful shutdown: on the signal, stop accepting, let requests in flight finish (at most
//!   [`DRAIN`]).
//!
//! The whole-request deadline (body and authentication included) is [`deadline`], a
//! middleware on the routes that read a body.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use super::{error_response, AppState};

/// How long requests in flight may take to finish after the shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(30);

/// How much later than HTTP_REQUEST_TIMEOUT_MS [`deadline`] answers, so that a request whose
/// execution is the slow part gets the execution's own timeout answer (503, counted).
const MARGIN: Duration = Duration::from_millis(250);

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        builder.http2().enable_connect_protocol();
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!("requests still running {DRAIN:?} after the shutdown signal; stopping");
        }
    }
    Ok(())
}

/// The whole-request deadline: reading the body, authenticating and executing together take
/// at most HTTP_REQUEST_TIMEOUT_MS (plus a small margin), else 408 `REQUEST_TIMEOUT`. A client
/// that sends its body slowly holds a connection no longer than that.
pub(super) async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = state.config.http.request_timeout + MARGIN;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => error_response(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            &format!(
                "the request was not complete within {} ms (HTTP_REQUEST_TIMEOUT_MS)",
                state.config.http.request_timeout.as_millis()
            ),
        ),
    }
}
