//! A real headless chromium driven over WebDriver, one per scenario: chromedriver started on a free loopback
//! port with a temp dir of its own (HOME, the browser profile, its log), a browser session through fantoccini,
//! and a PNG screenshot of every page the scenario visits in target/browser-screenshots/.
//!
//! `Browser` wraps fantoccini's async client in plain blocking calls (each bounded by a timeout, so that a hung
//! browser fails the scenario instead of hanging it), so that scenarios read as the steps a user takes. Its
//! methods panic with what they were doing; the harness turns that into the trial's failure.
//!
//! Stopping: the session is closed (chromedriver then quits chromium), then chromedriver is stopped by pid, and
//! any process left of the browser (found below chromedriver in the process tree, or by the profile dir in its
//! command line, e.g. a helper that chromium detached) is stopped by pid too; also when the scenario failed.

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tempfile::TempDir;

use crate::process::{self, Guard};
use crate::site;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long one WebDriver command may take before the scenario fails (a hang guard: page loads here are local).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long chromedriver may take to answer its first /status.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a submitted form may take to bring its answer page.
const NAVIGATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What chromium is told: headless, no sandbox (the tests run as root), and none of the background traffic
/// (component updates, sync, field trials...) that would otherwise knock on a closed network. Even so it
/// looks up update servers for the extensions Debian's package ships: no extensions, and no name resolves
/// (the tests use 127.0.0.1, which needs no lookup), so it sends no DNS query either.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--window-size=1280,1000",
];

/// The environment chromedriver (and the chromium it starts) gets: built here, nothing inherited.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether chromium and chromedriver are installed, or what to install.
pub fn check_installed() -> Result<(), String> {
    for path in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(path).exists() {
            return Err(format!(
                "{path} is missing: install the Debian packages chromium and chromium-driver \
                 (scripts/install-deps.sh)"
            ));
        }
    }
    Ok(())
}

/// A running chromedriver, stopped by pid (with the browsers it started) when dropped.
pub struct Chromedriver {
    guard: Guard,
    pub port: u16,
    /// HOME, TMPDIR and the browser profile (`profile/`); its path marks the browser's processes.
    dir: TempDir,
}

impl Chromedriver {
    pub fn start() -> Result<Chromedriver, String> {
        let dir = tempfile::Builder::new()
            .prefix("mailpass-browser-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut last = String::new();
        // A port picked free may be taken before chromedriver binds it: then another.
        for _ in 0..3 {
            let port = process::free_port()?;
            let mut cmd = Command::new(CHROMEDRIVER);
            cmd.env_clear()
                .env("HOME", dir.path())
                .env("TMPDIR", dir.path())
                .env("PATH", PATH)
                .env("LANG", "C.UTF-8")
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.path().join("chromedriver.log").display()
                ))
                .current_dir(dir.path());
            let mut guard =
                Guard::spawn("chromedriver", cmd, &dir.path().join("chromedriver.out"))?;
            match wait_ready(&mut guard, port) {
                Ok(()) => return Ok(Chromedriver { guard, port, dir }),
                Err(e) => {
                    drop(guard);
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// The W3C capabilities of a session: chromium from Debian's package, headless, its profile in our dir.
    /// Where the browser saves what it downloads.
    fn downloads(&self) -> PathBuf {
        self.dir.path().join("downloads")
    }

    /// The W3C capabilities of a session: chromium from Debian's package, headless, its profile and its
    /// downloads in our dir (saved without asking).
    fn capabilities(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "download.default_directory": self.downloads(),
                    "download.prompt_for_download": false,
                },
            },
        });
        match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// Stops chromedriver and whatever is left of its browsers, each by pid. Does nothing the second time.
    fn stop(&mut self) {
        let Some(pid) = self.guard.pid() else {
            return;
        };
        let marker = self.dir.path().display().to_string();
        let mut pids = process::descendants(pid);
        self.guard.stop();
        // What chromedriver did not take with it: its former children, and helpers that chromium detached (they
        // carry the profile's path, under our dir, in their command line).
        pids.retain(|&p| process::alive(p));
        for pid in process::mentioning(&marker) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        let survivors = process::terminate(&pids);
        if !survivors.is_empty() {
            eprintln!("browser processes {survivors:?} survived SIGKILL");
        }
    }

    /// The last lines of chromedriver's log.
    fn log_tail(&self, n: usize) -> String {
        let path = self.dir.path().join("chromedriver.log");
        let log = fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- last lines of {}:\n{}",
            path.display(),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until chromedriver answers `GET /status` with `ready: true`.
fn wait_ready(guard: &mut Guard, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = guard.exited() {
            return Err(format!(
                "chromedriver exited ({status}) before it answered on port {port}\n{}",
                guard.tail(20)
            ));
        }
        let status = site::http()
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .and_then(|r| r.text());
        if let Ok(text) = status
            && text.contains("\"ready\":true")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "chromedriver (pid {:?}) did not answer GET /status on port {port} within {START_TIMEOUT:?}\n{}",
                guard.pid(),
                guard.tail(20)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `future` on `rt`, for at most `COMMAND_TIMEOUT` (the timer is made inside the runtime, which it needs).
fn bounded<F: Future>(
    rt: &tokio::runtime::Runtime,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    rt.block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, future).await })
}

/// Whether `error`, asked of an element, says its document is gone.
fn left_the_document(error: &CmdError) -> bool {
    error.is_stale_element_reference()
        || error
            .to_string()
            .contains("does not belong to the document")
}

/// Where the screenshots go: target/browser-screenshots/ (CARGO_TARGET_DIR if set).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(t)
            }
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser-screenshots")
}

/// One browser session, for one scenario, on one site (`origin`, `http://127.0.0.1:PORT`).
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Chromedriver,
    origin: String,
    scenario: String,
    step: u32,
}

impl Browser {
    /// Starts chromedriver and a browser session; earlier screenshots of `scenario` are removed.
    pub fn start(scenario: &str, origin: &str) -> Browser {
        let driver = Chromedriver::start().unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{}", driver.port);
        let session = bounded(
            &rt,
            ClientBuilder::new(connector)
                .capabilities(driver.capabilities())
                .connect(&url),
        );
        let client = match session {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "chromedriver on {url} did not start chromium: {e}\n{}",
                driver.log_tail(30)
            ),
            Err(_) => panic!(
                "chromedriver on {url} did not start chromium within {COMMAND_TIMEOUT:?}\n{}",
                driver.log_tail(30)
            ),
        };
        let dir = screenshot_dir();
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let prefix = format!("{scenario}-");
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Browser {
            rt,
            client: Some(client),
            driver,
            origin: origin.trim_end_matches('/').to_string(),
            scenario: scenario.to_string(),
            step: 0,
        }
    }

    /// A string in the command line of every process of this browser and its chromedriver (their temp dir).
    pub fn profile_marker(&self) -> String {
        self.driver.dir.path().display().to_string()
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    /// Runs one WebDriver command to its end, or fails the scenario with what it was doing.
    #[track_caller]
    fn run<T>(&self, what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
        match bounded(&self.rt, command) {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("browser: {what}: {e}"),
            Err(_) => panic!("browser: {what}: no answer within {COMMAND_TIMEOUT:?}"),
        }
    }

    /// Goes to `path` on the site and saves a screenshot of the page as `step`.
    #[track_caller]
    pub fn open(&mut self, path: &str, step: &str) {
        let url = format!("{}{path}", self.origin);
        self.run(&format!("open {url}"), self.client().goto(&url));
        self.wait_loaded();
        self.screenshot(step);
    }

    /// The path of the page shown, without query (`/sign-in/code`).
    #[track_caller]
    pub fn path(&self) -> String {
        self.run("current URL", self.client().current_url())
            .path()
            .to_string()
    }

    /// The first element matching `css`, if any.
    #[track_caller]
    fn find(&self, css: &str) -> Option<Element> {
        match bounded(&self.rt, self.client().find(Locator::Css(css))) {
            Ok(Ok(element)) => Some(element),
            Ok(Err(e)) if e.is_no_such_element() => None,
            Ok(Err(e)) => panic!("browser: find {css}: {e}"),
            Err(_) => panic!("browser: find {css}: no answer within {COMMAND_TIMEOUT:?}"),
        }
    }

    /// The first element matching `css`; fails the scenario (naming the page) when there is none.
    #[track_caller]
    fn element(&self, css: &str) -> Element {
        self.find(css).unwrap_or_else(|| {
            panic!(
                "no {css} on {}; the page reads:\n{}",
                self.path(),
                self.page_text()
            )
        })
    }

    pub fn has(&self, css: &str) -> bool {
        self.find(css).is_some()
    }

    /// The rendered text of the first element matching `css`.
    #[track_caller]
    pub fn text(&self, css: &str) -> String {
        let element = self.element(css);
        self.run(&format!("text of {css}"), element.text())
    }

    /// The whole page's rendered text (for failure messages and for what a user reads).
    pub fn page_text(&self) -> String {
        bounded(&self.rt, async {
            self.client().find(Locator::Css("body")).await?.text().await
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
    }

    /// The form matching `css`, to fill in and submit.
    #[track_caller]
    pub fn form(&mut self, css: &str) -> Form<'_> {
        let element = self.element(css);
        Form {
            browser: self,
            css: css.to_string(),
            element,
        }
    }

    /// The form that holds a field called `name` (for a page whose form has no id of its own).
    #[track_caller]
    pub fn form_with_field(&mut self, name: &str) -> Form<'_> {
        self.form(&format!("form:has([name=\"{name}\"])"))
    }

    /// Saves a PNG of what the browser shows as target/browser-screenshots/SCENARIO-NN-STEP.png.
    #[track_caller]
    pub fn screenshot(&mut self, step: &str) {
        self.step += 1;
        let png = self.run("screenshot", self.client().screenshot());
        let path = screenshot_dir().join(format!("{}-{:02}-{step}.png", self.scenario, self.step));
        fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Waits until the document shown has loaded.
    #[track_caller]
    fn wait_loaded(&self) {
        let deadline = Instant::now() + NAVIGATION_TIMEOUT;
        let mut last_error = None;
        loop {
            // A script run while the document is being swapped can fail; that is retried like "loading".
            let state = bounded(
                &self.rt,
                self.client().execute("return document.readyState", vec![]),
            );
            match state {
                Ok(Ok(state)) if state == "complete" => return,
                Ok(Err(e)) => last_error = Some(e.to_string()),
                Ok(Ok(_)) | Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "the page at {} did not finish loading within {NAVIGATION_TIMEOUT:?} (last error: {})",
                self.path(),
                last_error.as_deref().unwrap_or("none")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Clicks the element matching `css` (a download link, or the button of a form whose answer is a file) and
    /// waits for the browser to have saved the file; returns its name and its contents. The page stays.
    #[track_caller]
    pub fn download(&mut self, css: &str, step: &str) -> (String, Vec<u8>) {
        let dir = self.driver.downloads();
        let before: Vec<_> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let element = self.element(css);
        self.run(&format!("click {css}"), element.click());
        let deadline = Instant::now() + NAVIGATION_TIMEOUT;
        loop {
            // Chromium may first reserve NAME as an empty file, writes NAME.crdownload (or a .tmp file) and
            // renames it to NAME when it is complete: done once a new NAME has bytes and nothing is in flight.
            let names: Vec<String> = fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| !before.contains(&e.file_name()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            let in_flight = |name: &String| {
                name.ends_with(".crdownload") || name.starts_with('.') || name.ends_with(".tmp")
            };
            let done = names.iter().find(|name| !in_flight(name));
            if let (Some(name), false) = (done, names.iter().any(in_flight)) {
                let path = dir.join(name);
                let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                if !bytes.is_empty() {
                    self.screenshot(step);
                    return (name.clone(), bytes);
                }
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} downloaded no whole file into {} within {NAVIGATION_TIMEOUT:?} (new there: \
                 {names:?}); the page at {} reads:\n{}",
                dir.display(),
                self.path(),
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Clicks `button` (which submits a form or follows a link) and waits for the page it brings, then saves
    /// a screenshot of it as `step`.
    #[track_caller]
    fn click_and_wait(&mut self, button: Element, what: &str, step: &str) {
        let old = self.element("html");
        self.run(&format!("click {what}"), button.click());
        // The old document's root goes stale once the answer replaced it. While the new document is being
        // attached, chromedriver may instead say the node "does not belong to the document": the same news.
        // Any other error may be a passing state of the navigation, so it is retried until the deadline.
        let deadline = Instant::now() + NAVIGATION_TIMEOUT;
        let mut last_error = None;
        loop {
            match bounded(&self.rt, old.tag_name()) {
                Ok(Err(e)) if left_the_document(&e) => break,
                Ok(Err(e)) => last_error = Some(e.to_string()),
                Ok(Ok(_)) | Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "{what} brought no new page within {NAVIGATION_TIMEOUT:?} (last error: {}); still on {}:\n{}",
                last_error.as_deref().unwrap_or("none"),
                self.path(),
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_loaded();
        self.screenshot(step);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && self.client.is_some() {
            // What the browser showed when the scenario failed, beside the steps' screenshots.
            let shot = bounded(&self.rt, self.client().screenshot())
                .ok()
                .and_then(Result::ok);
            if let Some(png) = shot {
                self.step += 1;
                let path = screenshot_dir()
                    .join(format!("{}-{:02}-at-failure.png", self.scenario, self.step));
                let _ = fs::write(path, png);
            }
        }
        if let Some(client) = self.client.take() {
            // Ends the session: chromedriver quits chromium. Whatever is left, `Chromedriver` stops by pid.
            let _ = bounded(&self.rt, client.close());
        }
        self.driver.stop();
    }
}

/// A form on the page being filled in.
pub struct Form<'b> {
    browser: &'b mut Browser,
    css: String,
    element: Element,
}

impl Form<'_> {
    #[track_caller]
    fn field(&self, css: &str) -> Element {
        let found = bounded(&self.browser.rt, self.element.find(Locator::Css(css)));
        match found {
            Ok(Ok(element)) => element,
            Ok(Err(e)) => panic!(
                "no {css} in {} on {}: {e}; the page reads:\n{}",
                self.css,
                self.browser.path(),
                self.browser.page_text()
            ),
            Err(_) => panic!("browser: find {css} in {}: no answer", self.css),
        }
    }

    /// Types `value` into the field called `name` (after clearing it).
    #[track_caller]
    pub fn fill(self, name: &str, value: &str) -> Self {
        let field = self.field(&format!("[name=\"{name}\"]"));
        self.browser.run(&format!("clear {name}"), field.clear());
        self.browser
            .run(&format!("type into {name}"), field.send_keys(value));
        self
    }

    /// Ticks the checkbox `name` with this `value`, unticks the others of that name.
    #[track_caller]
    pub fn check_only(self, name: &str, value: &str) -> Self {
        let boxes = self.browser.run(
            &format!("checkboxes {name}"),
            self.element.find_all(Locator::Css(&format!(
                "input[type=checkbox][name=\"{name}\"]"
            ))),
        );
        let mut found = false;
        for checkbox in boxes {
            let this = self
                .browser
                .run("checkbox value", checkbox.attr("value"))
                .unwrap_or_default();
            let want = this == value;
            found |= want;
            if self.browser.run("checkbox state", checkbox.is_selected()) != want {
                self.browser
                    .run(&format!("click checkbox {name}={this}"), checkbox.click());
            }
        }
        assert!(found, "no checkbox {name}={value} in {}", self.css);
        self
    }

    /// Picks the option with this `value` in the select `name`.
    #[track_caller]
    pub fn select(self, name: &str, value: &str) -> Self {
        let select = self.field(&format!("select[name=\"{name}\"]"));
        self.browser.run(
            &format!("select {name}={value}"),
            select.select_by_value(value),
        );
        self
    }

    /// Clicks the form's submit button and waits for the answer page, saved as `step`.
    #[track_caller]
    pub fn submit(self, step: &str) {
        let button = self.field("button[type=submit], input[type=submit], button:not([type])");
        let what = format!("submit {}", self.css);
        self.browser.click_and_wait(button, &what, step);
    }
}
