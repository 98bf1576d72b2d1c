#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing mailpass needs; does nothing when all is there.
# Used by `make test`, `make demo` and .ci/run, so the list lives here once.
#   build: a C compiler (bundled SQLite) and libsodium (argon2id)
#   tests: Dovecot 2.3 with IMAP, POP3, submission and Lua; debootstrap for the Dovecot 2.4 chroot; nftables
#          to check the firewall export; python3 for the demo's IMAP client
set -euo pipefail

packages=(gcc libc6-dev make pkg-config ca-certificates libsodium-dev
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-auth-lua
  debootstrap nftables python3)

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
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Installing dovecot-core may start the packaged Dovecot; the tests and the demo run their own on high ports.
if [ -f /run/dovecot/master.pid ]; then
  doveadm stop >/dev/null 2>&1 || true
fi
