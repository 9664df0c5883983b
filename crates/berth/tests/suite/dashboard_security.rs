//! The dashboard's promises at the HTTP level, where status codes and headers can be seen:
//! forms without the session's CSRF token are refused and change nothing; unknown, hidden
//! and malformed pages are 404 and 400 pages (never a 500, never JSON, and a repository the
//! viewer may not see answers exactly like one that does not exist); every page carries a
//! strict Content-Security-Policy and no inline script or style; sign-in failures are
//! throttled like `podman login`'s.

use reqwest::Response;
use reqwest::header::{COOKIE, SET_COOKIE};

use crate::support::accounts::Identities;
use crate::support::push::push_image;
use crate::support::{Berth, berth_cli, client};

const ROOT: (&str, &str) = ("root", "root-password-1");

/// A browser-like HTTP client: the cookies berth set, and the CSRF token of the last page.
pub(crate) struct Session {
    cookies: Vec<(String, String)>,
}

impl Session {
    pub(crate) fn new() -> Session {
        Session {
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            assert!(text.contains("HttpOnly"), "HttpOnly cookie: {text}");
            assert!(text.contains("SameSite=Strict"), "SameSite=Strict: {text}");
            let (pair, _) = text.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub(crate) async fn get(&mut self, berth: &Berth, path: &str) -> (u16, String) {
        let response = client()
            .get(berth.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        let status = response.status().as_u16();
        assert_ne!(status, 500, "GET {path}");
        (status, response.text().await.unwrap())
    }

    pub(crate) async fn post(
        &mut self,
        berth: &Berth,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = client()
            .post(berth.url(path))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        let status = response.status().as_u16();
        assert_ne!(status, 500, "POST {path}");
        (status, response.text().await.unwrap())
    }

    /// Signs in through the sign-in form; the CSRF token of the session.
    async fn sign_in(&mut self, berth: &Berth, user: &str, password: &str) -> String {
        let (status, page) = self.get(berth, "/sign-in").await;
        assert_eq!(status, 200, "{page}");
        let token = hidden_value(&page, "csrf");
        let (status, page) = self
            .post(
                berth,
                "/sign-in",
                &[
                    ("csrf", &token),
                    ("username", user),
                    ("password", password),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(status, 303, "signing in as {user}: {page}");
        self.cookies
            .iter()
            .find(|(k, _)| k == "berth_csrf")
            .map(|(_, v)| v.clone())
            .expect("a CSRF cookie after signing in")
    }
}

/// The value of the hidden input `name` in a page.
pub(crate) fn hidden_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

fn start() -> (Identities, Berth) {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    ids.user("alice", "alice-password-1");
    ids.allow("anonymous", "public/**", "push");
    ids.allow("user:alice", "alice/**", "pull");
    let berth = ids.start();
    (ids, berth)
}

/// An HTTP client that sends root's credentials with every request.
fn as_root() -> reqwest::Client {
    let credentials = data_encoding::BASE64.encode(format!("{}:{}", ROOT.0, ROOT.1).as_bytes());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Basic {credentials}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn tag_exists(berth: &Berth, repository: &str, tag: &str) -> bool {
    let response = as_root()
        .head(berth.url(&format!("/v2/{repository}/manifests/{tag}")))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    response.status() == 200
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_are_refused() {
    let (_ids, berth) = start();
    push_image(&client(), &berth, "public/app", "v1", 1, 1).await;
    let delete = "/r/public/app/-/tags/v1/delete";

    let mut root = Session::new();
    let csrf = root.sign_in(&berth, ROOT.0, ROOT.1).await;
    for (what, form) in [
        ("no token", vec![]),
        ("an empty token", vec![("csrf", "")]),
        (
            "another token",
            vec![("csrf", "0123456789abcdef0123456789abcdef")],
        ),
    ] {
        let (status, page) = root.post(&berth, delete, &form).await;
        assert_eq!(status, 403, "{what}: {page}");
        assert!(page.contains("security token"), "{what}: {page}");
        assert!(
            tag_exists(&berth, "public/app", "v1").await,
            "{what}: the tag stays"
        );
    }
    // The right token, without the session's cookies (as from another site): not signed in.
    let mut stranger = Session::new();
    let (status, _) = stranger.post(&berth, delete, &[("csrf", &csrf)]).await;
    assert!(status == 303 || status == 403, "{status}");
    assert!(tag_exists(&berth, "public/app", "v1").await);
    // Sign-in and sign-out forms carry tokens too.
    let (status, _) = Session::new()
        .post(
            &berth,
            "/sign-in",
            &[("username", ROOT.0), ("password", ROOT.1)],
        )
        .await;
    assert_eq!(status, 403, "a sign-in without the form's token");
    let (status, _) = root.post(&berth, "/sign-out", &[]).await;
    assert_eq!(status, 403, "a sign-out without the token");

    // With the token, the same post deletes the tag.
    let (status, page) = root.post(&berth, delete, &[("csrf", &csrf)]).await;
    assert_eq!(status, 303, "{page}");
    assert!(!tag_exists(&berth, "public/app", "v1").await);
}

#[tokio::test]
async fn unknown_hidden_and_malformed_pages_are_404_and_400_pages() {
    let (_ids, berth) = start();
    push_image(&client(), &berth, "public/app", "v1", 2, 1).await;
    // alice/secret exists, but only alice (and root) may see it.
    push_image(&as_root(), &berth, "alice/secret", "v1", 4, 1).await;

    let mut visitor = Session::new();
    let (hidden_status, hidden) = visitor.get(&berth, "/r/alice/secret").await;
    let (missing_status, missing) = visitor.get(&berth, "/r/alice/nothing").await;
    assert_eq!((hidden_status, missing_status), (404, 404));
    assert_eq!(
        hidden, missing,
        "a hidden repository is answered like a missing one"
    );
    for path in [
        "/r/public/app/-/tags/nope",
        "/r/public/app/-/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "/r/public/app/-/unknown",
        "/r/alice/secret/-/tags/v1",
        "/r/alice/secret/-/access",
        "/no/such/page",
        "/static/berth.0000.css",
    ] {
        let (status, page) = visitor.get(&berth, path).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(page.starts_with("<!DOCTYPE html>"), "{path}: an HTML page");
    }
    for path in [
        "/r/Not%20A%20Name",
        "/r/UPPER/case",
        "/r/public/app/-/manifests/sha256:zz",
        "/r/public/app/-/tags/bad%20tag",
        "/r/public/app?page=0",
        "/r/public/app?page=abc",
        "/r/public/app?sort=sideways",
        "/r/public/app?page=99",
        "/search?q=x&page=-1",
        "/search?q=%01",
        "/search?platform=not-a-platform",
        "/search?ns=Bad%20Namespace",
        "/?after=..%2F..",
    ] {
        let (status, page) = visitor.get(&berth, path).await;
        assert_eq!(status, 400, "{path}: {page}");
        assert!(page.contains("Bad request"), "{path}: {page}");
    }
    // Signed in as alice, the repository is there.
    let mut alice = Session::new();
    alice.sign_in(&berth, "alice", "alice-password-1").await;
    let (status, page) = alice.get(&berth, "/r/alice/secret").await;
    assert_eq!(status, 200, "{page}");
    let (status, _) = alice.get(&berth, "/r/alice/secret/-/tags/v1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_no_inline_script_or_style() {
    let (_ids, berth) = start();
    push_image(&client(), &berth, "public/app", "v1", 5, 2).await;
    let mut root = Session::new();
    root.sign_in(&berth, ROOT.0, ROOT.1).await;
    let mut assets = Vec::new();
    for path in [
        "/",
        "/search?q=app",
        "/r/public/app",
        "/r/public/app/-/tags/v1",
        "/r/public/app/-/access",
        "/r/public/app/-/tags/v1/delete",
        "/activity",
        "/nowhere",
    ] {
        let response = client()
            .get(berth.url(path))
            .header(COOKIE, root.cookie_header())
            .send()
            .await
            .unwrap();
        let headers = response.headers().clone();
        let page = response.text().await.unwrap();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(
            !page.contains(" style="),
            "{path}: an inline style attribute"
        );
        assert!(!page.contains("<style"), "{path}: an inline stylesheet");
        for script in page.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src=\"/static/"),
                "{path}: inline script"
            );
        }
        for link in page.split("/static/").skip(1) {
            assets.push(link[..link.find('"').unwrap()].to_string());
        }
    }
    assets.sort();
    assets.dedup();
    assert_eq!(assets.len(), 2, "one stylesheet and one script: {assets:?}");
    for asset in assets {
        let response = client()
            .get(berth.url(&format!("/static/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{asset}"
        );
    }
}

#[tokio::test]
async fn a_password_only_session_ends_when_requiremfa_comes_to_cover_its_user() {
    let ids = Identities::new();
    ids.admin(ROOT.0, ROOT.1);
    ids.user("alice", "alice-password-1");
    let berth = Berth::builder()
        .env("REGISTRY_AUTH", "berth")
        .env("BERTH_AUTH_BERTH_REQUIREMFA", "admins")
        .data(ids.path())
        .start();
    // Alice is no administrator: her password alone begins a session.
    let mut alice = Session::new();
    alice.sign_in(&berth, "alice", "alice-password-1").await;
    let (status, page) = alice.get(&berth, "/profile").await;
    assert_eq!(status, 200, "{page}");

    // Promoted (here with the CLI, a second process on the database), she is covered: the
    // session her password began no longer signs her in, and the sign-in sends her to enrol.
    // (A change made by another process reaches the server within a second.)
    berth_cli(ids.path(), &["user", "promote", "alice"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, page) = alice.get(&berth, "/profile").await;
        if status == 303 {
            break;
        }
        assert_eq!(status, 200, "{page}");
        assert!(
            std::time::Instant::now() < deadline,
            "the profile still shows after promotion: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, page) = alice.get(&berth, "/sign-in").await;
    let token = hidden_value(&page, "csrf");
    let (status, _) = alice
        .post(
            &berth,
            "/sign-in",
            &[
                ("csrf", &token),
                ("username", "alice"),
                ("password", "alice-password-1"),
                ("next", "/profile"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (status, page) = alice.get(&berth, "/sign-in/enrol").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("authenticator"), "{page}");
}

#[tokio::test]
async fn failed_sign_ins_are_throttled() {
    let (_ids, berth) = start();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let mut visitor = Session::new();
        let (_, page) = visitor.get(&berth, "/sign-in").await;
        let token = hidden_value(&page, "csrf");
        let (status, page) = visitor
            .post(
                &berth,
                "/sign-in",
                &[
                    ("csrf", &token),
                    ("username", "alice"),
                    ("password", "wrong-password"),
                ],
            )
            .await;
        if status == 401 {
            assert!(
                page.contains("Wrong user name, password or token"),
                "{page}"
            );
        }
        statuses.push(status);
        if status == 429 {
            assert!(page.contains("Too many failed sign-ins"), "{page}");
            break;
        }
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert_eq!(
        statuses.last(),
        Some(&429),
        "throttled at last: {statuses:?}"
    );
}

/// What a person or an attacker might type into a field, a query parameter or a path
/// segment (percent-encoded where they go into a URL).
fn hostile_values() -> Vec<String> {
    [
        "",
        " ",
        "\0",
        "../../etc/passwd",
        "' OR 1=1 --",
        "\"><script>alert(1)</script>",
        "-1",
        "0",
        "18446744073709551616",
        "💥",
        "\u{202e}",
        "sha256:",
        "sha256:zz",
        "**",
        "[",
        "a/b//c",
        "%",
        "NUL\r\nSet-Cookie: x=y",
    ]
    .into_iter()
    .map(str::to_string)
    .chain(["a".repeat(5000), "é".repeat(300), "9".repeat(40)])
    .collect()
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `(method, action, field names)` of every form in `page`.
fn forms(page: &str) -> Vec<(String, String, Vec<String>)> {
    let attribute = |tag: &str, name: &str| {
        let marker = format!(" {name}=\"");
        tag.find(&marker).map(|at| {
            let rest = &tag[at + marker.len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        })
    };
    page.split("<form")
        .skip(1)
        .map(|form| {
            let tag = &form[..form.find('>').unwrap()];
            let body = &form[..form.find("</form>").unwrap_or(form.len())];
            let mut names: Vec<String> = body
                .split(" name=\"")
                .skip(1)
                .map(|rest| rest[..rest.find('"').unwrap()].to_string())
                .collect();
            names.dedup();
            (
                attribute(tag, "method").unwrap_or_else(|| "get".into()),
                attribute(tag, "action").unwrap_or_default(),
                names,
            )
        })
        .collect()
}

/// Query parameter names the page's own links use.
fn link_parameters(page: &str) -> Vec<String> {
    let mut names: Vec<String> = page
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| {
            let href = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
            href.split_once('?').map(|(_, q)| q.to_string())
        })
        .flat_map(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.split('=').next().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Sends `body` (already encoded) to `path` as a form post with the session's cookies.
async fn raw_post(session: &mut Session, berth: &Berth, path: &str, body: Vec<u8>) -> u16 {
    let response = client()
        .post(berth.url(path))
        .header(COOKIE, session.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    session.keep(&response);
    let status = response.status().as_u16();
    let html = response
        .headers()
        .get("content-type")
        .is_none_or(|t| t.to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert_ne!(status, 500, "POST {path}: {page}");
    assert!(html, "POST {path}: an HTML answer, {page}");
    status
}

#[tokio::test]
async fn no_input_on_any_page_or_form_gives_a_500() {
    let (ids, berth) = start();
    ids.team("devs", &["alice"]);
    berth.cli(&["service-account", "add", "ci"]);
    ids.token("service-account:ci", "deploy", Some("public/**:pull"));
    ids.token("user:root", "laptop", None);
    push_image(&client(), &berth, "public/app", "v1", 7, 2).await;
    let mut root = Session::new();
    root.sign_in(&berth, ROOT.0, ROOT.1).await;
    let (_, image) = root.get(&berth, "/r/public/app/-/tags/v1").await;
    let digest = image
        .split("/-/manifests/")
        .nth(1)
        .map(|rest| rest[..rest.find(['"', '/']).unwrap()].to_string())
        .expect("a link to the manifest");
    let pages = [
        "/".to_string(),
        "/search".into(),
        "/activity".into(),
        "/profile".into(),
        "/admin".into(),
        "/admin/users".into(),
        "/admin/teams".into(),
        "/admin/service-accounts".into(),
        "/admin/rules".into(),
        "/admin/rules/preview".into(),
        "/admin/audit".into(),
        "/admin/storage".into(),
        "/admin/gc".into(),
        "/admin/lifecycle".into(),
        "/r/public/app".into(),
        "/r/public/app/-/tags/v1".into(),
        "/r/public/app/-/tags/v1/delete".into(),
        "/r/public/app/-/access".into(),
        format!("/r/public/app/-/manifests/{digest}"),
        format!("/r/public/app/-/manifests/{digest}/delete"),
    ];
    let values = hostile_values();
    let mut post_forms = Vec::new();
    let mut requests = 0;
    for path in &pages {
        let (status, page) = root.get(&berth, path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let mut parameters = link_parameters(&page);
        for (method, action, names) in forms(&page) {
            if method == "get" {
                parameters.extend(names);
            } else if !post_forms.iter().any(|(a, _)| *a == action) {
                post_forms.push((action, names));
            }
        }
        parameters.extend(["page", "sort", "q", "after"].map(String::from));
        parameters.sort();
        parameters.dedup();
        for parameter in &parameters {
            for value in &values {
                root.get(&berth, &format!("{path}?{parameter}={}", encode(value)))
                    .await;
                requests += 1;
            }
            // Bytes that are not UTF-8, and a lone percent sign.
            root.get(&berth, &format!("{path}?{parameter}=%FF%FE"))
                .await;
            root.get(&berth, &format!("{path}?{parameter}=%")).await;
        }
    }
    // Hostile path segments wherever a name, tag, digest or action goes.
    for template in [
        "/r/{}",
        "/r/{}/-/access",
        "/r/public/{}",
        "/r/public/app/-/{}",
        "/r/public/app/-/tags/{}",
        "/r/public/app/-/tags/{}/delete",
        "/r/public/app/-/manifests/{}",
        "/admin/{}",
        "/admin/users/{}",
        "/admin/teams/{}",
        "/profile/{}",
        "/static/{}",
        "/{}",
    ] {
        for value in &values {
            let path = template.replace("{}", &encode(value).replace('+', "%20"));
            root.get(&berth, &path).await;
            requests += 1;
        }
    }
    // Every form the pages offer, with each hostile value in every field (and the right
    // CSRF token, so that the values reach the handlers). Forms that would end this
    // session or lock root out are left out: they are tested on their own.
    let csrf = |session: &Session| {
        session
            .cookies
            .iter()
            .find(|(k, _)| k == "berth_csrf")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(post_forms.len() >= 15, "forms found: {post_forms:?}");
    for (action, names) in &post_forms {
        if action == "/sign-out"
            || action == "/profile/sessions/end-others"
            || action.starts_with("/admin/users/root/")
            || action == "/sign-in"
        {
            continue;
        }
        for value in &values {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("csrf", &csrf(&root));
            for name in names.iter().filter(|n| *n != "csrf") {
                form.append_pair(name, value);
            }
            raw_post(&mut root, &berth, action, form.finish().into_bytes()).await;
            requests += 1;
        }
        // A body that is not UTF-8, one with a bare percent sign, and one too large.
        let token = csrf(&root);
        for body in [
            format!("csrf={token}&name=%FF%FE&pattern=%C0").into_bytes(),
            format!("csrf={token}&name=%&pattern=%%").into_bytes(),
            [
                format!("csrf={token}&name=").into_bytes(),
                vec![b'a'; 80 * 1024],
            ]
            .concat(),
        ] {
            raw_post(&mut root, &berth, action, body).await;
        }
    }
    // Root's session survived all of it (no form above signs out), and the sign-in form
    // takes hostile names and passwords as wrong credentials.
    let (status, _) = root.get(&berth, "/admin").await;
    assert_eq!(status, 200);
    for value in &values {
        let mut visitor = Session::new();
        let (_, page) = visitor.get(&berth, "/sign-in").await;
        let token = hidden_value(&page, "csrf");
        let (status, _) = visitor
            .post(
                &berth,
                "/sign-in",
                &[
                    ("csrf", &token),
                    ("username", value),
                    ("password", value),
                    ("next", value),
                ],
            )
            .await;
        assert!(
            [400, 401, 429].contains(&status),
            "sign-in as {value:?}: {status}"
        );
    }
    assert!(requests > 1000, "{requests} hostile requests");
}
