//! Anonymous access: public repositories, and no anonymous push.

use super::*;

/// Parses `Bearer realm="...",service="...",scope="..."`.
fn challenge_params(value: &str) -> Vec<(String, String)> {
    let rest = value.strip_prefix("Bearer ").expect("a Bearer challenge");
    let mut params = Vec::new();
    let mut rest = rest;
    while let Some((key, after)) = rest.split_once("=\"") {
        let (val, after) = after.split_once('"').expect("closing quote");
        params.push((key.trim_start_matches(',').to_string(), val.to_string()));
        rest = after;
    }
    params
}

#[tokio::test]
async fn anonymous_pull_of_a_public_repository_and_no_anonymous_push() {
    let registry = Registry::start(
        |data| {
            berth_cli(data, &["policy", "add", "anonymous", "*/public-*", "pull"]);
        },
        &[],
    );
    let image = push_image(
        &registry.admin(),
        &registry.berth,
        "web/public-site",
        "v1",
        7,
        2,
    )
    .await;

    // Everyone may pull it, without credentials at all...
    let path = "/v2/web/public-site/manifests/v1";
    let response = registry.get(path, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), image.manifest);

    // ...or as a client does: `/v2/` challenges, the client takes an anonymous token from
    // the realm for the service and scope, and presents it.
    let response = registry.get("/v2/", None).await;
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    registry.assert_bad_credentials(response, "/v2/").await;
    let params = challenge_params(&challenge);
    assert_eq!(
        (params[0].0.as_str(), params[1].0.as_str()),
        ("realm", "service")
    );
    let response = registry
        .client
        .get(format!(
            "{}?{}",
            params[0].1,
            form(&[
                ("service", &params[1].1),
                ("scope", "repository:web/public-site:pull")
            ])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["refresh_token"].is_null(),
        "no refresh token for anonymous: {body}"
    );
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());
    let response = registry.get(path, Some(&bearer)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), image.manifest);
    for (digest, data) in &image.blobs {
        let response = registry
            .get(
                &format!("/v2/web/public-site/blobs/{digest}"),
                Some(&bearer),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(&response.bytes().await.unwrap()[..], &data[..]);
    }
    // The base endpoint accepts an anonymous token.
    assert_eq!(registry.get("/v2/", Some(&bearer)).await.status(), 200);

    // Anonymous push: refused with a challenge, with or without an anonymous token.
    let digest = sha256(b"layer");
    for authorization in [None, Some(bearer.as_str())] {
        let mut request = registry
            .client
            .post(registry.url(&format!(
                "/v2/web/public-site/blobs/uploads/?digest={digest}"
            )))
            .body("layer");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        registry
            .assert_unauthorized(
                request.send().await.unwrap(),
                &registry.challenge(Some("repository:web/public-site:pull,push")),
                &format!("anonymous push with {authorization:?}"),
            )
            .await;
        let response = put_manifest(
            &match authorization {
                Some(value) => registry.client_with(value),
                None => registry.client.clone(),
            },
            &registry.berth,
            "web/public-site",
            "v2",
            OCI_MANIFEST,
            &image.manifest,
        )
        .await;
        registry
            .assert_unauthorized(
                response,
                &registry.challenge(Some("repository:web/public-site:pull,push")),
                "anonymous manifest push",
            )
            .await;
    }
    // A private repository is not even readable anonymously.
    push_image(
        &registry.admin(),
        &registry.berth,
        "web/private",
        "v1",
        8,
        0,
    )
    .await;
    registry
        .assert_unauthorized(
            registry
                .get("/v2/web/private/manifests/v1", Some(&bearer))
                .await,
            &registry.challenge(Some("repository:web/private:pull")),
            "anonymous pull of a private repository",
        )
        .await;
    // The catalog: a challenge without credentials or with a token without the catalog
    // scope, the public repositories with an anonymous token that has it.
    registry
        .assert_unauthorized(
            registry.get("/v2/_catalog", None).await,
            &registry.challenge(Some("registry:catalog:*")),
            "anonymous catalog without a token",
        )
        .await;
    registry
        .assert_unauthorized(
            registry.get("/v2/_catalog", Some(&bearer)).await,
            &format!(
                "{},error=\"insufficient_scope\"",
                registry.challenge(Some("registry:catalog:*"))
            ),
            "anonymous catalog with a token for a repository",
        )
        .await;
    let listing = format!(
        "Bearer {}",
        registry.token(None, &["registry:catalog:*"]).await
    );
    let catalog: Value = registry
        .get("/v2/_catalog", Some(&listing))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["repositories"], json!(["web/public-site"]));
}
