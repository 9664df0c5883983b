//! Administration (administrators only): users, teams and their members, service accounts
//! and their tokens. Every change goes through [`berth_auth::admin::Administration`], as the
//! CLI's and the admin API's do, is audited, and drops this instance's access caches. The
//! access rules, the audit log and storage usage are in `admin_rules` and `admin_audit`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_auth::admin::{
    Actor, AdminError, Administration, CreatedToken, NewToken, NewUser, TokenInfo,
};
use berth_meta::identity::TokenOwner;
use http::Method;
use http::request::Parts;
use maud::{Markup, html};

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{page, query, size, when_stamp};
use crate::pages::access::administration;
use crate::pages::{admin_audit, admin_lifecycle, admin_remotes, admin_rules};
use crate::session::{CSRF_FIELD, Viewer};
use crate::{Shared, WebState};

/// The viewer, if an administrator whose credentials are not narrowed (else 403; signed out,
/// the sign-in page).
pub async fn administrator(state: &WebState, parts: &Parts) -> Result<Viewer, WebError> {
    let viewer = Viewer::of(state, parts).await?;
    viewer.require_user(parts.uri.path())?;
    if !viewer.is_admin() || viewer.caller.is_limited() {
        return Err(WebError::Forbidden(
            "Only administrators may manage berth.".into(),
        ));
    }
    Ok(viewer)
}

/// A form posting to `action` with the session's CSRF token.
pub fn post_form(viewer: &Viewer, action: &str, class: &str, fields: Markup) -> Markup {
    let csrf = viewer
        .user
        .as_ref()
        .map(|u| u.csrf.as_str())
        .unwrap_or_default();
    html! {
        form class=(class) method="post" action=(action) {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            (fields)
        }
    }
}

/// A one-button form (disable, promote, revoke, delete...).
pub fn button(viewer: &Viewer, action: &str, label: &str, danger: bool) -> Markup {
    post_form(
        viewer,
        action,
        "inline",
        html! { button.secondary[!danger].danger[danger] type="submit" { (label) } },
    )
}

/// The note a change leaves on the page it returns to.
pub fn done_note(fields: &Fields) -> Markup {
    html! {
        @if let Some(done) = fields.text("done") {
            p.notice role="status" { (done) }
        }
    }
}

/// Runs a change for an administrator: checks the form's CSRF token, has `Administration`
/// authorize the caller (it audits and drops the access caches itself), runs `change`, and
/// returns to `back` with what was done.
pub async fn change<F, Fut>(
    state: &WebState,
    parts: &Parts,
    body: Body,
    back: &str,
    change: F,
) -> PageResult
where
    F: FnOnce(Administration, Actor, Fields) -> Fut,
    Fut: Future<Output = Result<String, AdminError>>,
{
    let admin = administration(state);
    act(state, parts, body, back, |actor, form| {
        change(admin, actor, form)
    })
    .await
}

/// The steps of every administrator's change, whatever does it (`Administration`,
/// `Lifecycle`): the form's CSRF token checked, the caller authorized as the acting
/// administrator, `change` run, and back to `back` with what was done.
pub async fn act<F, Fut, E>(
    state: &WebState,
    parts: &Parts,
    body: Body,
    back: &str,
    change: F,
) -> PageResult
where
    F: FnOnce(Actor, Fields) -> Fut,
    Fut: Future<Output = Result<String, E>>,
    WebError: From<E>,
{
    let form = Fields::body(body).await?;
    let viewer = administrator(state, parts).await?;
    viewer.check_csrf(&form)?;
    let actor = administration(state)
        .authorize(&viewer.caller, &format!("POST {}", parts.uri.path()))
        .await?;
    let done = change(actor, form).await?;
    Ok(Redirect::to(&format!("{back}{}", query(&[("done", &done)]))).into_response())
}

fn admin_nav(current: &str) -> Markup {
    let links = [
        ("/admin", "Overview"),
        ("/admin/users", "Users"),
        ("/admin/teams", "Teams"),
        ("/admin/service-accounts", "Service accounts"),
        ("/admin/rules", "Access rules"),
        ("/admin/audit", "Audit log"),
        ("/admin/storage", "Storage"),
        ("/admin/gc", "Garbage collection"),
        ("/admin/lifecycle", "Lifecycle rules"),
        ("/admin/remotes", "Remotes"),
    ];
    html! {
        nav.pages aria-label="Administration" {
            @for (href, label) in links {
                a href=(href) aria-current=[(href == current).then_some("page")] { (label) }
            }
        }
    }
}

/// The shell of an administration page.
pub fn admin_page(viewer: &Viewer, current: &str, title: &str, body: Markup) -> Response {
    page(
        viewer,
        title,
        None,
        html! { (admin_nav(current)) h1 { (title) } (body) },
    )
    .into_response()
}

/// GET /admin
pub async fn overview(State(state): Shared, request: Request) -> PageResult {
    let state: &WebState = &state;
    let (parts, _) = request.into_parts();
    let viewer = administrator(state, &parts).await?;
    let admin = administration(state);
    let users = admin.list_users().await?;
    let teams = admin.list_teams().await?;
    let accounts = admin.list_service_accounts().await?;
    let rules = admin.list_rules().await?;
    let usage = state.registry.storage_usage(5).await?;
    let body = html! {
        dl.facts {
            dt { a href="/admin/users" { "Users" } } dd { (users.len()) " (" (users.iter().filter(|u| u.admin).count()) " administrators)" }
            dt { a href="/admin/teams" { "Teams" } } dd { (teams.len()) }
            dt { a href="/admin/service-accounts" { "Service accounts" } } dd { (accounts.len()) }
            dt { a href="/admin/rules" { "Access rules" } } dd { (rules.len()) }
            dt { a href="/admin/storage" { "Stored blobs" } } dd { (usage.total.blobs) ", " (size(usage.total.bytes)) }
        }
    };
    Ok(admin_page(&viewer, "/admin", "Administration", body))
}

/// Everything under `/admin/`.
pub async fn dispatch(State(state): Shared, request: Request) -> PageResult {
    let state: &WebState = &state;
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().trim_start_matches("/admin/").to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    if !get && parts.method != Method::POST {
        return Err(WebError::MethodNotAllowed);
    }
    match (segments.as_slice(), get) {
        (["users"], true) => users_page(state, &parts).await,
        (["users"], false) => create_user(state, &parts, body).await,
        (["users", name, "send-reset"], false) => {
            crate::password_reset::admin_send(state, &parts, body, name).await
        }
        (["users", name, action], false) => user_action(state, &parts, body, name, action).await,
        (["teams"], true) => teams_page(state, &parts).await,
        (["teams"], false) => {
            change(
                state,
                &parts,
                body,
                "/admin/teams",
                |admin, actor, form| async move {
                    let team = admin
                        .create_team(&actor, form.text("name").unwrap_or_default())
                        .await?;
                    Ok(format!("Team {} created.", team.name))
                },
            )
            .await
        }
        (["teams", team, action], false) => team_action(state, &parts, body, team, action).await,
        (["service-accounts"], true) => accounts_page(state, &parts).await,
        (["service-accounts"], false) => {
            change(
                state,
                &parts,
                body,
                "/admin/service-accounts",
                |admin, actor, form| async move {
                    let account = admin
                        .create_service_account(
                            &actor,
                            form.text("name").unwrap_or_default(),
                            form.get("description").unwrap_or_default().trim(),
                        )
                        .await?;
                    Ok(format!("Service account {} created.", account.name))
                },
            )
            .await
        }
        (["service-accounts", name, "tokens"], false) => {
            let owner = TokenOwner::ServiceAccount(name.to_string());
            create_token(state, &parts, body, owner, "/admin/service-accounts").await
        }
        (["service-accounts", name, action], false) => {
            account_action(state, &parts, body, name, action).await
        }
        (["tokens", id, "revoke"], false) => {
            change(
                state,
                &parts,
                body,
                "/admin/service-accounts",
                |admin, actor, _| async move {
                    let token = admin.revoke_token(&actor, id).await?;
                    Ok(format!("Token {} ({}) revoked.", token.name, token.id))
                },
            )
            .await
        }
        (["rules"], true) => admin_rules::rules_page(state, &parts).await,
        (["rules"], false) => admin_rules::add_rule(state, &parts, body).await,
        (["rules", "preview"], true) => admin_rules::preview(state, &parts).await,
        (["rules", id, "delete"], false) => admin_rules::remove_rule(state, &parts, body, id).await,
        (["audit"], true) => admin_audit::audit_page(state, &parts).await,
        (["audit.csv"], true) => admin_audit::audit_csv(state, &parts).await,
        (["storage"], true) => admin_audit::storage_page(state, &parts).await,
        (["gc"], true) => admin_lifecycle::gc_page(state, &parts).await,
        (["lifecycle"], true) => admin_lifecycle::rules_page(state, &parts).await,
        (["remotes"], true) => admin_remotes::page(state, &parts).await,
        (["remotes" | "virtuals", ..], false) => {
            admin_remotes::post(state, &parts, body, &segments).await
        }
        (["gc" | "quotas" | "retention" | "immutable-tags", ..], false) => {
            admin_lifecycle::post(state, &parts, body, &segments).await
        }
        _ => Err(WebError::NotFound),
    }
}

async fn users_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let users = administration(state).list_users().await?;
    let body = html! {
        (done_note(&fields))
        div.table-wrap {
            table {
                thead { tr { th { "User" } th { "Email" } th { "Teams" } th { "Role" } th { "Since" } th { span.skip { "Actions" } } } }
                tbody {
                    @for user in &users {
                        @let base = format!("/admin/users/{}", user.name);
                        tr {
                            td { (user.name) @if user.disabled { " " span.badge { "disabled" } } }
                            td { (user.email.as_deref().unwrap_or("")) }
                            td { (user.teams.join(", ")) }
                            td { @if user.admin { "administrator" } @else { "user" } }
                            td { (when_stamp(&user.created_at)) }
                            td {
                                @if user.disabled { (button(&viewer, &format!("{base}/enable"), "Enable", false)) }
                                @else { (button(&viewer, &format!("{base}/disable"), "Disable", false)) }
                                " "
                                @if user.admin { (button(&viewer, &format!("{base}/demote"), "Demote", false)) }
                                @else { (button(&viewer, &format!("{base}/promote"), "Promote", false)) }
                                " "
                                (button(&viewer, &format!("{base}/delete"), "Delete", true))
                                details {
                                    summary { "Reset password" }
                                    (post_form(&viewer, &format!("{base}/password"), "row", html! {
                                        label { "New password" input type="password" name="password" autocomplete="new-password" required minlength="8"; }
                                        button type="submit" { "Set password" }
                                    }))
                                    @if state.mailer.is_some() && user.email.is_some() {
                                        (button(&viewer, &format!("{base}/send-reset"), "Email a reset link", false))
                                    }
                                }
                                details {
                                    summary { "Reset second factors" }
                                    p.muted { "For a lost authenticator or passkey: removes the user's authenticator app, recovery codes and passkeys." }
                                    (button(&viewer, &format!("{base}/reset-second-factors"), "Reset second factors", true))
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add a user" }
        (post_form(&viewer, "/admin/users", "row", html! {
            label { "Name" input type="text" name="name" required; }
            label { "Email" input type="email" name="email"; }
            label { "Password" input type="password" name="password" autocomplete="new-password" minlength="8"; }
            label { input type="checkbox" name="admin" value="1"; " administrator" }
            button type="submit" { "Add user" }
        }))
        p.muted { "Without a password the user signs in with access tokens only." }
    };
    Ok(admin_page(&viewer, "/admin/users", "Users", body))
}

async fn create_user(state: &WebState, parts: &Parts, body: Body) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/users",
        |admin, actor, form| async move {
            let user = admin
                .create_user(
                    &actor,
                    NewUser {
                        name: form.text("name").unwrap_or_default().to_string(),
                        password: form
                            .get("password")
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned),
                        email: form.text("email").map(str::to_owned),
                        admin: form.flag("admin"),
                    },
                )
                .await?;
            Ok(format!("User {} added.", user.name))
        },
    )
    .await
}

async fn user_action(
    state: &WebState,
    parts: &Parts,
    body: Body,
    name: &str,
    action: &str,
) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/users",
        |admin, actor, form| async move {
            match action {
                "disable" => admin
                    .set_user_disabled(&actor, name, true)
                    .await
                    .map(|_| format!("{name} disabled.")),
                "enable" => admin
                    .set_user_disabled(&actor, name, false)
                    .await
                    .map(|_| format!("{name} enabled.")),
                "promote" => admin
                    .set_user_admin(&actor, name, true)
                    .await
                    .map(|_| format!("{name} is an administrator.")),
                "demote" => admin
                    .set_user_admin(&actor, name, false)
                    .await
                    .map(|_| format!("{name} is no longer an administrator.")),
                "delete" => admin
                    .delete_user(&actor, name)
                    .await
                    .map(|_| format!("{name} deleted.")),
                "password" => admin
                    .set_password(&actor, name, form.get("password").unwrap_or_default())
                    .await
                    .map(|_| format!("{name}'s password was set; their sessions ended.")),
                "reset-second-factors" => admin
                    .reset_second_factors(&actor, name)
                    .await
                    .map(|_| format!("{name}'s second factors were reset.")),
                _ => Err(AdminError::NotFound(format!("no action {action:?}"))),
            }
        },
    )
    .await
}

async fn teams_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let teams = administration(state).list_teams().await?;
    let body = html! {
        (done_note(&fields))
        @for team in &teams {
            @let base = format!("/admin/teams/{}", team.name);
            section.panel {
                h2 { (team.name) }
                p {
                    @if team.members.is_empty() { span.muted { "No members." } }
                    @for member in &team.members {
                        (member) " "
                        (post_form(&viewer, &format!("{base}/remove-member"), "inline", html! {
                            input type="hidden" name="user" value=(member);
                            button.secondary type="submit" aria-label={ "Remove " (member) } { "×" }
                        }))
                        " "
                    }
                }
                (post_form(&viewer, &format!("{base}/add-member"), "row", html! {
                    label { "User" input type="text" name="user" required; }
                    button type="submit" { "Add member" }
                }))
                p { (button(&viewer, &format!("{base}/delete"), "Delete team", true)) }
            }
        }
        h2 { "Add a team" }
        (post_form(&viewer, "/admin/teams", "row", html! {
            label { "Name" input type="text" name="name" required; }
            button type="submit" { "Add team" }
        }))
    };
    Ok(admin_page(&viewer, "/admin/teams", "Teams", body))
}

async fn team_action(
    state: &WebState,
    parts: &Parts,
    body: Body,
    team: &str,
    action: &str,
) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/teams",
        |admin, actor, form| async move {
            let user = form.text("user").unwrap_or_default();
            match action {
                "add-member" => admin
                    .add_team_member(&actor, team, user)
                    .await
                    .map(|_| format!("{user} joined {team}.")),
                "remove-member" => admin
                    .remove_team_member(&actor, team, user)
                    .await
                    .map(|_| format!("{user} left {team}.")),
                "delete" => admin
                    .delete_team(&actor, team)
                    .await
                    .map(|_| format!("Team {team} deleted.")),
                _ => Err(AdminError::NotFound(format!("no action {action:?}"))),
            }
        },
    )
    .await
}

/// Tokens with their limits, expiry and last use, each with a revoke button.
pub fn tokens_table(viewer: &Viewer, tokens: &[TokenInfo]) -> Markup {
    html! {
        @if tokens.is_empty() {
            p.muted { "No tokens." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "Id" } th { "Limits" } th { "Expires" } th { "Last used" } th { span.skip { "Actions" } } } }
                    tbody {
                        @for token in tokens {
                            tr {
                                td { (token.name) }
                                td { code { (token.id) } }
                                td {
                                    @if token.scopes.is_empty() { span.muted { "whatever its owner may do" } }
                                    @for scope in &token.scopes { code { (scope.pattern) ":" (scope.actions) } " " }
                                }
                                td { @if let Some(at) = &token.expires_at { (when_stamp(at)) } @else { "never" } }
                                td { @if let Some(at) = &token.last_used_at { (when_stamp(at)) } @else { "never" } }
                                td {
                                    @if let Some(at) = &token.revoked_at { "revoked " (when_stamp(at)) }
                                    @else { (button(viewer, &format!("{}/tokens/{}/revoke", token_base(viewer, token), token.id), "Revoke", true)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where a token's revoke form posts: an administrator's page, or the user's own profile.
fn token_base(viewer: &Viewer, token: &TokenInfo) -> &'static str {
    let own = viewer
        .user
        .as_ref()
        .is_some_and(|u| token.owner == format!("user:{}", u.name));
    if own { "/profile" } else { "/admin" }
}

/// The form creating an access token (for a service account here, or the user's own).
pub fn token_form(viewer: &Viewer, action: &str) -> Markup {
    post_form(
        viewer,
        action,
        "row",
        html! {
            label { "Name" input type="text" name="name" required placeholder="ci"; }
            label { "Limit to pattern" input type="text" name="pattern" placeholder="team/** (optional)"; }
            label { "Actions"
                select name="actions" {
                    option value="pull" { "pull" }
                    option value="pull,push" { "pull, push" }
                    option value="pull,push,delete" { "pull, push, delete" }
                }
            }
            label { "Expires in" input type="text" name="expires" placeholder="90d (optional)"; }
            button type="submit" { "Create token" }
        },
    )
}

async fn accounts_page(state: &WebState, parts: &Parts) -> PageResult {
    let viewer = administrator(state, parts).await?;
    let fields = Fields::query(parts)?;
    let admin = administration(state);
    let accounts = admin.list_service_accounts().await?;
    let mut sections = Vec::new();
    for account in &accounts {
        let tokens = admin
            .list_tokens(Some(&TokenOwner::ServiceAccount(account.name.clone())))
            .await?;
        sections.push((account, tokens));
    }
    let body = html! {
        (done_note(&fields))
        @for (account, tokens) in &sections {
            @let base = format!("/admin/service-accounts/{}", account.name);
            section.panel {
                h2 { (account.name) @if account.disabled { " " span.badge { "disabled" } } }
                @if !account.description.is_empty() { p.muted { (account.description) } }
                (tokens_table(&viewer, tokens))
                details {
                    summary { "New token" }
                    (token_form(&viewer, &format!("{base}/tokens")))
                }
                p {
                    @if account.disabled { (button(&viewer, &format!("{base}/enable"), "Enable", false)) }
                    @else { (button(&viewer, &format!("{base}/disable"), "Disable", false)) }
                    " " (button(&viewer, &format!("{base}/delete"), "Delete", true))
                }
            }
        }
        h2 { "Add a service account" }
        (post_form(&viewer, "/admin/service-accounts", "row", html! {
            label { "Name" input type="text" name="name" required; }
            label { "Description" input type="text" name="description"; }
            button type="submit" { "Add service account" }
        }))
    };
    Ok(admin_page(
        &viewer,
        "/admin/service-accounts",
        "Service accounts",
        body,
    ))
}

async fn account_action(
    state: &WebState,
    parts: &Parts,
    body: Body,
    name: &str,
    action: &str,
) -> PageResult {
    change(
        state,
        parts,
        body,
        "/admin/service-accounts",
        |admin, actor, _| async move {
            match action {
                "disable" => admin
                    .set_service_account_disabled(&actor, name, true)
                    .await
                    .map(|_| format!("{name} disabled.")),
                "enable" => admin
                    .set_service_account_disabled(&actor, name, false)
                    .await
                    .map(|_| format!("{name} enabled.")),
                "delete" => admin
                    .delete_service_account(&actor, name)
                    .await
                    .map(|_| format!("{name} deleted.")),
                _ => Err(AdminError::NotFound(format!("no action {action:?}"))),
            }
        },
    )
    .await
}

/// The token a form asks for.
pub fn new_token(owner: TokenOwner, form: &Fields) -> Result<NewToken, AdminError> {
    let expires_in = match form.text("expires") {
        None => None,
        Some(text) => Some(humantime::parse_duration(text).map_err(|e| {
            AdminError::Invalid(format!(
                "invalid expiry {text:?}: {e} (for example 90d or 720h)"
            ))
        })?),
    };
    let scopes = match form.text("pattern") {
        None => Vec::new(),
        Some(pattern) => vec![(
            pattern.to_string(),
            form.text("actions").unwrap_or("pull").to_string(),
        )],
    };
    Ok(NewToken {
        owner,
        name: form.text("name").unwrap_or_default().to_string(),
        scopes,
        expires_in,
    })
}

/// A token just created: its secret, shown this once.
pub fn created_token_page(viewer: &Viewer, back: &str, created: &CreatedToken) -> Response {
    let body = html! {
        h1 { "Token " (created.info.name) " created" }
        section.panel {
            p { "Copy the secret now: it is not shown again." }
            div.pull {
                code #secret { (created.secret) }
                (crate::layout::copy_button(&created.secret, "Copy the token"))
            }
            p { "Use it as the password: " code { "podman login -u " (created.info.owner.split_once(':').map_or("", |(_, n)| n)) " --password-stdin" } }
        }
        p { a href=(back) { "Back" } }
    };
    page(viewer, "Token created", None, body).into_response()
}

/// POST: creates a token for `owner` and shows its secret once.
pub async fn create_token(
    state: &WebState,
    parts: &Parts,
    body: Body,
    owner: TokenOwner,
    back: &str,
) -> PageResult {
    let form = Fields::body(body).await?;
    let viewer = match &owner {
        TokenOwner::User(name) => {
            let viewer = Viewer::of(state, parts).await?;
            let user = viewer.require_user(parts.uri.path())?;
            if &user.name != name {
                return Err(WebError::Forbidden("Only your own tokens here.".into()));
            }
            viewer
        }
        TokenOwner::ServiceAccount(_) => administrator(state, parts).await?,
    };
    viewer.check_csrf(&form)?;
    let admin = administration(state);
    let actor = match &owner {
        // Users make their own tokens; Administration records who did.
        TokenOwner::User(name) => Actor::Principal {
            subject: format!("user:{name}"),
            client: viewer.caller.client,
        },
        TokenOwner::ServiceAccount(_) => {
            admin
                .authorize(&viewer.caller, &format!("POST {}", parts.uri.path()))
                .await?
        }
    };
    let created = admin.create_token(&actor, new_token(owner, &form)?).await;
    let created = created?;
    Ok(created_token_page(&viewer, back, &created))
}
