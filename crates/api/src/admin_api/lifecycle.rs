//! Lifecycle management: garbage collection, tag immutability, retention and quotas, as thin
//! handlers over [`berth_lifecycle::Lifecycle`].

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use berth_lifecycle::{
    LifecycleError, NewImmutableTagRule, NewQuota, NewRetentionRule, RestoreTag,
};
use berth_registry::gc::{GcMode, Unobserved};
use http::StatusCode;
use serde::Deserialize;

use super::failure::{ApiFailure, json, ok, unavailable};
use super::identities::Empty;
use super::request::{query_number, query_value};
use super::{Shared, manage};

impl From<LifecycleError> for ApiFailure {
    fn from(err: LifecycleError) -> Self {
        match err {
            LifecycleError::Invalid(why) => ApiFailure::invalid(why),
            LifecycleError::NotFound(why) => ApiFailure::not_found(why),
            LifecycleError::Conflict(why) => ApiFailure::new(StatusCode::CONFLICT, "CONFLICT", why),
            LifecycleError::GcFailed { message, .. } => {
                tracing::warn!(error = %message, "admin API: garbage collection failed");
                ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
            }
            LifecycleError::Store(e) => unavailable(e),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartCollection {
    /// Report what would be freed (or untagged), changing nothing.
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn gc_status(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |_, Empty {}| async move {
        ok(&lifecycle.gc_status().await?)
    })
    .await
}

/// A dry run answers with its report; a real run is started by the `gc` job and answers 202
/// with its id (`GET /api/v1/gc/runs/{id}` shows its progress and, after, what it freed).
pub(super) async fn start_gc(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, body: StartCollection| async move {
        if body.dry_run {
            let report = lifecycle
                .collect_garbage(&op.actor, GcMode::DryRun, "api", &Unobserved)
                .await?;
            return ok(&report);
        }
        let run = lifecycle.start_garbage_collection(op.actor, "api").await?;
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "run": run, "url": format!("/api/v1/gc/runs/{run}") }),
        )
    })
    .await
}

pub(super) async fn gc_runs(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, Empty {}| async move {
        let before = query_number(&op.query, "before")?;
        let limit = query_number(&op.query, "limit")?.unwrap_or(20);
        ok(&lifecycle.gc_runs(before, limit).await?)
    })
    .await
}

pub(super) async fn gc_run(
    State(state): Shared,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |_, Empty {}| async move {
        let id: i64 = id
            .parse()
            .map_err(|_| ApiFailure::not_found(format!("no garbage collection run {id:?}")))?;
        ok(&lifecycle.gc_run(id).await?)
    })
    .await
}

pub(super) async fn immutable_tag_rules(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |_, Empty {}| async move {
        ok(&lifecycle.immutable_tag_rules().await?)
    })
    .await
}

pub(super) async fn add_immutable_tag_rule(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(
        &state,
        request,
        |op, rule: NewImmutableTagRule| async move {
            let added = lifecycle.add_immutable_tag_rule(&op.actor, &rule).await?;
            json(StatusCode::CREATED, &added)
        },
    )
    .await
}

pub(super) async fn remove_immutable_tag_rule(
    State(state): Shared,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, Empty {}| async move {
        let id: i64 = id
            .parse()
            .map_err(|_| ApiFailure::not_found(format!("no immutable tag rule {id:?}")))?;
        ok(&lifecycle.remove_immutable_tag_rule(&op.actor, id).await?)
    })
    .await
}

pub(super) async fn retention_rules(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |_, Empty {}| async move {
        ok(&lifecycle.retention_rules().await?)
    })
    .await
}

pub(super) async fn add_retention_rule(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, rule: NewRetentionRule| async move {
        let added = lifecycle.add_retention_rule(&op.actor, &rule).await?;
        json(StatusCode::CREATED, &added)
    })
    .await
}

pub(super) async fn remove_retention_rule(
    State(state): Shared,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, Empty {}| async move {
        let id: i64 = id
            .parse()
            .map_err(|_| ApiFailure::not_found(format!("no retention rule {id:?}")))?;
        ok(&lifecycle.remove_retention_rule(&op.actor, id).await?)
    })
    .await
}

/// A retention run: `{"dry_run": true}` lists what a real run would untag.
pub(super) async fn run_retention(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, body: StartCollection| async move {
        ok(&lifecycle.apply_retention(&op.actor, body.dry_run).await?)
    })
    .await
}

pub(super) async fn quotas(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |_, Empty {}| async move {
        ok(&lifecycle.quotas().await?)
    })
    .await
}

/// Sets (creates or changes) a quota's limit.
pub(super) async fn set_quota(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, quota: NewQuota| async move {
        ok(&lifecycle.set_quota(&op.actor, &quota).await?)
    })
    .await
}

/// `DELETE /api/v1/quotas/{repositories}`: a namespace or a glob (slashes included).
pub(super) async fn remove_quota(
    State(state): Shared,
    Path(repositories): Path<String>,
    request: Request,
) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, Empty {}| async move {
        ok(&lifecycle.remove_quota(&op.actor, &repositories).await?)
    })
    .await
}

/// Bytes stored per namespace, each blob once, beside the quotas.
pub(super) async fn usage(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |_, Empty {}| async move {
        ok(&lifecycle.usage().await?)
    })
    .await
}

/// `GET /api/v1/tags/history?repository=NAME[&tag=TAG][&limit=N]`.
pub(super) async fn tag_history(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, Empty {}| async move {
        let repository = query_value(&op.query, "repository")
            .ok_or_else(|| ApiFailure::invalid("repository: required"))?;
        let tag = query_value(&op.query, "tag");
        let limit = query_number(&op.query, "limit")?.unwrap_or(100);
        ok(&lifecycle
            .tag_history(&repository, tag.as_deref(), limit)
            .await?)
    })
    .await
}

/// `POST /api/v1/tags/restore`: puts a deleted or moved tag back.
pub(super) async fn restore_tag(State(state): Shared, request: Request) -> Response {
    let lifecycle = Arc::clone(&state.lifecycle);
    manage(&state, request, |op, body: RestoreTag| async move {
        ok(&lifecycle.restore_tag(&op.actor, &body).await?)
    })
    .await
}
