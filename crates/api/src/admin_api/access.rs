//! Access tokens, policy rules, htpasswd import and the audit log.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use berth_auth::admin::{NewToken, parse_owner};
use serde::Deserialize;

use super::failure::{ApiFailure, created, no_content, ok};
use super::identities::Empty;
use super::request::{query_number, query_value};
use super::{Shared, manage};

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

pub(super) async fn list_tokens(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        let owner = query_value(&op.query, "owner")
            .map(|owner| parse_owner(&owner))
            .transpose()?;
        ok(&op.admin.list_tokens(owner.as_ref()).await?)
    })
    .await
}

pub(super) async fn create_token(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, body: CreateToken| async move {
        let expires_in = body
            .expires_in
            .as_deref()
            .map(|text| {
                humantime::parse_duration(text)
                    .map_err(|e| ApiFailure::invalid(format!("invalid expires_in {text:?}: {e}")))
            })
            .transpose()?;
        let new = NewToken {
            owner: parse_owner(&body.owner)?,
            name: body.name,
            scopes: body
                .scopes
                .into_iter()
                .map(|s| (s.pattern, s.actions))
                .collect(),
            expires_in,
        };
        created(&op.admin.create_token(&op.actor, new).await?)
    })
    .await
}

pub(super) async fn get_token(
    State(state): Shared,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.token(&id).await?)
    })
    .await
}

pub(super) async fn revoke_token(
    State(state): Shared,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.revoke_token(&op.actor, &id).await?)
    })
    .await
}

pub(super) async fn list_rules(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        ok(&op.admin.list_rules().await?)
    })
    .await
}

pub(super) async fn create_rule(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, body: CreateRule| async move {
        let rule = op
            .admin
            .add_rule(&op.actor, &body.subject, &body.pattern, &body.actions)
            .await?;
        created(&rule)
    })
    .await
}

pub(super) async fn remove_rule(
    State(state): Shared,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        let id: i64 = id
            .parse()
            .map_err(|_| ApiFailure::not_found("no such rule"))?;
        op.admin.remove_rule(&op.actor, id).await?;
        no_content()
    })
    .await
}

pub(super) async fn import_htpasswd(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, body: ImportHtpasswd| async move {
        let report = op
            .admin
            .import_htpasswd(&op.actor, &body.content, body.replace_passwords)
            .await?;
        ok(&report)
    })
    .await
}

pub(super) async fn audit(State(state): Shared, request: Request) -> Response {
    manage(&state, request, |op, Empty {}| async move {
        let limit = query_number(&op.query, "limit")?.unwrap_or(100);
        let before = query_number(&op.query, "before")?;
        ok(&op.admin.audit(limit, before).await?)
    })
    .await
}
