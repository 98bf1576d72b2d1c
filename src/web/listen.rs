//! Accepting connections: HTTP/1.1 (what a reverse proxy speaks) through hyper, with the limits that
//! `axum::serve` does not set: a connection must send a request's headers within `HEADER_READ_TIMEOUT`, lives
//! at most `MAX_CONNECTION_LIFE`, at most `MAX_CONNECTIONS` are open at once (the next wait in the kernel's
//! backlog), and on SIGTERM the requests under way get `SHUTDOWN_GRACE` to finish. (A form's body has its own
//! limit in `visit.rs`, a request's answer `REQUEST_TIMEOUT` in `guard.rs`.) Behind nginx these are a second line; a page reached directly (a trial)
//! needs them as the first.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client may take to send a request's headers (slow clients hold a connection each).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// How long one connection may stay open, however busy: a client that stops reading what it asked for
/// holds no slot for longer (a proxy just opens another).
const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);

/// How long one request may take, from its headers to its answer (a sign-in waits at most 10 s for argon2).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections open at once; far more than a proxy keeps open to one backend.
const MAX_CONNECTIONS: usize = 512;

/// How long requests under way may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` completes, then lets the requests under way finish (for at
/// most `SHUTDOWN_GRACE`).
pub async fn serve(listener: TcpListener, router: Router, stop: impl Future<Output = ()>) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a moment rather than spin.
                    eprintln!("mailpass web: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // An answer goes out in more than one write (head, then body); with Nagle's algorithm on, the second
        // waits for the client's delayed acknowledgement of the first, tens of milliseconds.
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)));
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or breaks the protocol ends its own connection, nothing more; one that
            // stops reading its answers is cut off when the connection has lived its time.
            let _ = tokio::time::timeout(MAX_CONNECTION_LIFE, connection).await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => eprintln!(
            "mailpass web: connections still open {} s after the signal: stopping anyway",
            SHUTDOWN_GRACE.as_secs()
        ),
    }
}
