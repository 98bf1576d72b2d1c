//! `mailpass totp ...`: enrollment (pending until one valid code), status, disable, recovery codes. What each
//! means is `account::totp`'s; this reads the arguments and prints.

use serde_json::json;
use zeroize::Zeroizing;

use super::{Admin, print_json, user::totp_json};
use crate::cli::TotpCommand;
use crate::error::Error;
use crate::store::TotpState;
use crate::totp;

pub(super) fn run(admin: &Admin, command: TotpCommand) -> Result<(), Error> {
    let account = admin.account();
    match command {
        TotpCommand::Enroll { user, json } => {
            let enrollment = account.enroll_totp(&user.user)?;
            let uri = enrollment.uri.as_str();
            let base32 = Zeroizing::new(totp::base32(&enrollment.secret));
            if json.json {
                print_json(&json!({ "secret": base32.as_str(), "uri": uri }));
            } else {
                println!("{}", totp::qr_for_terminal(uri)?);
                println!("{uri}");
                println!("secret: {}", base32.as_str());
                eprintln!(
                    "Scan the QR code (or type the secret) into an authenticator app, then run\n  \
                     mailpass totp confirm {} CODE\nwith the code it shows. Until then the account works as before.",
                    enrollment.user
                );
            }
        }
        TotpCommand::Confirm { user, code, json } => {
            let name = account.confirm_totp(&user.user, &code)?;
            if json.json {
                print_json(&json!({"user": name, "totp": "active"}));
            } else {
                eprintln!(
                    "two-factor authentication is active for {name}. Mail apps now need app passwords:\n  \
                     mailpass app-password add {name} --name \"<device>\"\nand `mailpass totp recovery-codes {name}` makes codes for a lost phone."
                );
            }
        }
        TotpCommand::Status { user, json } => {
            let status = account.totp_status(&user.user)?;
            if json.json {
                print_json(&totp_json(&status));
            } else {
                println!("{}", status.state.name());
                if status.state == TotpState::Active {
                    println!("recovery codes left: {}", status.recovery_codes_left);
                }
            }
        }
        TotpCommand::Disable(user) => {
            let name = account.disable_totp(&user.user)?;
            eprintln!(
                "two-factor authentication is off for {name}; the main password works alone again"
            );
        }
        TotpCommand::Import { user, replace } => import(admin, &user.user, replace)?,
        TotpCommand::RecoveryCodes { user, json } => {
            let fresh = account.new_recovery_codes(&user.user)?;
            let shown: Vec<Zeroizing<String>> = fresh
                .codes
                .iter()
                .map(|c| Zeroizing::new(String::from_utf8_lossy(c.expose()).into_owned()))
                .collect();
            if json.json {
                let list: Vec<&str> = shown.iter().map(|c| c.as_str()).collect();
                print_json(&json!({"user": fresh.user, "codes": list}));
                return Ok(());
            }
            for code in &shown {
                println!("{}", code.as_str());
            }
            eprintln!(
                "{} single-use recovery codes for {} (the old ones no longer work). To log in without the phone,\n\
                 type the password immediately followed by one code. Keep them somewhere safe.",
                fresh.codes.len(),
                fresh.user
            );
        }
    }
    Ok(())
}

/// The longest standard input `totp import` reads: a 512-bit secret in base32 with generous spacing.
const MAX_SECRET_INPUT: u64 = 1024;

/// `totp import`: the base32 secret comes on standard input, never in the arguments (where `ps` shows it).
fn import(admin: &Admin, name: &str, replace: bool) -> Result<(), Error> {
    let account = admin.account();
    // An unknown user is refused before standard input is read: on a terminal, it would wait for typing.
    account.user(name)?;
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_SECRET_INPUT as usize));
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_SECRET_INPUT),
        &mut text,
    )
    .map_err(|e| Error::Io(format!("cannot read the secret from standard input: {e}")))?;
    let name = account.import_totp(name, &text, replace)?;
    eprintln!(
        "two-factor authentication is active for {name} with the imported secret; their authenticator entry keeps \
         working. Mail apps need app passwords (`mailpass app-password add {name} --name \"<device>\"`), and \
         `mailpass totp recovery-codes {name}` makes codes for a lost phone."
    );
    Ok(())
}
