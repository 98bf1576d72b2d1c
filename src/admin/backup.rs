//! `mailpass backup` and `mailpass restore`: a consistent copy of the database while logins go on, and putting
//! one back.
//!
//! Root chooses where a copy goes and where one comes from (often a directory only root may use), while admin
//! commands act as the owner of the database's directory before they touch it (see `act_as_directory_owner`).
//! So a restore reads its copy first, as root, and a backup writes its copy last, as root again; the database
//! itself is read and written as its owner, and the bytes pass through memory. The database key lives in the
//! database, so the copy is all a restore needs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Admin, print_json};
use crate::bans::Policy;
use crate::error::Error;
use crate::store::{Contents, Store};

/// A copy to restore, read before the switch to the database owner.
pub struct Prepared {
    bytes: Vec<u8>,
    path: PathBuf,
}

/// Reads the copy a restore puts back, once the admin has said `--yes`.
pub fn read(path: &Path, yes: bool) -> Result<Prepared, Error> {
    if !yes {
        return Err(Error::Usage(format!(
            "restoring {} replaces everything in the database (users, app passwords, bans and failures made \
             since the copy are lost): add --yes",
            path.display()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    Ok(Prepared {
        bytes,
        path: path.to_path_buf(),
    })
}

/// Creates the file a backup goes to: a new one, owner-only, never one that exists.
fn create(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Refused(format!(
                    "{} exists: a backup never overwrites a file, choose a new name",
                    path.display()
                ))
            } else {
                Error::Io(format!("cannot create {}: {e}", path.display()))
            }
        })
}

/// Takes the copy, checks it as a restore would, and writes it to `path` as root again (when run by root).
pub fn backup(admin: &Admin, path: &Path, json: bool) -> Result<(), Error> {
    let bytes = admin.store.snapshot()?;
    let contents = Store::check_snapshot(&bytes)?;
    crate::sys::act_as_root_again()
        .map_err(|e| Error::Io(format!("cannot act as root again to write the copy: {e}")))?;
    let mut file = create(path)?;
    if let Err(e) = file.write_all(&bytes).and_then(|()| file.sync_all()) {
        // Never leave a partial copy that looks like a backup.
        let _ = std::fs::remove_file(path);
        return Err(Error::Io(format!("cannot write {}: {e}", path.display())));
    }
    report("backup", admin.store.path(), path, contents, json);
    Ok(())
}

/// Replaces the database with the copy, then rewrites the ban list beside it from the restored bans.
pub fn restore(admin: &mut Admin, copy: Prepared, json: bool) -> Result<(), Error> {
    let Prepared { bytes, path } = copy;
    let path = path.as_path();
    let contents = admin.store.restore(&bytes)?;
    Policy::new(&admin.config.bans).write_banlist(&admin.store, admin.now)?;
    report("restore", admin.store.path(), path, contents, json);
    Ok(())
}

fn report(what: &str, db: &Path, file: &Path, c: Contents, json: bool) {
    if json {
        print_json(&json!({
            "database": db.display().to_string(),
            "file": file.display().to_string(),
            "users": c.users,
            "app_passwords": c.app_passwords,
            "failures": c.failures,
            "bans": c.bans,
            "quick_check": "ok",
        }));
        return;
    }
    let (verb, from, to) = match what {
        "backup" => ("copied", db, file),
        _ => ("restored", file, db),
    };
    println!(
        "{verb} {} to {}: {} users, {} active app passwords, {} failures, {} active bans; quick_check ok",
        from.display(),
        to.display(),
        c.users,
        c.app_passwords,
        c.failures,
        c.bans
    );
}
