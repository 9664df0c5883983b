//! The `/v2/` API: parses the endpoint, dispatches on the method, and renders the result.
//! Handlers translate HTTP into calls on [`berth_registry::Registry`] and nothing more.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::{Action, Caller};
use berth_oci::{ErrorCode, RegistryError, RepositoryName};
use berth_registry::events::Origin;
use berth_storage::ByteStream;
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::access_log::RequestId;
use crate::error_response::ApiError;
use crate::operation::{Operation, ParsedOperation};
use crate::{AppState, auth, blobs, listing, manifests, uploads};

pub(crate) type HandlerResult = Result<Response, RegistryError>;

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// Every request under `/v2`.
pub async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let operation = match parts.extensions.remove::<ParsedOperation>() {
        Some(ParsedOperation(operation)) => Ok(operation),
        None => Operation::parse(&parts.method, parts.uri.path()),
    };
    let operation = operation.and_then(|operation| mirrored(&state, &parts, operation));
    let mut response = match operation {
        Ok(operation) => route(&state, &parts, operation, body).await,
        Err(err) => Err(err),
    }
    .unwrap_or_else(|err| ApiError(err).into_response());
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

/// containerd, pulling through a mirror, names the registry it wants in `?ns=` and the
/// repository as that registry knows it (`?ns=docker.io`, `library/alpine`): the operation
/// is about the name the remote mirroring that registry gives it (`hub/library/alpine`), for
/// authorization as for everything else.
fn mirrored(
    state: &AppState,
    parts: &Parts,
    mut operation: Operation,
) -> Result<Operation, RegistryError> {
    if let Some(ns) = query_param(parts, "ns")
        && let Some(name) = operation.repository_mut()
    {
        *name = state.namespaces.mirror(&ns, name)?;
    }
    Ok(operation)
}

async fn route(state: &AppState, parts: &Parts, operation: Operation, body: Body) -> HandlerResult {
    let caller = auth::authenticate(state, parts).await?;
    // The repository a write changes: the named one, or a virtual repository's deploy
    // target (URLs given to the client keep the name it used). Writes to caches, and to
    // virtual repositories without a deploy target, are refused here.
    let mut stored = None;
    if let (Some(repository), Some(action)) = (operation.repository(), operation.required_action())
    {
        auth::require(state, parts, &caller, repository, action).await?;
        if action != Action::Pull {
            stored = Some(state.namespaces.write_target(repository)?);
        }
    }
    let stored = |name: &RepositoryName| stored.clone().unwrap_or_else(|| name.clone());
    let origin = &origin(parts, &caller);
    match operation {
        Operation::Base => {
            auth::require_login(state, parts, &caller, None)?;
            Ok(json_response(StatusCode::OK, "{}".into()))
        }
        Operation::Catalog => {
            // Like registry:2: a caller without credentials is asked to log in rather than
            // shown an empty list (an anonymous token lists what anonymous may pull).
            auth::require_login(state, parts, &caller, Some("registry:catalog:*".into()))?;
            listing::catalog(state, parts, &caller).await
        }
        Operation::ListTags(name) => listing::tags(state, parts, &name).await,
        Operation::Referrers(name, digest) => {
            listing::referrers(state, parts, &name, &digest).await
        }
        Operation::GetManifest {
            name,
            reference: Some(reference),
            with_body,
        } => manifests::get(state, parts, &name, &reference, origin, with_body).await,
        Operation::GetManifest {
            reference: None, ..
        }
        | Operation::DeleteManifest(_, None) => Err(RegistryError::new(
            ErrorCode::ManifestUnknown,
            "manifest unknown",
        )
        .with_detail(serde_json::json!({
            "reason": "the reference is neither a valid tag nor a digest, so nothing can be stored under it"
        }))),
        Operation::PutManifest(name, reference) => {
            manifests::put(state, parts, origin, &name, &stored(&name), &reference, body).await
        }
        Operation::DeleteManifest(name, Some(reference)) => {
            manifests::delete(state, origin, &stored(&name), &reference).await
        }
        Operation::GetBlob(name, digest) => blobs::get(state, parts, origin, &name, &digest).await,
        Operation::HeadBlob(name, digest) => blobs::head(state, &name, &digest).await,
        Operation::DeleteBlob(name, digest) => blobs::delete(state, origin, &stored(&name), &digest).await,
        Operation::StartUpload(name) => {
            uploads::start(state, parts, &caller, origin, &name, &stored(&name), body).await
        }
        Operation::UploadStatus(name, id) => uploads::status(state, parts, &name, &stored(&name), id).await,
        Operation::AppendUpload(name, id) => uploads::append(state, parts, &name, &stored(&name), id, body).await,
        Operation::FinishUpload(name, id) => {
            uploads::finish(state, parts, origin, &name, &stored(&name), id, body).await
        }
        Operation::CancelUpload(name, id) => uploads::cancel(state, &stored(&name), id).await,
    }
}

/// Who is making the request and from where, for the events it causes.
fn origin(parts: &Parts, caller: &Caller) -> Arc<Origin> {
    let text = |name| header_str(&parts.headers, name).map(str::to_string);
    Arc::new(Origin {
        actor: caller.actor(),
        address: auth::client(parts).map(|ip| ip.to_string()),
        user_agent: text(header::USER_AGENT),
        request_id: parts.extensions.get::<RequestId>().map(|id| id.0.clone()),
        method: Some(parts.method.as_str().to_string()),
        host: text(header::HOST).or_else(|| parts.uri.authority().map(|a| a.to_string())),
    })
}

/// The first value of a query parameter.
pub(crate) fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let query = parts.uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

pub(crate) fn header_str(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}

/// A request body as the stream the storage layer consumes.
pub(crate) fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

/// A response with headers; `headers` values come from validated names, digests and URLs.
pub(crate) fn response(
    status: StatusCode,
    headers: &[(HeaderName, &str)],
    body: Body,
) -> HandlerResult {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    builder.body(body).map_err(RegistryError::internal)
}

pub(crate) fn json_response(status: StatusCode, json: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}
