//! The server's shared state, and `App::run`: the only way a request reaches the database or argon2. That
//! work blocks, so it runs on tokio's blocking threads, at most `[web] max_blocking` requests at once (the
//! rest wait their turn in order); argon2 also waits for the machine-wide slots that mail logins use, so the
//! page cannot starve them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::WebError;
use super::pages::error_page;
use crate::account::Account;
use crate::auth::AuthError;
use crate::auth::Authenticator;
use crate::clock;
use crate::config::Config;
use crate::password::{Gate, GateError, Hasher, Pass};
use crate::store::Store;
use crate::tag::TagKey;

#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    db: PathBuf,
    config: Config,
    permits: Arc<Semaphore>,
    /// Scheme, host and port, as browsers send it in `Origin`.
    origin: String,
    /// The path the page lives under ("" or "/account").
    base: String,
    proxies: Vec<IpAddr>,
}

/// How long a request may wait for the database (another process writing) before it is a temporary failure.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a sign-in may wait for an argon2 slot.
const ARGON2_DEADLINE: Duration = Duration::from_secs(10);

impl App {
    pub fn new(db: &Path, config: Config) -> App {
        let (origin, base) = config.web.origin_parts();
        let proxies = config
            .web
            .trusted_proxies
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        App(Arc::new(Inner {
            db: db.to_path_buf(),
            permits: Arc::new(Semaphore::new(config.web.max_blocking)),
            config,
            origin,
            base,
            proxies,
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    pub fn base(&self) -> &str {
        &self.0.base
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.0.proxies.contains(&ip)
    }

    /// Runs `work` with a fresh view of the database, off the async executor. Any fault is a page that
    /// says "try again", with the cause in the log: never a success, never "wrong password".
    pub async fn run<F>(&self, work: F) -> Response
    where
        F: FnOnce(&Ctx) -> Answer + Send + 'static,
    {
        let Ok(permit) = self.0.permits.clone().acquire_owned().await else {
            return self.fault(WebError::Internal("the request queue is closed".into()));
        };
        let app = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let store = Store::open_existing(&app.0.db, BUSY_TIMEOUT)?;
            let ctx = Ctx {
                store,
                app: app.clone(),
                now: clock::now(),
            };
            work(&ctx)
        })
        .await;
        match joined {
            Ok(Ok(response) | Err(Halt::Answer(response))) => response,
            Ok(Err(Halt::Fault(e))) => self.fault(e),
            Err(e) => self.fault(WebError::Worker(e.to_string())),
        }
    }

    fn fault(&self, e: WebError) -> Response {
        eprintln!("mailpass web: error: {e}");
        error_page(self, &e).into_response()
    }
}

/// What a page's work ends in: the answer, or a stop on the way (`?`).
pub type Answer = Result<Response, Halt>;

/// Why a page's work stopped before its own answer: another answer is due (a redirect to sign in, a
/// refused form), or a fault.
pub enum Halt {
    Answer(Response),
    Fault(WebError),
}

impl<E: Into<WebError>> From<E> for Halt {
    fn from(e: E) -> Halt {
        Halt::Fault(e.into())
    }
}

/// What a page's work has at hand: the database, the config, and one instant.
pub struct Ctx {
    pub store: Store,
    pub app: App,
    pub now: i64,
}

impl Ctx {
    pub fn config(&self) -> &Config {
        self.app.config()
    }

    pub fn account(&self) -> Account<'_> {
        Account::new(&self.store, self.app.config(), self.now)
    }

    pub fn key(&self) -> Result<TagKey, WebError> {
        Ok(self.store.tag_key()?)
    }

    /// One of the machine's argon2 slots (shared with mail logins), for an account operation that hashes (a
    /// new password); held until dropped. All busy until the deadline: a temporary failure, as at sign-in.
    pub fn argon2_slot(&self) -> Result<Pass, WebError> {
        self.gate().enter().map_err(|e| {
            WebError::Auth(match e {
                GateError::Busy => AuthError::Overloaded { counted: false },
                other => AuthError::Gate(other),
            })
        })
    }

    fn gate(&self) -> Gate {
        Gate::beside(
            self.store.path(),
            self.config().argon2.max_concurrent,
            Instant::now() + ARGON2_DEADLINE,
        )
    }

    /// Runs a sign-in step with the same hasher, slots and policy as a mail login.
    pub fn authenticate<T>(
        &self,
        step: impl FnOnce(&Authenticator) -> Result<T, AuthError>,
    ) -> Result<T, WebError> {
        let hasher = Hasher::new(&self.config().argon2)
            .map_err(|e| WebError::Auth(AuthError::Password(e)))?;
        let gate = self.gate();
        let authenticator = Authenticator {
            store: &self.store,
            hasher: &hasher,
            config: self.config(),
            now: self.now,
            gate: &gate,
        };
        Ok(step(&authenticator)?)
    }
}
