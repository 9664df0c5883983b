//! What a remote limits: the platforms of an index it caches (`platforms`) and the
//! requests it sends its upstream (`ratelimit`).

use super::*;

#[tokio::test]
async fn a_platform_filter_keeps_other_platforms_of_an_index_out_of_the_cache() {
    let (dir, upstream, sandbox, pushed) = upstream_with_index().await;
    let berth = berth_with_config(
        dir.path(),
        &remote_config(&upstream.base, "    platforms: [linux/amd64]\n"),
    );
    let (amd64, arm64) = (&pushed.children[0], &pushed.children[1]);

    // skopeo picks this machine's platform (linux/amd64) from the index: served.
    let image = format!("{}/up/team/multi:latest", berth.host());
    let (digest, layout) = skopeo_pull(&sandbox, &image, None, "amd64").await.unwrap();
    assert_eq!(digest, amd64.1, "the amd64 image");
    for (blob, content) in &amd64.3 {
        assert_eq!(&layout_blob(&layout, blob), content);
    }
    // The index is the upstream's, byte for byte.
    assert_eq!(
        manifest_digest(&berth, "up/team/multi", "latest").await,
        pushed.index_digest
    );
    // arm64 is refused by digest, saying why, and never fetched.
    let response = client()
        .get(berth.url(&format!("/v2/up/team/multi/manifests/{}", arm64.1)))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 404, "MANIFEST_UNKNOWN").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("linux/arm64") && message.contains("remotes.up.platforms"),
        "{message}"
    );
    let copy_all = run_output(
        sandbox
            .skopeo()
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:multi", sandbox.path("all").display())),
        b"",
    )
    .await;
    assert!(
        !copy_all.status.success(),
        "skopeo copy --all cannot get arm64"
    );
    assert_eq!(
        upstream_requests(
            &upstream,
            "GET",
            &format!("/v2/team/multi/manifests/{}", arm64.1)
        ),
        0,
        "the filtered platform never reached the upstream"
    );
    assert_eq!(
        upstream_requests(
            &upstream,
            "GET",
            &format!("/v2/team/multi/manifests/{}", amd64.1)
        ),
        1
    );
}

#[tokio::test]
async fn requests_over_the_rate_cap_wait_briefly_then_get_429_with_retry_after() {
    let (dir, upstream, sandbox, pushed) = upstream_with_image(b"rate capped\n").await;
    // Five more tags of the same manifest: six fetches berth has to make.
    let manifest = layout_blob(&sandbox.path("layout"), &pushed.digest);
    for tag in 2..=6 {
        let response = client()
            .put(format!("{}/v2/team/app/manifests/v{tag}", upstream.base))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let berth = berth_with_config(
        dir.path(),
        &remote_config(&upstream.base, "    ratelimit: 1\n"),
    );
    let get = |tag: u32| {
        client()
            .get(berth.url(&format!("/v2/up/team/app/manifests/v{tag}")))
            .header("accept", OCI_MANIFEST)
            .send()
    };
    let started = Instant::now();
    let answers = futures_util::future::join_all((1..=6).map(get)).await;
    let took = started.elapsed();
    let mut served = 0;
    let mut refused = Vec::new();
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            200 => served += 1,
            429 => {
                let retry_after: u64 = answer.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let body = assert_oci_error(answer, 429, "TOOMANYREQUESTS").await;
                let message = body["errors"][0]["message"].as_str().unwrap().to_string();
                refused.push((retry_after, message));
            }
            status => panic!("unexpected {status}: {}", answer.text().await.unwrap()),
        }
    }
    assert_eq!(
        (served, refused.len()),
        (2, 4),
        "one at once, one a second later, the rest refused: {refused:?}"
    );
    for (retry_after, message) in &refused {
        assert!((1..=3).contains(retry_after), "Retry-After {retry_after}");
        assert!(message.contains("capped at 1 a second"), "{message}");
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "the second waited its turn: {took:?}"
    );
    let fetched = (1..=6)
        .map(|tag| upstream_requests(&upstream, "GET", &format!("/v2/team/app/manifests/v{tag}")))
        .sum::<usize>();
    assert_eq!(
        fetched, 2,
        "only the admitted requests reached the upstream"
    );

    // After Retry-After, a refused tag is served.
    let wait = refused.iter().map(|(s, _)| *s).max().unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let mut statuses = Vec::new();
    for tag in 1..=6 {
        statuses.push(get(tag).await.unwrap().status().as_u16());
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(statuses, [200; 6], "within the cap every request is served");
}
