//! Recent activity from the audit log: pushes, deletions, sign-ins and management changes.
//! Administrators see all of it; other signed-in users see pushes and deletions in the
//! repositories they may pull.

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use berth_auth::admin::AuditEntry;
use maud::html;

use crate::Shared;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{page, query, repository_url, when_stamp};
use crate::pages::access::administration;
use crate::session::Viewer;

/// Events shown per page.
const PER_PAGE: usize = 50;
/// Audit events read per page at most (most are pulls, which are not shown).
const SCAN: u32 = 1000;

/// The repository an audit target names (`team/app`, `team/app:tag`, `team/app@sha256:…`).
fn repository_of(target: &str) -> &str {
    let end = target.find(['@', ':']).unwrap_or(target.len());
    &target[..end]
}

fn shown(entry: &AuditEntry, admin: bool) -> bool {
    let change = matches!(entry.action.as_str(), "push" | "delete") && entry.outcome == "allowed";
    let managed = matches!(entry.action.as_str(), "login" | "admin");
    change || (admin && managed)
}

/// GET /activity
pub async fn activity(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let fields = Fields::query(&parts)?;
    let viewer = Viewer::of(&state, &parts).await?;
    viewer.require_user("/activity")?;
    let before = match fields.text("before") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| WebError::bad_request(format!("{text:?} is not an event number")))?,
        ),
    };
    let admin = viewer.is_admin();
    let visible = viewer.visible(&state).await?;
    let scanned = administration(&state).audit(SCAN, before).await?;
    let oldest = scanned.last().map(|e| e.id);
    let entries: Vec<&AuditEntry> = scanned
        .iter()
        .filter(|e| shown(e, admin))
        .filter(|e| admin || visible(repository_of(&e.target)))
        .take(PER_PAGE)
        .collect();
    let next = if entries.len() == PER_PAGE {
        entries.last().map(|e| e.id)
    } else if scanned.len() == SCAN as usize {
        oldest
    } else {
        None
    };
    let body = html! {
        h1 { "Activity" }
        p.muted { "Pushes and deletions" @if admin { ", sign-ins and management changes" } ", newest first." }
        @if entries.is_empty() {
            p { "Nothing yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                        th scope="col" { "Where" } th scope="col" { "Outcome" } th.num scope="col" { "Times" }
                    } }
                    tbody {
                        @for e in &entries {
                            tr {
                                td { (when_stamp(&e.at)) }
                                td { code { (e.actor) } }
                                td { (e.action) @if !e.detail.is_empty() { " " span.muted { (e.detail) } } }
                                td {
                                    @if matches!(e.action.as_str(), "push" | "delete") {
                                        a href=(repository_url(repository_of(&e.target))) { (e.target) }
                                    } @else { (e.target) }
                                }
                                td { (e.outcome) }
                                td.num { (e.count) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            nav.pages { a href={ "/activity" (query(&[("before", &next.to_string())])) } rel="next" { "Older →" } }
        }
    };
    Ok(page(&viewer, "Activity", None, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_repositories() {
        assert_eq!(repository_of("team/app"), "team/app");
        assert_eq!(repository_of("team/app:v1"), "team/app");
        assert_eq!(repository_of("team/app@sha256:00"), "team/app");
    }
}
