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

/// contrib/nginx/mailpass-web.conf passes `nginx -t` inside a minimal nginx.conf of its own, in a temp dir (no
/// service is started, nothing of the host's nginx is read or written): the certificate paths point at a
/// throwaway self-signed pair and the ports at free loopback ones, since `nginx -t` binds what it listens on.
#[test]
fn the_nginx_sample_passes_nginx_t() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample =
        std::fs::read_to_string(root.join("contrib/nginx/mailpass-web.conf")).expect("sample");
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIPPED: nginx is not installed (scripts/install-deps.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=mail.example.org", "-keyout"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The sample's own paths and ports, exactly as written, before they are replaced.
    for expected in [
        "listen 443 ssl;",
        "listen [::]:443 ssl;",
        "listen 80;",
        "listen [::]:80;",
        "proxy_pass http://127.0.0.1:8425;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header Host $host;",
        "trusted_proxies = [\"127.0.0.1\"]",
    ] {
        assert!(sample.contains(expected), "the sample lacks {expected}");
    }
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    };
    let (https, http) = (free_port(), free_port());
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut site = String::new();
    for line in sample.lines() {
        let line = line
            .replace(
                "/etc/letsencrypt/live/mail.example.org/fullchain.pem",
                &d.join("cert.pem").display().to_string(),
            )
            .replace(
                "/etc/letsencrypt/live/mail.example.org/privkey.pem",
                &d.join("key.pem").display().to_string(),
            );
        let line = match line.trim() {
            "listen 443 ssl;" => format!("listen 127.0.0.1:{https} ssl;"),
            "listen 80;" => format!("listen 127.0.0.1:{http};"),
            "listen [::]:443 ssl;" if ipv6 => format!("listen [::1]:{https} ssl;"),
            "listen [::]:80;" if ipv6 => format!("listen [::1]:{http};"),
            "listen [::]:443 ssl;" | "listen [::]:80;" => String::new(),
            _ => line,
        };
        site.push_str(&line);
        site.push('\n');
    }
    std::fs::write(d.join("site.conf"), site).expect("write site");
    let p = d.display();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "pid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  \
             uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  include {p}/site.conf;\n}}\n"
        ),
    )
    .expect("write nginx.conf");
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-e")
        .arg(d.join("error.log"))
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .output()
        .expect("run nginx -t");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nginx -t: {said}");
    assert!(said.contains("test is successful"), "{said}");
    assert!(!said.contains("[warn]"), "nginx -t warns: {said}");
}
