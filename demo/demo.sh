#!/usr/bin/env bash
# mailpass demo: a throwaway Dovecot on loopback wired to mailpass, a demo user with 2FA, and real IMAP logins
# that show each outcome. Leaves nothing behind: the temp dir is removed and Dovecot stopped on exit.
# Run as root (Dovecot starts as root and drops privileges): `sudo make demo`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MAILPASS_BIN:-$here/target/release/mailpass}

if [ "$(id -u)" != 0 ]; then
  echo "demo: run as root (Dovecot starts as root): sudo make demo" >&2
  exit 1
fi
"$here/scripts/install-deps.sh"
if [ -z "${MAILPASS_BIN:-}" ]; then
  echo "demo: building mailpass (cargo build --release; the first build takes one to four minutes)" >&2
  (cd "$here" && cargo build --release)
fi
[ -x "$bin" ] || { echo "demo: $bin is missing" >&2; exit 1; }

version=$(dovecot --version | cut -d. -f1,2)
work=$(mktemp -d /tmp/mailpass-demo.XXXXXX)
chmod 0755 "$work"
conf=$work/dovecot.conf
cleanup() {
  if [ -f "$work/run/master.pid" ]; then
    doveadm -c "$conf" stop 2>/dev/null || kill "$(cat "$work/run/master.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$work/run/master.pid" ] || break; sleep 0.1; done
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
install -m 0755 "$bin" "$work/mailpass"
install -m 0644 "$here/dovecot-conf/mailpass.lua" "$work/mailpass.lua"
mkdir -p "$work/db" "$work/home" "$work/run" "$work/state"
cat > "$work/mailpass.toml" <<TOML
# The demo answers at once; a real server keeps the brakes on refusals (see the README).
[auth]
failure_delay = 0
penalty = false

[userdb]
home = "$work/home/%n"
uid = "nobody"
gid = "nogroup"
TOML

db=$work/db/mailpass.db
mp() { "$work/mailpass" --db "$db" --config "$work/mailpass.toml" "$@"; }
user=demo@example.org
password='correct horse battery staple'
echo "$password" | mp user add "$user" --password-stdin 2>/dev/null
app=$(mp app-password add "$user" --name "Demo Mail" --services imap 2>/dev/null)
pop_only=$(mp app-password add "$user" --name "Old phone" --services pop3 2>/dev/null)
secret=$(mp totp enroll "$user" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
totp() { python3 - "$secret" "$1" <<'PY'
import base64, hmac, struct, sys, time
key = base64.b32decode(sys.argv[1])
step = int(time.time()) // 30 + int(sys.argv[2])
h = hmac.new(key, struct.pack(">Q", step), "sha1").digest()
o = h[-1] & 15
print("%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 1000000))
PY
}
mp totp confirm "$user" "$(totp 0)" 2>/dev/null
chown -R dovecot:dovecot "$work/db"
chown nobody:nogroup "$work/home"

if [ "$version" = 2.3 ]; then
  route="checkpassword (Dovecot $version)"
  auth="passdb {
  driver = checkpassword
  args = $work/mailpass --db $db --config $work/mailpass.toml checkpassword --log dovecot
}
userdb {
  driver = prefetch
}"
  header=""
  extra="disable_plaintext_auth = no
auth_failure_delay = 0
mail_location = maildir:~/Maildir"
else
  route="Lua passdb (Dovecot $version)"
  auth="lua_settings {
  mailpass_bin = $work/mailpass
  mailpass_db = $db
  mailpass_config = $work/mailpass.toml
}
passdb lua {
  lua_file = $work/mailpass.lua
  use_worker = yes
}
userdb prefetch {
}
service auth-worker {
  user = dovecot
}"
  header="dovecot_config_version = $(dovecot --version | cut -d' ' -f1)
dovecot_storage_version = $(dovecot --version | cut -d' ' -f1)"
  extra="auth_allow_cleartext = yes
auth_failure_delay = 0
auth_internal_failure_delay = 0
mail_driver = maildir
mail_path = ~/Maildir"
fi
cat > "$conf" <<CONF
$header
base_dir = $work/run
state_dir = $work/state
log_path = $work/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
$extra
default_login_user = dovenull
default_internal_user = dovecot
service imap-login {
  inet_listener imap {
    port = $port
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
$auth
CONF
dovecot -c "$conf"
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

echo "mailpass demo: Dovecot $version on 127.0.0.1:$port, route: $route"
echo "user $user has two-factor authentication; app password 'Demo Mail' (imap) is $app"
echo
login() { # label, password
  python3 - "$port" "$user" "$2" "$1" <<'PY'
import imaplib, sys
port, user, password, label = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
try:
    typ, data = imap._simple_command("LOGIN", imap._quote(user), imap._quote(password))
    answer = f"{typ} {data[-1].decode()}"
except imaplib.IMAP4.error as e:
    answer = "NO " + str(e).replace("b'", "").rstrip("'")
print(f"  {label:<46} -> {answer}")
try:
    imap.logout()
except Exception:
    pass
PY
}
code=$(totp 1)
login "IMAP LOGIN with the app password" "$app"
login "main password alone (2FA account)" "$password"
login "a wrong password (same answer: no oracle)" "not the password"
login "main password + current TOTP code" "$password$code"
login "the same code again (replay)" "$password$code"
login "the pop3-only app password on IMAP" "$pop_only"
login "the app password, typed in capitals" "$(echo "$app" | tr a-z A-Z)"
echo
echo "What the admin sees: mailpass user show $user"
mp user show "$user" | sed 's/^/  /'
echo
echo "The failure log: mailpass failures list"
mp failures list | sed 's/^/  /'
echo
echo "Dovecot's log, mailpass lines:"
grep -o 'mailpass: result=.*' "$work/dovecot.log" | sed 's/^/  /' || true
