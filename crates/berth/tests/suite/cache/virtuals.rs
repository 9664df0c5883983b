//! Virtual repositories: one name prefix over local prefixes and remotes, with a real
//! upstream (Debian's `docker-registry`) behind the remote; skopeo and podman as clients.

use std::time::Duration;

use super::*;
use crate::support::push::{PushedImage, push_blob, push_image, put_manifest};

/// berth's configuration: the remote `up` over `upstream` and the virtual repository `all`
/// over the locals `mine` and `shared` and the remote, with `extra` lines for `all`.
fn virtual_config(upstream: &str, extra: &str) -> String {
    format!(
        "{}virtuals:\n  all:\n    prefix: all\n    locals: [mine, shared]\n    remotes: [up]\n{extra}",
        remote_config(upstream, "")
    )
}

/// `skopeo copy` of `image` (`oci:<layout>:v1`) to `target`, optionally with credentials;
/// whether it succeeded, and its stderr.
async fn skopeo_copy(
    sandbox: &Sandbox,
    image: &str,
    target: &str,
    credentials: Option<&str>,
) -> (bool, String) {
    let mut command = sandbox.skopeo();
    command.args(["copy", "--dest-tls-verify=false"]);
    if let Some(credentials) = credentials {
        command.args(["--dest-creds", credentials]);
    }
    command.arg(image).arg(format!("docker://{target}"));
    let output = run_output(&mut command, b"").await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The tags `GET /v2/<repo>/tags/list?n=` lists, and the `Link` header.
async fn tags(berth: &Berth, repo: &str, n: Option<u32>) -> (Vec<String>, Option<String>) {
    let query = n.map(|n| format!("?n={n}")).unwrap_or_default();
    let response = client()
        .get(berth.url(&format!("/v2/{repo}/tags/list{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "tags of {repo}");
    let link = response
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = response.json().await.unwrap();
    let tags = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (tags, link)
}

#[tokio::test]
async fn a_virtual_repository_resolves_locals_first_then_remotes_in_list_order() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let sandbox = Sandbox::new();
    let up = |tag: &str| format!("{}/team/app:{tag}", upstream.host());
    let remote_v1 = skopeo_push(&sandbox, "r1", b"remote v1\n", &up("v1"), None).await;
    let remote_v2 = skopeo_push(&sandbox, "r2", b"remote v2\n", &up("v2"), None).await;
    let remote_v3 = skopeo_push(&sandbox, "r3", b"remote v3\n", &up("v3"), None).await;
    let berth = berth_with_config(dir.path(), &virtual_config(&upstream.base, ""));
    let local = |repo: &str, tag: &str| format!("{}/{repo}/team/app:{tag}", berth.host());
    // The same tag in both locals and upstream; another in the second local and upstream.
    let mine_v1 = skopeo_push(&sandbox, "m1", b"mine v1\n", &local("mine", "v1"), None).await;
    let shared_v1 = skopeo_push(&sandbox, "s1", b"shared v1\n", &local("shared", "v1"), None).await;
    let shared_v3 = skopeo_push(&sandbox, "s3", b"shared v3\n", &local("shared", "v3"), None).await;
    let digests = [
        &remote_v1, &remote_v2, &remote_v3, &mine_v1, &shared_v1, &shared_v3,
    ];
    for (i, a) in digests.iter().enumerate() {
        for b in &digests[i + 1..] {
            assert_ne!(a.digest, b.digest, "six different images");
        }
    }

    let image = |tag: &str| format!("{}/all/team/app:{tag}", berth.host());
    let (v1, layout) = skopeo_pull(&sandbox, &image("v1"), None, "v1")
        .await
        .unwrap();
    assert_eq!(
        v1, mine_v1.digest,
        "v1: the first local wins over the second and the remote"
    );
    for (digest, blob) in &mine_v1.blobs {
        assert_eq!(&layout_blob(&layout, digest), blob, "byte-exact blobs");
    }
    let v3 = podman_pull(&sandbox, "v3", &image("v3")).await.unwrap();
    assert_eq!(
        v3, shared_v3.digest,
        "v3: the second local wins over the remote"
    );
    let v2 = podman_pull(&sandbox, "v2", &image("v2")).await.unwrap();
    assert_eq!(v2, remote_v2.digest, "v2: only upstream has it");
    let (v2, _) = skopeo_pull(&sandbox, &image("v2"), None, "v2")
        .await
        .unwrap();
    assert_eq!(v2, remote_v2.digest);
    assert_eq!(
        upstream_requests(
            &upstream,
            "GET",
            &format!("/v2/team/app/manifests/{}", remote_v1.digest)
        ) + upstream_requests(&upstream, "GET", "/v2/team/app/manifests/v1"),
        0,
        "a tag a local member has never goes upstream"
    );
    // By digest, too, each member answers for what it holds.
    assert_eq!(
        manifest_digest(&berth, "all/team/app", &shared_v1.digest).await,
        shared_v1.digest
    );
    assert_eq!(
        manifest_digest(&berth, "all/team/app", &remote_v1.digest).await,
        remote_v1.digest
    );

    // Tags: the union of what the members hold (a remote lists what it has cached), in
    // order, paged across members.
    let (all, _) = tags(&berth, "all/team/app", None).await;
    assert_eq!(all, ["v1", "v2", "v3"]);
    let (first, link) = tags(&berth, "all/team/app", Some(2)).await;
    assert_eq!(first, ["v1", "v2"]);
    let link = link.expect("a next page");
    assert!(
        link.contains("/v2/all/team/app/tags/list?n=2&last=v2"),
        "{link}"
    );
    let response = client()
        .get(berth.url("/v2/all/team/app/tags/list?n=2&last=v2"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["tags"], serde_json::json!(["v3"]));

    // Nothing anywhere: the virtual name is unknown, members are not named.
    let response = client()
        .get(berth.url("/v2/all/team/none/manifests/v1"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 404, "MANIFEST_UNKNOWN").await;
    assert!(!body.to_string().contains("mine/"), "{body}");
    let response = client()
        .get(berth.url("/v2/all/team/none/tags/list"))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn a_push_to_a_virtual_repository_goes_to_its_deploy_target_and_pulls_through_both_names() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let data = tempfile::tempdir().unwrap();
    // Token auth: every request of the push must stay inside the scope the client asked
    // for (all/team/app), so the URLs berth gives back keep the virtual name.
    let berth = berth_with_users(
        data.path(),
        &[
            ("alice", "all/**", "pull,push,delete"),
            ("alice", "mine/**", "pull,push,delete"),
        ],
        &virtual_config(&upstream.base, "    deploy: mine\n"),
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
    );
    let sandbox = Sandbox::new();
    let image = umoci_image(&sandbox, "layout", b"deployed through a virtual name\n").await;
    let layout = sandbox.path("layout");
    let (pushed, stderr) = skopeo_copy(
        &sandbox,
        &image,
        &format!("{}/all/team/app:v1", berth.host()),
        Some("alice:alice-password"),
    )
    .await;
    assert!(pushed, "skopeo push through the virtual name: {stderr}");
    let digest = text(&layout_descriptor(&layout, "v1")["digest"]).to_string();

    for name in ["all/team/app:v1", "mine/team/app:v1"] {
        let (pulled, out) = skopeo_pull(
            &sandbox,
            &format!("{}/{name}", berth.host()),
            Some("alice:alice-password"),
            name.split('/').next().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(pulled, digest, "{name}");
        for (blob, content) in manifest_blobs(&layout, &layout_blob(&layout, &digest)) {
            assert_eq!(layout_blob(&out, &blob), content, "{name}: byte-exact");
        }
    }
    // The content is in the deploy target only; the virtual name holds nothing itself.
    assert_eq!(
        catalog(&berth, Some("alice")).await,
        serde_json::json!(["mine/team/app"])
    );
    assert_eq!(
        upstream_requests(&upstream, "HEAD", "/v2/team/app/manifests/v1")
            + upstream_requests(&upstream, "GET", "/v2/team/app/manifests/v1"),
        0,
        "the deployed tag is found locally, the upstream is not asked"
    );

    // Deletes go to the deploy target too.
    let response = client()
        .delete(berth.url(&format!("/v2/all/team/app/manifests/{digest}")))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "delete through the virtual name");
    let response = client()
        .get(berth.url(&format!("/v2/mine/team/app/manifests/{digest}")))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_oci_error(response, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn a_push_to_a_virtual_repository_without_a_deploy_target_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let berth = berth_with_config(dir.path(), &virtual_config(&upstream.base, ""));
    let sandbox = Sandbox::new();
    let image = umoci_image(&sandbox, "layout", b"nowhere to go\n").await;
    let (pushed, stderr) = skopeo_copy(
        &sandbox,
        &image,
        &format!("{}/all/team/app:v1", berth.host()),
        None,
    )
    .await;
    assert!(
        !pushed,
        "skopeo push to a virtual repository without deploy target"
    );
    assert!(stderr.contains("deploy"), "skopeo shows why: {stderr}");
    let response = client()
        .post(berth.url("/v2/all/team/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(response, 403, "DENIED").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("virtual repository \"all\"")
            && message.contains("no deploy target (virtuals.all.deploy)"),
        "{message}"
    );
    assert_eq!(
        catalog(&berth, None).await,
        serde_json::json!([]),
        "nothing written"
    );
}

#[tokio::test]
async fn access_rules_apply_to_the_virtual_name() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let data = tempfile::tempdir().unwrap();
    let berth = berth_with_users(
        data.path(),
        &[
            ("alice", "all/**", "pull,push"),
            ("bob", "mine/**", "pull,push"),
        ],
        &virtual_config(&upstream.base, "    deploy: mine\n"),
        &[],
    );
    let sandbox = Sandbox::new();
    let pushed = skopeo_push(
        &sandbox,
        "layout",
        b"rules\n",
        &format!("{}/mine/team/app:v1", berth.host()),
        Some("bob:bob-password"),
    )
    .await;
    let image = format!("{}/all/team/app:v1", berth.host());
    let (digest, _) = skopeo_pull(&sandbox, &image, Some("alice:alice-password"), "alice")
        .await
        .unwrap();
    assert_eq!(
        digest, pushed.digest,
        "alice may pull all/**: the virtual name's rules decide, not the member's"
    );
    let refused = skopeo_pull(&sandbox, &image, Some("bob:bob-password"), "bob").await;
    assert!(
        refused.is_err(),
        "bob may pull mine/** but has no rule for all/**"
    );
    let refused = skopeo_pull(&sandbox, &image, None, "anonymous").await;
    assert!(refused.is_err(), "anonymous has no rule at all");
    let response = client()
        .post(berth.url("/v2/all/team/app/blobs/uploads/"))
        .basic_auth("bob", Some("bob-password"))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(response.status().as_u16(), 401 | 403),
        "bob cannot push through all/ either: {}",
        response.status()
    );
}

#[tokio::test]
async fn a_misconfigured_virtual_repository_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (virtuals, key, why) in [
        (
            "  all:\n    prefix: all\n    locals: [all/inner]\n",
            "virtuals.all.locals[0]",
            "contain itself",
        ),
        (
            "  all:\n    prefix: all\n    remotes: [other]\n  other:\n    prefix: other\n    locals: [team]\n",
            "virtuals.all.remotes[0]",
            "is a virtual repository",
        ),
        (
            "  all:\n    prefix: all\n    remotes: [nowhere]\n",
            "virtuals.all.remotes[0]",
            "not a remote repository",
        ),
        (
            "  all:\n    prefix: up/all\n    locals: [team]\n",
            "virtuals.all.prefix",
            "overlaps remotes.up.prefix",
        ),
        (
            "  all:\n    prefix: all\n    locals: [team]\n    deploy: elsewhere\n",
            "virtuals.all.deploy",
            "not one of locals",
        ),
    ] {
        let config = dir.path().join("berth.yml");
        std::fs::write(
            &config,
            format!(
                "{}virtuals:\n{virtuals}",
                remote_config("http://127.0.0.1:1", "")
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["--addr", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .env("BERTH_CONFIG", &config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("berth started with {key} misconfigured");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(2), "{key}");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            stderr.contains(key) && stderr.contains(why),
            "{key}: {why}:\n{stderr}"
        );
    }
}

/// An artifact (`artifact_type`, one small layer) whose subject is `subject`, pushed to
/// `repo`: its digest.
async fn push_referrer(
    berth: &Berth,
    repo: &str,
    subject: &PushedImage,
    artifact_type: &str,
) -> String {
    let client = client();
    let empty = (push_blob(&client, berth, repo, b"{}").await, b"{}".to_vec());
    let layer = format!("{artifact_type} of {}", subject.digest).into_bytes();
    let layer_digest = push_blob(&client, berth, repo, &layer).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.0, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": layer.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len()},
    }))
    .unwrap();
    let digest = sha256(&manifest);
    let response = put_manifest(&client, berth, repo, &digest, OCI_MANIFEST, &manifest).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    digest
}

#[tokio::test]
async fn referrers_through_a_virtual_repository_are_the_union_of_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = OfficialRegistry::start_logged(dir.path(), None);
    let berth = berth_with_config(dir.path(), &virtual_config(&upstream.base, ""));
    let image = push_image(&client(), &berth, "mine/app", "v1", 7, 1).await;
    let signature = push_referrer(
        &berth,
        "mine/app",
        &image,
        "application/vnd.example.signature",
    )
    .await;
    let sbom = push_referrer(&berth, "shared/app", &image, "application/vnd.example.sbom").await;

    let referrers = |query: &'static str| {
        let url = berth.url(&format!("/v2/all/app/referrers/{}{query}", image.digest));
        async move {
            let response = client().get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let filtered = response.headers().get("oci-filters-applied").is_some();
            let index: serde_json::Value = response.json().await.unwrap();
            let digests: Vec<String> = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["digest"].as_str().unwrap().to_string())
                .collect();
            (index["mediaType"].clone(), digests, filtered)
        }
    };
    let (media_type, digests, filtered) = referrers("").await;
    assert_eq!(media_type, OCI_INDEX);
    assert_eq!(digests, [signature.clone(), sbom.clone()], "member order");
    assert!(!filtered);
    let (_, digests, filtered) = referrers("?artifactType=application/vnd.example.sbom").await;
    assert_eq!(digests, [sbom]);
    assert!(filtered, "the filter is applied and said so");
    let response = client()
        .get(berth.url(&format!("/v2/all/none/referrers/{}", image.digest)))
        .send()
        .await
        .unwrap();
    let index: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        index["manifests"],
        serde_json::json!([]),
        "nothing refers to it anywhere"
    );
}
