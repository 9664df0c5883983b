//! Deleting a tag (that one tag: the manifest and its other tags stay) and deleting a
//! manifest by digest (a separate, explicit action that names the tags it removes). Each asks
//! for confirmation on a page of its own, needs delete rights, is refused when the registry
//! does not allow deleting, and is audited.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Redirect};
use berth_auth::{Action, Decision};
use berth_meta::Origin;
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use http::request::Parts;
use maud::{Markup, html};

use crate::WebState;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{manifest_url, page, repository_url, short_digest, tag_url};
use crate::pages::repository::visible_repository;
use crate::session::{CSRF_FIELD, Viewer};

/// Who deletes and from where, for the events the deletion causes.
fn origin(parts: &Parts, viewer: &Viewer) -> Arc<Origin> {
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Arc::new(Origin {
        actor: viewer.caller.actor(),
        address: viewer.caller.client.map(|ip| ip.to_string()),
        user_agent: header(http::header::USER_AGENT),
        request_id: None,
        method: Some(parts.method.as_str().to_string()),
        host: header(http::header::HOST),
    })
}

/// The repository, if the viewer may delete in it and the registry allows deleting.
async fn deletable(
    state: &WebState,
    parts: &Parts,
    viewer: &Viewer,
    name: &str,
) -> Result<RepositoryName, WebError> {
    let repository = visible_repository(state, viewer, name).await?;
    let settings = state.registry.settings();
    if !settings.delete_enabled || settings.read_only {
        return Err(WebError::Refused(
            "Deleting is disabled on this registry (storage.delete.enabled is off, or it is read-only)."
                .into(),
        ));
    }
    viewer.require_user(parts.uri.path())?;
    let may = state
        .access
        .permissions(&viewer.caller, repository.as_str())
        .await?;
    if !may.contains(Action::Delete) {
        return Err(WebError::Forbidden(format!(
            "You may not delete in {repository}."
        )));
    }
    Ok(repository)
}

fn confirm_form(viewer: &Viewer, action: &str, button: &str, back: &str) -> Markup {
    let csrf = viewer
        .user
        .as_ref()
        .map(|u| u.csrf.as_str())
        .unwrap_or_default();
    html! {
        form.row method="post" action=(action) {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            button.danger type="submit" { (button) }
            a href=(back) { "Cancel" }
        }
    }
}

/// GET …/-/tags/<tag>/delete
pub async fn confirm_tag(state: &WebState, parts: &Parts, name: &str, tag: &Tag) -> PageResult {
    let viewer = Viewer::of(state, parts).await?;
    let repository = deletable(state, parts, &viewer, name).await?;
    let repo = repository.as_str();
    let digest = state
        .registry
        .resolve(&repository, &Reference::Tag(tag.clone()))
        .await?;
    let others: Vec<String> = state
        .registry
        .manifest_tags(&repository, &digest)
        .await?
        .into_iter()
        .filter(|t| t != tag.as_str())
        .collect();
    let body = html! {
        div.crumbs { a href=(repository_url(repo)) { (repo) } " /" }
        h1 { "Delete tag " (tag) "?" }
        section.panel {
            p { "Only the tag " code { (tag) } " is removed. The manifest "
                a href=(manifest_url(repo, digest.as_str())) { (short_digest(digest.as_str())) }
                " stays, and can still be pulled by digest." }
            @if !others.is_empty() {
                p { "These tags point at the same manifest and stay: "
                    @for other in &others { code { (other) } " " } }
            }
            (confirm_form(&viewer, &format!("{}/delete", tag_url(repo, tag.as_str())), "Delete the tag", &tag_url(repo, tag.as_str())))
        }
    };
    Ok(page(&viewer, "Delete tag", None, body).into_response())
}

/// Authorizes the deletion (recorded in the audit log, like a `DELETE` on `/v2/`).
async fn authorize(
    state: &WebState,
    viewer: &Viewer,
    form: &Fields,
    repository: &RepositoryName,
) -> Result<(), WebError> {
    viewer.check_csrf(form)?;
    match state
        .access
        .authorize(&viewer.caller, repository.as_str(), Action::Delete)
        .await?
    {
        Decision::Allowed => Ok(()),
        _ => Err(WebError::Forbidden(format!(
            "You may not delete in {repository}."
        ))),
    }
}

/// POST …/-/tags/<tag>/delete
pub async fn delete_tag(
    state: &WebState,
    parts: &Parts,
    body: Body,
    name: &str,
    tag: &Tag,
) -> PageResult {
    let form = Fields::body(body).await?;
    let viewer = Viewer::of(state, parts).await?;
    let repository = deletable(state, parts, &viewer, name).await?;
    authorize(state, &viewer, &form, &repository).await?;
    state
        .registry
        .delete_manifest(
            &origin(parts, &viewer),
            &repository,
            &Reference::Tag(tag.clone()),
        )
        .await?;
    state.access.audit(
        &viewer.caller,
        "delete",
        &format!("{repository}:{tag}"),
        "allowed",
        "tag deleted in the dashboard",
    );
    Ok(Redirect::to(&repository_url(repository.as_str())).into_response())
}

/// GET …/-/manifests/<digest>/delete
pub async fn confirm_manifest(
    state: &WebState,
    parts: &Parts,
    name: &str,
    digest: &Digest,
) -> PageResult {
    let viewer = Viewer::of(state, parts).await?;
    let repository = deletable(state, parts, &viewer, name).await?;
    let repo = repository.as_str();
    // Unknown manifests are a 404 before anything is offered.
    state
        .registry
        .resolve(&repository, &Reference::Digest(digest.clone()))
        .await?;
    let tags = state.registry.manifest_tags(&repository, digest).await?;
    let body = html! {
        div.crumbs { a href=(repository_url(repo)) { (repo) } " /" }
        h1 { "Delete manifest " (short_digest(digest.as_str())) "?" }
        section.panel {
            p { "The manifest " code { (digest) } " is removed from " (repo) ", and with it every tag that points at it." }
            @if tags.is_empty() {
                p { "No tag points at it." }
            } @else {
                p { "These tags are removed too: " @for tag in &tags { code { (tag) } " " } }
            }
            (confirm_form(&viewer, &format!("{}/delete", manifest_url(repo, digest.as_str())), "Delete the manifest and its tags", &manifest_url(repo, digest.as_str())))
        }
    };
    Ok(page(&viewer, "Delete manifest", None, body).into_response())
}

/// POST …/-/manifests/<digest>/delete
pub async fn delete_manifest(
    state: &WebState,
    parts: &Parts,
    body: Body,
    name: &str,
    digest: &Digest,
) -> PageResult {
    let form = Fields::body(body).await?;
    let viewer = Viewer::of(state, parts).await?;
    let repository = deletable(state, parts, &viewer, name).await?;
    authorize(state, &viewer, &form, &repository).await?;
    let tags = state.registry.manifest_tags(&repository, digest).await?;
    state
        .registry
        .delete_manifest(
            &origin(parts, &viewer),
            &repository,
            &Reference::Digest(digest.clone()),
        )
        .await?;
    state.access.audit(
        &viewer.caller,
        "delete",
        &format!("{repository}@{digest}"),
        "allowed",
        &format!(
            "manifest deleted in the dashboard, with its tags: {}",
            tags.join(", ")
        ),
    );
    Ok(Redirect::to(&repository_url(repository.as_str())).into_response())
}
