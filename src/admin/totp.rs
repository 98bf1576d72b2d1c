//! `mailpass totp ...`: enrollment (pending until one valid code), status, disable, recovery codes.

use serde_json::json;

use super::{Admin, print_json, user::totp_json};
use crate::cli::TotpCommand;
use crate::error::Error;
use crate::recovery;
use crate::store::TotpState;
use crate::tag::Purpose;
use crate::totp;

pub(super) fn run(admin: &Admin, command: TotpCommand) -> Result<(), Error> {
    match command {
        TotpCommand::Enroll { user, json } => {
            let record = admin.user(&user.user)?;
            if record.totp == TotpState::Active {
                return Err(Error::Refused(format!(
                    "two-factor authentication is active for {0}: `mailpass totp disable {0}` first to enroll a new device",
                    record.name
                )));
            }
            let secret = totp::new_secret();
            let uri = totp::uri(&secret, &record.name, &admin.config.totp.issuer)?;
            admin
                .store
                .set_totp_pending(record.id, &secret, admin.now)?;
            let base32 = zeroize::Zeroizing::new(totp::base32(&secret));
            if json.json {
                print_json(&json!({ "secret": base32.as_str(), "uri": uri }));
            } else {
                println!("{}", totp::qr_for_terminal(&uri)?);
                println!("{uri}");
                println!("secret: {}", base32.as_str());
                eprintln!(
                    "Scan the QR code (or type the secret) into an authenticator app, then run\n  \
                     mailpass totp confirm {} CODE\nwith the code it shows. Until then the account works as before.",
                    record.name
                );
            }
        }
        TotpCommand::Confirm { user, code, json } => {
            let record = admin.user(&user.user)?;
            let secret = match (&record.totp, &record.totp_secret) {
                (TotpState::Pending, Some(secret)) => secret,
                (TotpState::Active, _) => {
                    return Err(Error::Refused(format!(
                        "two-factor authentication is already active for {}",
                        record.name
                    )));
                }
                _ => {
                    return Err(Error::Refused(format!(
                        "no enrollment is pending for {0}: run `mailpass totp enroll {0}` first",
                        record.name
                    )));
                }
            };
            if !totp::is_code_shaped(code.as_bytes()) {
                return Err(Error::Usage(format!("{code:?} is not a 6-digit code")));
            }
            let Some(step) = totp::matching_step(secret, code.as_bytes(), admin.now.max(0) as u64)?
            else {
                return Err(Error::Refused(
                    "that code does not match: check the phone's clock and try the code the app shows now".into(),
                ));
            };
            if !admin.store.activate_totp(record.id, step, admin.now)? {
                return Err(Error::Refused(
                    "the enrollment changed meanwhile; enroll again".into(),
                ));
            }
            if json.json {
                print_json(&json!({"user": record.name, "totp": "active"}));
            } else {
                eprintln!(
                    "two-factor authentication is active for {0}. Mail apps now need app passwords:\n  \
                     mailpass app-password add {0} --name \"<device>\"\nand `mailpass totp recovery-codes {0}` makes codes for a lost phone.",
                    record.name
                );
            }
        }
        TotpCommand::Status { user, json } => {
            let record = admin.user(&user.user)?;
            let left = admin.store.recovery_codes_left(record.id)?;
            if json.json {
                print_json(&totp_json(&record, left));
            } else {
                println!("{}", record.totp.name());
                if record.totp == TotpState::Active {
                    println!("recovery codes left: {left}");
                }
            }
        }
        TotpCommand::Disable(user) => {
            let record = admin.user(&user.user)?;
            if record.totp == TotpState::None {
                return Err(Error::Refused(format!(
                    "two-factor authentication is not enabled for {}",
                    record.name
                )));
            }
            admin.store.disable_totp(record.id)?;
            eprintln!(
                "two-factor authentication is off for {}; the main password works alone again",
                record.name
            );
        }
        TotpCommand::Import { user, replace } => import(admin, &user.user, replace)?,
        TotpCommand::RecoveryCodes { user, json } => {
            let record = admin.user(&user.user)?;
            if record.totp != TotpState::Active {
                return Err(Error::Refused(format!(
                    "two-factor authentication is not active for {0}: enroll and confirm first (`mailpass totp enroll {0}`)",
                    record.name
                )));
            }
            let key = admin.store.tag_key()?;
            let id_bytes = record.id.to_be_bytes();
            let codes = recovery::generate();
            let mut tags = Vec::with_capacity(codes.len());
            for code in &codes {
                let normal = crate::crockford::normalize(code.expose(), recovery::SYMBOLS)
                    .ok_or_else(|| {
                        Error::Io("generated recovery code does not normalize".into())
                    })?;
                tags.push(key.tag(Purpose::RecoveryCode, &[&id_bytes, normal.expose()]));
            }
            admin
                .store
                .replace_recovery_codes(record.id, &tags, admin.now)?;
            let shown: Vec<zeroize::Zeroizing<String>> = codes
                .iter()
                .map(|c| zeroize::Zeroizing::new(String::from_utf8_lossy(c.expose()).into_owned()))
                .collect();
            if json.json {
                let list: Vec<&str> = shown.iter().map(|c| c.as_str()).collect();
                print_json(&json!({"user": record.name, "codes": list}));
                return Ok(());
            }
            for code in &shown {
                println!("{}", code.as_str());
            }
            eprintln!(
                "{} single-use recovery codes for {} (the old ones no longer work). To log in without the phone,\n\
                 type the password immediately followed by one code. Keep them somewhere safe.",
                codes.len(),
                record.name
            );
        }
    }
    Ok(())
}

/// The longest standard input `totp import` reads: a 512-bit secret in base32 with generous spacing.
const MAX_SECRET_INPUT: u64 = 1024;

/// Takes over a user's existing authenticator entry: active at once, since the user has been typing its codes
/// elsewhere already (there is nothing to confirm that a code would prove better).
fn import(admin: &Admin, name: &str, replace: bool) -> Result<(), Error> {
    let record = admin.user(name)?;
    let mut text = zeroize::Zeroizing::new(Vec::with_capacity(MAX_SECRET_INPUT as usize));
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_SECRET_INPUT),
        &mut text,
    )
    .map_err(|e| Error::Io(format!("cannot read the secret from standard input: {e}")))?;
    let secret = totp::parse_base32(&text).map_err(|e| Error::Refused(e.to_string()))?;
    // Checked again inside the transaction, so that a concurrent enrollment is never overwritten unasked.
    let taken = admin.store.immediate(|s| {
        let active = s
            .user(&record.name)?
            .is_some_and(|u| u.totp == TotpState::Active);
        if active && !replace {
            return Ok(false);
        }
        s.set_totp_pending(record.id, &secret, admin.now)?;
        // Step 0 as the last one used: the user's next code (any step) logs in, none has been used here yet.
        s.activate_totp(record.id, 0, admin.now)
    })?;
    if !taken {
        return Err(Error::Refused(format!(
            "two-factor authentication is active for {0} already: `mailpass totp import {0} --replace` replaces its secret (the old authenticator entry stops working)",
            record.name
        )));
    }
    eprintln!(
        "two-factor authentication is active for {0} with the imported secret; their authenticator entry keeps \
         working. Mail apps need app passwords (`mailpass app-password add {0} --name \"<device>\"`), and \
         `mailpass totp recovery-codes {0}` makes codes for a lost phone.",
        record.name
    );
    Ok(())
}
