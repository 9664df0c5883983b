//! The dashboard's administration and profile pages in a real headless Chromium: an
//! administrator adds a user, a team and a rule (previewing its pattern), and what the user
//! may then do with podman follows; the audit log shows it, filtered and as CSV; storage
//! usage counts shared blobs once; a user changes their password and makes a personal
//! access token that `podman login` accepts.

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::clients::*;
use crate::support::{Berth, client};

const ROOT: (&str, &str) = ("root", "root-password-1");

fn registry(setup: impl FnOnce(&Identities)) -> (Identities, Berth) {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    setup(&ids);
    let berth = ids.start();
    (ids, berth)
}

#[tokio::test]
async fn an_administrator_adds_a_user_a_team_and_a_rule_that_podman_then_honours() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let host = berth.host();
    let root = (host.as_str(), ROOT.0, ROOT.1);
    for repository in ["team-x/api", "team-x/web", "other/app"] {
        login_build_push(&sandbox, "root", root, &format!("{host}/{repository}:v1")).await;
    }

    let browser = Browser::start("administration").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/admin/users")).await;
    browser
        .fill("form[action='/admin/users'] input[name=name]", "dora")
        .await;
    browser
        .fill(
            "form[action='/admin/users'] input[name=password]",
            "dora-password-1",
        )
        .await;
    browser
        .submit("form[action='/admin/users'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("User dora added.")
    );
    browser.screenshot("users").await;

    browser.goto(&berth.url("/admin/teams")).await;
    browser
        .fill("form[action='/admin/teams'] input[name=name]", "x-devs")
        .await;
    browser
        .submit("form[action='/admin/teams'] button[type=submit]")
        .await;
    browser
        .fill(
            "form[action='/admin/teams/x-devs/add-member'] input[name=user]",
            "dora",
        )
        .await;
    browser
        .submit("form[action='/admin/teams/x-devs/add-member'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("dora joined x-devs.")
    );

    // The pattern preview, without script (a GET) and as it is typed (the page's script).
    browser
        .goto(&berth.url("/admin/rules?pattern=team-x%2F*"))
        .await;
    let preview = browser.text_of("#preview").await;
    assert!(preview.contains("matches 2 repositories"), "{preview}");
    assert!(!preview.contains("other/app"), "{preview}");
    browser.fill("#pattern", "*/app").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !browser.text_of("#preview").await.contains("other/app") {
        assert!(
            std::time::Instant::now() < deadline,
            "the live preview follows typing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.fill("#pattern", "team-x/**").await;
    browser
        .fill(
            "form[action='/admin/rules'] input[name=subject]",
            "team:x-devs",
        )
        .await;
    browser
        .fill("form[action='/admin/rules'] input[name=actions]", "push")
        .await;
    browser
        .submit("form[action='/admin/rules'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("team:x-devs team-x/** push")
    );
    browser.screenshot("rules").await;

    // dora can now push to team-x/** and nowhere else.
    let dora = (host.as_str(), "dora", "dora-password-1");
    login_build_push(&sandbox, "dora", dora, &format!("{host}/team-x/api:dora")).await;
    let local = podman_build(&sandbox, "dora", "elsewhere").await;
    assert_refused(
        podman_push(&sandbox, "dora", &local, &format!("{host}/other/app:dora")).await,
        "dora's push outside her team's rule",
    );

    // The audit log shows the changes, filtered, and exports them.
    let audit = browser
        .until_text(
            &berth.url("/admin/audit?who=user%3Aroot&what=admin"),
            "add rule: team:x-devs may push on team-x/**",
        )
        .await;
    assert!(audit.contains("create user"), "{audit}");
    browser.screenshot("audit").await;
    browser
        .until_text(
            &berth.url("/admin/audit?who=user%3Adora&what=push"),
            "team-x/api",
        )
        .await;
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let cookie = cookies
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let csv = client()
        .get(berth.url("/admin/audit.csv?what=admin"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(
        csv.starts_with("id,at,actor,action,target,client,outcome,detail,count"),
        "{csv}"
    );
    assert!(
        csv.lines().skip(1).all(|line| line.contains(",admin,")),
        "{csv}"
    );
    assert!(csv.contains("team:x-devs may push on team-x/**"), "{csv}");

    berth.cli(&["quota", "set", "team-x", "1GiB"]);
    browser.goto(&berth.url("/admin/storage")).await;
    let storage = browser.text().await;
    assert!(storage.contains("team-x"), "{storage}");
    // The namespace's usage beside its quota's limit.
    assert!(storage.contains(" / 1.0 GiB ("), "{storage}");
    // Sizes and quotas in one unit system (the one quotas are written in), not KB beside KiB.
    for decimal in [" KB", " MB", " GB"] {
        assert!(
            !storage.contains(decimal),
            "{decimal} on the storage page: {storage}"
        );
    }
    browser.screenshot("storage").await;

    // A non-administrator is refused the administration pages.
    let other = Browser::start("administration_refused").await;
    other.sign_in(&berth, "dora", "dora-password-1").await;
    other.goto(&berth.url("/admin/users")).await;
    assert!(
        other
            .text()
            .await
            .contains("Only administrators may manage berth.")
    );
}

#[tokio::test]
async fn a_user_changes_their_password_and_makes_a_token_podman_accepts() {
    let (_ids, berth) = registry(|ids| {
        ids.user("erin", "erin-password-1");
        ids.allow("user:erin", "erin/**", "push");
    });
    let sandbox = Sandbox::new();
    let host = berth.host();

    let browser = Browser::start("profile").await;
    browser.sign_in(&berth, "erin", "erin-password-1").await;
    browser.goto(&berth.url("/profile")).await;
    browser.fill("#current", "erin-password-1").await;
    browser.fill("#new", "erin-password-2").await;
    browser.fill("#again", "erin-password-2").await;
    browser
        .submit("form[action='/profile/password'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Password changed")
    );
    assert_refused(
        podman_login(&sandbox, "erin-old", &host, "erin", "erin-password-1").await,
        "the old password",
    );

    browser
        .fill("form[action='/profile/tokens'] input[name=name]", "laptop")
        .await;
    browser
        .fill(
            "form[action='/profile/tokens'] input[name=pattern]",
            "erin/**",
        )
        .await;
    browser
        .select(
            "form[action='/profile/tokens'] select[name=actions]",
            "pull,push",
        )
        .await;
    browser
        .fill("form[action='/profile/tokens'] input[name=expires]", "30d")
        .await;
    browser
        .click("form[action='/profile/tokens'] button[type=submit]")
        .await;
    let secret = browser.text_of("#secret").await;
    assert!(secret.starts_with("berth_"), "{secret}");
    browser.screenshot("token-created").await;
    let token = (host.as_str(), "erin", secret.as_str());
    login_build_push(&sandbox, "erin", token, &format!("{host}/erin/tool:v1")).await;

    browser.goto(&berth.url("/profile")).await;
    let page = browser.text().await;
    assert!(
        page.contains("laptop") && page.contains("erin/**:pull,push"),
        "{page}"
    );
    browser.screenshot("profile").await;
    browser.click("form[action$='/revoke'] button").await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Token laptop revoked.")
    );
    assert_refused(
        podman_login(&sandbox, "erin-revoked", &host, "erin", &secret).await,
        "a revoked token",
    );
}

/// Clicks the one-button form posting to `action` and returns the note the page then shows.
async fn press(browser: &Browser, action: &str) -> String {
    browser
        .submit(&format!("form[action='{action}'] button[type=submit]"))
        .await;
    browser.text_of("p.notice").await
}

#[tokio::test]
async fn an_administrator_disables_enables_resets_and_promotes_a_user_and_podman_follows() {
    let (_ids, berth) = registry(|ids| {
        ids.user("bob", "bob-password-1");
        ids.allow("user:bob", "bob/**", "push");
    });
    let sandbox = Sandbox::new();
    let host = berth.host();
    let browser = Browser::start("user_actions").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/admin/users")).await;

    let note = press(&browser, "/admin/users/bob/disable").await;
    assert!(note.contains("bob disabled."), "{note}");
    assert!(
        browser.text().await.contains("bob disabled"),
        "the badge shows"
    );
    assert_refused(
        podman_login(&sandbox, "bob-disabled", &host, "bob", "bob-password-1").await,
        "a disabled user's login",
    );
    let note = press(&browser, "/admin/users/bob/enable").await;
    assert!(note.contains("bob enabled."), "{note}");
    assert_ok(
        podman_login(&sandbox, "bob-enabled", &host, "bob", "bob-password-1").await,
        "an enabled user's login",
    );

    // The password form is folded away under "Reset password".
    browser
        .click("td:has(form[action='/admin/users/bob/password']) details summary")
        .await;
    browser
        .fill(
            "form[action='/admin/users/bob/password'] input[name=password]",
            "bob-password-2",
        )
        .await;
    let note = press(&browser, "/admin/users/bob/password").await;
    assert!(note.contains("bob's password was set"), "{note}");
    assert_refused(
        podman_login(&sandbox, "bob-old", &host, "bob", "bob-password-1").await,
        "the password before the reset",
    );
    let bob = (host.as_str(), "bob", "bob-password-2");
    login_build_push(&sandbox, "bob", bob, &format!("{host}/bob/app:v1")).await;

    // Promoted, bob administers; demoted, he does not.
    let note = press(&browser, "/admin/users/bob/promote").await;
    assert!(note.contains("bob is an administrator."), "{note}");
    browser.screenshot("users-after-changes").await;
    let other = Browser::start("user_actions_bob").await;
    other.sign_in(&berth, "bob", "bob-password-2").await;
    other.goto(&berth.url("/admin/users")).await;
    assert!(other.text().await.contains("Add a user"), "bob administers");
    let note = press(&browser, "/admin/users/bob/demote").await;
    assert!(note.contains("no longer an administrator"), "{note}");
    other.goto(&berth.url("/admin/users")).await;
    assert!(
        other
            .text()
            .await
            .contains("Only administrators may manage berth."),
        "demoted at once"
    );
    // The last administrator cannot be disabled.
    browser.goto(&berth.url("/admin/users")).await;
    browser
        .submit("form[action='/admin/users/root/disable'] button[type=submit]")
        .await;
    assert_eq!(browser.text_of("section.error h1").await, "Refused");
    let refused = browser.text().await;
    assert!(refused.contains("last enabled administrator"), "{refused}");

    // Each change is in the audit log with root as its actor, and bob's sign-in and push
    // are in the activity feed.
    let audit = browser
        .until_text(
            &berth.url("/admin/audit?who=user%3Aroot&what=admin"),
            "demote user",
        )
        .await;
    for change in [
        "disable user",
        "enable user",
        "set password",
        "promote user",
    ] {
        assert!(audit.contains(change), "{change}: {audit}");
    }
    let activity = browser
        .until_text(&berth.url("/activity"), "user:bob push bob/app")
        .await;
    assert!(
        activity.contains("user:bob login session: password allowed"),
        "bob's sign-in: {activity}"
    );
    browser.screenshot("activity").await;
}

#[tokio::test]
async fn a_service_account_token_made_on_its_page_pushes_and_shows_its_last_use() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let host = berth.host();
    let browser = Browser::start("service_accounts").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/admin/service-accounts")).await;
    browser
        .fill(
            "form[action='/admin/service-accounts'] input[name=name]",
            "ci",
        )
        .await;
    browser
        .fill(
            "form[action='/admin/service-accounts'] input[name=description]",
            "builds",
        )
        .await;
    let note = press(&browser, "/admin/service-accounts").await;
    assert!(note.contains("ci"), "{note}");
    // ci may push to ci/**, by a rule added on the rules page.
    browser.goto(&berth.url("/admin/rules")).await;
    browser
        .fill(
            "form[action='/admin/rules'] input[name=subject]",
            "service-account:ci",
        )
        .await;
    browser
        .fill("form[action='/admin/rules'] input[name=pattern]", "ci/**")
        .await;
    browser
        .fill("form[action='/admin/rules'] input[name=actions]", "push")
        .await;
    press(&browser, "/admin/rules").await;

    browser.goto(&berth.url("/admin/service-accounts")).await;
    let tokens = "form[action='/admin/service-accounts/ci/tokens']";
    browser
        .click(&format!("details:has({tokens}) summary"))
        .await;
    browser
        .fill(&format!("{tokens} input[name=name]"), "deploy")
        .await;
    browser
        .fill(&format!("{tokens} input[name=expires]"), "90d")
        .await;
    browser
        .submit(&format!("{tokens} button[type=submit]"))
        .await;
    let secret = browser.text_of("#secret").await;
    assert!(secret.starts_with("berth_"), "{secret}");

    browser.goto(&berth.url("/admin/service-accounts")).await;
    let row = browser.texts("table tbody tr td").await;
    assert!(
        row.iter().any(|cell| cell == "in 2 months"),
        "expires in 90 days: {row:?}"
    );
    assert!(
        row.iter().any(|cell| cell == "never"),
        "not used yet: {row:?}"
    );
    let ci = (host.as_str(), "ci", secret.as_str());
    login_build_push(&sandbox, "ci", ci, &format!("{host}/ci/app:v1")).await;
    browser.goto(&berth.url("/admin/service-accounts")).await;
    let row = browser.texts("table tbody tr td").await;
    assert!(
        !row.iter().any(|cell| cell == "never") && row.iter().any(|cell| cell == "just now"),
        "used just now: {row:?}"
    );
    browser.screenshot("service-accounts").await;

    // Disabled, the account's token no longer logs in.
    let note = press(&browser, "/admin/service-accounts/ci/disable").await;
    assert!(note.contains("ci disabled."), "{note}");
    assert_refused(
        podman_login(&sandbox, "ci-disabled", &host, "ci", &secret).await,
        "a disabled service account's token",
    );
}

#[tokio::test]
async fn signing_out_everywhere_else_ends_the_other_sessions_only() {
    let (_ids, berth) = registry(|ids| ids.user("erin", "erin-password-1"));
    let laptop = Browser::start("sessions_laptop").await;
    let phone = Browser::start("sessions_phone").await;
    laptop.sign_in(&berth, "erin", "erin-password-1").await;
    phone.sign_in(&berth, "erin", "erin-password-1").await;
    phone.goto(&berth.url("/profile")).await;
    assert_eq!(phone.path().await, "/profile");

    laptop.goto(&berth.url("/profile")).await;
    let note = press(&laptop, "/profile/sessions/end-others").await;
    assert!(
        note.contains("Every other session of yours has ended"),
        "{note}"
    );
    laptop.screenshot("profile-sessions").await;
    // The laptop stays signed in; the phone is sent to the sign-in page.
    laptop.goto(&berth.url("/profile")).await;
    assert_eq!(laptop.path().await, "/profile");
    phone.goto(&berth.url("/profile")).await;
    assert_eq!(phone.path().await, "/sign-in");
}

/// The rows of the audit log's table as shown.
async fn audit_rows(browser: &Browser) -> Vec<String> {
    browser.texts("table tbody tr").await
}

#[tokio::test]
async fn audit_log_date_filters_narrow_the_list() {
    let (_ids, berth) = registry(|_| {});
    // An event from March 2025, written to the audit log as berth writes its own.
    let store = berth_meta::SqliteStore::open(&berth.data_dir().join("berth.db"))
        .await
        .expect("the registry's database");
    berth_meta::IdentityStore::record_audit(
        &store,
        &[berth_meta::identity::AuditEvent {
            at: 1_742_032_800_000, // 2025-03-15T10:00:00Z
            actor: "user:root".into(),
            action: "admin".into(),
            target: "user:olga".into(),
            client: "192.0.2.7".into(),
            outcome: "allowed".into(),
            detail: "create user".into(),
            count: 1,
        }],
    )
    .await
    .unwrap();
    drop(store);

    let browser = Browser::start("audit_dates").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    // Root's sign-in (today) is written in the background.
    let everything = browser
        .until_text(&berth.url("/admin/audit?what=login"), "user:root")
        .await;
    assert!(!everything.contains("user:olga"), "{everything}");
    browser.goto(&berth.url("/admin/audit")).await;
    let unfiltered = audit_rows(&browser).await;
    assert!(unfiltered.len() >= 2, "{unfiltered:?}");
    assert!(unfiltered.iter().any(|r| r.contains("user:olga")));

    // March 2025 only: the old event, nothing of today.
    browser
        .goto(&berth.url("/admin/audit?from=2025-03-01&to=2025-03-31"))
        .await;
    let march = audit_rows(&browser).await;
    assert_eq!(march.len(), 1, "{march:?}");
    assert!(march[0].contains("2025-03-15") && march[0].contains("user:olga"));
    // The form keeps the dates it filters by.
    assert_eq!(
        browser
            .wait("input[name=from]")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("2025-03-01")
    );
    browser.screenshot("audit-march-2025").await;
    // "To" includes its whole day; "from" the day after excludes it.
    browser.goto(&berth.url("/admin/audit?to=2025-03-15")).await;
    assert_eq!(audit_rows(&browser).await, march);
    browser
        .goto(&berth.url("/admin/audit?from=2025-03-16&to=2025-12-31"))
        .await;
    assert!(browser.text().await.contains("No matching events."));
    // From April 2025 on: today's events, not the old one.
    browser
        .goto(&berth.url("/admin/audit?from=2025-04-01"))
        .await;
    let recent = audit_rows(&browser).await;
    assert!(recent.iter().all(|r| !r.contains("user:olga")));
    assert!(recent.iter().any(|r| r.contains("user:root")));
    // A date that is not one is a 400 page, not a 500.
    browser
        .goto(&berth.url("/admin/audit?from=2025-02-30"))
        .await;
    assert!(
        browser.text().await.contains("is not a date"),
        "{}",
        browser.text().await
    );
}

#[tokio::test]
async fn a_user_sees_their_sessions_and_signs_one_out() {
    let (_ids, berth) = registry(|ids| ids.user("frank", "frank-password-1"));
    let laptop = Browser::start("sessions").await;
    let other = Browser::start("sessions").await;
    laptop.sign_in(&berth, "frank", "frank-password-1").await;
    other.sign_in(&berth, "frank", "frank-password-1").await;

    laptop.goto(&berth.url("/profile#sessions")).await;
    let rows = laptop.texts("table.sessions tbody tr").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows.iter().filter(|r| r.contains("this browser")).count(),
        1,
        "{rows:?}"
    );
    for row in &rows {
        assert!(row.contains("127.0.0.1"), "the address: {row}");
        assert!(row.contains("Chrome"), "the browser: {row}");
        assert!(row.contains("now") || row.contains("ago"), "when: {row}");
    }
    laptop.screenshot("sessions").await;

    // Only the other session has a sign-out button; this browser signs out with the header's.
    laptop.submit("table.sessions button.danger").await;
    assert!(
        laptop
            .text_of("p.notice")
            .await
            .contains("That session is signed out"),
    );
    let rows = laptop.texts("table.sessions tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("this browser"));
    laptop.screenshot("sessions-after").await;

    // The other browser is signed out: its pages are a visitor's, its profile asks to sign in.
    other.goto(&berth.url("/profile")).await;
    assert_eq!(other.path().await, "/sign-in");
    other.screenshot("signed-out").await;
    // This one is not.
    laptop.goto(&berth.url("/profile")).await;
    assert_eq!(laptop.path().await, "/profile");
    assert_eq!(laptop.text_of("header .who a").await, "frank");

    // Ending a session is audited, with frank as the actor.
    other.sign_in(&berth, ROOT.0, ROOT.1).await;
    let audit = other
        .until_text(
            &berth.url("/admin/audit?who=user%3Afrank&what=admin"),
            "end session",
        )
        .await;
    assert!(audit.contains("user:frank"), "{audit}");
}
