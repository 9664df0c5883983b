//! The admin API under `/api/v1/`: users, teams, service accounts, access tokens, policy
//! rules, htpasswd import and the audit log, as JSON, for the dashboard and for automation.
//! `openapi.yaml` next to this crate describes it and is served at `/api/v1/openapi.yaml`
//! (and as JSON at `/api/v1/openapi.json`).
//!
//! Only in berth's own auth mode (with `auth: none` anyone would be an administrator). Callers
//! authenticate with Basic (password or access token), `Bearer <access token>`, or the
//! session cookie `POST /api/v1/session` sets (with its CSRF token in `X-Berth-CSRF` on
//! changes, as a cookie alone is sent on any site's behalf); every operation but `GET
//! /api/v1/me` and the session's own needs an administrator whose credentials are not
//! narrowed by token scopes. Changes go through [`Administration`] (the same validation as the CLI), are
//! recorded in the audit log, and drop this instance's identity caches at once (other
//! instances notice within seconds).
//!
//! Errors have the same shape as on `/v2/`: `{"errors":[{"code","message","detail"}]}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use berth_auth::admin::{AdminError, Administration, NewToken, NewUser, parse_owner};
use berth_auth::{AuthFailure, Caller, Mode};
use futures_util::StreamExt;
use http::request::Parts;
use http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;

/// The OpenAPI document, kept in the repository and checked by the tests against the routes.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// The cookie that carries a session (`POST /api/v1/session`).
pub const SESSION_COOKIE: &str = "berth_session";
/// The header that must carry a session's CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-berth-csrf";

/// JSON bodies are small; an htpasswd file of thousands of users fits.
const MAX_BODY: usize = 1024 * 1024;

/// An admin API error: status, code and message, rendered like the registry's errors.
#[derive(Debug)]
struct ApiFailure {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiFailure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn invalid(message: impl Into<String>) -> ApiFailure {
        ApiFailure::new(StatusCode::BAD_REQUEST, "INVALID", message)
    }
}

impl From<AdminError> for ApiFailure {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(why) => ApiFailure::invalid(why),
            AdminError::NotFound(why) => ApiFailure::new(StatusCode::NOT_FOUND, "NOT_FOUND", why),
            AdminError::Conflict(why) => ApiFailure::new(StatusCode::CONFLICT, "CONFLICT", why),
            AdminError::Store(e) => unavailable(e),
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> ApiFailure {
    tracing::warn!(error = %err, "admin API: the identity store failed");
    ApiFailure::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "the identity store is unavailable; try again",
    )
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": null }]
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"berth admin API\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

type ApiResult = Result<Response, ApiFailure>;

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_string(value).map_err(|e| {
        ApiFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("rendering the response: {e}"),
        )
    })?;
    Ok((
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

fn ok<T: serde::Serialize>(value: &T) -> ApiResult {
    json(StatusCode::OK, value)
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn auth_failure(failure: AuthFailure) -> ApiFailure {
    match failure {
        AuthFailure::Invalid(why) => ApiFailure::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why),
        AuthFailure::Throttled(wait) => ApiFailure {
            retry_after: Some(wait.as_secs().max(1)),
            ..ApiFailure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "too many failed logins; try again later",
            )
        },
        AuthFailure::Unavailable(e) => unavailable(e),
    }
}

fn require_berth_mode(state: &AppState) -> Result<(), ApiFailure> {
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
fn session_cookie(parts: &Parts) -> Option<&str> {
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
async fn session_caller(
    state: &AppState,
    parts: &Parts,
    cookie: &str,
) -> Result<berth_auth::service::SessionCaller, ApiFailure> {
    let csrf = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    let session = state
        .access
        .session(cookie, csrf, crate::auth::client(parts))
        .await
        .map_err(auth_failure)?;
    let safe = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
    if !safe && !session.csrf_ok {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            "DENIED",
            format!(
                "a request made with a session cookie needs the session's CSRF token in {CSRF_HEADER}"
            ),
        ));
    }
    Ok(session)
}

/// Who is calling, checked: an administrator with unnarrowed credentials, unless `any`.
/// Credentials: an `Authorization` header, else a session cookie.
async fn caller(state: &AppState, parts: &Parts, any: bool) -> Result<Caller, ApiFailure> {
    require_berth_mode(state)?;
    let authorization = match parts.headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiFailure::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "malformed Authorization header",
            )
        })?),
    };
    let caller = match (authorization, session_cookie(parts)) {
        (None, Some(cookie)) => session_caller(state, parts, cookie).await?.caller,
        _ => state
            .access
            .authenticate_api(authorization, crate::auth::client(parts))
            .await
            .map_err(auth_failure)?,
    };
    if caller.principal.is_anonymous() {
        return Err(ApiFailure::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        ));
    }
    if any {
        return Ok(caller);
    }
    let target = parts.uri.path();
    if !caller.principal.is_admin() || caller.is_limited() {
        state
            .access
            .audit(&caller, "admin", target, "denied", parts.method.as_str());
        let why = if caller.principal.is_admin() {
            "an access token with scopes cannot manage berth; use one without scopes"
        } else {
            "only administrators may manage berth"
        };
        return Err(ApiFailure::new(StatusCode::FORBIDDEN, "DENIED", why));
    }
    Ok(caller)
}

/// Runs an administrator's request: authenticate and authorize, read the JSON body (for
/// methods that carry one), run `operation`; a successful change is audited and drops this
/// instance's identity caches.
async fn admin<B, F, Fut>(state: &AppState, request: Request, operation: F) -> Response
where
    B: DeserializeOwned,
    F: FnOnce(Administration, B, String) -> Fut,
    Fut: Future<Output = ApiResult>,
{
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = caller(state, &parts, false).await?;
        let changes = parts.method != http::Method::GET;
        let input: B = if parts.method == http::Method::POST
            || parts.method == http::Method::PUT
            || parts.method == http::Method::PATCH
        {
            read_json(body).await?
        } else {
            serde_json::from_value(serde_json::Value::Object(Default::default()))
                .map_err(|e| ApiFailure::invalid(e.to_string()))?
        };
        let query = parts.uri.query().unwrap_or_default().to_string();
        let administration = Administration::new(Arc::clone(state.access.store()));
        let response = operation(administration, input, query).await;
        if changes {
            // Authorized as an administrator; the detail says what came of it.
            let status = match &response {
                Ok(response) => response.status(),
                Err(failure) => failure.status,
            };
            state.access.audit(
                &caller,
                "admin",
                parts.uri.path(),
                "allowed",
                &format!("{} {}", parts.method, status.as_u16()),
            );
            if response.is_ok() {
                state.access.invalidate();
            }
        }
        response
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn read_json<B: DeserializeOwned>(body: Body) -> Result<B, ApiFailure> {
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

fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn query_number<T: std::str::FromStr>(query: &str, name: &str) -> Result<Option<T>, ApiFailure> {
    query_value(query, name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiFailure::invalid(format!("{name} must be a number")))
        })
        .transpose()
}

/// A body that carries nothing (GET, DELETE; also accepts `{}`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    admin: Option<bool>,
    disabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateServiceAccount {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateServiceAccount {
    disabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenScopeInput {
    pattern: String,
    actions: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    /// `user:<name>` or `service-account:<name>`.
    owner: String,
    name: String,
    #[serde(default)]
    scopes: Vec<TokenScopeInput>,
    /// Lifetime such as "90d" or "720h"; absent: until revoked.
    expires_in: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRule {
    subject: String,
    pattern: String,
    actions: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportHtpasswd {
    /// The file's text.
    content: String,
    #[serde(default)]
    replace_passwords: bool,
}

type Shared = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/openapi.yaml", get(openapi_yaml))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/me", get(me))
        .route(
            "/api/v1/session",
            get(current_session).post(sign_in).delete(sign_out),
        )
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{name}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/api/v1/users/{name}/password", put(set_password))
        .route("/api/v1/teams", get(list_teams).post(create_team))
        .route("/api/v1/teams/{name}", get(get_team).delete(delete_team))
        .route(
            "/api/v1/teams/{name}/members/{user}",
            put(add_member).delete(remove_member),
        )
        .route(
            "/api/v1/service-accounts",
            get(list_service_accounts).post(create_service_account),
        )
        .route(
            "/api/v1/service-accounts/{name}",
            get(get_service_account)
                .patch(update_service_account)
                .delete(delete_service_account),
        )
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", get(get_token).delete(revoke_token))
        .route("/api/v1/policy/rules", get(list_rules).post(create_rule))
        .route(
            "/api/v1/policy/rules/{id}",
            axum::routing::delete(remove_rule),
        )
        .route("/api/v1/htpasswd/import", post(import_htpasswd))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/{*rest}", axum::routing::any(unknown_operation))
}

/// Anything else under `/api/v1/`: a 404 in the API's own error shape.
async fn unknown_operation() -> Response {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no such operation; see /api/v1/openapi.yaml",
    )
    .into_response()
}

async fn openapi_yaml() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

async fn openapi_json() -> Response {
    static JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let document: serde_json::Value =
            serde_yaml_ng::from_str(OPENAPI_YAML).expect("openapi.yaml parses (tested)");
        document.to_string()
    });
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str()).into_response()
}

/// Who the credentials stand for; any authenticated caller may ask.
async fn me(State(state): Shared, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let result = async {
        let caller = caller(&state, &parts, true).await?;
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
async fn sign_in(State(state): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = async {
        require_berth_mode(&state)?;
        let body: SignIn = read_json(body).await?;
        let caller = state
            .access
            .login(&body.username, &body.password, crate::auth::client(&parts))
            .await
            .map_err(auth_failure)?;
        let session =
            state
                .access
                .begin_session(&caller)
                .await
                .map_err(|failure| match failure {
                    AuthFailure::Invalid(why) => {
                        ApiFailure::new(StatusCode::FORBIDDEN, "DENIED", why)
                    }
                    other => auth_failure(other),
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
) -> Result<(&'a str, berth_auth::service::SessionCaller), ApiFailure> {
    require_berth_mode(state)?;
    let cookie = session_cookie(parts).ok_or_else(|| {
        ApiFailure::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "not signed in")
    })?;
    Ok((cookie, session_caller(state, parts, cookie).await?))
}

/// The session the cookie names.
async fn current_session(State(state): Shared, request: Request) -> Response {
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
async fn sign_out(State(state): Shared, request: Request) -> Response {
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

async fn list_users(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.list_users().await?)
    })
    .await
}

async fn create_user(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, body: CreateUser, _| async move {
        let user = admin
            .create_user(NewUser {
                name: body.name,
                password: body.password,
                email: body.email,
                admin: body.admin,
            })
            .await?;
        json(StatusCode::CREATED, &user)
    })
    .await
}

async fn get_user(State(state): Shared, Path(name): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.user(&name).await?)
    })
    .await
}

async fn update_user(State(state): Shared, Path(name): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, body: UpdateUser, _| async move {
        if let Some(admin_flag) = body.admin {
            admin.set_user_admin(&name, admin_flag).await?;
        }
        if let Some(disabled) = body.disabled {
            admin.set_user_disabled(&name, disabled).await?;
        }
        ok(&admin.user(&name).await?)
    })
    .await
}

async fn delete_user(State(state): Shared, Path(name): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        admin.delete_user(&name).await?;
        no_content()
    })
    .await
}

async fn set_password(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    admin(&state, request, |admin, body: SetPassword, _| async move {
        admin.set_password(&name, &body.password).await?;
        no_content()
    })
    .await
}

async fn list_teams(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.list_teams().await?)
    })
    .await
}

async fn create_team(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, body: CreateTeam, _| async move {
        json(StatusCode::CREATED, &admin.create_team(&body.name).await?)
    })
    .await
}

async fn get_team(State(state): Shared, Path(name): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.team(&name).await?)
    })
    .await
}

async fn delete_team(State(state): Shared, Path(name): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        admin.delete_team(&name).await?;
        no_content()
    })
    .await
}

async fn add_member(
    State(state): Shared,
    Path((team, user)): Path<(String, String)>,
    request: Request,
) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.add_team_member(&team, &user).await?)
    })
    .await
}

async fn remove_member(
    State(state): Shared,
    Path((team, user)): Path<(String, String)>,
    request: Request,
) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.remove_team_member(&team, &user).await?)
    })
    .await
}

async fn list_service_accounts(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.list_service_accounts().await?)
    })
    .await
}

async fn create_service_account(State(state): Shared, request: Request) -> Response {
    admin(
        &state,
        request,
        |admin, body: CreateServiceAccount, _| async move {
            let account = admin
                .create_service_account(&body.name, &body.description)
                .await?;
            json(StatusCode::CREATED, &account)
        },
    )
    .await
}

async fn get_service_account(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.service_account(&name).await?)
    })
    .await
}

async fn update_service_account(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    admin(
        &state,
        request,
        |admin, body: UpdateServiceAccount, _| async move {
            if let Some(disabled) = body.disabled {
                admin.set_service_account_disabled(&name, disabled).await?;
            }
            ok(&admin.service_account(&name).await?)
        },
    )
    .await
}

async fn delete_service_account(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        admin.delete_service_account(&name).await?;
        no_content()
    })
    .await
}

async fn list_tokens(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, query| async move {
        let owner = query_value(&query, "owner")
            .map(|owner| parse_owner(&owner))
            .transpose()?;
        ok(&admin.list_tokens(owner.as_ref()).await?)
    })
    .await
}

async fn create_token(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, body: CreateToken, _| async move {
        let expires_in = body
            .expires_in
            .as_deref()
            .map(|text| {
                humantime::parse_duration(text)
                    .map_err(|e| ApiFailure::invalid(format!("invalid expires_in {text:?}: {e}")))
            })
            .transpose()?;
        let created = admin
            .create_token(NewToken {
                owner: parse_owner(&body.owner)?,
                name: body.name,
                scopes: body
                    .scopes
                    .into_iter()
                    .map(|s| (s.pattern, s.actions))
                    .collect(),
                expires_in,
            })
            .await?;
        json(StatusCode::CREATED, &created)
    })
    .await
}

async fn get_token(State(state): Shared, Path(id): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.token(&id).await?)
    })
    .await
}

async fn revoke_token(State(state): Shared, Path(id): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.revoke_token(&id).await?)
    })
    .await
}

async fn list_rules(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        ok(&admin.list_rules().await?)
    })
    .await
}

async fn create_rule(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, body: CreateRule, _| async move {
        let rule = admin
            .add_rule(&body.subject, &body.pattern, &body.actions)
            .await?;
        json(StatusCode::CREATED, &rule)
    })
    .await
}

async fn remove_rule(State(state): Shared, Path(id): Path<String>, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, _| async move {
        let id: i64 = id
            .parse()
            .map_err(|_| ApiFailure::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such rule"))?;
        admin.remove_rule(id).await?;
        no_content()
    })
    .await
}

async fn import_htpasswd(State(state): Shared, request: Request) -> Response {
    admin(
        &state,
        request,
        |admin, body: ImportHtpasswd, _| async move {
            ok(&admin
                .import_htpasswd(&body.content, body.replace_passwords)
                .await?)
        },
    )
    .await
}

async fn audit(State(state): Shared, request: Request) -> Response {
    admin(&state, request, |admin, Empty {}, query| async move {
        let limit = query_number(&query, "limit")?.unwrap_or(100);
        let before = query_number(&query, "before")?;
        ok(&admin.audit(limit, before).await?)
    })
    .await
}
