//! The Debian package (`make deb`, scripts/make-deb.sh): lintian finds no error in it, it holds the files and
//! control fields the README lists, and it installs, upgrades over itself, is removed and purged in throwaway
//! copies of a Debian 13 chroot with Dovecot and a Debian 12 minbase chroot, never on the host. The chroots are
//! the cached ones under /var/cache/mailpass-test/ (tests/support/debian-chroot.sh builds them once); each test
//! copies one into a temp dir beside it and removes the copy at the end, so the host and the caches are left as
//! they were. Needs root (chroot), like the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-1");
const CACHE: &str = "/var/cache/mailpass-test";
const CHROOT_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/debian-chroot.sh"
);

/// The package, built once for every test here by `make deb` (a release build, then scripts/make-deb.sh);
/// `None`, with the reason printed, only where dpkg-deb is missing (never on Debian).
fn package() -> Option<&'static Path> {
    static DEB: OnceLock<Option<PathBuf>> = OnceLock::new();
    DEB.get_or_init(|| {
        if Command::new("dpkg-deb")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIPPED: dpkg-deb is not installed, so no Debian package can be built here");
            return None;
        }
        let root = env!("CARGO_MANIFEST_DIR");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = bounded(
            Command::new("make")
                .args(["-C", root, "deb"])
                .arg(format!("CARGO={cargo}")),
            1200,
        );
        assert!(out.status.success(), "make deb failed:\n{}", text(&out));
        let arch = stdout(bounded(
            Command::new("dpkg").arg("--print-architecture"),
            10,
        ));
        let deb = Path::new(root).join(format!(
            "target/debian/mailpass_{VERSION}_{}.deb",
            arch.trim()
        ));
        assert!(
            deb.is_file(),
            "make deb did not write {}:\n{}",
            deb.display(),
            text(&out)
        );
        Some(deb)
    })
    .as_deref()
}

/// `cmd` under `timeout`, so that nothing here can hang the test run: killed after `secs`. The environment and
/// the directory set on `cmd` are passed on (`timeout` runs the program with its own environment).
fn bounded(cmd: &mut Command, secs: u32) -> Output {
    let mut wrapped = Command::new("timeout");
    wrapped
        .args(["--kill-after=10", &secs.to_string()])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let out = wrapped
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_ne!(
        out.status.code(),
        Some(124),
        "{cmd:?} did not finish within {secs} s:\n{}",
        text(&out)
    );
    out
}

/// The environment of a command run in a chroot: only these, nothing of the test's own.
const CLEAN_ENV: [(&str, &str); 4] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("LC_ALL", "C.UTF-8"),
    ("DEBIAN_FRONTEND", "noninteractive"),
];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lintian_reports_no_errors() {
    let Some(deb) = package() else { return };
    let out = bounded(Command::new("lintian").args(["--no-cfg"]).arg(deb), 300);
    let said = text(&out);
    // Warnings and infos are shown, not held against the package; an error fails it.
    println!("lintian {}:\n{said}", deb.display());
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "lintian did not run (apt-get install lintian, or scripts/install-deps.sh): {said}"
    );
}

#[test]
fn the_control_fields_name_the_version_the_architecture_and_the_libraries() {
    let Some(deb) = package() else { return };
    let info = stdout(bounded(Command::new("dpkg-deb").arg("--info").arg(deb), 30));
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim_start().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
            .to_string()
    };
    let arch = stdout(bounded(
        Command::new("dpkg").arg("--print-architecture"),
        10,
    ));
    assert_eq!(field("Package"), "mailpass");
    assert_eq!(field("Version"), VERSION);
    assert_eq!(field("Architecture"), arch.trim());
    assert_eq!(field("Section"), "mail");
    assert_eq!(field("Priority"), "optional");
    assert_eq!(field("Recommends"), "dovecot-core");
    assert_eq!(field("Suggests"), "dovecot-auth-lua, nftables, fail2ban");
    assert!(field("Maintainer").contains('@'), "{info}");
    assert!(!field("Description").is_empty(), "{info}");
    let depends = field("Depends");
    // adduser for the postinst's addgroup; the rest is what dpkg-shlibdeps found the binary linked against.
    for lib in [
        "adduser",
        "libc6 (>= ",
        "libcrypt1 (>= ",
        "libgcc-s1 (>= ",
        "libsodium23 (>= ",
    ] {
        assert!(depends.contains(lib), "Depends lacks {lib}: {depends}");
    }
    for script in ["postinst", "prerm", "postrm", "conffiles", "md5sums"] {
        assert!(
            info.contains(&format!(" {script} ")),
            "no {script} in:\n{info}"
        );
    }
}

#[test]
fn the_package_holds_the_binary_the_shipped_files_the_docs_and_the_example_config() {
    let Some(deb) = package() else { return };
    let listing = stdout(bounded(
        Command::new("dpkg-deb").arg("--contents").arg(deb),
        30,
    ));
    let mut expected: Vec<String> = [
        "/usr/bin/mailpass",
        "/usr/share/mailpass/fail2ban/filter.d/mailpass.conf",
        "/usr/share/mailpass/fail2ban/jail.d/mailpass.conf",
        "/usr/share/mailpass/nginx/mailpass-web.conf",
        "/usr/share/bash-completion/completions/mailpass",
        "/usr/share/zsh/vendor-completions/_mailpass",
        "/usr/share/fish/vendor_completions.d/mailpass.fish",
        "/etc/mailpass/mailpass.toml",
        "/usr/share/doc/mailpass/copyright",
        "/usr/share/doc/mailpass/changelog.Debian.gz",
    ]
    .map(String::from)
    .to_vec();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    for f in names("dovecot-conf") {
        expected.push(format!("/usr/share/mailpass/dovecot-conf/{f}"));
    }
    for f in names("contrib/systemd") {
        expected.push(format!("/usr/lib/systemd/system/{f}"));
    }
    for f in names("target/release/man") {
        expected.push(format!("/usr/share/man/man1/{f}.gz"));
    }
    for path in &expected {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(".{path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        assert!(line.contains(" root/root "), "{line}");
        let mode = if path == "/usr/bin/mailpass" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert!(line.starts_with(mode), "{path}: {line}");
    }

    // The files themselves.
    let dir = tempfile::tempdir().expect("temp dir");
    let x = dir.path();
    stdout(bounded(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(x),
        60,
    ));
    stdout(bounded(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(deb)
            .arg(x.join("DEBIAN")),
        60,
    ));
    let read = |p: &str| std::fs::read_to_string(x.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));

    let sections = stdout(bounded(
        Command::new("readelf")
            .arg("-S")
            .arg(x.join("usr/bin/mailpass")),
        30,
    ));
    assert!(
        !sections.contains(".symtab"),
        "/usr/bin/mailpass is not stripped"
    );

    for path in expected
        .iter()
        .filter(|p| p.contains("/dovecot-conf/") || p.contains("/systemd/"))
    {
        let file = read(&path[1..]);
        assert!(
            !file.contains("/usr/local/bin/mailpass"),
            "{path} still names /usr/local/bin/mailpass"
        );
    }
    assert!(
        read("usr/share/mailpass/dovecot-conf/mailpass.lua")
            .contains("bin = \"/usr/bin/mailpass\"")
    );
    assert!(
        read("usr/lib/systemd/system/mailpass-prune.service")
            .contains("ExecStart=/usr/bin/mailpass ban prune")
    );
    assert!(
        read("usr/lib/systemd/system/mailpass-web.service")
            .contains("ExecStart=/usr/bin/mailpass web")
    );

    // The example config: the README's block with every key commented out, so it sets nothing.
    let config = read("etc/mailpass/mailpass.toml");
    for key in [
        "timeout = 15",
        "memory_kib = 19456",
        "home = \"/var/vmail/%d/%n\"",
        "retention = 604800",
    ] {
        assert!(
            config.contains(&format!("\n#{key}\n")),
            "no commented {key} in:\n{config}"
        );
    }
    assert!(
        config
            .lines()
            .all(|l| l.is_empty() || l.starts_with('#') || l.starts_with('[')),
        "a key is set in the example config:\n{config}"
    );
    let check = bounded(
        Command::new(env!("CARGO_BIN_EXE_mailpass"))
            .args(["config", "check", "--config"])
            .arg(x.join("etc/mailpass/mailpass.toml"))
            .env("MAILPASS_DB", x.join("no.db")),
        30,
    );
    assert!(
        text(&check).contains("every key known, every value valid"),
        "{}",
        text(&check)
    );
    assert_eq!(read("DEBIAN/conffiles"), "/etc/mailpass/mailpass.toml\n");

    let copyright = read("usr/share/doc/mailpass/copyright");
    assert!(
        copyright.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        )
    );
    assert!(
        copyright.contains("License: Expat or Apache-2.0"),
        "{copyright}"
    );
    let changelog = stdout(bounded(
        Command::new("gzip")
            .arg("-dc")
            .arg(x.join("usr/share/doc/mailpass/changelog.Debian.gz")),
        10,
    ));
    assert!(
        changelog.starts_with(&format!("mailpass ({VERSION}) ")),
        "{changelog}"
    );
}

/// A throwaway copy of a cached chroot, removed on drop (also when the test fails).
struct Chroot {
    dir: tempfile::TempDir,
}

impl Chroot {
    /// Builds or reuses /var/cache/mailpass-test/SUITE, then copies it into a temp dir beside it.
    fn copy_of(suite: &str) -> Chroot {
        let cached = format!("{CACHE}/{suite}");
        let out = bounded(Command::new(CHROOT_SCRIPT).args([suite, &cached]), 900);
        assert!(
            out.status.success(),
            "debian-chroot.sh {suite}: {}",
            text(&out)
        );
        remove_stale_copies();
        let dir = tempfile::Builder::new()
            .prefix(&format!(".deb-test.{suite}."))
            .tempdir_in(CACHE)
            .expect("temp dir in the cache");
        let root = dir.path().join("root");
        stdout(bounded(
            Command::new("cp")
                .args(["-a", "--reflink=auto", &cached])
                .arg(&root),
            300,
        ));
        // apt-get inside (for the dependencies the chroot lacks) resolves the mirror's name as the host does.
        std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).expect("resolv.conf");
        assert!(
            root.join("usr/sbin/policy-rc.d").exists(),
            "the chroot has no policy-rc.d"
        );
        Chroot { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Runs a shell script inside as root (or `user`, in its namesake group unless it says `user:group`), with
    /// a clean environment; the output, whatever the status.
    fn run_as(&self, user: Option<&str>, script: &str, secs: u32) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=10", &secs.to_string(), "chroot"]);
        match user {
            Some(spec) if spec.contains(':') => cmd.arg(format!("--userspec={spec}")),
            Some(user) => cmd.arg(format!("--userspec={user}:{user}")),
            None => &mut cmd,
        };
        cmd.arg(self.root())
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .envs(CLEAN_ENV);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run chroot: {e}"));
        assert_ne!(
            out.status.code(),
            Some(124),
            "in the chroot, {script}: not done within {secs} s\n{}",
            text(&out)
        );
        out
    }

    /// `run_as` root, which must succeed; its stdout and stderr.
    fn sh(&self, script: &str) -> String {
        let out = self.run_as(None, script, 120);
        assert!(
            out.status.success(),
            "in the chroot: {script}\n{}",
            text(&out)
        );
        text(&out)
    }

    fn has_user(&self, name: &str) -> bool {
        self.run_as(None, &format!("getent passwd {name}"), 10)
            .status
            .success()
    }
}

/// Copies left by a test run that was killed (a panicking test removes its own): any older than two hours. A
/// running test's copy is minutes old, so a parallel run's is never taken.
fn remove_stale_copies() {
    let Ok(entries) = std::fs::read_dir(CACHE) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 2 * 3600);
        if name.to_string_lossy().starts_with(".deb-test.") && old {
            // --one-file-system: nothing is mounted in a copy, and nothing mounted would be followed.
            let _ = bounded(
                Command::new("rm")
                    .arg("-rf")
                    .arg("--one-file-system")
                    .arg(entry.path()),
                300,
            );
        }
    }
}

/// The host's group `mailpass` and user `mailpass-web`, if any: the tests must leave them as they found them.
fn host_group() -> Vec<u8> {
    let mut found = bounded(Command::new("getent").args(["group", "mailpass"]), 10).stdout;
    found.extend(bounded(Command::new("getent").args(["passwd", "mailpass-web"]), 10).stdout);
    found
}

/// The install, upgrade, remove and purge of the package in a copy of the chroot of `suite`.
fn install_upgrade_remove_purge(suite: &str) {
    let Some(deb) = package() else { return };
    let host_before = host_group();
    let chroot = Chroot::copy_of(suite);
    std::fs::copy(deb, chroot.root().join("tmp/mailpass.deb")).expect("copy the package in");
    let dovecot = chroot.has_user("dovecot");

    // Install; the dependencies a minbase lacks (adduser, libsodium23) come from the mirror.
    let out = chroot.run_as(None, "dpkg -i /tmp/mailpass.deb", 120);
    let mut said = text(&out);
    if !out.status.success() {
        assert!(said.contains("dependency problems"), "dpkg -i: {said}");
        said += &chroot.sh(
            "apt-get update -qq && apt-get install -f -y -qq --no-install-recommends -o Dpkg::Use-Pty=0",
        );
    }
    println!("{suite}, installed:\n{said}");
    let status = chroot.sh("dpkg-query -W -f='${Status} ${Version}' mailpass");
    assert_eq!(status, format!("install ok installed {VERSION}"));
    let owner = if dovecot { "dovecot" } else { "root" };
    assert!(
        said.contains(&format!(
            "created /var/lib/mailpass ({owner}:mailpass, mode 2770)"
        )),
        "{said}"
    );
    assert!(said.contains("no database yet"), "{said}");
    assert!(
        said.contains("systemctl enable --now mailpass-nft.timer mailpass-prune.timer"),
        "{said}"
    );
    assert!(
        said.contains("systemctl enable --now mailpass-web.service"),
        "{said}"
    );

    let group = chroot.sh("getent group mailpass");
    assert!(group.starts_with("mailpass:x:"), "{group}");
    assert_eq!(
        group.trim().ends_with(":dovecot"),
        dovecot,
        "dovecot in the group: {group}"
    );
    assert_eq!(
        chroot.sh("stat -c '%U:%G %a' /var/lib/mailpass").trim(),
        format!("{owner}:mailpass 2770")
    );
    // The web page's user: a system user whose primary group is mailpass, without a home or a shell.
    let web = chroot.sh("getent passwd mailpass-web");
    let fields: Vec<&str> = web.trim().split(':').collect();
    let mailpass_gid = group.split(':').nth(2).unwrap_or_default();
    assert_eq!(fields.get(3), Some(&mailpass_gid), "{web} / {group}");
    assert_eq!(fields.get(5), Some(&"/nonexistent"), "{web}");
    assert!(
        fields.get(6).is_some_and(|s| s.ends_with("nologin")),
        "{web}"
    );
    assert!(!chroot.root().join("nonexistent").exists());
    assert!(
        chroot
            .sh("mailpass --version")
            .contains(env!("CARGO_PKG_VERSION"))
    );
    assert!(
        chroot
            .sh("mailpass config check")
            .contains("every key known, every value valid")
    );
    if chroot.run_as(None, "command -v man", 10).status.success() {
        assert_eq!(
            chroot.sh("man -w mailpass").trim(),
            "/usr/share/man/man1/mailpass.1.gz"
        );
    } else {
        assert!(
            chroot
                .root()
                .join("usr/share/man/man1/mailpass.1.gz")
                .is_file()
        );
    }

    // The README's quick start with the installed paths.
    chroot.sh("export MAILPASS_DB=/var/lib/mailpass/mailpass.db
         printf 'correct horse battery\\n' | mailpass user add alice@example.org --password-stdin");
    let out = chroot.run_as(
        None,
        "MAILPASS_DB=/var/lib/mailpass/mailpass.db mailpass app-password add alice@example.org \
         --name 'iPhone Mail' --services imap,smtp",
        60,
    );
    assert!(out.status.success(), "{}", text(&out));
    let app_password = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        app_password.len(),
        19,
        "not an app password: {app_password}"
    );
    // The directory the package made (group mailpass, 2770) is what doctor expects, not a warning.
    let doctor = chroot.run_as(
        None,
        "mailpass --db /var/lib/mailpass/mailpass.db doctor --json",
        60,
    );
    let checks: serde_json::Value =
        serde_json::from_slice(&doctor.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&doctor)));
    let check = |name: &str| {
        checks
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no {name} check: {checks}"))
            .clone()
    };
    assert_eq!(check("database.directory")["status"], "ok", "{checks}");
    // The database is the Dovecot auth user's where there is one (root's commands acted as that user), and
    // shared with the group through the setgid directory, -wal and -shm too.
    for file in ["mailpass.db", "mailpass.db-wal", "mailpass.db-shm"] {
        assert_eq!(
            chroot
                .sh(&format!("stat -c '%U:%G %a' /var/lib/mailpass/{file}"))
                .trim(),
            format!("{owner}:mailpass 660"),
            "{file}"
        );
    }
    let file = check("database.file");
    assert_eq!(file["status"], "ok", "{file}");
    assert!(
        file["message"]
            .as_str()
            .is_some_and(|m| m.contains("shared with the group mailpass")),
        "{file}"
    );
    // The web page's user reads and writes it through the group (an admin command takes the write lock).
    let out = chroot.run_as(
        Some("mailpass-web:mailpass"),
        "mailpass --db /var/lib/mailpass/mailpass.db user list",
        60,
    );
    assert!(out.status.success(), "as mailpass-web: {}", text(&out));
    assert!(text(&out).contains("alice@example.org"), "{}", text(&out));
    // The web page, as mailpass-web.service runs it: its user, the shared database, stopped by SIGTERM.
    let out = chroot.run_as(
        Some("mailpass-web:mailpass"),
        // `timeout` says 124 when it sent the signal: not the chroot's own timeout.
        "timeout -s TERM 3 mailpass web --listen 127.0.0.1:0; echo \"timeout said $?\"",
        30,
    );
    let said = text(&out);
    assert!(
        said.contains("mailpass web: listening on http://127.0.0.1:"),
        "{said}"
    );
    assert!(said.contains("mailpass web: stopped"), "{said}");
    assert!(
        said.contains("timeout said 124"),
        "it did not run until SIGTERM: {said}"
    );
    chroot.sh("printf '# kept across upgrades\\n' >> /etc/mailpass/mailpass.toml");
    let login_user = dovecot.then_some("dovecot");
    login(&chroot, login_user, &app_password, true);
    login(&chroot, login_user, "not-the-app-password", false);

    // A database from before mailpass shared it (0600, the owner's group), and a symlink beside it that the
    // upgrade must not follow to share what it points at.
    chroot.sh(&format!(
        "cd /var/lib/mailpass && chgrp {owner} mailpass.db mailpass.db-wal mailpass.db-shm \
         && chmod 0600 mailpass.db mailpass.db-wal mailpass.db-shm && ln -s /etc/shadow mailpass.db.link"
    ));
    let shadow = chroot.sh("stat -c '%U:%G %a' /etc/shadow");

    // Upgrade over itself: the database and the edited config survive; the database is shared with the group
    // and migrated (a no-op here).
    let said = chroot.sh("dpkg -i /tmp/mailpass.deb");
    println!("{suite}, upgraded over itself:\n{said}");
    assert!(said.contains("is on this version's schema"), "{said}");
    assert!(!said.contains("created /var/lib/mailpass"), "{said}");
    assert!(
        said.contains("shared with the group mailpass (mode 0660): /var/lib/mailpass/mailpass.db "),
        "{said}"
    );
    for file in ["mailpass.db", "mailpass.db-wal", "mailpass.db-shm"] {
        assert_eq!(
            chroot
                .sh(&format!("stat -c '%U:%G %a' /var/lib/mailpass/{file}"))
                .trim(),
            format!("{owner}:mailpass 660"),
            "{file}"
        );
    }
    assert_eq!(chroot.sh("stat -c '%U:%G %a' /etc/shadow"), shadow);
    chroot.sh("rm /var/lib/mailpass/mailpass.db.link");
    assert!(
        chroot
            .sh("cat /etc/mailpass/mailpass.toml")
            .ends_with("# kept across upgrades\n")
    );
    login(&chroot, login_user, &app_password, true);
    assert!(
        chroot
            .sh("mailpass user list")
            .contains("alice@example.org")
    );

    // Remove: the program goes, the database, the config and the group stay.
    chroot.sh("dpkg -r mailpass");
    let root = chroot.root();
    assert!(!root.join("usr/bin/mailpass").exists());
    assert!(
        root.join("var/lib/mailpass/mailpass.db").is_file(),
        "dpkg -r deleted the database"
    );
    assert!(
        root.join("etc/mailpass/mailpass.toml").is_file(),
        "dpkg -r deleted the config"
    );
    assert!(chroot.sh("getent group mailpass").starts_with("mailpass:"));
    assert!(chroot.has_user("mailpass-web"), "dpkg -r deleted the user");
    assert!(
        chroot
            .sh("dpkg-query -W -f='${Status}' mailpass")
            .contains("config-files")
    );

    // Purge: what the package made is gone.
    println!("{suite}, purged:\n{}", chroot.sh("dpkg -P mailpass"));
    assert!(
        !root.join("var/lib/mailpass").exists(),
        "dpkg -P left /var/lib/mailpass"
    );
    assert!(
        !root.join("etc/mailpass").exists(),
        "dpkg -P left /etc/mailpass"
    );
    assert!(
        !chroot
            .run_as(None, "getent group mailpass", 10)
            .status
            .success(),
        "dpkg -P left the group"
    );
    assert!(!chroot.has_user("mailpass-web"), "dpkg -P left the user");
    if dovecot {
        assert!(chroot.has_user("dovecot"));
    }
    assert!(
        !chroot
            .run_as(None, "dpkg-query -W mailpass 2>/dev/null | grep -q .", 10)
            .status
            .success()
    );

    drop(chroot);
    assert_eq!(
        host_before,
        host_group(),
        "the host's group mailpass or user mailpass-web changed"
    );
}

/// One IMAP login through `mailpass checkpassword`, as Dovecot runs it (the README's "The checkpassword
/// protocol"): the request on fd 3 from a file, the reply on fd 4, run as the Dovecot auth user if there is one.
fn login(chroot: &Chroot, user: Option<&str>, password: &str, ok: bool) {
    let script = format!(
        "set -e; d=$(mktemp -d); cd \"$d\"
         printf 'alice@example.org\\0%s\\0%s\\0' '{password}' \"$(date +%s)\" > request
         status=0
         SERVICE=imap TCPREMOTEIP=192.0.2.7 MAILPASS_DB=/var/lib/mailpass/mailpass.db \
           mailpass checkpassword 3<request 4>reply || status=$?
         echo \"status=$status\"; cat reply; cd /; rm -rf \"$d\""
    );
    let out = chroot.run_as(user, &script, 60);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    if ok {
        assert!(said.contains("status=0"), "the login failed: {said}");
        assert!(said.contains("user=alice@example.org"), "{said}");
        assert!(said.contains("result=ok reason=app_password"), "{said}");
    } else {
        assert!(
            said.contains("status=1"),
            "a wrong password was not refused: {said}"
        );
        assert!(said.contains("result=fail reason=wrong_password"), "{said}");
    }
}

#[test]
fn installs_upgrades_removes_and_purges_on_debian_13_with_dovecot() {
    install_upgrade_remove_purge("trixie");
}

#[test]
fn installs_upgrades_removes_and_purges_on_debian_12_minbase() {
    install_upgrade_remove_purge("bookworm");
}
