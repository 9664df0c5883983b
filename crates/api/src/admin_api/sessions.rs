//! Who am I (`GET /api/v1/me`), and sign-in sessions: `POST /api/v1/session` checks a
//! password and sets a cookie (with a CSRF token for changes), `GET` shows it, `DELETE`
//! ends it.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::AuthFailure;
use berth_auth::service::SessionCaller;
use http::request::Parts;
use http::{StatusCode, header};
use serde::Deserialize;

use super::failure::{ApiFailure, ApiResult, json, no_content, ok, unavailable};
use super::request::{
    authenticated, read_json, require_berth_mode, session_caller, session_cookie,
};
use super::{SESSION_COOKIE, Shared};
use crate::AppState;

/// Who the credentials stand for; any authenticated caller may ask.
pub(super) async fn me(State(state): Shared, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let caller = authenticated(&state, &parts).await?;
        ok(&serde_json::json!({
            "subject": caller.principal.subject_name(),
            "admin": caller.principal.is_admin(),
            "limited": caller.is_limited(),
        }))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    username: String,
    password: String,
    /// A code from the user's authenticator (or a recovery code), when they have one.
    code: Option<String>,
}

/// The `Set-Cookie` value for a session (or, with `None`, the one that removes it).
fn session_cookie_header(state: &AppState, parts: &Parts, value: Option<&str>) -> String {
    let secure = if state.urls.absolute_base(parts).starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    match value {
        Some(value) => format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            berth_auth::service::SESSION_LIFETIME.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

fn with_cookie(response: ApiResult, cookie: String) -> ApiResult {
    let mut response = response?;
    let value = http::HeaderValue::try_from(cookie).map_err(|_| {
        ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the session cookie is not a valid header",
        )
    })?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

/// Signs a user in with a password: a session cookie and its CSRF token.
pub(super) async fn sign_in(State(state): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        require_berth_mode(&state)?;
        let body: SignIn = read_json(body).await?;
        let (caller, method) = state
            .access
            .sign_in_at_once(
                &body.username,
                &body.password,
                body.code.as_deref(),
                crate::auth::client(&parts),
            )
            .await?;
        let session = state
            .access
            .begin_session_with(
                &caller,
                &method,
                parts
                    .headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            )
            .await
            .map_err(|failure| match failure {
                AuthFailure::Invalid(why) => ApiFailure::denied(why),
                other => other.into(),
            })?;
        let response = json(
            StatusCode::CREATED,
            &serde_json::json!({
                "subject": caller.principal.subject_name(),
                "admin": caller.principal.is_admin(),
                "expires_at": berth_auth::admin::timestamp(session.expires_at),
                "csrf_token": session.csrf_token,
            }),
        );
        with_cookie(
            response,
            session_cookie_header(&state, &parts, Some(&session.cookie)),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The session cookie of a request that must carry one, and what it stands for.
async fn signed_in<'a>(
    state: &AppState,
    parts: &'a Parts,
) -> Result<(&'a str, SessionCaller), ApiFailure> {
    require_berth_mode(state)?;
    let cookie = session_cookie(parts).ok_or_else(|| ApiFailure::unauthorized("not signed in"))?;
    Ok((cookie, session_caller(state, parts, cookie).await?))
}

/// The session the cookie names.
pub(super) async fn current_session(State(state): Shared, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (_, session) = signed_in(&state, &parts).await?;
        ok(&serde_json::json!({
            "subject": session.caller.principal.subject_name(),
            "admin": session.caller.principal.is_admin(),
            "expires_at": berth_auth::admin::timestamp(session.expires_at),
        }))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Signs out: the session ends and the cookie is removed.
pub(super) async fn sign_out(State(state): Shared, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let (cookie, _) = signed_in(&state, &parts).await?;
        state
            .access
            .end_session(cookie)
            .await
            .map_err(unavailable)?;
        with_cookie(no_content(), session_cookie_header(&state, &parts, None))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
