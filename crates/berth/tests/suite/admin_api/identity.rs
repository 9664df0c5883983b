//! The admin API on users, second factors, teams, access rules, service accounts, htpasswd import, removals and the audit log.

use super::*;

/// Users, teams, rules and tokens through the API, then removed; the audit log shows it all.
pub(super) async fn users_teams_rules_and_tokens(api: &Api) {
    // Users.
    let alice = api
        .ok(
            Method::POST,
            "/api/v1/users",
            &[],
            Some(json!({"name": "alice", "password": "alice password", "email": "alice@example.com"})),
        )
        .await;
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["admin"], false);
    assert_eq!(alice["has_password"], true);
    assert!(alice.get("password").is_none() && !alice.to_string().contains("argon2"));
    api.refused(
        Method::POST,
        "/api/v1/users",
        &[],
        Some(json!({"name": "alice"})),
        409,
        "CONFLICT",
    )
    .await;
    for bad in [
        json!({"name": "bad:name", "password": "long enough"}),
        json!({"name": "bob", "password": "short"}),
        json!({"name": "bob", "unknown": true}),
        json!({"password": "no name here"}),
        json!("not an object"),
    ] {
        api.refused(
            Method::POST,
            "/api/v1/users",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    let users = api.ok(Method::GET, "/api/v1/users", &[], None).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "root"]);
    assert_eq!(
        api.ok(Method::GET, "/api/v1/users/{name}", &["alice"], None)
            .await["email"],
        "alice@example.com"
    );
    api.refused(
        Method::GET,
        "/api/v1/users/{name}",
        &["nobody"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.ok(
        Method::PUT,
        "/api/v1/users/{name}/password",
        &["alice"],
        Some(json!({"password": "alice new password"})),
    )
    .await;
    api.refused(
        Method::PUT,
        "/api/v1/users/{name}/password",
        &["alice"],
        Some(json!({"password": "tiny"})),
        400,
        "INVALID",
    )
    .await;
    // Second factors (the sign_in suite enrols them): none yet; an administrator's reset.
    assert_eq!(
        api.ok(
            Method::GET,
            "/api/v1/users/{name}/second-factors",
            &["alice"],
            None
        )
        .await,
        json!({"authenticator": false, "enrolled_at": null, "recovery_codes_left": 0, "passkeys": 0})
    );
    api.ok(
        Method::DELETE,
        "/api/v1/users/{name}/second-factors",
        &["alice"],
        None,
    )
    .await;
    api.refused(
        Method::DELETE,
        "/api/v1/users/{name}/second-factors",
        &["nobody"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    // The last administrator stays one.
    for body in [json!({"admin": false}), json!({"disabled": true})] {
        api.refused(
            Method::PATCH,
            "/api/v1/users/{name}",
            &["root"],
            Some(body),
            409,
            "CONFLICT",
        )
        .await;
    }
    api.refused(
        Method::DELETE,
        "/api/v1/users/{name}",
        &["root"],
        None,
        409,
        "CONFLICT",
    )
    .await;

    // Teams.
    let team = api
        .ok(
            Method::POST,
            "/api/v1/teams",
            &[],
            Some(json!({"name": "devs"})),
        )
        .await;
    assert_eq!(team, json!({"name": "devs", "members": []}));
    let team = api
        .ok(
            Method::PUT,
            "/api/v1/teams/{name}/members/{user}",
            &["devs", "alice"],
            None,
        )
        .await;
    assert_eq!(team["members"], json!(["alice"]));
    api.refused(
        Method::PUT,
        "/api/v1/teams/{name}/members/{user}",
        &["devs", "nobody"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        api.ok(Method::GET, "/api/v1/teams", &[], None).await,
        json!([{"name": "devs", "members": ["alice"]}])
    );
    assert_eq!(
        api.ok(Method::GET, "/api/v1/teams/{name}", &["devs"], None)
            .await["members"],
        json!(["alice"])
    );

    // Policy: the change is effective at once on this instance.
    assert_eq!(
        api.v2_status("devs/app", "alice", "alice new password")
            .await,
        403
    );
    let rule = api
        .ok(
            Method::POST,
            "/api/v1/policy/rules",
            &[],
            Some(json!({"subject": "team:devs", "pattern": "devs/**", "actions": "pull"})),
        )
        .await;
    assert_eq!(rule["subject"], "team:devs");
    let rule_id = rule["id"].as_i64().unwrap().to_string();
    assert_eq!(
        api.v2_status("devs/app", "alice", "alice new password")
            .await,
        404,
        "allowed now: the repository just does not exist"
    );
    api.refused(
        Method::POST,
        "/api/v1/policy/rules",
        &[],
        Some(json!({"subject": "team:nope", "pattern": "x/*", "actions": "pull"})),
        404,
        "NOT_FOUND",
    )
    .await;
    api.refused(
        Method::POST,
        "/api/v1/policy/rules",
        &[],
        Some(json!({"subject": "team:devs", "pattern": "x/*", "actions": "write"})),
        400,
        "INVALID",
    )
    .await;
    assert_eq!(
        api.ok(Method::GET, "/api/v1/policy/rules", &[], None)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Service accounts and their tokens.
    api.ok(
        Method::POST,
        "/api/v1/service-accounts",
        &[],
        Some(json!({"name": "ci", "description": "builds"})),
    )
    .await;
    api.ok(
        Method::POST,
        "/api/v1/policy/rules",
        &[],
        Some(json!({"subject": "service-account:ci", "pattern": "ci/**", "actions": "push"})),
    )
    .await;
    assert_eq!(
        api.ok(Method::GET, "/api/v1/service-accounts", &[], None)
            .await[0]["description"],
        "builds"
    );
    let created = api
        .ok(
            Method::POST,
            "/api/v1/tokens",
            &[],
            Some(json!({
                "owner": "service-account:ci",
                "name": "deploy",
                "scopes": [{"pattern": "ci/app", "actions": "pull"}],
                "expires_in": "1h"
            })),
        )
        .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    let token_id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("berth_"));
    assert_eq!(api.v2_status("ci/app", "ci", &secret).await, 404);
    assert_eq!(
        api.v2_status("ci/other", "ci", &secret).await,
        403,
        "outside the token's scope"
    );
    let listed = api
        .call(Method::GET, "/api/v1/tokens", &[], None, ROOT)
        .await
        .1;
    assert!(
        !listed.to_string().contains(&secret),
        "listings never show secrets"
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, by_owner) = api
        .call(
            Method::GET,
            "/api/v1/tokens?owner=user:alice",
            &[],
            None,
            ROOT,
        )
        .await;
    assert_eq!((status, by_owner), (200, json!([])));
    let one = api
        .ok(Method::GET, "/api/v1/tokens/{id}", &[&token_id], None)
        .await;
    assert_eq!(one["owner"], "service-account:ci");
    assert!(one["last_used_at"].is_string(), "the token was used: {one}");
    let disabled = api
        .ok(
            Method::PATCH,
            "/api/v1/service-accounts/{name}",
            &["ci"],
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(api.v2_status("ci/app", "ci", &secret).await, 401);
    api.ok(
        Method::PATCH,
        "/api/v1/service-accounts/{name}",
        &["ci"],
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(
        api.ok(
            Method::GET,
            "/api/v1/service-accounts/{name}",
            &["ci"],
            None
        )
        .await["disabled"],
        false
    );
    assert_eq!(api.v2_status("ci/app", "ci", &secret).await, 404);
    let revoked = api
        .ok(Method::DELETE, "/api/v1/tokens/{id}", &[&token_id], None)
        .await;
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(api.v2_status("ci/app", "ci", &secret).await, 401);
    api.refused(
        Method::POST,
        "/api/v1/tokens",
        &[],
        Some(json!({"owner": "ci", "name": "x"})),
        400,
        "INVALID",
    )
    .await;

    // htpasswd import keeps the file's passwords.
    let htpasswd = Command::new(crate::support::tool("htpasswd"))
        .args(["-nbB", "carol", "carol password"])
        .output()
        .unwrap();
    assert!(htpasswd.status.success());
    let report = api
        .ok(
            Method::POST,
            "/api/v1/htpasswd/import",
            &[],
            Some(json!({"content": String::from_utf8(htpasswd.stdout).unwrap()})),
        )
        .await;
    assert_eq!(report["created"], json!(["carol"]));
    api.ok(
        Method::PUT,
        "/api/v1/teams/{name}/members/{user}",
        &["devs", "carol"],
        None,
    )
    .await;
    assert_eq!(
        api.v2_status("devs/app", "carol", "carol password").await,
        404
    );
    api.refused(
        Method::POST,
        "/api/v1/htpasswd/import",
        &[],
        Some(json!({"content": "dave:{SHA}weak"})),
        400,
        "INVALID",
    )
    .await;

    // Removals.
    api.ok(
        Method::DELETE,
        "/api/v1/teams/{name}/members/{user}",
        &["devs", "carol"],
        None,
    )
    .await;
    assert_eq!(
        api.v2_status("devs/app", "carol", "carol password").await,
        403
    );
    api.ok(
        Method::DELETE,
        "/api/v1/policy/rules/{id}",
        &[&rule_id],
        None,
    )
    .await;
    api.refused(
        Method::DELETE,
        "/api/v1/policy/rules/{id}",
        &[&rule_id],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        api.v2_status("devs/app", "alice", "alice new password")
            .await,
        403
    );
    api.ok(Method::DELETE, "/api/v1/teams/{name}", &["devs"], None)
        .await;
    api.ok(
        Method::DELETE,
        "/api/v1/service-accounts/{name}",
        &["ci"],
        None,
    )
    .await;
    api.ok(
        Method::PATCH,
        "/api/v1/users/{name}",
        &["alice"],
        Some(json!({"admin": true})),
    )
    .await;
    api.ok(Method::DELETE, "/api/v1/users/{name}", &["carol"], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/users/{name}",
        &["carol"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // The audit log has the changes, newest first, and pages back.
    let mut entries = Value::Null;
    for _ in 0..50 {
        entries = api.ok(Method::GET, "/api/v1/audit", &[], None).await;
        if entries.as_array().unwrap().iter().any(|e| {
            e["target"] == "user:carol"
                && e["outcome"] == "failed"
                && e["detail"] == "delete user: no user named \"carol\""
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let entries = entries.as_array().unwrap().clone();
    assert!(
        entries.iter().any(|e| e["actor"] == "user:root"
            && e["action"] == "admin"
            && e["target"] == "user:alice"
            && e["client"] == "127.0.0.1"
            && e["outcome"] == "allowed"
            && e["detail"] == "create user"),
        "{entries:?}"
    );
    let (status, older) = api
        .call(
            Method::GET,
            &format!("/api/v1/audit?limit=2&before={}", entries[0]["id"]),
            &[],
            None,
            ROOT,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(older.as_array().unwrap().len(), 2);
    assert!(older[0]["id"].as_i64() < entries[0]["id"].as_i64());
    api.refused(
        Method::GET,
        "/api/v1/audit?limit=many",
        &[],
        None,
        400,
        "INVALID",
    )
    .await;
}
