//! Reading an admin API request: who sent it (credentials or a session cookie, with its
//! CSRF token on changes), its JSON body and its query.

use axum::body::Body;
use berth_auth::service::SessionCaller;
use berth_auth::{Caller, Mode};
use futures_util::StreamExt;
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::failure::ApiFailure;
use super::{CSRF_HEADER, SESSION_COOKIE};
use crate::AppState;

/// JSON bodies are small; an htpasswd file of thousands of users fits.
const MAX_BODY: usize = 1024 * 1024;

pub(super) fn require_berth_mode(state: &AppState) -> Result<(), ApiFailure> {
    if matches!(state.access.mode(), Mode::Berth(_)) {
        Ok(())
    } else {
        Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "the admin API needs berth's own authentication (auth: berth)",
        ))
    }
}

/// The session cookie's value, if the request carries one.
pub(super) fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// The caller of a request signed in with a session cookie. Requests that change something
/// must also carry the session's CSRF token in [`CSRF_HEADER`]: a cookie alone is sent by
/// browsers on any site's behalf.
pub(super) async fn session_caller(
    state: &AppState,
    parts: &Parts,
    cookie: &str,
) -> Result<SessionCaller, ApiFailure> {
    let csrf = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    let session = state
        .access
        .session(cookie, csrf, crate::auth::client(parts))
        .await?;
    let safe = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
    if !safe && !session.csrf_ok {
        return Err(ApiFailure::denied(format!(
            "a request made with a session cookie needs the session's CSRF token in {CSRF_HEADER}"
        )));
    }
    Ok(session)
}

/// Who is calling: an `Authorization` header, else a session cookie. Anonymous callers are
/// refused (401); what the caller may do is `Administration`'s to decide.
pub(super) async fn authenticated(state: &AppState, parts: &Parts) -> Result<Caller, ApiFailure> {
    require_berth_mode(state)?;
    let authorization = match parts.headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiFailure::unauthorized("malformed Authorization header"))?,
        ),
    };
    let caller = match (authorization, session_cookie(parts)) {
        (None, Some(cookie)) => session_caller(state, parts, cookie).await?.caller,
        _ => {
            state
                .access
                .authenticate_api(authorization, crate::auth::client(parts))
                .await?
        }
    };
    if caller.principal.is_anonymous() {
        return Err(ApiFailure::unauthorized("authentication required"));
    }
    Ok(caller)
}

/// The request's JSON body (at most [`MAX_BODY`]); an empty body reads as `{}`.
pub(super) async fn read_json<B: DeserializeOwned>(body: Body) -> Result<B, ApiFailure> {
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiFailure::invalid("the request body could not be read"))?;
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(ApiFailure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "INVALID",
                format!("the request body is larger than {MAX_BODY} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".to_vec()
    } else {
        bytes
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiFailure::invalid(format!("invalid JSON body: {e}")))
}

pub(super) fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(super) fn query_number<T: std::str::FromStr>(
    query: &str,
    name: &str,
) -> Result<Option<T>, ApiFailure> {
    query_value(query, name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiFailure::invalid(format!("{name} must be a number")))
        })
        .transpose()
}
