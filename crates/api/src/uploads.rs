//! `/v2/<name>/blobs/uploads/`: starting, continuing, finishing and cancelling uploads,
//! monolithic pushes and cross-repository mounts. `name` is the repository as the client
//! names it (in the URLs it is given), `stored` the one written: they differ only through a
//! virtual repository, whose writes go to its deploy target.

use std::sync::Arc;

use axum::body::Body;
use berth_auth::Caller;
use berth_oci::range::upload_range_header;
use berth_oci::{ContentRange, Digest, ErrorCode, RegistryError, RepositoryName, UploadId};
use berth_registry::events::Origin;
use berth_registry::{Chunk, UploadSession};
use http::request::Parts;
use http::{StatusCode, header};

use crate::AppState;
use crate::v2::{
    DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, HandlerResult, body_stream, content_length,
    header_str, query_param, response,
};

/// `201 Created` for a blob now in the repository.
fn blob_created(
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    digest: &Digest,
) -> HandlerResult {
    let location = state.urls.url(parts, &format!("/v2/{name}/blobs/{digest}"));
    response(
        StatusCode::CREATED,
        &[
            (header::LOCATION, &location),
            (DOCKER_CONTENT_DIGEST, digest.as_str()),
            (header::CONTENT_LENGTH, "0"),
        ],
        Body::empty(),
    )
}

fn upload_location(state: &AppState, parts: &Parts, name: &RepositoryName, id: UploadId) -> String {
    state
        .urls
        .url(parts, &format!("/v2/{name}/blobs/uploads/{id}"))
}

/// Where an upload stands: `Location` to continue it, `Range` of what it holds.
fn upload_progress(
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    status: StatusCode,
    session: &UploadSession,
) -> HandlerResult {
    let location = upload_location(state, parts, name, session.id);
    let id = session.id.to_string();
    response(
        status,
        &[
            (header::LOCATION, &location),
            (header::RANGE, &upload_range_header(session.size)),
            (DOCKER_UPLOAD_UUID, &id),
            (header::CONTENT_LENGTH, "0"),
        ],
        Body::empty(),
    )
}

/// An out-of-order chunk also tells the client where to resume.
fn with_resume_headers(
    err: RegistryError,
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    id: UploadId,
) -> RegistryError {
    if err.code != ErrorCode::RangeInvalid {
        return err;
    }
    err.with_header("location", upload_location(state, parts, name, id))
        .with_header("docker-upload-uuid", id.to_string())
}

fn chunk(parts: &Parts, body: Body) -> Result<Chunk, RegistryError> {
    let content_range = header_str(&parts.headers, header::CONTENT_RANGE)
        .map(ContentRange::parse)
        .transpose()?;
    Ok(Chunk {
        content_range,
        content_length: content_length(&parts.headers),
        body: body_stream(body),
    })
}

fn digest_param(parts: &Parts, name: &str) -> Result<Option<Digest>, RegistryError> {
    query_param(parts, name)
        .map(|d| Digest::parse(&d))
        .transpose()
        .map_err(Into::into)
}

/// `POST`: a mount (`?mount=&from=`), a monolithic upload (`?digest=`), or a new session.
/// A mount only takes the blob from a repository the caller may pull.
pub(crate) async fn start(
    state: &AppState,
    parts: &Parts,
    caller: &Caller,
    origin: &Arc<Origin>,
    name: &RepositoryName,
    stored: &RepositoryName,
    body: Body,
) -> HandlerResult {
    if let Some(digest) = digest_param(parts, "mount")? {
        let from = query_param(parts, "from")
            .map(|f| RepositoryName::parse(&f))
            .transpose()?;
        let readable = crate::auth::pull_filter(&state.access, caller).await?;
        if state
            .registry
            .mount_blob(origin, stored, &digest, from.as_ref(), &readable)
            .await?
            .is_some()
        {
            return blob_created(state, parts, name, &digest);
        }
        // Not mountable: the client uploads instead, into this new session.
    } else if let Some(digest) = digest_param(parts, "digest")? {
        state
            .registry
            .upload_blob(
                origin,
                stored,
                &digest,
                content_length(&parts.headers),
                body_stream(body),
            )
            .await?;
        return blob_created(state, parts, name, &digest);
    }
    let session = state.registry.start_upload(stored).await?;
    upload_progress(state, parts, name, StatusCode::ACCEPTED, &session)
}

pub(crate) async fn status(
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    stored: &RepositoryName,
    id: UploadId,
) -> HandlerResult {
    let session = state.registry.upload_status(stored, id).await?;
    upload_progress(state, parts, name, StatusCode::NO_CONTENT, &session)
}

pub(crate) async fn append(
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    stored: &RepositoryName,
    id: UploadId,
    body: Body,
) -> HandlerResult {
    let chunk = chunk(parts, body)?;
    let session = state
        .registry
        .append_upload(stored, id, chunk)
        .await
        .map_err(|e| with_resume_headers(e, state, parts, name, id))?;
    upload_progress(state, parts, name, StatusCode::ACCEPTED, &session)
}

pub(crate) async fn finish(
    state: &AppState,
    parts: &Parts,
    origin: &Arc<Origin>,
    name: &RepositoryName,
    stored: &RepositoryName,
    id: UploadId,
    body: Body,
) -> HandlerResult {
    let digest = digest_param(parts, "digest")?.ok_or_else(|| {
        RegistryError::new(
            ErrorCode::DigestInvalid,
            "the digest query parameter is required to finish an upload",
        )
    })?;
    let chunk = chunk(parts, body)?;
    state
        .registry
        .finish_upload(origin, stored, id, &digest, chunk)
        .await
        .map_err(|e| with_resume_headers(e, state, parts, name, id))?;
    blob_created(state, parts, name, &digest)
}

pub(crate) async fn cancel(state: &AppState, name: &RepositoryName, id: UploadId) -> HandlerResult {
    state.registry.cancel_upload(name, id).await?;
    response(StatusCode::NO_CONTENT, &[], Body::empty())
}
