//! The database and everything beside it, against the user Dovecot runs mailpass as: the directory (0700,
//! that user's), the file (0600, that user's), the files SQLite and mailpass keep beside it (`-wal`, `-shm`,
//! `.bans`, `.refused`, `.argon2.*`), then, opened read-only, SQLite's `quick_check` and the schema version.
//!
//! A file beside the database that belongs to root is the classic "unable to open database file": an admin
//! command run as root before mailpass acted as the directory's owner, or a `sqlite3` session as root, left
//! it, and every login of the auth user fails on it.
//!
//! A directory shared with a group (setgid with group access: the Debian package's 2770, group `mailpass`)
//! is how the web page's user uses the database too: there the database and the files beside it are 0660 and
//! the directory's group's, and Dovecot must run mailpass with that group to open the files the web page
//! creates (`database.group`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Check, Runner};
use crate::store::{Inspection, SCHEMA_VERSION, Store, StoreError};

pub(super) fn checks(db: &Path, runner: Option<&Runner>) -> Vec<Check> {
    let mut checks = Vec::new();
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Whom the files must belong to. Root reads anything, so then only the directory's owner is expected.
    let owner = runner.filter(|r| r.uid != 0);
    let chown = |target: String| {
        owner.map_or_else(
            || format!("give {target} to the Dovecot auth user (chown)"),
            |o| format!("chown {}: {target}", o.name),
        )
    };

    // The directory.
    let Ok(dir_meta) = fs::metadata(dir) else {
        checks.push(Check::fail(
            "database.directory",
            format!("{} does not exist", dir.display()),
            format!(
                "install -d -o {user} -g {user} -m 0700 {dir} && mailpass --db {db} user list",
                user = owner.map_or("dovecot", |o| o.name.as_str()),
                dir = dir.display(),
                db = db.display()
            ),
        ));
        checks.extend(skipped(
            &[
                "database.file",
                "database.neighbours",
                "database.integrity",
                "database.schema",
            ],
            "the directory does not exist",
        ));
        return checks;
    };
    let mode = dir_meta.mode() & 0o7777;
    let dir_gid = dir_meta.gid();
    // Shared with a group: setgid, so that what is created inside joins the directory's group, and the group
    // may come in. mailpass makes the database 0660 there (see `Store::open_or_create`).
    let setgid = mode & 0o2000 != 0;
    let shared = setgid && mode & 0o070 != 0;
    let group = super::group_name(dir_gid);
    let group_fix = format!("chgrp {group} {db}* && chmod 0660 {db}*", db = db.display());
    checks.push(match owner {
        Some(o) if dir_meta.uid() != o.uid => Check::fail(
            "database.directory",
            format!(
                "{} belongs to {}, not to {} whom Dovecot runs mailpass as (service {}): SQLite cannot \
                 create the database's -wal and -shm there, and logins fail with \"unable to open database \
                 file\"",
                dir.display(),
                user_name(dir_meta.uid()),
                o.name,
                o.service
            ),
            chown(dir.display().to_string()),
        ),
        _ if mode & 0o700 != 0o700 => Check::fail(
            "database.directory",
            format!("{} has mode {mode:04o}: its owner cannot use it", dir.display()),
            format!("chmod 0700 {}", dir.display()),
        ),
        _ if mode & 0o007 != 0 || (mode & 0o070 != 0 && !shared_group(dir_gid)) => Check::warn(
            "database.directory",
            format!(
                "{} has mode {mode:04o}{}: {} can see into it (the database's neighbours hold the ban list \
                 and the refusal log){}",
                dir.display(),
                if mode & 0o070 != 0 {
                    format!(" and the group {group}")
                } else {
                    String::new()
                },
                if mode & 0o007 != 0 {
                    "other users".to_string()
                } else {
                    format!("the members of {group}")
                },
                if shared {
                    format!(
                        "; setgid, so mailpass makes the database 0660 there, for the group {group} to use"
                    )
                } else {
                    String::new()
                }
            ),
            if shared {
                format!(
                    "chgrp {SHARED_GROUP} {dir} (the group the web page shares the database through), \
                     or chmod 00700 {dir}",
                    dir = dir.display()
                )
            } else {
                format!("chmod 0700 {}", dir.display())
            },
        ),
        _ if mode & 0o070 != 0 && mode & 0o2070 != 0o2070 => Check::warn(
            "database.directory",
            format!(
                "{} is the group {group}'s with mode {mode:04o}: the web page's user (`mailpass web`, in the \
                 group) {}",
                dir.display(),
                if setgid {
                    "cannot create the files SQLite and mailpass keep beside the database"
                } else {
                    "cannot use what is created there (not setgid: new files do not join the group)"
                }
            ),
            format!("chmod 2770 {}", dir.display()),
        ),
        _ => Check::ok(
            "database.directory",
            format!(
                "{} is {}'s, mode {mode:04o}",
                dir.display(),
                user_name(dir_meta.uid())
            ),
        ),
    });

    // The file.
    let meta =
        match fs::symlink_metadata(db) {
            Ok(meta) => meta,
            Err(_) => {
                checks.push(Check::fail(
                "database.file",
                format!("{} does not exist: every login is a temporary failure", db.display()),
                format!(
                    "create it with any admin command as root, e.g. `mailpass --db {} user list` \
                     (then add the users)",
                    db.display()
                ),
            ));
                checks.extend(skipped(
                    &[
                        "database.neighbours",
                        "database.integrity",
                        "database.schema",
                    ],
                    "the database does not exist",
                ));
                return checks;
            }
        };
    let mode = meta.mode() & 0o7777;
    checks.push(if !meta.is_file() {
        Check::fail(
            "database.file",
            format!(
                "{} is not a regular file (a symlink or a directory)",
                db.display()
            ),
            "put the database itself there",
        )
    } else if owner.is_some_and(|o| meta.uid() != o.uid) {
        Check::fail(
            "database.file",
            format!(
                "{} belongs to {}, not to {}: logins fail with \"unable to open database file\" \
                 (a temporary failure)",
                db.display(),
                user_name(meta.uid()),
                owner.map_or("", |o| o.name.as_str())
            ),
            chown(format!("{}*", db.display())),
        )
    } else if mode & 0o007 != 0 || (mode & 0o070 != 0 && !(shared && meta.gid() == dir_gid)) {
        Check::fail(
            "database.file",
            format!(
                "{} has mode {mode:04o}{}: other users can read password hashes and TOTP secrets",
                db.display(),
                if mode & 0o070 != 0 {
                    format!(" and the group {}", super::group_name(meta.gid()))
                } else {
                    String::new()
                }
            ),
            if shared {
                group_fix.clone()
            } else {
                format!("chmod 0600 {}*", db.display())
            },
        )
    } else if shared && (mode & 0o060 != 0o060 || meta.gid() != dir_gid) {
        Check::warn(
            "database.file",
            format!(
                "{} (the group {}'s, mode {mode:04o}) is not writable by the group {group} of its setgid \
                 directory: the web page (`mailpass web`, run by a user of that group) cannot use it",
                db.display(),
                super::group_name(meta.gid())
            ),
            group_fix.clone(),
        )
    } else {
        Check::ok(
            "database.file",
            format!(
                "{} is {}'s, mode {mode:04o}{}",
                db.display(),
                user_name(meta.uid()),
                if shared {
                    format!(", shared with the group {group} through its setgid directory")
                } else {
                    String::new()
                }
            ),
        )
    });

    // The neighbours: SQLite's -wal and -shm, the ban list, the refusal log, the argon2 slots.
    let sharing = shared.then_some(Sharing {
        gid: dir_gid,
        group: &group,
        fix: &group_fix,
    });
    checks.push(neighbours_check(db, dir, owner, sharing.as_ref(), &chown));
    checks.push(group_check(dir, owner, sharing.as_ref()));

    // Opened read-only, as the user the logins run as (the -wal and -shm it may create get that owner).
    if let Err(e) = act_as_runner(dir, owner) {
        checks.push(Check::warn(
            "database.identity",
            format!("cannot act as the database's user before opening it: {e}"),
            "run doctor as root or as the Dovecot auth user",
        ));
    }
    match Store::inspect(db) {
        Ok(inspection) => checks.extend(contents_checks(db, &inspection)),
        Err(e @ StoreError::Sqlite(_)) => {
            let text = e.to_string();
            let hint = if text.contains("unable to open") {
                " (the owner of the database or of a file beside it is wrong: see above)"
            } else {
                ""
            };
            checks.push(Check::fail(
                "database.integrity",
                format!("{} cannot be read: {text}{hint}", db.display()),
                "restore the last backup (`mailpass restore FILE --yes`), or move the file away and \
                 create a new database",
            ));
            checks.push(Check::skip(
                "database.schema",
                "the database cannot be read",
            ));
        }
        Err(e) => {
            checks.push(Check::fail(
                "database.integrity",
                format!("{}: {e}", db.display()),
                "see the message",
            ));
            checks.push(Check::skip(
                "database.schema",
                "the database cannot be read",
            ));
        }
    }
    checks
}

/// The checks that cannot run once an earlier one found nothing to look at.
fn skipped(names: &[&'static str], why: &str) -> Vec<Check> {
    names.iter().map(|name| Check::skip(name, why)).collect()
}

/// A directory shared with a group (see the module's comment): the group, and the command that shares a file
/// with it.
struct Sharing<'a> {
    gid: u32,
    group: &'a str,
    fix: &'a str,
}

fn neighbours_check(
    db: &Path,
    dir: &Path,
    owner: Option<&Runner>,
    sharing: Option<&Sharing>,
    chown: &dyn Fn(String) -> String,
) -> Check {
    let Some(owner) = owner else {
        return Check::skip(
            "database.neighbours",
            "cannot tell whom they must belong to (see the dovecot checks)",
        );
    };
    let Some(base) = db.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Check::skip("database.neighbours", "the database path has no file name");
    };
    let mut wrong = Vec::new();
    let mut closed = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let beside = name
                .strip_prefix(&base)
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'));
            if !beside {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            // What the group may use: the file is the shared group's and open to it.
            let group_may =
                sharing.is_some_and(|s| meta.gid() == s.gid && meta.mode() & 0o060 == 0o060);
            let runner_may = meta.uid() == owner.uid
                || (group_may && sharing.is_some_and(|s| owner.groups.contains(&s.gid)));
            if !runner_may {
                wrong.push(format!("{name} ({})", user_name(meta.uid())));
            } else if sharing.is_some() && !group_may {
                closed.push(format!(
                    "{name} (mode {:04o}, group {})",
                    meta.mode() & 0o7777,
                    super::group_name(meta.gid())
                ));
            }
        }
    }
    if let Some(sharing) = sharing.filter(|_| wrong.is_empty() && !closed.is_empty()) {
        closed.sort();
        return Check::warn(
            "database.neighbours",
            format!(
                "not open to the group {}: {}; the web page (`mailpass web`, run by a user of that group) \
                 fails on them",
                sharing.group,
                closed.join(", ")
            ),
            sharing.fix,
        );
    }
    if wrong.is_empty() {
        Check::ok(
            "database.neighbours",
            match sharing {
                Some(s) => format!(
                    "the files beside the database are {}'s or the group {}'s, open to both",
                    owner.name, s.group
                ),
                None => format!("the files beside the database are {}'s", owner.name),
            },
        )
    } else {
        wrong.sort();
        Check::fail(
            "database.neighbours",
            format!(
                "not {}'s: {}; a login that needs one fails with \"unable to open database file\" or \
                 cannot record failures and bans",
                owner.name,
                wrong.join(", ")
            ),
            chown(format!("{}*", db.display())),
        )
    }
}

/// In a directory shared with a group, whether Dovecot runs mailpass with that group: the web page's user
/// creates files beside the database (an argon2 slot, the ban list, the refusal log), which the group may use
/// but logins only with the group.
fn group_check(dir: &Path, owner: Option<&Runner>, sharing: Option<&Sharing>) -> Check {
    let Some(sharing) = sharing else {
        return Check::skip(
            "database.group",
            format!(
                "{} is not shared with a group (setgid with group access, as the web page needs)",
                dir.display()
            ),
        );
    };
    let Some(owner) = owner else {
        return Check::skip(
            "database.group",
            "cannot tell which groups Dovecot runs mailpass with (see the dovecot checks)",
        );
    };
    if owner.groups.contains(&sharing.gid) {
        Check::ok(
            "database.group",
            format!(
                "Dovecot runs mailpass with the group {} (service {}), which shares the database with the \
                 web page",
                sharing.group, owner.service
            ),
        )
    } else {
        Check::warn(
            "database.group",
            format!(
                "{} is shared with the group {group}, but Dovecot runs mailpass as {} without it (service {}): \
                 Dovecot gives a service its user's primary group and its extra_groups, not the groups \
                 /etc/group lists the user in; a file the web page creates beside the database (an argon2 \
                 slot, the ban list, the refusal log) is then closed to logins",
                dir.display(),
                owner.name,
                owner.service,
                group = sharing.group
            ),
            format!(
                "add `extra_groups = {}` to `service {} {{ }}` in Dovecot's config, then restart Dovecot",
                sharing.group, owner.service
            ),
        )
    }
}

fn contents_checks(db: &Path, inspection: &Inspection) -> Vec<Check> {
    let integrity = if inspection.quick_check == "ok" {
        Check::ok("database.integrity", "SQLite's quick_check: ok")
    } else {
        Check::fail(
            "database.integrity",
            format!(
                "SQLite's quick_check says the database is damaged: {}",
                inspection.quick_check
            ),
            "restore the last backup (`mailpass restore FILE --yes`)",
        )
    };
    let migrate = format!(
        "run any admin command once as root, e.g. `mailpass --db {} user list`",
        db.display()
    );
    let schema = match inspection.schema_version {
        0 => Check::fail(
            "database.schema",
            "the file has no mailpass schema: every login is a temporary failure",
            format!("{migrate} (it creates the schema)"),
        ),
        v if v < SCHEMA_VERSION => Check::fail(
            "database.schema",
            format!(
                "schema version {v}, older than this mailpass's {SCHEMA_VERSION}: logins answer a \
                 temporary failure until it is migrated"
            ),
            format!("{migrate}: it migrates the database"),
        ),
        v if v > SCHEMA_VERSION => Check::fail(
            "database.schema",
            format!(
                "schema version {v}, newer than this mailpass's {SCHEMA_VERSION}: a newer mailpass wrote it"
            ),
            "upgrade mailpass (install the version that wrote the database)",
        ),
        v if !inspection.has_key => Check::fail(
            "database.schema",
            format!("schema version {v}, but the key is missing: not a mailpass database"),
            "restore the last backup (`mailpass restore FILE --yes`)",
        ),
        v => Check::ok("database.schema", format!("schema version {v}, current")),
    };
    vec![integrity, schema]
}

/// As root, takes on the identity of the user the logins run as, else (root runs them, or it is not known) the
/// directory's owner, as the admin commands do: whatever SQLite creates beside the database gets that owner.
fn act_as_runner(dir: &Path, owner: Option<&Runner>) -> std::io::Result<()> {
    if crate::sys::effective_uid() != 0 {
        return Ok(());
    }
    let ids = owner.map(|o| (o.uid, o.gid)).or_else(|| {
        fs::metadata(dir)
            .ok()
            .filter(|m| m.uid() != 0)
            .map(|m| (m.uid(), m.gid()))
    });
    match ids {
        Some((uid, gid)) => crate::sys::act_as(uid, gid),
        None => Ok(()),
    }
}

fn user_name(uid: u32) -> String {
    crate::sys::user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// Whether `gid` is the `mailpass` group that the Debian package makes for the database's directory (mode 2770),
/// so that the Dovecot auth user and other mailpass programs share it without being root: its access is meant.
fn shared_group(gid: u32) -> bool {
    super::group_id(SHARED_GROUP) == Some(gid)
}

/// The group the Debian package creates (see scripts/debian/postinst).
const SHARED_GROUP: &str = "mailpass";
