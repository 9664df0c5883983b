//! The dashboard's lifecycle administration in a real headless Chromium: an administrator
//! dry-runs and runs garbage collection and sees the run (start, end, what it freed), sets
//! and removes a quota, adds retention and immutability rules; bad input is an error page
//! naming the field, and a form without the session's CSRF token changes nothing.

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::push::push_blob;
use crate::support::{Berth, bytes};

const ROOT: (&str, &str) = ("root", "root-password-1");

fn root_client() -> reqwest::Client {
    let credentials = data_encoding::BASE64.encode(format!("{}:{}", ROOT.0, ROOT.1).as_bytes());
    reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Basic {credentials}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_administrator_runs_gc_from_the_dashboard_and_manages_lifecycle_rules() {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_GC_GRACE", "0s")
        .env("BERTH_GC_ENABLED", "false")
        .data(ids.path())
        .start();
    // A blob no manifest references: garbage at once (no grace period).
    push_blob(&root_client(), &berth, "stray/app", &bytes(3_000, 1)).await;

    let browser = Browser::start("lifecycle").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/admin/gc")).await;
    assert!(browser.text().await.contains("No run yet."));
    browser
        .submit("form[action='/admin/gc/dry-run'] button[type=submit]")
        .await;
    let note = browser.text_of("p.notice").await;
    assert!(note.contains("A run would free 1 blob (2.9 KiB)"), "{note}");
    assert!(
        note.contains("the dry run took ") && note.contains("mark "),
        "{note}"
    );
    assert!(
        browser.text().await.contains("No run yet."),
        "a dry run records nothing"
    );
    browser.screenshot("gc-dry-run").await;

    browser
        .submit("form[action='/admin/gc'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Garbage collection run 1 started.")
    );
    // The page shows the run's progress while it runs, then what it freed.
    let runs = browser
        .until_text(&berth.url("/admin/gc"), "finished")
        .await;
    assert!(runs.contains("1 blob (2.9 KiB), 0 manifests"), "{runs}");
    assert!(runs.contains("dashboard by user:root"), "{runs}");
    assert!(
        runs.contains("history ") && runs.contains("sweep "),
        "each phase's time: {runs}"
    );
    browser.screenshot("gc-runs").await;

    // Quotas: set from the form, shown with their usage, removed.
    browser.goto(&berth.url("/admin/lifecycle")).await;
    browser.fill("#quota-repositories", "acme").await;
    browser.fill("#quota-limit", "1MiB").await;
    browser
        .submit("form[action='/admin/quotas'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Quota on acme/** set to 1.0 MiB.")
    );
    assert!(browser.text().await.contains("0 B / 1.0 MiB (0%)"));

    // Retention (with a regular expression) and immutability rules.
    browser.fill("#retention-repositories", "ci/**").await;
    browser.fill("#retention-last", "3").await;
    browser.fill("#retention-regex", "^v[0-9]+$").await;
    browser
        .submit("form[action='/admin/retention'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Retention rule 1 added.")
    );
    browser.fill("#immutable-repositories", "library/**").await;
    browser.fill("#immutable-tags", "v*").await;
    browser
        .submit("form[action='/admin/immutable-tags'] button[type=submit]")
        .await;
    let page = browser.text().await;
    assert!(
        page.contains("the last 3 pushed; tags matching ^v[0-9]+$"),
        "{page}"
    );
    assert!(
        page.contains("Tags v* in library/** are immutable (rule 1)."),
        "{page}"
    );
    browser.screenshot("lifecycle-rules").await;
    // The CLI sees what the pages set: one write path.
    let quotas = berth.cli(&["quota", "list"]);
    assert_eq!(quotas[0]["repositories"], "acme/**");
    let retention = berth.cli(&["retention", "list"]);
    assert_eq!(
        retention[0]["keep_tags_regex"],
        serde_json::json!(["^v[0-9]+$"])
    );

    // Bad input: an error page naming the field; nothing changes.
    browser.fill("#quota-repositories", "other").await;
    browser.fill("#quota-limit", "lots").await;
    browser
        .submit("form[action='/admin/quotas'] button[type=submit]")
        .await;
    let refused = browser.text().await;
    assert!(refused.contains("limit: invalid size"), "{refused}");
    browser.goto(&berth.url("/admin/lifecycle")).await;
    browser.fill("#retention-repositories", "ci/**").await;
    browser.fill("#retention-regex", "v(").await;
    browser
        .submit("form[action='/admin/retention'] button[type=submit]")
        .await;
    assert!(browser.text().await.contains("keep_tags_regex:"));

    // A form whose CSRF token is not the session's is refused.
    browser.goto(&berth.url("/admin/lifecycle")).await;
    browser
        .eval(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = '0123456789abcdef0123456789abcdef')",
        )
        .await;
    browser
        .submit("form[action='/admin/quotas/remove'] button[type=submit]")
        .await;
    assert!(browser.text().await.contains("security token"));
    assert_eq!(berth.cli(&["quota", "list"]).as_array().unwrap().len(), 1);

    browser.goto(&berth.url("/admin/lifecycle")).await;
    browser
        .submit("form[action='/admin/quotas/remove'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Quota on acme/** removed.")
    );
    assert!(berth.cli(&["quota", "list"]).as_array().unwrap().is_empty());

    // Every change is in the audit log under the administrator's name.
    let audit = berth.cli(&["audit", "list"]).to_string();
    for change in [
        "set quota on acme/**",
        "removed quota on acme/**",
        "added rule",
    ] {
        assert!(audit.contains(change), "{change}: {audit}");
    }
}
