//! Tag immutability: a tag a rule protects is never moved or deleted, whichever client
//! tries (skopeo, podman, the API), and re-pushing the digest it points at is fine. Rules are
//! managed with the CLI while berth serves, audited, and hold under racing pushes.

use std::process::Output;

use serde_json::Value;

use crate::support::clients::{Sandbox, run, run_output, skopeo_push, text, umoci_image};
use crate::support::push::{OCI_MANIFEST, image_manifest, push_blob, push_image, put_manifest};
use crate::support::{Berth, assert_oci_error, bytes, client, sha256};

fn start() -> Berth {
    Berth::builder()
        .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
        .start()
}

/// `berth immutable-tags add REPOSITORIES TAGS` on the running server's database: the rule.
fn add_rule(berth: &Berth, repositories: &str, tags: &str) -> Value {
    let added = berth.cli(&["immutable-tags", "add", repositories, tags]);
    added[0].clone()
}

async fn tag_digest(berth: &Berth, repository: &str, tag: &str) -> String {
    let response = client()
        .get(berth.url(&format!("/v2/{repository}/manifests/{tag}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{repository}:{tag}");
    sha256(&response.bytes().await.unwrap())
}

fn assert_refused_naming(output: &Output, rule: &Value, what: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what} succeeded");
    assert!(
        stderr.contains("is immutable") && stderr.contains(&format!("#{}", rule["id"])),
        "{what}: the refusal names the rule: {stderr}"
    );
}

#[tokio::test]
async fn a_protected_tag_refuses_skopeo_and_podman_moving_it_and_takes_the_same_digest_again() {
    let berth = start();
    let sandbox = Sandbox::new();
    let rule = add_rule(&berth, "frozen/**", "v*");
    let first = umoci_image(&sandbox, "first", b"first image\n").await;
    let second = umoci_image(&sandbox, "second", b"second image\n").await;
    let v1 = format!("{}/frozen/app:v1", berth.host());

    let pushed = skopeo_push(&sandbox, &first, &v1).await;
    assert!(pushed.status.success(), "{pushed:?}");
    let digest = tag_digest(&berth, "frozen/app", "v1").await;
    let again = skopeo_push(&sandbox, &first, &v1).await;
    assert!(
        again.status.success(),
        "re-pushing the same image: {again:?}"
    );

    let moved = skopeo_push(&sandbox, &second, &v1).await;
    assert_refused_naming(&moved, &rule, "skopeo moving v1");

    // podman builds another image and pushes it over the protected tag.
    sandbox.write("context/hello.txt", b"built by podman\n");
    let containerfile = sandbox.write("context/Containerfile", b"FROM scratch\nCOPY hello.txt /\n");
    run(sandbox
        .podman("store")
        .args(["build", "--format", "oci", "-t", "localhost/other:v1", "-f"])
        .arg(&containerfile)
        .arg(sandbox.path("context")))
    .await;
    let podman = run_output(
        sandbox
            .podman("store")
            .args(["push", "--tls-verify=false", "localhost/other:v1"])
            .arg(format!("docker://{v1}")),
        b"",
    )
    .await;
    assert_refused_naming(&podman, &rule, "podman moving v1");

    assert_eq!(
        tag_digest(&berth, "frozen/app", "v1").await,
        digest,
        "refused pushes changed nothing"
    );

    // Tags and repositories the rule does not match move as usual.
    for target in ["frozen/app:latest", "elsewhere/app:v1"] {
        let target = format!("{}/{target}", berth.host());
        for image in [&first, &second] {
            let output = skopeo_push(&sandbox, image, &target).await;
            assert!(output.status.success(), "{target}: {output:?}");
        }
    }
}

#[tokio::test]
async fn a_protected_tag_cannot_be_deleted_by_tag_or_by_digest_until_its_rule_is_removed() {
    let berth = start();
    let sandbox = Sandbox::new();
    let rule = add_rule(&berth, "frozen/**", "release-*");
    let image = push_image(&client(), &berth, "frozen/svc", "release-1", 1, 1).await;

    let by_tag = client()
        .delete(berth.url("/v2/frozen/svc/manifests/release-1"))
        .send()
        .await
        .unwrap();
    let body = assert_oci_error(by_tag, 403, "DENIED").await;
    assert!(
        body.to_string()
            .contains(&format!("tag release-1 is immutable (rule #{}", rule["id"])),
        "{body}"
    );
    let by_digest = client()
        .delete(berth.url(&format!("/v2/frozen/svc/manifests/{}", image.digest)))
        .send()
        .await
        .unwrap();
    assert_oci_error(by_digest, 403, "DENIED").await;
    let skopeo = run_output(
        sandbox
            .skopeo()
            .args(["delete", "--tls-verify=false"])
            .arg(format!("docker://{}/frozen/svc:release-1", berth.host())),
        b"",
    )
    .await;
    assert_refused_naming(&skopeo, &rule, "skopeo delete");
    assert_eq!(
        tag_digest(&berth, "frozen/svc", "release-1").await,
        image.digest
    );

    let id = rule["id"].to_string();
    let removed = berth.cli(&["immutable-tags", "remove", &id]);
    assert_eq!(removed[0]["id"], rule["id"]);
    assert_eq!(
        berth.cli(&["immutable-tags", "list"]),
        serde_json::json!([])
    );
    run(sandbox
        .skopeo()
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}/frozen/svc:release-1", berth.host())))
    .await;

    // Both changes are in the audit log, with the rule they concern.
    let audit = berth.cli(&["audit", "list"]);
    let details: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "immutable-tags")
        .map(|e| text(&e["detail"]))
        .collect();
    let named = format!("#{} (frozen/**:release-*)", rule["id"]);
    assert!(
        details.contains(&format!("added rule {named}").as_str())
            && details.contains(&format!("removed rule {named}").as_str()),
        "{details:?}"
    );
}

#[tokio::test]
async fn racing_pushes_to_a_new_protected_tag_leave_exactly_one_winner() {
    let berth = start();
    add_rule(&berth, "race/**", "*");
    let client = client();
    let mut manifests = Vec::new();
    for seed in 0..8u64 {
        let config = bytes(200, seed);
        let config = (
            push_blob(&client, &berth, "race/app", &config).await,
            config,
        );
        manifests.push(image_manifest(&config, &[]));
    }
    let pushes = manifests.iter().map(|manifest| {
        let client = client.clone();
        let berth = &berth;
        async move {
            put_manifest(&client, berth, "race/app", "v1", OCI_MANIFEST, manifest)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(pushes).await;
    let winners: Vec<usize> = (0..statuses.len())
        .filter(|&i| statuses[i] == 201)
        .collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 201 || s == 403),
        "{statuses:?}"
    );
    assert_eq!(
        tag_digest(&berth, "race/app", "v1").await,
        sha256(&manifests[winners[0]])
    );
}

#[test]
fn invalid_rules_are_refused_with_the_field_named() {
    let berth = start();
    for (repositories, tags, field) in [
        ("Frozen/**", "v*", "repositories:"),
        ("frozen//app", "v*", "repositories:"),
        ("frozen/**", "v/1", "tags:"),
        ("frozen/**", "*)(uid=*", "tags:"),
    ] {
        let output = berth.cli_output(&["immutable-tags", "add", repositories, tags]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{repositories} {tags}");
        assert!(stderr.contains(field), "{repositories} {tags}: {stderr}");
    }
    assert_eq!(
        berth.cli(&["immutable-tags", "list"]),
        serde_json::json!([])
    );
}
