//! The token endpoint of the Docker token protocol (`/token`), and the certificate of the
//! key tokens are signed with (`/auth/certificate.pem`, for a registry:2 that should trust
//! berth's tokens: its `auth.token.rootcertbundle`).
//!
//! * `GET /token?service=&scope=...` with Basic credentials (a password or an access token)
//!   or none (an anonymous token). `offline_token=true` also returns a refresh token.
//! * `POST /token`, OAuth2 form: `grant_type=password` (`username`, `password`) or
//!   `grant_type=refresh_token` (`refresh_token`); `access_type=offline` asks for a refresh
//!   token, which `docker login` keeps instead of the password.
//!
//! The token grants, for each scope asked, what was asked and is allowed: asking for more is
//! not an error, the token just grants less.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::service::TokenResponse;
use berth_auth::{Caller, Mode, Scope};
use berth_oci::{ErrorCode, RegistryError};
use futures_util::StreamExt;
use http::request::Parts;
use http::{StatusCode, header};

use crate::AppState;
use crate::auth::{authenticate, failure_error};
use crate::error_response::ApiError;

/// Token requests are small forms; anything larger is refused unread.
const MAX_FORM: usize = 64 * 1024;

fn not_issuing() -> RegistryError {
    RegistryError::new(
        ErrorCode::Unsupported,
        "this registry does not issue tokens",
    )
    .with_status(404)
}

fn bad_request(why: &str) -> RegistryError {
    RegistryError::new(ErrorCode::Unsupported, "invalid token request")
        .with_status(400)
        .with_detail(why.to_string())
}

/// The service a request names must be this one: a token for another audience would be
/// refused anyway, and saying so early helps whoever misconfigured it.
fn check_service(state: &AppState, service: Option<&str>) -> Result<(), RegistryError> {
    let Mode::Berth(tokens) = state.access.mode() else {
        return Err(not_issuing());
    };
    match service {
        Some(service) if service != tokens.tokens.service() => Err(bad_request(&format!(
            "this token service is {:?}, not {service:?}",
            tokens.tokens.service()
        ))),
        _ => Ok(()),
    }
}

fn pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn scopes(pairs: &[(String, String)]) -> Vec<Scope> {
    Scope::parse_all(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )
}

fn json_token(response: TokenResponse, scope: Option<String>) -> Response {
    let mut body = serde_json::json!({
        "token": response.token.token,
        "access_token": response.token.token,
        "expires_in": response.token.expires_in,
        "issued_at": response.token.issued_at,
    });
    if let Some(refresh) = response.refresh_token {
        body["refresh_token"] = refresh.into();
    }
    if let Some(scope) = scope {
        body["scope"] = scope.into();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn issue(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
    scopes: &[Scope],
    offline: bool,
) -> Result<TokenResponse, RegistryError> {
    state
        .access
        .issue_token(caller, scopes, offline)
        .await
        .map_err(|failure| failure_error(state, parts, failure))
}

pub async fn get(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let query = pairs(parts.uri.query().unwrap_or_default());
        check_service(&state, first(&query, "service"))?;
        let caller = authenticate(&state, &parts).await?;
        let offline = first(&query, "offline_token") == Some("true");
        let response = issue(&state, &parts, &caller, &scopes(&query), offline).await?;
        Ok::<_, RegistryError>(json_token(response, None))
    }
    .await;
    result.unwrap_or_else(|e| ApiError(e).into_response())
}

pub async fn post(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        let form = pairs(&read_form(body).await?);
        check_service(&state, first(&form, "service"))?;
        let client = crate::auth::client(&parts);
        let caller = match first(&form, "grant_type") {
            Some("password") => {
                let user = first(&form, "username").unwrap_or_default();
                let password = first(&form, "password").unwrap_or_default();
                state.access.login(user, password, client).await
            }
            Some("refresh_token") => {
                let token = first(&form, "refresh_token").unwrap_or_default();
                state.access.refresh(token, client).await
            }
            Some(other) => return Err(bad_request(&format!("unsupported grant_type {other:?}"))),
            None => return Err(bad_request("grant_type is required")),
        }
        .map_err(|failure| failure_error(&state, &parts, failure))?;
        let scopes = scopes(&form);
        let offline = first(&form, "access_type") == Some("offline");
        let response = issue(&state, &parts, &caller, &scopes, offline).await?;
        let scope = scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        Ok::<_, RegistryError>(json_token(response, Some(scope)))
    }
    .await;
    result.unwrap_or_else(|e| ApiError(e).into_response())
}

async fn read_form(body: Body) -> Result<String, RegistryError> {
    let mut form = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| bad_request("the request body could not be read"))?;
        if form.len() + chunk.len() > MAX_FORM {
            return Err(bad_request("the form is too large"));
        }
        form.extend_from_slice(&chunk);
    }
    String::from_utf8(form).map_err(|_| bad_request("the form is not UTF-8"))
}

/// The PEM certificate of the token signing key.
pub async fn certificate(State(state): State<Arc<AppState>>) -> Response {
    match state.access.mode() {
        Mode::Berth(service) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            service.tokens.signing_key().certificate_pem().to_string(),
        )
            .into_response(),
        _ => ApiError(not_issuing()).into_response(),
    }
}
