//! "Forgot password": a user gives their user name or email address and always gets the
//! same answer (no account enumeration: the link is made, if at all, and mailed in the
//! background); the link carries a single-use token that expires in 30 minutes; following
//! it sets a new password, which ends the user's sessions. Offered only when mail can go out
//! (`smtp`) and berth knows its public URL (`http.host`): a link built from a request's
//! `Host` header could point anywhere. An administrator can also send a user a link from the
//! users page (its URL from `http.host`, else from the administrator's own request).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use berth_auth::admin::{Actor, AdminError, RESET_LINK_LIFETIME, ResetLink};
use http::request::Parts;
use http::{StatusCode, header};
use maud::html;

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{page, query};
use crate::mail::Mailer;
use crate::pages::access::administration;
use crate::session::{
    CSRF_FIELD, Viewer, check_sign_in_csrf, client, sign_in_cookie, sign_in_token,
};
use crate::{Shared, WebState};

/// Whether users may ask for a reset link themselves.
pub fn offered(state: &WebState) -> bool {
    state.mailer.is_some() && state.urls.public_base.is_some()
}

use crate::second_factor::anonymous;

/// A page of the reset flow, with the sign-in form's CSRF cookie.
/// `body` is given the CSRF token for its form.
fn reset_page(
    state: &WebState,
    parts: &Parts,
    title: &str,
    status: StatusCode,
    body: impl FnOnce(&str) -> maud::Markup,
) -> Response {
    let token = sign_in_token(parts);
    let body = html! { section.sign-in { h1 { (title) } (body(&token)) } };
    let mut response = (status, page(&anonymous(parts), title, None, body)).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, sign_in_cookie(state, parts, &token));
    response
}

/// GET /sign-in/forgot
pub async fn forgot_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    if !offered(&state) {
        return Err(WebError::NotFound);
    }
    Ok(forgot_form(&state, &parts))
}

fn forgot_form(state: &WebState, parts: &Parts) -> Response {
    reset_page(
        state,
        parts,
        "Forgot your password?",
        StatusCode::OK,
        |csrf| {
            html! {
                p { "Give your user name or your email address. If the account has an email address, a link to set a new password goes there." }
                form method="post" action="/sign-in/forgot" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    label for="who" { "User name or email address" }
                    input #who type="text" name="who" autocomplete="username" required autofocus maxlength="256";
                    button type="submit" { "Send the link" }
                }
            }
        },
    )
}

/// POST /sign-in/forgot: the same answer whoever is named.
pub async fn forgot(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let (Some(mailer), Some(base)) = (&state.mailer, &state.urls.public_base) else {
        return Err(WebError::NotFound);
    };
    let who = form.get("who").unwrap_or_default();
    let actor = Actor::Principal {
        subject: "anonymous".into(),
        client: client(&parts),
    };
    // Made now (a quick write), mailed in the background: the answer takes as long whether or
    // not an account matched.
    match administration(&state).password_reset_for(&actor, who).await {
        Ok(Some(link)) => send_in_background(Arc::clone(mailer), base.clone(), link),
        Ok(None) => {}
        Err(AdminError::Store(e)) => return Err(e.into()),
        Err(other) => tracing::warn!(error = %other, "a password reset link was not made"),
    }
    Ok(reset_page(
        &state,
        &parts,
        "Check your email",
        StatusCode::OK,
        |_| {
            html! {
                p role="status" #sent { "If an account with that user name or email address has an email address, a link to set a new password is on its way. It works once, for 30 minutes." }
                p { a href="/sign-in" { "Back to sign in" } }
            }
        },
    ))
}

/// The reset mail: text and HTML, with the link.
fn reset_mail(base: &str, link: &ResetLink) -> (String, String, String) {
    let url = format!(
        "{}/sign-in/reset{}",
        base.trim_end_matches('/'),
        query(&[("token", &link.token)])
    );
    let minutes = RESET_LINK_LIFETIME.as_secs() / 60;
    let subject = format!("Set a new password for {} on {base}", link.user);
    let text = format!(
        "Someone (hopefully you) asked to set a new password for the account {user} on {base}.\n\n\
         Open this link to set it (it works once, for {minutes} minutes):\n\n{url}\n\n\
         Setting a new password signs you out everywhere. If you did not ask for this, ignore this mail: your password stays as it is.\n",
        user = link.user
    );
    let html = html! {
        p { "Someone (hopefully you) asked to set a new password for the account " strong { (link.user) } " on " (base) "." }
        p { a href=(url) { "Set a new password" } " (the link works once, for " (minutes) " minutes)." }
        p { "Setting a new password signs you out everywhere. If you did not ask for this, ignore this mail: your password stays as it is." }
    }
    .into_string();
    (subject, text, html)
}

fn send_in_background(mailer: Arc<Mailer>, base: String, link: ResetLink) {
    // One message, bounded by the mailer's timeout; a failure is logged (the person who
    // asked sees the same answer either way).
    tokio::spawn(async move {
        let (subject, text, html) = reset_mail(&base, &link);
        if let Err(e) = mailer.send(&link.email, &subject, text, html).await {
            tracing::warn!(user = %link.user, error = %e, "the password reset mail was not sent");
        }
    });
}

/// GET /sign-in/reset?token=...
pub async fn reset_form_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let fields = Fields::query(&parts)?;
    let token = fields.get("token").unwrap_or_default();
    match administration(&state).reset_link_user(token).await? {
        Some(user) => Ok(reset_form(&state, &parts, &user, token, None)),
        None => Ok(link_gone(&state, &parts)),
    }
}

fn link_gone(state: &WebState, parts: &Parts) -> Response {
    reset_page(
        state,
        parts,
        "This link does not work",
        StatusCode::BAD_REQUEST,
        |_| {
            html! {
                p.failure role="alert" { "This link has expired or was used already. A link works once, for 30 minutes." }
                @if offered(state) { p { a href="/sign-in/forgot" { "Ask for a new link" } } }
            }
        },
    )
}

fn reset_form(
    state: &WebState,
    parts: &Parts,
    user: &str,
    token: &str,
    failure: Option<&str>,
) -> Response {
    let status = if failure.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    reset_page(state, parts, "Set a new password", status, |csrf| {
        html! {
            p { "For " strong #reset-user { (user) } ". Setting it signs you out everywhere." }
            @if let Some(failure) = failure { p.failure role="alert" { (failure) } }
            form method="post" action="/sign-in/reset" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="token" value=(token);
                label for="new" { "New password" }
                input #new type="password" name="password" autocomplete="new-password" required minlength="8";
                label for="again" { "New password again" }
                input #again type="password" name="again" autocomplete="new-password" required minlength="8";
                button type="submit" { "Set the password" }
            }
        }
    })
}

/// POST /sign-in/reset
pub async fn reset(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let token = form.get("token").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let admin = administration(&state);
    let Some(user) = admin.reset_link_user(token).await? else {
        return Ok(link_gone(&state, &parts));
    };
    if form.get("again") != Some(password) {
        return Ok(reset_form(
            &state,
            &parts,
            &user,
            token,
            Some("The two passwords differ."),
        ));
    }
    match admin
        .reset_password_with(token, password, client(&parts))
        .await
    {
        Ok(_) => Ok(reset_page(
            &state,
            &parts,
            "Password changed",
            StatusCode::OK,
            |_| {
                html! {
                    p role="status" #changed { "Your password was changed, and every session of yours has ended." }
                    p { a.button href="/sign-in" { "Sign in" } }
                }
            },
        )),
        Err(AdminError::Invalid(why)) => Ok(reset_form(&state, &parts, &user, token, Some(&why))),
        Err(AdminError::Conflict(_)) => Ok(link_gone(&state, &parts)),
        Err(other) => Err(other.into()),
    }
}

/// POST /admin/users/{name}/send-reset: an administrator mails a user a reset link.
pub async fn admin_send(
    state: &WebState,
    parts: &Parts,
    body: axum::body::Body,
    name: &str,
) -> PageResult {
    let form = Fields::body(body).await?;
    let viewer = Viewer::of(state, parts).await?;
    viewer.check_csrf(&form)?;
    let admin = administration(state);
    let actor = admin
        .authorize(&viewer.caller, &format!("POST {}", parts.uri.path()))
        .await?;
    let Some(mailer) = &state.mailer else {
        return Err(WebError::Refused(
            "No mail server is configured (smtp).".into(),
        ));
    };
    let link = admin.password_reset_of(&actor, name).await?;
    let base = state.urls.absolute_base(parts);
    let (subject, text, html) = reset_mail(&base, &link);
    mailer
        .send(&link.email, &subject, text, html)
        .await
        .map_err(|e| {
            tracing::warn!(user = %name, error = %e, "the password reset mail was not sent");
            WebError::Refused(format!("The mail could not be sent: {e}"))
        })?;
    Ok(axum::response::Redirect::to(&format!(
        "/admin/users{}",
        query(&[(
            "done",
            &format!("A password reset link was sent to {name}.")
        )])
    ))
    .into_response())
}
