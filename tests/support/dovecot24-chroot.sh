#!/bin/sh
# dovecot24-chroot.sh [DIR]: make sure DIR (default /var/cache/mailpass-test/trixie) holds a Debian 13 (trixie)
# minbase chroot with Dovecot 2.4, its Lua auth module and ManageSieve, for the end-to-end tests of mailpass's
# Lua route. Must run as root. debian-chroot.sh beside it does the work (health check, lock, reuse): see there.
exec "$(dirname "$0")/debian-chroot.sh" trixie "${1:-/var/cache/mailpass-test/trixie}"
