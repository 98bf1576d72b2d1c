//! The Apple Mail profile: a `.mobileconfig` that sets up the account on an iPhone, iPad or Mac with a new
//! app password for IMAP and SMTP, made the same way as on the app-password page (and listed there under its
//! name). Opening the file offers to install the profile; the password never has to be typed.
//!
//! The property list is written here rather than by a crate (which would bring four more): it is a few
//! fixed keys of three types, and the buffer it is written into, which holds the password, is wiped once the
//! answer is built (the copy handed to the HTTP server is not, as with every page that shows a secret).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

use super::app_passwords::{CreatedPage, create_app_password, refused};
use super::reauth::require_fresh;
use super::{signed_form, when};
use crate::web::app::{Answer, App, Ctx};
use crate::web::visit::{Fields, Visit};

/// The services the profile's account uses.
const SERVICES: [&str; 2] = ["imap", "smtp"];

pub async fn download(State(app): State<App>, visit: Visit, fields: Fields) -> Response {
    app.run(move |ctx| {
        let signed = signed_form(ctx, &visit, &fields)?;
        // As for any new app password (see `app_passwords::create`).
        require_fresh(ctx, &signed, "/app-passwords")?;
        let name = match fields.get("name").trim() {
            "" => format!("Apple Mail (profile, {})", when(Some(ctx.now))),
            name => name.to_string(),
        };
        match create_app_password(ctx, &signed, &visit, &name, &SERVICES, "")? {
            Ok(created) => profile_response(ctx, &created),
            Err(message) => refused(ctx, &signed, message),
        }
    })
    .await
}

fn profile_response(ctx: &Ctx, created: &CreatedPage) -> Answer {
    let display_name = &ctx.config().web.display_name;
    let host = &created.host;
    let identifier = format!(
        "{}.mailpass.{}",
        reverse_dns(host),
        identifier_part(&created.user)
    );
    let password = created.password.as_str();
    let mut mail = vec![
        ("EmailAccountType", Value::Str("EmailTypeIMAP")),
        ("EmailAccountDescription", Value::Str(display_name)),
    ];
    // Without an address (a user name that is not one), the device asks for it when installing.
    if created.user.contains('@') {
        mail.push(("EmailAddress", Value::Str(&created.user)));
    }
    let imap_port = i64::from(created.imap_port);
    let smtp_port = i64::from(created.smtp_port);
    let mail_uuid = uuid_v4();
    let mail_identifier = format!("{identifier}.mail");
    mail.extend([
        ("IncomingMailServerHostName", Value::Str(host)),
        ("IncomingMailServerPortNumber", Value::Int(imap_port)),
        ("IncomingMailServerUseSSL", Value::Bool(true)),
        ("IncomingMailServerUsername", Value::Str(&created.user)),
        ("IncomingPassword", Value::Str(password)),
        (
            "IncomingMailServerAuthentication",
            Value::Str("EmailAuthPassword"),
        ),
        ("OutgoingMailServerHostName", Value::Str(&created.smtp_host)),
        ("OutgoingMailServerPortNumber", Value::Int(smtp_port)),
        ("OutgoingMailServerUseSSL", Value::Bool(true)),
        ("OutgoingMailServerUsername", Value::Str(&created.user)),
        ("OutgoingPassword", Value::Str(password)),
        (
            "OutgoingMailServerAuthentication",
            Value::Str("EmailAuthPassword"),
        ),
        ("OutgoingPasswordSameAsIncomingPassword", Value::Bool(true)),
        ("PayloadDisplayName", Value::Str(display_name)),
        ("PayloadIdentifier", Value::Str(&mail_identifier)),
        ("PayloadUUID", Value::Str(&mail_uuid)),
        ("PayloadType", Value::Str("com.apple.mail.managed")),
        ("PayloadVersion", Value::Int(1)),
    ]);
    let description = format!(
        "The mail account {} on {host}, with the app password \u{201c}{}\u{201d} for IMAP and SMTP.",
        created.user, created.name
    );
    let profile_uuid = uuid_v4();
    let profile = Value::Dict(vec![
        ("PayloadContent", Value::Array(vec![Value::Dict(mail)])),
        ("PayloadDisplayName", Value::Str(display_name)),
        ("PayloadDescription", Value::Str(&description)),
        ("PayloadIdentifier", Value::Str(&identifier)),
        ("PayloadUUID", Value::Str(&profile_uuid)),
        ("PayloadType", Value::Str("Configuration")),
        ("PayloadVersion", Value::Int(1)),
        ("PayloadRemovalDisallowed", Value::Bool(false)),
    ]);
    let body = plist(&profile);
    let disposition = format!(
        "attachment; filename=\"{}.mobileconfig\"",
        file_name_part(host)
    );
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/x-apple-aspen-config".to_string()),
            (CONTENT_DISPOSITION, disposition),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        body.as_bytes().to_vec(),
    )
        .into_response())
}

/// `mail.example.org` as `org.example.mail`, in the characters a payload identifier takes.
fn reverse_dns(host: &str) -> String {
    host.split('.')
        .rev()
        .filter(|label| !label.is_empty())
        .map(identifier_part)
        .collect::<Vec<_>>()
        .join(".")
}

/// Letters, digits and dashes: everything else becomes a dash (`alice@example.org` as `alice-example-org`).
fn identifier_part(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The host as a file name that needs no quoting in `Content-Disposition`.
fn file_name_part(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.trim_matches('.').is_empty() {
        "mail".into()
    } else {
        name
    }
}

/// A random (version 4) UUID, upper case as Apple writes them.
fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The property-list values a profile uses.
enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// Keys in the order written.
    Dict(Vec<(&'a str, Value<'a>)>),
    Array(Vec<Value<'a>>),
}

/// The XML property list (Apple's DTD), in a buffer that is wiped when dropped: it holds the password.
fn plist(value: &Value) -> Zeroizing<String> {
    // Large enough that the buffer is never moved while it grows (a move would leave a copy behind).
    let mut out = Zeroizing::new(String::with_capacity(16 * 1024));
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n",
    );
    write_value(&mut out, value, 0);
    out.push_str("</plist>\n");
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    let indent = "\t".repeat(depth);
    match value {
        Value::Str(text) => {
            out.push_str(&indent);
            out.push_str("<string>");
            escape_into(out, text);
            out.push_str("</string>\n");
        }
        Value::Int(n) => {
            let _ = writeln!(out, "{indent}<integer>{n}</integer>");
        }
        Value::Bool(b) => {
            let _ = writeln!(out, "{indent}<{b}/>");
        }
        Value::Dict(entries) => {
            let _ = writeln!(out, "{indent}<dict>");
            for (key, value) in entries {
                out.push_str(&indent);
                out.push_str("\t<key>");
                escape_into(out, key);
                out.push_str("</key>\n");
                write_value(out, value, depth + 1);
            }
            let _ = writeln!(out, "{indent}</dict>");
        }
        Value::Array(items) => {
            let _ = writeln!(out, "{indent}<array>");
            for item in items {
                write_value(out, item, depth + 1);
            }
            let _ = writeln!(out, "{indent}</array>");
        }
    }
}

/// Text as XML character data: the markup characters escaped, and the characters XML 1.0 cannot carry at
/// all (control characters but tab and line ends) replaced, so that the profile always parses. None is
/// expected: labels, user names and the display name are checked to hold no control characters.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        escape_into(&mut out, text);
        out
    }

    #[test]
    fn markup_in_a_value_is_escaped() {
        assert_eq!(
            escaped("Tom & Jerry's <Mail> \"x\""),
            "Tom &amp; Jerry's &lt;Mail&gt; &quot;x&quot;"
        );
        assert_eq!(escaped("</string><key>"), "&lt;/string&gt;&lt;key&gt;");
        assert_eq!(escaped("é ✉"), "é ✉");
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        assert_eq!(escaped("a\u{0}b\u{1b}c\td"), "a\u{fffd}b\u{fffd}c\td");
    }

    #[test]
    fn a_profile_is_a_property_list_with_the_values_in_order() {
        let value = Value::Dict(vec![
            ("Name", Value::Str("a<b")),
            ("Port", Value::Int(993)),
            ("SSL", Value::Bool(true)),
            ("List", Value::Array(vec![Value::Bool(false)])),
        ]);
        let text = plist(&value);
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
        let body = text
            .split_once("<plist version=\"1.0\">\n")
            .expect("plist element")
            .1;
        assert_eq!(
            body,
            "<dict>\n\t<key>Name</key>\n\t<string>a&lt;b</string>\n\t<key>Port</key>\n\t<integer>993</integer>\n\
             \t<key>SSL</key>\n\t<true/>\n\t<key>List</key>\n\t<array>\n\t\t<false/>\n\t</array>\n</dict>\n</plist>\n"
        );
    }

    #[test]
    fn identifiers_and_file_names_come_from_the_host() {
        assert_eq!(reverse_dns("mail.example.org"), "org.example.mail");
        assert_eq!(reverse_dns("127.0.0.1"), "1.0.0.127");
        assert_eq!(identifier_part("alice@example.org"), "alice-example-org");
        assert_eq!(file_name_part("mail.example.org"), "mail.example.org");
        assert_eq!(file_name_part("[::1]"), "___1_");
        assert_eq!(file_name_part(""), "mail");
    }

    #[test]
    fn uuids_are_random_version_4() {
        let a = uuid_v4();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "A" | "B"), "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(a, a.to_uppercase());
        assert_ne!(a, uuid_v4());
    }
}
