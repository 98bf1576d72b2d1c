//! How a refusal that carries a hint reaches the client, and what holds it back.
//!
//! Dovecot's login processes (imap, pop3, submission, managesieve) show a client a text only for
//! "success + nologin + reason", and they enforce it as a refusal. Every other client of Dovecot's auth socket
//! reads that same answer as a success: Postfix relays the mail (`xsasl_dovecot_server.c` takes `OK` as
//! authenticated), `doveadm auth test` says "auth succeeded", Exim logs the user in. So the nologin form goes
//! only where a login process is known to be on the other end: a SERVICE of one of those four *and* a login
//! session id, which Dovecot's login processes always send and Postfix, Exim and doveadm do not. Everyone
//! else gets a plain failure. (No text can reach them: Dovecot 2.3 and 2.4 drop every field a failing passdb
//! set, `reason` included, before they answer, so Postfix says `535 5.7.8 Error: authentication failed:
//! (reason unavailable)` whatever the passdb sent.)
//!
//! A nologin refusal is a success to Dovecot, so Dovecot neither delays it (`auth_failure_delay`) nor counts it
//! in its anvil penalty, which a success even resets. mailpass brakes it instead, with the same numbers, and
//! without holding a process while it waits: `delay_until` makes Dovecot's auth process hold the answer back.

use crate::auth::Hint;
use crate::config::AuthConfig;
use crate::store::{Store, StoreError};

/// Who is on the other end of Dovecot's auth socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// A Dovecot login process, which enforces `nologin` and shows its `reason`.
    LoginProcess,
    /// Postfix, Exim, doveadm, or anything that is not known to enforce `nologin`.
    Other,
}

/// The SERVICE values of Dovecot's login processes (managesieve-login's is `sieve`). Not `smtp`: that is
/// Postfix's and Exim's.
const LOGIN_SERVICES: [&str; 4] = ["imap", "pop3", "submission", "sieve"];

impl Consumer {
    /// `session` is the login session id Dovecot passes on (`AUTH_SESSION`, the Lua request's `session`).
    pub fn of(service: &str, session: Option<&str>) -> Consumer {
        let has_session = session.is_some_and(|s| !s.is_empty());
        if has_session && LOGIN_SERVICES.contains(&service) {
            Consumer::LoginProcess
        } else {
            Consumer::Other
        }
    }
}

/// What a login process shows for a refusal without a hint that must not reach a next passdb (`[auth]
/// next_passdb` through Dovecot's checkpassword passdb, where "failure" continues): Dovecot's own words.
pub const PLAIN_REFUSAL_TEXT: &str = "Authentication failed.";

/// The reply fields of a refusal for a login process: "success + nologin + reason" with the hint's text (or
/// `PLAIN_REFUSAL_TEXT`), held back until `delay_until`. `page`: the self-service page's URL, if it runs.
pub fn nologin_fields(
    user: &str,
    hint: Option<Hint>,
    delay_until: Option<i64>,
    page: Option<&str>,
) -> Vec<String> {
    let text = hint.map_or(PLAIN_REFUSAL_TEXT.to_string(), |h| h.client_text(page));
    let mut fields = vec![
        format!("user={user}"),
        "nologin".to_string(),
        format!("reason={text}"),
    ];
    fields.extend(delay_until.map(|t| format!("delay_until={t}")));
    fields
}

/// Dovecot's anvil penalty: after n different failures from an address, the next attempt waits 2 × 2^n
/// seconds, at most 15 (`auth_penalty_to_secs`). `failures` counts this one too.
fn penalty_secs(failures: i64) -> u64 {
    match failures {
        ..=1 => 0,
        n => (1u64 << n.min(4)).min(15),
    }
}

/// Where Dovecot's penalty counts up to.
const PENALTY_SATURATES_AT: i64 = 4;

/// The `delay_until` timestamp for a nologin refusal: Dovecot's failure delay, plus its anvil penalty as
/// mailpass's failure log measures it for the network (failures within the ban window, identical retries
/// once), after `now`. `None` when there is nothing to wait.
///
/// Dovecot compares the timestamp with its own clock in whole seconds, so one second is added: the wait is
/// never shorter than asked, as Dovecot's own failure delay is never shorter than configured.
pub fn delay_until(
    store: &Store,
    config: &AuthConfig,
    network: Option<&str>,
    window: i64,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let penalty = match network {
        Some(network) if config.penalty => penalty_secs(store.distinct_failed_secrets(
            network,
            now - window,
            PENALTY_SATURATES_AT,
        )?),
        _ => 0,
    };
    let wait = config.failure_delay + penalty;
    Ok((wait > 0).then(|| now + wait as i64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_login_process_with_a_session_gets_the_nologin_form() {
        for service in ["imap", "pop3", "submission", "sieve"] {
            assert_eq!(Consumer::of(service, Some("Xy3k")), Consumer::LoginProcess);
            assert_eq!(Consumer::of(service, None), Consumer::Other);
            assert_eq!(Consumer::of(service, Some("")), Consumer::Other);
        }
        for service in ["smtp", "doveadm", "-", "lmtp", "IMAP"] {
            assert_eq!(Consumer::of(service, Some("Xy3k")), Consumer::Other);
        }
    }

    #[test]
    fn the_nologin_form_carries_the_hint_and_the_delay() {
        let nologin = nologin_fields("a@b", Some(Hint::TwoFactorAccount), Some(99), None);
        assert_eq!(&nologin[..2], ["user=a@b", "nologin"]);
        assert!(nologin[2].starts_with("reason=This account uses two-factor"));
        assert_eq!(nologin[3], "delay_until=99");
        assert_eq!(
            nologin_fields("a@b", Some(Hint::AppPasswordsOnly), None, None).len(),
            3
        );
        assert_eq!(
            nologin_fields("a@b", None, None, None)[2],
            "reason=Authentication failed."
        );
    }

    #[test]
    fn with_the_self_service_page_the_hint_says_where_to_make_the_app_password() {
        let page = Some("https://mail.example.org/account");
        let nologin = nologin_fields("a@b", Some(Hint::TwoFactorAccount), None, page);
        assert!(
            nologin[2].contains(
                "Create an app password for this mail app at https://mail.example.org/account/app-passwords and sign in"
            ),
            "{}",
            nologin[2]
        );
        // A plain refusal names no page: it must not tell a 2FA account from a wrong password.
        assert_eq!(
            nologin_fields("a@b", None, None, page)[2],
            "reason=Authentication failed."
        );
    }

    #[test]
    fn the_penalty_follows_dovecots_anvil() {
        let secs: Vec<u64> = (0..7).map(penalty_secs).collect();
        assert_eq!(secs, [0, 0, 4, 8, 15, 15, 15]);
    }
}
