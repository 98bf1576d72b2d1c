//! The self-service page under test: the built binary's `mailpass web` on a loopback port of its own, and a
//! small HTTP client that keeps cookies and sends forms the way a browser does (with their CSRF token and
//! the page's Origin), so that each test can also leave one of them out.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{Env, KillOnDrop};
use crate::cookies;

pub struct Web {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What the page's forms must send as `Origin`.
    pub origin: String,
    /// The server's stderr lines so far, read by a thread.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _server: KillOnDrop,
}

impl Web {
    /// Starts `mailpass web` for the env's database and config, on a port the kernel picks.
    pub fn start(env: &Env) -> Web {
        Self::start_with_origin(env, None)
    }

    /// With `[web] origin` set in the env's config, forms must send that as their Origin.
    pub fn start_with_origin(env: &Env, origin: Option<&str>) -> Web {
        // The database must exist (the page never creates one): any admin command makes it.
        env.ok(&["user", "list"], "");
        let mut child = env
            .command()
            .args(["web", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mailpass web");
        let stderr = child.stderr.take().expect("stderr");
        let server = KillOnDrop(child);
        let mut lines = BufReader::new(stderr).lines();
        let first = lines
            .next()
            .expect("mailpass web said nothing")
            .expect("read stderr");
        let url = first
            .strip_prefix("mailpass web: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        Web {
            origin: origin.map_or_else(|| url.clone(), str::to_string),
            url,
            log,
            _server: server,
        }
    }

    /// A fresh visitor: no cookies yet.
    pub fn visitor(&self) -> Visitor<'_> {
        Visitor {
            web: self,
            cookies: BTreeMap::new(),
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            ip: None,
        }
    }

    /// The server's stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Sends SIGTERM and waits (at most `limit`) for the server to exit; `None` if it did not.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let pid = self._server.0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self._server.0.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// One browser: its cookie jar.
pub struct Visitor<'a> {
    web: &'a Web,
    pub cookies: BTreeMap<String, String>,
    client: reqwest::blocking::Client,
    /// Sent as `X-Forwarded-For` (only a trusted proxy's is believed).
    pub ip: Option<String>,
}

/// A response, read whole.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    /// Every `Set-Cookie` header, as sent.
    pub set_cookies: Vec<String>,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The first CSRF token in the page's forms.
    pub fn csrf(&self) -> String {
        self.input_value("csrf")
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body))
    }

    /// The `value` of the first input named `name`.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_string())
    }

    /// The text of the element with this id (no markup inside it).
    pub fn text_of(&self, id: &str) -> Option<String> {
        let marker = format!("id=\"{id}\"");
        let at = self.body.find(&marker)?;
        let start = self.body[at..].find('>')? + at + 1;
        let end = self.body[start..].find('<')? + start;
        Some(self.body[start..end].trim().to_string())
    }

    pub fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }
}

impl Visitor<'_> {
    pub fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.web.url));
        self.send(request)
    }

    /// Posts a form as the page's own (with its Origin); the fields are sent as given.
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(Some(&self.web.origin.clone()), path, fields)
    }

    /// Posts a form with this Origin header (`None`: without one).
    pub fn post_from(&mut self, origin: Option<&str>, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .fold(form_urlencoded_serializer(), |mut s, (k, v)| {
                s.append_pair(k, v);
                s
            })
            .finish();
        let mut request = self
            .client
            .post(format!("{}{path}", self.web.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        self.send(request)
    }

    /// Follows the page's form: GETs `page`, takes its CSRF token, posts `fields` to `action`.
    pub fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(page).csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all)
    }

    fn send(&mut self, mut request: reqwest::blocking::RequestBuilder) -> Page {
        if let Some(jar) = cookies::header(&self.cookies) {
            request = request.header("cookie", jar);
        }
        if let Some(ip) = &self.ip {
            request = request.header("x-forwarded-for", ip);
        }
        let response = request.send().expect("HTTP request to mailpass web");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let set_cookies: Vec<String> = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        for cookie in &set_cookies {
            cookies::keep(&mut self.cookies, cookie);
        }
        let body = response.text().expect("response body");
        Page {
            status,
            headers,
            body,
            set_cookies,
        }
    }

    /// Signs in with the password (and the code when one is asked for); returns the last page.
    pub fn sign_in(&mut self, user: &str, password: &str) -> Page {
        self.submit(
            "/sign-in",
            "/sign-in",
            &[("user", user), ("password", password)],
        )
    }

    pub fn enter_code(&mut self, code: &str) -> Page {
        self.submit("/sign-in/code", "/sign-in/code", &[("code", code)])
    }
}

fn form_urlencoded_serializer() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

/// Makes every session's sign-in an hour old: too old for what needs a recent password.
pub fn age_sign_in(env: &Env) {
    crate::common::forensics::db(env)
        .execute("UPDATE web_sessions SET fresh_at = fresh_at - 3600", [])
        .expect("age the sessions");
}
