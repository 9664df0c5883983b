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

mod anonymous;
mod bad_credentials;
mod defaults;
mod matrix;
mod refresh_tokens;
mod throttling_and_audit;
mod token_attacks;
mod token_limits;

pub(crate) use token_attacks::order_minus;
pub(crate) use token_limits::mount;

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
