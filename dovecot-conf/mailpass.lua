-- mailpass.lua: a Dovecot passdb and userdb that ask mailpass, for Dovecot 2.3 and 2.4.
--
-- Each login runs `mailpass checkpassword` once. The credentials travel on a pipe (the child's fd 3), never
-- in argv or the environment; the reply comes back through a private temp file (mode 0600, removed at once)
-- because io.popen is one-way. Every value that passes through /bin/sh is single-quoted. mailpass decides
-- everything, including how a refusal is delivered (see the README); this script only maps its answer.
--
-- Settings, first match wins:
--   2.4 `lua_settings { mailpass_bin = ... mailpass_db = ... mailpass_config = ... mailpass_timeout = ... }`,
--   the environment (`import_environment = MAILPASS_BIN=... MAILPASS_DB=... MAILPASS_CONFIG=...
--   MAILPASS_TIMEOUT=...`),
--   the defaults below.

local settings = {
  bin = "/usr/local/bin/mailpass",
  db = nil,     -- nil: mailpass's own default, /var/lib/mailpass/mailpass.db
  config = nil, -- nil: /etc/mailpass/mailpass.toml if it exists
  -- Seconds before the helper is killed, whatever it is doing: a stuck helper would hold an auth worker
  -- (Dovecot never kills it). Above mailpass's own [auth] timeout (15 s), which answers a clean tempfail.
  timeout = "20",
}

local function nonempty(value)
  if value ~= nil and value ~= "" then
    return tostring(value)
  end
  return nil
end

function script_init(args)
  settings.bin = nonempty(os.getenv("MAILPASS_BIN")) or settings.bin
  settings.db = nonempty(os.getenv("MAILPASS_DB")) or settings.db
  settings.config = nonempty(os.getenv("MAILPASS_CONFIG")) or settings.config
  settings.timeout = nonempty(os.getenv("MAILPASS_TIMEOUT")) or settings.timeout
  if type(args) == "table" then
    settings.bin = nonempty(args.mailpass_bin) or settings.bin
    settings.db = nonempty(args.mailpass_db) or settings.db
    settings.config = nonempty(args.mailpass_config) or settings.config
    settings.timeout = nonempty(args.mailpass_timeout) or settings.timeout
  end
  if not string.match(settings.timeout, "^[1-9][0-9]*$") then
    error("mailpass.lua: mailpass_timeout must be a whole number of seconds, not " .. settings.timeout)
  end
  return 0
end

function script_deinit()
end

-- A value as one single-quoted /bin/sh word.
local function quote(value)
  return "'" .. string.gsub(tostring(value), "'", "'\\''") .. "'"
end

-- Dovecot 2.4 renamed the request fields; each is read under both names.
local function request_field(req, name_24, name_23)
  return nonempty(req[name_24]) or nonempty(req[name_23])
end

-- Runs `mailpass checkpassword` for one request. Returns the exit code (nil if it died by a signal or could
-- not start) and the reply fields as a table.
local function ask_mailpass(req, password, lookup)
  local env = { "SERVICE=" .. quote(request_field(req, "protocol", "service") or "-") }
  local remote_ip = request_field(req, "remote_ip", "rip")
  if remote_ip then
    env[#env + 1] = "TCPREMOTEIP=" .. quote(remote_ip)
  end
  local local_ip = request_field(req, "local_ip", "lip")
  if local_ip then
    env[#env + 1] = "TCPLOCALIP=" .. quote(local_ip)
  end
  -- Dovecot's login processes send a session id, Postfix and doveadm do not: mailpass tells them apart by it.
  local session = nonempty(req.session)
  if session then
    env[#env + 1] = "AUTH_SESSION=" .. quote(session)
  end
  if lookup then
    env[#env + 1] = "AUTHORIZED=1"
  end
  if settings.db then
    env[#env + 1] = "MAILPASS_DB=" .. quote(settings.db)
  end
  if settings.config then
    env[#env + 1] = "MAILPASS_CONFIG=" .. quote(settings.config)
  end

  local reply_path = os.tmpname()
  -- fd 3 is the pipe we write the request into; fd 4 is the reply file; stdin is closed off. `timeout`
  -- bounds the helper (TERM at the limit, KILL 2 s later); `--log dovecot` makes its log lines Dovecot's own
  -- format, so decisions are logged at Info and faults at Error.
  local command = "exec /usr/bin/timeout -k 2 " .. settings.timeout .. " /usr/bin/env -i "
    .. table.concat(env, " ") .. " " .. quote(settings.bin)
    .. " checkpassword --log dovecot --lua 3<&0 4>" .. quote(reply_path) .. " </dev/null"
  local pipe = io.popen(command, "w")
  if pipe == nil then
    os.remove(reply_path)
    return nil, {}
  end
  pipe:write(req.user, "\0", password or "", "\0\0")
  local _, how, code = pipe:close()

  local fields = {}
  local file = io.open(reply_path, "rb")
  if file ~= nil then
    local reply = file:read("a") or ""
    file:close()
    for field in string.gmatch(reply, "[^\t]+") do
      local key, value = string.match(field, "^([^=]+)=(.*)$")
      if key then
        fields[key] = value
      else
        fields[field] = "y" -- a flag such as nologin or fail
      end
    end
  end
  os.remove(reply_path)
  if how ~= "exit" then
    return nil, fields
  end
  return code, fields
end

-- What Dovecot logs for an internal failure; mailpass's own log line, just before, names the cause.
local function failure_text(code)
  if code == nil then
    return "mailpass could not run or was killed"
  elseif code == 124 or code == 137 then
    return "mailpass did not answer within " .. settings.timeout .. " s and was killed"
  end
  return "mailpass answered with exit code " .. tostring(code)
end

-- Plaintext logins (IMAP LOGIN, AUTHENTICATE PLAIN, POP3 USER/PASS, SMTP AUTH).
-- 2.4 wants a table with OK; 2.3 wants a string with failures: OK returns a table, failures "".
function auth_password_verify(req, password)
  local code, fields = ask_mailpass(req, password, false)
  if code == 0 and next(fields) ~= nil then
    -- A success carries the userdb_* fields for `userdb prefetch`. A refusal with a text for the client
    -- carries `nologin` + `reason` (mailpass sends it only to a Dovecot login process, which refuses it;
    -- everyone else gets exit 1).
    -- Dovecot 2.3 caches Lua passdb answers under `cache_key` (default %u) when auth_cache_size > 0; the
    -- shipped config's cache_key holds %{passdb:mailpass_cache_guard}, which is empty when the cache is
    -- looked up (before the passdb runs) and "1" when an answer is stored, so no stored answer is ever found:
    -- every login reaches mailpass (replayed codes, revoked app passwords and bans stay refused).
    fields.mailpass_cache_guard = "1"
    return dovecot.auth.PASSDB_RESULT_OK, fields
  elseif code == 1 then
    -- A refusal. The shipped configs set result_failure = return-fail: it is final.
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  elseif code == 4 then
    -- [auth] next_passdb = true: not mailpass's to decide (a user it does not know, an external user's main
    -- password). Dovecot runs the next passdb whatever result_failure says.
    return dovecot.auth.PASSDB_RESULT_NEXT, ""
  end
  -- 111 (database unavailable, time limit), 2 (bad request), a signal: never "wrong password".
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, failure_text(code)
end

-- Credentials lookups (CRAM-MD5 and other non-plaintext mechanisms): mailpass keeps only hashes.
function auth_passdb_lookup(req)
  local code, fields = ask_mailpass(req, "", true)
  if code == 3 then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, ""
  elseif code == 2 and fields.user ~= nil then
    return dovecot.auth.PASSDB_RESULT_SCHEME_NOT_AVAILABLE, ""
  elseif code == 2 then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "mailpass answered a lookup without user="
  end
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, failure_text(code)
end

-- Userdb lookups without a login (doveadm user, LMTP delivery).
function auth_userdb_lookup(req)
  local code, fields = ask_mailpass(req, "", true)
  if code == 2 and fields.user == nil then
    -- Exit 2 without user= is not an answer (a malformed request also used to exit 2).
    return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, "mailpass answered a lookup without user="
  elseif code == 2 then
    local userdb = {}
    for key, value in pairs(fields) do
      local name = string.match(key, "^userdb_(.+)$")
      if name then
        userdb[name] = value
      end
    end
    return dovecot.auth.USERDB_RESULT_OK, userdb
  elseif code == 3 then
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, ""
  end
  return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, failure_text(code)
end
