//! Limited access tokens through the token flow: mounts and the limits registry tokens keep.

use super::*;

/// `POST /v2/<repo>/blobs/uploads/?mount=<digest>[&from=<from>]`: 201 if mounted, 202 if
/// berth opened an upload session instead.
pub(crate) async fn mount(
    registry: &Registry,
    authorization: &str,
    repo: &str,
    digest: &str,
    from: Option<&str>,
) -> u16 {
    let mut query = vec![("mount", digest)];
    query.extend(from.map(|from| ("from", from)));
    registry
        .client
        .post(registry.url(&format!("/v2/{repo}/blobs/uploads/?{}", form(&query))))
        .header(AUTHORIZATION, authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A blob is mounted only from a repository the caller may pull; otherwise the client
/// gets an upload session, as if the blob did not exist.
#[tokio::test]
async fn blob_mounts_only_take_from_repositories_the_caller_may_pull() {
    let mut secret = String::new();
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "push");
            secret = create_token(data, "user:alice", "api-only", &["team-a/api:pull,push"]).1;
        },
        &[],
    );
    let admin = registry.admin();
    let readable = push_image(&admin, &registry.berth, "team-a/web", "v1", 1, 1).await;
    let hidden = push_image(&admin, &registry.berth, "vault/secrets", "v1", 2, 1).await;
    let (readable, hidden) = (&readable.blobs[1].0, &hidden.blobs[1].0);
    let alice = basic("alice", &password("alice"));
    let token = registry
        .token(
            Some(("alice", &password("alice"))),
            &["repository:team-a/api:pull,push"],
        )
        .await;
    for authorization in [alice.clone(), format!("Bearer {token}")] {
        let kind = &authorization[..6];
        assert_eq!(
            mount(
                &registry,
                &authorization,
                "team-a/api",
                hidden,
                Some("vault/secrets")
            )
            .await,
            202,
            "{kind}: mount from a repository alice may not pull"
        );
        assert_eq!(
            mount(&registry, &authorization, "team-a/api", hidden, None).await,
            202,
            "{kind}: mount from anywhere of a blob alice may not pull"
        );
    }
    let response = registry
        .client
        .head(registry.url(&format!("/v2/team-a/api/blobs/{hidden}")))
        .header(AUTHORIZATION, &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "the hidden blob stayed hidden");
    // An access token limited to team-a/api cannot mount from team-a/web either.
    assert_eq!(
        mount(
            &registry,
            &basic("alice", &secret),
            "team-a/api",
            readable,
            Some("team-a/web")
        )
        .await,
        202
    );
    assert_eq!(
        mount(
            &registry,
            &alice,
            "team-a/api",
            readable,
            Some("team-a/web")
        )
        .await,
        201
    );
}

#[tokio::test]
async fn registry_tokens_keep_the_limits_of_the_access_token_they_came_from() {
    let mut secret = String::new();
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "push");
            berth_cli(
                data,
                &["policy", "add", "authenticated", "library/*", "pull"],
            );
            secret = create_token(data, "user:alice", "api-only", &["team-a/api:pull,push"]).1;
        },
        &[],
    );
    let admin = registry.admin();
    let mut images = Vec::new();
    for (i, repo) in ["team-a/api", "team-a/web", "library/alpine"]
        .iter()
        .enumerate()
    {
        images.push(push_image(&admin, &registry.berth, repo, "v1", i as u64, 1).await);
    }
    let web_layer = &images[1].blobs[1].0;
    let path = "/v2/library/alpine/manifests/v1";
    // With the access token as a Basic password, the token's limits hold.
    let response = registry.get(path, Some(&basic("alice", &secret))).await;
    assert_oci_error(response, 403, "DENIED").await;
    // Through the token flow, the registry token grants nothing there, as it should...
    let token = registry
        .token(
            Some(("alice", &secret)),
            &[
                "repository:library/alpine:pull",
                "repository:team-a/api:pull,push",
            ],
        )
        .await;
    assert_eq!(jwt_parts(&token).1["access"][0]["name"], "team-a/api");
    let bearer = format!("Bearer {token}");
    // ...but berth then judges by the owner's rules, not the access token's limits.
    let mut wrong = Vec::new();
    // It asks for a token with more scope (that the token endpoint never gives) instead of 403.
    let response = registry.get(path, Some(&bearer)).await;
    if response.status() != 403 {
        wrong.push(format!(
            "pull: {} {}",
            response.status(),
            response.text().await.unwrap()
        ));
    }
    // The catalog (with its scope) shows what the access token may pull, not all alice may.
    let listing = format!(
        "Bearer {}",
        registry
            .token(Some(("alice", &secret)), &["registry:catalog:*"])
            .await
    );
    let catalog: Value = registry
        .get("/v2/_catalog", Some(&listing))
        .await
        .json()
        .await
        .unwrap();
    if catalog["repositories"] != json!(["team-a/api"]) {
        wrong.push(format!("catalog: {catalog}"));
    }
    // A mount takes a blob from a repository the access token may not read.
    let status = mount(
        &registry,
        &bearer,
        "team-a/api",
        web_layer,
        Some("team-a/web"),
    )
    .await;
    if status != 202 {
        wrong.push(format!("mount from team-a/web: {status}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
