//! Refresh tokens work until revoked.

use super::*;

#[tokio::test]
async fn refresh_tokens_work_until_revoked() {
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "push");
        },
        &[],
    );
    push_image(&registry.admin(), &registry.berth, "team-a/api", "v1", 1, 0).await;
    let api = "/v2/team-a/api/manifests/v1";
    let alice = password("alice");
    let login = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", alice.as_str()),
        ("service", "berth"),
        ("client_id", "access-control-test"),
        ("scope", "repository:team-a/api:pull"),
    ];

    // Without access_type=offline, no refresh token.
    let response = registry.post_token(&login).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].is_null(), "{body}");
    assert_eq!(body["scope"], "repository:team-a/api:pull");

    let offline = [&login[..], &[("access_type", "offline")]].concat();
    let body: Value = registry.post_token(&offline).await.json().await.unwrap();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();
    let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
    assert_eq!(registry.get(api, Some(&bearer)).await.status(), 200);

    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("service", "berth"),
        ("client_id", "access-control-test"),
        ("scope", "repository:team-a/api:pull,push"),
    ];
    let response = registry.post_token(&refresh_form).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jwt_parts(token).1["access"],
        json!([{"type": "repository", "name": "team-a/api", "actions": ["pull", "push"]}])
    );
    assert_eq!(
        registry
            .get(api, Some(&format!("Bearer {token}")))
            .await
            .status(),
        200
    );
    // A refresh token is not a password.
    registry
        .assert_bad_credentials(
            registry.get(api, Some(&basic("alice", &refresh))).await,
            "refresh token as a password",
        )
        .await;
    // GET /token?offline_token=true gives one too.
    let response = registry
        .client
        .get(format!(
            "{}?{}",
            registry.url("/token"),
            form(&[("service", "berth"), ("offline_token", "true")])
        ))
        .header(AUTHORIZATION, basic("alice", &alice))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_token"].is_string(), "{body}");

    // The operator finds the refresh token in the list (without its secret) and revokes it.
    let tokens = registry.berth.cli(&["token", "list"]);
    let listed = tokens.as_array().unwrap();
    assert!(
        listed
            .iter()
            .all(|t| t.get("secret").is_none() && !t.to_string().contains(&refresh)),
        "{tokens}"
    );
    let refresh_id = refresh.split('_').nth(1).unwrap();
    let entry = listed
        .iter()
        .find(|t| t["id"] == refresh_id)
        .unwrap_or_else(|| panic!("refresh token {refresh_id} in {tokens}"));
    assert_eq!(
        (entry["kind"].as_str(), entry["owner"].as_str()),
        (Some("refresh"), Some("user:alice"))
    );
    registry.berth.cli(&["token", "revoke", refresh_id]);
    let response = registry.post_token(&refresh_form).await;
    registry
        .assert_bad_credentials(response, "revoked refresh token")
        .await;
    // The password still works.
    assert_eq!(registry.post_token(&login).await.status(), 200);
}
