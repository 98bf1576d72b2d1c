#!/bin/sh
# debian-chroot.sh SUITE [DIR]: make sure DIR holds a Debian minbase chroot of SUITE for the tests. Must run as
# root (debootstrap, chroot). Suites:
#   trixie    Debian 13 with Dovecot 2.4, its Lua auth module and ManageSieve, for the end-to-end tests of the
#             Lua route (DIR defaults to /var/cache/mailpass-test/trixie; tests/support/dovecot24-chroot.sh);
#   bookworm  Debian 12, plain minbase, where tests/deb.rs installs the .deb (/var/cache/mailpass-test/bookworm).
#
# - A healthy tree (marker file present, its root mode 0755, and for trixie: `dovecot --version` inside says
#   2.4, the Lua auth module and the ManageSieve programs exist; for bookworm: dpkg runs inside and
#   /etc/debian_version says 12) is reused at once, without taking the lock. A tree that fails the check is
#   rebuilt.
# - Otherwise, under `flock DIR.lock` (parallel callers wait for one build), the tree is built with debootstrap
#   into a temp dir next to DIR and renamed into place; a broken old tree is moved aside and removed.
# - No daemon starts inside: debootstrap installs the packages behind a policy-rc.d that exits 101, and this
#   script leaves such a policy-rc.d in the tree for any later apt run.
# - The chroot needs no /proc or /dev mounts. debootstrap mounts /proc and /sys inside while it builds; any
#   mount left under a tree is unmounted before it is removed, and removal uses `rm -rf --one-file-system`.
#
# Exit 0 when the tree is ready; non-zero, with one line on stderr saying why, otherwise.
# Environment: MAILPASS_DEBIAN_MIRROR (default http://deb.debian.org/debian), MAILPASS_CHROOT_ATTEMPTS (3),
# MAILPASS_CHROOT_LOCK_WAIT (seconds to wait for another caller's build, default 1800).

set -u

SUITE=${1:-}
DIR=${2:-/var/cache/mailpass-test/$SUITE}
MIRROR=${MAILPASS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ATTEMPTS=${MAILPASS_CHROOT_ATTEMPTS:-3}
LOCK_WAIT=${MAILPASS_CHROOT_LOCK_WAIT:-1800}
MARKER=.mailpass-chroot-ok
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { printf 'debian-chroot: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case "$SUITE" in
  trixie)
    WHAT="Debian 13 (trixie) with Dovecot 2.4"
    INCLUDE=--include=dovecot-core,dovecot-imapd,dovecot-pop3d,dovecot-submissiond,dovecot-managesieved,dovecot-auth-lua
    ;;
  bookworm)
    WHAT="Debian 12 (bookworm) minbase"
    INCLUDE=
    ;;
  *) die "usage: debian-chroot.sh trixie|bookworm [DIR]" ;;
esac

# Strip trailing slashes so that DIR.lock and the temp dir land beside DIR, not inside it.
while [ "${#DIR}" -gt 1 ] && [ "${DIR%/}" != "$DIR" ]; do DIR=${DIR%/}; done
case "$DIR" in
  /) die "refusing to use / as the chroot directory" ;;
  /*) ;;
  *) DIR=$(pwd)/$DIR ;;
esac
PARENT=$(dirname "$DIR")
BASE=$(basename "$DIR")

healthy() {
  [ -f "$1/$MARKER" ] || return 1
  # The tree's root must be traversable by the unprivileged users Dovecot runs as (mktemp -d makes 0700).
  [ "$(stat -c %a "$1" 2>/dev/null)" = 755 ] || return 1
  case "$SUITE" in
    trixie)
      for file in modules/auth/libauthdb_lua.so managesieve managesieve-login; do
        [ -e "$1/usr/lib/dovecot/$file" ] || return 1
      done
      version=$(chroot "$1" /usr/sbin/dovecot --version 2>/dev/null) || return 1
      case "$version" in
        2.4.*) return 0 ;;
        *) return 1 ;;
      esac
      ;;
    bookworm)
      chroot "$1" /usr/bin/dpkg --print-architecture >/dev/null 2>&1 || return 1
      case "$(cat "$1/etc/debian_version" 2>/dev/null)" in
        12.*) return 0 ;;
        *) return 1 ;;
      esac
      ;;
  esac
  return 1
}

# What the health check saw, for the error message.
describe() {
  case "$SUITE" in
    trixie) chroot "$1" /usr/sbin/dovecot --version 2>&1 | head -n 1 ;;
    *) echo "debian_version $(cat "$1/etc/debian_version" 2>&1)" ;;
  esac
}

# Unmounts everything mounted at or below $1 (deepest first), then removes the tree without leaving its
# file system. Refuses if a mount cannot be removed.
remove_tree() {
  tree=$1
  [ -e "$tree" ] || return 0
  real=$(cd "$tree" 2>/dev/null && pwd -P) || real=$tree
  # /proc/self/mounts escapes spaces as \040; our paths have none (mktemp names), so plain compare works.
  mounts=$(awk -v p="$real" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
  for m in $mounts; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if awk -v p="$real" '$2 == p || index($2, p "/") == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    say "mounts remain under $tree; not removing it"
    return 1
  fi
  rm -rf --one-file-system -- "$tree"
}

# Fast path: a healthy tree needs no lock.
if healthy "$DIR"; then
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install -y debootstrap)"
command -v flock >/dev/null 2>&1 || die "flock is not installed (util-linux)"
mkdir -p "$PARENT" || die "cannot create $PARENT"

exec 9>"$DIR.lock" || die "cannot open lock file $DIR.lock"
flock -w "$LOCK_WAIT" 9 || die "timed out after ${LOCK_WAIT}s waiting for $DIR.lock (another build running?)"

# Another caller may have built it while we waited.
if healthy "$DIR"; then
  exit 0
fi

# Leftovers of builds that were killed (temp dirs are only touched under the lock, so none is in use now).
for old in "$PARENT/.$BASE.build."* "$PARENT/.$BASE.old."*; do
  [ -e "$old" ] || continue
  remove_tree "$old" || die "cannot remove leftover $old"
done

TMP=
cleanup() {
  if [ -n "$TMP" ]; then
    remove_tree "$TMP" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

started=$(date +%s)
attempt=1
while :; do
  TMP=$(mktemp -d "$PARENT/.$BASE.build.XXXXXX") || die "cannot create a temp dir in $PARENT"
  # mktemp -d makes the directory 0700, and debootstrap keeps that mode for the chroot's /: every
  # non-root process inside (auth-worker as dovecot, imap as the mail user) would get EACCES on any path.
  chmod 0755 "$TMP" || die "cannot chmod $TMP"
  LOG=$TMP.log
  say "building a $WHAT chroot in $TMP (attempt $attempt of $ATTEMPTS)"
  # $INCLUDE unquoted: empty for a plain minbase.
  # shellcheck disable=SC2086
  if debootstrap --variant=minbase $INCLUDE "$SUITE" "$TMP" "$MIRROR" >"$LOG" 2>&1; then
    break
  fi
  say "debootstrap failed (attempt $attempt of $ATTEMPTS); last lines of its log:"
  tail -n 5 "$LOG" >&2
  remove_tree "$TMP" || die "cannot remove failed build $TMP"
  rm -f "$LOG"
  TMP=
  if [ "$attempt" -ge "$ATTEMPTS" ]; then
    die "could not build the chroot after $ATTEMPTS attempts (network? mirror $MIRROR)"
  fi
  sleep $((attempt * 5))
  attempt=$((attempt + 1))
done
rm -f "$LOG"

# No daemon may start from a later apt run inside the tree.
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d" && chmod 755 "$TMP/usr/sbin/policy-rc.d" \
  || die "cannot write policy-rc.d"
date -u +%Y-%m-%dT%H:%M:%SZ >"$TMP/$MARKER" || die "cannot write the marker"
if ! healthy "$TMP"; then
  die "the new tree fails its health check: $(describe "$TMP")"
fi

# Swap in: move a broken old tree aside (rename), put the new one in place (rename), then remove the old one.
if [ -e "$DIR" ] || [ -L "$DIR" ]; then
  OLD=$(mktemp -u "$PARENT/.$BASE.old.XXXXXX")
  mv -T -- "$DIR" "$OLD" || die "cannot move the old tree $DIR aside"
  mv -T -- "$TMP" "$DIR" || die "cannot move $TMP to $DIR"
  TMP=
  remove_tree "$OLD" || say "warning: could not remove the old tree $OLD"
else
  mv -T -- "$TMP" "$DIR" || die "cannot move $TMP to $DIR"
  TMP=
fi

healthy "$DIR" || die "$DIR fails its health check after the swap"
say "ready: $DIR ($WHAT, $(describe "$DIR")) built in $(($(date +%s) - started))s"
exit 0
