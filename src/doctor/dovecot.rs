//! Dovecot's side, as `doveconf` reads its config (`doveconf -n` for the blocks, `doveconf -h` for single
//! settings with their defaults): the version, which passdb runs mailpass and whether that route exists in
//! this version, the Lua module, the user mailpass runs as (which the database must belong to), the user
//! name format, and whether the auth cache could answer for mailpass.
//!
//! Secrets stay hidden: doveconf is never given `-P`, so it prints `%{passdb:...}` and passwords hidden.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::{Check, Ran, find_program, run_program};

/// The user Dovecot runs mailpass as, and which service's setting says so.
#[derive(Debug, Clone)]
pub struct Runner {
    pub name: String,
    pub uid: u32,
    /// The service's `group`, else the user's primary group.
    pub gid: u32,
    /// Every group the service runs with: `gid` and the service's `extra_groups`. Dovecot gives a service no
    /// other group, not even those /etc/group lists its user in (the Debian package's `adduser dovecot
    /// mailpass` does not reach Dovecot's auth processes).
    pub groups: Vec<u32>,
    pub service: &'static str,
}

pub(super) struct Found {
    pub checks: Vec<Check>,
    pub runner: Option<Runner>,
}

/// Where Debian's Dovecot keeps its plugins when `mail_plugin_dir` says nothing else; auth drivers are in
/// `auth/` below it.
const DEFAULT_MODULE_DIR: &str = "/usr/lib/dovecot/modules";
const LUA_MODULE: &str = "auth/libauthdb_lua.so";

/// A block of `doveconf -n` output: `passdb {`, `passdb lua {`, `service auth-worker {`, or the top level.
#[derive(Debug, Default)]
struct Section {
    kind: String,
    name: String,
    settings: Vec<(String, String)>,
    children: Vec<Section>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every block of this kind, at any depth (a 2.3 passdb may sit inside `protocol imap { }`).
    fn all<'a>(&'a self, kind: &str, out: &mut Vec<&'a Section>) {
        for child in &self.children {
            if child.kind == kind {
                out.push(child);
            }
            child.all(kind, out);
        }
    }

    fn service(&self, name: &str) -> Option<&Section> {
        self.children
            .iter()
            .find(|c| c.kind == "service" && c.name == name)
    }
}

/// Parses `doveconf -n` output: `key = value` lines and `kind [name] {` ... `}` blocks; comments skipped.
fn parse(text: &str) -> Section {
    let mut stack = vec![Section::default()];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            if stack.len() > 1 {
                let done = stack.pop().unwrap_or_default();
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(done);
                }
            }
        } else if let Some(head) = line.strip_suffix('{') {
            let mut words = head.split_whitespace();
            let kind = words.next().unwrap_or_default().to_string();
            let name = words.collect::<Vec<_>>().join(" ");
            stack.push(Section {
                kind,
                name,
                ..Section::default()
            });
        } else if let Some((key, value)) = line.split_once('=')
            && let Some(current) = stack.last_mut()
        {
            current
                .settings
                .push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    while stack.len() > 1 {
        let done = stack.pop().unwrap_or_default();
        if let Some(parent) = stack.last_mut() {
            parent.children.push(done);
        }
    }
    stack.pop().unwrap_or_default()
}

/// `(major, minor)` and the full version from doveconf's first line: `# 2.3.19.1 (9b53102964): FILE`.
fn version(text: &str) -> Option<((u32, u32), String)> {
    let first = text.lines().next()?.strip_prefix("# ")?;
    let full = first.split_whitespace().next()?.to_string();
    let mut parts = full.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(((major, minor), full))
}

/// How a passdb runs mailpass.
#[derive(Debug)]
enum Route {
    /// `driver = checkpassword` with mailpass in `args`: its argv.
    Checkpassword { argv: Vec<String> },
    /// `driver = lua` with mailpass.lua: the script, whether it runs in auth workers, and (2.3) `cache_key`.
    Lua {
        file: String,
        worker: bool,
        cache_key: Option<String>,
    },
}

/// The route of a passdb block, if it runs mailpass.
fn route(passdb: &Section) -> Option<Route> {
    // 2.4: `passdb lua { }` names its driver; 2.3 says `driver = lua`.
    let driver = passdb.get("driver").unwrap_or(&passdb.name);
    let args = passdb.get("args").unwrap_or_default();
    let words: Vec<String> = args.split_whitespace().map(String::from).collect();
    let names_mailpass = |path: &str| {
        Path::new(path)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("mailpass"))
    };
    match driver {
        "checkpassword" => words
            .first()
            .is_some_and(|program| names_mailpass(program))
            .then_some(Route::Checkpassword { argv: words }),
        "lua" => {
            let option = |key: &str| {
                words
                    .iter()
                    .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                    .map(String::from)
            };
            let file = passdb
                .get("lua_file")
                .map(String::from)
                .or_else(|| option("file"))?;
            let worker = match passdb.get("use_worker") {
                // 2.4: in the auth process unless use_worker = yes.
                Some(v) => v == "yes",
                // 2.3: blocking=yes (the default) runs it in auth workers.
                None => option("blocking").is_none_or(|v| v != "no"),
            };
            names_mailpass(&file).then_some(Route::Lua {
                file,
                worker,
                cache_key: option("cache_key"),
            })
        }
        _ => None,
    }
}

/// Runs doveconf on the config with more arguments.
struct Doveconf {
    program: PathBuf,
    config: Option<PathBuf>,
}

impl Doveconf {
    fn run(&self, args: &[&str]) -> Result<Ran, String> {
        let mut all: Vec<OsString> = Vec::new();
        if let Some(config) = &self.config {
            all.push("-c".into());
            all.push(config.clone().into_os_string());
        }
        all.extend(args.iter().map(OsString::from));
        let refs: Vec<&OsStr> = all.iter().map(OsString::as_os_str).collect();
        run_program(&self.program, &refs)
    }

    /// One setting's value, defaults included (`doveconf -h KEY`); `None` if doveconf does not know it.
    fn setting(&self, key: &str) -> Option<String> {
        self.run(&["-h", key])
            .ok()
            .filter(|r| r.success)
            .map(|r| r.stdout.trim().to_string())
    }
}

pub(super) fn checks(config: Option<&Path>, doveconf: &OsStr, db: &Path) -> Found {
    let mut checks = Vec::new();
    let shown = config.map_or_else(
        || "Dovecot's config".to_string(),
        |p| p.display().to_string(),
    );
    let Some(program) = find_program(doveconf) else {
        checks.push(Check::warn(
            "dovecot.config",
            format!(
                "{} not found: Dovecot's side cannot be checked",
                Path::new(doveconf).display()
            ),
            "install Dovecot here, or name doveconf with --doveconf PATH",
        ));
        return Found {
            checks,
            runner: None,
        };
    };
    let doveconf = Doveconf {
        program,
        config: config.map(Path::to_path_buf),
    };
    let text = match doveconf.run(&["-n"]) {
        Ok(ran) if ran.success => ran.stdout,
        Ok(ran) => {
            checks.push(Check::fail(
                "dovecot.config",
                format!("doveconf cannot read {shown}: {}", ran.reason()),
                "fix what doveconf names (Dovecot will not start or reload with this config), then \
                 check with `doveconf -n`",
            ));
            return Found {
                checks,
                runner: None,
            };
        }
        Err(e) => {
            checks.push(Check::fail(
                "dovecot.config",
                e,
                "check the doveconf program",
            ));
            return Found {
                checks,
                runner: None,
            };
        }
    };
    let Some(((major, minor), full)) = version(&text) else {
        checks.push(Check::fail(
            "dovecot.config",
            "doveconf -n does not start with Dovecot's version: is this Dovecot's doveconf?",
            "name Dovecot's doveconf with --doveconf PATH",
        ));
        return Found {
            checks,
            runner: None,
        };
    };
    let is_24 = (major, minor) >= (2, 4);
    checks.push(Check::ok(
        "dovecot.config",
        format!("Dovecot {full} reads {shown}"),
    ));
    let tree = parse(&text);
    let mut passdbs = Vec::new();
    tree.all("passdb", &mut passdbs);
    let routes: Vec<Route> = passdbs.iter().filter_map(|p| route(p)).collect();

    // The route.
    let Some(first) = routes.first() else {
        checks.push(Check::fail(
            "dovecot.route",
            format!("no passdb runs mailpass in {shown}: Dovecot never asks mailpass"),
            if is_24 {
                "add dovecot-conf/dovecot-2.4-lua.conf as conf.d/auth-mailpass.conf (see \"Dovecot\" in the README)"
            } else {
                "include dovecot-conf/dovecot-2.3-checkpassword.conf.ext or dovecot-2.3-lua.conf.ext from \
                 conf.d/10-auth.conf (see \"Dovecot\" in the README)"
            },
        ));
        return Found {
            checks,
            runner: None,
        };
    };
    checks.push(route_check(first, is_24, routes.len()));

    // The Lua module.
    if matches!(first, Route::Lua { .. }) {
        let dir = doveconf
            .setting("mail_plugin_dir")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_MODULE_DIR.into());
        let module = Path::new(&dir).join(LUA_MODULE);
        checks.push(if module.is_file() {
            Check::ok(
                "dovecot.lua_module",
                format!("the Lua passdb driver is installed ({})", module.display()),
            )
        } else {
            Check::fail(
                "dovecot.lua_module",
                format!(
                    "{} is missing: Dovecot cannot load the Lua passdb and every login fails",
                    module.display()
                ),
                "apt-get install dovecot-auth-lua (the package of the Lua passdb), then restart Dovecot",
            )
        });
    } else {
        checks.push(Check::skip(
            "dovecot.lua_module",
            "not needed: the checkpassword route runs mailpass directly",
        ));
    }

    // The user mailpass runs as.
    let internal = doveconf
        .setting("default_internal_user")
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "dovecot".into());
    let service = match first {
        Route::Lua { worker: true, .. } => "auth-worker",
        _ => "auth",
    };
    let configured = tree.service(service).and_then(|s| s.get("user"));
    let name = match configured {
        Some(v) if v.contains("default_internal_user") => internal.clone(),
        Some(v) if !v.is_empty() => v.to_string(),
        // Unset: `service auth` defaults to default_internal_user; `service auth-worker` to root.
        _ if service == "auth" => internal.clone(),
        _ => "root".into(),
    };
    let (user_check, runner) = runner_check(&name, service, &internal);
    checks.push(user_check);
    let runner = runner.map(|r| with_service_groups(r, tree.service(service), &doveconf));

    // Where the passdb's mailpass looks for its database.
    checks.push(database_path_check(first, &tree, db));

    // auth_username_format.
    let format = doveconf.setting("auth_username_format").unwrap_or_default();
    let keeps_name = ["%Lu", "%u", "%{user}", "%{user |", "%{user|"]
        .iter()
        .any(|f| format.contains(f));
    checks.push(if keeps_name || format.is_empty() {
        Check::ok(
            "dovecot.username_format",
            format!("auth_username_format = {format}: mailpass gets the whole user name"),
        )
    } else {
        Check::warn(
            "dovecot.username_format",
            format!(
                "auth_username_format = {format}: Dovecot hands mailpass a changed name, which must be \
                 the name the user is stored under (`mailpass user list`)"
            ),
            "use Dovecot's default (%Lu on 2.3, %{user | lower} on 2.4) unless the users are stored under \
             the changed names",
        )
    });

    // The auth cache.
    let cache = doveconf.setting("auth_cache_size").unwrap_or_default();
    checks.push(cache_check(&cache, &routes, is_24));
    Found { checks, runner }
}

fn route_check(route: &Route, is_24: bool, count: usize) -> Check {
    let also = if count > 1 {
        format!(" ({count} passdbs run mailpass: only the first is checked further)")
    } else {
        String::new()
    };
    match route {
        Route::Checkpassword { .. } if is_24 => Check::fail(
            "dovecot.route",
            "a checkpassword passdb runs mailpass, but Dovecot 2.4 removed checkpassword",
            "use the Lua route: dovecot-conf/dovecot-2.4-lua.conf and mailpass.lua (see \"Dovecot\" in the README)",
        ),
        Route::Checkpassword { argv } => {
            let program = argv.first().map(String::as_str).unwrap_or_default();
            if Path::new(program).is_file() {
                Check::ok(
                    "dovecot.route",
                    format!("a checkpassword passdb runs {program}{also}"),
                )
            } else {
                Check::fail(
                    "dovecot.route",
                    format!("the checkpassword passdb runs {program}, which does not exist"),
                    "install mailpass there (`make install`) or correct the passdb's args",
                )
            }
        }
        Route::Lua { file, .. } => {
            if Path::new(file).is_file() {
                Check::ok("dovecot.route", format!("a Lua passdb runs {file}{also}"))
            } else {
                Check::fail(
                    "dovecot.route",
                    format!("the Lua passdb runs {file}, which does not exist"),
                    "copy dovecot-conf/mailpass.lua there, or correct the passdb's path",
                )
            }
        }
    }
}

/// The user mailpass runs as, looked up on this system.
fn runner_check(name: &str, service: &'static str, internal: &str) -> (Check, Option<Runner>) {
    let Some((uid, gid)) = crate::sys::user_ids(name) else {
        return (
            Check::fail(
                "dovecot.auth_user",
                format!(
                    "Dovecot runs mailpass as {name} (service {service}), a user this system does not know"
                ),
                format!("create the user or correct `service {service} {{ user }}`"),
            ),
            None,
        );
    };
    let runner = Runner {
        name: name.to_string(),
        uid,
        gid,
        groups: vec![gid],
        service,
    };
    let check = if uid == 0 {
        Check::warn(
            "dovecot.auth_user",
            format!(
                "Dovecot runs mailpass as root (service {service} has no user): the Lua script and \
                 everything it starts run with every privilege"
            ),
            format!(
                "add `service {service} {{ user = $default_internal_user }}` (here {internal}), as the \
                 shipped config does, and give the database to that user"
            ),
        )
    } else {
        Check::ok(
            "dovecot.auth_user",
            format!("Dovecot runs mailpass as {name} (uid {uid}, service {service})"),
        )
    };
    (check, Some(runner))
}

/// The groups `service NAME { group, extra_groups }` give the service's processes on top of (or instead of)
/// its user's primary group. `$default_internal_group` (2.3) and `$SET:default_internal_group` (2.4) are
/// looked up; names this system does not know are left out (Dovecot would refuse to start on them).
fn with_service_groups(
    mut runner: Runner,
    service: Option<&Section>,
    doveconf: &Doveconf,
) -> Runner {
    let resolve = |name: &str| -> Option<u32> {
        if name.contains("default_internal_group") {
            let group = doveconf
                .setting("default_internal_group")
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| "dovecot".into());
            return super::group_id(&group);
        }
        super::group_id(name)
    };
    if let Some(gid) = service
        .and_then(|s| s.get("group"))
        .filter(|g| !g.is_empty())
        .and_then(resolve)
    {
        runner.gid = gid;
    }
    runner.groups = vec![runner.gid];
    let extra = service
        .and_then(|s| s.get("extra_groups"))
        .unwrap_or_default();
    for gid in extra
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|g| !g.is_empty())
        .filter_map(resolve)
    {
        if !runner.groups.contains(&gid) {
            runner.groups.push(gid);
        }
    }
    runner
}

/// The database the passdb's mailpass opens: `--db` in checkpassword's args, `mailpass_db` in 2.4's
/// lua_settings, `MAILPASS_DB` in 2.3's import_environment; else the default.
fn database_path_check(route: &Route, tree: &Section, db: &Path) -> Check {
    let named = match route {
        Route::Checkpassword { argv } => argv.iter().enumerate().find_map(|(i, w)| {
            w.strip_prefix("--db=")
                .map(String::from)
                .or_else(|| (w == "--db").then(|| argv.get(i + 1).cloned()).flatten())
        }),
        Route::Lua { .. } => tree
            .children
            .iter()
            .find(|c| c.kind == "lua_settings")
            .and_then(|s| s.get("mailpass_db"))
            .map(String::from)
            .or_else(|| {
                tree.get("import_environment")?
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("MAILPASS_DB="))
                    .map(String::from)
            }),
    };
    let used = named.unwrap_or_else(|| crate::cli::DEFAULT_DB.to_string());
    let same = Path::new(&used) == db
        || std::fs::canonicalize(&used).ok() == std::fs::canonicalize(db).ok()
            && Path::new(&used).exists();
    if same {
        Check::ok(
            "dovecot.database",
            format!("the passdb's mailpass uses {used}, the database checked here"),
        )
    } else {
        Check::warn(
            "dovecot.database",
            format!(
                "the passdb's mailpass uses {used}, but this check and the admin commands use {}",
                db.display()
            ),
            format!(
                "run `mailpass --db {used} doctor`, or point the passdb and MAILPASS_DB at one database"
            ),
        )
    }
}

/// Whether Dovecot's auth cache could answer a login instead of mailpass (see "Dovecot's auth cache" in the
/// README): a replayed password + code would get in, a revoked app password keep working until the TTL.
fn cache_check(size: &str, routes: &[Route], is_24: bool) -> Check {
    let on = size
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse::<u64>()
        .is_ok_and(|n| n > 0);
    if !on {
        return Check::ok(
            "dovecot.auth_cache",
            "auth_cache_size = 0: the auth cache is off",
        );
    }
    let why = "Dovecot answers logins from its cache without asking mailpass: a replayed password + code \
               gets in, and a revoked app password, a disabled user or a banned address keeps working until \
               the cache entry expires";
    for route in routes {
        match route {
            Route::Checkpassword { .. } => {}
            Route::Lua {
                cache_key: Some(key),
                ..
            } if !is_24 && key.is_empty() => {
                return Check::fail(
                    "dovecot.auth_cache",
                    "the Lua passdb has an empty cache_key=, which crashes Dovecot 2.3's auth process",
                    "use cache_key=%u%{passdb:mailpass_cache_guard} as dovecot-2.3-lua.conf.ext ships it",
                );
            }
            Route::Lua { cache_key, .. } if !is_24 => {
                if !cache_key
                    .as_deref()
                    .is_some_and(|k| k.contains("mailpass_cache_guard"))
                {
                    return Check::warn(
                        "dovecot.auth_cache",
                        format!(
                            "auth_cache_size = {size} and the Lua passdb has no mailpass cache guard in its \
                             cache_key: {why}"
                        ),
                        "add cache_key=%u%{passdb:mailpass_cache_guard} to the passdb's args as \
                         dovecot-2.3-lua.conf.ext ships it, or set auth_cache_size = 0",
                    );
                }
            }
            Route::Lua { file, .. } => match std::fs::read_to_string(file) {
                Ok(script) if script.contains("auth_passdb_get_cache_key") => {
                    return Check::warn(
                        "dovecot.auth_cache",
                        format!(
                            "auth_cache_size = {size} and {file} defines auth_passdb_get_cache_key, so \
                             Dovecot 2.4 caches its answers: {why}"
                        ),
                        "use the shipped mailpass.lua (it defines no cache key), or set auth_cache_size = 0",
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    return Check::warn(
                        "dovecot.auth_cache",
                        format!(
                            "auth_cache_size = {size} and {file} cannot be read ({e}): cannot tell whether Dovecot caches its answers"
                        ),
                        "make sure the script defines no auth_passdb_get_cache_key, or set auth_cache_size = 0",
                    );
                }
            },
        }
    }
    Check::ok(
        "dovecot.auth_cache",
        format!(
            "auth_cache_size = {size}, but the cache never answers for mailpass (see \"Dovecot's auth cache\" in the README)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const N23: &str = "# 2.3.19.1 (9b53102964): d.conf\n# OS: Linux\nauth_cache_size = 10 M\n\
        passdb {\n  args = file=/etc/dovecot/mailpass.lua blocking=yes cache_key=#hidden_use-P_to_show#:mailpass_cache_guard}\n  driver = lua\n}\n\
        service auth-worker {\n  user = $default_internal_user\n}\n";

    #[test]
    fn a_23_lua_passdb_is_found_with_its_guard() {
        let tree = parse(N23);
        assert_eq!(version(N23).map(|v| v.0), Some((2, 3)));
        let mut passdbs = Vec::new();
        tree.all("passdb", &mut passdbs);
        let Some(Route::Lua {
            file,
            worker,
            cache_key,
        }) = route(passdbs[0])
        else {
            panic!("no Lua route");
        };
        assert_eq!(file, "/etc/dovecot/mailpass.lua");
        assert!(worker);
        assert!(cache_key.is_some_and(|k| k.contains("mailpass_cache_guard")));
        assert_eq!(
            tree.service("auth-worker").and_then(|s| s.get("user")),
            Some("$default_internal_user")
        );
    }

    #[test]
    fn a_24_lua_block_names_its_driver() {
        let text = "# 2.4.1-4 (7d8c0e5759): /x\npassdb lua {\n  lua_file = /etc/dovecot/mailpass.lua\n  use_worker = yes\n}\n";
        assert_eq!(version(text).map(|v| v.0), Some((2, 4)));
        let tree = parse(text);
        let mut passdbs = Vec::new();
        tree.all("passdb", &mut passdbs);
        assert!(matches!(
            route(passdbs[0]),
            Some(Route::Lua { worker: true, .. })
        ));
    }

    #[test]
    fn other_passdbs_are_not_mailpass() {
        let tree = parse(
            "passdb {\n  driver = pam\n}\npassdb {\n  driver = checkpassword\n  args = /usr/bin/other\n}\n",
        );
        let mut passdbs = Vec::new();
        tree.all("passdb", &mut passdbs);
        assert!(passdbs.iter().all(|p| route(p).is_none()));
    }
}
