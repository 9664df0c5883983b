//! The admin API under `/api/v1/`: users, teams, service accounts, access tokens, policy
//! rules, htpasswd import and the audit log, as JSON, for the dashboard and for automation.
//! `openapi.yaml` next to this crate describes it and is served at `/api/v1/openapi.yaml`
//! (and as JSON at `/api/v1/openapi.json`).
//!
//! Only in berth's own auth mode (with `auth: none` anyone would be an administrator). Callers
//! authenticate with Basic (password or access token), `Bearer <access token>`, or the
//! session cookie `POST /api/v1/session` sets (with its CSRF token in `X-Berth-CSRF` on
//! changes, as a cookie alone is sent on any site's behalf). Every operation but `GET
//! /api/v1/me` and the session's own goes through [`Administration`]: it decides whether the
//! caller may manage berth (an administrator whose credentials are not narrowed by token
//! scopes), validates, records the change in the audit log and empties the access caches of
//! every instance. This module only reads requests and renders answers.
//!
//! * `request`: credentials, session cookies, bodies, queries;
//! * `failure`: errors, mapped once to statuses and the `/v2/` error shape
//!   (`{"errors":[{"code","message","detail"}]}`);
//! * `sessions`: `/me` and sign-in sessions;
//! * `identities`: users, teams, service accounts;
//! * `access`: tokens, rules, htpasswd import, the audit log;
//! * `background`: webhooks (over `berth_webhooks::admin`) and background jobs;
//! * `lifecycle`: garbage collection, tag immutability and retention rules, quotas and usage.
//! * `blobs`: a blob's record (repositories, content id, quarantine).
//! * `remotes`: remote and virtual repositories with their status; creating, replacing and
//!   removing those made through the API (over `berth_cache::admin`; the configuration
//!   file's are read-only).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use berth_auth::admin::{Actor, Administration};
use http::header;
use serde::de::DeserializeOwned;

use crate::AppState;
use failure::{ApiFailure, ApiResult};

mod access;
mod background;
mod blobs;
mod failure;
mod identities;
mod lifecycle;
mod remotes;
mod request;
mod sessions;

/// The OpenAPI document, kept in the repository and checked by the tests against the routes.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// The cookie that carries a session (`POST /api/v1/session`).
pub const SESSION_COOKIE: &str = "berth_session";
/// The header that must carry a session's CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-berth-csrf";

type Shared = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    use access::*;
    use identities::*;
    use sessions::*;
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
        .route(
            "/api/v1/users/{name}/second-factors",
            get(get_second_factors).delete(reset_second_factors),
        )
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
        .route("/api/v1/policy/rules/{id}", delete(remove_rule))
        .route("/api/v1/htpasswd/import", post(import_htpasswd))
        .route("/api/v1/audit", get(audit))
        .route(
            "/api/v1/webhooks",
            get(background::list_webhooks).post(background::create_webhook),
        )
        .route(
            "/api/v1/webhooks/{name}",
            get(background::get_webhook)
                .put(background::replace_webhook)
                .delete(background::delete_webhook),
        )
        .route(
            "/api/v1/webhooks/{name}/test",
            post(background::test_webhook),
        )
        .route(
            "/api/v1/webhooks/{name}/deliveries",
            get(background::webhook_deliveries),
        )
        .route(
            "/api/v1/webhooks/{name}/dead-letters",
            get(background::dead_letters),
        )
        .route(
            "/api/v1/webhooks/{name}/dead-letters/replay",
            post(background::replay_dead_letters),
        )
        .route(
            "/api/v1/remotes",
            get(remotes::list_remotes).post(remotes::create_remote),
        )
        .route(
            "/api/v1/remotes/{name}",
            get(remotes::get_remote)
                .put(remotes::replace_remote)
                .delete(remotes::delete_remote),
        )
        .route("/api/v1/virtuals", post(remotes::create_virtual))
        .route(
            "/api/v1/virtuals/{name}",
            get(remotes::get_virtual)
                .put(remotes::replace_virtual)
                .delete(remotes::delete_virtual),
        )
        .route("/api/v1/jobs", get(background::list_jobs))
        .route("/api/v1/jobs/{name}/run", post(background::run_job))
        .route(
            "/api/v1/gc",
            get(lifecycle::gc_status).post(lifecycle::start_gc),
        )
        .route("/api/v1/gc/runs", get(lifecycle::gc_runs))
        .route("/api/v1/gc/runs/{id}", get(lifecycle::gc_run))
        .route(
            "/api/v1/immutable-tags",
            get(lifecycle::immutable_tag_rules).post(lifecycle::add_immutable_tag_rule),
        )
        .route(
            "/api/v1/immutable-tags/{id}",
            delete(lifecycle::remove_immutable_tag_rule),
        )
        .route(
            "/api/v1/retention/rules",
            get(lifecycle::retention_rules).post(lifecycle::add_retention_rule),
        )
        .route(
            "/api/v1/retention/rules/{id}",
            delete(lifecycle::remove_retention_rule),
        )
        .route("/api/v1/retention/runs", post(lifecycle::run_retention))
        .route(
            "/api/v1/quotas",
            get(lifecycle::quotas).put(lifecycle::set_quota),
        )
        .route(
            "/api/v1/quotas/{*repositories}",
            delete(lifecycle::remove_quota),
        )
        .route("/api/v1/usage", get(lifecycle::usage))
        .route("/api/v1/tags/history", get(lifecycle::tag_history))
        .route("/api/v1/tags/restore", post(lifecycle::restore_tag))
        .route("/api/v1/blobs/{digest}", get(blobs::get_blob))
        .route("/api/v1/{*rest}", any(unknown_operation))
}

/// Anything else under `/api/v1/`: a 404 in the API's own error shape.
async fn unknown_operation() -> Response {
    ApiFailure::not_found("no such operation; see /api/v1/openapi.yaml").into_response()
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

/// What a management operation works with.
struct Operation {
    admin: Administration,
    /// Who acts, as the audit log will name them.
    actor: Actor,
    /// The request's query string.
    query: String,
}

/// Runs a management request: authenticate, let [`Administration`] authorize the caller,
/// read the JSON body (for methods that carry one), run `operation`.
async fn manage<B, F, Fut>(state: &AppState, request: Request, operation: F) -> Response
where
    B: DeserializeOwned,
    F: FnOnce(Operation, B) -> Fut,
    Fut: Future<Output = ApiResult>,
{
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = request::authenticated(state, &parts).await?;
        let admin = Administration::serving(Arc::clone(&state.access));
        let actor = admin
            .authorize(&caller, &format!("{} {}", parts.method, parts.uri.path()))
            .await?;
        let input: B = if parts.method == http::Method::POST
            || parts.method == http::Method::PUT
            || parts.method == http::Method::PATCH
        {
            request::read_json(body).await?
        } else {
            serde_json::from_value(serde_json::Value::Object(Default::default()))
                .map_err(|e| ApiFailure::invalid(e.to_string()))?
        };
        let query = parts.uri.query().unwrap_or_default().to_string();
        operation(
            Operation {
                admin,
                actor,
                query,
            },
            input,
        )
        .await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
