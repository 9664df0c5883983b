//! Second factors in the dashboard: the sign-in's second step (a code from the user's
//! authenticator app, or a recovery code), enrolling an authenticator (a QR code drawn on
//! the server as SVG, and the secret to type; confirmed by a first code; ten recovery codes
//! shown once), right after the password for a user who must have one, or from the profile.
//!
//! Between the password and the session the browser holds a challenge cookie
//! (`berth_second_step`, HttpOnly, SameSite=Strict, five minutes; only its hash is stored),
//! and the forms carry the sign-in form's CSRF token. Checking codes, replay refusal and
//! throttling are [`berth_auth::AccessService::verify_second_factor`]'s; enrolment, removal
//! and resets go through `Administration`, which audits them.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_auth::admin::Actor;
use berth_auth::service::{CHALLENGE_LIFETIME, PendingSignIn, SignInMethod};
use berth_auth::{AuthFailure, Caller};
use berth_meta::second_factors::ChallengePurpose;
use data_encoding::BASE64;
use http::request::Parts;
use http::{Method, StatusCode, header};
use maud::{Markup, html};

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::layout::{copy_button, page, query, when_stamp};
use crate::pages::access::administration;
use crate::pages::admin::{done_note, post_form};
use crate::pages::profile::own_actor;
use crate::session::{
    CSRF_FIELD, SIGN_IN_COOKIE, SignedIn, Viewer, check_sign_in_csrf, client, cookie, safe_next,
    set_cookie, set_session_cookies, sign_in_token,
};
use crate::{Shared, WebState};

/// The cookie of a sign-in halfway.
pub const CHALLENGE_COOKIE: &str = "berth_second_step";

/// The answer to a right password when a second step follows: the challenge's cookie, and
/// on to `path` (keeping where the user was going).
pub(crate) fn to_second_step(
    state: &WebState,
    parts: &Parts,
    challenge: &str,
    path: &str,
    next: Option<&str>,
) -> Response {
    let mut response =
        Redirect::to(&format!("{path}{}", query(&[("next", &safe_next(next))]))).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            parts,
            CHALLENGE_COOKIE,
            Some(challenge),
            CHALLENGE_LIFETIME.as_secs(),
        ),
    );
    response
}

/// Nobody signed in yet (the sign-in and password reset pages).
pub(crate) fn anonymous(parts: &Parts) -> Viewer {
    Viewer {
        caller: Caller::anonymous(client(parts)),
        user: None,
        session_id: None,
        session_second_factor: false,
        sign_in_possible: true,
    }
}

/// The sign-in halfway of this browser, waiting for `purpose`; else back to the sign-in page.
pub(crate) async fn pending(
    state: &WebState,
    parts: &Parts,
    purpose: ChallengePurpose,
) -> Result<Result<(String, PendingSignIn), Response>, WebError> {
    let restart = || Redirect::to("/sign-in").into_response();
    let Some(challenge) = cookie(parts, CHALLENGE_COOKIE) else {
        return Ok(Err(restart()));
    };
    match state.access.pending_sign_in(challenge).await? {
        Some(found) if found.purpose == purpose => Ok(Ok((challenge.to_string(), found))),
        _ => Ok(Err(restart())),
    }
}

/// GET /sign-in/code
pub async fn code_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let query = Fields::query(&parts)?;
    match pending(&state, &parts, ChallengePurpose::Code).await? {
        Ok((_, pending)) => {
            let factors = Factors::of(&state, &pending.user).await?;
            Ok(code_form(
                &parts,
                query.get("next"),
                None,
                StatusCode::OK,
                factors,
            ))
        }
        Err(restart) => Ok(restart),
    }
}

/// Which second factors a user signing in can give.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Factors {
    pub authenticator: bool,
    pub passkey: bool,
}

impl Factors {
    pub(crate) async fn of(state: &WebState, user: &str) -> Result<Factors, WebError> {
        Ok(Factors {
            authenticator: state.access.has_authenticator(user).await?,
            passkey: crate::passkeys::enabled(state) && state.access.has_passkey(user).await?,
        })
    }
}

pub(crate) fn code_form(
    parts: &Parts,
    next: Option<&str>,
    failure: Option<&str>,
    status: StatusCode,
    factors: Factors,
) -> Response {
    let body = html! {
        section.sign-in {
            h1 { "Two-factor authentication" }
            @if let Some(failure) = failure {
                p.failure role="alert" { (failure) }
            }
            @if factors.authenticator {
                p { "Enter the six-digit code your authenticator app shows for this registry, or one of your recovery codes." }
                form method="post" action="/sign-in/code" {
                    input type="hidden" name=(CSRF_FIELD) value=(sign_in_token(parts));
                    input type="hidden" name="next" value=(safe_next(next));
                    label for="code" { "Code" }
                    input #code type="text" name="code" autocomplete="one-time-code" required autofocus
                        maxlength="32" spellcheck="false";
                    button type="submit" { "Verify" }
                }
            }
            @if factors.passkey {
                (crate::passkeys::second_step_block(parts, next))
            }
            p.muted { "Lost your device? Use a recovery code, or ask an administrator to reset your second factor." }
        }
    };
    (
        status,
        page(&anonymous(parts), "Two-factor authentication", None, body),
    )
        .into_response()
}

/// POST /sign-in/code
pub async fn code_submit(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let next = form.get("next");
    let (challenge, pending) = match pending(&state, &parts, ChallengePurpose::Code).await? {
        Ok(found) => found,
        Err(restart) => return Ok(restart),
    };
    let code = form.get("code").unwrap_or_default().trim();
    let factor = match state
        .access
        .verify_second_factor(&pending.user, code, client(&parts))
        .await
    {
        Ok(factor) => factor,
        Err(AuthFailure::Invalid(why)) => {
            let message = format!("That code was not accepted: {why}.");
            let factors = Factors::of(&state, &pending.user).await?;
            return Ok(code_form(
                &parts,
                next,
                Some(&message),
                StatusCode::UNAUTHORIZED,
                factors,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let how = format!("{} + {}", pending.method, factor.as_str());
    signed_in(&state, &parts, &challenge, &how, |_| {
        Redirect::to(&safe_next(next)).into_response()
    })
    .await
}

/// Ends the sign-in halfway and begins the session: `respond` makes the page (given the new
/// viewer), to which the session's cookies are added and the second step's removed.
pub(crate) async fn signed_in(
    state: &WebState,
    parts: &Parts,
    challenge: &str,
    how: &str,
    respond: impl FnOnce(&Viewer) -> Response,
) -> PageResult {
    let caller = state
        .access
        .finish_sign_in(challenge, client(parts))
        .await?;
    let session = state
        .access
        .begin_session_with(
            &caller,
            &SignInMethod::two_factors(how),
            crate::session::user_agent(parts),
        )
        .await?;
    let viewer = Viewer {
        user: match &caller.principal {
            berth_auth::Principal::User { name, .. } => Some(SignedIn {
                name: name.clone(),
                csrf: session.csrf_token.clone(),
            }),
            _ => None,
        },
        caller,
        // The page answering the sign-in is a redirect; nothing on it names the session.
        session_id: None,
        session_second_factor: true,
        sign_in_possible: true,
    };
    let mut response = respond(&viewer);
    set_session_cookies(state, parts, &mut response, &session);
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(state, parts, CHALLENGE_COOKIE, None, 0),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(state, parts, SIGN_IN_COOKIE, None, 0),
    );
    Ok(response)
}

/// The secret as people copy it: groups of four.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The QR code of the authenticator's setup link, drawn here as SVG (an image: the page's
/// policy allows `data:` images and no inline markup from elsewhere).
fn qr_code(uri: &str) -> Markup {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(220, 220)
                .dark_color(qrcode::render::svg::Color("#000000"))
                .light_color(qrcode::render::svg::Color("#ffffff"))
                .build();
            html! {
                img.qr src={ "data:image/svg+xml;base64," (BASE64.encode(svg.as_bytes())) }
                    alt="QR code to add this account to an authenticator app" width="220" height="220";
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no QR code for the authenticator setup link");
            html! {}
        }
    }
}

/// Enrolling an authenticator: the QR code, the secret, and the form of the first code.
fn enrolment(
    state: &WebState,
    user: &str,
    secret: &str,
    form: Markup,
    failure: Option<&str>,
) -> Markup {
    let issuer = &state.access.second_factor_policy().issuer;
    let uri = berth_auth::totp::provisioning_uri(secret, issuer, user).unwrap_or_default();
    html! {
        section.panel.enrol {
            ol {
                li {
                    p { "Scan this QR code with an authenticator app (FreeOTP, Aegis, Google Authenticator, 1Password, …):" }
                    (qr_code(&uri))
                }
                li {
                    p { "Or enter this key in the app by hand (time-based, 6 digits, 30 seconds):" }
                    div.pull {
                        code #totp-secret { (grouped(secret)) }
                        (copy_button(secret, "Copy the key"))
                    }
                }
                li {
                    p { "Enter the code the app shows, to confirm:" }
                    @if let Some(failure) = failure {
                        p.failure role="alert" { (failure) }
                    }
                    (form)
                }
            }
        }
    }
}

fn code_fields(button: &str) -> Markup {
    html! {
        label for="code" { "Code" }
        input #code type="text" name="code" autocomplete="one-time-code" inputmode="numeric"
            required maxlength="8" spellcheck="false";
        button type="submit" { (button) }
    }
}

/// The recovery codes just made, shown this once.
fn recovery_codes_page(viewer: &Viewer, codes: &[String], next: &str) -> Response {
    let body = html! {
        h1 { "Your recovery codes" }
        section.panel {
            p { "Keep these codes somewhere safe (a password manager, or on paper). Each one signs you in once instead of a code from your authenticator, if you lose it. They are not shown again." }
            ul #recovery-codes.codes {
                @for code in codes { li { code { (code) } } }
            }
            p { (copy_button(&codes.join("\n"), "Copy the recovery codes")) }
        }
        p { a.button href=(next) { "Continue" } }
    };
    page(viewer, "Recovery codes", None, body).into_response()
}

/// A page that shows a refusal (a wrong code) is a 400, else a 200.
fn status_of(failure: Option<&str>) -> StatusCode {
    if failure.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// GET /sign-in/enrol: a user who must have a second factor enrols one before the session.
pub async fn enrol_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let query = Fields::query(&parts)?;
    let (_, pending) = match pending(&state, &parts, ChallengePurpose::Enrol).await? {
        Ok(found) => found,
        Err(restart) => return Ok(restart),
    };
    sign_in_enrolment(&state, &parts, &pending.user, query.get("next"), None).await
}

pub(crate) async fn sign_in_enrolment(
    state: &WebState,
    parts: &Parts,
    user: &str,
    next: Option<&str>,
    failure: Option<&str>,
) -> PageResult {
    let secret = administration(state)
        .pending_authenticator(user, false)
        .await?;
    let form = html! {
        form.stack method="post" action="/sign-in/enrol" {
            input type="hidden" name=(CSRF_FIELD) value=(sign_in_token(parts));
            input type="hidden" name="next" value=(safe_next(next));
            (code_fields("Confirm and sign in"))
        }
    };
    let body = html! {
        section.sign-in.wide {
            h1 { "Set up two-factor authentication" }
            p { "This registry requires a second factor for your account. Add it to an authenticator app now; from then on you sign in with your password and a code from the app." }
            (enrolment(state, user, &secret, form, failure))
            (crate::passkeys::enrol_block(state, parts, next))
        }
    };
    Ok((
        status_of(failure),
        page(
            &anonymous(parts),
            "Set up two-factor authentication",
            None,
            body,
        ),
    )
        .into_response())
}

/// POST /sign-in/enrol
pub async fn enrol_submit(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    check_sign_in_csrf(&parts, &form)?;
    let next = safe_next(form.get("next"));
    let (challenge, pending) = match pending(&state, &parts, ChallengePurpose::Enrol).await? {
        Ok(found) => found,
        Err(restart) => return Ok(restart),
    };
    let actor = Actor::Principal {
        subject: format!("user:{}", pending.user),
        client: client(&parts),
    };
    let code = form.get("code").unwrap_or_default().trim();
    let codes = match administration(&state)
        .confirm_authenticator(&actor, &pending.user, code)
        .await
    {
        Ok(codes) => codes,
        Err(berth_auth::admin::AdminError::Invalid(why)) => {
            return sign_in_enrolment(&state, &parts, &pending.user, Some(&next), Some(&why)).await;
        }
        Err(other) => return Err(other.into()),
    };
    let how = format!("{} + enrolled authenticator", pending.method);
    signed_in(&state, &parts, &challenge, &how, |viewer| {
        recovery_codes_page(viewer, &codes, &next)
    })
    .await
}

/// GET /profile/second-factor
pub async fn profile_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let viewer = Viewer::of(&state, &parts).await?;
    let user = viewer.require_user("/profile/second-factor")?;
    let fields = Fields::query(&parts)?;
    second_factor_page(&state, &viewer, &user.name, &fields, None).await
}

async fn second_factor_page(
    state: &WebState,
    viewer: &Viewer,
    name: &str,
    fields: &Fields,
    failure: Option<&str>,
) -> PageResult {
    let admin = administration(state);
    let info = admin.second_factors(name).await?;
    let required = state
        .access
        .second_factor_required(&viewer.caller.principal);
    let body = if info.authenticator {
        html! {
            (done_note(fields))
            section.panel {
                dl.facts {
                    dt { "Authenticator app" } dd.yes { "on" }
                    dt { "Since" } dd { (when_stamp(info.enrolled_at.as_deref().unwrap_or_default())) }
                    dt { "Recovery codes left" } dd #codes-left { (info.recovery_codes_left) }
                }
            }
            h2 { "Recovery codes" }
            p { "New codes replace the old ones, used or not." }
            (post_form(viewer, "/profile/second-factor/recovery-codes", "inline", html! {
                button.secondary type="submit" { "Make new recovery codes" }
            }))
            h2 { "Remove" }
            @if required {
                p.muted { "This registry requires a second factor for your account, so it cannot be removed. An administrator can reset it if you lose your device." }
            } @else {
                @if let Some(failure) = failure { p.failure role="alert" { (failure) } }
                (post_form(viewer, "/profile/second-factor/remove", "row", html! {
                    label { "Your password" input type="password" name="password" autocomplete="current-password" required; }
                    button.danger type="submit" { "Remove the authenticator" }
                }))
            }
        }
    } else {
        let secret = admin.pending_authenticator(name, false).await?;
        let form = post_form(
            viewer,
            "/profile/second-factor/confirm",
            "stack",
            code_fields("Turn on"),
        );
        html! {
            (done_note(fields))
            p { "Protect your sign-in with a code from an authenticator app on your phone, in addition to your password." }
            @if required {
                p.notice { "This registry requires a second factor for your account." }
            }
            (enrolment(state, name, &secret, form, failure))
            p.muted { "podman, docker and skopeo cannot ask for a code: use a personal access token with them (on your profile page)." }
        }
    };
    let body = html! { h1 { "Two-factor authentication" } (body) p { a href="/profile" { "Back to your profile" } } };
    Ok((
        status_of(failure),
        page(viewer, "Two-factor authentication", None, body),
    )
        .into_response())
}

/// POST /profile/second-factor/{confirm,recovery-codes,remove}
pub async fn profile_action(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(WebError::MethodNotAllowed);
    }
    let viewer = Viewer::of(&state, &parts).await?;
    let name = viewer.require_user("/profile/second-factor")?.name.clone();
    let action = parts
        .uri
        .path()
        .trim_start_matches("/profile/second-factor/")
        .to_string();
    let form = Fields::body(body).await?;
    viewer.check_csrf(&form)?;
    let admin = administration(&state);
    let actor = own_actor(&viewer, &name);
    let back = |done: &str| {
        Ok(Redirect::to(&format!(
            "/profile/second-factor{}",
            query(&[("done", done)])
        ))
        .into_response())
    };
    match action.as_str() {
        "confirm" => {
            let code = form.get("code").unwrap_or_default().trim();
            match admin.confirm_authenticator(&actor, &name, code).await {
                Ok(codes) => Ok(recovery_codes_page(
                    &viewer,
                    &codes,
                    "/profile/second-factor",
                )),
                Err(berth_auth::admin::AdminError::Invalid(why)) => {
                    second_factor_page(&state, &viewer, &name, &Fields::default(), Some(&why)).await
                }
                Err(other) => Err(other.into()),
            }
        }
        "recovery-codes" => {
            let codes = admin.new_recovery_codes(&actor, &name).await?;
            Ok(recovery_codes_page(
                &viewer,
                &codes,
                "/profile/second-factor",
            ))
        }
        "remove" => {
            if state
                .access
                .second_factor_required(&viewer.caller.principal)
            {
                return Err(WebError::Refused(
                    "This registry requires a second factor for your account.".into(),
                ));
            }
            let password = form.get("password").unwrap_or_default();
            match state
                .access
                .first_factor(&name, password, client(&parts))
                .await
            {
                Ok(_) => {}
                Err(AuthFailure::Invalid(_)) => {
                    return second_factor_page(
                        &state,
                        &viewer,
                        &name,
                        &Fields::default(),
                        Some("The password is wrong."),
                    )
                    .await;
                }
                Err(other) => return Err(other.into()),
            }
            admin.remove_second_factors(&actor, &name).await?;
            back("The authenticator was removed; you sign in with your password alone.")
        }
        _ => Err(WebError::NotFound),
    }
}

/// The profile's summary of the user's second factor, linking to its page.
pub async fn profile_summary(state: &WebState, name: &str) -> Result<Markup, WebError> {
    let info = administration(state).second_factors(name).await?;
    Ok(html! {
        h2 { "Two-factor authentication" }
        p {
            @if info.authenticator {
                span.yes { "On" } " (authenticator app, " (info.recovery_codes_left) " recovery codes left). "
            } @else {
                span.no { "Off." } " "
            }
            a #second-factor-link href="/profile/second-factor" { @if info.authenticator { "Manage" } @else { "Set up an authenticator app" } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_shown_in_groups_of_four() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    #[test]
    fn the_qr_code_is_an_svg_image() {
        let markup = qr_code("otpauth://totp/berth:alice?secret=JBSWY3DPEHPK3PXP&issuer=berth")
            .into_string();
        let encoded = markup
            .split("data:image/svg+xml;base64,")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a data URL");
        let svg = String::from_utf8(BASE64.decode(encoded.as_bytes()).unwrap()).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
