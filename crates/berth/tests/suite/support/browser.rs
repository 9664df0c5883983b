//! A real headless Chromium (Debian's `chromium`), driven through ChromeDriver (Debian's
//! `chromium-driver`) over the WebDriver protocol with the `fantoccini` crate. WebDriver is
//! what the sign-in tests need later too: ChromeDriver implements the WebDriver virtual
//! authenticator commands for passkeys.
//!
//! Each [`Browser`] runs its own ChromeDriver in a process group of its own, with one
//! Chromium session on a fresh profile; dropping it (also when a test panics) kills the whole
//! group, so no browser outlives its test. Screenshots go to the test's output folder,
//! `target/tmp/screenshots/<test>/<page>.png`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{Berth, tool};

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    driver: Child,
    screenshots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A new Chromium session; `test` names the folder its screenshots go to.
    pub async fn start(test: &str) -> Browser {
        Browser::launch(test, json!({})).await
    }

    /// [`Browser::start`] with JavaScript turned off for every page (as a user's browser
    /// setting does; WebDriver's own commands still work).
    pub async fn start_without_javascript(test: &str) -> Browser {
        Browser::launch(
            test,
            json!({"profile.managed_default_content_settings.javascript": 2}),
        )
        .await
    }

    /// A Chromium session with the profile preferences `prefs`.
    async fn launch(test: &str, prefs: Value) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new(tool("chromedriver"));
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tool("chromium"),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--disable-extensions",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": prefs,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        // rustls is built with two crypto providers here (berth's ring, and aws-lc-rs through
        // fantoccini's TLS client), so it needs to be told which to use. ChromeDriver speaks
        // plain HTTP on loopback; the choice does not matter.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let deadline = Instant::now() + WAIT;
        let client = loop {
            let connected = ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match connected {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no Chromium session through chromedriver: {e}"),
            }
        };
        let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("screenshots")
            .join(test);
        std::fs::create_dir_all(&screenshots).unwrap();
        Browser {
            client,
            driver,
            screenshots,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The visible text of the whole page.
    pub async fn text(&self) -> String {
        self.text_of("body").await
    }

    /// The visible text of the first element matching `css` (found again if the page
    /// replaced it between finding and reading, as a live preview does).
    pub async fn text_of(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait(css).await.text().await {
                Ok(text) => return text,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("reading {css}: {e}"),
            }
        }
    }

    /// Waits for an element matching `css`.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "no {css} on {}: {e}\n{}",
                    self.client.current_url().await.unwrap(),
                    self.client.source().await.unwrap_or_default()
                ),
            }
        }
    }

    /// Every element matching `css`, its text.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            texts.push(element.text().await.unwrap());
        }
        texts
    }

    pub async fn click(&self, css: &str) {
        self.wait(css).await.click().await.unwrap();
    }

    /// Clicks `css` (a submit button) and waits until the page it leads to has replaced this
    /// one, so that what is read next is the new page.
    pub async fn submit(&self, css: &str) {
        self.eval("document.documentElement.dataset.leaving = '1'")
            .await;
        self.click(css).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = self
                .client
                .execute(
                    "return document.readyState === 'complete' && !document.documentElement.dataset.leaving",
                    Vec::new(),
                )
                .await
                .is_ok_and(|v| v == Value::Bool(true));
            if left {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} did not lead to another page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the link whose text is `text`.
    pub async fn click_link(&self, text: &str) {
        match self.client.find(Locator::LinkText(text)).await {
            Ok(link) => link.click().await.unwrap(),
            Err(e) => panic!("no link {text:?}: {e}\n{}", self.text().await),
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.wait(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Chooses the option of value `value` in a `<select>`.
    pub async fn select(&self, css: &str, value: &str) {
        self.wait(css).await.select_by_value(value).await.unwrap();
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// Opens `url` until its text contains `needle` (for what is written in the background),
    /// and returns the text.
    pub async fn until_text(&self, url: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            self.goto(url).await;
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never showed on {url}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// As an administrator on the users page, clicks `action` (a user's action folded away
    /// in their row's `<details>`, such as `reset-second-factors`) for `user`, and returns the
    /// note the page shows after it.
    pub async fn user_action(&self, berth: &Berth, user: &str, action: &str) -> String {
        self.goto(&berth.url("/admin/users")).await;
        self.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
            .await;
        self.submit(&format!(
            "form[action='/admin/users/{user}/{action}'] button[type=submit]"
        ))
        .await;
        self.text_of("p.notice").await
    }

    /// Signs in through the sign-in page, as a person would.
    pub async fn sign_in(&self, berth: &Berth, user: &str, password: &str) {
        self.goto(&berth.url("/sign-in")).await;
        self.fill("#username", user).await;
        self.fill("#password", password).await;
        self.click("section.sign-in button[type=submit]").await;
        let deadline = Instant::now() + WAIT;
        while self.path().await == "/sign-in" {
            assert!(
                Instant::now() < deadline,
                "sign-in as {user} did not leave the sign-in page:\n{}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the page as `<name>.png` in the test's output folder.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Sends a Chrome DevTools Protocol command through ChromeDriver (what WebDriver has no
    /// command for: emulating the system's dark mode).
    pub async fn devtools(&self, command: &str, params: Value) -> Value {
        self.extension(
            http::Method::POST,
            "goog/cdp/execute",
            Some(json!({ "cmd": command, "params": params })),
        )
        .await
    }

    /// Adds a virtual authenticator to the session (the W3C WebAuthn WebDriver extension,
    /// which ChromeDriver implements): a platform authenticator (CTAP2, internal transport)
    /// that keeps discoverable credentials and verifies its user. Returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let added = self
            .extension(
                http::Method::POST,
                "webauthn/authenticator",
                Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true,
                })),
            )
            .await;
        added
            .as_str()
            .unwrap_or_else(|| panic!("an authenticator id: {added}"))
            .to_string()
    }

    /// Removes a virtual authenticator (its credentials go with it).
    pub async fn remove_virtual_authenticator(&self, authenticator: &str) {
        self.extension(
            http::Method::DELETE,
            &format!("webauthn/authenticator/{authenticator}"),
            None,
        )
        .await;
    }

    /// Copies a credential (as [`Browser::authenticator_credentials`] lists it) into a
    /// virtual authenticator: a clone of the authenticator that made it.
    pub async fn add_credential(&self, authenticator: &str, credential: Value) {
        self.extension(
            http::Method::POST,
            &format!("webauthn/authenticator/{authenticator}/credential"),
            Some(credential),
        )
        .await;
    }

    /// The credentials a virtual authenticator holds (id, rpId, signCount, ...).
    pub async fn authenticator_credentials(&self, authenticator: &str) -> Vec<Value> {
        let listed = self
            .extension(
                http::Method::GET,
                &format!("webauthn/authenticator/{authenticator}/credentials"),
                None,
            )
            .await;
        listed.as_array().cloned().unwrap_or_default()
    }

    /// A WebDriver extension command under the session (`session/<id>/<path>`).
    async fn extension(&self, method: http::Method, path: &str, body: Option<Value>) -> Value {
        self.client
            .issue_cmd(Extension {
                method,
                path: path.to_string(),
                body,
            })
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Sets the window's outer size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, Vec::new()).await.unwrap()
    }
}

/// A WebDriver extension command under the session.
#[derive(Debug)]
struct Extension {
    method: http::Method,
    path: String,
    body: Option<Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Extension {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // ChromeDriver and every Chromium process it started share its process group.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
