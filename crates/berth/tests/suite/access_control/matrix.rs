//! The matrix of identities, repositories and actions, and what a registry token grants.

use super::*;

const REPOSITORIES: [&str; 6] = [
    "team-a/api",
    "team-a/x/web",
    "team-b/public-site",
    "team-b/internal",
    "library/alpine",
    "library/x/deep",
];

/// What each identity may do on each repository above: r = pull, w = push, d = delete.
const MATRIX: &[(&str, [&str; 6])] = &[
    //                team-a/  team-a/  team-b/      team-b/   library/ library/
    //                api      x/web    public-site  internal  alpine   x/deep
    ("root", ["rwd", "rwd", "rwd", "rwd", "rwd", "rwd"]), // administrator
    ("alice", ["rw", "rw", "r", "", "r", ""]),            // team-a
    ("carol", ["rwd", "rw", "r", "", "r", ""]),           // team-a, delete on team-a/api
    ("bob", ["", "", "rwd", "", "r", ""]),                // no team; */public-* push,delete
    ("ci", ["rw", "rw", "r", "", "r", ""]),               // service account, unscoped token
    ("ci-narrow", ["r", "r", "", "", "", ""]),            // ci's token limited to team-a/**:pull
    ("alice-api", ["r", "", "", "", "", ""]), // alice's token limited to team-a/api:pull,delete
    ("anonymous", ["", "", "r", "", "", ""]),
];

/// The rules and identities behind [`MATRIX`]; returns each identity's login.
fn matrix_setup(data: &Path) -> Vec<(&'static str, Option<(String, String)>)> {
    for user in ["alice", "carol", "bob"] {
        add_user(data, user, false);
    }
    berth_cli(data, &["team", "add", "team-a"]);
    berth_cli(data, &["team", "add-member", "team-a", "alice"]);
    berth_cli(data, &["team", "add-member", "team-a", "carol"]);
    berth_cli(data, &["service-account", "add", "ci"]);
    for (subject, pattern, actions) in [
        ("team:team-a", "team-a/**", "push"),
        ("user:carol", "team-a/api", "delete"),
        ("user:bob", "*/public-*", "push,delete"),
        ("service-account:ci", "team-a/**", "push"),
        ("anonymous", "*/public-*", "pull"),
        ("authenticated", "library/*", "pull"),
    ] {
        berth_cli(data, &["policy", "add", subject, pattern, actions]);
    }
    let (_, ci) = create_token(data, "service-account:ci", "ci-full", &[]);
    let (_, ci_narrow) = create_token(data, "service-account:ci", "narrow", &["team-a/**:pull"]);
    let (_, alice_api) = create_token(data, "user:alice", "api", &["team-a/api:pull,delete"]);
    let login = |user: &str, secret: String| Some((user.to_string(), secret));
    vec![
        ("root", login("root", password("root"))),
        ("alice", login("alice", password("alice"))),
        ("carol", login("carol", password("carol"))),
        ("bob", login("bob", password("bob"))),
        ("ci", login("ci", ci)),
        ("ci-narrow", login("ci", ci_narrow)),
        ("alice-api", login("alice", alice_api)),
        ("anonymous", None),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Pull,
    Tags,
    Push,
    Delete,
}

impl Op {
    /// The letter of [`MATRIX`] that allows it.
    fn letter(self) -> char {
        match self {
            Op::Pull | Op::Tags => 'r',
            Op::Push => 'w',
            Op::Delete => 'd',
        }
    }

    /// The actions a client asks for (and berth's challenge names).
    fn scope_actions(self) -> &'static str {
        match self {
            Op::Pull | Op::Tags => "pull",
            Op::Push => "pull,push",
            Op::Delete => "delete",
        }
    }
}

/// How the identity presents itself.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// `Authorization: Basic` on `/v2/` (anonymous: no header at all).
    Basic,
    /// A registry token from `GET /token` for the scope, then `Authorization: Bearer`.
    Token,
}

/// Does `op` on `repo`, returning the first response that is not a success (or the last).
async fn perform(
    registry: &Registry,
    op: Op,
    repo: &str,
    auth: Option<&str>,
    seed: u64,
) -> reqwest::Response {
    let client = match auth {
        Some(value) => registry.client_with(value),
        None => registry.client.clone(),
    };
    match op {
        Op::Pull => client
            .get(registry.url(&format!("/v2/{repo}/manifests/v1")))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap(),
        Op::Tags => client
            .get(registry.url(&format!("/v2/{repo}/tags/list")))
            .send()
            .await
            .unwrap(),
        Op::Push => {
            let config =
                serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed}))
                    .unwrap();
            let digest = sha256(&config);
            let response = client
                .post(registry.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
                .body(config.clone())
                .send()
                .await
                .unwrap();
            if !response.status().is_success() {
                return response;
            }
            let manifest = image_manifest(&(digest, config), &[]);
            put_manifest(
                &client,
                &registry.berth,
                repo,
                &format!("pushed-{seed}"),
                OCI_MANIFEST,
                &manifest,
            )
            .await
        }
        Op::Delete => {
            // Something to delete that nothing else needs: a fresh image pushed by root.
            let image = push_image(
                &registry.admin(),
                &registry.berth,
                repo,
                &format!("doomed-{seed}"),
                seed,
                0,
            )
            .await;
            client
                .delete(registry.url(&format!("/v2/{repo}/manifests/{}", image.digest)))
                .send()
                .await
                .unwrap()
        }
    }
}

/// Checks one cell: allowed (2xx), or refused as berth should (401 with the challenge for
/// anonymous callers, 403 DENIED for known ones). Returns a description of any mismatch.
async fn check_cell(
    registry: &Registry,
    response: reqwest::Response,
    allowed: bool,
    anonymous: bool,
    scope: &str,
) -> Result<(), String> {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("<not UTF-8>").to_string());
    let body = response.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string));
    let (expected_status, expected_code, expected_challenge) = match (allowed, anonymous) {
        (true, _) => {
            return if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("expected success, got {status} {body}"))
            };
        }
        (false, true) => (401, "UNAUTHORIZED", Some(registry.challenge(Some(scope)))),
        (false, false) => (403, "DENIED", None),
    };
    if status != expected_status || code.as_deref() != Some(expected_code) {
        return Err(format!(
            "expected {expected_status} {expected_code}, got {status} {body}"
        ));
    }
    if expected_challenge.is_some() && challenge != expected_challenge {
        return Err(format!(
            "expected challenge {expected_challenge:?}, got {challenge:?}"
        ));
    }
    Ok(())
}

#[tokio::test]
async fn access_matrix_of_identities_repositories_and_actions() {
    let mut logins = Vec::new();
    let registry = Registry::start(|data| logins = matrix_setup(data), &[]);
    let admin = registry.admin();
    for (i, repo) in REPOSITORIES.iter().enumerate() {
        push_image(&admin, &registry.berth, repo, "v1", i as u64 + 1, 1).await;
    }

    let mut failures = Vec::new();
    let mut seed = 1000;
    for (identity, row) in MATRIX {
        let login = logins
            .iter()
            .find(|(name, _)| name == identity)
            .and_then(|(_, login)| login.clone());
        let login = login
            .as_ref()
            .map(|(user, secret)| (user.as_str(), secret.as_str()));
        let anonymous = login.is_none();
        for via in [Via::Basic, Via::Token] {
            for (repo, allowed) in REPOSITORIES.iter().zip(row) {
                for op in [Op::Pull, Op::Tags, Op::Push, Op::Delete] {
                    seed += 1;
                    let scope = format!("repository:{repo}:{}", op.scope_actions());
                    let auth = match via {
                        Via::Basic => login.map(|(user, secret)| basic(user, secret)),
                        Via::Token => {
                            Some(format!("Bearer {}", registry.token(login, &[&scope]).await))
                        }
                    };
                    let response = perform(&registry, op, repo, auth.as_deref(), seed).await;
                    let allowed = allowed.contains(op.letter());
                    if let Err(why) =
                        check_cell(&registry, response, allowed, anonymous, &scope).await
                    {
                        failures.push(format!("{identity} via {via:?}: {op:?} {repo}: {why}"));
                    }
                }
            }
            // The catalog lists exactly what the identity may pull; without any credentials
            // (anonymous over Basic) it is a challenge, as on registry:2.
            let auth = match via {
                Via::Basic => login.map(|(user, secret)| basic(user, secret)),
                Via::Token => Some(format!(
                    "Bearer {}",
                    registry.token(login, &["registry:catalog:*"]).await
                )),
            };
            let response = registry.get("/v2/_catalog", auth.as_deref()).await;
            let status = response.status();
            let www = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body: Value = response.json().await.unwrap();
            let listed: BTreeSet<&str> = body["repositories"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let expected: BTreeSet<&str> = REPOSITORIES
                .iter()
                .zip(row)
                .filter(|(_, allowed)| allowed.contains('r'))
                .map(|(repo, _)| *repo)
                .collect();
            if anonymous && matches!(via, Via::Basic) {
                let challenge = registry.challenge(Some("registry:catalog:*"));
                if status != 401
                    || body["errors"][0]["code"] != "UNAUTHORIZED"
                    || www.as_deref() != Some(challenge.as_str())
                {
                    failures.push(format!(
                        "anonymous without credentials: catalog: expected 401 ({challenge}), got {status} {body}"
                    ));
                }
            } else if status != 200 || listed != expected {
                failures.push(format!(
                    "{identity} via {via:?}: catalog: expected {expected:?}, got {status} {body}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What a registry token grants is what was asked and is allowed: asking for more is no error.
#[tokio::test]
async fn tokens_grant_the_intersection_of_what_was_asked_and_what_is_allowed() {
    let registry = Registry::start(
        |data| {
            matrix_setup(data);
        },
        &[],
    );
    let alice = ("alice", password("alice"));
    let token = registry
        .token(
            Some((alice.0, &alice.1)),
            &[
                "repository:team-a/api:pull,push,delete",
                "repository:team-b/internal:pull",
                "repository:library/alpine:pull,push registry:catalog:*",
            ],
        )
        .await;
    let (header, claims) = jwt_parts(&token);
    assert_eq!(header["alg"], "ES256", "{header}");
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(claims["iss"], "berth");
    assert_eq!(claims["aud"], "berth");
    assert_eq!(claims["sub"], "user:alice");
    assert_eq!(
        claims["access"],
        json!([
            {"type": "repository", "name": "team-a/api", "actions": ["pull", "push"]},
            {"type": "repository", "name": "library/alpine", "actions": ["pull"]},
            // Not an administrator: berth's catalog lists what she may pull; a registry:2
            // trusting berth's tokens, which knows only `*`, lists her nothing.
            {"type": "registry", "name": "catalog", "actions": ["list"]},
        ]),
        "{claims}"
    );
    for claim in ["exp", "nbf", "iat", "jti"] {
        assert!(!claims[claim].is_null(), "{claim} in {claims}");
    }
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );

    // An anonymous token carries no subject and only what anyone may do.
    let anonymous = registry
        .token(
            None,
            &[
                "repository:team-b/public-site:pull,push",
                "repository:team-a/api:pull",
            ],
        )
        .await;
    let (_, claims) = jwt_parts(&anonymous);
    assert_eq!(claims["sub"], "");
    assert_eq!(
        claims["access"],
        json!([{"type": "repository", "name": "team-b/public-site", "actions": ["pull"]}])
    );
}
