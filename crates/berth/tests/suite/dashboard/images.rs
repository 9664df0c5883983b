//! Images, indexes and artifacts as the dashboard shows them: an index's platforms, referrers
//! (signature, SBOM), a Helm chart and a WebAssembly module pushed with oras, deleting a tag
//! and deletion turned off, and pulls counted per tag.

use super::*;

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
