//! The admin API (`/api/v1/`) end to end, against its OpenAPI document: every documented
//! operation is called here with the documented statuses, so that the document, the routes
//! and the behaviour cannot drift apart; the document itself is checked by a real OpenAPI
//! validator.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use std::time::{Duration, Instant};

use crate::support::push::push_image;
use crate::support::receiver::Receiver;
use crate::support::{Berth, berth_cli, berth_cli_output, client, sha256};
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "root password 1";

/// A berth in its own auth mode with an administrator `root`, and a client that records
/// which documented operations it called.
struct Api {
    berth: Berth,
    _data: tempfile::TempDir,
    http: reqwest::Client,
    called: Mutex<BTreeSet<(String, String)>>,
}

enum Credentials<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    Raw(&'a str),
    /// A session cookie, with the CSRF token header when given.
    Session(&'a str, Option<&'a str>),
}

const ROOT: Credentials<'static> = Credentials::Basic("root", ADMIN_PASSWORD);

impl Api {
    fn start() -> Api {
        let data = tempfile::tempdir().unwrap();
        let output = berth_cli_output(
            data.path(),
            &["user", "add", "root", "--admin", "--password-stdin"],
            Some(ADMIN_PASSWORD),
        );
        assert!(output.status.success(), "{output:?}");
        let berth = Berth::builder()
            .env("REGISTRY_AUTH", "berth")
            .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .data(data.path())
            .start();
        Api {
            berth,
            _data: data,
            http: client(),
            called: Mutex::new(BTreeSet::new()),
        }
    }

    /// Calls `template` (a path of the document, such as `/api/v1/users/{name}`) with its
    /// parameters filled in from `params`, in order.
    async fn call(
        &self,
        method: Method,
        template: &str,
        params: &[&str],
        body: Option<Value>,
        credentials: Credentials<'_>,
    ) -> (u16, Value) {
        let response = self.send(method, template, params, body, credentials).await;
        let path = response.url().path().to_string();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_ne!(status, 500, "{path}: {text}");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            assert!(
                value["errors"][0]["code"].is_string() && value["errors"][0]["message"].is_string(),
                "{path}: error body {value}"
            );
        }
        (status, value)
    }

    /// [`Api::call`] returning the response itself (for its headers).
    async fn send(
        &self,
        method: Method,
        template: &str,
        params: &[&str],
        body: Option<Value>,
        credentials: Credentials<'_>,
    ) -> reqwest::Response {
        self.called
            .lock()
            .unwrap()
            .insert((method.as_str().to_lowercase(), template.to_string()));
        let mut path = template.to_string();
        for param in params {
            let start = path.find('{').expect("a parameter to fill");
            let end = path[start..].find('}').unwrap() + start;
            path.replace_range(start..=end, param);
        }
        let mut request = self.http.request(method, self.berth.url(&path));
        request = match credentials {
            Credentials::None => request,
            Credentials::Basic(user, password) => request.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Raw(value) => request.header("authorization", value),
            Credentials::Session(cookie, csrf) => {
                let request =
                    request.header("cookie", format!("theme=dark; berth_session={cookie}"));
                match csrf {
                    Some(token) => request.header("x-berth-csrf", token),
                    None => request,
                }
            }
        };
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        request.send().await.unwrap()
    }

    async fn ok(
        &self,
        method: Method,
        template: &str,
        params: &[&str],
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(method, template, params, body, ROOT).await;
        assert!((200..300).contains(&status), "{template}: {status} {value}");
        value
    }

    async fn refused(
        &self,
        method: Method,
        template: &str,
        params: &[&str],
        body: Option<Value>,
        status: u16,
        code: &str,
    ) -> Value {
        let (actual, value) = self.call(method, template, params, body, ROOT).await;
        assert_eq!(actual, status, "{template}: {value}");
        assert_eq!(value["errors"][0]["code"], code, "{template}: {value}");
        value
    }

    /// `GET /v2/<repository>/tags/list` with Basic credentials: the status.
    async fn v2_status(&self, repository: &str, user: &str, password: &str) -> u16 {
        self.http
            .get(self.berth.url(&format!("/v2/{repository}/tags/list")))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn openapi_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/openapi.yaml")
}

/// Every `(method, path)` the document describes.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "patch", "delete"] {
            if item.get(method).is_some() {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

#[test]
fn the_openapi_document_is_valid() {
    let python = std::env::var("BERTH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
        });
    let output = Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(openapi_file())
        .output()
        .expect("the test Python runs; use ./scripts/test");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn every_documented_operation_behaves_as_documented() {
    let api = Api::start();

    // The document, served both ways, is the one in the repository.
    let (status, served_json) = api
        .call(
            Method::GET,
            "/api/v1/openapi.json",
            &[],
            None,
            Credentials::None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, served_yaml) = api
        .call(
            Method::GET,
            "/api/v1/openapi.yaml",
            &[],
            None,
            Credentials::None,
        )
        .await;
    assert_eq!(status, 200);
    let in_repository: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(openapi_file()).unwrap()).unwrap();
    assert_eq!(served_json, in_repository);
    let served_yaml: Value = serde_yaml_ng::from_str(served_yaml.as_str().unwrap()).unwrap();
    assert_eq!(served_yaml, in_repository);

    // Who am I.
    let me = api.ok(Method::GET, "/api/v1/me", &[], None).await;
    assert_eq!(
        me,
        json!({"subject": "user:root", "admin": true, "limited": false})
    );

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

    // Sessions: sign in, use the cookie (changes need the CSRF token), sign out.
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

    webhooks_and_jobs(&api).await;

    // Garbage collection: a dry run reports and changes nothing; a real run starts in the
    // background and its record shows what it freed.
    let dry = api
        .ok(
            Method::POST,
            "/api/v1/gc",
            &[],
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["run"], Value::Null);
    api.refused(
        Method::POST,
        "/api/v1/gc",
        &[],
        Some(json!({"dry_run": "yes"})),
        400,
        "INVALID",
    )
    .await;
    let started = api
        .ok(Method::POST, "/api/v1/gc", &[], Some(json!({})))
        .await;
    let run = started["run"].as_i64().unwrap().to_string();
    let record = loop {
        let record = api
            .ok(Method::GET, "/api/v1/gc/runs/{id}", &[&run], None)
            .await;
        if record["status"] != "running" {
            break record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(record["status"], "finished", "{record}");
    assert_eq!(record["actor"], "user:root");
    assert_eq!(record["trigger"], "api");
    assert_eq!(record["report"]["phase"], "done");
    let runs = api.ok(Method::GET, "/api/v1/gc/runs", &[], None).await;
    assert_eq!(runs[0]["id"].to_string(), run);
    let status = api.ok(Method::GET, "/api/v1/gc", &[], None).await;
    assert_eq!(status["last"]["id"].to_string(), run);
    assert_eq!(status["running"], Value::Null);
    api.refused(
        Method::GET,
        "/api/v1/gc/runs/{id}",
        &["999999"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Tag immutability rules: added once, refused when invalid, removed.
    let rule = api
        .ok(
            Method::POST,
            "/api/v1/immutable-tags",
            &[],
            Some(json!({"repositories": "frozen/**", "tags": "v*"})),
        )
        .await;
    assert_eq!(rule["repositories"], "frozen/**");
    assert_eq!(rule["created_by"], "user:root");
    for bad in [
        json!({"repositories": "Frozen", "tags": "v*"}),
        json!({"repositories": "frozen/**", "tags": "v/1"}),
        json!({"repositories": "frozen/**"}),
        json!({"repositories": "frozen/**", "tags": "v*", "extra": 1}),
    ] {
        api.refused(
            Method::POST,
            "/api/v1/immutable-tags",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    let rules = api
        .ok(Method::GET, "/api/v1/immutable-tags", &[], None)
        .await;
    assert_eq!(rules, json!([rule]));
    let id = rule["id"].to_string();
    api.ok(Method::DELETE, "/api/v1/immutable-tags/{id}", &[&id], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/immutable-tags/{id}",
        &[&id],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Retention rules and runs (what runs untag: the `retention` suite).
    let rule = api
        .ok(
            Method::POST,
            "/api/v1/retention/rules",
            &[],
            Some(json!({"repositories": "ret/**", "keep_tags": ["keep-*"], "keep_pushed_within": "30d"})),
        )
        .await;
    assert_eq!(rule["keep_pushed_within"], "30days");
    for bad in [
        json!({"repositories": "ret/**"}),
        json!({"repositories": "ret/**", "keep_pushed_within": "soon"}),
        json!({"repositories": "ret/**", "keep_last_pushed": -1}),
    ] {
        api.refused(
            Method::POST,
            "/api/v1/retention/rules",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    assert_eq!(
        api.ok(Method::GET, "/api/v1/retention/rules", &[], None)
            .await,
        json!([rule])
    );
    let dry = api
        .ok(
            Method::POST,
            "/api/v1/retention/runs",
            &[],
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(dry["dry_run"], true);
    let id = rule["id"].to_string();
    api.ok(Method::DELETE, "/api/v1/retention/rules/{id}", &[&id], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/retention/rules/{id}",
        &[&id],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.ok(
        Method::POST,
        "/api/v1/retention/rules",
        &[],
        Some(json!({"repositories": "ret/**", "keep_tags": ["keep-*"]})),
    )
    .await;
    let dry = api
        .ok(
            Method::POST,
            "/api/v1/retention/runs",
            &[],
            Some(json!({"dry_run": true})),
        )
        .await;
    let real = api
        .ok(Method::POST, "/api/v1/retention/runs", &[], Some(json!({})))
        .await;
    assert_eq!(dry["repositories"], real["repositories"], "{dry} {real}");
    assert_eq!(real["dry_run"], false);

    // Quotas and usage (what they refuse: the `quotas` suite).
    let quota = api
        .ok(
            Method::PUT,
            "/api/v1/quotas",
            &[],
            Some(json!({"repositories": "quota-ns", "limit": "10MiB"})),
        )
        .await;
    assert_eq!(quota["repositories"], "quota-ns/**");
    assert_eq!(quota["namespace"], "quota-ns");
    assert_eq!(quota["limit_bytes"], 10 << 20);
    assert_eq!(quota["used_bytes"], 0);
    for bad in [
        json!({"repositories": "quota-ns", "limit": "ten"}),
        json!({"repositories": "quota-ns", "limit": "10 parsecs"}),
        json!({"repositories": "Bad Name", "limit": "1MiB"}),
        json!({"repositories": "quota-ns"}),
    ] {
        api.refused(
            Method::PUT,
            "/api/v1/quotas",
            &[],
            Some(bad),
            400,
            "INVALID",
        )
        .await;
    }
    assert_eq!(
        api.ok(Method::GET, "/api/v1/quotas", &[], None).await,
        json!([quota])
    );
    let usage = api.ok(Method::GET, "/api/v1/usage", &[], None).await;
    assert_eq!(usage["quotas"], json!([quota]));
    api.ok(
        Method::DELETE,
        "/api/v1/quotas/{repositories}",
        &["quota-ns"],
        None,
    )
    .await;
    api.refused(
        Method::DELETE,
        "/api/v1/quotas/{repositories}",
        &["quota-ns"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Every operation in the document was called above.
    let called: BTreeSet<(String, String)> = api
        .called
        .lock()
        .unwrap()
        .iter()
        .map(|(method, path)| (method.clone(), path.split('?').next().unwrap().to_string()))
        .collect();
    let documented = documented_operations(&in_repository);
    let missing: Vec<_> = documented.difference(&called).collect();
    assert!(
        missing.is_empty(),
        "documented but not exercised: {missing:?}"
    );
    let undocumented: Vec<_> = called.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "called but not documented: {undocumented:?}"
    );
}

#[tokio::test]
async fn only_administrators_with_unnarrowed_credentials_manage() {
    let api = Api::start();
    let data = api.berth.data_dir().to_path_buf();
    berth_cli(&data, &["user", "add", "dave", "--no-password"]);
    let output = berth_cli_output(
        &data,
        &["user", "add", "erin", "--password-stdin"],
        Some("erin password"),
    );
    assert!(output.status.success());
    let admin_token = berth_cli(&data, &["token", "create", "root", "--name", "automation"]);
    let admin_token = admin_token["secret"].as_str().unwrap().to_string();
    let narrow = berth_cli(
        &data,
        &[
            "token",
            "create",
            "root",
            "--name",
            "narrow",
            "--scope",
            "x/**:pull",
        ],
    );
    let narrow = narrow["secret"].as_str().unwrap().to_string();
    let dave_token = berth_cli(&data, &["token", "create", "dave", "--name", "cli"]);
    let dave_token = dave_token["secret"].as_str().unwrap().to_string();

    let users = "/api/v1/users";
    let cases: Vec<(Credentials, u16, &str)> = vec![
        (Credentials::None, 401, "UNAUTHORIZED"),
        (
            Credentials::Basic("root", "wrong password"),
            401,
            "UNAUTHORIZED",
        ),
        (Credentials::Raw("Basic !!!not base64"), 401, "UNAUTHORIZED"),
        (Credentials::Raw("Negotiate abc"), 401, "UNAUTHORIZED"),
        (Credentials::Bearer("not-a-token"), 401, "UNAUTHORIZED"),
        (
            Credentials::Bearer(
                "berth_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
            ),
            401,
            "UNAUTHORIZED",
        ),
        (Credentials::Basic("erin", "erin password"), 403, "DENIED"),
        (Credentials::Bearer(&dave_token), 403, "DENIED"),
        (Credentials::Bearer(&narrow), 403, "DENIED"),
        (Credentials::Basic("root", &narrow), 403, "DENIED"),
    ];
    for (credentials, status, code) in cases {
        let (actual, body) = api.call(Method::GET, users, &[], None, credentials).await;
        assert_eq!(
            (actual, body["errors"][0]["code"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
    }
    let response = client().get(api.berth.url(users)).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"berth admin API\""
    );

    // Administrators: by password, by access token as Basic password or as bearer.
    for credentials in [
        ROOT,
        Credentials::Basic("root", &admin_token),
        Credentials::Bearer(&admin_token),
    ] {
        let (status, body) = api.call(Method::GET, users, &[], None, credentials).await;
        assert_eq!(status, 200, "{body}");
    }
    // Anyone authenticated may ask who they are.
    let (status, me) = api
        .call(
            Method::GET,
            "/api/v1/me",
            &[],
            None,
            Credentials::Bearer(&narrow),
        )
        .await;
    assert_eq!((status, me["limited"].clone()), (200, json!(true)));

    // A body over the limit is refused unread.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/htpasswd/import",
            &[],
            Some(json!({"content": "x".repeat(2 << 20)})),
            ROOT,
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["code"].clone()),
        (413, json!("INVALID"))
    );
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

#[tokio::test]
async fn without_berth_auth_there_is_no_admin_api() {
    let berth = Berth::start(); // auth: none
    let response = client()
        .get(berth.url("/api/v1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNSUPPORTED");
}

#[tokio::test]
async fn the_first_start_creates_an_administrator_once() {
    let mut berth = Berth::builder().env("REGISTRY_AUTH", "berth").start();
    // Printed to the terminal (stderr), with the login line, and not in the JSON log.
    let password = {
        // stderr and stdout are read by separate threads: the line may arrive just after
        // "listening".
        let deadline = Instant::now() + Duration::from_secs(10);
        let logs = loop {
            let logs = berth.log_text();
            if logs.contains("podman login") || Instant::now() > deadline {
                break logs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let line = logs
            .lines()
            .find(|l| l.contains("podman login"))
            .unwrap_or_else(|| panic!("no login line in:\n{logs}"));
        assert!(
            line.contains(&format!("{} -u admin -p ", berth.host())),
            "{line}"
        );
        let password = line.rsplit(' ').next().unwrap().to_string();
        assert!(
            !logs
                .lines()
                .any(|l| l.starts_with('{') && l.contains(&password)),
            "the password reached the structured log"
        );
        password
    };
    let http = client();
    let base = http.get(berth.url("/v2/")).send().await.unwrap();
    assert_eq!(base.status(), 401);
    let logged_in = http
        .get(berth.url("/v2/"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 200);

    // Once only: a restart prints nothing new, and the password still works.
    berth.restart();
    assert_eq!(
        berth.log_text().matches("one-time password").count(),
        1,
        "{}",
        berth.log_text()
    );
    let users = berth.cli(&["user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["admin"], true);

    // The operator changes it as the message says.
    let output = berth_cli_output(
        berth.data_dir(),
        &["user", "passwd", "admin", "--password-stdin"],
        Some("a new admin password\n"),
    );
    assert!(output.status.success(), "{output:?}");
    let response = http
        .get(berth.url("/api/v1/me"))
        .basic_auth("admin", Some("a new admin password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Webhooks and jobs through the API: made, shown (secret redacted), tested against a real
/// receiver, delivered to, logged, replaced, deleted; jobs listed and run.
async fn webhooks_and_jobs(api: &Api) {
    let receiver = Receiver::start().await;
    let created = api
        .ok(
            Method::POST,
            "/api/v1/webhooks",
            &[],
            Some(json!({
                "name": "ci",
                "url": receiver.url(),
                "events": ["manifest.pushed", "webhook.test"],
                "secret": "a secret of sixteen+",
            })),
        )
        .await;
    assert_eq!(created["source"], "api");
    assert_eq!(created["secret"], "(set)");
    assert_eq!(created["format"], "cloudevents");
    api.refused(
        Method::POST,
        "/api/v1/webhooks",
        &[],
        Some(json!({"name": "ci", "url": receiver.url()})),
        409,
        "CONFLICT",
    )
    .await;
    api.refused(
        Method::POST,
        "/api/v1/webhooks",
        &[],
        Some(json!({"name": "bad", "url": "ftp://example.com/x"})),
        400,
        "INVALID",
    )
    .await;
    let listed = api.ok(Method::GET, "/api/v1/webhooks", &[], None).await;
    assert!(listed.as_array().unwrap().iter().any(|w| w["name"] == "ci"));
    let shown = api
        .ok(Method::GET, "/api/v1/webhooks/{name}", &["ci"], None)
        .await;
    assert_eq!(shown["url"], receiver.url());

    let tested = api
        .ok(Method::POST, "/api/v1/webhooks/{name}/test", &["ci"], None)
        .await;
    assert_eq!(tested["delivered"], true, "{tested}");
    assert_eq!(tested["status"], 204);
    let test_event = receiver
        .wait_for(Duration::from_secs(5), "the test event", |r| !r.is_empty())
        .await;
    assert_eq!(test_event[0].json()["type"], "dev.berth.webhook.test");
    assert!(test_event[0].headers.contains_key("webhook-signature"));

    // A push reaches it through the outbox, and the attempt is in its delivery log.
    let root = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    data_encoding::BASE64.encode(format!("root:{ADMIN_PASSWORD}").as_bytes())
                )
                .parse()
                .unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let image = push_image(&root, &api.berth, "hooks/app", "v1", 3, 1).await;
    let pushes = receiver
        .wait_for(Duration::from_secs(20), "the push", |r| {
            r.iter()
                .any(|e| e.json()["type"] == "dev.berth.manifest.pushed")
        })
        .await;
    let push = pushes
        .iter()
        .find(|e| e.json()["type"] == "dev.berth.manifest.pushed")
        .unwrap()
        .json();
    assert_eq!(push["data"]["digest"], image.digest);

    remotes_and_virtuals(api).await;

    // The pushed layer's record: size, the repository holding it, no content id (IPFS
    // stores have one), not quarantined.
    let (layer, data) = &image.blobs[1];
    let blob = api
        .ok(Method::GET, "/api/v1/blobs/{digest}", &[layer], None)
        .await;
    assert_eq!(blob["digest"], layer.as_str());
    assert_eq!(blob["size"], data.len());
    assert_eq!(blob["repositories"], json!(["hooks/app"]));
    assert_eq!(blob["cid"], Value::Null);
    assert_eq!(blob["quarantined"], false);
    api.refused(
        Method::GET,
        "/api/v1/blobs/{digest}",
        &["sha256:0000"],
        None,
        400,
        "INVALID",
    )
    .await;
    api.refused(
        Method::GET,
        "/api/v1/blobs/{digest}",
        &[&sha256(b"never pushed")],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    // Tag history and restore (GC and expiry: the `tag_history` suite). A push moves v1.
    push_image(&root, &api.berth, "hooks/app", "v1", 4, 1).await;
    let history = api
        .ok(
            Method::GET,
            "/api/v1/tags/history?repository=hooks/app&tag=v1",
            &[],
            None,
        )
        .await;
    assert_eq!(history[0]["digest"], image.digest.as_str(), "{history}");
    assert_eq!(history[0]["reason"], "moved");
    assert_eq!(history[0]["restorable"], true);
    let restored = api
        .ok(
            Method::POST,
            "/api/v1/tags/restore",
            &[],
            Some(json!({"repository": "hooks/app", "tag": "v1"})),
        )
        .await;
    assert_eq!(restored["digest"], image.digest.as_str());
    api.refused(
        Method::POST,
        "/api/v1/tags/restore",
        &[],
        Some(json!({"repository": "hooks/app", "tag": "never"})),
        404,
        "NOT_FOUND",
    )
    .await;
    api.refused(
        Method::POST,
        "/api/v1/tags/restore",
        &[],
        Some(json!({"repository": "Bad Name", "tag": "v1"})),
        400,
        "INVALID",
    )
    .await;
    api.refused(
        Method::GET,
        "/api/v1/tags/history",
        &[],
        None,
        400,
        "INVALID",
    )
    .await;
    let log = api
        .ok(
            Method::GET,
            "/api/v1/webhooks/{name}/deliveries",
            &["ci"],
            None,
        )
        .await;
    assert_eq!(log[0]["event"], "manifest.pushed");
    assert_eq!(log[0]["status"], 204);
    let dead = api
        .ok(
            Method::GET,
            "/api/v1/webhooks/{name}/dead-letters",
            &["ci"],
            None,
        )
        .await;
    assert_eq!(dead, json!([]));
    let replayed = api
        .ok(
            Method::POST,
            "/api/v1/webhooks/{name}/dead-letters/replay",
            &["ci"],
            Some(json!({})),
        )
        .await;
    assert_eq!(replayed["replayed"], 0);

    let replaced = api
        .ok(
            Method::PUT,
            "/api/v1/webhooks/{name}",
            &["ci"],
            Some(json!({"url": receiver.url(), "format": "slack"})),
        )
        .await;
    assert_eq!(replaced["format"], "slack");
    api.ok(Method::DELETE, "/api/v1/webhooks/{name}", &["ci"], None)
        .await;
    api.refused(
        Method::GET,
        "/api/v1/webhooks/{name}",
        &["ci"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;

    let jobs = api.ok(Method::GET, "/api/v1/jobs", &[], None).await;
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"webhook-delivery") && names.contains(&"upload-purge"),
        "{jobs}"
    );
    let run = api
        .ok(
            Method::POST,
            "/api/v1/jobs/{name}/run",
            &["upload-purge"],
            None,
        )
        .await;
    assert_eq!(run["succeeded"], true, "{run}");
    assert!(run["status"]["runs"].as_u64().unwrap() >= 1);
    api.refused(
        Method::POST,
        "/api/v1/jobs/{name}/run",
        &["no-such-job"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    let audit = api.ok(Method::GET, "/api/v1/audit", &[], None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"] == "webhook:ci" && e["detail"] == "delete"),
        "webhook changes are audited: {audit}"
    );
}

/// Remote and virtual repositories made through the API (the cache suite pulls through them
/// and covers the configuration file's): created, read, replaced, removed, the password
/// never returned.
async fn remotes_and_virtuals(api: &Api) {
    let remotes = api.ok(Method::GET, "/api/v1/remotes", &[], None).await;
    assert_eq!(remotes, json!({"remotes": []}));
    // Nothing listens on port 9: a remote need not be reachable to be defined.
    let hub = json!({"name": "hub", "prefix": "hub", "urls": ["http://127.0.0.1:9"],
        "username": "me", "password": "upstream-secret", "maxsize": "1GiB"});
    let created = api
        .ok(Method::POST, "/api/v1/remotes", &[], Some(hub.clone()))
        .await;
    assert_eq!(created["name"], "hub");
    assert_eq!(created["source"], "api");
    assert_eq!(created["prefix"], "hub");
    assert_eq!(created["max_size"], 1u64 << 30);
    assert_eq!(created["password_set"], true);
    assert_eq!(created["updated_by"], "user:root");
    assert!(
        !created.to_string().contains("upstream-secret"),
        "{created}"
    );
    api.refused(
        Method::POST,
        "/api/v1/remotes",
        &[],
        Some(hub),
        409,
        "CONFLICT",
    )
    .await;
    // Checked as the configuration file's keys: the message names the key.
    for (bad, key) in [
        (
            json!({"name": "bad", "prefix": "bad", "urls": []}),
            "remotes.bad.urls",
        ),
        (
            json!({"name": "bad", "prefix": "hub/x", "urls": ["http://127.0.0.1:9"]}),
            "remotes.bad.prefix",
        ),
        (
            json!({"name": "bad", "prefix": "bad", "urls": ["http://127.0.0.1:9"], "ratelimit": 0}),
            "remotes.bad.ratelimit",
        ),
        (
            json!({"name": "bad", "prefix": "bad", "urls": ["http://127.0.0.1:9"], "nosuchkey": 1}),
            "nosuchkey",
        ),
        (
            json!({"name": "Bad Name", "prefix": "bad", "urls": ["http://127.0.0.1:9"]}),
            "not a valid name",
        ),
    ] {
        let body = api
            .refused(
                Method::POST,
                "/api/v1/remotes",
                &[],
                Some(bad),
                400,
                "INVALID",
            )
            .await;
        assert!(body.to_string().contains(key), "{key}: {body}");
    }
    // Replaced without the password: the stored one is kept (same user name).
    let replaced = api
        .ok(
            Method::PUT,
            "/api/v1/remotes/{name}",
            &["hub"],
            Some(json!({"prefix": "dockerhub", "urls": ["http://127.0.0.1:9"], "username": "me"})),
        )
        .await;
    assert_eq!(replaced["prefix"], "dockerhub");
    assert_eq!(replaced["password_set"], true);
    assert_eq!(replaced["definition"]["username"], "me");
    assert!(replaced["definition"].get("password").is_none());
    let got = api
        .ok(Method::GET, "/api/v1/remotes/{name}", &["hub"], None)
        .await;
    assert_eq!(got["prefix"], "dockerhub");
    api.refused(
        Method::PUT,
        "/api/v1/remotes/{name}",
        &["nope"],
        Some(json!({"prefix": "nope", "urls": ["http://127.0.0.1:9"]})),
        404,
        "NOT_FOUND",
    )
    .await;
    // A push under the remote's prefix is refused: it is a cache.
    let push = client()
        .post(api.berth.url("/v2/dockerhub/x/blobs/uploads/"))
        .basic_auth("root", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 403);

    // A virtual repository over a local prefix and the remote.
    let all = api
        .ok(
            Method::POST,
            "/api/v1/virtuals",
            &[],
            Some(json!({"name": "all", "prefix": "all", "locals": ["team"], "remotes": ["hub"], "deploy": "team"})),
        )
        .await;
    assert_eq!(all["kind"], "virtual");
    assert_eq!(all["members"], json!(["team", "dockerhub"]));
    api.refused(
        Method::POST,
        "/api/v1/virtuals",
        &[],
        Some(json!({"name": "loop", "prefix": "loop", "remotes": ["all"]})),
        400,
        "INVALID",
    )
    .await;
    let all = api
        .ok(
            Method::PUT,
            "/api/v1/virtuals/{name}",
            &["all"],
            Some(json!({"prefix": "all", "remotes": ["hub"]})),
        )
        .await;
    assert_eq!(all["deploy"], Value::Null);
    assert_eq!(
        api.ok(Method::GET, "/api/v1/virtuals/{name}", &["all"], None)
            .await["members"],
        json!(["dockerhub"])
    );
    // The remote cannot go while the virtual repository names it.
    api.refused(
        Method::DELETE,
        "/api/v1/remotes/{name}",
        &["hub"],
        None,
        409,
        "CONFLICT",
    )
    .await;
    api.ok(Method::DELETE, "/api/v1/virtuals/{name}", &["all"], None)
        .await;
    api.refused(
        Method::DELETE,
        "/api/v1/virtuals/{name}",
        &["all"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.refused(
        Method::GET,
        "/api/v1/virtuals/{name}",
        &["all"],
        None,
        404,
        "NOT_FOUND",
    )
    .await;
    api.ok(Method::DELETE, "/api/v1/remotes/{name}", &["hub"], None)
        .await;
    let remotes = api.ok(Method::GET, "/api/v1/remotes", &[], None).await;
    assert_eq!(remotes, json!({"remotes": []}));
    // Each change is in the audit log, the password in none.
    let audit = api
        .ok(Method::GET, "/api/v1/audit", &[], None)
        .await
        .to_string();
    assert!(
        audit.contains("remote:hub") && audit.contains("virtual:all"),
        "{audit}"
    );
    assert!(!audit.contains("upstream-secret"));
}
