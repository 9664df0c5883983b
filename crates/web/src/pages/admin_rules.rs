//! Access rules: the list, adding and removing rules, and a preview of the repositories a
//! pattern matches (a GET that works without script; with it, the preview follows typing).

use axum::body::Body;
use axum::response::IntoResponse;
use berth_auth::pattern::Pattern;
use http::header;
use http::request::Parts;
use maud::{Markup, html};

use crate::WebState;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{Html, repository_url, when_stamp};
use crate::pages::access::administration;
use crate::pages::admin::{admin_page, administrator, button, change, done_note, post_form};

/// Repository names read for a preview at most (in batches), and matches shown.
const PREVIEW_SCAN: usize = 200_000;
const PREVIEW_SHOWN: usize = 50;

/// The repositories `pattern` matches: the first few, and how many in all.
async fn matches(
    state: &WebState,
    pattern: &Pattern,
) -> Result<(Vec<String>, usize, bool), WebError> {
    let mut shown = Vec::new();
    let mut total = 0;
    let mut scanned = 0;
    let mut after: Option<String> = None;
    loop {
        let page = state
            .registry
            .catalog(
                &berth_oci::Page {
                    limit: Some(10_000),
                    after: after.clone(),
                },
                &|_| true,
            )
            .await?;
        scanned += page.items.len();
        for name in &page.items {
            if pattern.matches(name) {
                total += 1;
                if shown.len() < PREVIEW_SHOWN {
                    shown.push(name.clone());
                }
            }
        }
        match page.next_after() {
            Some(next) if scanned < PREVIEW_SCAN => after = Some(next.to_string()),
            Some(_) => return Ok((shown, total, true)),
            None => return Ok((shown, total, false)),
        }
    }
}

async fn preview_markup(state: &WebState, text: Option<&str>) -> Result<Markup, WebError> {
    let Some(text) = text else {
        return Ok(html! { p.muted { "Type a pattern to see which repositories it matches." } });
    };
    let pattern = match Pattern::parse(text) {
        Ok(pattern) => pattern,
        Err(e) => return Ok(html! { p.failure { "Not a pattern: " (e.to_string()) } }),
    };
    let (shown, total, cut) = matches(state, &pattern).await?;
    Ok(html! {
        p { code { (text) } " matches " (total) @if cut { "+" } " repositories" @if total > shown.len() { " (the first " (shown.len()) " below)" } "." }
        @if !shown.is_empty() {
            ul { @for name in &shown { li { a href=(repository_url(name)) { (name) } } } }
        }
    })
}

/// GET /admin/rules
pub async fn rules_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let rules = administration(state).list_rules().await?;
    let pattern = fields.text("pattern");
    let preview = preview_markup(state, pattern).await?;
    let body = html! {
        (done_note(&fields))
        div.table-wrap {
            table {
                thead { tr { th { "#" } th { "Subject" } th { "Pattern" } th { "Actions" } th { "Added" } th { span.skip { "Remove" } } } }
                tbody {
                    @for rule in &rules {
                        tr {
                            td.num { (rule.id) }
                            td { code { (rule.subject) } }
                            td { a href={ "/admin/rules?pattern=" (form_urlencoded::byte_serialize(rule.pattern.as_bytes()).collect::<String>()) } { code { (rule.pattern) } } }
                            td { (rule.actions) }
                            td { (when_stamp(&rule.created_at)) }
                            td { (button(&viewer, &format!("/admin/rules/{}/delete", rule.id), "Remove", true)) }
                        }
                    }
                }
            }
        }
        h2 { "Add a rule" }
        p.muted { "Subjects: user:NAME, team:NAME, service-account:NAME, anonymous (everyone) or authenticated. "
            "Patterns: * matches within one path component, ** across components. Actions: pull, push (includes pull), delete, admin (all three)." }
        (post_form(&viewer, "/admin/rules", "row", html! {
            label { "Subject" input type="text" name="subject" required placeholder="team:devs"; }
            label { "Pattern"
                input #pattern type="text" name="pattern" required value=(pattern.unwrap_or_default())
                    data-preview="/admin/rules/preview?pattern=" aria-controls="preview" autocomplete="off";
            }
            label { "Actions" input type="text" name="actions" required value="pull"; }
            button type="submit" { "Add rule" }
        }))
        h2 { "Pattern preview" }
        form.row method="get" action="/admin/rules" {
            label { "Pattern" input type="text" name="pattern" value=(pattern.unwrap_or_default()); }
            button.secondary type="submit" { "Preview" }
        }
        div #preview aria-live="polite" { (preview) }
    };
    Ok(admin_page(&viewer, "/admin/rules", "Access rules", body))
}

/// GET /admin/rules/preview?pattern=…: the preview alone, for the page's script.
pub async fn preview(state: &WebState, parts: &Parts) -> PageResult {
    administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let markup = preview_markup(state, fields.text("pattern")).await?;
    let mut response = Html(markup).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// POST /admin/rules
pub async fn add_rule(state: &WebState, parts: &Parts, body: Body) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/rules",
        |admin, actor, form| async move {
            let rule = admin
                .add_rule(
                    &actor,
                    form.text("subject").unwrap_or_default(),
                    form.text("pattern").unwrap_or_default(),
                    form.text("actions").unwrap_or_default(),
                )
                .await?;
            Ok(format!(
                "Rule {} added: {} {} {}.",
                rule.id, rule.subject, rule.pattern, rule.actions
            ))
        },
    )
    .await
}

/// POST /admin/rules/{id}/delete
pub async fn remove_rule(state: &WebState, parts: &Parts, body: Body, id: &str) -> PageResult {
    let id: i64 = id
        .parse()
        .map_err(|_| WebError::bad_request(format!("{id:?} is not a rule number")))?;
    change(
        state,
        parts,
        body,
        "/admin/rules",
        |admin, actor, _| async move {
            admin.remove_rule(&actor, id).await?;
            Ok(format!("Rule {id} removed."))
        },
    )
    .await
}
