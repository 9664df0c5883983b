//! Password reset by email, with a real SMTP server (aiosmtpd from PyPI, writing what it
//! receives into a Maildir) and a real headless Chromium: "forgot password" answers the same
//! for any input, the mailed link (on the public URL) sets a new password once, ends the
//! user's sessions, and `podman login` works with the new password; an administrator sends a
//! link from the users page; without `smtp` nothing of it is offered.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::clients::*;
use crate::support::{Berth, client, free_port};

/// aiosmtpd, started for one test, killed when dropped.
struct MailServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl MailServer {
    fn start() -> MailServer {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        let port = free_port();
        let python = std::env::var("BERTH_TEST_PYTHON").expect(
            "BERTH_TEST_PYTHON: the test venv's Python, with aiosmtpd (./scripts/test installs it)",
        );
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let server = MailServer {
            child,
            port,
            maildir,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Every message received so far, as text, oldest first.
    fn messages(&self) -> Vec<String> {
        let mut found: Vec<(std::time::SystemTime, String)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .flatten()
            .map(|entry| {
                (
                    entry.metadata().and_then(|m| m.modified()).unwrap(),
                    std::fs::read_to_string(entry.path()).unwrap_or_default(),
                )
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, text)| text).collect()
    }

    /// Waits for the `n`th message (counting from 1) to `to`, and returns the reset link in it.
    async fn reset_link(&self, berth: &Berth, to: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let links: Vec<String> = self
                .messages()
                .iter()
                .filter(|m| m.contains(&format!("To: {to}")))
                .filter_map(|m| link_in(m))
                .collect();
            if let Some(link) = links.get(n - 1) {
                return link.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no mail {n} to {to}: {:#?}\nberth's log:\n{}",
                self.messages(),
                berth.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reset link of a message: its text part, quoted-printable decoded.
fn link_in(message: &str) -> Option<String> {
    let text = message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let at = text.find("/sign-in/reset?token=")?;
    let start = text[..at].rfind("http")?;
    let rest = &text[start..];
    let marker = at - start;
    let token_start = marker + "/sign-in/reset?token=".len();
    let token: String = rest[token_start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (token.len() == 64).then(|| format!("{}{token}", &rest[..token_start]))
}

const ROOT: (&str, &str) = ("root", "root-password-1");

#[tokio::test]
async fn a_forgotten_password_is_reset_through_a_mailed_link_that_works_once() {
    let mail = MailServer::start();
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    ids.add_user("gus", "gus-password-1", &["--email", "gus@example.com"]);
    ids.allow("user:gus", "gus/**", "push");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_HTTP_HOST", &public)
        .env("BERTH_SMTP_HOST", "127.0.0.1")
        .env("BERTH_SMTP_PORT", &mail.port.to_string())
        .env("BERTH_SMTP_SECURITY", "none")
        .env("BERTH_SMTP_FROM", "berth <registry@example.com>")
        .arg("--addr")
        .arg(&format!("127.0.0.1:{port}"))
        .data(ids.path())
        .start();
    let sandbox = Sandbox::new();
    let host = berth.host();

    // A session of gus's elsewhere, which the reset ends.
    let elsewhere = Browser::start("password-reset-elsewhere").await;
    elsewhere.sign_in(&berth, "gus", "gus-password-1").await;

    // Any name gets the same answer; only gus's gets a mail.
    let browser = Browser::start("password-reset").await;
    let mut answers = Vec::new();
    for who in ["nobody-here", "gus@EXAMPLE.com"] {
        browser.goto(&berth.url("/sign-in")).await;
        browser.click("#forgot").await;
        browser.fill("#who", who).await;
        browser.screenshot("forgot").await;
        browser
            .submit("form[action='/sign-in/forgot'] button[type=submit]")
            .await;
        answers.push(browser.text_of("#sent").await);
    }
    assert_eq!(answers[0], answers[1]);
    browser.screenshot("forgot-sent").await;
    let link = mail.reset_link(&berth, "gus@example.com", 1).await;
    assert!(
        link.starts_with(&format!("{public}/sign-in/reset?token=")),
        "the link is on the public URL: {link}"
    );
    let message = mail.messages().concat();
    assert!(
        message.contains("text/html") && message.contains("text/plain"),
        "{message}"
    );

    // The link sets a new password once.
    browser.goto(&link).await;
    assert_eq!(browser.text_of("#reset-user").await, "gus");
    browser.fill("#new", "gus-password-2").await;
    browser.fill("#again", "gus-password-2").await;
    browser.screenshot("reset-form").await;
    browser
        .submit("form[action='/sign-in/reset'] button[type=submit]")
        .await;
    assert!(browser.text_of("#changed").await.contains("every session"));
    browser.goto(&link).await;
    assert!(browser.text().await.contains("expired or was used already"));
    browser.screenshot("reset-link-used").await;
    let used = client().get(&link).send().await.unwrap();
    assert_eq!(used.status(), 400);

    // gus's other session ended; the new password works with podman, the old one does not.
    elsewhere.goto(&berth.url("/profile")).await;
    assert_eq!(elsewhere.path().await, "/sign-in");
    assert_refused(
        podman_login(&sandbox, "gus", &host, "gus", "gus-password-1").await,
        "podman login with gus's old password",
    );
    login_build_push(
        &sandbox,
        "gus",
        (host.as_str(), "gus", "gus-password-2"),
        &format!("{host}/gus/app:v1"),
    )
    .await;

    // An administrator emails gus a link from the users page; it works as well.
    let admin = Browser::start("password-reset-admin").await;
    admin.sign_in(&berth, ROOT.0, ROOT.1).await;
    let note = admin.user_action(&berth, "gus", "send-reset").await;
    assert!(
        note.contains("A password reset link was sent to gus."),
        "{note}"
    );
    let second = mail.reset_link(&berth, "gus@example.com", 2).await;
    assert_ne!(second, link);
    browser.goto(&second).await;
    browser.fill("#new", "gus-password-3").await;
    browser.fill("#again", "gus-password-3").await;
    browser
        .submit("form[action='/sign-in/reset'] button[type=submit]")
        .await;
    assert!(browser.text_of("#changed").await.contains("every session"));
    assert_ok(
        podman_login(&sandbox, "gus", &host, "gus", "gus-password-3").await,
        "podman login with the password set through the administrator's link",
    );

    // A forged token is refused like a used one.
    let forged = client()
        .get(berth.url(&format!("/sign-in/reset?token={}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
}

#[tokio::test]
async fn without_smtp_no_reset_link_is_offered() {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    let berth = ids.start();
    let page = client()
        .get(berth.url("/sign-in"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sign in") && !page.contains("/sign-in/forgot"),
        "{page}"
    );
    let forgot = client()
        .get(berth.url("/sign-in/forgot"))
        .send()
        .await
        .unwrap();
    assert_eq!(forgot.status(), 404);
}
