//! Login throttling and the audit log.

use super::*;

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_until_a_correct_login() {
    let registry = Registry::start(|data| add_user(data, "alice", false), &[]);
    let wrong = basic("alice", "not-the-password");
    let right = basic("alice", &password("alice"));
    let mut failures = 0;
    let throttled = loop {
        let response = registry.get("/v2/", Some(&wrong)).await;
        if response.status() == 429 {
            break response;
        }
        failures += 1;
        assert!(
            failures <= 20,
            "no throttling after {failures} wrong passwords"
        );
        registry
            .assert_bad_credentials(response, "a wrong password")
            .await;
    };
    let locked_at = Instant::now();
    assert!(
        failures >= 3,
        "a few typos are free: throttled after {failures}"
    );
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=900).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let body = assert_oci_error(throttled, 429, "TOOMANYREQUESTS").await;
    assert_eq!(
        body["errors"][0]["detail"]["retry_after_seconds"],
        retry_after
    );

    // While locked out, even the right password waits, at the token endpoint too.
    let response = registry
        .token_response(Some(("alice", &password("alice"))), &[])
        .await;
    if locked_at.elapsed() < Duration::from_secs(retry_after) {
        assert!(response.headers().contains_key("retry-after"));
        assert_oci_error(response, 429, "TOOMANYREQUESTS").await;
    }

    // After waiting, the right password works and clears the failures.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    assert_eq!(registry.get("/v2/", Some(&right)).await.status(), 200);
    let response = registry.get("/v2/", Some(&wrong)).await;
    registry
        .assert_bad_credentials(response, "a wrong password after a login")
        .await;
}

// ---------------------------------------------------------------------------------------
// 7. The audit log

#[tokio::test]
async fn the_audit_log_records_decisions() {
    let mut registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "pull");
        },
        &[],
    );
    let admin = registry.admin();
    push_image(&admin, &registry.berth, "team-a/api", "v1", 1, 0).await;
    push_image(&admin, &registry.berth, "vault/secrets", "v1", 2, 0).await;
    let alice = basic("alice", &password("alice"));
    let wrong_password = "wrong-password-for-the-audit";

    let response = registry
        .get("/v2/team-a/api/manifests/v1", Some(&alice))
        .await;
    assert_eq!(response.status(), 200);
    let response = registry
        .get("/v2/vault/secrets/manifests/v1", Some(&alice))
        .await;
    assert_oci_error(response, 403, "DENIED").await;
    let response = registry.get("/v2/vault/secrets/manifests/v1", None).await;
    assert_oci_error(response, 401, "UNAUTHORIZED").await;
    let response = registry
        .get("/v2/", Some(&basic("alice", wrong_password)))
        .await;
    assert_oci_error(response, 401, "UNAUTHORIZED").await;
    let token = registry
        .token(
            Some(("alice", &password("alice"))),
            &[
                "repository:vault/secrets:pull",
                "repository:team-a/api:pull",
            ],
        )
        .await;
    assert_eq!(jwt_parts(&token).1["access"][0]["name"], "team-a/api");

    // Allowed pulls are summarized (one row per actor, image and address over five
    // minutes, written when the window closes or at shutdown); everything else at once.
    let expected = [
        ("user:alice", "pull", "vault/secrets", "denied"),
        ("anonymous", "pull", "vault/secrets", "denied"),
        ("user:alice", "login", "", "failed"),
        ("user:alice", "token", "vault/secrets", "denied"),
        ("user:alice", "token", "team-a/api", "allowed"),
    ];
    // The audit writer batches: poll for a while.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let entries = registry.berth.cli(&["audit", "list", "--limit", "500"]);
        let recorded = |(actor, action, target, outcome): &(&str, &str, &str, &str)| {
            entries.as_array().unwrap().iter().any(|e| {
                e["actor"] == *actor
                    && e["action"] == *action
                    && e["target"] == *target
                    && e["outcome"] == *outcome
            })
        };
        if expected.iter().all(recorded) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing audit entries {:?} in {entries:#}",
            expected.iter().filter(|e| !recorded(e)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(registry.berth.terminate().success());
    let entries = registry.berth.cli(&["audit", "list", "--limit", "500"]);
    let allowed = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["actor"] == "user:alice" && e["action"] == "pull" && e["outcome"] == "allowed")
        .unwrap_or_else(|| panic!("the allowed pull is written at shutdown: {entries:#}"));
    assert_eq!(allowed["target"], "team-a/api", "{allowed}");
    assert_eq!(allowed["client"], "127.0.0.1", "{allowed}");
    assert!(allowed["at"].is_string() && allowed["count"].as_i64() >= Some(1));
    // Secrets are never written down.
    let text = entries.to_string();
    for secret in [password("alice").as_str(), wrong_password, token.as_str()] {
        assert!(!text.contains(secret), "a secret in the audit log");
    }
}
