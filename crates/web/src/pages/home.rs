//! The home page (the repositories the viewer may pull, a page at a time) and the search.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect};
use berth_oci::{Page, RepositoryName};
use berth_registry::RepositorySummary;
use berth_registry::search::{MAX_CANDIDATES, Search};
use maud::{Markup, html};

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{count, page, page_links, query, repository_url, tag_url, when};
use crate::session::Viewer;
use crate::{Shared, WebState};

/// Repositories per page of the home page.
const REPOSITORIES_PER_PAGE: u32 = 50;
/// Results per page of a search.
const RESULTS_PER_PAGE: usize = 20;
/// The longest search text accepted.
const MAX_SEARCH: usize = 200;

fn summaries_table(summaries: &[RepositorySummary]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Repository" }
                    th scope="col" class="hide-narrow" { "Description" }
                    th.num scope="col" { "Tags" }
                    th scope="col" { "Last push" }
                } }
                tbody {
                    @for s in summaries {
                        tr {
                            td { a href=(repository_url(&s.name)) { (s.name) } }
                            td.hide-narrow.muted { (s.description.as_deref().unwrap_or("")) }
                            td.num { (s.tags) }
                            td { @if let Some(at) = s.last_pushed_at { (when(at)) } @else { span.muted { "never" } } }
                        }
                    }
                }
            }
        }
    }
}

/// GET /
pub async fn home(State(state): Shared, request: axum::extract::Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let fields = Fields::query(&parts)?;
    let viewer = Viewer::of(&state, &parts).await?;
    let after = match fields.text("after") {
        None => None,
        Some(name) => Some(
            RepositoryName::parse(name)
                .map_err(|_| WebError::bad_request(format!("{name:?} is not a repository name")))?
                .as_str()
                .to_string(),
        ),
    };
    let visible = viewer.visible(&state).await?;
    let listing = state
        .registry
        .catalog(
            &Page {
                limit: Some(REPOSITORIES_PER_PAGE),
                after: after.clone(),
            },
            &visible,
        )
        .await?;
    if listing.items.is_empty()
        && after.is_none()
        && viewer.user.is_none()
        && viewer.sign_in_possible
    {
        // Nothing public: the visitor can only sign in.
        return Ok(Redirect::to("/sign-in").into_response());
    }
    let summaries = state.registry.repository_summaries(&listing.items).await?;
    let body = html! {
        h1 { "Repositories" }
        @if viewer.user.is_none() && viewer.sign_in_possible {
            p.notice { "You see the public repositories. " a href="/sign-in" { "Sign in" } " to see yours." }
        }
        @if summaries.is_empty() {
            p.muted { "No repositories yet. Push an image, for example: " code { "podman push IMAGE " (host(&state, &parts)) "/team/app:1.0" } }
        } @else {
            (summaries_table(&summaries))
        }
        nav.pages aria-label="Pages" {
            @if after.is_some() { a href="/" { "← First page" } }
            @if let Some(next) = listing.next_after() {
                a href={ "/" (query(&[("after", next)])) } rel="next" { "Next →" }
            }
        }
    };
    Ok(page(&viewer, "Repositories", None, body).into_response())
}

/// The registry's host as clients name it (`registry.example.com`, `127.0.0.1:5000`).
pub fn host(state: &WebState, parts: &http::request::Parts) -> String {
    let base = state.urls.absolute_base(parts);
    base.split_once("://")
        .map_or(base.as_str(), |(_, host)| host)
        .trim_end_matches('/')
        .to_string()
}

/// A platform filter: `os/architecture[/variant]`, lower-case letters, digits, `.`, `_`, `-`.
fn valid_platform(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

/// Reads the search form, refusing what cannot be a search.
fn read_search(fields: &Fields) -> Result<Search, WebError> {
    let text = fields.get("q").unwrap_or_default().trim().to_string();
    if text.chars().count() > MAX_SEARCH || text.chars().any(char::is_control) {
        return Err(WebError::bad_request(format!(
            "a search is at most {MAX_SEARCH} characters, without control characters"
        )));
    }
    let namespace = match fields.text("ns") {
        None => None,
        Some(ns) => Some(
            RepositoryName::parse(ns)
                .map_err(|_| WebError::bad_request(format!("{ns:?} is not a namespace")))?
                .as_str()
                .to_string(),
        ),
    };
    let platform = match fields.text("platform") {
        None => None,
        Some(p) if valid_platform(p) => Some(p.to_string()),
        Some(p) => {
            return Err(WebError::bad_request(format!(
                "{p:?} is not a platform such as linux/amd64 or linux/arm/v7"
            )));
        }
    };
    Ok(Search {
        text,
        namespace,
        platform,
        signed: fields.flag("signed"),
        sbom: fields.flag("sbom"),
    })
}

/// GET /search
pub async fn search(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let fields = Fields::query(&parts)?;
    let viewer = Viewer::of(&state, &parts).await?;
    let search = read_search(&fields)?;
    let page_number = fields.page(10_000)?;
    let visible = viewer.visible(&state).await?;
    let found = state.registry.search(&search, &visible).await?;
    let pages = found.hits.len().div_ceil(RESULTS_PER_PAGE).max(1) as u64;
    if page_number > pages {
        return Err(WebError::bad_request(format!(
            "there is no page {page_number}: the search has {pages}"
        )));
    }
    let shown: Vec<_> = found
        .hits
        .iter()
        .skip((page_number as usize - 1) * RESULTS_PER_PAGE)
        .take(RESULTS_PER_PAGE)
        .collect();
    let names: Vec<String> = shown.iter().map(|h| h.repository.clone()).collect();
    let summaries = state.registry.repository_summaries(&names).await?;
    let signed = if search.signed { "1" } else { "" };
    let sbom = if search.sbom { "1" } else { "" };
    let params = [
        ("q", search.text.as_str()),
        ("ns", search.namespace.as_deref().unwrap_or_default()),
        ("platform", search.platform.as_deref().unwrap_or_default()),
        ("signed", signed),
        ("sbom", sbom),
    ];
    let body = html! {
        h1 { "Search" }
        form.filters method="get" action="/search" {
            label { "Words" input type="search" name="q" value=(search.text); }
            label { "Namespace" input type="text" name="ns" value=(search.namespace.as_deref().unwrap_or_default()) placeholder="team"; }
            label { "Platform" input type="text" name="platform" value=(search.platform.as_deref().unwrap_or_default()) placeholder="linux/amd64"; }
            label.check { input type="checkbox" name="signed" value="1" checked[search.signed]; "Signed" }
            label.check { input type="checkbox" name="sbom" value="1" checked[search.sbom]; "Has SBOM" }
            button type="submit" { "Search" }
        }
        @if search.is_empty() {
            p.muted { "Type words from a repository's name, a tag, a label or an annotation." }
        } @else if found.hits.is_empty() {
            p { "Nothing found." }
        } @else {
            p.muted {
                (count(found.hits.len() as u64, "repository", "repositories")) " found"
                @if found.truncated {
                    " (the best of the first " (MAX_CANDIDATES) " matching names and tags: add words to narrow it)"
                }
                "."
            }
            ol.results {
                @for hit in &shown {
                    @let summary = summaries.iter().find(|s| s.name == hit.repository);
                    li {
                        a.name href=(repository_url(&hit.repository)) { (hit.repository) }
                        @if let Some(summary) = summary {
                            @if let Some(description) = &summary.description { p.muted { (description) } }
                            span.muted { (count(summary.tags, "tag", "tags")) }
                            @if let Some(at) = summary.last_pushed_at { span.muted { ", last push " (when(at)) } }
                        }
                        @if !hit.tags.is_empty() {
                            div {
                                "Matching tags: "
                                @for tag in &hit.tags {
                                    a href=(tag_url(&hit.repository, tag)) { code { (tag) } } " "
                                }
                                @if hit.more_tags > 0 { span.muted { "and " (hit.more_tags) " more" } }
                            }
                        }
                    }
                }
            }
            (page_links("/search", &params, page_number, pages))
        }
    };
    Ok(page(&viewer, "Search", Some(&search.text), body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        for good in ["linux/amd64", "linux/arm/v7", "windows/amd64"] {
            assert!(valid_platform(good), "{good}");
        }
        for bad in [
            "linux",
            "linux/",
            "Linux/amd64",
            "a/b/c/d",
            "linux/amd64 x",
            "%/_",
        ] {
            assert!(!valid_platform(bad), "{bad}");
        }
    }

    #[test]
    fn searches() {
        let fields = Fields::parse(b"q=alpine&ns=library&platform=linux/arm64&signed=1").unwrap();
        let search = read_search(&fields).unwrap();
        assert_eq!(search.namespace.as_deref(), Some("library"));
        assert!(search.signed && !search.sbom);
        assert!(read_search(&Fields::parse(b"ns=Bad%20Name").unwrap()).is_err());
        assert!(read_search(&Fields::parse(b"platform=x").unwrap()).is_err());
        assert!(read_search(&Fields::parse("q=a%01".as_bytes()).unwrap()).is_err());
    }
}
