//! Remote and virtual repositories on the dashboard, in a real headless Chromium: the
//! configuration file's shown read-only, one made from the form and pulled through with
//! skopeo, changed (its password kept, never shown), a virtual repository over it, both
//! removed; bad input is an error page naming the key, and a form without the session's
//! CSRF token changes nothing.

use super::*;
use crate::support::accounts::Identities;
use crate::support::browser::Browser;

const ROOT: (&str, &str) = ("root", "root-password-1");

#[tokio::test]
async fn an_administrator_manages_remotes_and_virtuals_from_the_dashboard() {
    let (_dir, upstream, sandbox, pushed) =
        htpasswd_upstream_with_image(b"through the dashboard\n").await;
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    berth_cli(ids.path(), &["policy", "add", "anonymous", "**", "pull"]);
    // One remote from the configuration file (nothing listens on port 9).
    let config = ids.path().join("berth.yml");
    std::fs::write(
        &config,
        "remotes:\n  filed:\n    prefix: filed\n    urls: [http://127.0.0.1:9]\n",
    )
    .unwrap();
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_CONFIG", config.to_str().unwrap())
        .data(ids.path())
        .start();

    let browser = Browser::start("remotes").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/admin/remotes")).await;
    let page = browser.text().await;
    assert!(page.contains("filed"), "{page}");
    assert!(page.contains("from the configuration file"), "{page}");
    assert!(
        browser
            .texts("form[action='/admin/remotes/filed/delete']")
            .await
            .is_empty(),
        "the file's remote is read-only"
    );

    // A remote from the form, over the htpasswd upstream.
    browser.fill("#remote-new-name", "up").await;
    browser.fill("#remote-new-prefix", "up").await;
    browser.fill("#remote-new-urls", &upstream.base).await;
    browser.fill("#remote-new-username", "carol").await;
    browser.fill("#remote-new-password", "carol-password").await;
    browser.fill("#remote-new-maxsize", "1GiB").await;
    browser
        .submit("form[action='/admin/remotes'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Remote repository up added.")
    );
    let image = format!("{}/up/team/app:v1", berth.host());
    let (digest, _) = skopeo_pull(&sandbox, &image, None, "pulled").await.unwrap();
    assert_eq!(digest, pushed.digest, "pulled through the new remote");
    browser.goto(&berth.url("/admin/remotes")).await;
    let page = browser.text().await;
    assert!(page.contains("made here"), "{page}");
    assert!(page.contains("by user:root"), "{page}");
    let html = browser
        .eval("return document.documentElement.outerHTML")
        .await
        .to_string();
    assert!(
        !html.contains("carol-password"),
        "the password is never shown"
    );
    browser.screenshot("remotes").await;

    // Changed without retyping the password: it is kept.
    browser.click("details.change summary").await;
    browser.fill("#remote-up-revalidateafter", "1m").await;
    browser
        .submit("form[action='/admin/remotes/up'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Remote repository up saved.")
    );
    let listed: serde_json::Value = client()
        .get(berth.url("/api/v1/remotes/up"))
        .basic_auth(ROOT.0, Some(ROOT.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["revalidate_after_seconds"], 60, "{listed}");
    assert_eq!(listed["password_set"], true, "{listed}");
    let manifest = client()
        .get(berth.url("/v2/up/team/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200, "still signs in upstream");

    // A virtual repository over a local prefix and the remote.
    browser.fill("#virtual-new-name", "all").await;
    browser.fill("#virtual-new-prefix", "all").await;
    browser.fill("#virtual-new-locals", "team").await;
    browser.fill("#virtual-new-remotes", "up").await;
    browser
        .submit("form[action='/admin/virtuals'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Virtual repository all added.")
    );
    assert!(browser.text().await.contains("team, up"));
    let (digest, _) = skopeo_pull(
        &sandbox,
        &format!("{}/all/team/app:v1", berth.host()),
        None,
        "virtual",
    )
    .await
    .unwrap();
    assert_eq!(
        digest, pushed.digest,
        "pulled through the virtual repository"
    );
    browser.screenshot("remotes-and-virtuals").await;

    // Bad input: an error page naming the key; nothing changes.
    browser.fill("#remote-new-name", "bad").await;
    browser.fill("#remote-new-prefix", "up/inner").await;
    browser.fill("#remote-new-urls", "http://127.0.0.1:9").await;
    browser
        .submit("form[action='/admin/remotes'] button[type=submit]")
        .await;
    let refused = browser.text().await;
    assert!(refused.contains("prefix"), "{refused}");
    assert!(refused.contains("overlaps"), "{refused}");

    // A form whose CSRF token is not the session's is refused.
    browser.goto(&berth.url("/admin/remotes")).await;
    browser
        .eval(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = '0123456789abcdef0123456789abcdef')",
        )
        .await;
    browser
        .submit("form[action='/admin/virtuals/all/delete'] button[type=submit]")
        .await;
    assert!(browser.text().await.contains("security token"));

    // The remote cannot go before the virtual repository naming it; then both go.
    browser.goto(&berth.url("/admin/remotes")).await;
    browser
        .submit("form[action='/admin/remotes/up/delete'] button[type=submit]")
        .await;
    assert!(browser.text().await.contains("virtuals.all.remotes"));
    browser.goto(&berth.url("/admin/remotes")).await;
    browser
        .submit("form[action='/admin/virtuals/all/delete'] button[type=submit]")
        .await;
    browser
        .submit("form[action='/admin/remotes/up/delete'] button[type=submit]")
        .await;
    assert!(
        browser
            .text_of("p.notice")
            .await
            .contains("Remote repository up removed.")
    );
    let page = browser.text().await;
    assert!(!page.contains("made here"), "{page}");
    // Every change is in the audit log under the administrator's name.
    let audit = berth.cli(&["audit", "list"]).to_string();
    for change in ["remote:up", "virtual:all"] {
        assert!(audit.contains(change), "{change}: {audit}");
    }
    assert!(!audit.contains("carol-password"));
}
