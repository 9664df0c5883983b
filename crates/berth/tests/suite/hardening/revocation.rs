//! Changes to identities and access take effect everywhere within the bound, whichever door
//! made them; deleting an identity leaves nothing a new one of its name could inherit.

use std::path::Path;
use std::time::Instant;

use berth_meta::postgres::testing::PostgresServer;
use serde_json::{Value, json};

use super::{CHANGE_BOUND, bearer, catalog, time_until, upload_status, within_the_bound};
use crate::access_control::{Registry, add_user, basic, create_token, password};
use crate::support::push::push_image;
use crate::support::{Berth, berth_cli, berth_cli_env, berth_cli_output_env, client};

/// Identities for the revocation tests, made with the CLI: `root` (administrator), `alice`
/// and `bob` (push on team/**), `dave` (an administrator to demote), the service account
/// `ci` with a token; returns the token's id and secret.
fn revocation_setup(data: &Path, env: &[(&str, &str)]) -> (String, String) {
    for (name, admin) in [("alice", false), ("bob", false), ("dave", true)] {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        let output = berth_cli_output_env(data, env, &args, Some(&password(name)));
        assert!(output.status.success(), "{output:?}");
    }
    berth_cli_env(data, env, &["service-account", "add", "ci"]);
    for subject in ["user:alice", "user:bob", "service-account:ci"] {
        berth_cli_env(data, env, &["policy", "add", subject, "team/**", "push"]);
    }
    let token = berth_cli_env(
        data,
        env,
        &["token", "create", "service-account:ci", "--name", "deploy"],
    );
    (
        token["id"].as_str().unwrap().to_string(),
        token["secret"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn cli_changes_reach_a_running_server_within_the_bound() {
    let mut ids = (String::new(), String::new());
    let registry = Registry::start(
        |data| {
            ids = revocation_setup(data, &[]);
        },
        &[],
    );
    let (token_id, token_secret) = ids;
    let data = registry.berth.data_dir().to_path_buf();
    for repository in ["team/app", "secret/x"] {
        push_image(&registry.admin(), &registry.berth, repository, "v1", 1, 1).await;
    }
    let push_scope = ["repository:team/app:pull,push"];
    // Registry tokens, each used once so that berth has verified and cached it.
    let alice = bearer(
        &registry
            .token(Some(("alice", &password("alice"))), &push_scope)
            .await,
    );
    let bob = bearer(
        &registry
            .token(Some(("bob", &password("bob"))), &push_scope)
            .await,
    );
    let ci = bearer(
        &registry
            .token(Some(("ci", &token_secret)), &push_scope)
            .await,
    );
    let dave = bearer(
        &registry
            .token(Some(("dave", &password("dave"))), &["registry:catalog:*"])
            .await,
    );
    for token in [&alice, &bob, &ci] {
        assert_eq!(upload_status(&registry.berth, "team/app", token).await, 202);
    }
    assert_eq!(
        catalog(&registry.berth, &dave).await,
        Some(json!(["secret/x", "team/app"]))
    );

    let mut delays = Vec::new();
    let since = Instant::now();
    berth_cli(&data, &["user", "disable", "alice"]);
    let delay = time_until(since, "disabled user's token", || async {
        upload_status(&registry.berth, "team/app", &alice).await == 401
    })
    .await;
    delays.push(("`berth user disable`", delay));

    let since = Instant::now();
    berth_cli(&data, &["user", "delete", "bob"]);
    let delay = time_until(since, "deleted user's token", || async {
        upload_status(&registry.berth, "team/app", &bob).await == 401
    })
    .await;
    delays.push(("`berth user delete`", delay));

    let since = Instant::now();
    berth_cli(&data, &["token", "revoke", &token_id]);
    let delay = time_until(since, "token issued through a revoked one", || async {
        upload_status(&registry.berth, "team/app", &ci).await == 401
    })
    .await;
    delays.push(("`berth token revoke`", delay));

    let since = Instant::now();
    berth_cli(&data, &["user", "demote", "dave"]);
    let delay = time_until(since, "demoted administrator's catalog", || async {
        catalog(&registry.berth, &dave).await == Some(json!([]))
    })
    .await;
    delays.push(("`berth user demote`", delay));

    // A rule removed: the account's token no longer pushes (it may log in, so 403).
    berth_cli(&data, &["user", "enable", "alice"]);
    let login = Some(("alice", password("alice")));
    let login = login
        .as_ref()
        .map(|(user, secret)| (*user, secret.as_str()));
    time_until(Instant::now(), "enabled again", || async {
        registry.token_response(login, &push_scope).await.status() == 200
    })
    .await;
    let alice = bearer(&registry.token(login, &push_scope).await);
    assert_eq!(
        upload_status(&registry.berth, "team/app", &alice).await,
        202
    );
    let rules = berth_cli(&data, &["policy", "list"]);
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "user:alice")
        .unwrap()["id"]
        .to_string();
    let since = Instant::now();
    berth_cli(&data, &["policy", "remove", &rule]);
    let delay = time_until(since, "removed rule", || async {
        upload_status(&registry.berth, "team/app", &alice).await == 403
    })
    .await;
    delays.push(("`berth policy remove`", delay));

    within_the_bound("one instance", &delays);
}

/// A berth in its own auth mode on `database`, with its own data directory.
fn on_postgres(database: &PostgresServer) -> Berth {
    Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_DATABASE_URL", &database.url())
        .start()
}

#[tokio::test]
async fn changes_on_one_instance_reach_another_within_the_bound() {
    let database = PostgresServer::start();
    let url = database.url();
    let env = [("BERTH_DATABASE_URL", url.as_str())];
    let setup = tempfile::tempdir().unwrap();
    let output = berth_cli_output_env(
        setup.path(),
        &env,
        &["user", "add", "root", "--admin", "--password-stdin"],
        Some(&password("root")),
    );
    assert!(output.status.success(), "{output:?}");
    let (token_id, token_secret) = revocation_setup(setup.path(), &env);
    let a = on_postgres(&database);
    let b = on_postgres(&database);
    let root = basic("root", &password("root"));
    let admin_api = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client()
            .request(method, a.url(path))
            .header("authorization", &root);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    // Tokens from A, used once on B.
    let token = |login: (&'static str, String), scope: &'static str| {
        let a = &a;
        async move {
            let response = client()
                .get(a.url("/token"))
                .query(&[("service", "berth"), ("scope", scope)])
                .header("authorization", basic(login.0, &login.1))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            bearer(
                response.json::<Value>().await.unwrap()["token"]
                    .as_str()
                    .unwrap(),
            )
        }
    };
    let push = "repository:team/app:pull,push";
    let alice = token(("alice", password("alice")), push).await;
    let bob = token(("bob", password("bob")), push).await;
    let ci = token(("ci", token_secret), push).await;
    for token in [&alice, &bob, &ci] {
        assert_eq!(upload_status(&b, "team/app", token).await, 202);
    }

    let mut delays = Vec::new();
    let response = admin_api(
        reqwest::Method::PATCH,
        "/api/v1/users/alice",
        Some(json!({"disabled": true})),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        upload_status(&a, "team/app", &alice).await,
        401,
        "at once on the instance that made the change"
    );
    let delay = time_until(Instant::now(), "disabled on A, on B", || async {
        upload_status(&b, "team/app", &alice).await == 401
    })
    .await;
    delays.push(("a user disabled through A's admin API, on B", delay));

    let response = admin_api(
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{token_id}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let delay = time_until(Instant::now(), "revoked on A, on B", || async {
        upload_status(&b, "team/app", &ci).await == 401
    })
    .await;
    delays.push(("a token revoked through A's admin API, on B", delay));

    // The command line on the shared database: a rule removed.
    let rules = berth_cli_env(setup.path(), &env, &["policy", "list"]);
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == "user:bob")
        .unwrap()["id"]
        .to_string();
    let since = Instant::now();
    berth_cli_env(setup.path(), &env, &["policy", "remove", &rule]);
    let delay = time_until(since, "rule removed at the command line, on B", || async {
        upload_status(&b, "team/app", &bob).await == 403
    })
    .await;
    delays.push(("a rule removed at the command line, on B", delay));

    within_the_bound("two instances on PostgreSQL", &delays);
}

#[tokio::test]
async fn a_deleted_identitys_rules_go_with_it_and_its_name_inherits_nothing() {
    let registry = Registry::start(
        |data| {
            add_user(data, "dave", false);
            add_user(data, "erin", false);
            berth_cli(data, &["team", "add", "devs"]);
            berth_cli(data, &["service-account", "add", "ci"]);
            for subject in ["user:dave", "team:devs", "service-account:ci"] {
                berth_cli(data, &["policy", "add", subject, "team/**", "push"]);
            }
        },
        &[],
    );
    let data = registry.berth.data_dir().to_path_buf();
    let old_token = bearer(
        &registry
            .token(
                Some(("dave", &password("dave"))),
                &["repository:team/app:pull,push"],
            )
            .await,
    );
    assert_eq!(
        upload_status(&registry.berth, "team/app", &old_token).await,
        202
    );

    berth_cli(&data, &["user", "delete", "dave"]);
    berth_cli(&data, &["team", "delete", "devs"]);
    berth_cli(&data, &["service-account", "delete", "ci"]);
    let rules = berth_cli(&data, &["policy", "list"]);
    assert_eq!(rules, json!([]), "rules naming deleted identities remain");

    // New identities of the old names start with nothing.
    let output = crate::support::berth_cli_output(
        &data,
        &["user", "add", "dave", "--password-stdin"],
        Some("dave's new password"),
    );
    assert!(output.status.success(), "{output:?}");
    berth_cli(&data, &["team", "add", "devs"]);
    berth_cli(&data, &["team", "add-member", "devs", "erin"]);
    berth_cli(&data, &["service-account", "add", "ci"]);
    let (_, ci) = create_token(&data, "service-account:ci", "new", &[]);
    // Once the changes have reached the server (the bound), the new identities log in and
    // are judged by what they have now: nothing.
    tokio::time::sleep(CHANGE_BOUND).await;
    let mut inherited = Vec::new();
    for (who, authorization) in [
        ("the new dave", basic("dave", "dave's new password")),
        ("a member of the new devs", basic("erin", &password("erin"))),
        ("the new ci", basic("ci", &ci)),
    ] {
        let status = upload_status(&registry.berth, "team/app", &authorization).await;
        if status != 403 {
            inherited.push(format!("{who} may push: {status}"));
        }
    }
    // The old dave's registry token is not the new dave's.
    let status = upload_status(&registry.berth, "team/app", &old_token).await;
    if status != 401 {
        inherited.push(format!("the old dave's token: {status}"));
    }
    assert!(inherited.is_empty(), "{}", inherited.join("\n"));
}
