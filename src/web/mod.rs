//! `mailpass web`: the self-service page, where users sign in with their main password (and code) and make
//! their own app passwords, enrol TOTP and change their password.
//!
//! HTTP and HTML only: what each action means is `crate::account`'s, how a sign-in is decided is
//! `crate::auth`'s. The layout:
//! - `app.rs`: the server's shared state and the one way a request reaches the database (off the async
//!   executor, bounded);
//! - `visit.rs`: what a request carries that the pages need (cookies, client address, form fields);
//! - `session.rs`: sessions, their cookies and CSRF tokens;
//! - `guard.rs`: what every response and every state-changing request goes through (headers, Origin);
//! - `pages/`: one module per page.

mod app;
mod guard;
mod listen;
mod pages;
mod session;
mod visit;

use std::net::SocketAddr;
use std::path::Path;

use crate::auth::AuthError;
use crate::config::Config;
use crate::store::StoreError;

pub use app::App;

/// Why the page could not answer a request. The user sees only "try again"; the log says what happened.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot render the page: {0}")]
    Template(#[from] askama::Error),
    #[error("a database worker failed: {0}")]
    Worker(String),
    #[error("{0}")]
    Internal(String),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("web.listen: {0:?} is not ADDRESS:PORT")]
    BadListen(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the server: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The page's CPU priority (nice value) below mail logins'.
const PAGE_NICE: i32 = 10;

/// Runs the page until SIGTERM or SIGINT.
pub fn serve(db: &Path, config: Config, listen: Option<&str>) -> Result<(), ServeError> {
    // Passwords, app passwords and TOTP secrets pass through this process's memory.
    if let Err(e) = crate::sys::protect_memory() {
        eprintln!("mailpass web: warning: cannot keep secrets out of core files: {e}");
    }
    let listen = listen.unwrap_or(&config.web.listen).to_string();
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| ServeError::BadListen(listen.clone()))?;
    // Fails now, with the reason, rather than at the first visitor's sign-in.
    drop(crate::store::Store::open_existing(
        db,
        std::time::Duration::from_secs(5),
    )?);
    // Mail logins share the machine (and its argon2 slots) with the page; under load, a page can wait a
    // moment where a mail app's login should not. Set before the runtime starts: its threads inherit it.
    if let Err(e) = crate::sys::lower_priority(PAGE_NICE) {
        eprintln!("mailpass web: warning: cannot lower the page's CPU priority: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.web.max_blocking.max(1))
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let mut config = config;
        // Without `[web] origin`, the page is wherever it listens (a test, or a trial on the server itself).
        config.web.listen = bound.to_string();
        let app = App::new(db, config);
        eprintln!("mailpass web: listening on http://{bound}");
        listen::serve(listener, pages::router(app), shutdown()).await;
        eprintln!("mailpass web: stopped");
        Ok(())
    })
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on SIGTERM, just not gracefully.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
