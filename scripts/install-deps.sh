#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing mailpass needs; does nothing when all is there.
# Used by `make test`, `make demo` and .ci/run, so the list lives here once.
#   build: a C compiler (bundled SQLite) and libsodium (argon2id)
#   tests: Dovecot 2.3 with IMAP, POP3, submission, ManageSieve and Lua; Postfix and swaks for SMTP AUTH
#          through Postfix's Dovecot SASL client; debootstrap for the Dovecot 2.4 chroot; nftables to check the
#          firewall export; python3 for the demo's IMAP client and the tests' smtplib client; fail2ban for
#          fail2ban-regex, which checks the shipped filter against real Dovecot logs (its service is not started);
#          systemd for systemd-analyze, which checks the shipped units; whois for mkpasswd (yescrypt hashes as
#          Debian's /etc/shadow holds them, for the imported-hash tests); strace to trace a login in a test;
#          groff-base for groff, which checks that the generated man pages render without a warning; nginx for
#          `nginx -t`, which checks the shipped proxy sample (its service is not started); chromium and
#          chromium-driver, the browser the web page's browser tests drive
#   package: dpkg-dev for dpkg-shlibdeps (the .deb's Depends), lintian to check the .deb (`make deb`, tests/deb.rs)
#
# No daemon is started and no system mail setup is made: the tests and the demo run their own Dovecots and
# Postfixes on loopback high ports. Postfix is preseeded with "No configuration" (no /etc/postfix/main.cf),
# and while apt runs a policy-rc.d that exits 101 keeps every packaged service from starting (an existing
# policy-rc.d is left as it is; one made here is removed again).
set -euo pipefail

packages=(gcc libc6-dev libcrypt-dev make pkg-config ca-certificates libsodium-dev
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-managesieved dovecot-auth-lua
  postfix swaks fail2ban
  debootstrap nftables python3 systemd whois strace groff-base nginx chromium chromium-driver
  dpkg-dev lintian)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}; run as root (or: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2

# invoke-rc.d and deb-systemd-invoke ask /usr/sbin/policy-rc.d whether a service may start; 101 means no.
policy=/usr/sbin/policy-rc.d
made_policy=
remove_policy() {
  if [ -n "$made_policy" ]; then
    rm -f -- "$policy"
  fi
}
trap remove_policy EXIT
trap 'exit 130' INT TERM HUP
if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
  # noclobber: never replace one that appeared meanwhile.
  if (set -C; printf '#!/bin/sh\n# made by mailpass scripts/install-deps.sh while it runs apt-get\nexit 101\n' \
    >"$policy") 2>/dev/null; then
    made_policy=1
    chmod 755 "$policy"
  fi
fi

# Postfix's postinst writes /etc/postfix/main.cf (and sets up system mail) unless told "No configuration".
for p in "${missing[@]}"; do
  if [ "$p" = postfix ]; then
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  fi
done

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-remove: never take anything away to make room (Postfix would replace another mail server, exim4 say);
# apt stops and says what it would have removed instead.
apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}"

# The daemons these packages bring are for the tests' own instances only: one that was not on this machine
# before must not start at the next boot either (a stock Dovecot on the mail ports, fail2ban's default jails,
# nginx's default site on port 80). Their boot links are removed; `systemctl enable NAME` undoes it.
for pair in dovecot-core:dovecot postfix:postfix fail2ban:fail2ban nginx:nginx; do
  package=${pair%%:*}
  unit=${pair#*:}
  case " ${missing[*]} " in
    *" $package "*)
      if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper disable "$unit.service" >/dev/null 2>&1 || true
      fi
      if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$unit" ]; then
        update-rc.d "$unit" disable >/dev/null 2>&1 || true
      fi
      echo "install-deps: $unit will not start at boot (installed for the tests; systemctl enable $unit undoes it)" >&2
      ;;
  esac
done
