//! Lifecycle administration: garbage collection (run now, a dry run, the last runs) and the
//! rules that shape what is kept (quotas, retention, tag immutability). Every change goes
//! through `berth_lifecycle::Lifecycle` with the signed-in administrator as the actor, as the
//! CLI and the admin API do, so it is validated and audited the same way.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use berth_auth::admin::Actor;
use berth_lifecycle::{
    GcRunView, Lifecycle, LifecycleError, NewImmutableTagRule, NewQuota, NewRetentionRule,
};
use berth_registry::gc::{GcMode, GcReport, Unobserved, human_bytes};
use http::request::Parts;
use http::{HeaderValue, header};
use maud::{Markup, html};

use crate::WebState;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::when_stamp;
use crate::pages::admin::{act, admin_page, administrator, button, done_note, post_form};
use crate::pages::admin_audit::quota_use;

/// Runs a lifecycle change for an administrator (see [`act`]), with `Lifecycle`.
async fn change<F, Fut>(
    state: &WebState,
    parts: &Parts,
    body: Body,
    back: &str,
    change: F,
) -> PageResult
where
    F: FnOnce(Arc<Lifecycle>, Actor, Fields) -> Fut,
    Fut: Future<Output = Result<String, LifecycleError>>,
{
    let lifecycle = Arc::clone(&state.lifecycle);
    act(state, parts, body, back, |actor, form| {
        change(lifecycle, actor, form)
    })
    .await
}

fn freed(report: &GcReport) -> String {
    format!(
        "{} ({}), {}, {}",
        counted(report.blobs, "blob", "blobs"),
        human_bytes(report.bytes),
        counted(report.manifests, "manifest", "manifests"),
        counted(report.orphans, "orphan file", "orphan files")
    )
}

/// `1 blob`, `2 blobs`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How long a run took, and each of its phases (those that ended, while it runs).
fn phase_times(report: &GcReport) -> Markup {
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    html! {
        (seconds(report.duration_ms))
        @if !report.phases.is_empty() {
            br;
            span.muted {
                @for (i, phase) in report.phases.iter().enumerate() {
                    @if i > 0 { ", " }
                    (phase.phase) " " (seconds(phase.ms))
                }
            }
        }
    }
}

fn run_row(run: &GcRunView) -> Markup {
    let report = run.report.as_ref().or(run.progress.as_ref());
    html! {
        tr {
            td.num { (run.id) }
            td.word { (run.status.as_str()) }
            td { (when_stamp(&run.started_at)) }
            td { @if let Some(end) = &run.finished_at { (when_stamp(end)) } @else { span.muted { "—" } } }
            td { (run.trigger) " by " (run.actor) }
            td { @if let Some(report) = report { (freed(report)) } }
            td { @if let Some(report) = report { (phase_times(report)) } }
            td { @if let Some(error) = &run.error { span.failure { (error) } } @else if let Some(report) = report { (report.errors.join("; ")) } }
        }
    }
}

/// GET /admin/gc
pub async fn gc_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let status = state.lifecycle.gc_status().await?;
    let runs = state.lifecycle.gc_runs(None, 20).await?;
    let body = html! {
        (done_note(&fields))
        p {
            @if let Some(running) = &status.running {
                "Run " (running.id) " is collecting now (started " (when_stamp(&running.started_at)) "; this page reloads itself every 5 seconds until it ends)."
            } @else {
                "No collection is running."
            }
            " Pending deletions: " (status.pending_deletions) " (" (human_bytes(status.pending_bytes)) ")."
        }
        div.row {
            (button(&viewer, "/admin/gc/dry-run", "Dry run (changes nothing)", false))
            (button(&viewer, "/admin/gc", "Run garbage collection", true))
        }
        h2 { "Last runs" }
        @if runs.is_empty() {
            p.muted { "No run yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "#" } th { "Status" } th { "Started" } th { "Ended" } th { "Asked by" } th { "Freed" } th { "Time (per phase)" } th { "Errors" } } }
                    tbody { @for run in &runs { (run_row(run)) } }
                }
            }
        }
    };
    let mut response = admin_page(&viewer, "/admin/gc", "Garbage collection", body);
    if status.running.is_some() {
        // The run's progress without script: browsers reload a page that asks to be.
        response
            .headers_mut()
            .insert(header::REFRESH, HeaderValue::from_static("5"));
    }
    Ok(response)
}

/// POST /admin/gc: starts a run (the `gc` job runs it; the page then shows its progress).
pub async fn start_gc(state: &WebState, parts: &Parts, body: Body) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/gc",
        |lifecycle, actor, _| async move {
            let run = lifecycle
                .start_garbage_collection(actor, "dashboard")
                .await?;
            Ok(format!("Garbage collection run {run} started."))
        },
    )
    .await
}

/// POST /admin/gc/dry-run: what a run would free now, changing nothing.
pub async fn dry_run(state: &WebState, parts: &Parts, body: Body) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/gc",
        |lifecycle, actor, _| async move {
            let report = lifecycle
                .collect_garbage(&actor, GcMode::DryRun, "dashboard", &Unobserved)
                .await?;
            Ok(format!(
                "A run would free {} (the dry run {}).",
                freed(&report),
                report.timing()
            ))
        },
    )
    .await
}

/// GET /admin/lifecycle: quotas, retention rules and immutability rules.
pub async fn rules_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let lifecycle = &state.lifecycle;
    let quotas = lifecycle.quotas().await?;
    let retention = lifecycle.retention_rules().await?;
    let immutable = lifecycle.immutable_tag_rules().await?;
    let body = html! {
        (done_note(&fields))
        h2 #quotas { "Quotas" }
        p.muted { "A byte limit on a namespace (every repository under it) or a repository glob, each blob counted once. A push past it is refused." }
        div.table-wrap {
            table {
                thead { tr { th { "Repositories" } th.num { "Used / limit" } th { span.skip { "Remove" } } } }
                tbody {
                    @for quota in &quotas {
                        tr {
                            td { code { (quota.repositories) } }
                            td.num { (quota_use(quota)) }
                            td { (post_form(&viewer, "/admin/quotas/remove", "inline", html! {
                                input type="hidden" name="repositories" value=(quota.repositories);
                                button.danger type="submit" { "Remove" }
                            })) }
                        }
                    }
                }
            }
        }
        (post_form(&viewer, "/admin/quotas", "row", html! {
            label { "Namespace or glob" input #quota-repositories type="text" name="repositories" required placeholder="acme"; }
            label { "Limit" input #quota-limit type="text" name="limit" required placeholder="10GiB"; }
            button type="submit" { "Set quota" }
        }))

        h2 #retention { "Retention rules" }
        p.muted { "In the repositories a rule matches, tags any rule keeps stay; a retention run untags the others. Rules from the configuration file are changed there." }
        div.table-wrap {
            table {
                thead { tr { th { "#" } th { "Repositories" } th { "Keeps" } th { "Source" } th { span.skip { "Remove" } } } }
                tbody {
                    @for rule in &retention {
                        tr {
                            td.num { (rule.id) }
                            td { code { (rule.repositories) } }
                            td { (keeps(rule)) }
                            td { (rule.source) }
                            td { @if rule.id > 0 { (button(&viewer, &format!("/admin/retention/{}/delete", rule.id), "Remove", true)) } }
                        }
                    }
                }
            }
        }
        (post_form(&viewer, "/admin/retention", "row", html! {
            label { "Repositories" input #retention-repositories type="text" name="repositories" required placeholder="ci/**"; }
            label { "Keep the last pushed" input #retention-last type="number" min="0" name="keep_last_pushed"; }
            label { "Keep tags (globs, comma-separated)" input #retention-tags type="text" name="keep_tags" placeholder="v*, stable"; }
            label { "Keep tags (regular expressions, comma-separated)" input #retention-regex type="text" name="keep_tags_regex" placeholder="^v[0-9]+$"; }
            label { "Keep tags pushed within" input #retention-within type="text" name="keep_pushed_within" placeholder="30d"; }
            button type="submit" { "Add rule" }
        }))

        h2 #immutable { "Immutable tags" }
        p.muted { "A tag both patterns match is never moved or deleted." }
        div.table-wrap {
            table {
                thead { tr { th { "#" } th { "Repositories" } th { "Tags" } th { "Added" } th { span.skip { "Remove" } } } }
                tbody {
                    @for rule in &immutable {
                        tr {
                            td.num { (rule.id) }
                            td { code { (rule.repositories) } }
                            td { code { (rule.tags) } }
                            td { (when_stamp(&rule.created_at)) " by " (rule.created_by) }
                            td { (button(&viewer, &format!("/admin/immutable-tags/{}/delete", rule.id), "Remove", true)) }
                        }
                    }
                }
            }
        }
        (post_form(&viewer, "/admin/immutable-tags", "row", html! {
            label { "Repositories" input #immutable-repositories type="text" name="repositories" required placeholder="library/**"; }
            label { "Tags" input #immutable-tags type="text" name="tags" required placeholder="v*"; }
            button type="submit" { "Protect" }
        }))
    };
    Ok(admin_page(
        &viewer,
        "/admin/lifecycle",
        "Lifecycle rules",
        body,
    ))
}

fn keeps(rule: &berth_lifecycle::RetentionRuleView) -> String {
    let mut parts = Vec::new();
    if let Some(n) = rule.keep_last_pushed {
        parts.push(format!("the last {n} pushed"));
    }
    if let Some(n) = rule.keep_last_pulled {
        parts.push(format!("the last {n} pulled"));
    }
    if !rule.keep_tags.is_empty() {
        parts.push(format!("tags {}", rule.keep_tags.join(", ")));
    }
    if !rule.keep_tags_regex.is_empty() {
        parts.push(format!("tags matching {}", rule.keep_tags_regex.join(", ")));
    }
    if let Some(within) = &rule.keep_pushed_within {
        parts.push(format!("pushed within {within}"));
    }
    if let Some(within) = &rule.keep_pulled_within {
        parts.push(format!("pulled within {within}"));
    }
    parts.join("; ")
}

/// A comma-separated form field as a list (empty entries dropped).
fn list(form: &Fields, name: &str) -> Vec<String> {
    form.text(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The lifecycle administration's POSTs (`path` is below `/admin/`).
pub async fn post(state: &WebState, parts: &Parts, body: Body, path: &[&str]) -> PageResult {
    const BACK: &str = "/admin/lifecycle";
    match path {
        ["gc"] => start_gc(state, parts, body).await,
        ["gc", "dry-run"] => dry_run(state, parts, body).await,
        ["quotas"] => {
            change(
                state,
                parts,
                body,
                BACK,
                |lifecycle, actor, form| async move {
                    let quota = NewQuota {
                        repositories: form.text("repositories").unwrap_or_default().to_string(),
                        limit: form.text("limit").unwrap_or_default().to_string(),
                    };
                    let set = lifecycle.set_quota(&actor, &quota).await?;
                    Ok(format!(
                        "Quota on {} set to {}.",
                        set.repositories, set.limit
                    ))
                },
            )
            .await
        }
        ["quotas", "remove"] => {
            change(
                state,
                parts,
                body,
                BACK,
                |lifecycle, actor, form| async move {
                    let removed = lifecycle
                        .remove_quota(&actor, form.text("repositories").unwrap_or_default())
                        .await?;
                    Ok(format!("Quota on {} removed.", removed.repositories))
                },
            )
            .await
        }
        ["retention"] => {
            change(
                state,
                parts,
                body,
                BACK,
                |lifecycle, actor, form| async move {
                    let last = form
                        .text("keep_last_pushed")
                        .map(|n| {
                            n.parse::<u32>().map_err(|_| {
                                LifecycleError::Invalid(format!(
                                    "keep_last_pushed: {n:?} is not a count"
                                ))
                            })
                        })
                        .transpose()?;
                    let rule = NewRetentionRule {
                        repositories: form.text("repositories").unwrap_or_default().to_string(),
                        keep_last_pushed: last,
                        keep_tags: list(&form, "keep_tags"),
                        keep_tags_regex: list(&form, "keep_tags_regex"),
                        keep_pushed_within: form.text("keep_pushed_within").map(str::to_string),
                        ..NewRetentionRule::default()
                    };
                    let added = lifecycle.add_retention_rule(&actor, &rule).await?;
                    Ok(format!("Retention rule {} added.", added.id))
                },
            )
            .await
        }
        ["retention", id, "delete"] => {
            let id = rule_id(id)?;
            change(state, parts, body, BACK, |lifecycle, actor, _| async move {
                lifecycle.remove_retention_rule(&actor, id).await?;
                Ok(format!("Retention rule {id} removed."))
            })
            .await
        }
        ["immutable-tags"] => {
            change(
                state,
                parts,
                body,
                BACK,
                |lifecycle, actor, form| async move {
                    let rule = NewImmutableTagRule {
                        repositories: form.text("repositories").unwrap_or_default().to_string(),
                        tags: form.text("tags").unwrap_or_default().to_string(),
                    };
                    let added = lifecycle.add_immutable_tag_rule(&actor, &rule).await?;
                    Ok(format!(
                        "Tags {} in {} are immutable (rule {}).",
                        added.tags, added.repositories, added.id
                    ))
                },
            )
            .await
        }
        ["immutable-tags", id, "delete"] => {
            let id = rule_id(id)?;
            change(state, parts, body, BACK, |lifecycle, actor, _| async move {
                lifecycle.remove_immutable_tag_rule(&actor, id).await?;
                Ok(format!("Immutability rule {id} removed."))
            })
            .await
        }
        _ => Err(WebError::NotFound),
    }
}

fn rule_id(id: &str) -> Result<i64, WebError> {
    id.parse()
        .map_err(|_| WebError::bad_request(format!("{id:?} is not a rule number")))
}
