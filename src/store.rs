//! The SQLite database: schema, migrations and every SQL statement of mailpass.
//!
//! One file, WAL mode (many auth processes read and write at once), a busy timeout, owner-only permissions.
//! The admin side creates and migrates it; the auth side only opens an existing database of the current
//! schema, so a missing or foreign file is a temporary failure and never an empty user table.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension, Row, params};

use crate::secret::Secret;
use crate::service::Services;
use crate::tag::TagKey;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {0} does not exist (run any `mailpass user` command to create it)")]
    Missing(PathBuf),
    #[error(
        "database {0} has no mailpass schema (run any `mailpass user` command to initialise it)"
    )]
    NotInitialized(PathBuf),
    #[error(
        "database {path} has schema version {found}, newer than this mailpass ({supported}): upgrade mailpass"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot create database {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot use database {path}: {source}; the user this runs as (uid {uid}) must be able to write the \
         database, its -wal and -shm files and its directory: `mailpass doctor` checks who owns them"
    )]
    NoAccess {
        path: PathBuf,
        source: rusqlite::Error,
        uid: u32,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database key is damaged")]
    BadKey,
    #[error("cannot update the ban list beside the database: {0}")]
    BanList(std::io::Error),
    #[error("the copy cannot be restored: {0}")]
    BadSnapshot(String),
    #[error("cannot read the refusal log beside the database: {0}")]
    RefusalLog(std::io::Error),
}

/// Each entry moves the schema one version up; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: users, app passwords, recovery codes, the failure log, bans and the allowlist.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE users (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         password_hash TEXT NOT NULL,
         enabled INTEGER NOT NULL DEFAULT 1,
         created_at INTEGER NOT NULL,
         totp_state TEXT NOT NULL DEFAULT 'none' CHECK (totp_state IN ('none', 'pending', 'active')),
         totp_secret BLOB,
         totp_enrolled_at INTEGER,
         totp_last_step INTEGER
     );
     CREATE TABLE app_passwords (
         id INTEGER PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         name TEXT NOT NULL,
         tag BLOB NOT NULL,
         hash TEXT NOT NULL,
         services INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER,
         revoked_at INTEGER,
         last_used_at INTEGER,
         last_ip TEXT,
         last_service TEXT
     );
     CREATE INDEX app_passwords_by_tag ON app_passwords(user_id, tag);
     CREATE UNIQUE INDEX app_passwords_active_name ON app_passwords(user_id, name) WHERE revoked_at IS NULL;
     CREATE TABLE recovery_codes (
         id INTEGER PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         tag BLOB NOT NULL,
         created_at INTEGER NOT NULL,
         used_at INTEGER
     );
     CREATE INDEX recovery_codes_by_tag ON recovery_codes(user_id, tag);
     CREATE TABLE failures (
         id INTEGER PRIMARY KEY,
         time INTEGER NOT NULL,
         ip TEXT,
         network TEXT,
         user TEXT NOT NULL,
         service TEXT,
         reason TEXT NOT NULL,
         fingerprint BLOB,
         counted INTEGER NOT NULL
     );
     CREATE INDEX failures_by_network ON failures(network, time);
     CREATE INDEX failures_second_factor ON failures(user COLLATE NOCASE, time)
         WHERE reason = 'second_factor_required';
     CREATE TABLE bans (
         network TEXT PRIMARY KEY,
         start BLOB NOT NULL,
         end BLOB NOT NULL,
         since INTEGER NOT NULL,
         until INTEGER,
         reason TEXT NOT NULL,
         count INTEGER NOT NULL,
         lifted_at INTEGER
     );
     CREATE INDEX bans_by_range ON bans(start, end);
     CREATE TABLE allowlist (
         network TEXT PRIMARY KEY,
         start BLOB NOT NULL,
         end BLOB NOT NULL,
         added_at INTEGER NOT NULL
     );",
    // 2: app passwords are verified by their keyed tag alone (generated, 80 bits: argon2 buys nothing there),
    // so their argon2 hashes go and the tag is read per user, not looked up. The failure log's old
    // fingerprints were a keyed hash of the secret under a key kept in this same database, a fast oracle for
    // the main password: they are erased, with secure_delete on and a VACUUM after the migration so that no copy
    // stays in free pages (new ones derive from the argon2 output, see `auth.rs`). Code checks after a right
    // password are counted per account, in a window that starts with the first.
    "PRAGMA secure_delete = ON;
     ALTER TABLE app_passwords DROP COLUMN hash;
     DROP INDEX app_passwords_by_tag;
     CREATE INDEX app_passwords_by_user ON app_passwords(user_id);
     UPDATE failures SET fingerprint = NULL;
     ALTER TABLE users ADD COLUMN wrong_codes INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE users ADD COLUMN wrong_codes_since INTEGER NOT NULL DEFAULT 0;",
    // 3: external users (`user add --external`): known to mailpass for app passwords and TOTP only; their
    // main password lives in another passdb (LDAP, SQL), so their password_hash is ''.
    "ALTER TABLE users ADD COLUMN external INTEGER NOT NULL DEFAULT 0;",
    // 4: the self-service page. Its sessions are stored by the keyed tag of their random token (the cookie),
    // so that signing out ends them for every web process and a thief of the database cannot use one;
    // `signed_in` 0 is a right password still waiting for its code; `fresh_at` the last time the user typed
    // their password (and code), which the sensitive actions need to be recent.
    "ALTER TABLE users ADD COLUMN self_service INTEGER NOT NULL DEFAULT 1;
     CREATE TABLE web_sessions (
         id INTEGER PRIMARY KEY,
         tag BLOB NOT NULL UNIQUE,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         signed_in INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         seen_at INTEGER NOT NULL,
         fresh_at INTEGER,
         ip TEXT
     );
     CREATE INDEX web_sessions_by_user ON web_sessions(user_id);",
];

/// The schema this mailpass writes and the auth path requires.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version whose migration erased the fast fingerprints.
const FAST_FINGERPRINTS_ERASED: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    None,
    Pending,
    Active,
}

impl TotpState {
    pub fn name(self) -> &'static str {
        match self {
            TotpState::None => "none",
            TotpState::Pending => "pending",
            TotpState::Active => "active",
        }
    }

    /// An unknown state is an error, never "none": 2FA must not fail open.
    fn parse(s: &str) -> Option<TotpState> {
        match s {
            "active" => Some(TotpState::Active),
            "pending" => Some(TotpState::Pending),
            "none" => Some(TotpState::None),
            _ => None,
        }
    }
}

/// What `mailpass doctor` learns from a database it opens read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// `PRAGMA quick_check`'s first line: `ok` for a sound file.
    pub quick_check: String,
    /// `PRAGMA user_version`: 0 for a file without mailpass's schema.
    pub schema_version: i64,
    /// Whether the key that app passwords and recovery codes are checked with is there.
    pub has_key: bool,
}

/// A mail app that sends a 2FA account's main password without a code: one address and service, with the
/// first and last time it did and how often (within the failure log's retention).
pub struct StaleClient {
    pub ip: Option<String>,
    pub service: Option<String>,
    pub first: i64,
    pub last: i64,
    pub count: i64,
}

/// What a database holds, as `backup` and `restore` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub users: i64,
    pub app_passwords: i64,
    pub failures: i64,
    pub bans: i64,
}

pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
    pub enabled: bool,
    pub created_at: i64,
    pub totp: TotpState,
    pub totp_secret: Option<Secret>,
    pub totp_enrolled_at: Option<i64>,
    /// Known to mailpass for app passwords and TOTP only: the main password is another passdb's
    /// (`password_hash` is empty).
    pub external: bool,
    /// Whether the user may sign in to the self-service page (the config can still turn it off for all).
    pub self_service: bool,
}

/// A session of the self-service page.
#[derive(Debug, Clone)]
pub struct WebSessionRecord {
    pub id: i64,
    pub user_id: i64,
    /// `false`: the password was right and the code is still to come.
    pub signed_in: bool,
    pub created_at: i64,
    pub seen_at: i64,
    /// When the user last typed their password (and code).
    pub fresh_at: Option<i64>,
    pub ip: Option<String>,
}

/// A new session of the self-service page.
pub struct NewWebSession<'a> {
    pub tag: &'a [u8],
    pub user_id: i64,
    pub signed_in: bool,
    pub now: i64,
    pub ip: Option<&'a str>,
    /// The password hash and TOTP state a sign-in verified: the session starts only if the user still has
    /// them. `None` for the session that goes on after the user's own change.
    pub credential: Option<(&'a str, TotpState)>,
}

pub struct AppPasswordRecord {
    pub id: i64,
    pub name: String,
    /// The keyed tag of the app password (see `tag.rs`): what a login is checked against.
    pub tag: Vec<u8>,
    pub services: Services,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_ip: Option<String>,
    pub last_service: Option<String>,
}

pub struct NewAppPassword<'a> {
    pub name: &'a str,
    pub tag: &'a [u8],
    pub services: Services,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// A failed login as the failure log keeps it.
pub struct Failure<'a> {
    pub time: i64,
    pub ip: Option<&'a str>,
    /// The network the address counts in (see `bans.rs`).
    pub network: Option<&'a str>,
    pub user: &'a str,
    pub service: Option<&'a str>,
    pub reason: &'a str,
    pub fingerprint: Option<&'a [u8]>,
    pub counted: bool,
}

pub struct FailureRecord {
    pub time: i64,
    pub ip: Option<String>,
    pub network: Option<String>,
    pub user: String,
    pub service: Option<String>,
    pub reason: String,
    pub counted: bool,
}

/// Which failures `failures list` shows.
pub struct FailureFilter<'a> {
    pub ip: Option<&'a str>,
    pub user: Option<&'a str>,
    pub since: Option<i64>,
    pub reason: Option<&'a str>,
    pub limit: i64,
}

/// A ban of a network. `until` is `None` for a permanent ban; `lifted_at` is set by `ban remove`.
pub struct BanRecord {
    pub network: String,
    pub since: i64,
    pub until: Option<i64>,
    pub reason: String,
    pub count: i64,
    pub lifted_at: Option<i64>,
}

impl BanRecord {
    pub fn is_active(&self, now: i64) -> bool {
        self.lifted_at.is_none() && self.until.is_none_or(|t| t > now)
    }
}

/// A network with its address range as key blobs (see `net.rs`).
pub struct NetworkRange<'a> {
    pub network: &'a str,
    pub start: &'a [u8],
    pub end: &'a [u8],
}

/// Which app passwords `revoke` means.
pub enum Selector<'a> {
    Name(&'a str),
    Id(i64),
    All,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// WAL size past which the closing process checkpoints and truncates it. The next process to open the database
/// rebuilds the WAL index by reading every frame, so the WAL must stay short; a checkpoint every few dozen
/// failed logins costs one fsync among them.
const WAL_CHECKPOINT_BYTES: u64 = 512 * 1024;

impl Drop for Store {
    fn drop(&mut self) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_CHECKPOINT_BYTES) {
            // Busy (another process reading) just means a later process does it.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }
}

impl Store {
    /// For admin commands: creates the database and migrates it as needed. The new file is 0600, or 0660 in a
    /// setgid directory (the Debian package's /var/lib/mailpass, 2770, group `mailpass`): the group is how the
    /// Dovecot auth user and the web page share it. SQLite gives the `-wal` and `-shm` the database's mode.
    pub fn open_or_create(path: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if !path.exists() {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let shared = std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o2000 != 0);
            let mode = if shared { 0o660 } else { 0o600 };
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                // The umask (022, or 077 under the shipped units) may have taken the group's bits away.
                .and_then(|file| file.set_permissions(std::fs::Permissions::from_mode(mode)))
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        OpenOptions::new().read(true).open(path).map(drop)
                    }
                    _ => Err(e),
                })
                .map_err(|source| StoreError::Create {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let store = Store::configure(conn, path, Duration::from_secs(5))?;
        store.conn.pragma_update(None, "journal_mode", "WAL")?;
        store.migrate(path)?;
        Ok(store)
    }

    /// For the auth path: opens an existing database of the current schema, never creates one.
    pub fn open_existing(path: &Path, busy_timeout: Duration) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| no_access(path, e))?;
        let store = Store::configure(conn, path, busy_timeout)?;
        match store.schema_version().map_err(|e| match e {
            StoreError::Sqlite(e) => no_access(path, e),
            other => other,
        })? {
            0 => Err(StoreError::NotInitialized(path.to_path_buf())),
            v if v > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            v if v < SCHEMA_VERSION => Err(StoreError::NotInitialized(path.to_path_buf())),
            _ => Ok(store),
        }
    }

    /// The same error, with the usual cause named when SQLite says it cannot open or write the files (see
    /// `no_access`).
    pub fn explain(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Sqlite(e) => no_access(&self.path, e),
            other => other,
        }
    }

    fn configure(
        conn: Connection,
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Store, StoreError> {
        conn.busy_timeout(busy_timeout)?;
        // Each login is a new process and the only connection. By default the last connection to close
        // checkpoints the WAL, fsyncs and deletes it: more than the query itself costs. `Drop` checkpoints
        // instead once the WAL has grown (see there).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        // NORMAL is durable in WAL mode except for the last commits before a power loss, and keeps many
        // concurrent writers from queueing behind fsync.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// For `mailpass doctor`: opens an existing database read-only, migrates and creates nothing, and says
    /// whether it is sound and which schema it has. (SQLite still creates the `-wal` and `-shm` of a WAL
    /// database that lacks them, with the caller's owner: the caller acts as the right user first.)
    pub fn inspect(path: &Path) -> Result<Inspection, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let quick_check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        // No meta table (no schema, or not mailpass's) means no key.
        let has_key = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'tag_key')",
                [],
                |r| r.get(0),
            )
            .unwrap_or(false);
        Ok(Inspection {
            quick_check,
            schema_version,
            has_key,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn migrate(&self, path: &Path) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut erased_fingerprints = false;
        let result = (|| {
            let version = self.schema_version()?;
            erased_fingerprints = (1..FAST_FINGERPRINTS_ERASED).contains(&version);
            if version > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.to_path_buf(),
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                self.conn.execute_batch(sql)?;
                self.conn
                    .pragma_update(None, "user_version", (i + 1) as i64)?;
            }
            let has_key: bool = self.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'tag_key')",
                [],
                |r| r.get(0),
            )?;
            if !has_key {
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('tag_key', ?1)",
                    [TagKey::generate().expose()],
                )?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.conn.execute_batch("COMMIT")?;
                if erased_fingerprints {
                    // Rebuilt without free pages, and the WAL written back and emptied: the erased values
                    // leave no copy in the files (older backups still hold them).
                    self.conn.execute_batch(
                        "PRAGMA secure_delete = ON; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
                    )?;
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// A consistent copy of the whole database, as the bytes of an SQLite file: taken in one step of SQLite's
    /// online backup, under one read transaction, so logins that write meanwhile neither wait for it nor tear it.
    pub fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        let mut copy = Connection::open_in_memory()?;
        Backup::new(&self.conn, &mut copy)?.step(-1)?;
        let mut bytes = copy.serialize(MAIN_DB)?.to_vec();
        // The header still says WAL (bytes 18 and 19 are 2), which a file on its own, without its -wal, and an
        // in-memory image cannot be: mark it as a rollback-journal database (1), as `journal_mode = DELETE`
        // would.
        if let Some(versions) = bytes.get_mut(18..20) {
            versions.fill(1);
        }
        Ok(bytes)
    }

    /// Checks a copy made by `snapshot` (or read back from a backup file) and says what it holds.
    pub fn check_snapshot(snapshot: &[u8]) -> Result<Contents, StoreError> {
        contents_of(&open_snapshot(snapshot)?)
    }

    /// Replaces the database's contents with `snapshot`, after the checks of `check_snapshot`, and migrates it
    /// if it is older. What the snapshot holds, for the caller to report.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<Contents, StoreError> {
        let copy = open_snapshot(snapshot)?;
        Backup::new(&copy, &mut self.conn)?.step(-1)?;
        // The copy's header says rollback journal; logins need WAL.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        let path = self.path.clone();
        self.migrate(&path)?;
        self.contents()
    }

    /// How many users, app passwords (active ones), failures and active bans the database holds.
    pub fn contents(&self) -> Result<Contents, StoreError> {
        contents_of(&self.conn)
    }

    pub fn tag_key(&self) -> Result<TagKey, StoreError> {
        let bytes: Vec<u8> =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'tag_key'", [], |r| {
                    r.get(0)
                })?;
        TagKey::from_bytes(bytes).ok_or(StoreError::BadKey)
    }

    // --- users ---

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, password_hash, enabled, created_at, totp_state, totp_secret, totp_enrolled_at,
                        external, self_service
                 FROM users WHERE name = ?1",
                [name],
                user_from_row,
            )
            .optional()?)
    }

    pub fn users(&self) -> Result<Vec<(UserRecord, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, password_hash, enabled, created_at, totp_state, totp_secret, totp_enrolled_at,
                    external, self_service,
                    (SELECT count(*) FROM app_passwords a
                     WHERE a.user_id = users.id AND a.revoked_at IS NULL
                       AND (a.expires_at IS NULL OR a.expires_at > strftime('%s', 'now')))
             FROM users ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| Ok((user_from_row(r)?, r.get(10)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds a user; `false` when the name is taken.
    pub fn add_user(&self, name: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![name, hash, now],
        )?;
        Ok(n == 1)
    }

    /// Adds an external user (no main password in mailpass); `false` when the name is taken.
    pub fn add_external_user(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO users (name, password_hash, created_at, external) VALUES (?1, '', ?2, 1)
             ON CONFLICT (name) DO NOTHING",
            params![name, now],
        )?;
        Ok(n == 1)
    }

    /// Adds the user as external, or makes the user of that name external, dropping their main password
    /// (`import --external`, which decides beforehand which of the two it means).
    pub fn put_external_user(&self, name: &str, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO users (name, password_hash, created_at, external) VALUES (?1, '', ?2, 1)
             ON CONFLICT (name) DO UPDATE SET password_hash = '', external = 1",
            params![name, now],
        )?;
        Ok(())
    }

    /// A new main password. Like every change of a credential (`put_password_hash`, `activate_totp`,
    /// `disable_totp`), it ends the user's sessions on the self-service page: whoever signed in with what was
    /// valid before is out. (The rehash of an unchanged password at login, `upgrade_password_hash`, is no
    /// such change.)
    pub fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<(), StoreError> {
        self.atomically(|s| {
            s.conn.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![user_id, hash],
            )?;
            s.delete_web_sessions(user_id)?;
            Ok(())
        })
    }

    /// Runs `f` as one unit (a savepoint, so that it also nests inside a transaction such as an import's):
    /// a credential and the sessions it ends change together or not at all.
    fn atomically<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("SAVEPOINT credential")?;
        match f(self) {
            Ok(value) => {
                self.conn.execute_batch("RELEASE credential")?;
                Ok(value)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO credential; RELEASE credential");
                Err(e)
            }
        }
    }

    /// Adds the user with this hash, or replaces the hash of the user of that name (`import`, which decides
    /// beforehand, inside the same transaction, which of the two it means).
    pub fn put_password_hash(&self, name: &str, hash: &str, now: i64) -> Result<(), StoreError> {
        self.atomically(|s| {
            s.conn.execute(
                "INSERT INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
                params![name, hash, now],
            )?;
            s.conn.execute(
                "DELETE FROM web_sessions WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
                [name],
            )?;
            Ok(())
        })
    }

    /// Replaces a hash only if it is still the one that was verified, so that a concurrent `user passwd`
    /// is never undone by a login's transparent rehash.
    pub fn upgrade_password_hash(
        &self,
        user_id: i64,
        old: &str,
        new: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2",
            params![user_id, old, new],
        )?;
        Ok(())
    }

    /// The stored hash of some user, picked by `seed` (the same seed picks the same user while the table
    /// stays as it is), and whether that user has active TOTP: what an unknown user's dummy verification
    /// imitates, so that it costs what refusing a real user costs (one verification, or two on a 2FA account)
    /// even while hashes of older parameters remain. Only argon2 hashes are imitated: the dummy's output becomes
    /// the fingerprint of the failed secret (often a real password under a mistyped name), which must cost a
    /// thief an argon2 run, never an imported scheme's SHA.
    pub fn some_user_hash(&self, seed: u64) -> Result<Option<(String, bool)>, StoreError> {
        // Two indexed lookups whatever the table's size: a random point among the ids, then the next user.
        let seed = (seed >> 1) as i64;
        Ok(self
            .conn
            .query_row(
                "SELECT password_hash, totp_state = 'active' FROM users
                 WHERE id >= ?1 % ((SELECT max(id) FROM users) + 1) AND NOT external
                   AND password_hash LIKE '$argon2%'
                 ORDER BY id LIMIT 1",
                [seed],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// The user of that id (a session's), if they still exist.
    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, password_hash, enabled, created_at, totp_state, totp_secret, totp_enrolled_at,
                        external, self_service
                 FROM users WHERE id = ?1",
                [id],
                user_from_row,
            )
            .optional()?)
    }

    pub fn set_self_service(&self, user_id: i64, allowed: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET self_service = ?2 WHERE id = ?1",
            params![user_id, allowed],
        )?;
        Ok(())
    }

    /// Starts a session, in one statement with the check of its credential (see `NewWebSession`); `None`
    /// when the credential changed since it was verified.
    pub fn add_web_session(&self, new: &NewWebSession) -> Result<Option<i64>, StoreError> {
        let (hash, totp) = new.credential.unzip();
        let n = self.conn.execute(
            "INSERT INTO web_sessions (tag, user_id, signed_in, created_at, seen_at, fresh_at, ip)
             SELECT ?1, ?2, ?3, ?4, ?4, ?4, ?5
             WHERE ?6 IS NULL
                OR EXISTS (SELECT 1 FROM users WHERE id = ?2 AND password_hash = ?6 AND totp_state = ?7)",
            params![
                new.tag,
                new.user_id,
                new.signed_in,
                new.now,
                new.ip,
                hash,
                totp.map(TotpState::name)
            ],
        )?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    pub fn web_session(&self, tag: &[u8]) -> Result<Option<WebSessionRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, user_id, signed_in, created_at, seen_at, fresh_at, ip
                 FROM web_sessions WHERE tag = ?1",
                [tag],
                web_session_from_row,
            )
            .optional()?)
    }

    /// A user's sessions, or everyone's (oldest first).
    pub fn web_sessions(
        &self,
        user_id: Option<i64>,
    ) -> Result<Vec<(String, WebSessionRecord)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.id, s.user_id, s.signed_in, s.created_at, s.seen_at, s.fresh_at, s.ip, u.name
             FROM web_sessions s JOIN users u ON u.id = s.user_id
             WHERE ?1 IS NULL OR s.user_id = ?1 ORDER BY s.created_at, s.id",
        )?;
        let rows = stmt.query_map([user_id], |r| Ok((r.get(7)?, web_session_from_row(r)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a request of the session.
    pub fn touch_web_session(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE web_sessions SET seen_at = ?2 WHERE id = ?1 AND seen_at < ?2",
            params![id, now],
        )?;
        Ok(())
    }

    /// Carries a session's last authentication over to the session that replaces it.
    pub fn set_web_session_fresh(&self, id: i64, fresh_at: Option<i64>) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE web_sessions SET fresh_at = ?2 WHERE id = ?1",
            params![id, fresh_at],
        )?;
        Ok(())
    }

    /// The user has just typed their password (and code) again.
    pub fn refresh_web_session(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE web_sessions SET fresh_at = ?2, seen_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    pub fn delete_web_session(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM web_sessions WHERE id = ?1", [id])?
            == 1)
    }

    /// Ends every session of the user; how many there were.
    pub fn delete_web_sessions(&self, user_id: i64) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM web_sessions WHERE user_id = ?1", [user_id])?)
    }

    /// Deletes sessions idle since before `idle_before` or created before `created_before`.
    pub fn prune_web_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM web_sessions WHERE seen_at < ?1 OR created_at < ?2",
            params![idle_before, created_before],
        )?)
    }

    pub fn delete_user(&self, user_id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM users WHERE id = ?1", [user_id])?;
        Ok(())
    }

    pub fn set_enabled(&self, user_id: i64, enabled: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET enabled = ?2 WHERE id = ?1",
            params![user_id, enabled],
        )?;
        Ok(())
    }

    // --- app passwords ---

    pub fn app_passwords(&self, user_id: i64) -> Result<Vec<AppPasswordRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {APP_PASSWORD_COLUMNS} FROM app_passwords WHERE user_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([user_id], app_password_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds an app password; `None` when the user already has an active one of that name.
    pub fn add_app_password(
        &self,
        user_id: i64,
        new: &NewAppPassword,
    ) -> Result<Option<i64>, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO app_passwords (user_id, name, tag, services, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING",
            params![
                user_id,
                new.name,
                new.tag,
                new.services.bits(),
                new.created_at,
                new.expires_at
            ],
        )?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// Revokes the selected active app passwords and returns how many.
    pub fn revoke_app_passwords(
        &self,
        user_id: i64,
        selector: &Selector,
        now: i64,
    ) -> Result<usize, StoreError> {
        let sql =
            "UPDATE app_passwords SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL";
        Ok(match selector {
            Selector::Name(name) => self
                .conn
                .execute(&format!("{sql} AND name = ?3"), params![user_id, now, name])?,
            Selector::Id(id) => self
                .conn
                .execute(&format!("{sql} AND id = ?3"), params![user_id, now, id])?,
            Selector::All => self.conn.execute(sql, params![user_id, now])?,
        })
    }

    pub fn record_app_password_use(
        &self,
        id: i64,
        now: i64,
        ip: Option<&str>,
        service: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE app_passwords SET last_used_at = ?2, last_ip = ?3, last_service = ?4 WHERE id = ?1",
            params![id, now, ip, service],
        )?;
        Ok(())
    }

    // --- TOTP and recovery codes ---

    /// Starts (or restarts) an enrollment; the secret counts only after `activate_totp`.
    pub fn set_totp_pending(
        &self,
        user_id: i64,
        secret: &Secret,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET totp_state = 'pending', totp_secret = ?2, totp_enrolled_at = ?3,
                              totp_last_step = NULL
             WHERE id = ?1",
            params![user_id, secret.expose(), now],
        )?;
        Ok(())
    }

    /// Activates a pending enrollment with the step of the code that confirmed it (so it cannot log in).
    pub fn activate_totp(&self, user_id: i64, step: u64, now: i64) -> Result<bool, StoreError> {
        self.atomically(|s| {
            let n = s.conn.execute(
                "UPDATE users SET totp_state = 'active', totp_last_step = ?2, totp_enrolled_at = ?3
                 WHERE id = ?1 AND totp_state = 'pending'",
                params![user_id, step as i64, now],
            )?;
            if n == 1 {
                s.delete_web_sessions(user_id)?;
            }
            Ok(n == 1)
        })
    }

    /// Turns TOTP off, or cancels an enrollment. Only turning off an active one changes a credential and
    /// ends the user's sessions; a cancelled enrollment never worked anywhere.
    pub fn disable_totp(&self, user_id: i64) -> Result<(), StoreError> {
        self.atomically(|s| {
            let was: Option<String> = s
                .conn
                .query_row(
                    "SELECT totp_state FROM users WHERE id = ?1",
                    [user_id],
                    |r| r.get(0),
                )
                .optional()?;
            s.conn.execute(
                "UPDATE users SET totp_state = 'none', totp_secret = NULL, totp_enrolled_at = NULL,
                                  totp_last_step = NULL
                 WHERE id = ?1",
                [user_id],
            )?;
            s.conn
                .execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
            if was.as_deref() == Some("active") {
                s.delete_web_sessions(user_id)?;
            }
            Ok(())
        })
    }

    /// Claims a TOTP step for a login: true only for the one caller that moves the last accepted step
    /// forward. A single UPDATE is atomic, so two logins racing with the same code cannot both win.
    pub fn claim_totp_step(&self, user_id: i64, step: u64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE users SET totp_last_step = ?2
             WHERE id = ?1 AND totp_state = 'active' AND (totp_last_step IS NULL OR totp_last_step < ?2)",
            params![user_id, step as i64],
        )?;
        Ok(n == 1)
    }

    /// Takes one code check from the account's allowance before the code is looked at: at most `max` checks
    /// in a window of `window` seconds that starts with the first. `false`: none left. Taken in one statement,
    /// so concurrent logins cannot all see the same count; given back by `refund_code_check` when the code
    /// turns out right.
    pub fn take_code_check(
        &self,
        user_id: i64,
        max: i64,
        window: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE users SET
                 wrong_codes = CASE WHEN wrong_codes_since > ?3 - ?4 THEN wrong_codes + 1 ELSE 1 END,
                 wrong_codes_since = CASE WHEN wrong_codes_since > ?3 - ?4 THEN wrong_codes_since ELSE ?3 END
             WHERE id = ?1 AND NOT (wrong_codes_since > ?3 - ?4 AND wrong_codes >= ?2)",
            params![user_id, max, now, window],
        )?;
        Ok(n == 1)
    }

    /// Gives back a check taken by `take_code_check` (the code was right, even if already used).
    pub fn refund_code_check(&self, user_id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET wrong_codes = max(wrong_codes - 1, 0) WHERE id = ?1",
            [user_id],
        )?;
        Ok(())
    }

    pub fn replace_recovery_codes(
        &self,
        user_id: i64,
        tags: &[Vec<u8>],
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
        for tag in tags {
            tx.execute(
                "INSERT INTO recovery_codes (user_id, tag, created_at) VALUES (?1, ?2, ?3)",
                params![user_id, tag, now],
            )?;
        }
        Ok(tx.commit()?)
    }

    /// Whether the user has (or had: a burnt one still answers) this recovery code.
    pub fn has_recovery_code(&self, user_id: i64, tag: &[u8]) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM recovery_codes WHERE user_id = ?1 AND tag = ?2)",
            params![user_id, tag],
            |r| r.get(0),
        )?)
    }

    /// Burns a recovery code: true only for the one caller that marks it used.
    pub fn burn_recovery_code(
        &self,
        user_id: i64,
        tag: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND tag = ?2 AND used_at IS NULL",
            params![user_id, tag, now],
        )?;
        Ok(n == 1)
    }

    pub fn recovery_codes_left(&self, user_id: i64) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
            [user_id],
            |r| r.get(0),
        )?)
    }

    // --- failures ---

    /// Runs `f` in a write transaction taken up front (`BEGIN IMMEDIATE`): a read-then-write in a deferred
    /// transaction fails at once under contention, whatever the busy timeout.
    pub fn immediate<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(value) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    pub fn record_failure(&self, f: &Failure) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO failures (time, ip, network, user, service, reason, fingerprint, counted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                f.time,
                f.ip,
                f.network,
                f.user,
                f.service,
                f.reason,
                f.fingerprint,
                f.counted
            ],
        )?;
        Ok(())
    }

    /// Whether the same attempt (same network, same user and secret fingerprint) was already counted since
    /// `since`: a client retrying a stale password counts once.
    pub fn counted_identical_failure(
        &self,
        network: &str,
        fingerprint: &[u8],
        since: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM failures
                            WHERE network = ?1 AND time > ?3 AND counted = 1 AND fingerprint = ?2)",
            params![network, fingerprint, since],
            |r| r.get(0),
        )?)
    }

    pub fn counted_failures(&self, network: &str, since: i64) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM failures WHERE network = ?1 AND time > ?2 AND counted = 1",
            params![network, since],
            |r| r.get(0),
        )?)
    }

    /// How many different secrets failed from `network` since `since`, counting up to `limit`: the measure of
    /// a guesser's pace that Dovecot's anvil penalty keeps (identical retries are one).
    pub fn distinct_failed_secrets(
        &self,
        network: &str,
        since: i64,
        limit: i64,
    ) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM (SELECT DISTINCT fingerprint FROM failures
                                   WHERE network = ?1 AND time > ?2 AND fingerprint IS NOT NULL LIMIT ?3)",
            params![network, since, limit],
            |r| r.get(0),
        )?)
    }

    /// The latest "second factor required" failures of one user, newest first: the clients that still send
    /// the main password. (The reason is spelled out so that SQLite uses the partial index.)
    pub fn second_factor_clients(
        &self,
        user: &str,
        limit: i64,
    ) -> Result<Vec<StaleClient>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT ip, service, min(time), max(time), count(*) FROM failures
             WHERE user = ?1 COLLATE NOCASE AND reason = 'second_factor_required'
             GROUP BY ip, service ORDER BY max(time) DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![user, limit], |r| {
            Ok(StaleClient {
                ip: r.get(0)?,
                service: r.get(1)?,
                first: r.get(2)?,
                last: r.get(3)?,
                count: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn failures(&self, filter: &FailureFilter) -> Result<Vec<FailureRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {FAILURE_COLUMNS} FROM failures
             WHERE (?1 IS NULL OR ip = ?1) AND (?2 IS NULL OR user = ?2 COLLATE NOCASE)
               AND (?3 IS NULL OR time >= ?3) AND (?4 IS NULL OR reason = ?4)
             ORDER BY time DESC, id DESC LIMIT ?5"
        ))?;
        let rows = stmt.query_map(
            params![
                filter.ip,
                filter.user,
                filter.since,
                filter.reason,
                filter.limit
            ],
            failure_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn prune_failures(&self, before: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM failures WHERE id < coalesce(
                 (SELECT id FROM failures WHERE time >= ?1 ORDER BY id LIMIT 1),
                 (SELECT max(id) + 1 FROM failures),
                 0)",
            [before],
        )?)
    }

    /// Where ingesting the refusal log beside the database goes on: the taken file's inode and the offset
    /// of its first line not yet in the failure log (see `banlist.rs`). Kept in `meta`, so that it moves in
    /// the same transaction as the rows it stands for.
    pub fn refusal_log_position(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'refusal_log_position'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.and_then(|t| {
            let (ino, offset) = t.split_once(' ')?;
            Some((ino.parse().ok()?, offset.parse().ok()?))
        }))
    }

    pub fn set_refusal_log_position(&self, position: Option<(u64, u64)>) -> Result<(), StoreError> {
        match position {
            Some((ino, offset)) => self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('refusal_log_position', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = ?1",
                [format!("{ino} {offset}")],
            )?,
            None => self
                .conn
                .execute("DELETE FROM meta WHERE key = 'refusal_log_position'", [])?,
        };
        Ok(())
    }

    /// Adds to the count of a banned network's refusals that the full refusal log could not hold line by line.
    pub fn add_unlogged_refusals(&self, network: &str, count: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('unlogged_refusals ' || ?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + ?2",
            params![network, count as i64],
        )?;
        Ok(())
    }

    /// How many refusals of `network` were counted but not logged line by line (see `add_unlogged_refusals`).
    pub fn unlogged_refusals(&self, network: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'unlogged_refusals ' || ?1",
                [network],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    // --- bans and the allowlist ---

    /// The active ban whose network contains the address (its key, see `net.rs`), if any.
    pub fn active_ban_containing(
        &self,
        ip: &[u8; 17],
        now: i64,
    ) -> Result<Option<BanRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {BAN_COLUMNS} FROM bans
                     WHERE start <= ?1 AND end >= ?1 AND lifted_at IS NULL AND (until IS NULL OR until > ?2)
                     ORDER BY until IS NULL DESC, until DESC LIMIT 1"
                ),
                params![&ip[..], now],
                ban_from_row,
            )
            .optional()?)
    }

    /// The ban row of exactly this network, active or not (it keeps the repeat count).
    pub fn ban(&self, network: &str) -> Result<Option<BanRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {BAN_COLUMNS} FROM bans WHERE network = ?1"),
                [network],
                ban_from_row,
            )
            .optional()?)
    }

    pub fn active_bans(&self, now: i64) -> Result<Vec<BanRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {BAN_COLUMNS} FROM bans
             WHERE lifted_at IS NULL AND (until IS NULL OR until > ?1) ORDER BY since, network"
        ))?;
        let rows = stmt.query_map([now], ban_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn put_ban(&self, range: &NetworkRange, ban: &BanRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO bans (network, start, end, since, until, reason, count, lifted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)
             ON CONFLICT (network) DO UPDATE SET since = ?4, until = ?5, reason = ?6, count = ?7, lifted_at = NULL",
            params![range.network, range.start, range.end, ban.since, ban.until, ban.reason, ban.count],
        )?;
        Ok(())
    }

    /// Lifts an active ban: the row stays (failures before the lift no longer count) with its repeat count
    /// reset, since an admin who lifts a ban judged it wrong. False if there was no active ban.
    pub fn lift_ban(&self, network: &str, now: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE bans SET lifted_at = ?2, count = 0
             WHERE network = ?1 AND lifted_at IS NULL AND (until IS NULL OR until > ?2)",
            params![network, now],
        )?;
        Ok(n == 1)
    }

    pub fn allow(&self, range: &NetworkRange, now: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO allowlist (network, start, end, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (network) DO NOTHING",
            params![range.network, range.start, range.end, now],
        )?;
        Ok(n == 1)
    }

    pub fn disallow(&self, network: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM allowlist WHERE network = ?1", [network])?
            == 1)
    }

    pub fn allowlist(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT network, added_at FROM allowlist ORDER BY network")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn is_allowlisted(&self, ip: &[u8; 17]) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM allowlist WHERE start <= ?1 AND end >= ?1)",
            [&ip[..]],
            |r| r.get(0),
        )?)
    }
}

const FAILURE_COLUMNS: &str = "time, ip, network, user, service, reason, counted";

/// The error of a database that cannot be opened or read, with the usual cause named when it is a matter of
/// permissions (a wrong owner is the classic "unable to open database file").
fn no_access(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, PermissionDenied, ReadOnly};
    match e.sqlite_error_code() {
        Some(CannotOpen | PermissionDenied | ReadOnly) => StoreError::NoAccess {
            path: path.to_path_buf(),
            source: e,
            uid: crate::sys::effective_uid(),
        },
        _ => StoreError::Sqlite(e),
    }
}

/// An in-memory database from the bytes of an SQLite file, if it is a mailpass database this version can take:
/// it passes `quick_check`, its schema is known, and it holds the key.
fn open_snapshot(snapshot: &[u8]) -> Result<Connection, StoreError> {
    let bad = |why: &str| StoreError::BadSnapshot(why.to_string());
    let mut copy = Connection::open_in_memory()?;
    copy.deserialize_read_exact(MAIN_DB, snapshot, snapshot.len(), true)
        .map_err(|_| bad("not an SQLite database"))?;
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|_| bad("not an SQLite database"))?;
    if check != "ok" {
        return Err(bad(&format!("quick_check says: {check}")));
    }
    let version: i64 = copy.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(bad(&format!(
            "schema version {version}, this mailpass knows 1 to {SCHEMA_VERSION}"
        )));
    }
    let has_key: bool = copy
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'tag_key')",
            [],
            |r| r.get(0),
        )
        .map_err(|_| bad("not a mailpass database"))?;
    if !has_key {
        return Err(bad("it holds no key: not a mailpass database"));
    }
    Ok(copy)
}

fn contents_of(conn: &Connection) -> Result<Contents, StoreError> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM users),
                    (SELECT count(*) FROM app_passwords WHERE revoked_at IS NULL),
                    (SELECT count(*) FROM failures),
                    (SELECT count(*) FROM bans WHERE lifted_at IS NULL
                        AND (until IS NULL OR until > strftime('%s', 'now')))",
        [],
        |r| {
            Ok(Contents {
                users: r.get(0)?,
                app_passwords: r.get(1)?,
                failures: r.get(2)?,
                bans: r.get(3)?,
            })
        },
    )?)
}

fn failure_from_row(r: &Row) -> rusqlite::Result<FailureRecord> {
    Ok(FailureRecord {
        time: r.get(0)?,
        ip: r.get(1)?,
        network: r.get(2)?,
        user: r.get(3)?,
        service: r.get(4)?,
        reason: r.get(5)?,
        counted: r.get(6)?,
    })
}

const BAN_COLUMNS: &str = "network, since, until, reason, count, lifted_at";

fn ban_from_row(r: &Row) -> rusqlite::Result<BanRecord> {
    Ok(BanRecord {
        network: r.get(0)?,
        since: r.get(1)?,
        until: r.get(2)?,
        reason: r.get(3)?,
        count: r.get(4)?,
        lifted_at: r.get(5)?,
    })
}

const APP_PASSWORD_COLUMNS: &str = "id, name, tag, services, created_at, expires_at, revoked_at, \
     last_used_at, last_ip, last_service";

fn app_password_from_row(r: &Row) -> rusqlite::Result<AppPasswordRecord> {
    Ok(AppPasswordRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        tag: r.get(2)?,
        services: Services::from_bits(r.get(3)?),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        last_used_at: r.get(7)?,
        last_ip: r.get(8)?,
        last_service: r.get(9)?,
    })
}

fn user_from_row(r: &Row) -> rusqlite::Result<UserRecord> {
    let state: String = r.get(5)?;
    let secret: Option<Vec<u8>> = r.get(6)?;
    Ok(UserRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        enabled: r.get(3)?,
        created_at: r.get(4)?,
        totp: TotpState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown totp_state {state:?}").into(),
            )
        })?,
        totp_secret: secret.map(Secret::new),
        totp_enrolled_at: r.get(7)?,
        external: r.get(8)?,
        self_service: r.get(9)?,
    })
}

fn web_session_from_row(r: &Row) -> rusqlite::Result<WebSessionRecord> {
    Ok(WebSessionRecord {
        id: r.get(0)?,
        user_id: r.get(1)?,
        signed_in: r.get(2)?,
        created_at: r.get(3)?,
        seen_at: r.get(4)?,
        fresh_at: r.get(5)?,
        ip: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_or_create(&dir.path().join("db")).expect("create");
        (dir, store)
    }

    #[test]
    fn a_web_session_starts_only_on_the_credential_that_was_verified() {
        let (_dir, store) = temp_store();
        assert!(store.add_user("alice", "$argon2id$old", 1).expect("add"));
        let id = store.user("alice").expect("user").expect("alice").id;
        let session = |tag: &'static [u8], hash: &'static str| NewWebSession {
            tag,
            user_id: id,
            signed_in: true,
            now: 2,
            ip: None,
            credential: Some((hash, TotpState::None)),
        };
        assert!(
            store
                .add_web_session(&session(b"one", "$argon2id$old"))
                .expect("add")
                .is_some()
        );
        // The password changes (which ends the session above) while a sign-in is still checking the old one.
        store
            .set_password_hash(id, "$argon2id$new")
            .expect("change");
        assert!(store.web_sessions(Some(id)).expect("list").is_empty());
        assert!(
            store
                .add_web_session(&session(b"two", "$argon2id$old"))
                .expect("add")
                .is_none()
        );
        assert!(
            store
                .add_web_session(&session(b"three", "$argon2id$new"))
                .expect("add")
                .is_some()
        );
        // Two-factor authentication turned on meanwhile: a password-only session does not start either.
        store
            .set_totp_pending(id, &Secret::from_slice(&[7; 20]), 3)
            .expect("pending");
        assert!(store.activate_totp(id, 1, 3).expect("activate"));
        assert!(
            store
                .add_web_session(&session(b"four", "$argon2id$new"))
                .expect("add")
                .is_none()
        );
    }

    #[test]
    fn schema_1_moves_to_2_keeping_app_passwords_and_erasing_fast_fingerprints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        {
            let old = Connection::open(&path).expect("open");
            old.execute_batch(MIGRATIONS[0]).expect("schema 1");
            old.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO meta VALUES ('tag_key', zeroblob(32));
                 INSERT INTO users (name, password_hash, created_at) VALUES ('a@b', '$argon2id$x', 1);
                 INSERT INTO app_passwords (user_id, name, tag, hash, services, created_at)
                     VALUES (1, 'Phone', x'00112233445566778899aabbccddeeff', '$argon2id$y', 15, 1);
                 INSERT INTO failures (time, user, reason, fingerprint, counted)
                     VALUES (1, 'a@b', 'second_factor_required', CAST('FAST-FINGERPRINT' AS BLOB), 0);",
            )
            .expect("schema 1 rows");
        }
        let store = Store::open_or_create(&path).expect("migrate");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        // The app password keeps its tag, which is all a login checks now; its argon2 hash is gone.
        let apps = store.app_passwords(1).expect("app passwords");
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].tag, hex("00112233445566778899aabbccddeeff"));
        let has_hash: bool = store
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info('app_passwords') WHERE name = 'hash')",
                [],
                |r| r.get(0),
            )
            .expect("table info");
        assert!(!has_hash);
        // The old fingerprints could be tested at HMAC speed with the key beside them: none is left.
        let fingerprints: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM failures WHERE fingerprint IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(fingerprints, 0);
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM failures", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 1, "the failure itself stays");
        // Nor does any copy stay behind in the files, in free pages or the WAL.
        drop(store);
        for suffix in ["", "-wal"] {
            let bytes = std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default();
            assert!(
                !bytes.windows(16).any(|w| w == b"FAST-FINGERPRINT"),
                "an old fingerprint is still in db{suffix}"
            );
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn a_new_database_is_owner_only_and_migrated() {
        let (dir, store) = temp_store();
        let mode = std::fs::metadata(dir.path().join("db"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        assert_eq!(store.tag_key().expect("key").expose().len(), 32);
        // Reopening keeps the key and migrates nothing twice.
        let key = store.tag_key().expect("key").expose().to_vec();
        let again = Store::open_or_create(&dir.path().join("db")).expect("reopen");
        assert_eq!(again.tag_key().expect("key").expose(), &key[..]);
    }

    #[test]
    fn the_auth_side_never_creates_a_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        assert!(matches!(
            Store::open_existing(&path, Duration::from_secs(1)),
            Err(StoreError::Missing(_))
        ));
        assert!(!path.exists());
        std::fs::write(&path, b"").expect("empty file");
        assert!(matches!(
            Store::open_existing(&path, Duration::from_secs(1)),
            Err(StoreError::NotInitialized(_))
        ));
    }

    #[test]
    fn a_totp_step_is_claimed_once() {
        let (_dir, store) = temp_store();
        assert!(store.add_user("a", "h", 0).expect("add"));
        let id = store.user("a").expect("q").expect("user").id;
        store
            .set_totp_pending(id, &Secret::from_slice(b"s"), 0)
            .expect("pending");
        assert!(
            !store.claim_totp_step(id, 10).expect("claim"),
            "pending enrollment cannot log in"
        );
        assert!(store.activate_totp(id, 10, 0).expect("activate"));
        assert!(
            !store.claim_totp_step(id, 10).expect("claim"),
            "confirming code is used up"
        );
        assert!(store.claim_totp_step(id, 11).expect("claim"));
        assert!(!store.claim_totp_step(id, 11).expect("claim"));
        assert!(
            !store.claim_totp_step(id, 9).expect("claim"),
            "older steps never come back"
        );
    }

    #[test]
    fn app_password_names_are_unique_among_active_ones() {
        let (_dir, store) = temp_store();
        store.add_user("a", "h", 0).expect("add");
        let id = store.user("a").expect("q").expect("user").id;
        let new = |tag: &'static [u8]| NewAppPassword {
            name: "phone",
            tag,
            services: Services::all(),
            created_at: 0,
            expires_at: None,
        };
        assert!(
            store
                .add_app_password(id, &new(b"t1"))
                .expect("add")
                .is_some()
        );
        assert!(
            store
                .add_app_password(id, &new(b"t2"))
                .expect("add")
                .is_none()
        );
        assert_eq!(
            store
                .revoke_app_passwords(id, &Selector::Name("phone"), 5)
                .expect("revoke"),
            1
        );
        assert!(
            store
                .add_app_password(id, &new(b"t3"))
                .expect("add")
                .is_some()
        );
        assert_eq!(store.app_passwords(id).expect("list").len(), 2);
    }

    #[test]
    fn pruning_deletes_exactly_the_old_failures() {
        let (_dir, store) = temp_store();
        let fail = |time| Failure {
            time,
            ip: None,
            network: None,
            user: "u",
            service: None,
            reason: "wrong_password",
            fingerprint: None,
            counted: false,
        };
        for t in [10, 20, 30] {
            store.record_failure(&fail(t)).expect("insert");
        }
        assert_eq!(store.prune_failures(5).expect("prune"), 0);
        assert_eq!(store.prune_failures(25).expect("prune"), 2);
        assert_eq!(store.prune_failures(100).expect("prune"), 1);
        assert_eq!(
            store.prune_failures(100).expect("prune"),
            0,
            "an empty table prunes nothing"
        );
    }

    #[test]
    fn deleting_a_user_deletes_their_credentials() {
        let (_dir, store) = temp_store();
        store.add_user("a", "h", 0).expect("add");
        let id = store.user("a").expect("q").expect("user").id;
        store
            .replace_recovery_codes(id, &[b"x".to_vec()], 0)
            .expect("codes");
        store.delete_user(id).expect("delete");
        assert!(store.user("a").expect("q").is_none());
        assert_eq!(store.recovery_codes_left(id).expect("count"), 0);
    }
}
