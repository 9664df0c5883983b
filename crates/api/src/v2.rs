//! The `/v2/` API: parses the endpoint, dispatches on the method, and renders the result.
//! Handlers translate HTTP into calls on [`berth_registry::Registry`] and nothing more.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_oci::RegistryError;
use berth_storage::ByteStream;
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use crate::endpoint::Endpoint;
use crate::error_response::ApiError;
use crate::{AppState, auth, blobs, listing, manifests, uploads};

pub(crate) type HandlerResult = Result<Response, RegistryError>;

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// Every request under `/v2`.
pub async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut response = match route(&state, &parts, body).await {
        Ok(response) => response,
        Err(err) => ApiError(err).into_response(),
    };
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

async fn route(state: &AppState, parts: &Parts, body: Body) -> HandlerResult {
    let endpoint = Endpoint::parse(parts.uri.path())?;
    let method = &parts.method;
    let is_read = method == Method::GET || method == Method::HEAD;
    let caller = auth::authenticate(state, parts).await?;
    if let Some((repository, action)) = auth::required_access(&endpoint, method) {
        auth::require(state, parts, &caller, repository, action).await?;
    }
    match endpoint {
        Endpoint::Base if is_read => {
            auth::require_login(state, parts, &caller, None)?;
            Ok(json_response(StatusCode::OK, "{}".into()))
        }
        Endpoint::Base => Err(method_not_allowed("GET, HEAD")),
        Endpoint::Catalog if is_read => {
            // Like registry:2: a caller without credentials is asked to log in rather than
            // shown an empty list (an anonymous token lists what anonymous may pull).
            auth::require_login(state, parts, &caller, Some("registry:catalog:*".into()))?;
            listing::catalog(state, parts, &caller).await
        }
        Endpoint::Catalog => Err(method_not_allowed("GET, HEAD")),
        Endpoint::Tags(name) if is_read => listing::tags(state, parts, &name).await,
        Endpoint::Tags(_) => Err(method_not_allowed("GET, HEAD")),
        Endpoint::Referrers(name, digest) if is_read => {
            listing::referrers(state, parts, &name, &digest).await
        }
        Endpoint::Referrers(..) => Err(method_not_allowed("GET, HEAD")),
        Endpoint::Manifest(name, reference) => match *method {
            Method::GET => manifests::get(state, parts, &name, &reference, true).await,
            Method::HEAD => manifests::get(state, parts, &name, &reference, false).await,
            Method::PUT => manifests::put(state, parts, &name, &reference, body).await,
            Method::DELETE => manifests::delete(state, &name, &reference).await,
            _ => Err(method_not_allowed("GET, HEAD, PUT, DELETE")),
        },
        Endpoint::Blob(name, digest) => match *method {
            Method::GET => blobs::get(state, parts, &name, &digest).await,
            Method::HEAD => blobs::head(state, &name, &digest).await,
            Method::DELETE => blobs::delete(state, &name, &digest).await,
            _ => Err(method_not_allowed("GET, HEAD, DELETE")),
        },
        Endpoint::UploadStart(name) => match *method {
            Method::POST => uploads::start(state, parts, &caller, &name, body).await,
            _ => Err(method_not_allowed("POST")),
        },
        Endpoint::Upload(name, id) => match *method {
            Method::GET => uploads::status(state, parts, &name, id).await,
            Method::PATCH => uploads::append(state, parts, &name, id, body).await,
            Method::PUT => uploads::finish(state, parts, &name, id, body).await,
            Method::DELETE => uploads::cancel(state, &name, id).await,
            _ => Err(method_not_allowed("GET, PATCH, PUT, DELETE")),
        },
    }
}

fn method_not_allowed(allowed: &'static str) -> RegistryError {
    RegistryError::unsupported("method not allowed on this endpoint")
        .with_detail(serde_json::json!({ "allowed": allowed }))
        .with_header("allow", allowed)
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
