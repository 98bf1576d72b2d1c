//! The systemd units in contrib/systemd/: each passes `systemd-analyze verify` (with ExecStart pointing at the
//! built binary, as `make install` would put it in place), and their exposure under `systemd-analyze security`
//! stays low (the README quotes the scores).

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &[&str] = &[
    "mailpass-nft.service",
    "mailpass-nft.timer",
    "mailpass-prune.service",
    "mailpass-prune.timer",
    "mailpass-web.service",
];

/// Copies of the shipped units in a temp dir, with the installed binary's path replaced by the built one.
fn units_in(dir: &Path) -> Vec<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
    UNITS
        .iter()
        .map(|unit| {
            let text = std::fs::read_to_string(source.join(unit)).expect("unit file");
            let text = text.replace("/usr/local/bin/mailpass", env!("CARGO_BIN_EXE_mailpass"));
            let path = dir.join(unit);
            std::fs::write(&path, text).expect("write unit");
            path
        })
        .collect()
}

#[test]
fn every_shipped_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units_in(dir.path()))
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("mailpass"),
        "systemd-analyze has something to say about the units: {said}"
    );
}

#[test]
fn the_services_expose_little() {
    let dir = tempfile::tempdir().expect("temp dir");
    units_in(dir.path());
    for (service, most) in [
        ("mailpass-nft.service", 3.0),
        ("mailpass-prune.service", 1.0),
        ("mailpass-web.service", 1.5),
    ] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(dir.path().join(service))
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in: {text}"));
        assert!(
            score <= most,
            "{service}: exposure {score}, more than {most}: {text}"
        );
    }
}

/// The web page's unit runs as the user and group the Debian package makes for it (its postinst creates
/// both), not as a dynamic user: the group is how it shares the database with Dovecot's auth user.
#[test]
fn the_web_unit_runs_as_the_packaged_user_in_the_shared_group() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("contrib/systemd/mailpass-web.service"))
        .expect("unit file");
    let lines: Vec<&str> = unit.lines().collect();
    for line in [
        "User=mailpass-web",
        "Group=mailpass",
        "ExecStart=/usr/local/bin/mailpass web",
        "ReadWritePaths=/var/lib/mailpass",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&line), "mailpass-web.service lacks {line}");
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("DynamicUser=")),
        "{unit}"
    );
    let postinst = std::fs::read_to_string(root.join("scripts/debian/postinst")).expect("postinst");
    assert!(
        postinst.contains("--ingroup mailpass") && postinst.contains("mailpass-web"),
        "the postinst does not make the user mailpass-web in the group mailpass"
    );
}
