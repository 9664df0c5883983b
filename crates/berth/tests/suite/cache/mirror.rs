//! containerd's mirror parameter: a registry configured as a mirror (`hosts.toml`'s
//! `[host."http://berth:5000"]` under `docker.io`) receives `/v2/<name>/...?ns=<registry>`
//! with the name as that registry knows it. containerd is not installed here; these are the
//! requests it sends, made with reqwest.

use super::*;

/// `GET`/`HEAD` of `path` (with `?ns=`), as containerd asks for manifests: status,
/// `Docker-Content-Digest`, body.
async fn containerd_get(
    berth: &Berth,
    method: reqwest::Method,
    path: &str,
) -> (u16, Option<String>, Vec<u8>) {
    let response = client()
        .request(method, berth.url(path))
        .header(
            "accept",
            format!("{OCI_MANIFEST}, {OCI_INDEX}, application/vnd.docker.distribution.manifest.v2+json, */*"),
        )
        .header("user-agent", "containerd/v2.0.0")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    (status, digest, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn containerd_requests_with_ns_are_served_by_the_remote_mirroring_that_registry() {
    let (dir, upstream, sandbox, mirrored) =
        upstream_with_image(b"from the mirrored registry\n").await;
    let berth = berth_with_config(dir.path(), &remote_config(&upstream.base, ""));
    // A local repository of the same name holds something else: `ns` must not reach it.
    let local = skopeo_push(
        &sandbox,
        "local",
        b"berth's own team/app\n",
        &format!("{}/team/app:v1", berth.host()),
        None,
    )
    .await;
    assert_ne!(local.digest, mirrored.digest);
    let ns = upstream.host();

    let (status, digest, body) = containerd_get(
        &berth,
        reqwest::Method::HEAD,
        &format!("/v2/team/app/manifests/v1?ns={ns}"),
    )
    .await;
    assert_eq!((status, body.len()), (200, 0), "HEAD by tag");
    assert_eq!(digest.as_deref(), Some(mirrored.digest.as_str()));
    let (status, digest, body) = containerd_get(
        &berth,
        reqwest::Method::GET,
        &format!("/v2/team/app/manifests/{}?ns={ns}", mirrored.digest),
    )
    .await;
    assert_eq!(status, 200, "GET by digest");
    assert_eq!(digest.as_deref(), Some(mirrored.digest.as_str()));
    assert_eq!(sha256(&body), mirrored.digest);
    for (blob, content) in &mirrored.blobs {
        let response = client()
            .get(berth.url(&format!("/v2/team/app/blobs/{blob}?ns={ns}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "blob {blob}");
        assert_eq!(
            &response.bytes().await.unwrap().to_vec(),
            content,
            "byte-exact"
        );
    }
    assert_eq!(
        upstream_requests(
            &upstream,
            "GET",
            &format!("/v2/team/app/manifests/{}", mirrored.digest)
        ) + upstream_requests(&upstream, "GET", "/v2/team/app/manifests/v1"),
        1,
        "one upstream manifest fetch"
    );
    // It is the remote's content under the remote's name, cached like any other pull.
    assert_eq!(
        manifest_digest(&berth, "up/team/app", "v1").await,
        mirrored.digest
    );
    // Without ns, the local repository; with a registry nothing mirrors, a clear 404.
    assert_eq!(
        manifest_digest(&berth, "team/app", "v1").await,
        local.digest
    );
    let response = client()
        .get(berth.url("/v2/team/app/manifests/v1?ns=quay.io"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 404, "NAME_UNKNOWN").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("mirrors no repositories of quay.io"),
        "{message}"
    );
}

#[tokio::test]
async fn a_registry_v2_proxy_serves_ns_requests_for_its_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let pushed = skopeo_push(
        &sandbox,
        "upstream",
        b"library image\n",
        &format!("{}/library/alpine:3.20", upstream.host()),
        None,
    )
    .await;
    let berth = Berth::builder()
        .env("REGISTRY_PROXY_REMOTEURL", &upstream.base)
        .start();
    // As a docker.io mirror: containerd says ns=docker.io, the proxy mirrors one upstream
    // whatever its name (registry:2's behaviour).
    let (status, digest, _) = containerd_get(
        &berth,
        reqwest::Method::GET,
        "/v2/library/alpine/manifests/3.20?ns=docker.io",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(digest.as_deref(), Some(pushed.digest.as_str()));
}

#[tokio::test]
async fn an_ns_request_is_authorized_on_the_remote_name() {
    let (_dir, upstream, _sandbox, pushed) = upstream_with_image(b"authorized mirror\n").await;
    let data = tempfile::tempdir().unwrap();
    let berth = berth_with_users(
        data.path(),
        &[("ci", "up/**", "pull")],
        &remote_config(&upstream.base, ""),
        &[],
    );
    let path = format!("/v2/team/app/manifests/v1?ns={}", upstream.host());

    // Anonymous: the challenge asks for the scope of the remote's name, which containerd
    // requests a token for.
    let response = client().get(berth.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("scope=\"repository:up/team/app:pull\""),
        "{challenge}"
    );
    let token: serde_json::Value = client()
        .get(berth.url("/token?service=berth&scope=repository:up/team/app:pull"))
        .basic_auth("ci", Some("ci-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = client()
        .get(berth.url(&path))
        .bearer_auth(token["token"].as_str().unwrap())
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["docker-content-digest"],
        pushed.digest.as_str()
    );
}
