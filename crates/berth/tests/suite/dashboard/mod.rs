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

mod access;
mod images;
mod layout;

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
        browser.submit("form.search button[type=submit]").await;
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
