//! Remote and virtual repositories: what is in force with each remote's status, and the
//! forms that create, change and remove those made here. Every change goes through
//! `berth_cache::admin::CacheAdmin` with the signed-in administrator as the actor, as the
//! admin API does: validated as the configuration file's keys, audited; the upstream
//! password is never shown (a change that leaves it empty keeps it). Those of the
//! configuration file are shown read-only.

use std::sync::Arc;

use axum::body::Body;
use berth_cache::admin::{CacheAdmin, CacheView, definition_from_texts};
use berth_cache::catalog::Kind;
use berth_registry::gc::human_bytes;
use http::request::Parts;
use maud::{Markup, html};
use serde_json::{Map, Value};

use crate::WebState;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::pages::admin::{act, admin_page, administrator, button, done_note, post_form};

const BACK: &str = "/admin/remotes";

/// GET /admin/remotes
pub async fn page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let views = state.caches.list().await?;
    let (virtuals, remotes): (Vec<&CacheView>, Vec<&CacheView>) =
        views.iter().partition(|v| v.kind() == "virtual");
    let body = html! {
        (done_note(&fields))
        p.muted { "Pull-through caches of other registries (remote repositories) and names read through an ordered list of local prefixes and remotes (virtual repositories). Those of the configuration file are changed there." }
        h2 #remotes { "Remote repositories" }
        div.table-wrap {
            table {
                thead { tr { th { "Name" } th { "Prefix" } th { "Upstream" } th.num { "Hits / misses" } th.num { "Cached" } th { "Last error" } th { "Source" } th { span.skip { "Actions" } } } }
                tbody {
                    @for view in &remotes {
                        @let d = &view.description;
                        @let status = &d["status"];
                        tr {
                            td { (view.name()) }
                            td { code { (d["prefix"].as_str().unwrap_or_default()) "/" } }
                            td { @for url in d["urls"].as_array().into_iter().flatten() { div { code { (url.as_str().unwrap_or_default()) } } } }
                            td.num { (status["hits"]) " / " (status["misses"]) }
                            td.num { (cached(d)) }
                            td { @if let Some(message) = status["last_error"]["message"].as_str() { span.failure { (message) } } @else { span.muted { "—" } } }
                            td { (source(view)) }
                            td { @if view.source == "api" {
                                (button(&viewer, &format!("/admin/remotes/{}/delete", view.name()), "Remove", true))
                            } }
                        }
                    }
                }
            }
        }
        @for view in remotes.iter().filter(|v| v.source == "api") {
            details.change {
                summary { "Change " (view.name()) }
                (post_form(&viewer, &format!("/admin/remotes/{}", view.name()), "stack definition", remote_fields(Some(view))))
            }
        }
        h3 { "Add a remote repository" }
        (post_form(&viewer, "/admin/remotes", "stack definition", remote_fields(None)))

        h2 #virtuals { "Virtual repositories" }
        div.table-wrap {
            table {
                thead { tr { th { "Name" } th { "Prefix" } th { "Members, in order" } th { "Pushes go to" } th { "Source" } th { span.skip { "Actions" } } } }
                tbody {
                    @for view in &virtuals {
                        @let d = &view.description;
                        tr {
                            td { (view.name()) }
                            td { code { (d["prefix"].as_str().unwrap_or_default()) "/" } }
                            td { (strings(&d["members"]).join(", ")) }
                            td { @if let Some(deploy) = d["deploy"].as_str() { code { (deploy) "/" } } @else { span.muted { "refused" } } }
                            td { (source(view)) }
                            td { @if view.source == "api" {
                                (button(&viewer, &format!("/admin/virtuals/{}/delete", view.name()), "Remove", true))
                            } }
                        }
                    }
                }
            }
        }
        @for view in virtuals.iter().filter(|v| v.source == "api") {
            details.change {
                summary { "Change " (view.name()) }
                (post_form(&viewer, &format!("/admin/virtuals/{}", view.name()), "stack definition", virtual_fields(Some(view))))
            }
        }
        h3 { "Add a virtual repository" }
        (post_form(&viewer, "/admin/virtuals", "stack definition", virtual_fields(None)))
    };
    Ok(admin_page(
        &viewer,
        BACK,
        "Remote and virtual repositories",
        body,
    ))
}

fn source(view: &CacheView) -> Markup {
    html! {
        @if view.source == "api" {
            "made here"
            @if let Some(by) = &view.updated_by { br; span.muted { "by " (by) } }
        } @else {
            span.muted { "from the configuration file" }
        }
    }
}

fn cached(description: &Value) -> Markup {
    let status = &description["status"];
    html! {
        @if let Some(bytes) = status["cached_bytes"].as_u64() {
            (human_bytes(bytes))
            @if let Some(cap) = description["max_size"].as_u64() { " of " (human_bytes(cap)) }
            @if let Some(n) = status["evictions"].as_u64().filter(|n| *n > 0) { br; span.muted { (n) " evicted" } }
        } @else if let Some(cap) = description["max_size"].as_u64() {
            "cap " (human_bytes(cap))
        } @else {
            span.muted { "no cap" }
        }
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// A stored definition's key as form text (lists comma-separated, or a line each).
fn stored(view: Option<&CacheView>, key: &str, separator: &str) -> String {
    let Some(value) = view.and_then(|v| v.definition.as_ref()).map(|d| &d[key]) else {
        return String::new();
    };
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(_) => strings(value).join(separator),
        other => other.to_string(),
    }
}

fn remote_fields(view: Option<&CacheView>) -> Markup {
    let id = |field: &str| match view {
        Some(v) => format!("remote-{}-{field}", v.name()),
        None => format!("remote-new-{field}"),
    };
    let value = |key: &str| stored(view, key, ", ");
    let password_note = match view.and_then(|v| v.password_set) {
        Some(true) => "set; leave empty to keep it",
        _ => "none",
    };
    html! {
        @if view.is_none() {
            label { "Name" input id=(id("name")) type="text" name="name" required placeholder="hub"; }
        }
        label { "Prefix" input id=(id("prefix")) type="text" name="prefix" required placeholder="hub" value=(value("prefix")); }
        label { "Upstream URLs (one per line, tried in order)" textarea id=(id("urls")) name="urls" rows="2" required placeholder="https://registry-1.docker.io" { (stored(view, "urls", "\n")) } }
        div.row {
            label { "User name" input id=(id("username")) type="text" name="username" autocomplete="off" value=(value("username")); }
            label { "Password (" (password_note) ")" input id=(id("password")) type="password" name="password" autocomplete="new-password"; }
        }
        div.row {
            label { "Revalidate tags after" input id=(id("revalidateafter")) type="text" name="revalidateafter" placeholder="10m" value=(value("revalidateafter")); }
            label { "Never revalidate tags" input id=(id("immutabletags")) type="text" name="immutabletags" placeholder="v*.*.*" value=(value("immutabletags")); }
            label { "Size cap" input id=(id("maxsize")) type="text" name="maxsize" placeholder="50GiB" value=(value("maxsize")); }
        }
        div.row {
            label { "Requests a second upstream" input id=(id("ratelimit")) type="number" min="1" name="ratelimit" value=(value("ratelimit")); }
            label { "Platforms (empty: all)" input id=(id("platforms")) type="text" name="platforms" placeholder="linux/amd64" value=(value("platforms")); }
            label { "Serve stale when the upstream fails"
                select id=(id("servestale")) name="servestale" {
                    option value="true" selected[value("servestale") != "false"] { "yes" }
                    option value="false" selected[value("servestale") == "false"] { "no" }
                }
            }
        }
        button type="submit" { @if view.is_some() { "Save" } @else { "Add remote" } }
    }
}

fn virtual_fields(view: Option<&CacheView>) -> Markup {
    let id = |field: &str| match view {
        Some(v) => format!("virtual-{}-{field}", v.name()),
        None => format!("virtual-new-{field}"),
    };
    let value = |key: &str| stored(view, key, ", ");
    html! {
        @if view.is_none() {
            label { "Name" input id=(id("name")) type="text" name="name" required placeholder="all"; }
        }
        div.row {
            label { "Prefix" input id=(id("prefix")) type="text" name="prefix" required placeholder="all" value=(value("prefix")); }
            label { "Local prefixes (comma-separated, searched first)" input id=(id("locals")) type="text" name="locals" placeholder="team" value=(value("locals")); }
            label { "Remotes (comma-separated, then)" input id=(id("remotes")) type="text" name="remotes" placeholder="hub" value=(value("remotes")); }
            label { "Pushes go to (a local prefix; empty: refused)" input id=(id("deploy")) type="text" name="deploy" value=(value("deploy")); }
        }
        button type="submit" { @if view.is_some() { "Save" } @else { "Add virtual repository" } }
    }
}

/// A form's filled fields as a definition, read as the command line's `key=value` texts
/// are (lists may also be one item a line).
fn definition(form: &Fields, kind: Kind) -> Result<Map<String, Value>, WebError> {
    let keys: &[&str] = match kind {
        Kind::Remote => &[
            "prefix",
            "urls",
            "username",
            "password",
            "revalidateafter",
            "immutabletags",
            "ratelimit",
            "platforms",
            "maxsize",
            "servestale",
        ],
        Kind::Virtual => &["prefix", "locals", "remotes", "deploy"],
    };
    let texts: Vec<(&str, String)> = keys
        .iter()
        .filter_map(|key| Some((*key, form.text(key)?.replace('\n', ","))))
        .collect();
    Ok(definition_from_texts(
        kind,
        texts.iter().map(|(key, text)| (*key, text.as_str())),
    )?)
}

/// The POSTs below `/admin/remotes` and `/admin/virtuals`.
pub async fn post(state: &WebState, parts: &Parts, body: Body, path: &[&str]) -> PageResult {
    let caches: Arc<CacheAdmin> = Arc::clone(&state.caches);
    let (kind, rest) = match path {
        ["remotes", rest @ ..] => (Kind::Remote, rest),
        ["virtuals", rest @ ..] => (Kind::Virtual, rest),
        _ => return Err(WebError::NotFound),
    };
    let what = match kind {
        Kind::Remote => "Remote repository",
        Kind::Virtual => "Virtual repository",
    };
    match rest {
        [] => {
            act(state, parts, body, BACK, |actor, form| async move {
                let name = form.text("name").unwrap_or_default().trim().to_string();
                let definition = definition(&form, kind)?;
                caches
                    .put(&actor, kind, &name, Value::Object(definition), true)
                    .await?;
                Ok::<_, WebError>(format!("{what} {name} added."))
            })
            .await
        }
        [name] => {
            let name = name.to_string();
            act(state, parts, body, BACK, |actor, form| async move {
                let definition = definition(&form, kind)?;
                caches
                    .put(&actor, kind, &name, Value::Object(definition), false)
                    .await?;
                Ok::<_, WebError>(format!("{what} {name} saved."))
            })
            .await
        }
        [name, "delete"] => {
            let name = name.to_string();
            act(state, parts, body, BACK, |actor, _| async move {
                caches.delete(&actor, kind, &name).await?;
                Ok::<_, WebError>(format!("{what} {name} removed."))
            })
            .await
        }
        _ => Err(WebError::NotFound),
    }
}
