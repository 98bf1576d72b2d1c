//! `mailpass user ...`: accounts and their main passwords. What each command means is `account::user`'s;
//! this reads the arguments and prints.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Admin, app_password::record_json, print_json, read_new_password, time_json};
use crate::account::{self, TotpStatus, UserDetails, is_imported, password_scheme};
use crate::cli::{OnOff, UserCommand};
use crate::clock;
use crate::error::Error;
use crate::store::UserRecord;

pub(super) fn run(admin: &Admin, command: UserCommand) -> Result<(), Error> {
    let account = admin.account();
    match command {
        UserCommand::Add {
            user,
            external: true,
            ..
        } => {
            let name = account.add_external_user(&user.user)?;
            eprintln!(
                "created external user {name}: the main password stays in the next passdb; \
                 mailpass adds app passwords and TOTP"
            );
        }
        UserCommand::Add { user, input, .. } => {
            // The name is checked before the password is asked for, so that a typo does not cost typing it twice.
            account::valid_name(&user.user)?;
            let password = read_new_password(&input)?;
            let name = account.add_user(&user.user, &password)?;
            eprintln!("created user {name}");
        }
        UserCommand::Passwd { user, input } => {
            // Likewise, an external user is refused before the password is asked for.
            account.user_with_own_password(&user.user)?;
            let password = read_new_password(&input)?;
            let name = account.change_password(&user.user, &password)?;
            eprintln!("changed the password of {name}");
        }
        UserCommand::Del(user) => {
            let name = account.delete_user(&user.user)?;
            eprintln!("deleted user {name} with their app passwords and codes");
        }
        UserCommand::Disable(user) => set_enabled(admin, &user.user, false)?,
        UserCommand::Enable(user) => set_enabled(admin, &user.user, true)?,
        UserCommand::List(json) => {
            let users = account.users()?;
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
                            "password_scheme": password_scheme(u),
                            "external": u.external,
                            "self_service": u.self_service,
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
                        password_scheme(u)
                    );
                }
                if let Some(progress) = migration_progress(users.iter().map(|(u, _)| u)) {
                    // On stderr, so that stdout stays one line per user for scripts.
                    eprintln!("{progress}");
                }
            }
        }
        UserCommand::Show { user, json } => show(admin, &user.user, json.json)?,
        UserCommand::SelfService { user, state } => {
            let allowed = state == OnOff::On;
            let name = account.set_self_service(&user.user, allowed)?;
            if allowed {
                eprintln!("{name} may use the self-service page");
            } else {
                eprintln!(
                    "{name} may no longer use the self-service page; their sessions there ended"
                );
            }
        }
        UserCommand::Sessions { user, json } => sessions(admin, user.as_deref(), json.json)?,
        UserCommand::SignOut(user) => {
            let (name, count) = account.end_web_sessions(&user.user)?;
            eprintln!("ended {count} session(s) of {name} on the self-service page");
        }
    }
    Ok(())
}

fn sessions(admin: &Admin, user: Option<&str>, as_json: bool) -> Result<(), Error> {
    let sessions = admin.account().web_sessions(user)?;
    if as_json {
        let list: Vec<Value> = sessions
            .iter()
            .map(|(name, s)| {
                json!({
                    "id": s.id,
                    "user": name,
                    "signed_in": s.signed_in,
                    "created_at": clock::rfc3339(s.created_at),
                    "seen_at": clock::rfc3339(s.seen_at),
                    "ip": s.ip,
                })
            })
            .collect();
        print_json(&Value::Array(list));
        return Ok(());
    }
    for (name, s) in &sessions {
        let state = if s.signed_in {
            "signed-in"
        } else {
            "awaiting-code"
        };
        println!(
            "{}\t{name}\t{state}\tcreated={}\tseen={}\tip={}",
            s.id,
            clock::rfc3339(s.created_at),
            clock::rfc3339(s.seen_at),
            s.ip.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn set_enabled(admin: &Admin, name: &str, enabled: bool) -> Result<(), Error> {
    let name = admin.account().set_enabled(name, enabled)?;
    eprintln!("{} {name}", if enabled { "enabled" } else { "disabled" });
    Ok(())
}

fn show(admin: &Admin, name: &str, as_json: bool) -> Result<(), Error> {
    let UserDetails {
        user,
        totp,
        app_passwords,
        stale_clients: clients,
    } = admin.account().user_details(name)?;
    if as_json {
        print_json(&json!({
            "name": user.name,
            "enabled": user.enabled,
            "created_at": clock::rfc3339(user.created_at),
            "password_scheme": password_scheme(&user),
            "external": user.external,
            "self_service": user.self_service,
            "totp": totp_json(&totp),
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
    println!(
        "self-service page: {}",
        if user.self_service {
            "allowed"
        } else {
            "off (mailpass user self-service USER on)"
        }
    );
    println!("created:     {}", clock::rfc3339(user.created_at));
    let scheme = password_scheme(&user);
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
    if totp.recovery_codes_left > 0 {
        println!("recovery codes left: {}", totp.recovery_codes_left);
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

/// "N users still have imported hashes (SHA512-CRYPT: 3, ...)", or `None` when every hash is argon2id.
fn migration_progress<'a>(users: impl Iterator<Item = &'a UserRecord>) -> Option<String> {
    let mut by_scheme: BTreeMap<&str, usize> = BTreeMap::new();
    for u in users.filter(|u| !u.external) {
        let scheme = password_scheme(u);
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

pub(super) fn totp_json(status: &TotpStatus) -> Value {
    json!({
        "state": status.state.name(),
        "enrolled_at": time_json(status.enrolled_at),
        "recovery_codes_left": status.recovery_codes_left,
    })
}
