//! A user's own profile: their teams and rights, changing their password (which ends their
//! other sessions), personal access tokens (created with limits and an expiry, the secret
//! shown once; revoked), and the user's sessions (where and when each was used; signing one
//! out, or every other one).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect};
use berth_auth::AuthFailure;
use berth_auth::admin::{Actor, SessionInfo};
use berth_auth::service::SignInMethod;
use berth_meta::identity::TokenOwner;
use http::Method;
use http::request::Parts;
use maud::{Markup, html};

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{page, query, when_stamp};
use crate::pages::access::administration;
use crate::pages::admin::{button, create_token, done_note, post_form, token_form, tokens_table};
use crate::session::{Viewer, client, set_session_cookies, user_agent};
use crate::{Shared, WebState};

/// A user acting on their own account (recorded as such by `Administration`).
pub(crate) fn own_actor(viewer: &Viewer, name: &str) -> Actor {
    Actor::Principal {
        subject: format!("user:{name}"),
        client: viewer.caller.client,
    }
}

/// GET /profile
pub async fn profile(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let viewer = Viewer::of(&state, &parts).await?;
    let user = viewer.require_user("/profile")?;
    let fields = Fields::query(&parts)?;
    let admin = administration(&state);
    let info = admin.user(&user.name).await?;
    let tokens: Vec<_> = admin
        .list_tokens(Some(&TokenOwner::User(user.name.clone())))
        .await?
        .into_iter()
        .filter(|t| t.kind == "access")
        .collect();
    let sessions = admin.sessions(&user.name).await?;
    let second_factor = crate::second_factor::profile_summary(&state, &user.name).await?;
    let passkeys = crate::passkeys::profile_summary(&state, &user.name).await?;
    let body = html! {
        h1 { (user.name) }
        (done_note(&fields))
        section.panel {
            dl.facts {
                dt { "Role" } dd { @if info.admin { "administrator" } @else { "user" } }
                dt { "Email" } dd { (info.email.as_deref().unwrap_or("none")) }
                dt { "Teams" } dd { @if info.teams.is_empty() { span.muted { "none" } } (info.teams.join(", ")) }
                dt { "Since" } dd { (when_stamp(&info.created_at)) }
            }
        }
        h2 { "Password" }
        (post_form(&viewer, "/profile/password", "stack", html! {
            label for="current" { "Current password" }
            input #current type="password" name="current" autocomplete="current-password" required;
            label for="new" { "New password" }
            input #new type="password" name="password" autocomplete="new-password" required minlength="8";
            label for="again" { "New password again" }
            input #again type="password" name="again" autocomplete="new-password" required minlength="8";
            button type="submit" { "Change password" }
        }))
        (second_factor)
        (passkeys)
        h2 { "Personal access tokens" }
        p.muted { "Use a token instead of your password with " code { "podman login" } ", in CI and scripts." }
        (tokens_table(&viewer, &tokens))
        (token_form(&viewer, "/profile/tokens"))
        h2 #sessions { "Sessions" }
        p { "Where you are signed in to this dashboard. Signed in elsewhere, or on a shared computer? Sign that session out." }
        (sessions_table(&viewer, &sessions))
        @if sessions.len() > 1 {
            (button(&viewer, "/profile/sessions/end-others", "Sign out everywhere else", true))
        }
    };
    Ok(page(&viewer, "Profile", None, body).into_response())
}

fn sessions_table(viewer: &Viewer, sessions: &[SessionInfo]) -> Markup {
    html! {
        div.table-wrap {
            table.sessions {
                thead { tr { th { "Begun" } th { "Last seen" } th { "Address" } th { "Browser" } th { span.skip { "Actions" } } } }
                tbody {
                    @for session in sessions {
                        @let this = viewer.session_id.as_deref() == Some(session.id.as_str());
                        tr {
                            td { (when_stamp(&session.created_at)) }
                            td { @if let Some(at) = &session.last_seen_at { (when_stamp(at)) } @else { "never" } }
                            td { code { (session.client) } }
                            td.agent { (session.user_agent.as_deref().unwrap_or("not recorded")) }
                            td {
                                @if this { strong { "this browser" } }
                                @else { (button(viewer, &format!("/profile/sessions/{}/end", session.id), "Sign out", true)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// POST under /profile/.
pub async fn dispatch(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(WebError::MethodNotAllowed);
    }
    let path = parts.uri.path().trim_start_matches("/profile/").to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let viewer = Viewer::of(&state, &parts).await?;
    let name = viewer.require_user("/profile")?.name.clone();
    match segments.as_slice() {
        ["password"] => change_password(&state, &parts, body, &viewer, &name).await,
        ["tokens"] => create_token(&state, &parts, body, TokenOwner::User(name), "/profile").await,
        ["tokens", id, "revoke"] => revoke(&state, body, &viewer, &name, id).await,
        ["sessions", "end-others"] => end_others(&state, &parts, body, &viewer, &name).await,
        ["sessions", id, "end"] => end_one(&state, body, &viewer, &name, id).await,
        _ => Err(WebError::NotFound),
    }
}

/// Ends every session of the user and begins a new one for this browser.
async fn fresh_session(state: &WebState, parts: &Parts, viewer: &Viewer, done: &str) -> PageResult {
    let session = state
        .access
        .begin_session_with(
            &viewer.caller,
            &SignInMethod {
                description: "renewed after signing out elsewhere".into(),
                second_factor: viewer.session_second_factor,
            },
            user_agent(parts),
        )
        .await?;
    let mut response =
        Redirect::to(&format!("/profile{}", query(&[("done", done)]))).into_response();
    set_session_cookies(state, parts, &mut response, &session);
    Ok(response)
}

async fn change_password(
    state: &WebState,
    parts: &Parts,
    body: Body,
    viewer: &Viewer,
    name: &str,
) -> PageResult {
    let form = Fields::body(body).await?;
    viewer.check_csrf(&form)?;
    let password = form.get("password").unwrap_or_default();
    if form.get("again") != Some(password) {
        return Err(WebError::bad_request("The new passwords differ."));
    }
    match state
        .access
        .first_factor(name, form.get("current").unwrap_or_default(), client(parts))
        .await
    {
        Ok(_) => {}
        Err(AuthFailure::Invalid(_)) => {
            return Err(WebError::Forbidden("The current password is wrong.".into()));
        }
        Err(other) => return Err(other.into()),
    }
    // Setting the password ends every session of the user, this one included.
    administration(state)
        .set_password(&own_actor(viewer, name), name, password)
        .await?;
    fresh_session(
        state,
        parts,
        viewer,
        "Password changed; your other sessions ended.",
    )
    .await
}

async fn revoke(state: &WebState, body: Body, viewer: &Viewer, name: &str, id: &str) -> PageResult {
    let form = Fields::body(body).await?;
    viewer.check_csrf(&form)?;
    let admin = administration(state);
    let token = admin.token(id).await?;
    if token.owner != format!("user:{name}") {
        return Err(WebError::NotFound);
    }
    admin.revoke_token(&own_actor(viewer, name), id).await?;
    Ok(Redirect::to(&format!(
        "/profile{}",
        query(&[("done", &format!("Token {} revoked.", token.name))])
    ))
    .into_response())
}

async fn end_one(
    state: &WebState,
    body: Body,
    viewer: &Viewer,
    name: &str,
    id: &str,
) -> PageResult {
    let form = Fields::body(body).await?;
    viewer.check_csrf(&form)?;
    if viewer.session_id.as_deref() == Some(id) {
        return Err(WebError::bad_request(
            "That is this browser's session: use Sign out.",
        ));
    }
    administration(state)
        .end_session(&own_actor(viewer, name), name, id)
        .await?;
    Ok(Redirect::to(&format!(
        "/profile{}#sessions",
        query(&[("done", "That session is signed out.")])
    ))
    .into_response())
}

async fn end_others(
    state: &WebState,
    parts: &Parts,
    body: Body,
    viewer: &Viewer,
    name: &str,
) -> PageResult {
    let form = Fields::body(body).await?;
    viewer.check_csrf(&form)?;
    administration(state)
        .end_sessions(&own_actor(viewer, name), name)
        .await?;
    fresh_session(
        state,
        parts,
        viewer,
        "Every other session of yours has ended.",
    )
    .await
}
