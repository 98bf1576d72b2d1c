//! TOTP (RFC 6238) as every authenticator app does it: SHA-1, 6 digits, 30-second steps, 160-bit secrets, one
//! step of skew either way. Refusing a replayed code is the store's job (it claims the step atomically).

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use totp_rs::{Builder, Totp};

use crate::secret::Secret;

pub const SECRET_LEN: usize = 20;
pub const DIGITS: usize = 6;
#[cfg(test)]
pub const STEP_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("stored TOTP secret is invalid: {0}")]
    BadSecret(String),
    #[error("cannot make an otpauth URI: {0}")]
    Uri(String),
}

/// Why a secret brought from elsewhere (`totp import`) cannot be used. Never echoes the secret.
#[derive(Debug, thiserror::Error)]
pub enum ImportedSecretError {
    #[error(
        "no secret on standard input: put the base32 secret there, e.g. `mailpass totp import USER < secret.txt`"
    )]
    Empty,
    #[error(
        "the secret is not base32: only the letters A-Z and the digits 2-7 (spaces, lower case and = padding are fine)"
    )]
    NotBase32,
    #[error(
        "the secret has {bits} bits; mailpass needs at least {min} (RFC 4226's minimum, which the TOTP library enforces at every login), so it cannot take it. Some services gave authenticator apps 80-bit secrets (Google Authenticator exports them as they are): that user needs a new enrollment instead (`mailpass totp enroll USER`)",
        min = MIN_IMPORTED_LEN * 8
    )]
    TooShort { bits: usize },
    #[error("the secret has {bits} bits, more than the {max} an authenticator app uses", max = MAX_IMPORTED_LEN * 8)]
    TooLong { bits: usize },
}

/// RFC 4226 section 4 requires 128 bits; totp-rs refuses to build with less.
const MIN_IMPORTED_LEN: usize = 16;
const MAX_IMPORTED_LEN: usize = 64;

/// A base32 secret as authenticator apps show and export it (RFC 4648 alphabet; whitespace, lower case and
/// `=` padding forgiven), decoded and checked to work at every later login.
pub fn parse_base32(text: &[u8]) -> Result<Secret, ImportedSecretError> {
    let symbols: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(
        text.iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(u8::to_ascii_uppercase)
            .collect(),
    );
    let end = symbols
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |i| i + 1);
    let symbols = &symbols[..end];
    if symbols.is_empty() {
        return Err(ImportedSecretError::Empty);
    }
    // A length whose last symbol carries no whole byte is a truncated secret, not padding.
    if matches!(symbols.len() % 8, 1 | 3 | 6) {
        return Err(ImportedSecretError::NotBase32);
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(symbols.len() * 5 / 8));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &symbol in symbols {
        let value = match symbol {
            b'A'..=b'Z' => symbol - b'A',
            b'2'..=b'7' => symbol - b'2' + 26,
            _ => return Err(ImportedSecretError::NotBase32),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    match bytes.len() {
        n if n < MIN_IMPORTED_LEN => Err(ImportedSecretError::TooShort { bits: n * 8 }),
        n if n > MAX_IMPORTED_LEN => Err(ImportedSecretError::TooLong { bits: n * 8 }),
        _ => Ok(Secret::new(std::mem::take(&mut *bytes))),
    }
}

pub fn new_secret() -> Secret {
    let mut bytes = vec![0u8; SECRET_LEN];
    rand::fill(&mut bytes[..]);
    Secret::new(bytes)
}

fn totp(secret: &Secret, account: &str, issuer: &str) -> Result<Totp, TotpError> {
    Builder::new()
        .with_secret(secret.expose())
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(issuer.replace(':', "_")))
        .build()
        .map_err(|e| TotpError::BadSecret(e.to_string()))
}

/// The secret as authenticator apps take it when typed in.
pub fn base32(secret: &Secret) -> String {
    totp_rs::Secret::from(secret.expose()).to_base32()
}

/// The `otpauth://totp/...` URI that a QR code carries.
pub fn uri(secret: &Secret, account: &str, issuer: &str) -> Result<String, TotpError> {
    totp(secret, account, issuer)?
        .to_url()
        .map_err(|e| TotpError::Uri(e.to_string()))
}

/// The URI as a QR code drawn with Unicode half blocks, for a terminal.
pub fn qr_for_terminal(uri: &str) -> Result<String, TotpError> {
    let code = QrCode::new(uri.as_bytes()).map_err(|e| TotpError::Uri(e.to_string()))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Whether `sent` looks like a TOTP code (exactly six ASCII digits).
pub fn is_code_shaped(sent: &[u8]) -> bool {
    sent.len() == DIGITS && sent.iter().all(u8::is_ascii_digit)
}

/// The time step whose code `code` is, within one step of `now`, or `None`.
pub fn matching_step(secret: &Secret, code: &[u8], now: u64) -> Result<Option<u64>, TotpError> {
    if !is_code_shaped(code) {
        return Ok(None);
    }
    let code = std::str::from_utf8(code).unwrap_or_default();
    Ok(totp(secret, "x", "x")?.check(code, now))
}

/// The code of a given time, as an authenticator app shows it.
#[cfg(test)]
pub fn code_at(secret: &Secret, time: u64) -> Result<String, TotpError> {
    Ok(totp(secret, "x", "x")?.generate(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, truncated to six digits.
    #[test]
    fn rfc6238_test_vectors() {
        let secret = Secret::from_slice(b"12345678901234567890");
        for (time, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(code_at(&secret, time).expect("code"), code, "t={time}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_is_accepted() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let step = now / STEP_SECONDS;
        for (offset, expected) in [
            (-30i64, Some(step - 1)),
            (0, Some(step)),
            (30, Some(step + 1)),
        ] {
            let code = code_at(&secret, (now as i64 + offset) as u64).expect("code");
            assert_eq!(
                matching_step(&secret, code.as_bytes(), now).expect("check"),
                expected
            );
        }
        let far = code_at(&secret, now + 90).expect("code");
        assert_eq!(
            matching_step(&secret, far.as_bytes(), now).expect("check"),
            None
        );
    }

    #[test]
    fn uri_names_issuer_account_and_secret() {
        let secret = new_secret();
        let uri = uri(&secret, "alice@example.org", "Example Mail").expect("uri");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&base32(&secret)));
        assert!(qr_for_terminal(&uri).expect("qr").contains('█'));
    }

    #[test]
    fn imported_secrets_forgive_spaces_case_and_padding() {
        let secret = new_secret();
        let text = base32(&secret);
        let spaced: String = text
            .to_lowercase()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| (i % 4 == 0 && i > 0).then_some(' ').into_iter().chain([c]))
            .collect();
        for input in [text.clone(), spaced, format!("{text}====\n")] {
            assert_eq!(
                parse_base32(input.as_bytes()).expect("parses").expose(),
                secret.expose(),
                "{input}"
            );
        }
        // 80 bits, as some services hand out: refused with its size.
        let short = totp_rs::Secret::from(&[7u8; 10][..]).to_base32();
        assert!(matches!(
            parse_base32(short.as_bytes()),
            Err(ImportedSecretError::TooShort { bits: 80 })
        ));
        assert!(matches!(
            parse_base32(b"JBSW1Y3D"),
            Err(ImportedSecretError::NotBase32)
        ));
        assert!(matches!(
            parse_base32(b" \n"),
            Err(ImportedSecretError::Empty)
        ));
    }

    #[test]
    fn only_six_digits_look_like_a_code() {
        assert!(is_code_shaped(b"012345"));
        assert!(!is_code_shaped(b"12345"));
        assert!(!is_code_shaped(b"12345a"));
    }
}
