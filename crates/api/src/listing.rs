//! `GET /v2/_catalog`, `GET /v2/<name>/tags/list` and `GET /v2/<name>/referrers/<digest>`.

use axum::body::Body;
use berth_auth::Caller;
use berth_oci::manifest::OCI_IMAGE_INDEX;
use berth_oci::{Digest, Page, RepositoryName, Tag};
use berth_registry::Listing;
use http::request::Parts;
use http::{HeaderName, StatusCode, header};

use crate::AppState;
use crate::v2::{HandlerResult, json_response, query_param, response};

const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

fn page(
    parts: &Parts,
    validate_last: impl Fn(&str) -> Result<(), berth_oci::RegistryError>,
) -> Result<Page, berth_oci::RegistryError> {
    let n = query_param(parts, "n");
    let last = query_param(parts, "last");
    Page::parse(n.as_deref(), last.as_deref(), validate_last)
}

/// A page of JSON, with `Link: <next page>; rel="next"` when more follow.
fn listing_response(
    state: &AppState,
    parts: &Parts,
    path: &str,
    listing: &Listing,
    json: String,
) -> HandlerResult {
    let mut response = json_response(StatusCode::OK, json);
    if let Some(after) = listing.next_after() {
        let next = state
            .urls
            .url(parts, &format!("{path}?n={}&last={after}", listing.limit));
        let link = format!("<{next}>; rel=\"next\"");
        response.headers_mut().insert(
            header::LINK,
            link.parse().map_err(berth_oci::RegistryError::internal)?,
        );
    }
    Ok(response)
}

/// The repositories the caller may pull.
pub(crate) async fn catalog(state: &AppState, parts: &Parts, caller: &Caller) -> HandlerResult {
    let page = page(parts, |last| RepositoryName::parse(last).map(|_| ()))?;
    let visible = crate::auth::catalog_filter(state, parts, caller).await?;
    let listing = state.registry.catalog(&page, &visible).await?;
    let json = serde_json::json!({ "repositories": listing.items }).to_string();
    listing_response(state, parts, "/v2/_catalog", &listing, json)
}

pub(crate) async fn tags(state: &AppState, parts: &Parts, name: &RepositoryName) -> HandlerResult {
    let page = page(parts, |last| Tag::parse(last).map(|_| ()))?;
    // Through the namespace: a virtual repository lists the union of its members' tags.
    let listing = state.namespaces.reads(name).tags(name, &page).await?;
    let json = serde_json::json!({ "name": name.as_str(), "tags": listing.items }).to_string();
    listing_response(
        state,
        parts,
        &format!("/v2/{name}/tags/list"),
        &listing,
        json,
    )
}

pub(crate) async fn referrers(
    state: &AppState,
    parts: &Parts,
    name: &RepositoryName,
    subject: &Digest,
) -> HandlerResult {
    let artifact_type = query_param(parts, "artifactType");
    let index = state
        .namespaces
        .reads(name)
        .referrers(name, subject, artifact_type.as_deref())
        .await?;
    let mut headers = vec![(header::CONTENT_TYPE, OCI_IMAGE_INDEX)];
    if artifact_type.is_some() {
        headers.push((OCI_FILTERS_APPLIED, "artifactType"));
    }
    response(StatusCode::OK, &headers, Body::from(index))
}
