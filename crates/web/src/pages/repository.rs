//! Everything under `/r/<name>`: the repository page itself, and (after the `/-/`
//! separator, which no repository name can contain as a component) its tags, manifests,
//! deletions and access. Names, tags and digests are parsed from the raw path, never
//! percent-decoded: anything that does not parse is a 400 page.

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use berth_auth::Action;
use berth_oci::{Digest, Reference, RepositoryName, Tag};
use berth_registry::TagSort;
use http::Method;
use maud::html;

use crate::chart;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{
    copy_button, manifest_url, page, page_links, query, repository_url, short_digest, size,
    tag_url, trusted, when,
};
use crate::pages::{access, delete, home, image};
use crate::session::Viewer;
use crate::{Shared, WebState};

/// Tags per page of a repository.
const TAGS_PER_PAGE: u32 = 50;
/// Days in the activity chart.
const CHART_DAYS: u32 = 30;

/// A repository the viewer may see: parsed, and pullable by the viewer (else 404).
pub async fn visible_repository(
    state: &WebState,
    viewer: &Viewer,
    name: &str,
) -> Result<RepositoryName, WebError> {
    let repository = RepositoryName::parse(name)
        .map_err(|_| WebError::bad_request(format!("{name:?} is not a repository name")))?;
    let visible = viewer.visible(state).await?;
    if !visible(repository.as_str()) {
        return Err(WebError::NotFound);
    }
    Ok(repository)
}

pub fn parse_tag(text: &str) -> Result<Tag, WebError> {
    Tag::parse(text).map_err(|_| WebError::bad_request(format!("{text:?} is not a tag")))
}

pub fn parse_digest(text: &str) -> Result<Digest, WebError> {
    Digest::parse(text).map_err(|_| WebError::bad_request(format!("{text:?} is not a digest")))
}

/// What the viewer may do in a repository, and whether deleting is possible at all.
pub struct Rights {
    pub delete: bool,
}

pub async fn rights(
    state: &WebState,
    viewer: &Viewer,
    repository: &RepositoryName,
) -> Result<Rights, WebError> {
    let settings = state.registry.settings();
    let deletable = settings.delete_enabled && !settings.read_only;
    let may = state
        .access
        .permissions(&viewer.caller, repository.as_str())
        .await?;
    Ok(Rights {
        delete: deletable && viewer.user.is_some() && may.contains(Action::Delete),
    })
}

/// Every request under `/r/`.
pub async fn dispatch(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path()
        .strip_prefix("/r/")
        .unwrap_or_default()
        .to_string();
    let (name, rest) = match path.split_once("/-/") {
        Some((name, rest)) => (name, Some(rest)),
        None => (path.trim_end_matches('/'), None),
    };
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    let post = parts.method == Method::POST;
    if !get && !post {
        return Err(WebError::MethodNotAllowed);
    }
    let segments: Vec<&str> = rest.map(|r| r.split('/').collect()).unwrap_or_default();
    match (segments.as_slice(), get) {
        ([], true) => repository_page(&state, &parts, name).await,
        (["tags", tag], true) => {
            image::image_page(&state, &parts, name, Reference::Tag(parse_tag(tag)?)).await
        }
        (["manifests", digest], true) => {
            image::image_page(
                &state,
                &parts,
                name,
                Reference::Digest(parse_digest(digest)?),
            )
            .await
        }
        (["tags", tag, "delete"], _) => {
            let tag = parse_tag(tag)?;
            if get {
                delete::confirm_tag(&state, &parts, name, &tag).await
            } else {
                delete::delete_tag(&state, &parts, body, name, &tag).await
            }
        }
        (["manifests", digest, "delete"], _) => {
            let digest = parse_digest(digest)?;
            if get {
                delete::confirm_manifest(&state, &parts, name, &digest).await
            } else {
                delete::delete_manifest(&state, &parts, body, name, &digest).await
            }
        }
        (["access"], true) => access::access_page(&state, &parts, name).await,
        (["access"], false) => access::add_rule(&state, &parts, body, name).await,
        _ if !get && segments.len() <= 3 => Err(WebError::MethodNotAllowed),
        _ => Err(WebError::NotFound),
    }
}

fn read_sort(fields: &Fields) -> Result<(TagSort, &'static str), WebError> {
    match fields.get("sort") {
        None | Some("" | "name") => Ok((TagSort::Name, "name")),
        Some("pushed") => Ok((TagSort::Pushed, "pushed")),
        Some("size") => Ok((TagSort::Size, "size")),
        Some(other) => Err(WebError::bad_request(format!(
            "{other:?} is not a sort order: name, pushed or size"
        ))),
    }
}

async fn repository_page(state: &WebState, parts: &http::request::Parts, name: &str) -> PageResult {
    let viewer = Viewer::of(state, parts).await?;
    let repository = visible_repository(state, &viewer, name).await?;
    let fields = Fields::query(parts)?;
    let (sort, sort_name) = read_sort(&fields)?;
    let page_number = fields.page(1_000_000)?;
    let offset = (page_number - 1) * u64::from(TAGS_PER_PAGE);
    let tags = state
        .registry
        .tag_page(&repository, sort, offset, TAGS_PER_PAGE)
        .await?;
    let pages = tags.total.div_ceil(u64::from(TAGS_PER_PAGE)).max(1);
    if page_number > pages {
        return Err(WebError::bad_request(format!(
            "there is no page {page_number}: the repository has {pages}"
        )));
    }
    let summary = state
        .registry
        .repository_summaries(&[repository.as_str().to_string()])
        .await?
        .pop();
    let activity = state.registry.activity(&repository, CHART_DAYS).await?;
    let rights = rights(state, &viewer, &repository).await?;
    let host = home::host(state, parts);
    let example = tags
        .rows
        .iter()
        .find(|t| t.tag == "latest")
        .or(tags.rows.first())
        .map(|t| t.tag.clone());
    let pull = example
        .as_ref()
        .map(|tag| format!("podman pull {host}/{repository}:{tag}"));
    let base = repository_url(repository.as_str());
    let sort_link = |key: &str| format!("{base}{}", query(&[("sort", key)]));
    let body = html! {
        div.crumbs { a href="/" { "Repositories" } " / " }
        h1 { (repository) }
        @if let Some(description) = summary.as_ref().and_then(|s| s.description.as_ref()) {
            section.panel { p { (description) } }
        }
        @if let Some(pull) = &pull {
            div.pull {
                code { (pull) }
                (copy_button(pull, "Copy the podman pull command"))
                @let docker = pull.replacen("podman", "docker", 1);
                code.hide-narrow { (docker) }
                (copy_button(&docker, "Copy the docker pull command"))
            }
        }
        p { a href={ (base) "/-/access" } { "Who can access this repository" } }
        h2 #tags { "Tags " span.muted { "(" (tags.total) ")" } }
        @if tags.rows.is_empty() {
            p.muted { "No tags." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { a href=(sort_link("name")) aria-current=[(sort_name == "name").then_some("true")] { "Tag" } }
                        th scope="col" { "Digest" }
                        th.num scope="col" { a href=(sort_link("size")) aria-current=[(sort_name == "size").then_some("true")] { "Size" } }
                        th scope="col" class="hide-narrow" { "Platforms" }
                        th scope="col" { a href=(sort_link("pushed")) aria-current=[(sort_name == "pushed").then_some("true")] { "Pushed" } }
                        th scope="col" class="hide-narrow" { "Last pulled" }
                        th.num scope="col" { "Pulls" }
                        @if rights.delete { th scope="col" { span.skip { "Actions" } } }
                    } }
                    tbody {
                        @for row in &tags.rows {
                            tr {
                                td { a href=(tag_url(repository.as_str(), &row.tag)) { (row.tag) } }
                                td {
                                    a href=(manifest_url(repository.as_str(), row.digest.as_str())) { (short_digest(row.digest.as_str())) }
                                    " " (copy_button(row.digest.as_str(), "Copy the digest"))
                                }
                                td.num { (size(row.size)) }
                                td.hide-narrow {
                                    @for platform in &row.platforms { span.badge { (platform) } " " }
                                    @if let Some(kind) = row.kind.as_deref().filter(|k| *k != "image" && *k != "index") {
                                        span.badge { (kind) }
                                    }
                                }
                                td { (when(row.pushed_at)) }
                                td.hide-narrow { @if let Some(at) = row.last_pulled_at { (when(at)) } @else { span.muted { "never" } } }
                                td.num { (row.pulls) }
                                @if rights.delete {
                                    td { a href={ (tag_url(repository.as_str(), &row.tag)) "/delete" } { "Delete tag" } }
                                }
                            }
                        }
                    }
                }
            }
            (page_links(&base, &[("sort", if sort_name == "name" { "" } else { sort_name })], page_number, pages))
        }
        h2 { "Activity" }
        p.legend.muted {
            span.pulls-key { "■ pulls" } " · " span.pushes-key { "■ pushed manifests" }
            " per day, last " (CHART_DAYS) " days"
        }
        (trusted(chart::activity(&activity)))
    };
    Ok(page(&viewer, repository.as_str(), None, body).into_response())
}
