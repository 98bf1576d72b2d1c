//! Bringing existing users in with their password hashes: the per-line outcomes and the one decision that
//! turns parsed lines into writes. `passwd_file.rs` and `shadow.rs` read the sources; the admin CLI prints.
//!
//! The rules: a line is imported, updated, skipped (with why) or refused (with why); a refused line means
//! nothing at all is written unless the admin asked to keep going; the writes of one import are one
//! transaction, so a user is never half imported and a failed import leaves the database as it was.

pub mod passwd_file;
pub mod shadow;

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::password::legacy;
use crate::store::{Store, StoreError};

/// A password hash read from a source, in the form to store. Never printed: for the cleartext schemes it is
/// the password itself.
pub struct Hash(Zeroizing<String>);

impl Hash {
    pub fn new(stored: String) -> Hash {
        Hash(Zeroizing::new(stored))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        legacy::scheme_of(&self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hash([redacted])")
    }
}

/// One line of a source as its parser read it. Blank lines and comments produce none.
#[derive(Debug)]
pub struct Line {
    /// 1-based, as an editor shows it: what every message names instead of the line's content.
    pub number: usize,
    /// The user name in its stored form; `None` when the line has no valid one.
    pub user: Option<String>,
    pub read: Read,
}

#[derive(Debug)]
pub enum Read {
    /// A user and the hash to store.
    User(Hash),
    /// Nothing to import on this line, and nothing wrong with it either (a locked system account).
    Skip(Skip),
    Refuse(Refusal),
}

/// Why a line imports nothing although nothing is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Exists,
    Unchanged,
    Locked,
    NoPassword,
    Expired,
    BelowMinUid { uid: u32 },
    NoUid,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Exists => f.write_str("the user exists (--update replaces the hash)"),
            Skip::Unchanged => {
                f.write_str("the user has this hash already (or is external already)")
            }
            Skip::Locked => f.write_str("the account is locked (! or *)"),
            Skip::NoPassword => f.write_str("the account has no password"),
            Skip::Expired => f.write_str("the account has expired"),
            Skip::BelowMinUid { uid } => write!(f, "uid {uid} is below --min-uid"),
            Skip::NoUid => f.write_str("no uid in the passwd file (needed for --min-uid)"),
        }
    }
}

impl Skip {
    /// A stable name for scripts (the JSON `reason`).
    pub fn name(&self) -> &'static str {
        match self {
            Skip::Exists => "exists",
            Skip::Unchanged => "unchanged",
            Skip::Locked => "locked",
            Skip::NoPassword => "no_password",
            Skip::Expired => "expired",
            Skip::BelowMinUid { .. } => "below_min_uid",
            Skip::NoUid => "no_uid",
        }
    }
}

/// Why a line is refused. None of these carries any of the line's content but a scheme name.
#[derive(Debug)]
pub enum Refusal {
    /// The line is not in the source's format; the text says what was expected.
    Shape(&'static str),
    InvalidName,
    Hash(legacy::LegacyError),
    /// The same user on several lines: which one was meant is a guess, so none is taken.
    Duplicate {
        other: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Shape(expected) => f.write_str(expected),
            Refusal::InvalidName => f.write_str(
                "invalid user name: 1 to 255 characters without spaces or control characters",
            ),
            Refusal::Hash(e) => write!(f, "{e}"),
            Refusal::Duplicate { other } => {
                write!(f, "the same user is on line {other}: keep one of them")
            }
        }
    }
}

impl Refusal {
    /// A stable name for scripts (the JSON `reason`).
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::Shape(_) => "malformed_line",
            Refusal::InvalidName => "invalid_user",
            Refusal::Hash(legacy::LegacyError::NoScheme) => "no_scheme",
            Refusal::Hash(legacy::LegacyError::UnknownScheme(_)) => "unknown_scheme",
            Refusal::Hash(_) => "malformed_hash",
            Refusal::Duplicate { .. } => "duplicate",
        }
    }
}

#[derive(Debug)]
pub enum Outcome {
    Imported,
    Updated,
    Skipped(Skip),
    Refused(Refusal),
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Imported => "imported",
            Outcome::Updated => "updated",
            Outcome::Skipped(_) => "skipped",
            Outcome::Refused(_) => "refused",
        }
    }
}

/// What became of one line.
#[derive(Debug)]
pub struct LineReport {
    pub number: usize,
    pub user: Option<String>,
    /// The scheme of the hash the line brings, when it brings one.
    pub scheme: Option<String>,
    pub outcome: Outcome,
    /// The source keeps this password in clear text (it is stored so until the user's first login).
    pub cleartext: bool,
}

#[derive(Debug, Default)]
pub struct Options {
    /// Replace the hashes of existing users instead of skipping them.
    pub update: bool,
    /// Import the good lines even if some are refused.
    pub keep_going: bool,
    /// Decide and report, write nothing.
    pub dry_run: bool,
    /// Add the users as external (no main password in mailpass): their hashes are ignored, so a line refused
    /// only for its hash is imported too. With `update`, existing users become external.
    pub external: bool,
}

#[derive(Debug)]
pub struct Report {
    pub lines: Vec<LineReport>,
    /// Whether the database was changed (false for a dry run and for an import stopped by a refused line).
    pub written: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub imported: usize,
    pub updated: usize,
    pub skipped: usize,
    pub refused: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for line in &self.lines {
            match line.outcome {
                Outcome::Imported => s.imported += 1,
                Outcome::Updated => s.updated += 1,
                Outcome::Skipped(_) => s.skipped += 1,
                Outcome::Refused(_) => s.refused += 1,
            }
        }
        s
    }
}

/// Decides every line against the store and, unless this is a dry run or a refused line stops it, writes
/// the imported and updated users in one `BEGIN IMMEDIATE` transaction: the decisions are made inside it,
/// so no user added meanwhile is overwritten without `--update`.
pub fn import(
    store: &Store,
    lines: Vec<Line>,
    options: &Options,
    now: i64,
) -> Result<Report, StoreError> {
    let run = |s: &Store| -> Result<Report, StoreError> {
        let (lines, writes) = decide(s, lines, options)?;
        let refused = lines
            .iter()
            .any(|l| matches!(l.outcome, Outcome::Refused(_)));
        let write = !options.dry_run && (options.keep_going || !refused) && !writes.is_empty();
        if write {
            for (name, hash) in &writes {
                if options.external {
                    s.put_external_user(name, now)?;
                } else {
                    s.put_password_hash(name, hash.expose(), now)?;
                }
            }
        }
        Ok(Report {
            lines,
            written: write,
        })
    };
    if options.dry_run {
        run(store)
    } else {
        store.immediate(run)
    }
}

type Writes = Vec<(String, Hash)>;

fn decide(
    store: &Store,
    lines: Vec<Line>,
    options: &Options,
) -> Result<(Vec<LineReport>, Writes), StoreError> {
    // External users bring no hash: one that mailpass could not use does not matter.
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|line| match line.read {
            Read::Refuse(Refusal::Hash(_)) if options.external => Line {
                read: Read::User(Hash::new(String::new())),
                ..line
            },
            _ => line,
        })
        .collect();
    // Every line of each user, to refuse all of a duplicate's lines.
    let mut lines_of: HashMap<String, Vec<usize>> = HashMap::new();
    for line in &lines {
        if let (Some(user), Read::User(_)) = (&line.user, &line.read) {
            lines_of.entry(user.clone()).or_default().push(line.number);
        }
    }
    let mut reports = Vec::with_capacity(lines.len());
    let mut writes = Vec::new();
    for line in lines {
        let (scheme, cleartext) = match &line.read {
            Read::User(_) if options.external => (None, false),
            Read::User(hash) => (
                Some(hash.scheme().to_string()),
                legacy::is_cleartext(hash.scheme()),
            ),
            _ => (None, false),
        };
        let outcome = match (line.read, &line.user) {
            (Read::Skip(skip), _) => Outcome::Skipped(skip),
            (Read::Refuse(refusal), _) => Outcome::Refused(refusal),
            (Read::User(_), None) => Outcome::Refused(Refusal::InvalidName),
            (Read::User(hash), Some(user)) => {
                let same_user = &lines_of[user];
                if let Some(&other) = same_user.iter().find(|&&n| n != line.number) {
                    Outcome::Refused(Refusal::Duplicate { other })
                } else {
                    match store.user(user)? {
                        None => {
                            writes.push((user.clone(), hash));
                            Outcome::Imported
                        }
                        Some(existing) if options.external && existing.external => {
                            Outcome::Skipped(Skip::Unchanged)
                        }
                        Some(_) if !options.update => Outcome::Skipped(Skip::Exists),
                        Some(_) if options.external => {
                            writes.push((user.clone(), hash));
                            Outcome::Updated
                        }
                        Some(existing) if existing.password_hash == hash.expose() => {
                            Outcome::Skipped(Skip::Unchanged)
                        }
                        Some(_) => {
                            writes.push((user.clone(), hash));
                            Outcome::Updated
                        }
                    }
                }
            }
        };
        reports.push(LineReport {
            number: line.number,
            user: line.user,
            scheme,
            outcome,
            cleartext,
        });
    }
    Ok((reports, writes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_or_create(&dir.path().join("db")).expect("create");
        (dir, store)
    }

    fn user(number: usize, name: &str, hash: &str) -> Line {
        Line {
            number,
            user: Some(name.into()),
            read: Read::User(Hash::new(hash.into())),
        }
    }

    fn outcomes(report: &Report) -> Vec<&'static str> {
        report.lines.iter().map(|l| l.outcome.name()).collect()
    }

    #[test]
    fn every_line_of_a_duplicate_user_is_refused() {
        let (_dir, store) = store();
        let lines = vec![
            user(1, "a", "{PLAIN}x"),
            user(2, "b", "{PLAIN}y"),
            user(3, "a", "{PLAIN}z"),
        ];
        let options = Options {
            keep_going: true,
            ..Options::default()
        };
        let report = import(&store, lines, &options, 0).expect("import");
        assert_eq!(outcomes(&report), ["refused", "imported", "refused"]);
        assert!(store.user("a").expect("q").is_none());
        assert!(store.user("b").expect("q").is_some());
    }

    #[test]
    fn a_refused_line_stops_every_write_unless_keep_going() {
        let (_dir, store) = store();
        let lines = || {
            vec![
                user(1, "a", "{PLAIN}x"),
                Line {
                    number: 2,
                    user: None,
                    read: Read::Refuse(Refusal::Shape("bad")),
                },
            ]
        };
        let report = import(&store, lines(), &Options::default(), 0).expect("import");
        assert!(!report.written);
        assert!(store.user("a").expect("q").is_none());
    }

    #[test]
    fn existing_users_are_skipped_or_updated() {
        let (_dir, store) = store();
        store.add_user("a", "{PLAIN}old", 0).expect("add");
        let report = import(
            &store,
            vec![user(1, "a", "{PLAIN}new")],
            &Options::default(),
            0,
        )
        .expect("import");
        assert_eq!(outcomes(&report), ["skipped"]);
        let update = Options {
            update: true,
            ..Options::default()
        };
        let report = import(&store, vec![user(1, "a", "{PLAIN}new")], &update, 0).expect("import");
        assert_eq!(outcomes(&report), ["updated"]);
        assert_eq!(
            store.user("a").expect("q").expect("a").password_hash,
            "{PLAIN}new"
        );
        let report = import(&store, vec![user(1, "a", "{PLAIN}new")], &update, 0).expect("import");
        assert!(matches!(
            report.lines[0].outcome,
            Outcome::Skipped(Skip::Unchanged)
        ));
    }
}
