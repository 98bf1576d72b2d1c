#!/usr/bin/env bash
# make-deb.sh: builds target/debian/mailpass_<version>_<arch>.deb from what `make build` made (the stripped
# binary, the man pages, the completions) and the shipped files in the tree. `make deb` runs `make build` first,
# then this. Plain dpkg-deb from a staged tree, no cargo-deb (CI would need `cargo install` for it); no root
# needed: `--root-owner-group` makes every file root's in the archive.
#
# What goes where (the README's "Debian package" says why):
#   /usr/bin/mailpass                                  stripped
#   /usr/share/mailpass/dovecot-conf/*                 /usr/local/bin/mailpass rewritten to /usr/bin/mailpass
#   /usr/share/mailpass/fail2ban/{filter.d,jail.d}/mailpass.conf
#   /usr/share/mailpass/nginx/mailpass-web.conf        the proxy sample for the web page
#   /usr/lib/systemd/system/mailpass-*.{service,timer} paths rewritten the same way; not enabled
#   /usr/share/man/man1/*.1.gz, bash/zsh/fish completions
#   /etc/mailpass/mailpass.toml                        conffile: the README's Configuration block, keys commented
#   /usr/share/doc/mailpass/{copyright,changelog.Debian.gz}
#   DEBIAN/{control,conffiles,md5sums}, and postinst, prerm, postrm from scripts/debian/
#
# Environment: MAILPASS_DEB_MAINTAINER (the Maintainer field), MAILPASS_DEB_REVISION (Debian revision, 1),
# SOURCE_DATE_EPOCH (file times and the changelog date; default: the last commit's time, for reproducible output).
set -euo pipefail
umask 022

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
GEN=target/release
OUT=target/debian
MAINTAINER=${MAILPASS_DEB_MAINTAINER:-mailpass maintainers <mailpass@example.org>}
REVISION=${MAILPASS_DEB_REVISION:-1}

die() { printf 'make-deb: %s\n' "$*" >&2; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps dpkg strip gzip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (apt-get install dpkg-dev binutils gzip)"
done
[ -x "$GEN/mailpass" ] || die "$GEN/mailpass is missing: run 'make build' (or 'make deb') first"
[ -d "$GEN/man" ] && [ -d "$GEN/completions" ] || die "$GEN/man or $GEN/completions is missing: run 'make build'"

# The [package] version of Cargo.toml.
UPSTREAM=$(awk '/^\[/ { in_pkg = ($0 == "[package]") } in_pkg && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' \
  Cargo.toml)
[ -n "$UPSTREAM" ] || die "no version in Cargo.toml's [package]"
VERSION=$UPSTREAM-$REVISION
ARCH=$(dpkg --print-architecture)
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$EPOCH

mkdir -p "$OUT"
WORK=$(mktemp -d "$ROOT/$OUT/.build.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
STAGE=$WORK/root
mkdir -m 0755 "$STAGE"

# The installed paths: the shipped files name make install's default prefix.
rewrite() { sed 's|/usr/local/bin/mailpass|/usr/bin/mailpass|g' "$1"; }
put() { # put MODE SRC DEST: a copy of SRC (or stdin when SRC is -) at $STAGE/DEST
  install -d -m 0755 "$STAGE/$(dirname "$3")"
  if [ "$2" = - ]; then cat >"$STAGE/$3"; else cat -- "$2" >"$STAGE/$3"; fi
  chmod "$1" "$STAGE/$3"
}

# The binary, stripped as Debian ships binaries (lintian: no symbols, no .comment/.note sections).
put 0755 "$GEN/mailpass" usr/bin/mailpass
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/mailpass"

for f in dovecot-conf/*; do
  [ -f "$f" ] && rewrite "$f" | put 0644 - "usr/share/mailpass/dovecot-conf/${f##*/}"
done
for f in contrib/fail2ban/*/*; do
  put 0644 "$f" "usr/share/mailpass/fail2ban/${f#contrib/fail2ban/}"
done
for f in contrib/nginx/*; do
  put 0644 "$f" "usr/share/mailpass/nginx/${f##*/}"
done
for f in contrib/systemd/*; do
  rewrite "$f" | put 0644 - "usr/lib/systemd/system/${f##*/}"
done
for f in "$GEN"/man/*.1; do
  gzip -9n <"$f" | put 0644 - "usr/share/man/man1/${f##*/}.gz"
done
put 0644 "$GEN/completions/mailpass.bash" usr/share/bash-completion/completions/mailpass
put 0644 "$GEN/completions/_mailpass" usr/share/zsh/vendor-completions/_mailpass
put 0644 "$GEN/completions/mailpass.fish" usr/share/fish/vendor_completions.d/mailpass.fish

# The example config: the README's Configuration block (every key with its default and its comment), each key
# commented out, so that the file changes nothing until the admin uncomments a line.
{
  printf '# /etc/mailpass/mailpass.toml: mailpass reads this file by default (--config or MAILPASS_CONFIG for another).\n'
  printf '# Every key is optional; the commented values are the defaults. Uncomment a key under its [section] to\n'
  printf '# change it, then run `mailpass config check`. The README'"'"'s "Configuration" says more.\n\n'
  awk '/^`\/etc\/mailpass\/mailpass.toml` \(every key optional/ { want = 1; next }
       want && /^```toml$/ { inside = 1; next }
       inside && /^```$/ { exit }
       inside && /^[a-z_][a-z0-9_]* = / { print "#" $0; next }
       inside { print }' README.md
} | put 0644 - etc/mailpass/mailpass.toml
grep -q '^#timeout = ' "$STAGE/etc/mailpass/mailpass.toml" \
  || die "README.md's Configuration block was not found (the example config would be empty)"

put 0644 scripts/debian/copyright usr/share/doc/mailpass/copyright
{
  printf 'mailpass (%s) unstable; urgency=medium\n\n' "$VERSION"
  printf '  * Built from the mailpass source tree (%s) with `make deb`.\n\n' \
    "$(git describe --always --dirty 2>/dev/null || echo 'no git')"
  printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$EPOCH")"
} | gzip -9n | put 0644 - usr/share/doc/mailpass/changelog.Debian.gz

# Control files.
install -d -m 0755 "$STAGE/DEBIAN"
install -m 0755 scripts/debian/postinst scripts/debian/prerm scripts/debian/postrm "$STAGE/DEBIAN/"
printf '/etc/mailpass/mailpass.toml\n' >"$STAGE/DEBIAN/conffiles"

# dpkg-shlibdeps reads debian/control to know the package: a stub beside the staged tree is enough.
mkdir -p "$WORK/debian"
printf 'Source: mailpass\n\nPackage: mailpass\nArchitecture: any\n' >"$WORK/debian/control"
SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O -e"root/usr/bin/mailpass" 2>"$WORK/shlibdeps.err") \
  || die "dpkg-shlibdeps failed: $(cat "$WORK/shlibdeps.err")"
DEPENDS=${SHLIBS#shlibs:Depends=}
[ -n "$DEPENDS" ] && [ "$DEPENDS" != "$SHLIBS" ] || die "dpkg-shlibdeps printed no Depends: $SHLIBS"

# What dpkg-gencontrol would count: every file's size rounded up to KiB, and one KiB per other entry.
SIZE=$(cd "$STAGE" && find . -path ./DEBIAN -prune -o ! -path . -printf '%y %s\n' \
  | awk '{ n += ($1 == "f") ? int(($2 + 1023) / 1024) : 1 } END { print n }')

cat >"$STAGE/DEBIAN/control" <<EOF
Package: mailpass
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: adduser, $DEPENDS
Recommends: dovecot-core
Suggests: dovecot-auth-lua, nftables, fail2ban
Section: mail
Priority: optional
Description: app passwords and TOTP for Dovecot without locking users out
 mailpass is a helper that Dovecot runs for each login (as its checkpassword
 program on Dovecot 2.3, or from a Lua passdb on 2.3 and 2.4), and an admin
 command line over one SQLite database in /var/lib/mailpass.
 .
 A user turns on two-factor authentication (TOTP) and gives each mail app
 its own random, scoped, revocable app password; a client that still sends
 the main password is told to use one. mailpass records the true outcome of
 every login, so that its ban policy (and fail2ban, nftables) can tell a
 stale password from an attack.
 .
 The package ships the Dovecot configuration snippets and the Lua script in
 /usr/share/mailpass, a fail2ban filter and jail, an nginx sample for the
 self-service web page, systemd timers to export bans to nftables and prune
 the failure log, and a systemd service for the web page (none enabled).
EOF

# md5sums of every file but the conffile (dpkg tracks conffiles' sums itself), as dh_md5sums writes it.
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/md5sums"

# Reproducible: every entry gets the same time, not the time of this run.
find "$STAGE" -exec touch -h -d "@$EPOCH" {} +

DEB=$OUT/mailpass_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$WORK/package.deb" >/dev/null
mv -f -- "$WORK/package.deb" "$DEB"
echo "make-deb: $ROOT/$DEB"
