//! Passkeys in the dashboard: "Sign in with a passkey" (no password: a discoverable passkey
//! names its user), a passkey as the second step after a password, registering one instead
//! of an authenticator app when a second factor is required, and the profile's passkeys
//! (register and name one, see when each was made and last used, remove one).
//!
//! Each ceremony is a form that the passkey script (`assets/passkey.js`, the only script
//! these pages need; linked from the forms that use it) turns into two requests: it posts the
//! form's fields to an `…/options` URL, which begins the ceremony on the server (its state in
//! the database, named by the HttpOnly `berth_passkey` cookie) and answers with the options
//! for `navigator.credentials`; then it puts the browser's answer in the form's `credential`
//! field and submits the form, whose handler checks the answer and answers with a page.
//! Without script the form posts no answer and the page says that passkeys need JavaScript.
//! Forms carry the CSRF token of their page (the sign-in form's before a session exists).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use berth_auth::admin::{AdminError, PasskeyInfo};
use berth_auth::passkey::{CEREMONY_LIFETIME, MAX_NAME_LENGTH};
use berth_auth::service::{BegunCeremony, PasskeyFailure};
use berth_meta::second_factors::ChallengePurpose;
use http::request::Parts;
use http::{Method, StatusCode, header};
use maud::{Markup, html};

use crate::assets::PASSKEY_SCRIPT;
use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{page, query, when_stamp};
use crate::pages::access::administration;
use crate::pages::admin::{button, done_note};
use crate::pages::profile::own_actor;
use crate::second_factor::{Factors, code_form, pending, sign_in_enrolment, signed_in};
use crate::session::{
    CSRF_FIELD, SIGN_IN_COOKIE, Viewer, check_sign_in_csrf, client, cookie, safe_next, set_cookie,
    set_session_cookies, sign_in_form, sign_in_token, user_agent,
};
use crate::{Shared, WebState};

/// The cookie naming the passkey ceremony in progress.
pub const CEREMONY_COOKIE: &str = "berth_passkey";

/// What a form posted without an answer (script off) is told.
const NEEDS_SCRIPT: &str =
    "Passkeys need JavaScript: turn it on for this site, or sign in another way.";

/// The passkey routes.
pub(crate) fn routes() -> Router<Arc<WebState>> {
    Router::new()
        .route("/sign-in/passkey/options", post(sign_in_options))
        .route("/sign-in/passkey", post(sign_in))
        .route("/sign-in/code/passkey/options", post(second_step_options))
        .route("/sign-in/code/passkey", post(second_step))
        .route("/sign-in/enrol/passkey/options", post(enrol_options))
        .route("/sign-in/enrol/passkey", post(enrol))
        .route("/profile/passkeys", get(profile_page))
        .route("/profile/passkeys/{*action}", post(profile_action))
}

/// Whether passkeys are on.
pub(crate) fn enabled(state: &WebState) -> bool {
    state.access.passkeys().is_some()
}

/// A ceremony's options for the script, with the cookie that names its state.
fn options_response(state: &WebState, parts: &Parts, begun: BegunCeremony) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        begun.options.to_string(),
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            parts,
            CEREMONY_COOKIE,
            Some(&begun.cookie),
            CEREMONY_LIFETIME.as_secs(),
        ),
    );
    response
}

/// Removes the ceremony's cookie (it was used) from `response`.
fn forget_ceremony(state: &WebState, parts: &Parts, response: &mut Response) {
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, parts, CEREMONY_COOKIE, None, 0),
    );
}

/// The answer the script put in the form, if any.
fn answer(form: &Fields) -> Option<&str> {
    form.text("credential")
}

/// A form that runs a passkey ceremony: `kind` is `create` or `get`.
fn ceremony_form(
    kind: &str,
    action: &str,
    csrf: &str,
    fields: Markup,
    button_label: &str,
) -> Markup {
    html! {
        form.stack.passkey method="post" action=(action) data-passkey=(kind)
            data-options={ (action) "/options" } {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="credential" value="";
            (fields)
            button type="submit" { (button_label) }
            p.passkey-status.muted role="status" aria-live="polite" {}
        }
        noscript { p.muted { "Passkeys need JavaScript." } }
        script src={ "/static/" (PASSKEY_SCRIPT.name) } defer {}
    }
}

/// The sign-in page's passkey block (nothing when passkeys are off).
pub(crate) fn sign_in_block(state: &WebState, csrf: &str, next: Option<&str>) -> Markup {
    if !enabled(state) {
        return html! {};
    }
    html! {
        section #passkey-sign-in {
            h2 { "Or use a passkey" }
            p.muted { "No password needed: your device asks for its PIN, fingerprint or face." }
            (ceremony_form("get", "/sign-in/passkey", csrf, html! {
                input type="hidden" name="next" value=(safe_next(next));
            }, "Sign in with a passkey"))
        }
    }
}

/// POST /sign-in/passkey/options: begins a passwordless sign-in.
async fn sign_in_options(State(state): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let begun = async {
        let form = Fields::body(body).await?;
        check_sign_in_csrf(&parts, &form)?;
        Ok::<_, WebError>(state.access.begin_passwordless(client(&parts)).await?)
    }
    .await;
    match begun {
        Ok(begun) => options_response(&state, &parts, begun),
        Err(e) => e.into_json(),
    }
}

/// POST /sign-in/passkey: a passwordless sign-in's answer.
async fn sign_in(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let next = form.get("next");
    let anonymous = crate::second_factor::anonymous(&parts);
    let refused = |why: &str| {
        let mut response = sign_in_form(
            &state,
            &parts,
            &anonymous,
            next,
            Some(why),
            StatusCode::UNAUTHORIZED,
        );
        forget_ceremony(&state, &parts, &mut response);
        response
    };
    let Some(answer) = answer(&form) else {
        return Ok(refused(NEEDS_SCRIPT));
    };
    let (caller, how) = match state
        .access
        .finish_passwordless(cookie(&parts, CEREMONY_COOKIE), answer, client(&parts))
        .await
    {
        Ok(found) => found,
        Err(PasskeyFailure::Refused(why)) => {
            return Ok(refused(&format!("The passkey was not accepted: {why}.")));
        }
        Err(other) => return Err(other.into()),
    };
    let session = state
        .access
        .begin_session_with(&caller, &how, user_agent(&parts))
        .await?;
    let mut response = Redirect::to(&safe_next(next)).into_response();
    set_session_cookies(&state, &parts, &mut response, &session);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, &parts, SIGN_IN_COOKIE, None, 0),
    );
    forget_ceremony(&state, &parts, &mut response);
    Ok(response)
}

/// The second step's passkey block.
pub(crate) fn second_step_block(parts: &Parts, next: Option<&str>) -> Markup {
    html! {
        section #passkey-second-step {
            h2 { "Use your passkey" }
            (ceremony_form("get", "/sign-in/code/passkey", &sign_in_token(parts), html! {
                input type="hidden" name="next" value=(safe_next(next));
            }, "Use a passkey"))
        }
    }
}

/// POST /sign-in/code/passkey/options: begins the second step with one of the user's passkeys.
async fn second_step_options(State(state): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let begun = async {
        let form = Fields::body(body).await?;
        check_sign_in_csrf(&parts, &form)?;
        let Ok((_, pending)) = pending(&state, &parts, ChallengePurpose::Code).await? else {
            return Err(WebError::Forbidden(
                "the sign-in has expired; sign in again".into(),
            ));
        };
        Ok(state
            .access
            .begin_passkey_second_factor(&pending.user)
            .await?)
    }
    .await;
    match begun {
        Ok(begun) => options_response(&state, &parts, begun),
        Err(e) => e.into_json(),
    }
}

/// POST /sign-in/code/passkey: the second step's answer.
async fn second_step(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let next = form.get("next");
    let (challenge, pending) = match pending(&state, &parts, ChallengePurpose::Code).await? {
        Ok(found) => found,
        Err(restart) => return Ok(restart),
    };
    let factors = Factors::of(&state, &pending.user).await?;
    let refused = |why: &str| {
        let mut response = code_form(&parts, next, Some(why), StatusCode::UNAUTHORIZED, factors);
        forget_ceremony(&state, &parts, &mut response);
        response
    };
    let Some(answer) = answer(&form) else {
        return Ok(refused(NEEDS_SCRIPT));
    };
    let factor = match state
        .access
        .verify_passkey_second_factor(
            &pending.user,
            cookie(&parts, CEREMONY_COOKIE),
            answer,
            client(&parts),
        )
        .await
    {
        Ok(factor) => factor,
        Err(PasskeyFailure::Refused(why)) => {
            return Ok(refused(&format!("The passkey was not accepted: {why}.")));
        }
        Err(other) => return Err(other.into()),
    };
    let how = format!("{} + {}", pending.method, factor.as_str());
    let mut response = signed_in(&state, &parts, &challenge, &how, |_| {
        Redirect::to(&safe_next(next)).into_response()
    })
    .await?;
    forget_ceremony(&state, &parts, &mut response);
    Ok(response)
}

/// The fields naming a new passkey.
fn name_field() -> Markup {
    html! {
        label for="passkey-name" { "Name of the passkey" }
        input #passkey-name type="text" name="name" required maxlength=(MAX_NAME_LENGTH)
            placeholder="e.g. laptop, YubiKey, phone" spellcheck="false";
    }
}

/// The enrolment page's passkey block: register a passkey instead of an authenticator app.
pub(crate) fn enrol_block(state: &WebState, parts: &Parts, next: Option<&str>) -> Markup {
    if !enabled(state) {
        return html! {};
    }
    html! {
        section.panel #passkey-enrol {
            h2 { "Or register a passkey" }
            p { "A passkey on this device (or a security key such as a YubiKey) signs you in with its PIN, fingerprint or face, with or without your password." }
            (ceremony_form("create", "/sign-in/enrol/passkey", &sign_in_token(parts), html! {
                input type="hidden" name="next" value=(safe_next(next));
                (name_field())
            }, "Register a passkey and sign in"))
        }
    }
}

/// POST /sign-in/enrol/passkey/options: a user who must have a second factor registers a
/// passkey right after the password.
async fn enrol_options(State(state): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let begun = async {
        let form = Fields::body(body).await?;
        check_sign_in_csrf(&parts, &form)?;
        let Ok((_, pending)) = pending(&state, &parts, ChallengePurpose::Enrol).await? else {
            return Err(WebError::Forbidden(
                "the sign-in has expired; sign in again".into(),
            ));
        };
        Ok(state
            .access
            .begin_passkey_registration(&pending.user)
            .await?)
    }
    .await;
    match begun {
        Ok(begun) => options_response(&state, &parts, begun),
        Err(e) => e.into_json(),
    }
}

/// POST /sign-in/enrol/passkey: the new passkey; the session follows it.
async fn enrol(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let next = safe_next(form.get("next"));
    let (challenge, pending) = match pending(&state, &parts, ChallengePurpose::Enrol).await? {
        Ok(found) => found,
        Err(restart) => return Ok(restart),
    };
    let Some(answer) = answer(&form) else {
        return sign_in_enrolment(
            &state,
            &parts,
            &pending.user,
            Some(&next),
            Some(NEEDS_SCRIPT),
        )
        .await;
    };
    let actor = berth_auth::admin::Actor::Principal {
        subject: format!("user:{}", pending.user),
        client: client(&parts),
    };
    let registered = administration(&state)
        .register_passkey(
            &actor,
            &pending.user,
            form.get("name").unwrap_or_default(),
            cookie(&parts, CEREMONY_COOKIE),
            answer,
        )
        .await;
    match registered {
        Ok(passkey) => {
            let how = format!(
                "{} + registered passkey \"{}\"",
                pending.method, passkey.name
            );
            let mut response = signed_in(&state, &parts, &challenge, &how, |_| {
                Redirect::to(&next).into_response()
            })
            .await?;
            forget_ceremony(&state, &parts, &mut response);
            Ok(response)
        }
        Err(AdminError::Invalid(why) | AdminError::Conflict(why)) => {
            let why = format!("The passkey was not registered: {why}.");
            sign_in_enrolment(&state, &parts, &pending.user, Some(&next), Some(&why)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The profile's summary of the user's passkeys, linking to their page.
pub(crate) async fn profile_summary(state: &WebState, name: &str) -> Result<Markup, WebError> {
    let passkeys = administration(state).passkeys(name).await?;
    Ok(html! {
        h2 { "Passkeys" }
        p {
            @if passkeys.is_empty() { span.no { "None." } " " }
            @else { span.yes { (passkeys.len()) } " registered. " }
            a #passkeys-link href="/profile/passkeys" { @if passkeys.is_empty() { "Add a passkey" } @else { "Manage" } }
        }
    })
}

/// GET /profile/passkeys
async fn profile_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let viewer = Viewer::of(&state, &parts).await?;
    let user = viewer.require_user("/profile/passkeys")?;
    let fields = Fields::query(&parts)?;
    passkeys_page(&state, &viewer, &user.name, &fields, None).await
}

async fn passkeys_page(
    state: &WebState,
    viewer: &Viewer,
    name: &str,
    fields: &Fields,
    failure: Option<&str>,
) -> PageResult {
    let passkeys = administration(state).passkeys(name).await?;
    let csrf = viewer
        .user
        .as_ref()
        .map(|u| u.csrf.as_str())
        .unwrap_or_default();
    let body = html! {
        h1 { "Passkeys" }
        (done_note(fields))
        p { "A passkey signs you in to this dashboard with your device's PIN, fingerprint or face (or a security key such as a YubiKey): on its own, with no password, or as the second step after your password. It cannot be phished: it only answers this site." }
        @if let Some(failure) = failure { p.failure role="alert" { (failure) } }
        (passkeys_table(viewer, &passkeys))
        @if let Some(relying_party) = state.access.passkeys() {
            h2 { "Add a passkey" }
            (ceremony_form("create", "/profile/passkeys/register", csrf, name_field(), "Add a passkey"))
            p.muted { "Passkeys are bound to " code { (relying_party.id()) } "." }
        } @else {
            p.notice { "Passkeys are off on this registry: they need its public URL (http.host, https or http://localhost) and auth.berth.passkeys not off." }
        }
        p.muted { "podman, docker and skopeo cannot use passkeys: use a personal access token with them (on your profile page)." }
        p { a href="/profile" { "Back to your profile" } }
    };
    let status = if failure.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, page(viewer, "Passkeys", None, body)).into_response())
}

fn passkeys_table(viewer: &Viewer, passkeys: &[PasskeyInfo]) -> Markup {
    html! {
        @if passkeys.is_empty() {
            p.muted #no-passkeys { "You have no passkeys." }
        } @else {
            div.table-wrap {
                table #passkeys {
                    thead { tr { th { "Name" } th { "Added" } th { "Last used" } th { "Synced" } th { span.skip { "Actions" } } } }
                    tbody {
                        @for passkey in passkeys {
                            tr {
                                td.name { (passkey.name) }
                                td { (when_stamp(&passkey.created_at)) }
                                td.last-used { @if let Some(at) = &passkey.last_used_at { (when_stamp(at)) } @else { "never" } }
                                td { @if passkey.backed_up { "yes" } @else { "no" } }
                                td { (button(viewer, &format!("/profile/passkeys/{}/remove", passkey.id), "Remove", true)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// POST /profile/passkeys/{options,register,<id>/remove}
async fn profile_action(State(state): Shared, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let action = parts
        .uri
        .path()
        .trim_start_matches("/profile/passkeys/")
        .to_string();
    if action == "register/options" {
        let begun = async {
            let viewer = Viewer::of(&state, &parts).await?;
            let form = Fields::body(body).await?;
            let user = viewer.check_csrf(&form)?;
            Ok::<_, WebError>(state.access.begin_passkey_registration(&user.name).await?)
        }
        .await;
        return match begun {
            Ok(begun) => options_response(&state, &parts, begun),
            Err(e) => e.into_json(),
        };
    }
    profile_change(&state, &parts, body, &action)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn profile_change(
    state: &WebState,
    parts: &Parts,
    body: axum::body::Body,
    action: &str,
) -> PageResult {
    if parts.method != Method::POST {
        return Err(WebError::MethodNotAllowed);
    }
    let viewer = Viewer::of(state, parts).await?;
    let name = viewer.require_user("/profile/passkeys")?.name.clone();
    let form = Fields::body(body).await?;
    viewer.check_csrf(&form)?;
    let admin = administration(state);
    let actor = own_actor(&viewer, &name);
    let back = |done: &str| {
        Redirect::to(&format!("/profile/passkeys{}", query(&[("done", done)]))).into_response()
    };
    match action.split('/').collect::<Vec<_>>().as_slice() {
        ["register"] => {
            let Some(answer) = answer(&form) else {
                return passkeys_page(
                    state,
                    &viewer,
                    &name,
                    &Fields::default(),
                    Some(NEEDS_SCRIPT),
                )
                .await;
            };
            let registered = admin
                .register_passkey(
                    &actor,
                    &name,
                    form.get("name").unwrap_or_default(),
                    cookie(parts, CEREMONY_COOKIE),
                    answer,
                )
                .await;
            let mut response = match registered {
                Ok(passkey) => back(&format!("Passkey \"{}\" added.", passkey.name)),
                Err(AdminError::Invalid(why) | AdminError::Conflict(why)) => {
                    let why = format!("The passkey was not added: {why}.");
                    passkeys_page(state, &viewer, &name, &Fields::default(), Some(&why)).await?
                }
                Err(other) => return Err(other.into()),
            };
            forget_ceremony(state, parts, &mut response);
            Ok(response)
        }
        [id, "remove"] => {
            let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
            let passkeys = admin.passkeys(&name).await?;
            let Some(passkey) = passkeys.iter().find(|p| p.id == id) else {
                return Err(WebError::NotFound);
            };
            // The last second factor of a user who must have one stays (an administrator can
            // reset it if the device is lost).
            if passkeys.len() == 1
                && state
                    .access
                    .second_factor_required(&viewer.caller.principal)
                && !state.access.has_authenticator(&name).await?
            {
                return passkeys_page(
                    state,
                    &viewer,
                    &name,
                    &Fields::default(),
                    Some("This registry requires a second factor for your account, and this passkey is your only one: add another passkey or an authenticator app first."),
                )
                .await;
            }
            admin.remove_passkey(&actor, &name, id).await?;
            Ok(back(&format!("Passkey \"{}\" removed.", passkey.name)))
        }
        _ => Err(WebError::NotFound),
    }
}
