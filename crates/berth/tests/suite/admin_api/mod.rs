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

mod access;
mod events;
mod identity;
mod lifecycle;
mod remotes;
mod sessions;
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

    identity::users_teams_rules_and_tokens(&api).await;
    sessions::a_session_through_the_api(&api).await;
    events::webhooks_and_jobs(&api).await;
    remotes::remotes_and_virtuals(&api).await;
    lifecycle::collection_rules_retention_and_quotas(&api).await;

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
