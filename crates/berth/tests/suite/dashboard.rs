//! The web dashboard in a real headless Chromium, with content pushed by real clients
//! (skopeo, podman, the oras SDK): signing in with the accounts `podman login` takes,
//! finding images, inspecting indexes, images and their referrers, deleting tags, who can
//! access a repository (checked against what podman can actually do), what a non-admin sees,
//! and that attacker-controlled labels and annotations stay text.
//!
//! Each test saves screenshots of the pages it visits under
//! `target/tmp/screenshots/<test>/`; three of them are in the README (docs/screenshots/).

use serde_json::{Value, json};

use crate::support::accounts::*;
use crate::support::browser::Browser;
use crate::support::clients::*;
use crate::support::push::{OCI_MANIFEST, push_blob, push_image, put_manifest};
use crate::support::{Berth, client};

const ROOT: (&str, &str) = ("root", "root-password-1");

/// A registry where `root` administers, anonymous may push to (and so see) `e2e/**`, and
/// `setup` adds what the test needs.
fn registry(setup: impl FnOnce(&Identities)) -> (Identities, Berth) {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    ids.allow("anonymous", "e2e/**", "push");
    setup(&ids);
    let berth = ids.start();
    (ids, berth)
}

/// An image in an OCI layout made with umoci, with `labels` on its config: `oci:LAYOUT:TAG`.
async fn labelled_image(sandbox: &Sandbox, tag: &str, labels: &[(&str, &str)]) -> String {
    let layout = sandbox.path("labelled");
    if !layout.exists() {
        run(sandbox.umoci().args(["init", "--layout"]).arg(&layout)).await;
    }
    let image = format!("{}:{tag}", layout.display());
    run(sandbox.umoci().args(["new", "--image", &image])).await;
    let mut config = sandbox.umoci();
    config.args([
        "config",
        "--image",
        &image,
        "--os=linux",
        "--architecture=amd64",
    ]);
    config.args(["--config.entrypoint=/bin/app", "--config.workingdir=/srv"]);
    config.args([
        "--config.env=MODE=production",
        "--config.exposedports=8080/tcp",
    ]);
    for (key, value) in labels {
        config.arg(format!("--config.label={key}={value}"));
    }
    run(&mut config).await;
    umoci_layer(
        sandbox,
        &image,
        &format!("bundle-{tag}"),
        &[("srv/app.txt", format!("app {tag}\n").into_bytes())],
    )
    .await;
    format!("oci:{image}")
}

async fn skopeo_push(sandbox: &Sandbox, from: &str, to: &str) {
    run(sandbox
        .skopeo()
        .args(["copy", "--dest-tls-verify=false", from])
        .arg(format!("docker://{to}")))
    .await;
}

#[tokio::test]
async fn sign_in_with_the_credentials_podman_login_takes() {
    let (_ids, berth) = registry(|ids| ids.user("alice", "alice-password-1"));
    let sandbox = Sandbox::new();
    assert_ok(
        podman_login(
            &sandbox,
            "alice",
            &berth.host(),
            "alice",
            "alice-password-1",
        )
        .await,
        "podman login as alice",
    );
    let browser = Browser::start("sign_in").await;
    browser.goto(&berth.url("/")).await;
    // No public repository yet: a visitor is sent to the sign-in page.
    assert_eq!(browser.path().await, "/sign-in");
    browser.screenshot("sign-in").await;
    browser.fill("#username", "alice").await;
    browser.fill("#password", "not-alices-password").await;
    browser.click("section.sign-in button[type=submit]").await;
    assert!(
        browser
            .text_of("p.failure")
            .await
            .contains("Wrong user name"),
        "a wrong password is refused"
    );
    browser.sign_in(&berth, "alice", "alice-password-1").await;
    assert_eq!(browser.text_of("header .who a").await, "alice");
    browser.click("header .who button[type=submit]").await;
    browser.wait("header .who a.button").await;
    assert!(browser.text().await.contains("Sign in"));
    // The administrator signs in the same way.
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    assert!(browser.text().await.contains("Administration"));
}

#[tokio::test]
async fn search_finds_a_skopeo_image_by_name_tag_and_label() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let image = labelled_image(
        &sandbox,
        "web",
        &[
            ("org.opencontainers.image.vendor", "Quuxcorp"),
            (
                "org.opencontainers.image.description",
                "The Quuxcorp storefront",
            ),
        ],
    )
    .await;
    skopeo_push(
        &sandbox,
        &image,
        &format!("{}/e2e/shop/storefront:2024.11", berth.host()),
    )
    .await;
    let other = labelled_image(
        &sandbox,
        "other",
        &[("org.opencontainers.image.vendor", "Othercorp")],
    )
    .await;
    skopeo_push(
        &sandbox,
        &other,
        &format!("{}/e2e/tools/debugger:1.0", berth.host()),
    )
    .await;

    let browser = Browser::start("search").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    for (words, tag) in [
        ("storefront", None),
        ("2024.11", Some("2024.11")),
        ("quuxcorp", Some("2024.11")),
        ("shop store", None),
    ] {
        browser.fill("#q", words).await;
        browser.click("form.search button[type=submit]").await;
        browser.wait("ol.results, main p").await;
        let results = browser.texts("ol.results a.name").await;
        assert_eq!(results, ["e2e/shop/storefront"], "searching {words:?}");
        if let Some(tag) = tag {
            assert!(
                browser
                    .texts("ol.results code")
                    .await
                    .contains(&tag.to_string()),
                "{words:?} shows the matching tag"
            );
        }
    }
    browser.screenshot("search").await;
    // Filters: the namespace, the platform.
    browser
        .goto(&berth.url("/search?q=e2e&ns=e2e%2Ftools&platform=linux%2Famd64"))
        .await;
    assert_eq!(
        browser.texts("ol.results a.name").await,
        ["e2e/tools/debugger"]
    );
    browser
        .goto(&berth.url("/search?q=storefront&platform=linux%2Farm64"))
        .await;
    assert!(browser.text().await.contains("Nothing found."));
    // From a result to the repository page, with its description and pull command.
    browser.goto(&berth.url("/search?q=quuxcorp")).await;
    browser.click_link("e2e/shop/storefront").await;
    let page = browser.text().await;
    assert!(page.contains("The Quuxcorp storefront"), "{page}");
    assert!(
        page.contains(&format!(
            "podman pull {}/e2e/shop/storefront:2024.11",
            berth.host()
        )),
        "{page}"
    );
    browser.screenshot("repository").await;
}

#[tokio::test]
async fn a_multi_platform_index_shows_its_platforms_layers_and_history() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let multi = multi_platform_layout(&sandbox, &["amd64", "arm64"]).await;
    run(sandbox
        .skopeo()
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", multi.layout.display()))
        .arg(format!("docker://{}/e2e/multi:latest", berth.host())))
    .await;

    let browser = Browser::start("index").await;
    browser.goto(&berth.url("/r/e2e/multi/-/tags/latest")).await;
    let page = browser.text().await;
    assert!(page.contains("Multi-platform index"), "{page}");
    assert!(page.contains(&multi.index_digest), "{page}");
    assert!(
        page.contains("berth e2e multi-platform"),
        "the index's description"
    );
    let platforms = browser.texts("#platforms tbody td:first-child").await;
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    browser.screenshot("index").await;

    for (arch, digest, _, blobs) in &multi.children {
        browser
            .goto(&berth.url(&format!("/r/e2e/multi/-/manifests/{digest}")))
            .await;
        let page = browser.text().await;
        assert!(page.contains(&format!("linux/{arch}")), "{arch}: {page}");
        assert!(page.contains("Layers (1)"), "{arch}: {page}");
        let layer = &blobs[1].0;
        let shown = browser
            .eval("return [...document.querySelectorAll('main code[title]')].map(c => c.title)")
            .await;
        assert!(
            shown.as_array().unwrap().iter().any(|d| d == layer),
            "{arch}: the layer {layer} is listed"
        );
        let history = browser.texts("main h2 + .table-wrap td code").await;
        assert!(page.contains("History"), "{arch}: {page}");
        assert!(!history.is_empty(), "{arch}: history lines");
        let config: Value = serde_json::from_slice(&blobs[0].1).unwrap();
        let expected = config["history"][0]["created_by"]
            .as_str()
            .unwrap_or_default();
        assert!(
            page.contains(expected),
            "{arch}: {expected:?} in the history"
        );
    }
    browser.screenshot("image").await;
}

#[tokio::test]
async fn a_signature_and_an_sbom_pushed_with_oras_are_listed_as_referrers() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let image = labelled_image(&sandbox, "signed", &[]).await;
    skopeo_push(&sandbox, &image, &format!("{}/e2e/signed:v1", berth.host())).await;
    sandbox.write(
        "files/sbom.spdx.json",
        br#"{"spdxVersion":"SPDX-2.3","name":"e2e"}"#,
    );
    sandbox.write(
        "files/signature.sig",
        b"not really a signature, but typed as one",
    );
    sandbox.write("files/empty.json", b"{}");
    let file = |name: &str| sandbox.path(&format!("files/{name}")).display().to_string();
    let config = format!(
        "--config={}:application/vnd.oci.empty.v1+json",
        file("empty.json")
    );
    let sbom = oras(
        &sandbox,
        &berth,
        &[
            "push",
            "--target=e2e/signed:sbom",
            "--artifact-type=application/spdx+json",
            &config,
            "--subject=e2e/signed:v1",
            &format!("{}:application/spdx+json", file("sbom.spdx.json")),
        ],
    )
    .await;
    let signature = oras(
        &sandbox,
        &berth,
        &[
            "push",
            "--target=e2e/signed:sig",
            "--artifact-type=application/vnd.dev.cosign.artifact.sig.v1+json",
            &config,
            "--subject=e2e/signed:v1",
            &format!(
                "{}:application/vnd.dev.cosign.simplesigning.v1+json",
                file("signature.sig")
            ),
        ],
    )
    .await;

    let browser = Browser::start("referrers").await;
    browser.goto(&berth.url("/r/e2e/signed/-/tags/v1")).await;
    let page = browser.text().await;
    assert!(page.contains("Signatures (1)"), "{page}");
    assert!(page.contains("SBOMs (1)"), "{page}");
    browser.screenshot("referrers").await;
    let signature_digest = text(&signature["digest"]).to_string();
    browser
        .click(&format!("#referrers ~ ul a[href$='{signature_digest}']"))
        .await;
    let page = browser.text().await;
    assert!(page.contains("Signature"), "{page}");
    assert!(page.contains("signature.sig"), "the file's title: {page}");
    assert!(page.contains("Refers to"), "{page}");
    browser.screenshot("signature").await;
    // The search filters know them too.
    browser
        .goto(&berth.url("/search?q=signed&signed=1&sbom=1"))
        .await;
    assert_eq!(browser.texts("ol.results a.name").await, ["e2e/signed"]);
    browser.goto(&berth.url("/r/e2e/signed/-/tags/v1")).await;
    let sbom_digest = text(&sbom["digest"]).to_string();
    browser
        .click(&format!("#referrers ~ ul a[href$='{sbom_digest}']"))
        .await;
    assert!(browser.text().await.contains("SBOM"));
    assert!(browser.text().await.contains("sbom.spdx.json"));
}

#[tokio::test]
async fn a_helm_chart_is_shown_as_a_chart_not_a_broken_image() {
    let (_ids, berth) = registry(|_| {});
    let http = client();
    let config = br#"{"name":"berth-demo","version":"0.1.0","apiVersion":"v2"}"#.to_vec();
    let chart = b"a chart archive (gzip in real life)".to_vec();
    let config_digest = push_blob(&http, &berth, "e2e/charts/demo", &config).await;
    let chart_digest = push_blob(&http, &berth, "e2e/charts/demo", &chart).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            "digest": chart_digest, "size": chart.len(),
            "annotations": {"org.opencontainers.image.title": "berth-demo-0.1.0.tgz"},
        }],
    }))
    .unwrap();
    let response = put_manifest(
        &http,
        &berth,
        "e2e/charts/demo",
        "0.1.0",
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    assert_eq!(response.status(), 201);

    let browser = Browser::start("artifact").await;
    browser
        .goto(&berth.url("/r/e2e/charts/demo/-/tags/0.1.0"))
        .await;
    let page = browser.text().await;
    assert!(page.contains("Helm chart"), "{page}");
    assert!(
        page.contains("application/vnd.cncf.helm.config.v1+json"),
        "{page}"
    );
    assert!(page.contains("berth-demo-0.1.0.tgz"), "{page}");
    assert!(!page.contains("Layers ("), "not shown as an image: {page}");
    browser.screenshot("helm-chart").await;
}

#[tokio::test]
async fn deleting_a_tag_keeps_the_other_tag_on_the_same_digest() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let image = labelled_image(&sandbox, "twice", &[]).await;
    for tag in ["stable", "v2"] {
        skopeo_push(
            &sandbox,
            &image,
            &format!("{}/e2e/twice:{tag}", berth.host()),
        )
        .await;
    }
    let inspect = |tag: &'static str| {
        let host = berth.host();
        let sandbox = &sandbox;
        async move {
            skopeo_as(
                sandbox,
                "anyone",
                &[
                    "inspect",
                    "--tls-verify=false",
                    &format!("docker://{host}/e2e/twice:{tag}"),
                ],
            )
            .await
        }
    };
    let before: Value =
        serde_json::from_str(&assert_ok(inspect("v2").await, "inspect v2")).unwrap();

    let browser = Browser::start("delete_tag").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser
        .goto(&berth.url("/r/e2e/twice/-/tags/stable/delete"))
        .await;
    let page = browser.text().await;
    assert!(page.contains("Only the tag stable is removed"), "{page}");
    assert!(page.contains("v2"), "names the tag that stays: {page}");
    browser.screenshot("delete-tag").await;
    browser.click("form.row button.danger").await;
    browser.wait("#tags").await;
    assert_eq!(browser.path().await, "/r/e2e/twice");
    assert_eq!(browser.texts("table tbody td:first-child a").await, ["v2"]);

    let after: Value =
        serde_json::from_str(&assert_ok(inspect("v2").await, "inspect v2 after")).unwrap();
    assert_eq!(
        after["Digest"], before["Digest"],
        "v2 still pulls the same manifest"
    );
    assert!(inspect("stable").await.is_err(), "the deleted tag is gone");

    // Deleting the manifest is a separate action that names the tags it removes.
    let digest = text(&before["Digest"]).to_string();
    browser
        .goto(&berth.url(&format!("/r/e2e/twice/-/manifests/{digest}/delete")))
        .await;
    let page = browser.text().await;
    assert!(page.contains("These tags are removed too: v2"), "{page}");
    browser.click("form.row button.danger").await;
    browser.wait("#tags").await;
    assert!(
        inspect("v2").await.is_err(),
        "the manifest and its tag are gone"
    );
    // The audit log is written in batches, a quarter of a second apart.
    let activity = browser
        .until_text(&berth.url("/activity"), &format!("e2e/twice@{digest}"))
        .await;
    assert!(activity.contains("e2e/twice:stable"), "audited: {activity}");
}

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
    browser.click("form.row button[type=submit]").await;
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
async fn script_in_labels_and_annotations_is_shown_as_text() {
    let (_ids, berth) = registry(|_| {});
    let http = client();
    let repository = "e2e/xss";
    let label = "<script>window.__berth_xss = 1</script>";
    let description = "<img src=x onerror=\"window.__berth_xss = 2\">";
    let annotation = "\"><script>window.__berth_xss = 3</script>";
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"evil": label, "org.opencontainers.image.description": description}},
        "history": [{"created_by": "<script>window.__berth_xss = 4</script>"}],
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let layer = b"layer".to_vec();
    let config_digest = push_blob(&http, &berth, repository, &config).await;
    let layer_digest = push_blob(&http, &berth, repository, &layer).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        "annotations": {"note": annotation},
    }))
    .unwrap();
    let response = put_manifest(&http, &berth, repository, "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(response.status(), 201);

    let browser = Browser::start("xss").await;
    for path in [
        "/r/e2e/xss/-/tags/v1",
        "/r/e2e/xss",
        "/search?q=script",
        "/",
    ] {
        browser.goto(&berth.url(path)).await;
        browser.wait("main").await;
        let ran = browser
            .eval("return window.__berth_xss === undefined")
            .await;
        assert_eq!(ran, json!(true), "{path}: no injected script ran");
        let injected = browser
            .eval("return document.querySelectorAll('main script, main img').length")
            .await;
        assert_eq!(injected, json!(0), "{path}: no element was injected");
    }
    browser.goto(&berth.url("/r/e2e/xss/-/tags/v1")).await;
    let page = browser.text().await;
    for shown in [label, description, annotation] {
        assert!(page.contains(shown), "{shown:?} is shown as text");
    }
    browser.screenshot("xss").await;
}

#[tokio::test]
async fn pulls_are_counted_per_tag_and_shown_with_the_last_pull_time() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let image = labelled_image(&sandbox, "pulled", &[]).await;
    skopeo_push(&sandbox, &image, &format!("{}/e2e/pulled:v1", berth.host())).await;
    for _ in 0..3 {
        run(sandbox
            .skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/e2e/pulled:v1", berth.host()))
            .arg(format!(
                "oci:{}:copy",
                sandbox.path("pulled-copy").display()
            )))
        .await;
    }
    let browser = Browser::start("pulls").await;
    // Pulls are counted in memory and written in batches every two seconds.
    let image = browser
        .until_text(&berth.url("/r/e2e/pulled/-/tags/v1"), "Pulls\n3, last")
        .await;
    assert!(image.contains("Pulls\n3, last"), "{image}");
    browser.goto(&berth.url("/r/e2e/pulled")).await;
    let headers = browser.texts("table thead th").await;
    let row = browser.texts("table tbody tr td").await;
    let column = |name: &str| {
        let at = headers.iter().position(|h| h == name);
        at.and_then(|at| row.get(at)).cloned().unwrap_or_default()
    };
    assert_eq!(column("Tag"), "v1", "{headers:?} {row:?}");
    assert_eq!(column("Pulls"), "3", "{headers:?} {row:?}");
    assert_eq!(column("Last pulled"), "just now", "{headers:?} {row:?}");
    // Today's bars in the repository's activity chart, drawn on the server.
    let bars = browser
        .eval(
            "return [...document.querySelectorAll('svg.chart rect')] \
             .map(r => r.getAttribute('class') + ' ' + r.textContent)",
        )
        .await;
    let bars: Vec<String> = serde_json::from_value(bars).unwrap();
    assert!(
        bars.iter()
            .any(|b| b.starts_with("pulls ") && b.ends_with(": 3 pulls")),
        "{bars:?}"
    );
    assert!(
        bars.iter()
            .any(|b| b.starts_with("pushes ") && b.ends_with(": 1 pushed manifests")),
        "{bars:?}"
    );
    browser.screenshot("repository-with-pulls").await;
}

#[tokio::test]
async fn with_deletion_disabled_no_delete_is_offered_or_done() {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "false")
        .data(ids.path())
        .start();
    let sandbox = Sandbox::new();
    let host = berth.host();
    let root = (host.as_str(), ROOT.0, ROOT.1);
    login_build_push(&sandbox, "root", root, &format!("{host}/kept/app:v1")).await;

    let browser = Browser::start("delete_disabled").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    browser.goto(&berth.url("/r/kept/app")).await;
    let page = browser.text().await;
    assert!(page.contains("v1"), "{page}");
    assert!(!page.contains("Delete"), "no delete link: {page}");
    browser.screenshot("repository-without-delete").await;
    browser.goto(&berth.url("/r/kept/app/-/tags/v1")).await;
    let page = browser.text().await;
    assert!(!page.contains("Delete"), "no delete link: {page}");

    // The confirmation page itself, typed in by hand, is refused.
    browser
        .goto(&berth.url("/r/kept/app/-/tags/v1/delete"))
        .await;
    let page = browser.text().await;
    assert!(
        page.contains("Deleting is disabled on this registry"),
        "{page}"
    );
    assert_ok(
        podman_pull(&sandbox, "root", &format!("{host}/kept/app:v1")).await,
        "the tag still pulls",
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

/// Whether the page is wider than the window (a horizontal scroll bar on the whole page;
/// wide tables scroll inside their own box instead).
async fn overflows(browser: &Browser) -> bool {
    browser
        .eval("return document.documentElement.scrollWidth > window.innerWidth + 1")
        .await
        == Value::Bool(true)
}

/// The relative luminance (0 black to 1 white) of the page's background.
async fn background_luminance(browser: &Browser) -> f64 {
    let value = browser
        .eval(
            "const [r, g, b] = getComputedStyle(document.body).backgroundColor \
             .match(/\\d+/g).map(Number); return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;",
        )
        .await;
    value.as_f64().unwrap()
}

#[tokio::test]
async fn pages_fit_a_phone_and_200_percent_zoom_follow_dark_mode_and_work_with_the_keyboard() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let image = labelled_image(
        &sandbox,
        "narrow",
        &[(
            "org.opencontainers.image.description",
            "A description long enough to need wrapping on a phone's narrow screen, and then some more words",
        )],
    )
    .await;
    let repository = "e2e/a-rather-long-team-name/with-a-long-service-name";
    skopeo_push(
        &sandbox,
        &image,
        &format!("{}/{repository}:v1.2.3-rc.1", berth.host()),
    )
    .await;
    let pages = [
        "/".to_string(),
        "/search?q=service".into(),
        format!("/r/{repository}"),
        format!("/r/{repository}/-/tags/v1.2.3-rc.1"),
        format!("/r/{repository}/-/access"),
        "/activity".into(),
        "/profile".into(),
        "/admin/users".into(),
        "/admin/rules".into(),
        "/admin/audit".into(),
    ];
    let browser = Browser::start("responsive").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    // A phone, and a 1280-pixel window at 200% zoom (a 640-pixel wide page).
    for (width, name) in [(390, "phone"), (640, "zoom-200")] {
        browser.resize(width, 900).await;
        for path in &pages {
            browser.goto(&berth.url(path)).await;
            assert!(
                !overflows(&browser).await,
                "{path} is wider than a {width}-pixel window"
            );
        }
        browser.goto(&berth.url(&format!("/r/{repository}"))).await;
        browser.screenshot(&format!("{name}-repository")).await;
    }
    browser.resize(1280, 1000).await;

    // Dark mode follows the system setting.
    browser
        .goto(&berth.url(&format!("/r/{repository}/-/tags/v1.2.3-rc.1")))
        .await;
    let scheme =
        |value: &str| json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] });
    browser
        .devtools("Emulation.setEmulatedMedia", scheme("light"))
        .await;
    let light = background_luminance(&browser).await;
    browser
        .devtools("Emulation.setEmulatedMedia", scheme("dark"))
        .await;
    let dark = background_luminance(&browser).await;
    assert!(light > 0.8 && dark < 0.25, "light {light}, dark {dark}");
    browser.screenshot("dark-image").await;
    browser
        .devtools("Emulation.setEmulatedMedia", scheme("light"))
        .await;

    // The keyboard: the first Tab reaches "Skip to content", which shows itself and jumps
    // to the page's content; focus is always visible.
    browser.goto(&berth.url(&format!("/r/{repository}"))).await;
    let body = browser.wait("body").await;
    body.send_keys("\u{e004}").await.unwrap();
    let focused = browser
        .eval(
            "const e = document.activeElement; const s = getComputedStyle(e); \
             const r = e.getBoundingClientRect(); \
             return [e.textContent, s.outlineStyle, r.left >= 0 && r.top >= 0];",
        )
        .await;
    assert_eq!(focused[0], "Skip to content", "{focused}");
    assert_ne!(focused[1], "none", "a visible focus ring: {focused}");
    assert_eq!(focused[2], true, "on screen when focused: {focused}");
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{e007}")
        .await
        .unwrap();
    assert!(
        browser
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("#main"),
        "Enter on the skip link goes to the content"
    );
}

/// The tag names in a repository page's table, in order.
async fn tag_column(browser: &Browser) -> Vec<String> {
    browser
        .texts("#tags ~ div table tbody td:first-child a")
        .await
}

#[tokio::test]
async fn tags_sort_by_name_push_time_and_size_and_pages_come_from_the_server() {
    let (_ids, berth) = registry(|_| {});
    let http = client();
    // 55 tags, pushed in name order; every fourth image has four layers (the largest).
    for i in 0..55u64 {
        let layers = 1 + (i % 4) as usize;
        push_image(&http, &berth, "e2e/many", &format!("t{i:02}"), i, layers).await;
    }
    // 25 repositories for one search.
    for i in 0..25u64 {
        push_image(
            &http,
            &berth,
            &format!("e2e/paged/r{i:02}"),
            "v1",
            100 + i,
            1,
        )
        .await;
    }
    let browser = Browser::start("sorting_and_pages").await;

    browser.goto(&berth.url("/r/e2e/many")).await;
    let first = tag_column(&browser).await;
    let expected: Vec<String> = (0..50).map(|i| format!("t{i:02}")).collect();
    assert_eq!(first, expected, "by name, 50 a page");
    assert!(browser.text().await.contains("Page 1 of 2"));
    browser.click("nav.pages a[rel=next]").await;
    browser.wait("nav.pages a[rel=prev]").await;
    assert_eq!(
        tag_column(&browser).await,
        ["t50", "t51", "t52", "t53", "t54"]
    );

    browser.goto(&berth.url("/r/e2e/many?sort=pushed")).await;
    let pushed = tag_column(&browser).await;
    assert_eq!(&pushed[..3], ["t54", "t53", "t52"], "newest first");
    browser.goto(&berth.url("/r/e2e/many?sort=size")).await;
    browser.screenshot("tags-by-size").await;
    let by_size = tag_column(&browser).await;
    let layers = |tag: &str| 1 + tag[1..].parse::<u64>().unwrap() % 4;
    assert!(
        by_size[..13].iter().all(|t| layers(t) == 4),
        "the thirteen four-layer images first: {by_size:?}"
    );
    // The sort order is kept from page to page.
    browser.click("nav.pages a[rel=next]").await;
    browser.wait("nav.pages a[rel=prev]").await;
    assert!(
        browser.path().await == "/r/e2e/many"
            && browser
                .client
                .current_url()
                .await
                .unwrap()
                .query()
                .is_some_and(|q| q.contains("sort=size")),
        "page 2 keeps the order"
    );
    let last = tag_column(&browser).await;
    assert!(
        last.iter().all(|t| layers(t) == 1),
        "the smallest last: {last:?}"
    );

    // Search results are ranked and paged by the server, 20 repositories a page.
    browser.goto(&berth.url("/search?q=paged")).await;
    let page_one = browser.texts("ol.results a.name").await;
    assert_eq!(page_one.len(), 20, "{page_one:?}");
    browser.click("nav.pages a[rel=next]").await;
    browser.wait("nav.pages a[rel=prev]").await;
    let page_two = browser.texts("ol.results a.name").await;
    assert_eq!(page_two.len(), 5, "{page_two:?}");
    let mut all: Vec<&String> = page_one.iter().chain(&page_two).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 25, "every repository once");
}

#[tokio::test]
async fn the_dashboard_works_with_javascript_turned_off() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    let image = labelled_image(
        &sandbox,
        "noscript",
        &[("org.opencontainers.image.vendor", "Quuxcorp")],
    )
    .await;
    for tag in ["v1", "v2"] {
        skopeo_push(
            &sandbox,
            &image,
            &format!("{}/e2e/noscript/app:{tag}", berth.host()),
        )
        .await;
    }
    let browser = Browser::start_without_javascript("without_javascript").await;
    browser.sign_in(&berth, ROOT.0, ROOT.1).await;
    assert_eq!(browser.text_of("header .who a").await, ROOT.0);
    // The page's script did not run: it marks the document when it does.
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("html.js"))
            .await
            .is_err(),
        "JavaScript is off"
    );

    // Search with the header's box (a GET form) and follow the result.
    browser.fill("header input[name=q]", "quuxcorp").await;
    browser.submit("header form.search button").await;
    assert_eq!(browser.path().await, "/search");
    assert_eq!(
        browser.texts("ol.results a.name").await,
        ["e2e/noscript/app"]
    );
    browser.screenshot("search").await;
    browser.click("ol.results a.name").await;
    browser.wait("#tags").await;
    assert_eq!(browser.path().await, "/r/e2e/noscript/app");
    assert_eq!(
        browser.texts("table tbody td:first-child a").await,
        ["v1", "v2"]
    );
    let page = browser.text().await;
    assert!(
        page.contains(&format!("podman pull {}/e2e/noscript/app:", berth.host())),
        "the pull command is on the page: {page}"
    );
    // Copy buttons need the clipboard API, so they are hidden without script.
    let copy = browser.wait("button.copy").await;
    assert!(!copy.is_displayed().await.unwrap(), "no dead copy buttons");
    browser.screenshot("repository").await;

    // Delete a tag through its confirmation form (a plain POST with its CSRF token).
    browser
        .click("table tbody tr:first-child a[href$='/delete']")
        .await;
    assert!(
        browser.text().await.contains("Only the tag v1 is removed"),
        "{}",
        browser.text().await
    );
    browser.screenshot("delete-tag").await;
    browser.submit("form.row button.danger").await;
    assert_eq!(browser.path().await, "/r/e2e/noscript/app");
    assert_eq!(browser.texts("table tbody td:first-child a").await, ["v2"]);
    let gone = client()
        .get(berth.url("/v2/e2e/noscript/app/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "the tag is deleted in the registry");
}

#[tokio::test]
async fn a_webassembly_module_pushed_with_oras_is_shown_as_one() {
    let (_ids, berth) = registry(|_| {});
    let sandbox = Sandbox::new();
    // The smallest valid module (magic number and version), and a config as the CNCF
    // WebAssembly OCI artifact layout describes it.
    sandbox.write("files/hello.wasm", b"\0asm\x01\0\0\0");
    sandbox.write(
        "files/wasm-config.json",
        br#"{"architecture":"wasm","os":"wasip1","created":"2026-11-30T00:00:00Z"}"#,
    );
    let file = |name: &str| sandbox.path(&format!("files/{name}")).display().to_string();
    let pushed = oras(
        &sandbox,
        &berth,
        &[
            "push",
            "--target=e2e/wasm/hello:v1",
            "--artifact-type=application/vnd.wasm.config.v0+json",
            &format!(
                "--config={}:application/vnd.wasm.config.v0+json",
                file("wasm-config.json")
            ),
            &format!("{}:application/wasm", file("hello.wasm")),
        ],
    )
    .await;
    let digest = text(&pushed["digest"]).to_string();

    let browser = Browser::start("wasm").await;
    browser.goto(&berth.url("/r/e2e/wasm/hello")).await;
    assert_eq!(browser.texts("td .badge").await, ["wasm"]);
    browser.screenshot("wasm-repository").await;
    browser.click("table tbody td:first-child a").await;
    browser.wait("h2").await;
    let page = browser.text().await;
    assert!(page.contains("WebAssembly module"), "{page}");
    assert!(
        page.contains("application/vnd.wasm.config.v0+json"),
        "the artifact type: {page}"
    );
    assert!(page.contains("Files (1)"), "{page}");
    assert!(page.contains("hello.wasm"), "the file's title: {page}");
    assert!(page.contains("application/wasm"), "{page}");
    assert!(page.contains(&digest[..19]), "{page}");
    assert!(!page.contains("Layers ("), "not shown as an image: {page}");
    assert!(!page.contains("History"), "no build history: {page}");
    browser.screenshot("wasm").await;
}
