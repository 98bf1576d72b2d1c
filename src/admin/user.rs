//! `mailpass user ...`: accounts and their main passwords.

use serde_json::{Value, json};

use super::{Admin, app_password::record_json, print_json, read_new_password, time_json};
use crate::cli::UserCommand;
use crate::clock;
use crate::error::Error;
use crate::store::UserRecord;

/// How many "second factor required" clients `user show` lists.
const RECENT_CLIENTS: i64 = 20;

pub(super) fn run(admin: &Admin, command: UserCommand) -> Result<(), Error> {
    match command {
        UserCommand::Add { user, input } => {
            let name = valid_name(&user.user)?;
            let password = read_new_password(&input)?;
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
            let password = read_new_password(&input)?;
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
                        })
                    })
                    .collect();
                print_json(&Value::Array(list));
            } else {
                for (u, active) in &users {
                    let state = if u.enabled { "enabled" } else { "disabled" };
                    println!(
                        "{}\t{state}\ttotp={}\tapp_passwords={active}",
                        u.name,
                        u.totp.name()
                    );
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
            "totp": totp_json(&user, codes_left),
            "app_passwords": app_passwords.iter().map(|r| record_json(r, admin.now)).collect::<Vec<_>>(),
            "second_factor_required": clients.iter().map(|c| json!({
                "time": clock::rfc3339(c.time),
                "ip": c.ip,
                "service": c.service,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("user:        {}", user.name);
    println!("enabled:     {}", if user.enabled { "yes" } else { "no" });
    println!("created:     {}", clock::rfc3339(user.created_at));
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
                "  {}  ip={}  service={}",
                clock::rfc3339(c.time),
                c.ip.as_deref().unwrap_or("-"),
                c.service.as_deref().unwrap_or("-")
            );
        }
        println!(
            "fix: mailpass app-password add {} --name \"<device>\"",
            user.name
        );
    }
    Ok(())
}

pub(super) fn totp_json(user: &UserRecord, codes_left: i64) -> Value {
    json!({
        "state": user.totp.name(),
        "enrolled_at": time_json(user.totp_enrolled_at),
        "recovery_codes_left": codes_left,
    })
}

/// A user name Dovecot can send: lowercased, no spaces or control characters.
fn valid_name(name: &str) -> Result<String, Error> {
    let name = name.trim().to_lowercase();
    if name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::Usage(format!(
            "invalid user name {name:?}: use 1 to 255 characters without spaces, e.g. alice@example.org"
        )));
    }
    Ok(name)
}
