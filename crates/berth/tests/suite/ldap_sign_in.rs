//! LDAP sign-in against a real OpenLDAP `slapd` (started per test, StartTLS with its own CA):
//! directory users sign in to the dashboard in headless Chromium and with `podman login`,
//! their groups give teams and push rights, a user removed from the directory (or from a
//! group) loses access at the next sign-in, injection strings never reach a filter, local
//! users are never taken over, and a directory that is down is a clear 503 that locks out
//! neither local users nor tokens.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::clients::*;
use crate::support::ldap::{Person, Slapd};
use crate::support::{Berth, assert_oci_error, client};

const ROOT: (&str, &str) = ("root", "root-password-1");
const ALICE: Person = Person {
    uid: "alice",
    name: "Alice Liddell",
    password: "alice-directory-1",
};
const BOB: Person = Person {
    uid: "bob",
    name: "Bob Builder",
    password: "bob-directory-1",
};
const CAROL: Person = Person {
    uid: "carol",
    name: "Carol Admin",
    password: "carol-directory-1",
};

/// Alice is a developer, Bob is in no group, Carol administers the registry (and develops).
fn directory() -> Slapd {
    Slapd::start(
        &[ALICE, BOB, CAROL],
        &[
            ("registry-developers", &["alice", "carol"]),
            ("ops", &["alice", "carol"]),
            ("registry-admins", &["carol"]),
        ],
    )
}

/// berth with a local administrator, the `developers` team (which may push `developers/**`)
/// and the `ops` team, signing directory users in through `slapd`.
fn berth(slapd: &Slapd, ids: &Identities) -> (Berth, tempfile::TempDir) {
    ids.admin(ROOT.0, ROOT.1);
    ids.team("developers", &[]);
    ids.team("ops", &[]);
    ids.allow("team:developers", "developers/**", "push");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yml");
    std::fs::write(
        &file,
        slapd.config(
            "      teams:\n        registry-developers: developers\n      teamsbyname: true\n      admingroup: registry-admins\n",
        ),
    )
    .unwrap();
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .arg(file.to_str().unwrap())
        .data(ids.path())
        .start();
    (berth, dir)
}

async fn api(berth: &Berth, path: &str) -> Value {
    let response = client()
        .get(berth.url(path))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Waits for an audit entry matching `wanted` (the audit writer batches).
async fn audited(berth: &Berth, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = api(berth, "/api/v1/audit?limit=500").await;
        if let Some(found) = entries.as_array().unwrap().iter().find(|e| wanted(e)) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no audit entry for {what}: {entries:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /token` with Basic credentials: what `podman login` asks first.
async fn token(berth: &Berth, user: &str, password: &str) -> reqwest::Response {
    client()
        .get(berth.url("/token?service=berth&scope=repository:developers/app:pull,push"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn directory_users_sign_in_to_the_dashboard_and_podman_and_groups_give_push_rights() {
    let slapd = directory();
    let ids = Identities::new();
    let (berth, _config) = berth(&slapd, &ids);
    let host = berth.host();
    let sandbox = Sandbox::new();

    // Alice signs in to the dashboard with her directory password: berth creates her, with
    // her email and the teams her groups give.
    let browser = Browser::start("ldap-sign-in").await;
    browser.goto(&berth.url("/sign-in")).await;
    browser.screenshot("sign-in").await;
    browser.sign_in(&berth, "alice", ALICE.password).await;
    browser.goto(&berth.url("/profile")).await;
    browser.screenshot("profile").await;
    assert!(browser.text().await.contains("alice"));
    let alice = api(&berth, "/api/v1/users/alice").await;
    assert_eq!(alice["email"], "alice@example.com", "{alice}");
    assert_eq!(alice["admin"], false, "{alice}");
    assert_eq!(alice["has_password"], false, "{alice}");
    assert_eq!(
        alice["teams"],
        serde_json::json!(["developers", "ops"]),
        "{alice}"
    );
    audited(&berth, "alice's session", |e| {
        e["actor"] == "user:alice"
            && e["action"] == "login"
            && e["outcome"] == "allowed"
            && e["client"] == "127.0.0.1"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("LDAP password")
    })
    .await;
    audited(&berth, "alice's creation by the directory", |e| {
        e["actor"] == "source:ldap" && e["target"] == "user:alice" && e["detail"] == "create user"
    })
    .await;

    // podman with the directory password: the developers team may push developers/**.
    login_build_push(
        &sandbox,
        "alice",
        (host.as_str(), "alice", ALICE.password),
        &format!("{host}/developers/app:v1"),
    )
    .await;
    // Bob is in no group: he signs in, but may not push there.
    assert_ok(
        podman_login(&sandbox, "bob", &host, "bob", BOB.password).await,
        "podman login with bob's directory password",
    );
    podman_build(&sandbox, "bob", "bobs").await;
    assert_refused(
        podman_push(
            &sandbox,
            "bob",
            "localhost/bobs:latest",
            &format!("{host}/developers/bobs:v1"),
        )
        .await,
        "bob pushing to developers/** without the group",
    );
    // The wrong password is refused like any other.
    assert_refused(
        podman_login(&sandbox, "bob", &host, "bob", "not-bobs-password").await,
        "podman login with a wrong directory password",
    );
    // Carol is in the admin group: an administrator of berth.
    assert_eq!(token(&berth, "carol", CAROL.password).await.status(), 200);
    let carol = api(&berth, "/api/v1/users/carol").await;
    assert_eq!(carol["admin"], true, "{carol}");
}

#[tokio::test]
async fn a_user_removed_from_the_directory_or_a_group_loses_access_at_the_next_sign_in() {
    let slapd = directory();
    let ids = Identities::new();
    let (berth, _config) = berth(&slapd, &ids);
    let host = berth.host();
    let sandbox = Sandbox::new();
    assert_ok(
        podman_login(&sandbox, "alice", &host, "alice", ALICE.password).await,
        "podman login as alice",
    );
    let browser = Browser::start("ldap-removed").await;
    browser.sign_in(&berth, "alice", ALICE.password).await;

    // Out of the developers group: the next sign-in takes the team away (ops stays).
    slapd.remove_member("registry-developers", "alice");
    assert_eq!(token(&berth, "alice", ALICE.password).await.status(), 200);
    let alice = api(&berth, "/api/v1/users/alice").await;
    assert_eq!(alice["teams"], serde_json::json!(["ops"]), "{alice}");
    audited(&berth, "the membership's removal", |e| {
        e["actor"] == "source:ldap"
            && e["target"] == "team:developers"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("remove member alice")
    })
    .await;

    // Out of the directory: refused at the dashboard and with podman, disabled in berth
    // (her session ends), audited.
    slapd.delete_person("alice");
    let other = Browser::start("ldap-removed-again").await;
    other.goto(&berth.url("/sign-in")).await;
    other.fill("#username", "alice").await;
    other.fill("#password", ALICE.password).await;
    other.click("section.sign-in button[type=submit]").await;
    assert!(
        other
            .text_of("p.failure")
            .await
            .contains("Wrong user name, password or token"),
        "{}",
        other.text().await
    );
    other.screenshot("removed-user-refused").await;
    assert_refused(
        podman_login(&sandbox, "alice", &host, "alice", ALICE.password).await,
        "podman login of a user removed from the directory",
    );
    let alice = api(&berth, "/api/v1/users/alice").await;
    assert_eq!(alice["disabled"], true, "{alice}");
    audited(&berth, "alice's disabling", |e| {
        e["actor"] == "source:ldap"
            && e["target"] == "user:alice"
            && e["detail"] == "disable user: gone from ldap"
    })
    .await;
    browser.goto(&berth.url("/profile")).await;
    assert_eq!(browser.path().await, "/sign-in", "her session ended");
}

#[tokio::test]
async fn ldap_injection_in_the_user_name_is_refused_and_audited() {
    let slapd = directory();
    let ids = Identities::new();
    let (berth, _config) = berth(&slapd, &ids);
    let users_before = api(&berth, "/api/v1/users").await;

    // With any user's password, a filter-breaking name finds nobody and creates nobody.
    for name in ["*)(uid=*", "*", "alice)(|(uid=*", "al*"] {
        let response = token(&berth, name, ALICE.password).await;
        assert_oci_error(response, 401, "UNAUTHORIZED").await;
    }
    let browser = Browser::start("ldap-injection").await;
    browser.goto(&berth.url("/sign-in")).await;
    browser.fill("#username", "*)(uid=*").await;
    browser.fill("#password", ALICE.password).await;
    browser.click("section.sign-in button[type=submit]").await;
    let failure = browser.text_of("p.failure").await;
    assert!(failure.contains("Invalid user name"), "{failure}");
    browser.screenshot("injection-refused").await;
    assert_eq!(api(&berth, "/api/v1/users").await, users_before);
    audited(&berth, "the refused name", |e| {
        e["actor"] == "user:*)(uid=*"
            && e["action"] == "login"
            && e["outcome"] == "failed"
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("invalid user name")
    })
    .await;
}

#[tokio::test]
async fn a_local_user_is_never_taken_over_by_a_directory_user_of_the_same_name() {
    let slapd = directory();
    let ids = Identities::new();
    ids.user("bob", "bob-local-password-1");
    let (berth, _config) = berth(&slapd, &ids);
    assert_oci_error(
        token(&berth, "bob", BOB.password).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_eq!(
        token(&berth, "bob", "bob-local-password-1").await.status(),
        200
    );
    let bob = api(&berth, "/api/v1/users/bob").await;
    assert_eq!(bob["has_password"], true, "{bob}");
}

#[tokio::test]
async fn a_directory_that_is_down_is_a_503_and_local_users_and_tokens_still_work() {
    let mut slapd = directory();
    let ids = Identities::new();
    let (berth, _config) = berth(&slapd, &ids);
    // Alice's first sign-in, and a personal access token she keeps for CI.
    assert_eq!(token(&berth, "alice", ALICE.password).await.status(), 200);
    let secret = ids_token(&berth, "alice").await;

    slapd.stop();
    let refused = token(&berth, "alice", ALICE.password).await;
    let body = assert_oci_error(refused, 503, "UNAVAILABLE").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the LDAP directory cannot be reached"),
        "{body}"
    );
    let page = Browser::start("ldap-down").await;
    page.goto(&berth.url("/sign-in")).await;
    page.fill("#username", "alice").await;
    page.fill("#password", ALICE.password).await;
    page.click("section.sign-in button[type=submit]").await;
    let text = page.text().await;
    assert!(
        text.contains("Sign-in unavailable")
            && text.contains("The LDAP directory cannot be reached"),
        "{text}"
    );
    page.screenshot("directory-down").await;
    // The local administrator signs in (dashboard and podman), and alice's token works.
    page.sign_in(&berth, ROOT.0, ROOT.1).await;
    let sandbox = Sandbox::new();
    assert_ok(
        podman_login(&sandbox, "root", &berth.host(), ROOT.0, ROOT.1).await,
        "podman login as a local user while the directory is down",
    );
    assert_eq!(token(&berth, "alice", &secret).await.status(), 200);
    audited(&berth, "the refusal", |e| {
        e["actor"] == "user:alice"
            && e["outcome"] == "failed"
            && e["detail"] == "LDAP directory unavailable"
    })
    .await;
}

/// A personal access token of `user`, made by the administrator through the admin API.
async fn ids_token(berth: &Berth, user: &str) -> String {
    let response = client()
        .post(berth.url("/api/v1/tokens"))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .json(&serde_json::json!({"owner": format!("user:{user}"), "name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    created["secret"].as_str().unwrap().to_string()
}
