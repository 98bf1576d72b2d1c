//! What each account operation means: creating an app password, enrolling TOTP, changing a main password.
//! The admin CLI (`admin/`) and the self-service page to come are thin front ends over this layer: they
//! turn their input into calls here and the results into output, and hold no rule of their own.
//!
//! Errors say what went wrong in the front ends' common terms; each front end adds how to fix it in its own
//! (a command to run, a page to open).

mod app_password;
mod totp;
mod user;

pub use app_password::{NewAppPasswordRequest, status};
pub use totp::TotpStatus;
pub use user::{UserDetails, is_imported, password_scheme, valid_name};

use crate::config::Config;
use crate::password::policy::PolicyError;
use crate::password::{Hasher, PasswordError};
use crate::store::{StoreError, UserRecord};
use crate::totp::{ImportedSecretError, TotpError};

/// What every account operation works with: the store, the config, and one instant, so that all times an
/// operation writes (created, expires, enrolled) agree.
pub struct Account<'a> {
    store: &'a crate::store::Store,
    config: &'a Config,
    now: i64,
}

/// Why an account operation was refused or failed. The texts never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The name as it was asked for, so that the answer shows what the caller typed.
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("invalid user name {0:?}")]
    InvalidUserName(String),
    /// `external`: the user asked for would have been external (their main password lives elsewhere).
    #[error("user {name:?} exists")]
    UserExists { name: String, external: bool },
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{0} is external: the main password is in the next passdb")]
    ExternalPassword(String),
    #[error("unknown service {0:?}")]
    UnknownService(String),
    /// The reason `clock::parse_duration` gave.
    #[error("{0}")]
    BadLifetime(String),
    #[error("an app password needs a label")]
    InvalidLabel,
    #[error("{user} has {limit} active app passwords, the most there can be")]
    TooManyAppPasswords { user: String, limit: usize },
    #[error("{user} already has an app password named {name:?}")]
    AppPasswordNameTaken { user: String, name: String },
    #[error("{user} has no active app password {which:?}")]
    NoSuchAppPassword { user: String, which: String },
    /// Enrolling again would silently replace the device that works now.
    #[error("two-factor authentication is active for {0}")]
    TotpActive(String),
    #[error("two-factor authentication is already active for {0}")]
    TotpAlreadyActive(String),
    #[error("no enrollment is pending for {0}")]
    NoPendingEnrollment(String),
    #[error("{0:?} is not a 6-digit code")]
    NotACode(String),
    #[error("that code does not match")]
    WrongCode,
    #[error("the enrollment changed meanwhile")]
    EnrollmentChanged,
    #[error("two-factor authentication is not enabled for {0}")]
    TotpNotEnabled(String),
    #[error("two-factor authentication is not active for {0}")]
    TotpNotActive(String),
    #[error("{0}")]
    ImportedSecret(#[from] ImportedSecretError),
    /// An imported secret would replace an active one, which was not asked for.
    #[error("two-factor authentication is active for {0} already")]
    TotpImportActive(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Totp(#[from] TotpError),
    /// A value this program made is not what it should be: a bug, never the caller's fault.
    #[error("{0}")]
    Internal(&'static str),
}

impl<'a> Account<'a> {
    pub fn new(store: &'a crate::store::Store, config: &'a Config, now: i64) -> Self {
        Account { store, config, now }
    }

    /// The stored user of that name (names are kept lowercased).
    pub fn user(&self, name: &str) -> Result<UserRecord, AccountError> {
        self.store
            .user(&name.to_lowercase())?
            .ok_or_else(|| AccountError::NoSuchUser(name.to_string()))
    }

    fn hasher(&self) -> Result<Hasher, AccountError> {
        Ok(Hasher::new(&self.config.argon2)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{Store, TotpState};

    const NOW: i64 = 1_700_000_000;

    /// A fresh store in a temporary directory, with one user "alice" (an unusable hash: no test here logs in).
    fn fixture() -> (tempfile::TempDir, Store, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_or_create(&dir.path().join("mailpass.db")).expect("store");
        assert!(store.add_user("alice", "{X}unused", NOW).expect("add"));
        (dir, store, Config::default())
    }

    fn request<'a>(name: &'a str, services: Option<&'a str>) -> NewAppPasswordRequest<'a> {
        NewAppPasswordRequest {
            name,
            services,
            expires_in: None,
        }
    }

    #[test]
    fn a_label_is_short_and_reads_as_it_is_stored() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        let long = "x".repeat(101);
        for bad in [
            "",
            "  ",
            "two\nlines",
            "evil\u{202e}gpj.exe",
            "zero\u{200b}width",
            &long,
        ] {
            assert!(
                matches!(
                    account.create_app_password("alice", &request(bad, None)),
                    Err(AccountError::InvalidLabel)
                ),
                "{bad:?}"
            );
        }
        account
            .create_app_password("alice", &request("Ünïcode Mail 📱", None))
            .expect("ordinary Unicode is fine");
    }

    #[test]
    fn a_user_has_at_most_a_hundred_active_app_passwords() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        for i in 0..100 {
            account
                .create_app_password("alice", &request(&format!("App {i}"), None))
                .expect("create");
        }
        assert!(matches!(
            account.create_app_password("alice", &request("One more", None)),
            Err(AccountError::TooManyAppPasswords { limit: 100, .. })
        ));
        account
            .revoke_app_passwords("alice", Some("App 0"))
            .expect("revoke");
        account
            .create_app_password("alice", &request("One more", None))
            .expect("room again");
    }

    #[test]
    fn an_active_app_password_name_is_taken_until_revoked() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        account
            .create_app_password("alice", &request("Phone", None))
            .expect("first");
        assert!(matches!(
            account.create_app_password("alice", &request("Phone", None)),
            Err(AccountError::AppPasswordNameTaken { .. })
        ));
        account
            .revoke_app_passwords("alice", Some("Phone"))
            .expect("revoke");
        account
            .create_app_password("Alice", &request(" Phone ", None))
            .expect("the name is free again");
    }

    #[test]
    fn a_created_app_password_is_shown_once_and_stored_only_as_a_tag() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        let created = account
            .create_app_password("alice", &request("Laptop", Some("imap,smtp")))
            .expect("create");
        assert_eq!(created.record.services.names(), ["imap", "smtp"]);
        let (_, stored) = account.app_passwords("alice").expect("list");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].tag, created.record.tag);
        assert_ne!(stored[0].tag, created.password.expose());
    }

    #[test]
    fn bad_labels_and_services_are_refused_before_anything_is_stored() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        assert!(matches!(
            account.create_app_password("alice", &request("  ", None)),
            Err(AccountError::InvalidLabel)
        ));
        assert!(matches!(
            account.create_app_password("alice", &request("Phone", Some("imap,ftp"))),
            Err(AccountError::UnknownService(_))
        ));
        assert!(account.app_passwords("alice").expect("list").1.is_empty());
    }

    #[test]
    fn revoking_a_name_that_looks_like_an_id_means_the_name() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        let first = account
            .create_app_password("alice", &request("Tablet", None))
            .expect("first");
        let named = account
            .create_app_password("alice", &request(&first.record.id.to_string(), None))
            .expect("named like the first one's id");
        let revoked = account
            .revoke_app_passwords("alice", Some(&first.record.id.to_string()))
            .expect("revoke");
        assert_eq!(revoked.count, 1);
        let (_, list) = account.app_passwords("alice").expect("list");
        let state = |id: i64| list.iter().find(|r| r.id == id).map(|r| r.revoked_at);
        assert_eq!(state(first.record.id), Some(None));
        assert_eq!(state(named.record.id), Some(Some(NOW)));
    }

    #[test]
    fn totp_is_active_only_after_one_valid_code_whose_step_is_then_used() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        let enrollment = account.enroll_totp("alice").expect("enroll");
        assert!(enrollment.uri.starts_with("otpauth://totp/"));
        assert_eq!(
            account.totp_status("alice").expect("status").state,
            TotpState::Pending
        );
        assert!(matches!(
            account.new_recovery_codes("alice"),
            Err(AccountError::TotpNotActive(_))
        ));
        let code = crate::totp::code_at(&enrollment.secret, NOW as u64).expect("code");
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(matches!(
            account.confirm_totp("alice", wrong),
            Err(AccountError::WrongCode)
        ));
        account.confirm_totp("alice", &code).expect("confirm");
        assert_eq!(
            account.totp_status("alice").expect("status").state,
            TotpState::Active
        );
        // The confirming code cannot log in as well.
        let user = account.user("alice").expect("user");
        let step = crate::totp::matching_step(&enrollment.secret, code.as_bytes(), NOW as u64)
            .expect("match")
            .expect("a step");
        assert!(!store.claim_totp_step(user.id, step).expect("claim"));
        assert!(matches!(
            account.enroll_totp("alice"),
            Err(AccountError::TotpActive(_))
        ));
        let codes = account.new_recovery_codes("alice").expect("codes");
        assert_eq!(codes.codes.len(), crate::recovery::COUNT);
        assert_eq!(
            account
                .totp_status("alice")
                .expect("status")
                .recovery_codes_left,
            crate::recovery::COUNT as i64
        );
        account.disable_totp("alice").expect("disable");
        let status = account.totp_status("alice").expect("status");
        assert_eq!(status.state, TotpState::None);
        assert_eq!(status.recovery_codes_left, 0);
    }

    #[test]
    fn a_pending_enrollment_can_be_shown_again_until_it_is_confirmed() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        assert!(account.pending_enrollment("alice").expect("none").is_none());
        let enrollment = account.enroll_totp("alice").expect("enroll");
        let again = account
            .pending_enrollment("Alice")
            .expect("read")
            .expect("pending");
        assert_eq!(again.secret.expose(), enrollment.secret.expose());
        assert_eq!(*again.uri, *enrollment.uri);
        let code = crate::totp::code_at(&enrollment.secret, NOW as u64).expect("code");
        account.confirm_totp("alice", &code).expect("confirm");
        assert!(
            account
                .pending_enrollment("alice")
                .expect("active")
                .is_none()
        );
    }

    #[test]
    fn an_imported_secret_replaces_an_active_one_only_when_asked() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        let secret = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        account.import_totp("alice", secret, false).expect("import");
        assert!(matches!(
            account.import_totp("alice", secret, false),
            Err(AccountError::TotpImportActive(_))
        ));
        account.import_totp("alice", secret, true).expect("replace");
    }

    #[test]
    fn a_weak_or_external_main_password_change_is_refused() {
        let (_dir, store, config) = fixture();
        let account = Account::new(&store, &config, NOW);
        assert!(matches!(
            account.change_password("alice", &Secret::from_slice(b"short")),
            Err(AccountError::Policy(_))
        ));
        assert!(matches!(
            account.add_user("bob", &Secret::from_slice(b"")),
            Err(AccountError::Policy(_))
        ));
        account.add_external_user("carol").expect("external");
        assert!(matches!(
            account.change_password("carol", &Secret::from_slice(b"long enough password")),
            Err(AccountError::ExternalPassword(_))
        ));
        assert!(matches!(
            account.add_external_user("carol"),
            Err(AccountError::UserExists { external: true, .. })
        ));
        assert!(matches!(
            account.add_user("bad name", &Secret::from_slice(b"long enough password")),
            Err(AccountError::InvalidUserName(_))
        ));
    }
}
