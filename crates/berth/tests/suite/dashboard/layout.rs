//! Pages in any browser: attacker-controlled labels stay text, a phone's width, 200% zoom,
//! dark mode and the keyboard, JavaScript turned off, and tag tables sorted and paged by the
//! server.

use super::*;

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
