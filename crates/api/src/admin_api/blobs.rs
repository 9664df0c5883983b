//! Blobs as the database records them: size, the repositories holding them, the content id a
//! content-addressed store gave them (IPFS) and whether they are quarantined.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use berth_oci::Digest;
use http::StatusCode;
use serde::Serialize;

use super::failure::{ApiFailure, ok};
use super::identities::Empty;
use super::{Operation, Shared, manage};

#[derive(Serialize)]
struct BlobView {
    digest: String,
    size: u64,
    cid: Option<String>,
    quarantined: bool,
    quarantine_reason: Option<String>,
    repositories: Vec<String>,
}

pub(super) async fn get_blob(
    State(state): Shared,
    Path(digest): Path<String>,
    request: Request,
) -> Response {
    let state2 = state.clone();
    manage(&state, request, |_: Operation, Empty {}| async move {
        let digest = Digest::parse(&digest)
            .map_err(|e| ApiFailure::invalid(format!("invalid digest: {e}")))?;
        let details = state2
            .registry
            .blob_details(&digest)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "admin API: reading a blob's record failed");
                ApiFailure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "the metadata database is unavailable; try again",
                )
            })?
            .ok_or_else(|| ApiFailure::not_found("no repository holds this blob"))?;
        ok(&BlobView {
            digest: details.digest.to_string(),
            size: details.size,
            cid: details.cid,
            quarantined: details.quarantine.is_some(),
            quarantine_reason: details.quarantine,
            repositories: details
                .repositories
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    })
    .await
}
