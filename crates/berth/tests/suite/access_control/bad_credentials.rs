//! Bad credentials and token requests: 401 with a challenge, or 400; never a 500.

use super::*;

#[tokio::test]
async fn malformed_credentials_get_a_challenge_never_a_500() {
    let registry = Registry::start(
        |data| {
            for user in ["alice", "dora"] {
                add_user(data, user, false);
            }
            berth_cli(data, &["user", "disable", "dora"]);
            berth_cli(
                data,
                &["policy", "add", "authenticated", "team-a/**", "pull"],
            );
        },
        &[],
    );
    push_image(&registry.admin(), &registry.berth, "team-a/api", "v1", 1, 0).await;
    let alice = password("alice");
    let text = |value: &str| HeaderValue::from_str(value).unwrap();
    let cases: Vec<(&str, HeaderValue)> = vec![
        ("no scheme", text("alice")),
        ("a scheme alone", text("Basic")),
        (
            "an unknown scheme",
            text("Digest username=\"alice\", realm=\"berth\""),
        ),
        ("bad base64", text("Basic %%%not-base64%%%")),
        ("no colon", text(&format!("Basic {}", base64(b"alice")))),
        (
            "bytes that are not UTF-8 in the header",
            HeaderValue::from_bytes(b"Basic \xff\xfe\xfd").unwrap(),
        ),
        (
            "credentials that are not UTF-8",
            text(&format!("Basic {}", base64(b"alice:\xff\xfe\xfd"))),
        ),
        ("an empty password", text(&basic("alice", ""))),
        ("an empty user", text(&basic("", &alice))),
        ("an empty user and password", text(&basic("", ""))),
        ("an empty bearer token", text("Bearer ")),
        ("a bearer token that is no JWT", text("Bearer abc.def.ghi")),
        (
            "a huge header (64 KiB)",
            text(&format!("Basic {}", "QUFB".repeat(16 * 1024))),
        ),
        (
            "a huge user name",
            text(&basic(&"a".repeat(40_000), &alice)),
        ),
        ("an unknown user", text(&basic("nobody", &alice))),
        ("a disabled user", text(&basic("dora", &password("dora")))),
    ];
    let token_path = format!(
        "/token?{}",
        form(&[
            ("service", "berth"),
            ("scope", "repository:team-a/api:pull")
        ])
    );
    for (case, value) in &cases {
        for path in ["/v2/", "/v2/team-a/api/manifests/v1", token_path.as_str()] {
            let response = registry
                .client
                .get(registry.url(path))
                .header(AUTHORIZATION, value.clone())
                .send()
                .await
                .unwrap();
            let what = format!("{case} on {path}");
            if case.starts_with("a huge") && response.status() == 431 {
                continue; // the HTTP layer may refuse it before berth sees it
            }
            registry.assert_bad_credentials(response, &what).await;
        }
    }
    // A header far beyond any limit: refused by the HTTP layer, or a challenge; and berth
    // carries on.
    let huge = format!("Basic {}", "QUFB".repeat(256 * 1024));
    if let Ok(response) = registry
        .client
        .get(registry.url("/v2/"))
        .header(AUTHORIZATION, huge)
        .send()
        .await
    {
        let status = response.status().as_u16();
        assert!([400, 401, 431].contains(&status), "1 MiB header: {status}");
    }
    // The right password still works: none of the above locked alice out.
    assert_eq!(
        registry
            .get("/v2/", Some(&basic("alice", &alice)))
            .await
            .status(),
        200
    );

    // Malformed token requests: 400, or 401 for bad credentials.
    let get_token = |query: String| {
        let request = registry
            .client
            .get(format!("{}?{query}", registry.url("/token")));
        async move { request.send().await.unwrap() }
    };
    let response = get_token(form(&[("service", "another-registry")])).await;
    assert_oci_error(response, 400, "UNSUPPORTED").await;
    // Scopes berth cannot parse are ignored: the token just grants nothing.
    let response = get_token(form(&[
        ("service", "berth"),
        ("scope", "repository:UPPER/case:pull"),
        ("scope", "repository:team-a/api"),
        ("scope", "nonsense"),
    ]))
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        jwt_parts(body["token"].as_str().unwrap()).1["access"],
        json!([])
    );
    let post = |body: Vec<u8>| {
        let request = registry
            .client
            .post(registry.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move { request.send().await.unwrap() }
    };
    for (case, body) in [
        ("no grant_type", form(&[("username", "alice")]).into_bytes()),
        (
            "an unknown grant_type",
            form(&[("grant_type", "magic")]).into_bytes(),
        ),
        (
            "a form that is not UTF-8",
            b"grant_type=password&username=\xff\xfe".to_vec(),
        ),
        ("a form over 64 KiB", vec![b'a'; 70 * 1024]),
        (
            "the wrong service",
            form(&[("grant_type", "password"), ("service", "other")]).into_bytes(),
        ),
    ] {
        let response = post(body).await;
        assert_eq!(response.status(), 400, "{case}");
        assert_oci_error(response, 400, "UNSUPPORTED").await;
    }
    for (case, pairs) in [
        (
            "no password",
            vec![("grant_type", "password"), ("username", "alice")],
        ),
        (
            "no user",
            vec![("grant_type", "password"), ("password", alice.as_str())],
        ),
        (
            "a wrong password",
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wrong-password"),
            ],
        ),
        ("no refresh token", vec![("grant_type", "refresh_token")]),
        (
            "a made-up refresh token",
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "berth_0123456789abcdef_00"),
            ],
        ),
    ] {
        let response = registry.post_token(&pairs).await;
        registry.assert_bad_credentials(response, case).await;
    }
}
