//! Webhooks and background jobs: thin handlers over `berth_webhooks::admin::WebhookAdmin` and
//! the job runner.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use berth_auth::admin::timestamp;
use berth_jobs::JobStatus;
use berth_webhooks::EndpointSpec;
use serde::{Deserialize, Serialize};

use super::failure::{ApiFailure, created, no_content, ok, unavailable};
use super::identities::Empty;
use super::request::query_number;
use super::{Operation, Shared, manage};
use crate::{AppState, Background};

/// The webhooks and jobs of this server, once they are running.
fn background(state: &AppState) -> Result<&Background, ApiFailure> {
    state
        .background
        .get()
        .ok_or_else(|| unavailable("the server is still starting"))
}

/// A job's status with times as RFC 3339, like every time in the API.
#[derive(Serialize)]
struct JobView {
    name: String,
    running: bool,
    runs: u64,
    failures: u64,
    last_started_at: Option<String>,
    last_finished_at: Option<String>,
    last_duration_ms: Option<u64>,
    last_summary: Option<String>,
    last_error: Option<String>,
    next_run_at: Option<String>,
    progress: Option<String>,
}

impl From<JobStatus> for JobView {
    fn from(status: JobStatus) -> Self {
        JobView {
            name: status.name,
            running: status.running,
            runs: status.runs,
            failures: status.failures,
            last_started_at: status.last_started_at.map(timestamp),
            last_finished_at: status.last_finished_at.map(timestamp),
            last_duration_ms: status.last_duration_ms,
            last_summary: status.last_summary,
            last_error: status.last_error,
            next_run_at: status.next_run_at.map(timestamp),
            progress: status.progress,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateWebhook {
    name: String,
    #[serde(flatten)]
    spec: EndpointSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Replay {
    /// Only these dead letters; absent: all of the endpoint's.
    #[serde(default)]
    ids: Option<Vec<i64>>,
}

pub(super) async fn list_webhooks(State(state): Shared, request: Request) -> Response {
    let state2 = state.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        ok(&background(&state2)?.webhooks.list().await?)
    })
    .await
}

pub(super) async fn create_webhook(State(state): Shared, request: Request) -> Response {
    let state2 = state.clone();
    manage(
        &state,
        request,
        |op: Operation, body: CreateWebhook| async move {
            let webhooks = &background(&state2)?.webhooks;
            created(&webhooks.put(&op.actor, &body.name, body.spec, true).await?)
        },
    )
    .await
}

pub(super) async fn get_webhook(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        ok(&background(&state2)?.webhooks.get(&name).await?)
    })
    .await
}

pub(super) async fn replace_webhook(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(
        &state,
        request,
        |op: Operation, spec: EndpointSpec| async move {
            let webhooks = &background(&state2)?.webhooks;
            ok(&webhooks.put(&op.actor, &name, spec, false).await?)
        },
    )
    .await
}

pub(super) async fn delete_webhook(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |op: Operation, Empty {}| async move {
        background(&state2)?
            .webhooks
            .delete(&op.actor, &name)
            .await?;
        no_content()
    })
    .await
}

pub(super) async fn test_webhook(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |op: Operation, Empty {}| async move {
        ok(&background(&state2)?.webhooks.test(&op.actor, &name).await?)
    })
    .await
}

pub(super) async fn webhook_deliveries(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |op: Operation, Empty {}| async move {
        let before = query_number(&op.query, "before")?;
        let limit = query_number(&op.query, "limit")?;
        ok(&background(&state2)?
            .webhooks
            .deliveries(&name, before, limit)
            .await?)
    })
    .await
}

pub(super) async fn dead_letters(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        ok(&background(&state2)?.webhooks.dead_letters(&name).await?)
    })
    .await
}

pub(super) async fn replay_dead_letters(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |op: Operation, body: Replay| async move {
        let replayed = background(&state2)?
            .webhooks
            .replay(&op.actor, &name, body.ids.as_deref())
            .await?;
        ok(&serde_json::json!({ "replayed": replayed }))
    })
    .await
}

pub(super) async fn list_jobs(State(state): Shared, request: Request) -> Response {
    let state2 = state.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        let jobs: Vec<JobView> = background(&state2)?
            .jobs
            .statuses()
            .into_iter()
            .map(JobView::from)
            .collect();
        ok(&jobs)
    })
    .await
}

/// Runs a job's pass now and answers with its outcome once it is done.
pub(super) async fn run_job(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |op: Operation, Empty {}| async move {
        let jobs = &background(&state2)?.jobs;
        let result = jobs
            .run_once(&name)
            .await
            .map_err(|e| ApiFailure::not_found(e.to_string()))?;
        let (outcome, detail) = match &result {
            Ok(summary) => ("allowed", format!("run: {summary}")),
            Err(e) => ("failed", format!("run: {e}")),
        };
        op.admin
            .record_management(&op.actor, &format!("job:{name}"), outcome, &detail)
            .await;
        let status = jobs.status(&name).map(JobView::from);
        ok(&serde_json::json!({
            "succeeded": result.is_ok(),
            "summary": result.as_ref().ok(),
            "error": result.as_ref().err().map(|e| e.to_string()),
            "status": status,
        }))
    })
    .await
}
