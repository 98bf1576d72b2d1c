//! The mail services an app password can be scoped to, and how Dovecot's SERVICE values map onto them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Imap,
    Pop3,
    /// Postfix SASL (`smtp`) and Dovecot's submission service (`submission`).
    Smtp,
    Sieve,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Imap, Service::Pop3, Service::Smtp, Service::Sieve];

    /// The name used on the command line, in the config and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Pop3 => "pop3",
            Service::Smtp => "smtp",
            Service::Sieve => "sieve",
        }
    }

    /// Parses a name as an admin writes it.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Maps Dovecot's SERVICE value; services that are not mail access (doveadm, lmtp, ...) map to none.
    pub fn from_dovecot(value: &str) -> Option<Service> {
        match value {
            "imap" => Some(Service::Imap),
            "pop3" => Some(Service::Pop3),
            "smtp" | "submission" => Some(Service::Smtp),
            "sieve" | "managesieve" => Some(Service::Sieve),
            _ => None,
        }
    }

    fn bit(self) -> u32 {
        match self {
            Service::Imap => 1,
            Service::Pop3 => 2,
            Service::Smtp => 4,
            Service::Sieve => 8,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of services, stored as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services(u32);

impl Services {
    pub fn all() -> Services {
        Services::from_iter(Service::ALL)
    }

    pub fn from_bits(bits: u32) -> Services {
        Services(bits & Services::all_bits())
    }

    fn all_bits() -> u32 {
        Service::ALL.iter().map(|s| s.bit()).sum()
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, service: Service) -> bool {
        self.0 & service.bit() != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Service::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Service::name)
            .collect()
    }

    /// Parses a comma list such as `imap,smtp`; the error names the unknown entry.
    pub fn parse_list(list: &str) -> Result<Services, String> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let service = Service::from_name(name).ok_or_else(|| name.to_string())?;
            bits |= service.bit();
        }
        if bits == 0 {
            return Err(list.to_string());
        }
        Ok(Services(bits))
    }
}

impl FromIterator<Service> for Services {
    fn from_iter<I: IntoIterator<Item = Service>>(iter: I) -> Self {
        Services(iter.into_iter().map(|s| s.bit()).fold(0, |a, b| a | b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_and_smtp_are_both_smtp() {
        assert_eq!(Service::from_dovecot("submission"), Some(Service::Smtp));
        assert_eq!(Service::from_dovecot("smtp"), Some(Service::Smtp));
        assert_eq!(Service::from_dovecot("doveadm"), None);
    }

    #[test]
    fn lists_parse_and_round_trip() {
        let s = Services::parse_list("imap, smtp").expect("valid");
        assert_eq!(s.names(), vec!["imap", "smtp"]);
        assert_eq!(Services::from_bits(s.bits()), s);
        assert_eq!(Services::parse_list("imap,ftp"), Err("ftp".to_string()));
        assert!(Services::parse_list("").is_err());
        assert_eq!(Services::all().names().len(), 4);
    }
}
