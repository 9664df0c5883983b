//! Remote and virtual repositories as configured, with each remote's status: its counters,
//! the upstream's last error and `RateLimit-Remaining`.

use axum::extract::{Request, State};
use axum::response::Response;

use super::failure::ok;
use super::identities::Empty;
use super::{Operation, Shared, manage};

pub(super) async fn list_remotes(State(state): Shared, request: Request) -> Response {
    let namespaces = state.namespaces.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        ok(&serde_json::json!({ "remotes": namespaces.describe() }))
    })
    .await
}
