//! Identity and access over HTTP, in berth's own auth mode: who may pull, push, delete and
//! list where (a matrix of users, teams, service accounts, access tokens and glob rules), the
//! Docker token flow and Basic auth, attacks on registry tokens, refresh tokens, malformed
//! credentials, login throttling and the audit log.
//!
//! Identities and rules are made with the management CLI before the server starts (the
//! server caches them for a few seconds).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::push::{OCI_MANIFEST, image_manifest, push_image, put_manifest};
use crate::support::{Berth, assert_oci_error, berth_cli, berth_cli_output, sha256};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Encoding helpers (no base64 crate among the test dependencies)

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_with(alphabet: &[u8; 64], data: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if pad {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    base64_with(BASE64, data, true)
}

pub(crate) fn base64url(data: &[u8]) -> String {
    base64_with(BASE64URL, data, false)
}

pub(crate) fn base64url_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = BASE64URL.iter().position(|&a| a == c).expect("base64url") as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// `application/x-www-form-urlencoded`, for queries and token forms.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_string()
}

pub(crate) fn basic(user: &str, secret: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{secret}").as_bytes()))
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT's header and claims, decoded (the signature is not checked).
pub(crate) fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let decode = |part: &str| serde_json::from_slice(&base64url_decode(part)).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

/// A JWT made of these parts, with whatever signature is given.
pub(crate) fn jwt_with_signature(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    )
}

// ---------------------------------------------------------------------------------------
// Setting up a registry in berth mode

pub(crate) fn password(user: &str) -> String {
    format!("{user}-secret-password")
}

/// `berth user add NAME --password-stdin [--admin]`, with [`password`]`(NAME)`.
pub(crate) fn add_user(data: &Path, name: &str, admin: bool) {
    let mut args = vec!["user", "add", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let output = berth_cli_output(data, &args, Some(&format!("{}\n", password(name))));
    assert!(
        output.status.success(),
        "berth user add {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A user `alice` granted `actions` on `pattern`.
pub(crate) fn alice_may(data: &Path, pattern: &str, actions: &str) {
    add_user(data, "alice", false);
    berth_cli(data, &["policy", "add", "user:alice", pattern, actions]);
}

/// `berth token create OWNER --name NAME [--scope S]...`: the token's id and secret.
pub(crate) fn create_token(
    data: &Path,
    owner: &str,
    name: &str,
    scopes: &[&str],
) -> (String, String) {
    let mut args = vec!["token", "create", owner, "--name", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let created = berth_cli(data, &args);
    (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

/// A berth in its own auth mode, on a data directory prepared by the CLI beforehand.
pub(crate) struct Registry {
    pub(crate) berth: Berth,
    pub(crate) client: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Registry {
    /// Runs `setup` on a fresh data directory (always with an administrator `root`, so that
    /// berth does not make one), then starts berth on it with `env`.
    pub(crate) fn start(setup: impl FnOnce(&Path), env: &[(&str, &str)]) -> Registry {
        let data = tempfile::tempdir().unwrap();
        add_user(data.path(), "root", true);
        setup(data.path());
        let mut builder = Berth::builder()
            .env("REGISTRY_AUTH", "berth")
            .env("REGISTRY_STORAGE_DELETE_ENABLED", "true");
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        Registry {
            berth: builder.data(data.path()).start(),
            client: crate::support::client(),
            _data: data,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.berth.url(path)
    }

    /// A client that sends `authorization` with every request (to reuse the push helpers).
    pub(crate) fn client_with(&self, authorization: &str) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap()
    }

    pub(crate) fn admin(&self) -> reqwest::Client {
        self.client_with(&basic("root", &password("root")))
    }

    /// `GET /token?service=berth&scope=...`, with Basic credentials or anonymously.
    pub(crate) async fn token_response(
        &self,
        login: Option<(&str, &str)>,
        scopes: &[&str],
    ) -> reqwest::Response {
        let mut query = vec![("service", "berth")];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        let mut request = self
            .client
            .get(format!("{}?{}", self.url("/token"), form(&query)));
        if let Some((user, secret)) = login {
            request = request.header(AUTHORIZATION, basic(user, secret));
        }
        request.send().await.unwrap()
    }

    /// A registry token from `GET /token` (which must answer 200).
    pub(crate) async fn token(&self, login: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let response = self.token_response(login, scopes).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "token for {login:?} {scopes:?}: {body}");
        assert_eq!(body["token"], body["access_token"], "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// `POST /token` with an OAuth2 form.
    pub(crate) async fn post_token(&self, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn get(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .get(self.url(path))
            .header("accept", OCI_MANIFEST);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.send().await.unwrap()
    }

    /// The `WWW-Authenticate` challenge berth sends for a request needing `scope` (or none).
    pub(crate) fn challenge(&self, scope: Option<&str>) -> String {
        let mut value = format!("Bearer realm=\"{}\",service=\"berth\"", self.url("/token"));
        if let Some(scope) = scope {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        value
    }

    /// Asserts the answer to credentials berth did not accept: 401 with a challenge that names
    /// no scope (the request was not judged).
    pub(crate) async fn assert_bad_credentials(&self, response: reqwest::Response, what: &str) {
        self.assert_unauthorized(response, &self.challenge(None), what)
            .await;
    }

    /// Asserts a 401 UNAUTHORIZED whose challenge is exactly `challenge`.
    pub(crate) async fn assert_unauthorized(
        &self,
        response: reqwest::Response,
        challenge: &str,
        what: &str,
    ) {
        let header = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header.as_deref(), Some(challenge), "challenge of {what}");
        assert_oci_error(response, 401, "UNAUTHORIZED").await;
    }
}

// ---------------------------------------------------------------------------------------
// 1. The matrix

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

// ---------------------------------------------------------------------------------------
// 2. Anonymous access

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

// ---------------------------------------------------------------------------------------
// Limited access tokens through the token flow

/// `POST /v2/<repo>/blobs/uploads/?mount=<digest>[&from=<from>]`: 201 if mounted, 202 if
/// berth opened an upload session instead.
pub(crate) async fn mount(
    registry: &Registry,
    authorization: &str,
    repo: &str,
    digest: &str,
    from: Option<&str>,
) -> u16 {
    let mut query = vec![("mount", digest)];
    query.extend(from.map(|from| ("from", from)));
    registry
        .client
        .post(registry.url(&format!("/v2/{repo}/blobs/uploads/?{}", form(&query))))
        .header(AUTHORIZATION, authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A blob is mounted only from a repository the caller may pull; otherwise the client
/// gets an upload session, as if the blob did not exist.
#[tokio::test]
async fn blob_mounts_only_take_from_repositories_the_caller_may_pull() {
    let mut secret = String::new();
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "push");
            secret = create_token(data, "user:alice", "api-only", &["team-a/api:pull,push"]).1;
        },
        &[],
    );
    let admin = registry.admin();
    let readable = push_image(&admin, &registry.berth, "team-a/web", "v1", 1, 1).await;
    let hidden = push_image(&admin, &registry.berth, "vault/secrets", "v1", 2, 1).await;
    let (readable, hidden) = (&readable.blobs[1].0, &hidden.blobs[1].0);
    let alice = basic("alice", &password("alice"));
    let token = registry
        .token(
            Some(("alice", &password("alice"))),
            &["repository:team-a/api:pull,push"],
        )
        .await;
    for authorization in [alice.clone(), format!("Bearer {token}")] {
        let kind = &authorization[..6];
        assert_eq!(
            mount(
                &registry,
                &authorization,
                "team-a/api",
                hidden,
                Some("vault/secrets")
            )
            .await,
            202,
            "{kind}: mount from a repository alice may not pull"
        );
        assert_eq!(
            mount(&registry, &authorization, "team-a/api", hidden, None).await,
            202,
            "{kind}: mount from anywhere of a blob alice may not pull"
        );
    }
    let response = registry
        .client
        .head(registry.url(&format!("/v2/team-a/api/blobs/{hidden}")))
        .header(AUTHORIZATION, &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "the hidden blob stayed hidden");
    // An access token limited to team-a/api cannot mount from team-a/web either.
    assert_eq!(
        mount(
            &registry,
            &basic("alice", &secret),
            "team-a/api",
            readable,
            Some("team-a/web")
        )
        .await,
        202
    );
    assert_eq!(
        mount(
            &registry,
            &alice,
            "team-a/api",
            readable,
            Some("team-a/web")
        )
        .await,
        201
    );
}

#[tokio::test]
async fn registry_tokens_keep_the_limits_of_the_access_token_they_came_from() {
    let mut secret = String::new();
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "push");
            berth_cli(
                data,
                &["policy", "add", "authenticated", "library/*", "pull"],
            );
            secret = create_token(data, "user:alice", "api-only", &["team-a/api:pull,push"]).1;
        },
        &[],
    );
    let admin = registry.admin();
    let mut images = Vec::new();
    for (i, repo) in ["team-a/api", "team-a/web", "library/alpine"]
        .iter()
        .enumerate()
    {
        images.push(push_image(&admin, &registry.berth, repo, "v1", i as u64, 1).await);
    }
    let web_layer = &images[1].blobs[1].0;
    let path = "/v2/library/alpine/manifests/v1";
    // With the access token as a Basic password, the token's limits hold.
    let response = registry.get(path, Some(&basic("alice", &secret))).await;
    assert_oci_error(response, 403, "DENIED").await;
    // Through the token flow, the registry token grants nothing there, as it should...
    let token = registry
        .token(
            Some(("alice", &secret)),
            &[
                "repository:library/alpine:pull",
                "repository:team-a/api:pull,push",
            ],
        )
        .await;
    assert_eq!(jwt_parts(&token).1["access"][0]["name"], "team-a/api");
    let bearer = format!("Bearer {token}");
    // ...but berth then judges by the owner's rules, not the access token's limits.
    let mut wrong = Vec::new();
    // It asks for a token with more scope (that the token endpoint never gives) instead of 403.
    let response = registry.get(path, Some(&bearer)).await;
    if response.status() != 403 {
        wrong.push(format!(
            "pull: {} {}",
            response.status(),
            response.text().await.unwrap()
        ));
    }
    // The catalog (with its scope) shows what the access token may pull, not all alice may.
    let listing = format!(
        "Bearer {}",
        registry
            .token(Some(("alice", &secret)), &["registry:catalog:*"])
            .await
    );
    let catalog: Value = registry
        .get("/v2/_catalog", Some(&listing))
        .await
        .json()
        .await
        .unwrap();
    if catalog["repositories"] != json!(["team-a/api"]) {
        wrong.push(format!("catalog: {catalog}"));
    }
    // A mount takes a blob from a repository the access token may not read.
    let status = mount(
        &registry,
        &bearer,
        "team-a/api",
        web_layer,
        Some("team-a/web"),
    )
    .await;
    if status != 202 {
        wrong.push(format!("mount from team-a/web: {status}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 3. Attacks on registry tokens

/// A new EC P-256 key and a self-signed certificate of it, as PEM.
fn key_and_certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_pem(), certificate.pem())
}

/// A JWT signed by the test, ES256 signatures in berth's canonical low-s form (berth refuses
/// the high-s twin of a valid signature).
fn sign(algorithm: Algorithm, key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_string());
    let token = jsonwebtoken::encode(&header, claims, key).unwrap();
    if algorithm != Algorithm::ES256 {
        return token;
    }
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = base64url_decode(signature);
    let s = &signature[32..];
    if s <= order_minus(s).as_slice() {
        return token;
    }
    let mut low = signature[..32].to_vec();
    low.extend(order_minus(s));
    format!("{signed}.{}", base64url(&low))
}

/// The order of P-256, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` for 32-byte big-endian numbers, `s < n` (the other valid ECDSA `s`).
pub(crate) fn order_minus(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = digit as u8;
    }
    out
}

fn es256_key(pem: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

/// `claims` with some of them replaced (null removes one), and a fresh `jti`.
fn with_claims(claims: &Value, changes: Value) -> Value {
    let mut claims = claims.clone();
    claims["jti"] = format!("test-{}", now()).into();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value.clone();
        }
    }
    claims
}

#[tokio::test]
async fn forged_and_misused_registry_tokens_are_refused() {
    // berth signs with a key the test knows, so that the test can make tokens with a valid
    // signature and wrong claims.
    let keys = tempfile::tempdir().unwrap();
    let (key_pem, certificate_pem) = key_and_certificate();
    let key_file = keys.path().join("key.pem");
    let certificate_file = keys.path().join("certificate.pem");
    std::fs::write(&key_file, &key_pem).unwrap();
    std::fs::write(&certificate_file, &certificate_pem).unwrap();
    let mut revocable = (String::new(), String::new());
    let registry = Registry::start(
        |data| {
            alice_may(data, "team-a/**", "pull");
            revocable = create_token(data, "user:alice", "laptop", &[]);
        },
        &[
            ("BERTH_AUTH_BERTH_KEY", key_file.to_str().unwrap()),
            (
                "BERTH_AUTH_BERTH_CERTIFICATE",
                certificate_file.to_str().unwrap(),
            ),
        ],
    );
    let admin = registry.admin();
    for (i, repo) in ["team-a/api", "team-a/web", "vault/secrets"]
        .iter()
        .enumerate()
    {
        push_image(&admin, &registry.berth, repo, "v1", i as u64, 0).await;
    }
    let published = registry
        .client
        .get(registry.url("/auth/certificate.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        published, certificate_pem,
        "the configured certificate is published"
    );

    let alice = password("alice");
    let genuine = registry
        .token(Some(("alice", &alice)), &["repository:team-a/api:pull"])
        .await;
    let (header, claims) = jwt_parts(&genuine);
    let kid = header["kid"].as_str().unwrap();
    let signature = genuine.rsplit('.').next().unwrap();
    let api = "/v2/team-a/api/manifests/v1";
    let bearer = |token: &str| format!("Bearer {token}");
    assert_eq!(
        registry.get(api, Some(&bearer(&genuine))).await.status(),
        200
    );
    // A token the test signs with berth's key and the claims berth gives is accepted: the
    // refusals below are about what was changed, not about how the test signs.
    let key = es256_key(&key_pem);
    let own = sign(
        Algorithm::ES256,
        &key,
        kid,
        &with_claims(&claims, json!({})),
    );
    assert_eq!(registry.get(api, Some(&bearer(&own))).await.status(), 200);

    let t = now();
    let public_key_pem = rcgen::KeyPair::from_pem(&key_pem).unwrap().public_key_pem();
    let hs256 = |secret: &str| {
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(secret.as_bytes()),
            kid,
            &claims,
        )
    };
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    let mut edited_access = claims.clone();
    edited_access["access"][0]["name"] = "vault/secrets".into();
    let attacks: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            jwt_with_signature(&none_header, &claims, ""),
            api,
        ),
        (
            "alg none, signature kept",
            jwt_with_signature(&none_header, &claims, signature),
            api,
        ),
        (
            "HS256 keyed with the published certificate",
            hs256(&published),
            api,
        ),
        (
            "HS256 keyed with the public key",
            hs256(&public_key_pem),
            api,
        ),
        (
            "signed by another key, under berth's kid",
            sign(
                Algorithm::ES256,
                &es256_key(&key_and_certificate().0),
                kid,
                &claims,
            ),
            api,
        ),
        (
            "expired",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(
                    &claims,
                    json!({"iat": t - 3600, "nbf": t - 3600, "exp": t - 600}),
                ),
            ),
            api,
        ),
        (
            "not yet valid",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"iat": t, "nbf": t + 600, "exp": t + 900})),
            ),
            api,
        ),
        (
            "no expiry",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"exp": null})),
            ),
            api,
        ),
        (
            "wrong audience",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"aud": "another-registry"})),
            ),
            api,
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"iss": "someone-else"})),
            ),
            api,
        ),
        (
            "a subject that does not exist",
            sign(
                Algorithm::ES256,
                &key,
                kid,
                &with_claims(&claims, json!({"sub": "user:mallory"})),
            ),
            api,
        ),
        (
            "access claim edited, signature kept",
            jwt_with_signature(&header, &edited_access, signature),
            "/v2/vault/secrets/manifests/v1",
        ),
        (
            "subject edited, signature kept",
            jwt_with_signature(
                &header,
                &with_claims(&claims, json!({"sub": "user:root"})),
                signature,
            ),
            api,
        ),
        ("not a JWT", "not.a.jwt".into(), api),
    ];
    for (attack, token, path) in &attacks {
        let response = registry.get(path, Some(&bearer(token))).await;
        registry.assert_bad_credentials(response, attack).await;
    }

    // A genuine token for team-a/api is no good elsewhere: where alice may get a token, the
    // challenge says which scope to ask for; where she may not, 403.
    let insufficient = |scope: &str| {
        format!(
            "{},error=\"insufficient_scope\"",
            registry.challenge(Some(scope))
        )
    };
    let response = registry
        .get("/v2/team-a/web/manifests/v1", Some(&bearer(&genuine)))
        .await;
    registry
        .assert_unauthorized(
            response,
            &insufficient("repository:team-a/web:pull"),
            "a token for team-a/api used on team-a/web",
        )
        .await;
    let response = registry
        .get("/v2/vault/secrets/manifests/v1", Some(&bearer(&genuine)))
        .await;
    assert_oci_error(response, 403, "DENIED").await;

    // A revoked access token, as a password and at the token endpoint.
    let (id, secret) = revocable;
    assert_eq!(
        registry
            .get(api, Some(&basic("alice", &secret)))
            .await
            .status(),
        200
    );
    registry.token(Some(("alice", &secret)), &[]).await;
    registry.berth.cli(&["token", "revoke", &id]);
    registry
        .assert_bad_credentials(
            registry.get(api, Some(&basic("alice", &secret))).await,
            "revoked access token on /v2/",
        )
        .await;
    registry
        .assert_bad_credentials(
            registry
                .token_response(Some(("alice", &secret)), &["repository:team-a/api:pull"])
                .await,
            "revoked access token at /token",
        )
        .await;
}

// ---------------------------------------------------------------------------------------
// 4. Refresh tokens

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

// ---------------------------------------------------------------------------------------
// 5. Bad credentials and token requests: 401 with a challenge, or 400; never a 500

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

// ---------------------------------------------------------------------------------------
// 6. Throttling

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

// ---------------------------------------------------------------------------------------
// Defaults

/// Runs `berth serve` with only `env` configuring it (not through [`Berth`], which picks
/// `auth: none` and a loopback address), until it says it listens; returns its address
/// and everything it printed.
fn serve_until_listening(addr: &str, env: &[(&str, &str)]) -> (String, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(["serve", "--addr", addr, "--data"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("REGISTRY_") || key.starts_with("BERTH_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
        .env("REGISTRY_LOG_FORMATTER", "json")
        .envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let mut listening = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Ok(json) = serde_json::from_str::<Value>(&line)
            && json["message"] == "listening"
        {
            listening = json["addr"].as_str().unwrap().to_string();
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    (listening, stderr.join().unwrap())
}

#[tokio::test]
async fn berths_own_auth_is_the_default_and_no_auth_is_announced_loudly() {
    // No auth setting at all: berth's own, with a first administrator and challenges.
    let (addr, printed) = serve_until_listening("127.0.0.1:0", &[]);
    assert!(!addr.is_empty(), "{printed}");
    assert!(printed.contains("one-time password"), "{printed}");
    assert!(!printed.contains("AUTHENTICATION IS OFF"), "{printed}");

    // auth: none on loopback: quiet; on every interface: loud, on the terminal.
    let (_, printed) = serve_until_listening("127.0.0.1:0", &[("REGISTRY_AUTH", "none")]);
    assert!(!printed.contains("AUTHENTICATION IS OFF"), "{printed}");
    assert!(!printed.contains("one-time password"), "{printed}");
    let (addr, printed) = serve_until_listening("0.0.0.0:0", &[("REGISTRY_AUTH", "none")]);
    assert!(
        printed.contains(&format!(
            "*** AUTHENTICATION IS OFF (auth: none) and berth listens on {addr}"
        )),
        "{printed}"
    );
}
