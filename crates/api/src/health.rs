//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve: database and storage
//! reachable). Load balancers and orchestrators poll these; they are cheap and unauthenticated.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use crate::AppState;
use crate::v2::json_response;

pub async fn healthz() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#.into())
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.registry.check_ready().await {
        Ok(()) => json_response(StatusCode::OK, r#"{"status":"ready"}"#.into()),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            let body = serde_json::json!({ "status": "unavailable", "reason": err.message });
            json_response(StatusCode::SERVICE_UNAVAILABLE, body.to_string())
        }
    }
}
