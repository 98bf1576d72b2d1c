//! `mailpass user ...`: accounts and their main passwords.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Admin, app_password::record_json, print_json, read_new_password, time_json};
use crate::cli::UserCommand;
use crate::clock;
use crate::error::Error;
use crate::password::legacy;
use crate::store::UserRecord;

/// How many "second factor required" clients `user show` lists.
const RECENT_CLIENTS: i64 = 20;

pub(super) fn run(admin: &Admin, command: UserCommand) -> Result<(), Error> {
    match command {
        UserCommand::Add {
            user,
            external: true,
            ..
        } => {
            let name = valid_name(&user.user)?;
            if !admin.store.add_external_user(&name, admin.now)? {
                return Err(Error::Refused(format!("user {name:?} exists")));
            }
            eprintln!(
                "created external user {name}: the main password stays in the next passdb; \
                 mailpass adds app passwords and TOTP"
            );
        }
        UserCommand::Add { user, input, .. } => {
            let name = valid_name(&user.user)?;
            let password = read_new_password(&input, &admin.config.passwords)?;
            let hash = admin.hasher()?.hash(&password)?;
            if !admin.store.add_user(&name, &hash, admin.now)? {
                return Err(Error::Refused(format!(
                    "user {name:?} exists: `mailpass user passwd {name}` changes the password"
                )));
            }
            eprintln!("created user {name}");
        }
        UserCommand::Passwd { user, input } => {
            let record = admin.user(&user.user)?;
            if record.external {
                return Err(Error::Refused(format!(
                    "{} is external: the main password is in the next passdb (LDAP, SQL), change it there",
                    record.name
                )));
            }
            let password = read_new_password(&input, &admin.config.passwords)?;
            let hash = admin.hasher()?.hash(&password)?;
            admin.store.set_password_hash(record.id, &hash)?;
            eprintln!("changed the password of {}", record.name);
        }
        UserCommand::Del(user) => {
            let record = admin.user(&user.user)?;
            admin.store.delete_user(record.id)?;
            eprintln!(
                "deleted user {} with their app passwords and codes",
                record.name
            );
        }
        UserCommand::Disable(user) => set_enabled(admin, &user.user, false)?,
        UserCommand::Enable(user) => set_enabled(admin, &user.user, true)?,
        UserCommand::List(json) => {
            let users = admin.store.users()?;
            if json.json {
                let list: Vec<Value> = users
                    .iter()
                    .map(|(u, active)| {
                        json!({
                            "name": u.name,
                            "enabled": u.enabled,
                            "totp": u.totp.name(),
                            "app_passwords": active,
                            "created_at": clock::rfc3339(u.created_at),
                            "password_scheme": scheme_of(u),
                            "external": u.external,
                        })
                    })
                    .collect();
                print_json(&Value::Array(list));
            } else {
                for (u, active) in &users {
                    let state = if u.enabled { "enabled" } else { "disabled" };
                    println!(
                        "{}\t{state}\ttotp={}\tapp_passwords={active}\tscheme={}",
                        u.name,
                        u.totp.name(),
                        scheme_of(u)
                    );
                }
                if let Some(progress) = migration_progress(users.iter().map(|(u, _)| u)) {
                    // On stderr, so that stdout stays one line per user for scripts.
                    eprintln!("{progress}");
                }
            }
        }
        UserCommand::Show { user, json } => show(admin, &user.user, json.json)?,
    }
    Ok(())
}

fn set_enabled(admin: &Admin, name: &str, enabled: bool) -> Result<(), Error> {
    let record = admin.user(name)?;
    admin.store.set_enabled(record.id, enabled)?;
    eprintln!(
        "{} {}",
        if enabled { "enabled" } else { "disabled" },
        record.name
    );
    Ok(())
}

fn show(admin: &Admin, name: &str, as_json: bool) -> Result<(), Error> {
    let user = admin.user(name)?;
    let app_passwords = admin.store.app_passwords(user.id)?;
    let codes_left = admin.store.recovery_codes_left(user.id)?;
    let clients = admin
        .store
        .second_factor_clients(&user.name, RECENT_CLIENTS)?;
    if as_json {
        print_json(&json!({
            "name": user.name,
            "enabled": user.enabled,
            "created_at": clock::rfc3339(user.created_at),
            "password_scheme": scheme_of(&user),
            "external": user.external,
            "totp": totp_json(&user, codes_left),
            "app_passwords": app_passwords.iter().map(|r| record_json(r, admin.now)).collect::<Vec<_>>(),
            "second_factor_required": clients.iter().map(|c| json!({
                "ip": c.ip,
                "service": c.service,
                "first": clock::rfc3339(c.first),
                "last": clock::rfc3339(c.last),
                "time": clock::rfc3339(c.last),
                "count": c.count,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("user:        {}", user.name);
    println!("enabled:     {}", if user.enabled { "yes" } else { "no" });
    println!("created:     {}", clock::rfc3339(user.created_at));
    let scheme = scheme_of(&user);
    if user.external {
        println!(
            "password:    external (in the next passdb; mailpass holds app passwords and TOTP)"
        );
    } else if is_imported(scheme) {
        println!("password:    {scheme} (imported; the next login replaces it with ARGON2ID)");
    } else {
        println!("password:    {scheme}");
    }
    println!("2FA (TOTP):  {}", user.totp.name());
    if codes_left > 0 {
        println!("recovery codes left: {codes_left}");
    }
    println!("app passwords:");
    if app_passwords.is_empty() {
        println!("  (none)");
    }
    for r in &app_passwords {
        super::app_password::print_line(r, admin.now);
    }
    if !clients.is_empty() {
        println!("clients that sent the main password without a code (they need an app password):");
        for c in &clients {
            println!(
                "  ip={}  service={}  {} times, first {}, last {}",
                c.ip.as_deref().unwrap_or("-"),
                c.service.as_deref().unwrap_or("-"),
                c.count,
                clock::rfc3339(c.first),
                clock::rfc3339(c.last)
            );
        }
        println!(
            "fix: mailpass app-password add {} --name \"<device>\"",
            user.name
        );
    }
    Ok(())
}

/// The scheme of the user's main password as the lists show it: "external" when it is another passdb's.
fn scheme_of(user: &UserRecord) -> &str {
    if user.external {
        "external"
    } else {
        legacy::scheme_of(&user.password_hash)
    }
}

/// Whether a stored hash still has an imported (non-argon2id) scheme: a login has not replaced it yet.
fn is_imported(scheme: &str) -> bool {
    scheme != "ARGON2ID"
}

/// "N users still have imported hashes (SHA512-CRYPT: 3, ...)", or `None` when every hash is argon2id.
fn migration_progress<'a>(users: impl Iterator<Item = &'a UserRecord>) -> Option<String> {
    let mut by_scheme: BTreeMap<&str, usize> = BTreeMap::new();
    for u in users.filter(|u| !u.external) {
        let scheme = legacy::scheme_of(&u.password_hash);
        if is_imported(scheme) {
            *by_scheme.entry(scheme).or_default() += 1;
        }
    }
    let total: usize = by_scheme.values().sum();
    if total == 0 {
        return None;
    }
    let mut counts: Vec<(&str, usize)> = by_scheme.into_iter().collect();
    // The biggest groups first; the name breaks ties, so the line is stable.
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let detail: Vec<String> = counts.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    Some(format!(
        "{total} {} still {} imported hashes ({}); each is replaced by ARGON2ID at that user's next login",
        if total == 1 { "user" } else { "users" },
        if total == 1 { "has" } else { "have" },
        detail.join(", ")
    ))
}

pub(super) fn totp_json(user: &UserRecord, codes_left: i64) -> Value {
    json!({
        "state": user.totp.name(),
        "enrolled_at": time_json(user.totp_enrolled_at),
        "recovery_codes_left": codes_left,
    })
}

/// A user name Dovecot can send, in its stored form (see `username.rs`).
fn valid_name(name: &str) -> Result<String, Error> {
    crate::username::normalize(name).ok_or_else(|| {
        Error::Usage(format!(
            "invalid user name {:?}: use 1 to 255 characters without spaces, e.g. alice@example.org",
            name.trim().to_lowercase()
        ))
    })
}
