//! The page of one manifest, reached by tag or by digest: an index's platforms; an image's
//! config, layers and history; an artifact's type and files (a Helm chart, a WASM module, a
//! signature or an SBOM shown as what it is); annotations; referrers grouped by kind; the
//! raw manifest and config.

use std::collections::BTreeMap;

use axum::response::IntoResponse;
use berth_oci::Reference;
use berth_registry::inspect::{Entry, ImageConfig, Inspected, Kind, ReferrerView};
use http::request::Parts;
use maud::{Markup, html};

use crate::WebState;
use crate::errors::PageResult;
use crate::layout::{
    abbreviate, copy_button, manifest_url, page, repository_url, short_digest, size, tag_url, when,
};
use crate::pages::home;
use crate::pages::repository::{rights, visible_repository};
use crate::session::Viewer;

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "Image",
        Kind::Index => "Multi-platform index",
        Kind::Signature => "Signature",
        Kind::Sbom => "SBOM",
        Kind::Attestation => "Attestation",
        Kind::Helm => "Helm chart",
        Kind::Wasm => "WebAssembly module",
        Kind::Artifact => "Artifact",
    }
}

fn group_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Signature => "Signatures",
        Kind::Sbom => "SBOMs",
        Kind::Attestation => "Attestations",
        _ => "Other artifacts",
    }
}

/// JSON pretty-printed when it parses, as stored otherwise.
fn pretty(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

fn map_table(caption: &str, map: &BTreeMap<String, String>) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.skip { (caption) }
                thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                tbody {
                    @for (key, value) in map {
                        tr { td { code { (key) } } td { (value) } }
                    }
                }
            }
        }
    }
}

fn list(values: &Option<Vec<String>>) -> Markup {
    html! {
        @match values {
            Some(values) if !values.is_empty() => {
                @for value in values { code { (value) } " " }
            }
            _ => span.muted { "none" },
        }
    }
}

/// A manifest's layers or files; with a column of content ids (IPFS CIDs) when the blob
/// store gave them.
fn files_table(entries: &[Entry], titles: bool, content_ids: &BTreeMap<String, String>) -> Markup {
    let with_ids = entries.iter().any(|e| content_ids.contains_key(&e.digest));
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "#" }
                    @if titles { th scope="col" { "File" } }
                    th scope="col" { "Digest" }
                    @if with_ids { th scope="col" { "IPFS CID" } }
                    th scope="col" class="hide-narrow" { "Media type" }
                    th.num scope="col" { "Size" }
                } }
                tbody {
                    @for (i, entry) in entries.iter().enumerate() {
                        tr {
                            td.num { (i + 1) }
                            @if titles { td { (entry.title().unwrap_or("—")) } }
                            td { (short_digest(&entry.digest)) " " (copy_button(&entry.digest, "Copy the digest")) }
                            @if with_ids {
                                td {
                                    @match content_ids.get(&entry.digest) {
                                        Some(cid) => { code.cid { (cid) } " " (copy_button(cid, "Copy the CID")) },
                                        None => span.muted { "none" },
                                    }
                                }
                            }
                            td.hide-narrow { code { (entry.media_type) } }
                            td.num { (size(entry.size)) }
                        }
                    }
                }
            }
        }
    }
}

fn image_config(config: &ImageConfig) -> Markup {
    let run = &config.config;
    html! {
        h2 { "Config" }
        section.panel {
            dl.facts {
                dt { "Platform" } dd { (config.platform().name()) }
                @if let Some(created) = &config.created { dt { "Created" } dd { (created) } }
                @if let Some(author) = &config.author { dt { "Author" } dd { (author) } }
                dt { "Entrypoint" } dd { (list(&run.entrypoint)) }
                dt { "Command" } dd { (list(&run.cmd)) }
                dt { "Working directory" } dd { @if let Some(dir) = &run.working_dir { code { (dir) } } @else { span.muted { "none" } } }
                dt { "User" } dd { @if let Some(user) = run.user.as_ref().filter(|u| !u.is_empty()) { code { (user) } } @else { span.muted { "root (default)" } } }
                dt { "Exposed ports" } dd {
                    @match &run.exposed_ports {
                        Some(ports) if !ports.is_empty() => { @for port in ports.keys() { code { (port) } " " } }
                        _ => span.muted { "none" },
                    }
                }
                dt { "Environment" } dd { (list(&run.env)) }
            }
        }
        @if let Some(labels) = run.labels.as_ref().filter(|l| !l.is_empty()) {
            h3 { "Labels" }
            (map_table("Labels", labels))
        }
        @if !config.history.is_empty() {
            h2 { "History" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Created by" } th scope="col" class="hide-narrow" { "Created" } th scope="col" { "Layer" } } }
                    tbody {
                        @for (i, step) in config.history.iter().enumerate() {
                            tr {
                                td.num { (i + 1) }
                                td { code { (step.created_by.as_deref().unwrap_or("")) } @if let Some(comment) = &step.comment { " " span.muted { (comment) } } }
                                td.hide-narrow { (step.created.as_deref().unwrap_or("")) }
                                td { @if step.empty_layer { span.muted { "empty" } } @else { "layer" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn referrers(repository: &str, views: &[ReferrerView]) -> Markup {
    let mut groups: BTreeMap<&'static str, Vec<&ReferrerView>> = BTreeMap::new();
    for view in views {
        groups.entry(group_label(view.kind)).or_default().push(view);
    }
    html! {
        h2 #referrers { "Referrers" }
        @if views.is_empty() {
            p.muted { "No signatures, SBOMs, attestations or other artifacts refer to this manifest." }
        }
        @for (group, members) in &groups {
            h3 { (group) " (" (members.len()) ")" }
            ul {
                @for view in members {
                    li {
                        a href=(manifest_url(repository, view.digest.as_str())) { (short_digest(view.digest.as_str())) }
                        " " span.badge.(view.kind.as_str()) { (kind_label(view.kind)) }
                        @if let Some(artifact_type) = &view.artifact_type { " " code { (artifact_type) } }
                        " " span.muted { (size(view.size)) }
                        @if let Some(tag) = &view.tag { " " span.muted { "tagged " code { (tag) } } }
                        @if let Some(created) = view.annotations.get("org.opencontainers.image.created") {
                            " " span.muted { (created) }
                        }
                    }
                }
            }
        }
    }
}

pub async fn image_page(
    state: &WebState,
    parts: &Parts,
    name: &str,
    reference: Reference,
) -> PageResult {
    let viewer = Viewer::of(state, parts).await?;
    let repository = visible_repository(state, &viewer, name).await?;
    let inspected: Inspected = state.registry.inspect(&repository, &reference).await?;
    let rights = rights(state, &viewer, &repository).await?;
    let repo = repository.as_str();
    let digest = inspected.digest.as_str();
    let host = home::host(state, parts);
    let shown_as = match &reference {
        Reference::Tag(tag) => format!("{repo}:{tag}"),
        Reference::Digest(_) => format!("{repo}@{}", abbreviate(digest)),
    };
    let pull = format!("podman pull {host}/{repo}@{digest}");
    let is_index = inspected.kind == Kind::Index;
    let is_image = inspected.kind == Kind::Image;
    let artifact = !is_index && !is_image;
    let body = html! {
        div.crumbs { a href="/" { "Repositories" } " / " a href=(repository_url(repo)) { (repo) } " /" }
        h1 { (shown_as) " " span.badge.(inspected.kind.as_str()) { (kind_label(inspected.kind)) } }
        @if let Some(description) = &inspected.description { section.panel { p { (description) } } }
        div.pull { code { (pull) } (copy_button(&pull, "Copy the pull command")) }
        section.panel {
            dl.facts {
                dt { "Digest" } dd { code { (digest) } " " (copy_button(digest, "Copy the digest")) }
                dt { "Media type" } dd { code { (inspected.media_type) } }
                @if let Some(artifact_type) = inspected.parts.artifact_type().filter(|_| artifact) {
                    dt { "Artifact type" } dd { code { (artifact_type) } }
                }
                dt { "Total size" } dd { (size(inspected.total_size)) }
                @if let Some(cid) = inspected.parts.config.as_ref().and_then(|c| inspected.content_ids.get(&c.digest)) {
                    dt { "Config IPFS CID" } dd { code.cid { (cid) } " " (copy_button(cid, "Copy the CID")) }
                }
                @if !inspected.platforms.is_empty() {
                    dt { "Platforms" } dd { @for p in &inspected.platforms { span.badge { (p) } " " } }
                }
                dt { "Pushed" } dd { (when(inspected.pushed_at)) }
                dt { "Pulls" } dd { (inspected.pulls) @if let Some(at) = inspected.last_pulled_at { ", last " (when(at)) } }
                dt { "Tags" } dd {
                    @if inspected.tags.is_empty() { span.muted { "untagged" } }
                    @for tag in &inspected.tags { a href=(tag_url(repo, tag)) { code { (tag) } } " " }
                }
                @if let Some(subject) = &inspected.parts.subject {
                    dt { "Refers to" } dd { a href=(manifest_url(repo, &subject.digest)) { (short_digest(&subject.digest)) } }
                }
            }
        }
        @if is_index {
            h2 { "Platforms" }
            div.table-wrap {
                table id="platforms" {
                    thead { tr { th scope="col" { "Platform" } th scope="col" { "Manifest" } th scope="col" class="hide-narrow" { "Media type" } th.num scope="col" { "Size" } } }
                    tbody {
                        @for (child, kind) in &inspected.children {
                            tr {
                                td {
                                    @match &child.platform {
                                        Some(p) => (p.name()),
                                        None => span.muted { "unspecified" },
                                    }
                                    @if let Some(kind) = kind.filter(|k| *k != Kind::Image) { " " span.badge { (kind_label(kind)) } }
                                }
                                td { a href=(manifest_url(repo, &child.digest)) { (short_digest(&child.digest)) } }
                                td.hide-narrow { code { (child.media_type) } }
                                td.num { (size(child.size)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(config) = &inspected.image { (image_config(config)) }
        @if is_image {
            h2 { "Layers (" (inspected.parts.layers.len()) ")" }
            (files_table(&inspected.parts.layers, false, &inspected.content_ids))
        }
        @if artifact {
            h2 { "Files (" (inspected.parts.layers.len()) ")" }
            (files_table(&inspected.parts.layers, true, &inspected.content_ids))
        }
        @if !inspected.parts.annotations.is_empty() {
            h2 { "Annotations" }
            (map_table("Annotations", &inspected.parts.annotations))
        }
        (referrers(repo, &inspected.referrers))
        h2 { "Raw" }
        details {
            summary { "Manifest JSON" }
            pre { (pretty(&inspected.content)) }
        }
        @if let Some(config) = &inspected.config {
            details {
                summary { "Config JSON" }
                pre { (pretty(config)) }
            }
        }
        @if rights.delete {
            h2 { "Delete" }
            p {
                @if let Reference::Tag(tag) = &reference {
                    a.button.danger href={ (tag_url(repo, tag.as_str())) "/delete" } { "Delete tag " (tag) }
                    " "
                }
                a.button.danger href={ (manifest_url(repo, digest)) "/delete" } { "Delete manifest" }
            }
        }
    };
    Ok(page(&viewer, &shown_as, None, body).into_response())
}
