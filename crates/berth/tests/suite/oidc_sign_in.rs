//! OpenID Connect single sign-on against a real provider (npm `oidc-provider`, run by Node
//! for each test) in headless Chromium: "Sign in with ..." on the sign-in page, the
//! provider's login and consent, back to berth signed in; the first sign-in creates the user
//! and its groups give teams (refreshed at each sign-in); the user then makes a personal
//! access token for `podman login`. Forged and replayed callbacks are refused, audited, and
//! change nothing. (Bad ID tokens, which a real provider does not send, are checked by
//! `berth_auth::oidc`'s unit tests.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::clients::*;
use crate::support::oidc::{CLIENT_SECRET, OidcProvider};
use crate::support::{Berth, client, free_port};

const ROOT: (&str, &str) = ("root", "root-password-1");

fn dana(groups: &[&str]) -> Value {
    json!({
        "dana": {
            "preferred_username": "dana",
            "name": "Dana Scully",
            "email": "dana@example.com",
            "email_verified": true,
            "groups": groups,
        }
    })
}

/// berth (on a port chosen first, so that the provider knows its callback) with the
/// provider `testidp`, a local administrator and the `developers` team that may push
/// `developers/**`.
fn berth_with_provider(
    ids: &Identities,
    groups: &[&str],
) -> (Berth, OidcProvider, tempfile::TempDir) {
    ids.admin(ROOT.0, ROOT.1);
    ids.team("developers", &[]);
    ids.team("ops", &[]);
    ids.allow("team:developers", "developers/**", "push");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(
        &format!("{public}/sign-in/oidc/testidp/callback"),
        &dana(groups),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yml");
    std::fs::write(
        &file,
        format!(
            "auth:\n  berth:\n    oidc:\n      testidp:\n        title: Test IdP\n        issuer: {}\n        clientid: berth\n        clientsecret: {CLIENT_SECRET}\n        scopes: [profile, email, groups]\n        groupsclaim: groups\n        teams:\n          registry-developers: developers\n        teamsbyname: true\n",
            provider.issuer()
        ),
    )
    .unwrap();
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_HTTP_HOST", &public)
        .arg("--addr")
        .arg(&format!("127.0.0.1:{port}"))
        .arg(file.to_str().unwrap())
        .data(ids.path())
        .start();
    (berth, provider, dir)
}

async fn api(berth: &Berth, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = client()
        .request(method, berth.url(path))
        .basic_auth(ROOT.0, Some(ROOT.1));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Waits for an audit entry matching `wanted` (the audit writer batches).
async fn audited(berth: &Berth, what: &str, wanted: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = api(berth, reqwest::Method::GET, "/api/v1/audit?limit=500", None).await;
        if entries.as_array().unwrap().iter().any(&wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no audit entry for {what}: {entries:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Signs in as `login` through the provider, from the sign-in page, as a person would.
async fn sign_in_through_the_provider(browser: &Browser, berth: &Berth, login: &str) {
    browser.goto(&berth.url("/sign-in?next=/profile")).await;
    browser.click("a[data-provider=testidp]").await;
    browser.wait("input[name=login]").await;
    browser.screenshot("provider-login").await;
    browser.fill("input[name=login]", login).await;
    browser.fill("input[name=password]", "any password").await;
    browser.click("button[type=submit]").await;
    // The provider asks for consent once per client.
    browser.wait("button[type=submit]").await;
    if browser.text().await.contains("Authorize") {
        browser.screenshot("provider-consent").await;
        browser.click("button[type=submit]").await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.path().await != "/profile" {
        assert!(
            Instant::now() < deadline,
            "the sign-in did not end on the profile: {} {}",
            browser.path().await,
            browser.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sign_in_with_a_provider_creates_the_user_and_groups_give_teams_at_each_sign_in() {
    let ids = Identities::new();
    let (berth, provider, _config) =
        berth_with_provider(&ids, &["registry-developers", "ops", "marketing"]);

    let browser = Browser::start("oidc-sign-in").await;
    browser.goto(&berth.url("/sign-in")).await;
    assert_eq!(
        browser.text_of("a[data-provider=testidp]").await,
        "Sign in with Test IdP"
    );
    browser.screenshot("sign-in-buttons").await;
    sign_in_through_the_provider(&browser, &berth, "dana").await;
    assert!(browser.text().await.contains("dana"));
    browser.screenshot("signed-in").await;

    let user = api(&berth, reqwest::Method::GET, "/api/v1/users/dana", None).await;
    assert_eq!(user["email"], "dana@example.com", "{user}");
    assert_eq!(user["has_password"], false, "{user}");
    assert_eq!(user["teams"], json!(["developers", "ops"]), "{user}");
    audited(&berth, "dana's session", |e| {
        e["actor"] == "user:dana"
            && e["action"] == "login"
            && e["outcome"] == "allowed"
            && e["client"] == "127.0.0.1"
            && e["detail"] == "session: single sign-on (testidp)"
    })
    .await;
    audited(&berth, "dana's creation", |e| {
        e["actor"] == "source:oidc:testidp"
            && e["target"] == "user:dana"
            && e["detail"] == "create user"
    })
    .await;

    // For podman, dana makes a personal access token on her profile (no password to give).
    browser.goto(&berth.url("/profile")).await;
    browser
        .fill("form[action='/profile/tokens'] input[name=name]", "laptop")
        .await;
    browser
        .select(
            "form[action='/profile/tokens'] select[name=actions]",
            "pull,push",
        )
        .await;
    browser
        .click("form[action='/profile/tokens'] button[type=submit]")
        .await;
    let secret = browser.text_of("#secret").await;
    browser.screenshot("token-for-podman").await;
    let sandbox = Sandbox::new();
    let host = berth.host();
    login_build_push(
        &sandbox,
        "dana",
        (host.as_str(), "dana", secret.as_str()),
        &format!("{host}/developers/app:v1"),
    )
    .await;

    // Out of the developers group at the provider: the next sign-in takes the team away.
    provider.set_accounts(&dana(&["ops"]));
    let again = Browser::start("oidc-sign-in-again").await;
    sign_in_through_the_provider(&again, &berth, "dana").await;
    let user = api(&berth, reqwest::Method::GET, "/api/v1/users/dana", None).await;
    assert_eq!(user["teams"], json!(["ops"]), "{user}");
}

/// Starts a sign-in with a plain HTTP client: the `berth_sso` cookie, the provider URL and
/// the state in it.
async fn start(berth: &Berth) -> (String, String, String) {
    let response = client()
        .get(berth.url("/sign-in/oidc/testidp"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("berth_sso="))
        .expect("the sign-in's cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let state = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap()
        .to_string();
    (
        cookie.split(';').next().unwrap().to_string(),
        location,
        state,
    )
}

async fn callback(berth: &Berth, cookie: Option<&str>, query: &str) -> (u16, String) {
    let mut request = client().get(berth.url(&format!("/sign-in/oidc/testidp/callback?{query}")));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn forged_and_replayed_callbacks_are_refused_audited_and_change_nothing() {
    let ids = Identities::new();
    let (berth, provider, _config) = berth_with_provider(&ids, &["ops"]);
    let users = api(&berth, reqwest::Method::GET, "/api/v1/users", None).await;

    let (cookie, location, state) = start(&berth).await;
    assert!(
        location.starts_with(&format!("{}/auth?", provider.issuer()))
            && location.contains("code_challenge_method=S256")
            && location.contains("nonce=")
            && location.contains("state="),
        "{location}"
    );
    // A wrong state (a forged answer) is refused; the sign-in is used up by it.
    let (status, page) = callback(&berth, Some(&cookie), "code=forged&state=not-the-state").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("state does not match"), "{page}");
    // The right state now: a replay of a used-up sign-in.
    let (status, page) =
        callback(&berth, Some(&cookie), &format!("code=forged&state={state}")).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("was not started in this browser, was used already"),
        "{page}"
    );
    // No cookie at all (another browser's answer), and an error from the provider.
    let (status, page) = callback(&berth, None, &format!("code=forged&state={state}")).await;
    assert_eq!(status, 400, "{page}");
    let (cookie, _, state) = start(&berth).await;
    let (status, page) = callback(
        &berth,
        Some(&cookie),
        &format!("error=access_denied&error_description=no+thanks&state={state}"),
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("Test IdP did not sign you in: access_denied no thanks"),
        "{page}"
    );
    // A code the provider never issued, with the right state: the provider refuses it.
    let (cookie, _, state) = start(&berth).await;
    let (status, page) =
        callback(&berth, Some(&cookie), &format!("code=forged&state={state}")).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("the provider refused the sign-in: invalid_grant"),
        "{page}"
    );

    assert_eq!(
        api(&berth, reqwest::Method::GET, "/api/v1/users", None).await,
        users
    );
    audited(&berth, "the forged state", |e| {
        e["action"] == "login"
            && e["outcome"] == "failed"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("oidc:testidp: The answer's state does not match")
    })
    .await;
    // An unknown provider is the usual 404.
    let response = client()
        .get(berth.url("/sign-in/oidc/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
