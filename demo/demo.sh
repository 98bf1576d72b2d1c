#!/usr/bin/env bash
# mailpass demo: a throwaway Dovecot on loopback wired to mailpass, a demo user with 2FA, real IMAP logins
# that show each outcome, and the self-service page (`mailpass web`) on loopback: a scripted visit (sign in with
# password and code, make an app password, log in over IMAP with it), then the page stays up for you to try
# until you press Enter (when run from a terminal). Leaves nothing behind: the temp dir is removed, Dovecot and
# the page are stopped on exit.
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
web_pid=
cleanup() {
  if [ -n "$web_pid" ]; then
    kill "$web_pid" 2>/dev/null || true
    wait "$web_pid" 2>/dev/null || true
  fi
  if [ -f "$work/run/master.pid" ]; then
    doveadm -c "$conf" stop 2>/dev/null || kill "$(cat "$work/run/master.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$work/run/master.pid" ] || break; sleep 0.1; done
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
web_port=$(free_port)
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

[web]
display_name = "Demo Mail"
mail_host = "127.0.0.1"
imap_port = $port
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
# A second user for the page: the IMAP logins below use up the demo user's next code, and a code works once.
web_user=carol@example.org
echo "$password" | mp user add "$web_user" --password-stdin 2>/dev/null
web_secret=$(mp totp enroll "$web_user" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
secret_of_user=$secret
secret=$web_secret
mp totp confirm "$web_user" "$(totp 0)" 2>/dev/null
secret=$secret_of_user
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

echo
echo "The self-service page: mailpass web, as the database's owner (dovecot here)"
runuser -u dovecot -- "$work/mailpass" --db "$db" --config "$work/mailpass.toml" web --listen "127.0.0.1:$web_port" \
  2>"$work/web.log" &
web_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/web.log" 2>/dev/null && break
  sleep 0.1
done
python3 - "$web_port" "$port" "$web_user" "$password" "$web_secret" <<'PY'
import base64, hmac, html, http.cookiejar, imaplib, re, struct, sys, time, urllib.parse, urllib.request
web_port, imap_port, user, password, secret = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
base = f"http://127.0.0.1:{web_port}"
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
def fetch(path, fields=None):
    data = None
    if fields is not None:
        data = urllib.parse.urlencode(fields, doseq=True).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Origin": base})
    try:
        with opener.open(request, timeout=30) as r:
            return r.status, r.geturl(), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, path, e.read().decode()
def csrf(page):
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)
def code(offset=0):
    key = base64.b32decode(secret)
    h = hmac.new(key, struct.pack(">Q", int(time.time()) // 30 + offset), "sha1").digest()
    o = h[-1] & 15
    return "%06d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 1000000)
def show(label, outcome):
    print(f"  {label:<46} -> {outcome}")
status, _, page = fetch("/sign-in")
status, url, page = fetch("/sign-in", {"csrf": csrf(page), "user": user, "password": "not the password"})
show("sign in with a wrong password", f"{status}: " + re.search(r'role="alert">([^<]+)', page).group(1))
status, _, page = fetch("/sign-in")
status, url, page = fetch("/sign-in", {"csrf": csrf(page), "user": user, "password": password})
show("sign in with the password", f"{status}, asks for the code ({urllib.parse.urlparse(url).path})")
status, url, page = fetch("/sign-in/code", {"csrf": csrf(page), "code": code(1)})
show("the current code", f"{status}, {urllib.parse.urlparse(url).path}: " + re.search(r"<h2>([^<]+)</h2>", page).group(1))
status, _, page = fetch("/app-passwords")
status, _, page = fetch("/app-passwords", {"csrf": csrf(page), "name": "Laptop", "services": ["imap", "smtp"], "expires": "90d"})
app = html.unescape(re.search(r'id="new-app-password">([^<]+)<', page).group(1))
show("create app password 'Laptop' (imap, smtp)", f"{status}, shown once: {app}")
imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
typ, data = imap.login(user, app)
show("IMAP LOGIN with it", f"{typ} {data[-1].decode()}")
imap.logout()
PY
echo
echo "The page's log:"
sed 's/^/  /' "$work/web.log"
echo
if [ -t 0 ]; then
  echo "The page is at http://127.0.0.1:$web_port/ (from another machine: ssh -L $web_port:127.0.0.1:$web_port this-host)."
  echo "Sign in as $user with '$password' and a code from an authenticator app holding the secret $secret"
  echo "(or as $web_user, secret $web_secret)."
  read -r -p "Press Enter to stop the page and Dovecot. " _
else
  echo "The page was at http://127.0.0.1:$web_port/ (run \`make demo\` in a terminal to keep it up and try it)."
fi
