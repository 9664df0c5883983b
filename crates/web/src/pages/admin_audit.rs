//! The audit log with filters (who, what, repository, from, to) and its CSV export, and
//! storage usage per namespace and repository (each blob counted once).

use std::time::UNIX_EPOCH;

use axum::response::IntoResponse;
use berth_auth::admin::AuditEntry;
use berth_registry::gc::human_bytes;
use http::header;
use http::request::Parts;
use maud::html;

use crate::WebState;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{query, repository_url};
use crate::pages::access::administration;
use crate::pages::admin::{admin_page, administrator};

/// Entries shown per page, and read at most to fill one.
const PER_PAGE: usize = 100;
const SCAN: usize = 20_000;
/// Entries in one CSV export at most.
const CSV_LIMIT: usize = 100_000;

/// The audit filters of a request.
struct Filter {
    who: Option<String>,
    what: Option<String>,
    repository: Option<String>,
    /// RFC 3339 bounds (inclusive), compared as text: entries' times are RFC 3339 UTC.
    from: Option<String>,
    to: Option<String>,
}

/// A date (`2026-11-30`) or time (`2026-11-30T12:00:00Z`) as RFC 3339 UTC seconds.
fn bound(text: &str, end_of_day: bool) -> Result<String, WebError> {
    let full = if text.len() == 10 {
        format!(
            "{text}T{}Z",
            if end_of_day { "23:59:59" } else { "00:00:00" }
        )
    } else {
        text.to_string()
    };
    let at = humantime::parse_rfc3339_weak(&full)
        .map_err(|_| WebError::bad_request(format!("{text:?} is not a date such as 2026-11-30")))?;
    let millis = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(berth_auth::admin::timestamp(millis))
}

impl Filter {
    fn read(fields: &Fields) -> Result<Filter, WebError> {
        Ok(Filter {
            who: fields.text("who").map(str::to_owned),
            what: fields.text("what").map(str::to_owned),
            repository: fields.text("repository").map(str::to_owned),
            from: fields.text("from").map(|t| bound(t, false)).transpose()?,
            to: fields.text("to").map(|t| bound(t, true)).transpose()?,
        })
    }

    fn keeps(&self, entry: &AuditEntry) -> bool {
        self.who
            .as_ref()
            .is_none_or(|w| entry.actor.contains(w.as_str()))
            && self.what.as_ref().is_none_or(|w| entry.action == *w)
            && self
                .repository
                .as_ref()
                .is_none_or(|r| entry.target.starts_with(r.as_str()))
            && self.from.as_ref().is_none_or(|f| entry.at >= *f)
            && self.to.as_ref().is_none_or(|t| entry.at <= *t)
    }

    fn params(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("who", self.who.as_deref().unwrap_or_default()),
            ("what", self.what.as_deref().unwrap_or_default()),
            ("repository", self.repository.as_deref().unwrap_or_default()),
            ("from", self.from.as_deref().map_or("", |f| &f[..10])),
            ("to", self.to.as_deref().map_or("", |t| &t[..10])),
        ]
    }
}

/// Matching entries, newest first, older than entry `before`: up to `want` of them, reading
/// at most `scan` entries; and the id to continue from, if the log goes on.
async fn entries(
    state: &WebState,
    filter: &Filter,
    mut before: Option<i64>,
    want: usize,
    scan: usize,
) -> Result<(Vec<AuditEntry>, Option<i64>), WebError> {
    let admin = administration(state);
    let mut kept = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = admin.audit(1000, before).await?;
        let exhausted = batch.len() < 1000;
        scanned += batch.len();
        for entry in batch {
            before = Some(entry.id);
            if filter.keeps(&entry) {
                kept.push(entry);
                if kept.len() == want {
                    return Ok((kept, before));
                }
            }
        }
        if exhausted {
            return Ok((kept, None));
        }
        if scanned >= scan {
            return Ok((kept, before));
        }
    }
}

/// The value of filter `name`, or "".
fn param<'a>(params: &[(&str, &'a str)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map_or("", |(_, v)| *v)
}

/// GET /admin/audit
pub async fn audit_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let filter = Filter::read(&fields)?;
    let before = fields
        .text("before")
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| WebError::bad_request(format!("{t:?} is not an event number")))
        })
        .transpose()?;
    let (shown, next) = entries(state, &filter, before, PER_PAGE, SCAN).await?;
    let params = filter.params();
    let next_link = next.map(|id| {
        let id = id.to_string();
        let mut all = params.clone();
        all.push(("before", &id));
        format!("/admin/audit{}", query(&all))
    });
    let value = |name: &str| param(&params, name);
    let body = html! {
        form.filters method="get" action="/admin/audit" {
            label { "Who" input type="text" name="who" value=(value("who")) placeholder="user:alice"; }
            label { "What"
                select name="what" {
                    option value="" { "anything" }
                    @for action in ["login", "token", "pull", "push", "delete", "admin"] {
                        option value=(action) selected[value("what") == action] { (action) }
                    }
                }
            }
            label { "Repository" input type="text" name="repository" value=(value("repository")) placeholder="team/app"; }
            label { "From" input type="date" name="from" value=(value("from")); }
            label { "To" input type="date" name="to" value=(value("to")); }
            button type="submit" { "Filter" }
            a href={ "/admin/audit.csv" (query(&params)) } download { "Export CSV" }
        }
        @if shown.is_empty() { p { "No matching events." } }
        @else {
            div.table-wrap {
                table {
                    thead { tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Target" } th { "Client" } th { "Outcome" } th { "Detail" } th.num { "Times" } } }
                    tbody {
                        @for e in &shown {
                            tr {
                                td { (e.at) } td { code { (e.actor) } } td { (e.action) }
                                td { (e.target) } td { (e.client) } td { (e.outcome) }
                                td { (e.detail) } td.num { (e.count) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(link) = next_link { nav.pages { a href=(link) rel="next" { "Older →" } } }
    };
    Ok(admin_page(&viewer, "/admin/audit", "Audit log", body))
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is defused so that a
/// spreadsheet does not run it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// GET /admin/audit.csv
pub async fn audit_csv(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let filter = Filter::read(&fields)?;
    let (rows, _) = entries(state, &filter, None, CSV_LIMIT, usize::MAX).await?;
    let mut csv = String::from("id,at,actor,action,target,client,outcome,detail,count\r\n");
    for e in &rows {
        let fields = [
            e.id.to_string(),
            e.at.clone(),
            e.actor.clone(),
            e.action.clone(),
            e.target.clone(),
            e.client.clone(),
            e.outcome.clone(),
            e.detail.clone(),
            e.count.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    state.access.audit(
        &viewer.caller,
        "admin",
        "/admin/audit.csv",
        "allowed",
        &format!("{} events exported", rows.len()),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"berth-audit.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

/// GET /admin/storage
pub async fn storage_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let usage = state.registry.storage_usage(100).await?;
    let quotas = state.lifecycle.quotas().await?;
    let quota_of = |namespace: &str| {
        quotas
            .iter()
            .find(|q| q.namespace.as_deref() == Some(namespace))
    };
    let body = html! {
        p { (usage.total.blobs) " blobs, " (human_bytes(usage.total.bytes)) " stored (each blob once, whichever repositories hold it)." }
        h2 { "Namespaces" }
        div.table-wrap {
            table {
                thead { tr { th { "Namespace" } th.num { "Blobs" } th.num { "Size" } th.num { "Quota (used / limit)" } } }
                tbody {
                    @for ns in &usage.namespaces {
                        tr {
                            td { @if ns.name.is_empty() { span.muted { "(top level)" } } @else { (ns.name) } }
                            td.num { (ns.blobs) } td.num { (human_bytes(ns.bytes)) }
                            td.num {
                                @if let Some(quota) = quota_of(&ns.name) {
                                    (quota_use(quota))
                                } @else { span.muted { "none" } }
                            }
                        }
                    }
                }
            }
        }
        @if !quotas.is_empty() {
            h2 { "Quotas" }
            p.muted { "Each blob counted once per quota, kept by every push and deletion. " a href="/admin/lifecycle#quotas" { "Manage quotas" } }
            div.table-wrap {
                table {
                    thead { tr { th { "Repositories" } th.num { "Used / limit" } } }
                    tbody {
                        @for quota in &quotas {
                            tr { td { code { (quota.repositories) } } td.num { (quota_use(quota)) } }
                        }
                    }
                }
            }
        }
        h2 { "Largest repositories" }
        div.table-wrap {
            table {
                thead { tr { th { "Repository" } th.num { "Blobs" } th.num { "Size" } } }
                tbody {
                    @for r in &usage.repositories {
                        tr { td { a href=(repository_url(&r.name)) { (r.name) } } td.num { (r.blobs) } td.num { (human_bytes(r.bytes)) } }
                    }
                }
            }
        }
    };
    Ok(admin_page(&viewer, "/admin/storage", "Storage", body))
}

/// `1.2 MiB / 10.0 MiB (12%)`.
pub(crate) fn quota_use(quota: &berth_lifecycle::QuotaView) -> String {
    let percent = (quota.used_bytes as f64 * 100.0 / quota.limit_bytes.max(1) as f64).round();
    format!("{} / {} ({percent}%)", quota.used, quota.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn date_bounds() {
        assert_eq!(bound("2026-11-30", false).unwrap(), "2026-11-30T00:00:00Z");
        assert_eq!(bound("2026-11-30", true).unwrap(), "2026-11-30T23:59:59Z");
        assert!(bound("yesterday", false).is_err());
    }
}
