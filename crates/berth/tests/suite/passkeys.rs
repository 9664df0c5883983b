//! Passkeys (WebAuthn) in a real headless Chromium with a virtual authenticator (the W3C
//! WebAuthn WebDriver extension, through ChromeDriver: CTAP2, internal transport, resident
//! keys, user verification): registering one on the profile, signing in with it alone or as
//! the second step after the password, removing it, `auth.berth.requiremfa` satisfied by
//! one, an administrator's reset; and answers that must be refused (replayed, for another
//! origin or relying party id, from a cloned authenticator whose counter went back), each
//! refused with a clear message, changing nothing, and audited.
//!
//! Browsers offer WebAuthn only to secure origins, and a relying party id must be a domain
//! name: berth runs with `http.host: http://localhost:<port>` and the browser opens it there.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dashboard_security::{Session, hidden_value};
use crate::sign_in::audited;
use crate::support::Berth;
use crate::support::accounts::Identities;
use crate::support::browser::Browser;

const ROOT: (&str, &str) = ("root", "root-password-1");
const USER: (&str, &str) = ("pia", "pia-password-1");

/// berth on a free port whose public URL is `http://localhost:<port>`, with passkeys on.
struct Site {
    berth: Berth,
    root_token: String,
    _ids: Identities,
}

impl Site {
    fn start(extra: &[(&str, &str)]) -> Site {
        let ids = Identities::new();
        ids.admin(ROOT.0, ROOT.1);
        ids.user(USER.0, USER.1);
        let root_token = ids.token("user:root", "audit", None);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut builder = Berth::builder()
            .env("REGISTRY_AUTH", "berth")
            .env("REGISTRY_HTTP_HOST", &format!("http://localhost:{port}"))
            .env("BERTH_AUTH_BERTH_PASSKEYS", "on")
            .arg("--addr")
            .arg(&format!("127.0.0.1:{port}"))
            .data(ids.path());
        for (key, value) in extra {
            builder = builder.env(key, value);
        }
        Site {
            berth: builder.start(),
            root_token,
            _ids: ids,
        }
    }

    /// A URL of the site at its public name.
    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.berth.addr.port())
    }
}

/// A browser with a virtual authenticator; its id.
async fn browser_with_authenticator(test: &str) -> (Browser, String) {
    let browser = Browser::start(test).await;
    let authenticator = browser.add_virtual_authenticator().await;
    (browser, authenticator)
}

/// A site where pia registered a passkey ("laptop") in this browser and signed out; the
/// authenticator's id.
async fn with_a_passkey(test: &str) -> (Site, Browser, String) {
    let site = Site::start(&[]);
    let (browser, authenticator) = browser_with_authenticator(test).await;
    password_sign_in(&browser, &site, USER.0, USER.1).await;
    register(&browser, &site, "laptop").await;
    sign_out(&browser).await;
    (site, browser, authenticator)
}

/// Signs in with the password on the site's public URL: the path the browser lands on.
async fn password_sign_in(browser: &Browser, site: &Site, user: &str, password: &str) -> String {
    browser.goto(&site.url("/sign-in")).await;
    browser.fill("#username", user).await;
    browser.fill("#password", password).await;
    browser
        .submit("section.sign-in > form[action='/sign-in'] button[type=submit]")
        .await;
    browser.path().await
}

async fn sign_out(browser: &Browser) {
    browser
        .submit("form[action='/sign-out'] button[type=submit]")
        .await;
}

/// Registers a passkey named `name` on the profile's passkeys page.
async fn register(browser: &Browser, site: &Site, name: &str) {
    browser.goto(&site.url("/profile/passkeys")).await;
    browser.fill("#passkey-name", name).await;
    browser
        .submit("form[action='/profile/passkeys/register'] button[type=submit]")
        .await;
    let note = browser.text_of("main").await;
    assert!(
        note.contains(&format!("Passkey \"{name}\" added.")),
        "{note}"
    );
}

/// Clicks "Sign in with a passkey" on the sign-in page: the path the browser lands on.
async fn passkey_sign_in(browser: &Browser, site: &Site) -> String {
    browser.goto(&site.url("/sign-in")).await;
    browser.submit("#passkey-sign-in button[type=submit]").await;
    browser.path().await
}

/// The names of the passkeys the profile lists, with their "last used" text.
async fn listed(browser: &Browser, site: &Site) -> Vec<(String, String)> {
    browser.goto(&site.url("/profile/passkeys")).await;
    let names = browser.texts("#passkeys td.name").await;
    let used = browser.texts("#passkeys td.last-used").await;
    names.into_iter().zip(used).collect()
}

/// Holds back the passkey form's own submission and returns the answer the script was
/// about to post (the ceremony has begun on the server: its cookie is set). The form can
/// then be submitted with any answer by [`post_answer`].
async fn capture_answer(browser: &Browser, form: &str) -> String {
    browser
        .eval(
            "window.heldAnswer = null;
             HTMLFormElement.prototype.realSubmit = HTMLFormElement.prototype.realSubmit
                 || HTMLFormElement.prototype.submit;
             HTMLFormElement.prototype.submit = function () {
                 window.heldAnswer = this.elements.credential.value;
             };",
        )
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Value::String(answer) = browser.eval("return window.heldAnswer").await {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "the script gave no answer: {}",
            browser.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits the passkey form `form` with `answer`, as the script would: the page that follows.
async fn post_answer(browser: &Browser, form: &str, answer: &str) -> String {
    browser
        .eval(&format!(
            "document.documentElement.dataset.leaving = '1';
             var form = document.querySelector({form:?});
             form.elements.credential.value = {answer};
             (HTMLFormElement.prototype.realSubmit || HTMLFormElement.prototype.submit).call(form);",
            form = form,
            answer = serde_json::to_string(answer).unwrap(),
        ))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser
        .eval("return document.readyState === 'complete' && !document.documentElement.dataset.leaving")
        .await
        != Value::Bool(true)
    {
        assert!(Instant::now() < deadline, "the answer led to no page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.text().await
}

/// Begins a passwordless sign-in, changes a field of the passkey's answer (`change` gets the
/// field's bytes) and posts it: the page that follows.
async fn forge(
    browser: &Browser,
    site: &Site,
    field: &str,
    change: impl FnOnce(&mut Vec<u8>),
) -> String {
    browser.goto(&site.url("/sign-in")).await;
    let answer = capture_answer(browser, SIGN_IN_FORM).await;
    let mut json: Value = serde_json::from_str(&answer).unwrap();
    let text = json["response"][field].as_str().unwrap();
    let mut bytes = BASE64URL_NOPAD.decode(text.as_bytes()).unwrap();
    change(&mut bytes);
    json["response"][field] = Value::String(BASE64URL_NOPAD.encode(&bytes));
    post_answer(browser, SIGN_IN_FORM, &json.to_string()).await
}

const SIGN_IN_FORM: &str = "#passkey-sign-in form";

/// The status line the passkey form shows, once it says something.
async fn form_status(browser: &Browser, form: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = browser.text_of(&format!("{form} .passkey-status")).await;
        if !text.is_empty() && !text.contains("Waiting") {
            return text;
        }
        assert!(Instant::now() < deadline, "{form} said nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn passkeys_registered_on_the_profile_are_listed_by_name_with_their_last_use() {
    let site = Site::start(&[]);
    let (browser, laptop) = browser_with_authenticator("passkey-register").await;
    assert_eq!(password_sign_in(&browser, &site, USER.0, USER.1).await, "/");
    browser.goto(&site.url("/profile")).await;
    assert_eq!(browser.text_of("#passkeys-link").await, "Add a passkey");
    browser.click("#passkeys-link").await;
    assert!(
        browser
            .text_of("#no-passkeys")
            .await
            .contains("no passkeys")
    );
    register(&browser, &site, "laptop").await;

    let credentials = browser.authenticator_credentials(&laptop).await;
    assert_eq!(credentials.len(), 1, "{credentials:#?}");
    assert_eq!(credentials[0]["rpId"], "localhost");
    assert_eq!(
        credentials[0]["isResidentCredential"], true,
        "a discoverable credential, for signing in without a password"
    );

    // The same authenticator is not registered twice.
    browser.goto(&site.url("/profile/passkeys")).await;
    browser.fill("#passkey-name", "laptop again").await;
    browser
        .click("form[action='/profile/passkeys/register'] button[type=submit]")
        .await;
    let status = form_status(&browser, "form[action='/profile/passkeys/register']").await;
    assert!(status.contains("The passkey did not work"), "{status}");

    // A second authenticator (a phone, a YubiKey) is a second passkey.
    browser.remove_virtual_authenticator(&laptop).await;
    browser.add_virtual_authenticator().await;
    register(&browser, &site, "phone").await;
    assert_eq!(
        listed(&browser, &site).await,
        [
            ("laptop".to_string(), "never".to_string()),
            ("phone".to_string(), "never".to_string())
        ]
    );
    sign_out(&browser).await;
    assert_eq!(passkey_sign_in(&browser, &site).await, "/");
    let after = listed(&browser, &site).await;
    assert_eq!(after[0], ("laptop".to_string(), "never".to_string()));
    assert_ne!(
        after[1].1, "never",
        "the phone's use is recorded: {after:?}"
    );
    browser.goto(&site.url("/profile/passkeys")).await;
    browser.screenshot("profile-passkeys").await;
    browser.goto(&site.url("/profile")).await;
    assert_eq!(browser.text_of("#passkeys-link").await, "Manage");
    browser.screenshot("profile").await;
    audited(
        &site.berth,
        &site.root_token,
        "user:pia",
        "allowed",
        "register passkey \"laptop\"",
    )
    .await;
    audited(
        &site.berth,
        &site.root_token,
        "user:pia",
        "allowed",
        "register passkey \"phone\"",
    )
    .await;
}

#[tokio::test]
async fn a_passkey_signs_in_without_a_password() {
    let (site, browser, _) = with_a_passkey("passkey-passwordless").await;

    browser.goto(&site.url("/sign-in")).await;
    assert!(
        browser
            .text_of("#passkey-sign-in")
            .await
            .contains("Sign in with a passkey")
    );
    browser.screenshot("sign-in-page").await;
    // No user name, no password: the passkey names its user.
    browser.goto(&site.url("/sign-in?next=/profile")).await;
    browser.submit("#passkey-sign-in button[type=submit]").await;
    assert_eq!(browser.path().await, "/profile");
    assert!(browser.text_of("main h1").await.contains("pia"));
    audited(
        &site.berth,
        &site.root_token,
        "user:pia",
        "allowed",
        "session: passkey \"laptop\"",
    )
    .await;

    // Without JavaScript the button cannot work, and the page says why.
    let plain = Browser::start_without_javascript("passkey-no-script").await;
    plain.goto(&site.url("/sign-in")).await;
    plain.submit("#passkey-sign-in button[type=submit]").await;
    assert!(
        plain
            .text_of("p.failure")
            .await
            .contains("Passkeys need JavaScript"),
        "{}",
        plain.text().await
    );
}

#[tokio::test]
async fn a_passkey_is_the_second_step_after_the_password() {
    let (site, browser, _) = with_a_passkey("passkey-second-factor").await;

    // The password alone no longer makes a session: the passkey step follows.
    assert_eq!(
        password_sign_in(&browser, &site, USER.0, USER.1).await,
        "/sign-in/code"
    );
    let step = browser.text_of("main").await;
    assert!(step.contains("Use your passkey"), "{step}");
    assert!(
        !step.contains("six-digit code"),
        "no authenticator app to ask for: {step}"
    );
    browser.screenshot("second-step").await;
    browser.goto(&site.url("/profile")).await;
    assert_eq!(
        browser.path().await,
        "/sign-in",
        "no session before the passkey"
    );
    password_sign_in(&browser, &site, USER.0, USER.1).await;
    browser
        .submit("#passkey-second-step button[type=submit]")
        .await;
    assert_eq!(browser.path().await, "/", "{}", browser.text().await);
    audited(
        &site.berth,
        &site.root_token,
        "user:pia",
        "allowed",
        "session: password + passkey",
    )
    .await;

    // The admin API cannot take a passkey, and says what to do instead.
    let response = crate::support::client()
        .post(site.berth.url("/api/v1/session"))
        .json(&serde_json::json!({"username": USER.0, "password": USER.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = response.text().await.unwrap();
    assert!(body.contains("second factor is a passkey"), "{body}");
}

#[tokio::test]
async fn a_removed_passkey_no_longer_signs_in() {
    let site = Site::start(&[]);
    let (browser, _) = browser_with_authenticator("passkey-remove").await;
    password_sign_in(&browser, &site, USER.0, USER.1).await;
    register(&browser, &site, "laptop").await;
    browser
        .submit("#passkeys form[action$='/remove'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Passkey \"laptop\" removed.")
    );
    assert!(
        browser
            .text_of("#no-passkeys")
            .await
            .contains("no passkeys")
    );
    audited(
        &site.berth,
        &site.root_token,
        "user:pia",
        "allowed",
        "remove passkey \"laptop\"",
    )
    .await;
    sign_out(&browser).await;

    // The authenticator still holds the credential, but berth no longer knows it; and the
    // password alone signs in again.
    let text = {
        passkey_sign_in(&browser, &site).await;
        browser.text().await
    };
    assert_eq!(browser.path().await, "/sign-in/passkey");
    assert!(
        text.contains("the passkey is not registered here"),
        "{text}"
    );
    assert_eq!(password_sign_in(&browser, &site, USER.0, USER.1).await, "/");
    audited(
        &site.berth,
        &site.root_token,
        "anonymous",
        "failed",
        "passkey: the passkey is not registered here",
    )
    .await;
}

#[tokio::test]
async fn with_mfa_required_a_passkey_registered_at_enrolment_satisfies_it() {
    let site = Site::start(&[("BERTH_AUTH_BERTH_REQUIREMFA", "all")]);
    let (browser, _) = browser_with_authenticator("passkey-requiremfa").await;
    assert_eq!(
        password_sign_in(&browser, &site, USER.0, USER.1).await,
        "/sign-in/enrol"
    );
    browser.screenshot("enrolment-with-passkey").await;
    browser.fill("#passkey-name", "laptop").await;
    browser.submit("#passkey-enrol button[type=submit]").await;
    assert_eq!(browser.path().await, "/", "{}", browser.text().await);
    audited(
        &site.berth,
        &site.root_token,
        "user:pia",
        "allowed",
        "session: password + registered passkey \"laptop\"",
    )
    .await;

    // The only second factor of a user who must have one cannot be removed.
    browser.goto(&site.url("/profile/passkeys")).await;
    browser
        .submit("#passkeys form[action$='/remove'] button[type=submit]")
        .await;
    assert!(
        browser.text_of("p.failure").await.contains("your only one"),
        "{}",
        browser.text().await
    );
    sign_out(&browser).await;

    // From now on the passkey is the second step, or the whole sign-in.
    assert_eq!(
        password_sign_in(&browser, &site, USER.0, USER.1).await,
        "/sign-in/code"
    );
    browser
        .submit("#passkey-second-step button[type=submit]")
        .await;
    assert_eq!(browser.path().await, "/");
    sign_out(&browser).await;
    assert_eq!(passkey_sign_in(&browser, &site).await, "/");
}

#[tokio::test]
async fn a_replayed_passkey_answer_is_refused_and_audited() {
    let (site, browser, _) = with_a_passkey("passkey-replay").await;

    browser.goto(&site.url("/sign-in")).await;
    let first = capture_answer(&browser, SIGN_IN_FORM).await;
    post_answer(&browser, SIGN_IN_FORM, &first).await;
    assert_eq!(browser.path().await, "/", "the answer itself is good");
    sign_out(&browser).await;

    // The same answer again: its challenge was used up.
    browser.goto(&site.url("/sign-in")).await;
    let page = post_answer(&browser, SIGN_IN_FORM, &first).await;
    assert!(
        page.contains(
            "The passkey was not accepted: the passkey request has expired or was answered already"
        ),
        "{page}"
    );
    // The old answer to a new challenge: it answers another sign-in.
    browser.goto(&site.url("/sign-in")).await;
    capture_answer(&browser, SIGN_IN_FORM).await;
    let page = post_answer(&browser, SIGN_IN_FORM, &first).await;
    assert!(
        page.contains("the passkey answered another sign-in"),
        "{page}"
    );
    browser.screenshot("replay-refused").await;
    browser.goto(&site.url("/profile")).await;
    assert_eq!(browser.path().await, "/sign-in", "no session");
    // Audited as the user whose passkey the answer names, when it names one.
    for (actor, detail) in [
        (
            "anonymous",
            "passkey: the passkey request has expired or was answered already",
        ),
        ("user:pia", "passkey: the passkey answered another sign-in"),
    ] {
        audited(&site.berth, &site.root_token, actor, "failed", detail).await;
    }
}

#[tokio::test]
async fn answers_for_another_origin_or_relying_party_or_from_a_cloned_authenticator_are_refused() {
    let (site, browser, authenticator) = with_a_passkey("passkey-forged").await;
    // Two uses, so that the signature counter is past 1.
    for _ in 0..2 {
        assert_eq!(passkey_sign_in(&browser, &site).await, "/");
        sign_out(&browser).await;
    }
    let before = stored(&site).await;
    let sign_count =
        browser.authenticator_credentials(&authenticator).await[0]["signCount"].clone();
    assert_eq!(
        Value::from(before[0].1),
        sign_count,
        "each use records the authenticator's signature counter: {before:?}"
    );
    assert!(before[0].2.is_some(), "and when it was used");

    // The client data says another origin (a phishing site relaying the challenge).
    let page = forge(&browser, &site, "clientDataJSON", |bytes| {
        let mut data: Value = serde_json::from_slice(bytes).unwrap();
        data["origin"] = Value::String("http://berth.example.net".into());
        *bytes = serde_json::to_vec(&data).unwrap();
    })
    .await;
    assert!(
        page.contains("the passkey answered for another site (origin http://berth.example.net)"),
        "{page}"
    );

    // The authenticator data was signed for another relying party id.
    let page = forge(&browser, &site, "authenticatorData", |bytes| {
        bytes[..32].copy_from_slice(&Sha256::digest(b"berth.example.net"));
    })
    .await;
    assert!(
        page.contains("signed for another relying party id"),
        "{page}"
    );

    // A forged signature.
    let page = forge(&browser, &site, "signature", |bytes| {
        let last = bytes.len() - 2;
        bytes[last] ^= 0x5a;
    })
    .await;
    assert!(page.contains("The passkey was not accepted"), "{page}");

    // A clone of the authenticator, its signature counter back at zero.
    let mut credential = browser.authenticator_credentials(&authenticator).await[0].clone();
    assert!(
        credential["signCount"].as_u64().unwrap() >= 2,
        "{credential}"
    );
    credential["signCount"] = Value::from(0);
    browser.remove_virtual_authenticator(&authenticator).await;
    let clone = browser.add_virtual_authenticator().await;
    browser.add_credential(&clone, credential).await;
    passkey_sign_in(&browser, &site).await;
    let page = browser.text().await;
    assert!(page.contains("may have been cloned"), "{page}");
    browser.screenshot("cloned-refused").await;

    // Nothing changed: no session, the passkey's record as it was; every refusal audited.
    browser.goto(&site.url("/profile")).await;
    assert_eq!(browser.path().await, "/sign-in");
    assert_eq!(stored(&site).await, before);
    for detail in [
        "passkey: the passkey answered for another site",
        "passkey: the passkey's answer was signed for another relying party id",
        "passkey: the passkey's signature",
        "passkey: the passkey's signature counter went backwards",
    ] {
        audited(&site.berth, &site.root_token, "user:pia", "failed", detail).await;
    }
}

/// The user's passkeys as the database holds them: name, signature counter, last use.
async fn stored(site: &Site) -> Vec<(String, i64, Option<i64>)> {
    let store = berth_meta::SqliteStore::open(&site.berth.data_dir().join("berth.db"))
        .await
        .expect("the registry's database");
    berth_meta::PasskeyStore::passkeys(&store, USER.0)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.counter, p.last_used_at))
        .collect()
}

#[tokio::test]
async fn an_administrators_reset_of_second_factors_removes_passkeys() {
    let (site, browser, _) = with_a_passkey("passkey-admin-reset").await;

    let admin = Browser::start("passkey-admin-reset-admin").await;
    admin.sign_in(&site.berth, ROOT.0, ROOT.1).await;
    let note = admin
        .user_action(&site.berth, USER.0, "reset-second-factors")
        .await;
    assert!(note.contains("pia's second factors were reset."), "{note}");
    audited(
        &site.berth,
        &site.root_token,
        "user:root",
        "allowed",
        "reset second factors",
    )
    .await;

    passkey_sign_in(&browser, &site).await;
    assert!(
        browser
            .text()
            .await
            .contains("the passkey is not registered here")
    );
    assert_eq!(password_sign_in(&browser, &site, USER.0, USER.1).await, "/");
    browser.goto(&site.url("/profile/passkeys")).await;
    assert!(
        browser
            .text_of("#no-passkeys")
            .await
            .contains("no passkeys")
    );
    assert!(stored(&site).await.is_empty());
}

#[tokio::test]
async fn passkeys_on_without_a_usable_public_url_refuse_to_start() {
    for (host, says) in [
        (None, "set http.host"),
        (
            Some("http://127.0.0.1:5000"),
            "an IP address cannot be a WebAuthn relying party id",
        ),
        (Some("http://registry.example.com"), "not https"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("REGISTRY_AUTH", "berth")
            .env("BERTH_AUTH_BERTH_PASSKEYS", "on")
            .env_remove("REGISTRY_HTTP_HOST");
        if let Some(host) = host {
            command.env("REGISTRY_HTTP_HOST", host);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{host:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains("passkeys"), "{host:?}: {text}");
        assert!(text.contains(says), "{host:?}: {text}");
    }
}

#[tokio::test]
async fn passkey_requests_with_bad_input_are_refused_without_a_500_and_throttled() {
    let site = Site::start(&[]);
    let berth = &site.berth;
    let mut visitor = Session::new();
    let (_, page) = visitor.get(berth, "/sign-in").await;
    let token = hidden_value(&page, "csrf");

    // Options need the form's CSRF token, and answer in JSON either way.
    let (status, body) = visitor
        .post(berth, "/sign-in/passkey/options", &[("csrf", "forged")])
        .await;
    assert_eq!(status, 403, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("security token"),
        "{body}"
    );
    let (status, body) = visitor
        .post(berth, "/sign-in/passkey/options", &[("csrf", &token)])
        .await;
    assert_eq!(status, 200, "{body}");
    let options: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(options["publicKey"]["rpId"], "localhost", "{options}");
    assert_eq!(
        options["publicKey"]["userVerification"], "required",
        "{options}"
    );
    assert!(options.get("mediation").is_none(), "{options}");
    assert!(
        !body.contains("\"ast\""),
        "the ceremony's state stays on the server: {body}"
    );

    // Answers that are not answers: refused with the sign-in page, never a 500.
    let oversized = "x".repeat(9000);
    let bad_answers = [
        "not json",
        "{}",
        r#"{"id":"AA","rawId":"AA","type":"public-key","response":{"authenticatorData":"AA","clientDataJSON":"AA","signature":"AA","userHandle":null},"extensions":{}}"#,
        oversized.as_str(),
    ];
    for answer in bad_answers {
        visitor
            .post(berth, "/sign-in/passkey/options", &[("csrf", &token)])
            .await;
        let (status, page) = visitor
            .post(
                berth,
                "/sign-in/passkey",
                &[("csrf", &token), ("credential", answer)],
            )
            .await;
        assert!(matches!(status, 400 | 401 | 429), "{status}: {page}");
    }

    // Refusals from one address end in a wait, as wrong passwords do.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, page) = visitor
            .post(
                berth,
                "/sign-in/passkey",
                &[("csrf", &token), ("credential", "{}")],
            )
            .await;
        statuses.push(status);
        if status == 429 {
            assert!(page.contains("Too many failed sign-ins"), "{page}");
            break;
        }
        assert!(page.contains("The passkey was not accepted"), "{page}");
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // (This address is held back now, the admin API included: read the audit log directly.)
    let store = berth_meta::SqliteStore::open(&berth.data_dir().join("berth.db"))
        .await
        .expect("the registry's database");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = berth_meta::IdentityStore::list_audit(&store, 500, None)
            .await
            .unwrap();
        if events
            .iter()
            .any(|(_, e)| e.outcome == "throttled" && e.detail == "passkey")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no throttled passkey sign-in in the audit log"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn beginning_passwordless_sign_ins_is_capped_per_address() {
    let site = Site::start(&[]);
    let berth = &site.berth;
    let mut visitor = Session::new();
    let (_, page) = visitor.get(berth, "/sign-in").await;
    let token = hidden_value(&page, "csrf");
    // Each start stores a challenge for five minutes: one address gets 30 a minute.
    let mut statuses = Vec::new();
    let mut refusal = String::new();
    for _ in 0..40 {
        let (status, body) = visitor
            .post(berth, "/sign-in/passkey/options", &[("csrf", &token)])
            .await;
        statuses.push(status);
        if status != 200 {
            refusal = body;
            break;
        }
    }
    assert_eq!(statuses.len(), 31, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let refusal: Value = serde_json::from_str(&refusal).unwrap();
    assert!(refusal["error"].as_str().is_some(), "{refusal}");
    // Passwords still sign in from there.
    let (status, _) = visitor
        .post(
            berth,
            "/sign-in",
            &[
                ("csrf", &token),
                ("username", "root"),
                ("password", ROOT.1),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(status, 303);
}
