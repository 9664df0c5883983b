//! Remote and virtual repositories: those in force with each remote's status (its counters,
//! the upstream's last error and `RateLimit-Remaining`), and creating, replacing and
//! removing those made through the API (over `berth_cache::admin::CacheAdmin`; those of the
//! configuration file are read-only). Upstream passwords are accepted, never returned.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use berth_cache::catalog::Kind;
use serde_json::Value;

use super::failure::{ApiFailure, created, no_content, ok};
use super::identities::Empty;
use super::{Operation, Shared, manage};

pub(super) async fn list_remotes(State(state): Shared, request: Request) -> Response {
    let caches = state.caches.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        ok(&serde_json::json!({ "remotes": caches.list().await? }))
    })
    .await
}

/// `POST /api/v1/remotes` and `/api/v1/virtuals`: `{"name": ..., <configuration keys>}`.
async fn create(state: super::Shared, request: Request, kind: Kind) -> Response {
    let State(state) = state;
    let caches = state.caches.clone();
    manage(&state, request, |op: Operation, body: Value| async move {
        let Value::Object(mut definition) = body else {
            return Err(ApiFailure::invalid("expected a JSON object"));
        };
        let name = match definition.remove("name") {
            Some(Value::String(name)) => name,
            _ => return Err(ApiFailure::invalid("name: required, a string")),
        };
        created(
            &caches
                .put(&op.actor, kind, &name, Value::Object(definition), true)
                .await?,
        )
    })
    .await
}

async fn get_one(state: super::Shared, name: String, request: Request, kind: Kind) -> Response {
    let State(state) = state;
    let caches = state.caches.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        ok(&caches.get(kind, &name).await?)
    })
    .await
}

async fn replace(state: super::Shared, name: String, request: Request, kind: Kind) -> Response {
    let State(state) = state;
    let caches = state.caches.clone();
    manage(&state, request, |op: Operation, body: Value| async move {
        ok(&caches.put(&op.actor, kind, &name, body, false).await?)
    })
    .await
}

async fn remove(state: super::Shared, name: String, request: Request, kind: Kind) -> Response {
    let State(state) = state;
    let caches = state.caches.clone();
    manage(&state, request, |op: Operation, Empty {}| async move {
        caches.delete(&op.actor, kind, &name).await?;
        no_content()
    })
    .await
}

pub(super) async fn create_remote(state: Shared, request: Request) -> Response {
    create(state, request, Kind::Remote).await
}

pub(super) async fn create_virtual(state: Shared, request: Request) -> Response {
    create(state, request, Kind::Virtual).await
}

pub(super) async fn get_remote(
    state: Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    get_one(state, name, request, Kind::Remote).await
}

pub(super) async fn get_virtual(
    state: Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    get_one(state, name, request, Kind::Virtual).await
}

pub(super) async fn replace_remote(
    state: Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    replace(state, name, request, Kind::Remote).await
}

pub(super) async fn replace_virtual(
    state: Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    replace(state, name, request, Kind::Virtual).await
}

pub(super) async fn delete_remote(
    state: Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    remove(state, name, request, Kind::Remote).await
}

pub(super) async fn delete_virtual(
    state: Shared,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    remove(state, name, request, Kind::Virtual).await
}
