//! Time synchronisation: a TOTP code is accepted only within a step or so of the server's clock, so a clock
//! that drifts a minute refuses every code of every user at once. Asked of systemd (`timedatectl`, which
//! reports the kernel's "synchronised" flag whatever daemon keeps it), else chrony, else ntpsec/ntpd; when none
//! can answer, doctor says it cannot tell rather than guess.

use std::ffi::OsStr;
use std::path::Path;

use super::{Check, find_program, run_program};

const NAME: &str = "clock.sync";

const FIX: &str =
    "run a time service: `timedatectl set-ntp true` with systemd-timesyncd, or install chrony";

pub(super) fn checks() -> Vec<Check> {
    vec![sync_check()]
}

fn sync_check() -> Check {
    // timedatectl needs systemd as the init system (it asks systemd-timedated over D-Bus).
    if Path::new("/run/systemd/system").is_dir()
        && let Some(timedatectl) = find_program(OsStr::new("timedatectl"))
        && let Ok(ran) = run_program(
            &timedatectl,
            &[
                OsStr::new("show"),
                OsStr::new("-p"),
                OsStr::new("NTPSynchronized"),
                OsStr::new("--value"),
            ],
        )
        && ran.success
    {
        return match ran.stdout.trim() {
            "yes" => Check::ok(NAME, "the clock is synchronised (timedatectl)"),
            _ => Check::fail(
                NAME,
                "the clock is not synchronised (timedatectl): once it drifts, every TOTP code is refused",
                FIX,
            ),
        };
    }
    if let Some(chronyc) = find_program(OsStr::new("chronyc")) {
        match run_program(&chronyc, &[OsStr::new("tracking")]) {
            Ok(ran) if ran.success => {
                let leap = ran
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("Leap status"))
                    .map(|l| l.trim_start_matches([' ', ':']).trim().to_string())
                    .unwrap_or_default();
                return if leap == "Normal" {
                    Check::ok(NAME, "the clock is synchronised (chronyc tracking)")
                } else {
                    Check::fail(
                        NAME,
                        format!(
                            "chrony is not synchronised (leap status: {leap}): once the clock drifts, every \
                             TOTP code is refused"
                        ),
                        "check `chronyc sources`: chrony needs a reachable time server",
                    )
                };
            }
            Ok(ran) => {
                return Check::warn(
                    NAME,
                    format!("cannot tell: chronyc cannot ask chronyd ({})", ran.reason()),
                    "start chronyd (systemctl enable --now chrony)",
                );
            }
            Err(_) => {}
        }
    }
    if let Some(ntpq) = find_program(OsStr::new("ntpq"))
        && let Ok(ran) = run_program(&ntpq, &[OsStr::new("-pn")])
        && ran.success
    {
        // The peer ntpd synchronises to is marked with `*`.
        return if ran.stdout.lines().any(|l| l.starts_with('*')) {
            Check::ok(NAME, "the clock is synchronised (ntpq -p)")
        } else {
            Check::fail(
                NAME,
                "ntpd has no peer to synchronise to (ntpq -p): once the clock drifts, every TOTP code is \
                 refused",
                "check ntpd's servers and that UDP port 123 is reachable",
            )
        };
    }
    Check::warn(
        NAME,
        "cannot tell whether the clock is synchronised (systemd is not running, and there is no chronyc or ntpq): TOTP codes fail \
         for everyone once it drifts",
        "make sure a time service keeps this machine's clock (systemd-timesyncd, chrony or ntpsec)",
    )
}
