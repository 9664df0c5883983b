//! Who may see what: the access page against what podman can really do, a non-admin's view,
//! and an access token signing in like a password.

use super::*;

/// The cells of the access table's row for `subject`: pull, push, delete ("yes…"/"no").
async fn access_row(browser: &Browser, subject: &str) -> Vec<bool> {
    let cells = browser
        .texts(&format!("#access tr[data-subject='{subject}'] td"))
        .await;
    assert_eq!(cells.len(), 3, "a row for {subject}");
    cells.iter().map(|c| c.starts_with("yes")).collect()
}

#[tokio::test]
async fn the_access_page_matches_what_podman_can_do_for_three_users() {
    let (_ids, berth) = registry(|ids| {
        for user in ["alice", "bob", "carol"] {
            ids.user(user, &format!("{user}-password-1"));
        }
        ids.team("devs", &["alice"]);
        ids.allow("team:devs", "acc/**", "push");
        ids.allow("user:bob", "acc/app", "pull");
    });
    let sandbox = Sandbox::new();
    let host = berth.host();
    let remote = format!("{host}/acc/app:v1");
    let root = (host.as_str(), ROOT.0, ROOT.1);
    login_build_push(&sandbox, "root", root, &remote).await;

    let browser = Browser::start("access").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/r/acc/app/-/access")).await;
    browser.screenshot("access").await;
    let page = browser.text().await;
    assert!(
        page.contains("team:devs acc/** push"),
        "names the granting rule: {page}"
    );
    for user in ["alice", "bob", "carol"] {
        let shown = access_row(&browser, &format!("user:{user}")).await;
        let password = format!("{user}-password-1");
        assert_ok(
            podman_login(&sandbox, user, &host, user, &password).await,
            &format!("{user}'s login"),
        );
        let pulled = podman_pull(&sandbox, user, &remote).await.is_ok();
        let local = podman_build(&sandbox, user, "mine").await;
        let pushed = podman_push(&sandbox, user, &local, &format!("{host}/acc/app:{user}"))
            .await
            .is_ok();
        assert_eq!(
            (shown[0], shown[1]),
            (pulled, pushed),
            "{user}: the page says pull {}, push {}; podman could pull {pulled}, push {pushed}",
            shown[0],
            shown[1]
        );
    }
    assert_eq!(
        access_row(&browser, "user:alice").await,
        [true, true, false]
    );
    assert_eq!(access_row(&browser, "user:bob").await, [true, false, false]);
    assert_eq!(
        access_row(&browser, "user:carol").await,
        [false, false, false]
    );

    // The administrator adds a rule from the page; carol can pull right away.
    browser.fill("input[name=subject]", "user:carol").await;
    browser.submit("form.row button[type=submit]").await;
    browser.wait("#access").await;
    assert_eq!(
        access_row(&browser, "user:carol").await,
        [true, false, false]
    );
    assert_ok(
        podman_pull(&sandbox, "carol", &remote).await,
        "carol's pull after the new rule",
    );
}

#[tokio::test]
async fn a_non_admin_sees_only_the_repositories_they_may_pull() {
    let (_ids, berth) = registry(|ids| {
        ids.user("alice", "alice-password-1");
        ids.allow("user:alice", "mine/**", "pull");
    });
    let sandbox = Sandbox::new();
    let host = berth.host();
    let root = (host.as_str(), ROOT.0, ROOT.1);
    for repository in ["mine/app", "theirs/app"] {
        login_build_push(&sandbox, "root", root, &format!("{host}/{repository}:v1")).await;
    }
    let image = labelled_image(&sandbox, "public", &[]).await;
    skopeo_push(&sandbox, &image, &format!("{host}/e2e/public:v1")).await;

    let browser = Browser::start("visibility").await;
    browser.sign_in(&berth, "alice", "alice-password-1").await;
    browser.goto(&berth.url("/")).await;
    assert_eq!(
        browser.texts("main table tbody td:first-child a").await,
        ["e2e/public", "mine/app"]
    );
    browser.screenshot("home").await;
    browser.goto(&berth.url("/search?q=app")).await;
    assert_eq!(browser.texts("ol.results a.name").await, ["mine/app"]);
    browser.goto(&berth.url("/r/theirs/app")).await;
    assert!(browser.text().await.contains("Not found"));
    assert!(
        !browser.text().await.contains("Delete"),
        "no actions alice may not take"
    );
    browser.goto(&berth.url("/r/mine/app/-/tags/v1")).await;
    assert!(
        !browser.text().await.contains("Delete tag"),
        "alice may not delete"
    );
    // A visitor sees only the public repository.
    let visitor = Browser::start("visibility_visitor").await;
    visitor.goto(&berth.url("/")).await;
    assert_eq!(
        visitor.texts("main table tbody td:first-child a").await,
        ["e2e/public"]
    );
}

#[tokio::test]
async fn an_access_token_signs_in_like_a_password() {
    let (ids, berth) = registry(|ids| {
        ids.user("alice", "alice-password-1");
        ids.allow("user:alice", "alice/**", "pull");
    });
    let token = ids.token("user:alice", "browser", None);
    let narrowed = ids.token("user:root", "ci", Some("e2e/**:pull"));

    let browser = Browser::start("token_sign_in").await;
    browser.sign_in(&berth, "alice", &token).await;
    assert_eq!(browser.text_of("header .who a").await, "alice");
    // A session has no scopes, so a token limited by scopes does not make one (it would
    // lend the session its owner's full rights).
    let other = Browser::start("token_sign_in_narrowed").await;
    other.goto(&berth.url("/sign-in")).await;
    other.fill("#username", ROOT.0).await;
    other.fill("#password", &narrowed).await;
    other.click("section.sign-in button[type=submit]").await;
    let refused = other.text_of("p.failure").await;
    assert!(
        refused.contains("a session needs a password, not a limited access token"),
        "{refused}"
    );
    assert_eq!(other.path().await, "/sign-in");
}
