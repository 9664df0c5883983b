//! Sign-in methods in a real headless Chromium, with real clients: a second factor from an
//! authenticator app (TOTP, RFC 6238; the test computes codes from the secret the page
//! shows, with the `totp-rs` crate as an app would), its recovery codes, replay refusal and
//! throttling; `auth.berth.requiremfa` sending a user to enrolment right after the password,
//! and podman refused the password but accepting a personal access token; an administrator's
//! reset; every step in the audit log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::clients::*;
use crate::support::{Berth, client};

const ROOT: (&str, &str) = ("root", "root-password-1");

/// The code an authenticator app shows for `secret` (base32, as the page shows it, spaces
/// and all) at `at`.
fn code_at(secret: &str, at: SystemTime) -> String {
    let secret: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).expect("a base32 secret"))
        .build()
        .expect("an RFC 6238 authenticator");
    totp.generate(at.duration_since(UNIX_EPOCH).unwrap().as_secs())
        .to_string()
}

/// The code of the next time step (accepted with one step of skew, and newer than any code
/// used in this step).
fn next_code(secret: &str) -> String {
    code_at(secret, SystemTime::now() + Duration::from_secs(30))
}

/// Reads the secret from an enrolment page, confirms it with the current code, and returns
/// the secret and the recovery codes shown once.
async fn enrol(browser: &Browser) -> (String, Vec<String>) {
    let secret = browser.text_of("#totp-secret").await;
    let shown = browser.wait("img.qr").await;
    let source = shown.attr("src").await.unwrap().unwrap_or_default();
    assert!(
        source.starts_with("data:image/svg+xml;base64,"),
        "the QR code is an SVG drawn by the server: {source:.60}"
    );
    browser
        .fill("#code", &code_at(&secret, SystemTime::now()))
        .await;
    browser.screenshot("enrolment").await;
    browser
        .submit("section.enrol form button[type=submit]")
        .await;
    let codes = browser.texts("#recovery-codes li").await;
    assert_eq!(codes.len(), 10, "{}", browser.text().await);
    browser.screenshot("recovery-codes").await;
    (secret, codes)
}

/// Signs in with the password; the page that follows should ask for a code.
async fn password_then_code_page(browser: &Browser, berth: &Berth, user: &str, password: &str) {
    browser.sign_in(berth, user, password).await;
    assert_eq!(
        browser.path().await,
        "/sign-in/code",
        "{}",
        browser.text().await
    );
}

/// Gives `code` at the second step: the page that follows.
async fn give_code(browser: &Browser, code: &str) -> String {
    browser.fill("#code", code).await;
    browser
        .submit("form[action='/sign-in/code'] button[type=submit]")
        .await;
    browser.text().await
}

async fn sign_out(browser: &Browser) {
    browser
        .submit("form[action='/sign-out'] button[type=submit]")
        .await;
}

/// The audit log as the admin API shows it, to `token`.
pub(crate) async fn audit(berth: &Berth, token: &str) -> Vec<Value> {
    let response = client()
        .get(berth.url("/api/v1/audit?limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the audit log holds an entry of `actor` whose detail contains `detail`.
pub(crate) async fn audited(berth: &Berth, token: &str, actor: &str, outcome: &str, detail: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let entries = audit(berth, token).await;
        let found = entries.iter().any(|e| {
            e["actor"] == actor
                && e["outcome"] == outcome
                && e["detail"].as_str().is_some_and(|d| d.contains(detail))
        });
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit entry of {actor} {outcome} {detail:?}:\n{entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_authenticator_enrolled_on_the_profile_is_asked_for_at_sign_in_and_each_code_works_once()
{
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    ids.user("erin", "erin-password-1");
    let root_token = ids.token("user:root", "audit", None);
    let berth = ids.start();

    let browser = Browser::start("second-factor").await;
    browser.sign_in(&berth, "erin", "erin-password-1").await;
    browser.goto(&berth.url("/profile")).await;
    assert!(browser.text_of("main").await.contains("Off."));
    browser.click("#second-factor-link").await;
    let (secret, recovery) = enrol(&browser).await;
    browser.click_link("Continue").await;
    assert_eq!(browser.text_of("#codes-left").await, "10");
    browser.screenshot("second-factor-on").await;
    sign_out(&browser).await;

    // The password alone no longer signs in: a code follows, and the session only after it.
    password_then_code_page(&browser, &berth, "erin", "erin-password-1").await;
    browser.screenshot("code-asked").await;
    browser.goto(&berth.url("/profile")).await;
    assert_eq!(
        browser.path().await,
        "/sign-in",
        "no session before the code"
    );
    password_then_code_page(&browser, &berth, "erin", "erin-password-1").await;
    let wrong = give_code(&browser, "000000").await;
    assert!(wrong.contains("That code was not accepted"), "{wrong}");
    let code = next_code(&secret);
    give_code(&browser, &code).await;
    assert_eq!(browser.path().await, "/");
    browser.goto(&berth.url("/profile")).await;
    assert!(browser.text_of("main").await.contains("erin"));
    sign_out(&browser).await;

    // The same code again: refused, it was used.
    password_then_code_page(&browser, &berth, "erin", "erin-password-1").await;
    let replayed = give_code(&browser, &code).await;
    assert!(
        replayed.contains("used already"),
        "a replayed code is refused: {replayed}"
    );
    browser.screenshot("code-replayed").await;

    // A recovery code works once, in any case and without its dash.
    let typed = recovery[0].replace('-', "").to_uppercase();
    give_code(&browser, &typed).await;
    assert_eq!(browser.path().await, "/", "{}", browser.text().await);
    browser.goto(&berth.url("/profile/second-factor")).await;
    assert_eq!(browser.text_of("#codes-left").await, "9");
    sign_out(&browser).await;
    password_then_code_page(&browser, &berth, "erin", "erin-password-1").await;
    let reused = give_code(&browser, &recovery[0]).await;
    assert!(reused.contains("That code was not accepted"), "{reused}");

    // Every step is in the audit log, with the method and the address.
    let erin = "user:erin";
    audited(&berth, &root_token, erin, "allowed", "enrol authenticator").await;
    audited(
        &berth,
        &root_token,
        erin,
        "allowed",
        "session: password + authenticator code",
    )
    .await;
    audited(
        &berth,
        &root_token,
        erin,
        "allowed",
        "session: password + recovery code",
    )
    .await;
    audited(
        &berth,
        &root_token,
        erin,
        "failed",
        "second factor: wrong code",
    )
    .await;
    audited(
        &berth,
        &root_token,
        erin,
        "failed",
        "second factor: that code was used already",
    )
    .await;
    let entries = audit(&berth, &root_token).await;
    assert!(
        entries
            .iter()
            .filter(|e| e["actor"] == erin && e["action"] == "login")
            .all(|e| e["client"] == "127.0.0.1"),
        "{entries:#?}"
    );

    // Wrong codes are throttled like passwords.
    let mut throttled = false;
    for _ in 0..12 {
        let page = give_code(&browser, "123456").await;
        if page.contains("Too many failed sign-ins") {
            throttled = true;
            break;
        }
        if browser.path().await != "/sign-in/code" {
            password_then_code_page(&browser, &berth, "erin", "erin-password-1").await;
        }
    }
    assert!(throttled, "wrong codes end in a wait");
    browser.screenshot("code-throttled").await;
    audited(&berth, &root_token, erin, "throttled", "second factor").await;

    // An administrator resets the lost authenticator from the users page: the password alone
    // signs in again.
    let admin = Browser::start("second-factor-reset").await;
    admin.sign_in(&berth, ROOT.0, ROOT.1).await;
    let note = admin
        .user_action(&berth, "erin", "reset-second-factors")
        .await;
    assert!(note.contains("erin's second factors were reset."), "{note}");
    audited(
        &berth,
        &root_token,
        "user:root",
        "allowed",
        "reset second factors",
    )
    .await;
    let fresh = Browser::start("second-factor-after-reset").await;
    fresh.sign_in(&berth, "erin", "erin-password-1").await;
    assert_eq!(fresh.path().await, "/");
}

#[tokio::test]
async fn with_mfa_required_users_enrol_after_the_password_and_podman_needs_an_access_token() {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    ids.user("fay", "fay-password-1");
    ids.allow("user:fay", "fay/**", "push");
    let root_token = ids.token("user:root", "automation", None);
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_AUTH_BERTH_REQUIREMFA", "all")
        .data(ids.path())
        .start();
    let sandbox = Sandbox::new();
    let host = berth.host();

    // The password is refused where no second factor can be given, and the answer says why.
    assert_refused(
        podman_login(&sandbox, "fay", &host, "fay", "fay-password-1").await,
        "podman login with fay's password",
    );
    let response = client()
        .get(berth.url("/token?service=berth&scope=repository:fay/app:pull"))
        .basic_auth("fay", Some("fay-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = response.text().await.unwrap();
    assert!(body.contains("use a personal access token"), "{body}");
    let response = client()
        .post(berth.url("/api/v1/session"))
        .json(&serde_json::json!({"username": "fay", "password": "fay-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "no session without a second factor");

    // In the browser the password leads straight to enrolment, and the session follows it.
    let browser = Browser::start("second-factor-required").await;
    browser.sign_in(&berth, "fay", "fay-password-1").await;
    assert_eq!(browser.path().await, "/sign-in/enrol");
    assert!(
        browser
            .text_of("main")
            .await
            .contains("requires a second factor")
    );
    let (secret, _) = enrol(&browser).await;
    browser.click_link("Continue").await;
    browser.goto(&berth.url("/profile")).await;
    assert_eq!(browser.path().await, "/profile");

    // A personal access token made in the dashboard works with podman.
    browser
        .fill("form[action='/profile/tokens'] input[name=name]", "laptop")
        .await;
    browser
        .submit("form[action='/profile/tokens'] button[type=submit]")
        .await;
    let token = browser.text_of("#secret").await;
    assert!(token.starts_with("berth_"), "{token}");
    login_build_push(
        &sandbox,
        "fay",
        (host.as_str(), "fay", token.as_str()),
        &format!("{host}/fay/app:v1"),
    )
    .await;

    // The admin API's session takes the password with a code.
    let response = client()
        .post(berth.url("/api/v1/session"))
        .json(&serde_json::json!({
            "username": "fay", "password": "fay-password-1", "code": next_code(&secret),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    // An administrator resets fay's second factors through the admin API: the next sign-in
    // enrols again.
    let status = client()
        .get(berth.url("/api/v1/users/fay/second-factors"))
        .bearer_auth(&root_token)
        .send()
        .await
        .unwrap();
    let info: Value = status.json().await.unwrap();
    assert_eq!(info["authenticator"], true, "{info}");
    let reset = client()
        .delete(berth.url("/api/v1/users/fay/second-factors"))
        .bearer_auth(&root_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    audited(
        &berth,
        &root_token,
        "user:root",
        "allowed",
        "reset second factors",
    )
    .await;
    let again = Browser::start("second-factor-required-again").await;
    again.sign_in(&berth, "fay", "fay-password-1").await;
    assert_eq!(again.path().await, "/sign-in/enrol");
    audited(
        &berth,
        &root_token,
        "user:fay",
        "failed",
        "use a personal access token",
    )
    .await;
}
