//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`

use std::sync::Arc;

use axum::body::Body;
use berth_oci::{Digest, RepositoryName};
use berth_registry::events::Origin;
use berth_storage::BlobContent;
use http::request::Parts;
use http::{StatusCode, header};

use crate::AppState;
use crate::v2::{DOCKER_CONTENT_DIGEST, HandlerResult, header_str, response};

pub(crate) async fn get(
    state: &AppState,
    parts: &Parts,
    origin: &Arc<Origin>,
    name: &RepositoryName,
    digest: &Digest,
) -> HandlerResult {
    let range = header_str(&parts.headers, header::RANGE);
    let read = state
        .namespaces
        .reads(name)
        .read_blob(origin, name, digest, range)
        .await?;
    let stream = match read.content {
        BlobContent::Redirect(url) => {
            return response(
                StatusCode::TEMPORARY_REDIRECT,
                &[
                    (header::LOCATION, &url),
                    (DOCKER_CONTENT_DIGEST, digest.as_str()),
                ],
                Body::empty(),
            );
        }
        BlobContent::Stream(stream) => stream,
    };
    let etag = format!("\"{digest}\"");
    let common = [
        (header::CONTENT_TYPE, "application/octet-stream"),
        (DOCKER_CONTENT_DIGEST, digest.as_str()),
        (header::ACCEPT_RANGES, "bytes"),
        (header::ETAG, etag.as_str()),
    ];
    match read.range {
        Some(range) => {
            let length = range.len().to_string();
            let content_range = range.content_range(read.size);
            let mut headers = common.to_vec();
            headers.extend([
                (header::CONTENT_LENGTH, length.as_str()),
                (header::CONTENT_RANGE, content_range.as_str()),
            ]);
            response(
                StatusCode::PARTIAL_CONTENT,
                &headers,
                Body::from_stream(stream),
            )
        }
        None => {
            let length = read.size.to_string();
            let mut headers = common.to_vec();
            headers.push((header::CONTENT_LENGTH, length.as_str()));
            response(StatusCode::OK, &headers, Body::from_stream(stream))
        }
    }
}

pub(crate) async fn head(
    state: &AppState,
    name: &RepositoryName,
    digest: &Digest,
) -> HandlerResult {
    let size = state
        .namespaces
        .reads(name)
        .blob_size(name, digest)
        .await?
        .to_string();
    let etag = format!("\"{digest}\"");
    response(
        StatusCode::OK,
        &[
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_LENGTH, &size),
            (DOCKER_CONTENT_DIGEST, digest.as_str()),
            (header::ACCEPT_RANGES, "bytes"),
            (header::ETAG, &etag),
        ],
        Body::empty(),
    )
}

pub(crate) async fn delete(
    state: &AppState,
    origin: &Arc<Origin>,
    name: &RepositoryName,
    digest: &Digest,
) -> HandlerResult {
    state.registry.delete_blob(origin, name, digest).await?;
    response(
        StatusCode::ACCEPTED,
        &[(header::CONTENT_LENGTH, "0")],
        Body::empty(),
    )
}
