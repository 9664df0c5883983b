//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`

use std::sync::Arc;

use axum::body::Body;
use berth_oci::manifest::MAX_MANIFEST_SIZE;
use berth_oci::{Reference, RegistryError, RepositoryName};
use berth_registry::events::Origin;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::request::Parts;
use http::{HeaderName, StatusCode, header};

use crate::AppState;
use crate::v2::{DOCKER_CONTENT_DIGEST, HandlerResult, content_length, header_str, response};

const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");

fn accept_values(parts: &Parts) -> impl Iterator<Item = &str> {
    parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

/// GET and HEAD: the same headers; GET also sends the bytes.
pub(crate) async fn get(
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    reference: &Reference,
    origin: &Arc<Origin>,
    with_body: bool,
) -> HandlerResult {
    let accept: Vec<&str> = accept_values(parts).collect();
    let manifest = state
        .namespaces
        .reads(name)
        .get_manifest(with_body.then_some(origin), name, reference, &accept)
        .await?;
    let length = manifest.content.len().to_string();
    let etag = format!("\"{}\"", manifest.digest);
    let body = if with_body {
        Body::from(manifest.content)
    } else {
        Body::empty()
    };
    response(
        StatusCode::OK,
        &[
            (header::CONTENT_TYPE, &manifest.media_type),
            (header::CONTENT_LENGTH, &length),
            (DOCKER_CONTENT_DIGEST, manifest.digest.as_str()),
            (header::ETAG, &etag),
        ],
        body,
    )
}

fn too_large() -> RegistryError {
    RegistryError::manifest_invalid(format!(
        "manifest is larger than the {MAX_MANIFEST_SIZE}-byte limit"
    ))
    .with_status(413)
}

/// Reads a manifest body, refusing it as soon as it passes the size limit.
/// Reads a manifest body, refusing it once it passes the size limit.
///
/// A refused body is still read on, and thrown away, up to [`DRAIN_LIMIT`]: answering while
/// the client is still sending makes the server close the connection under it, and the
/// client then reports a broken pipe instead of the 413. Past the drain limit the
/// connection is closed regardless; nobody sends a legitimate manifest that large.
async fn read_manifest(parts: &Parts, body: Body) -> Result<Bytes, RegistryError> {
    let declared = content_length(&parts.headers);
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|len| len > MAX_MANIFEST_SIZE as u64) {
        if declared.is_some_and(|len| len <= DRAIN_LIMIT) {
            drain(&mut stream, DRAIN_LIMIT).await;
        }
        return Err(too_large());
    }
    let mut content = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::manifest_invalid("the request body could not be read completely")
                .with_cause(e)
        })?;
        if content.len() + chunk.len() > MAX_MANIFEST_SIZE {
            drain(
                &mut stream,
                DRAIN_LIMIT - (content.len() + chunk.len()) as u64,
            )
            .await;
            return Err(too_large());
        }
        content.extend_from_slice(&chunk);
    }
    Ok(content.freeze())
}

/// How much of a refused manifest body is read and discarded before answering.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

async fn drain(stream: &mut axum::body::BodyDataStream, mut budget: u64) {
    while let Some(Ok(chunk)) = stream.next().await {
        budget = budget.saturating_sub(chunk.len() as u64);
        if budget == 0 {
            return;
        }
    }
}

pub(crate) async fn put(
    state: &AppState,
    parts: &Parts,
    origin: &Arc<Origin>,
    name: &RepositoryName,
    stored: &RepositoryName,
    reference: &Reference,
    body: Body,
) -> HandlerResult {
    let content = read_manifest(parts, body).await?;
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE);
    let pushed = state
        .registry
        .put_manifest(origin, stored, reference, content_type, content)
        .await?;
    let location = state
        .urls
        .url(parts, &format!("/v2/{name}/manifests/{}", pushed.digest));
    let mut headers = vec![
        (header::LOCATION, location.as_str()),
        (DOCKER_CONTENT_DIGEST, pushed.digest.as_str()),
        (header::CONTENT_LENGTH, "0"),
    ];
    if let Some(subject) = &pushed.subject {
        headers.push((OCI_SUBJECT, subject.as_str()));
    }
    response(StatusCode::CREATED, &headers, Body::empty())
}

pub(crate) async fn delete(
    state: &AppState,
    origin: &Arc<Origin>,
    name: &RepositoryName,
    reference: &Reference,
) -> HandlerResult {
    state
        .registry
        .delete_manifest(origin, name, reference)
        .await?;
    response(
        StatusCode::ACCEPTED,
        &[(header::CONTENT_LENGTH, "0")],
        Body::empty(),
    )
}
