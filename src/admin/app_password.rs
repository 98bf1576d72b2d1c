//! `mailpass app-password ...`: random per-client passwords, scoped to services, revocable, shown once.

use serde_json::{Value, json};

use super::{Admin, print_json, time_json};
use crate::app_password;
use crate::cli::AppPasswordCommand;
use crate::clock;
use crate::error::Error;
use crate::service::Services;
use crate::store::{AppPasswordRecord, NewAppPassword, Selector};
use crate::tag::Purpose;

pub(super) fn run(admin: &Admin, command: AppPasswordCommand) -> Result<(), Error> {
    match command {
        AppPasswordCommand::Add {
            user,
            name,
            services,
            expires_in,
            json,
        } => {
            let services = match services {
                Some(list) => Services::parse_list(&list).map_err(|bad| {
                    Error::Usage(format!(
                        "unknown service {bad:?} in --services: use imap, pop3, smtp, sieve"
                    ))
                })?,
                None => Services::all(),
            };
            let lifetime = expires_in
                .map(|d| clock::parse_duration(&d).map_err(Error::Usage))
                .transpose()?;
            let label = name.trim();
            if label.is_empty() || label.chars().any(char::is_control) {
                return Err(Error::Usage(
                    "--name needs a label such as \"iPhone Mail\"".into(),
                ));
            }
            let record = admin.user(&user.user)?;
            let password = app_password::generate();
            let normal = app_password::normalize(&password)
                .ok_or_else(|| Error::Io("generated app password does not normalize".into()))?;
            let key = admin.store.tag_key()?;
            let tag = key.tag(Purpose::AppPassword, &[normal.expose()]);
            let expires_at = lifetime.map(|s| admin.now + s);
            let new = NewAppPassword {
                name: label,
                tag: &tag,
                services,
                created_at: admin.now,
                expires_at,
            };
            let Some(id) = admin.store.add_app_password(record.id, &new)? else {
                return Err(Error::Refused(format!(
                    "{} already has an app password named {label:?}: choose another name or revoke it first",
                    record.name
                )));
            };
            let shown =
                zeroize::Zeroizing::new(String::from_utf8_lossy(password.expose()).into_owned());
            if json.json {
                print_json(&json!({
                    "id": id,
                    "name": label,
                    "services": services.names(),
                    "created_at": clock::rfc3339(admin.now),
                    "expires_at": time_json(expires_at),
                    "password": shown.as_str(),
                }));
            } else {
                println!("{}", shown.as_str());
                eprintln!(
                    "app password {label:?} for {} ({}{}): enter it in the mail app instead of the account \
                     password. It is shown only this once.",
                    record.name,
                    services.names().join(","),
                    expires_at.map_or(String::new(), |t| format!(
                        ", expires {}",
                        clock::rfc3339(t)
                    ))
                );
            }
        }
        AppPasswordCommand::List { user, json } => {
            let record = admin.user(&user.user)?;
            let list = admin.store.app_passwords(record.id)?;
            if json.json {
                print_json(&Value::Array(
                    list.iter().map(|r| record_json(r, admin.now)).collect(),
                ));
            } else {
                for r in &list {
                    print_line(r, admin.now);
                }
            }
        }
        AppPasswordCommand::Revoke {
            user,
            which,
            all,
            json,
        } => {
            let record = admin.user(&user.user)?;
            let selector = match (&which, all) {
                (_, true) => Selector::All,
                (Some(w), false) => match w.parse::<i64>() {
                    Ok(id) if !has_active_name(admin, record.id, w)? => Selector::Id(id),
                    _ => Selector::Name(w),
                },
                (None, false) => {
                    return Err(Error::Usage("name the app password, or pass --all".into()));
                }
            };
            let n = admin
                .store
                .revoke_app_passwords(record.id, &selector, admin.now)?;
            if n == 0 && !all {
                return Err(Error::Refused(format!(
                    "{} has no active app password {:?}: `mailpass app-password list {}` shows them",
                    record.name,
                    which.unwrap_or_default(),
                    record.name
                )));
            }
            if json.json {
                print_json(&json!({"user": record.name, "revoked": n}));
            } else {
                eprintln!("revoked {n} app password(s) of {}", record.name);
            }
        }
    }
    Ok(())
}

/// A name that looks like an id (`2024`) still means the name when an active app password has it.
fn has_active_name(admin: &Admin, user_id: i64, name: &str) -> Result<bool, Error> {
    Ok(admin
        .store
        .app_passwords(user_id)?
        .iter()
        .any(|r| r.name == name && r.revoked_at.is_none()))
}

fn status(r: &AppPasswordRecord, now: i64) -> &'static str {
    if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

pub(super) fn record_json(r: &AppPasswordRecord, now: i64) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "services": r.services.names(),
        "created_at": clock::rfc3339(r.created_at),
        "expires_at": time_json(r.expires_at),
        "revoked_at": time_json(r.revoked_at),
        "last_used_at": time_json(r.last_used_at),
        "last_ip": r.last_ip,
        "last_service": r.last_service,
        "status": status(r, now),
    })
}

pub(super) fn print_line(r: &AppPasswordRecord, now: i64) {
    println!(
        "  {:>4}  {:<20} {:<8} {:<20} last used: {}",
        r.id,
        r.name,
        status(r, now),
        r.services.names().join(","),
        r.last_used_at.map_or("never".to_string(), |t| format!(
            "{} from {} ({})",
            clock::rfc3339(t),
            r.last_ip.as_deref().unwrap_or("-"),
            r.last_service.as_deref().unwrap_or("-")
        ))
    );
}
