//! `mailpass app-password ...`: random per-client passwords, scoped to services, revocable, shown once.

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Admin, print_json, time_json};
use crate::account::{self, NewAppPasswordRequest};
use crate::cli::AppPasswordCommand;
use crate::clock;
use crate::error::Error;
use crate::store::AppPasswordRecord;

pub(super) fn run(admin: &Admin, command: AppPasswordCommand) -> Result<(), Error> {
    let account = admin.account();
    match command {
        AppPasswordCommand::Add {
            user,
            name,
            services,
            expires_in,
            json,
        } => {
            let created = account.create_app_password(
                &user.user,
                &NewAppPasswordRequest {
                    name: &name,
                    services: services.as_deref(),
                    expires_in: expires_in.as_deref(),
                },
            )?;
            let r = &created.record;
            let shown =
                Zeroizing::new(String::from_utf8_lossy(created.password.expose()).into_owned());
            if json.json {
                print_json(&json!({
                    "id": r.id,
                    "name": r.name,
                    "services": r.services.names(),
                    "created_at": clock::rfc3339(r.created_at),
                    "expires_at": time_json(r.expires_at),
                    "password": shown.as_str(),
                }));
            } else {
                println!("{}", shown.as_str());
                eprintln!(
                    "app password {:?} for {} ({}{}): enter it in the mail app instead of the account \
                     password. It is shown only this once.",
                    r.name,
                    created.user,
                    r.services.names().join(","),
                    r.expires_at.map_or(String::new(), |t| format!(
                        ", expires {}",
                        clock::rfc3339(t)
                    ))
                );
            }
        }
        AppPasswordCommand::List { user, json } => {
            let (_, list) = account.app_passwords(&user.user)?;
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
            let which = match (which.as_deref(), all) {
                (_, true) => None,
                (Some(w), false) => Some(w),
                (None, false) => {
                    return Err(Error::Usage("name the app password, or pass --all".into()));
                }
            };
            let revoked = account.revoke_app_passwords(&user.user, which)?;
            if json.json {
                print_json(&json!({"user": revoked.user, "revoked": revoked.count}));
            } else {
                eprintln!(
                    "revoked {} app password(s) of {}",
                    revoked.count, revoked.user
                );
            }
        }
    }
    Ok(())
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
        "status": account::status(r, now),
    })
}

pub(super) fn print_line(r: &AppPasswordRecord, now: i64) {
    println!(
        "  {:>4}  {:<20} {:<8} {:<20} last used: {}",
        r.id,
        r.name,
        account::status(r, now),
        r.services.names().join(","),
        r.last_used_at.map_or("never".to_string(), |t| format!(
            "{} from {} ({})",
            clock::rfc3339(t),
            r.last_ip.as_deref().unwrap_or("-"),
            r.last_service.as_deref().unwrap_or("-")
        ))
    );
}
