//! What tokens grant: a registry token exactly its access claim; an access token limited to
//! push may pull (as a rule's push does); and a token signature has one form.

use serde_json::json;

use super::{bearer, catalog};
use crate::access_control::{Registry, add_user, basic, create_token, mount, password};
use crate::support::berth_cli;
use crate::support::push::push_image;

#[tokio::test]
async fn a_registry_token_grants_exactly_its_access_claim() {
    let registry = Registry::start(
        |data| {
            add_user(data, "alice", false);
            berth_cli(data, &["policy", "add", "user:alice", "team/**", "push"]);
            berth_cli(data, &["policy", "add", "user:alice", "secret/**", "pull"]);
        },
        &[],
    );
    let image = push_image(&registry.admin(), &registry.berth, "secret/x", "v1", 4, 1).await;
    let layer = &image.blobs[1].0;
    let alice = Some(("alice", password("alice")));
    let login = alice.as_ref().map(|(u, p)| (*u, p.as_str()));
    let token = bearer(
        &registry
            .token(login, &["repository:team/m1:pull,push"])
            .await,
    );

    // A mount needs pull on its source in the token: without it, an upload instead (202).
    assert_eq!(
        mount(&registry, &token, "team/m1", layer, Some("secret/x")).await,
        202,
        "mounted from a repository the token does not grant"
    );
    // With pull on the source in the token, the mount happens.
    let both = bearer(
        &registry
            .token(
                login,
                &["repository:team/m2:pull,push", "repository:secret/x:pull"],
            )
            .await,
    );
    assert_eq!(
        mount(&registry, &both, "team/m2", layer, Some("secret/x")).await,
        201
    );

    // The catalog needs the catalog scope in the token, and a challenge says so.
    let response = registry.get("/v2/_catalog", Some(&token)).await;
    let challenge = format!(
        "{},error=\"insufficient_scope\"",
        registry.challenge(Some("registry:catalog:*"))
    );
    registry
        .assert_unauthorized(response, &challenge, "the catalog without its scope")
        .await;
    let listing = bearer(&registry.token(login, &["registry:catalog:*"]).await);
    assert_eq!(
        catalog(&registry.berth, &listing).await,
        Some(json!(["secret/x", "team/m2"]))
    );
}

#[tokio::test]
async fn an_access_token_limited_to_push_may_pull() {
    let mut token = String::new();
    let registry = Registry::start(
        |data| {
            add_user(data, "alice", false);
            berth_cli(data, &["policy", "add", "user:alice", "team/**", "push"]);
            token = create_token(data, "user:alice", "push-only", &["team/**:push"]).1;
        },
        &[],
    );
    push_image(&registry.admin(), &registry.berth, "team/app", "v1", 9, 1).await;
    let response = registry
        .get("/v2/team/app/manifests/v1", Some(&basic("alice", &token)))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let scoped = registry
        .token(Some(("alice", &token)), &["repository:team/app:pull"])
        .await;
    let response = registry
        .get("/v2/team/app/manifests/v1", Some(&bearer(&scoped)))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn registry_tokens_with_a_high_s_signature_are_refused() {
    use crate::access_control::{base64url, base64url_decode, order_minus};
    let registry = Registry::start(|data| add_user(data, "alice", false), &[]);
    let login = Some(("alice", password("alice")));
    let mut high = 0;
    for _ in 0..16 {
        let token = registry
            .token(login.as_ref().map(|(u, p)| (*u, p.as_str())), &[])
            .await;
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let signature = base64url_decode(signature);
        assert_eq!(signature.len(), 64, "ES256: r and s");
        let s = &signature[32..];
        // Issued tokens carry the low s (s <= n/2: n - s >= s).
        if order_minus(s).as_slice() < s {
            high += 1;
        }
        // The same signature with s replaced by n - s is refused.
        let mut flipped = signature[..32].to_vec();
        flipped.extend(order_minus(s));
        let forged = format!("{signed}.{}", base64url(&flipped));
        let response = registry.get("/v2/", Some(&bearer(&forged))).await;
        assert_eq!(
            response.status(),
            401,
            "a signature with n - s was accepted"
        );
        assert_eq!(
            registry.get("/v2/", Some(&bearer(&token))).await.status(),
            200
        );
    }
    assert_eq!(high, 0, "issued tokens with a high s");
}
