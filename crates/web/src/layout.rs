//! The page shell (header, navigation, search box, sign-in state) and the small pieces every
//! page uses: sizes, relative times, short digests, copy buttons, links, page navigation.

use axum::response::{IntoResponse, Response};
use berth_meta::now_millis;
use http::header;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::assets::{SCRIPT, STYLESHEET};
use crate::session::{CSRF_FIELD, Viewer};

/// An HTML page.
pub struct Html(pub Markup);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.0.into_string(),
        )
            .into_response()
    }
}

fn head(title: &str) -> Markup {
    head_moving_on(title, None)
}

/// The head of a page; with `onwards`, the browser moves on to that URL by itself.
fn head_moving_on(title: &str, onwards: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            @if let Some(target) = onwards {
                meta http-equiv="refresh" content={ "0;url=" (target) };
            }
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · berth" }
            link rel="stylesheet" href={ "/static/" (STYLESHEET.name) };
            script src={ "/static/" (SCRIPT.name) } defer {}
        }
    }
}

/// A full page: header with navigation and search, then `body`.
pub fn page(viewer: &Viewer, title: &str, search: Option<&str>, body: Markup) -> Html {
    Html(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "berth" }
                    form.search method="get" action="/search" role="search" {
                        label.skip for="q" { "Search" }
                        input #q type="search" name="q" value=(search.unwrap_or_default())
                            placeholder="Search repositories, tags, labels";
                        button type="submit" { "Search" }
                    }
                    nav aria-label="Main" {
                        a href="/" { "Repositories" }
                        @if viewer.user.is_some() {
                            a href="/activity" { "Activity" }
                        }
                        @if viewer.is_admin() {
                            a href="/admin" { "Administration" }
                        }
                    }
                    div.who {
                        @if let Some(user) = &viewer.user {
                            a href="/profile" { (user.name) }
                            form.inline method="post" action="/sign-out" {
                                input type="hidden" name=(CSRF_FIELD) value=(user.csrf);
                                button.secondary type="submit" { "Sign out" }
                            }
                        } @else if viewer.sign_in_possible {
                            a.button href="/sign-in" { "Sign in" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    })
}

/// A page without a viewer (error pages).
pub fn bare(title: &str, body: Markup) -> Html {
    bare_moving_on(title, None, body)
}

/// A page without a viewer that moves on to `onwards` by itself, when given.
pub fn bare_moving_on(title: &str, onwards: Option<&str>, body: Markup) -> Html {
    Html(html! {
        (DOCTYPE)
        html lang="en" {
            (head_moving_on(title, onwards))
            body {
                header.top { a.brand href="/" { "berth" } }
                main #main { (body) }
            }
        }
    })
}

/// Bytes as people read them (decimal units, as registries and clients show sizes).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `1 tag`, `2 tags`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An absolute time (UTC) for the `title` and `datetime` of a relative one.
pub fn absolute(millis: i64) -> String {
    berth_auth::admin::timestamp(millis)
}

/// "3 hours ago" (or "in 3 days" for a time to come), relative to `now`.
pub fn ago(millis: i64, now: i64) -> String {
    let future = millis - now >= 60_000;
    let seconds = (now - millis).abs() / 1000;
    let (n, unit) = match seconds {
        0..=59 => return "just now".into(),
        60..=3599 => (seconds / 60, "minute"),
        3600..=86_399 => (seconds / 3600, "hour"),
        86_400..=2_591_999 => (seconds / 86_400, "day"),
        2_592_000..=31_535_999 => (seconds / 2_592_000, "month"),
        _ => (seconds / 31_536_000, "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else if millis > now {
        "just now".into()
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// A relative time with the absolute one on hover.
pub fn when(millis: i64) -> Markup {
    let exact = absolute(millis);
    html! { time datetime=(exact) title=(exact) { (ago(millis, now_millis())) } }
}

/// [`when`] for the RFC 3339 times `Administration`'s views carry (shown as they are if
/// they do not parse).
pub fn when_stamp(stamp: &str) -> Markup {
    match humantime::parse_rfc3339(stamp) {
        Ok(at) => {
            let millis = at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            when(millis)
        }
        Err(_) => html! { (stamp) },
    }
}

/// `sha256:0123456789ab`: the algorithm and 12 hex digits.
pub fn abbreviate(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => format!("{algorithm}:{}", &hex[..hex.len().min(12)]),
        None => digest.to_string(),
    }
}

/// An abbreviated digest, the whole digest on hover.
pub fn short_digest(digest: &str) -> Markup {
    html! { code title=(digest) { (abbreviate(digest)) } }
}

/// A button copying `text` to the clipboard (shown only when the script runs).
pub fn copy_button(text: &str, label: &str) -> Markup {
    html! { button.copy type="button" data-copy=(text) aria-label=(label) { "Copy" } }
}

/// A repository's page.
pub fn repository_url(name: &str) -> String {
    format!("/r/{name}")
}

pub fn tag_url(repository: &str, tag: &str) -> String {
    format!("/r/{repository}/-/tags/{tag}")
}

pub fn manifest_url(repository: &str, digest: &str) -> String {
    format!("/r/{repository}/-/manifests/{digest}")
}

/// A query string from pairs, each value percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            serializer.append_pair(k, v);
        }
    }
    let text = serializer.finish();
    if text.is_empty() {
        text
    } else {
        format!("?{text}")
    }
}

/// Previous/next links for page `page` of `pages`, keeping the other parameters.
pub fn page_links(base: &str, params: &[(&str, &str)], page: u64, pages: u64) -> Markup {
    let link = |n: u64| {
        let number = n.to_string();
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("page", &number));
        format!("{base}{}", query(&all))
    };
    html! {
        @if pages > 1 {
            nav.pages aria-label="Pages" {
                @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
                span.muted { "Page " (page) " of " (pages) }
                @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
            }
        }
    }
}

/// Text that is already HTML (the SVG charts, built from numbers only).
pub fn trusted(markup: String) -> PreEscaped<String> {
    PreEscaped(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 KB");
        assert_eq!(size(12_345_678), "12 MB");
        assert_eq!(size(3_200_000_000), "3.2 GB");
        assert_eq!(ago(0, 30_000), "just now");
        assert_eq!(ago(0, 60_000), "1 minute ago");
        assert_eq!(ago(0, 7_200_000), "2 hours ago");
        assert_eq!(ago(3 * 86_400_000 + 5_000, 0), "in 3 days");
        assert_eq!(ago(10_000, 0), "just now");
        let stamp = when_stamp("2026-11-30T08:00:00Z").into_string();
        assert!(stamp.contains("title=\"2026-11-30T08:00:00Z\""), "{stamp}");
        assert_eq!(when_stamp("soon").into_string(), "soon");
        assert_eq!(ago(0, 3 * 86_400_000), "3 days ago");
    }

    #[test]
    fn values_are_escaped() {
        let markup = html! { p title=("\"><script>") { ("<script>alert(1)</script>") } };
        let text = markup.into_string();
        assert!(!text.contains("<script>"), "{text}");
        assert!(text.contains("&lt;script&gt;"), "{text}");
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(query(&[("q", "a b&c"), ("x", "")]), "?q=a+b%26c");
        assert_eq!(query(&[]), "");
    }
}
