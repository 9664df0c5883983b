//! Sessions through the admin API: for people only, ended by sign-out and by a password change.

use super::*;

/// Sign in, use the cookie (changes need the CSRF token), sign out.
pub(super) async fn a_session_through_the_api(api: &Api) {
    let (status, signed_in) = api
        .call(
            Method::POST,
            "/api/v1/session",
            &[],
            Some(json!({"username": "root", "password": "wrong password"})),
            Credentials::None,
        )
        .await;
    assert_eq!(
        (status, &signed_in["errors"][0]["code"]),
        (401, &json!("UNAUTHORIZED"))
    );
    let response = api
        .send(
            Method::POST,
            "/api/v1/session",
            &[],
            Some(json!({"username": "root", "password": ADMIN_PASSWORD})),
            Credentials::None,
        )
        .await;
    assert_eq!(response.status(), 201);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP here: {set_cookie}"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("berth_session=")
        .unwrap()
        .to_string();
    let signed_in: Value = response.json().await.unwrap();
    let csrf = signed_in["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(signed_in["subject"], "user:root");
    let (status, session) = api
        .call(
            Method::GET,
            "/api/v1/session",
            &[],
            None,
            Credentials::Session(&cookie, None),
        )
        .await;
    assert_eq!((status, &session["subject"]), (200, &json!("user:root")));
    let (status, _) = api
        .call(
            Method::GET,
            "/api/v1/users",
            &[],
            None,
            Credentials::Session(&cookie, None),
        )
        .await;
    assert_eq!(status, 200, "reading needs no CSRF token");
    let new_team = Some(json!({"name": "web"}));
    for (csrf, expected) in [
        (None, 403),
        (Some("forged"), 403),
        (Some(csrf.as_str()), 201),
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/api/v1/teams",
                &[],
                new_team.clone(),
                Credentials::Session(&cookie, csrf),
            )
            .await;
        assert_eq!(status, expected, "{csrf:?}: {body}");
    }
    let (status, _) = api
        .call(
            Method::DELETE,
            "/api/v1/session",
            &[],
            None,
            Credentials::Session(&cookie, None),
        )
        .await;
    assert_eq!(status, 403, "signing out needs the CSRF token too");
    let response = api
        .send(
            Method::DELETE,
            "/api/v1/session",
            &[],
            None,
            Credentials::Session(&cookie, Some(&csrf)),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _) = api
        .call(
            Method::GET,
            "/api/v1/session",
            &[],
            None,
            Credentials::Session(&cookie, None),
        )
        .await;
    assert_eq!(status, 401, "the session ended");
}

/// Signs in and returns the session cookie and its CSRF token.
async fn sign_in(berth: &Berth, user: &str, password: &str) -> Result<(String, String), u16> {
    let response = client()
        .post(berth.url("/api/v1/session"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    if response.status() != 201 {
        return Err(response.status().as_u16());
    }
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    Ok((cookie, body["csrf_token"].as_str().unwrap().to_string()))
}

/// `GET path` with a session cookie (`berth_session=...`): the status.
async fn status_with_cookie(berth: &Berth, path: &str, cookie: &str) -> u16 {
    client()
        .get(berth.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sessions_are_for_people_and_end_with_their_password() {
    let api = Api::start();
    let data = api.berth.data_dir().to_path_buf();
    let output = berth_cli_output(
        &data,
        &["user", "add", "erin", "--password-stdin"],
        Some("erin password"),
    );
    assert!(output.status.success());
    berth_cli(&data, &["service-account", "add", "ci"]);
    let ci_token = berth_cli(
        &data,
        &["token", "create", "service-account:ci", "--name", "x"],
    );
    let ci_token = ci_token["secret"].as_str().unwrap().to_string();
    let root_narrow = berth_cli(
        &data,
        &[
            "token", "create", "root", "--name", "narrow", "--scope", "x/*:pull",
        ],
    );
    let root_narrow = root_narrow["secret"].as_str().unwrap().to_string();

    // Not for service accounts, nor through a narrowed token.
    assert_eq!(sign_in(&api.berth, "ci", &ci_token).await, Err(403));
    assert_eq!(sign_in(&api.berth, "root", &root_narrow).await, Err(403));

    // A user who is not an administrator signs in, but cannot manage.
    let (cookie, _) = sign_in(&api.berth, "erin", "erin password").await.unwrap();
    assert_eq!(
        status_with_cookie(&api.berth, "/api/v1/users", &cookie).await,
        403
    );
    assert_eq!(
        status_with_cookie(&api.berth, "/api/v1/me", &cookie).await,
        200
    );

    // A cookie is not a password, nor a bearer token, on /v2/.
    let value = cookie.strip_prefix("berth_session=").unwrap();
    for request in [
        client()
            .get(api.berth.url("/v2/"))
            .basic_auth("erin", Some(value)),
        client().get(api.berth.url("/v2/")).bearer_auth(value),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401);
    }

    // Changing the password signs everyone out.
    let (root_cookie, _) = sign_in(&api.berth, "root", ADMIN_PASSWORD).await.unwrap();
    let output = berth_cli_output(
        &data,
        &["user", "passwd", "erin", "--password-stdin"],
        Some("erin's new password"),
    );
    assert!(output.status.success());
    assert_eq!(
        status_with_cookie(&api.berth, "/api/v1/me", &cookie).await,
        401
    );
    assert_eq!(
        status_with_cookie(&api.berth, "/api/v1/users", &root_cookie).await,
        200,
        "other users stay signed in"
    );

    // Changes made at the command line are in the audit log too.
    let audit = berth_cli(&data, &["audit", "list", "--limit", "200"]);
    let entries = audit.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["actor"].as_str().unwrap().starts_with("cli:")
                && e["target"] == "user:erin"
                && e["client"] == "local"
                && e["outcome"] == "allowed"
                && e["detail"] == "set password"),
        "{audit}"
    );

    // A disabled user's session stops working (within the identity cache's seconds).
    let (cookie, _) = sign_in(&api.berth, "erin", "erin's new password")
        .await
        .unwrap();
    berth_cli(&data, &["user", "disable", "erin"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status_with_cookie(&api.berth, "/api/v1/me", &cookie).await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
