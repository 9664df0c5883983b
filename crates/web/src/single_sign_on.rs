//! "Sign in with <provider>": OpenID Connect single sign-on (`auth.berth.oidc`).
//!
//! `GET /sign-in/oidc/<name>` starts a sign-in: the provider's `state`, `nonce` and PKCE
//! verifier are kept on the server (an `SsoRequest`, used once, ten minutes) under the hash
//! of a random `berth_sso` cookie, and the browser goes to the provider. The provider sends
//! it back to `/sign-in/oidc/<name>/callback`: the request is taken (once), `state` must be
//! the one sent, the code is exchanged and the ID token checked (`berth_auth::oidc`), and the
//! user is provisioned like a directory user (`AccessService::external_sign_in`). A second
//! factor may follow as after a password. Every refusal is an error page that says why, is
//! audited, and changes nothing.
//!
//! The `berth_sso` cookie is SameSite=Lax: it must come back with the provider's top-level
//! redirect. The session cookies are Strict, which browsers withhold for the rest of a
//! redirect chain that began on another site, so the callback answers with a page that moves
//! on to where the user was going (a same-site navigation that carries them).

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_auth::AuthFailure;
use berth_auth::oidc::{OidcError, OidcProvider};
use berth_auth::service::{FirstFactor, NextStep, SignInMethod};
use berth_meta::external_identities::SsoRequest;
use berth_meta::now_millis;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::session::{
    SIGN_IN_COOKIE, client, cookie, safe_next, set_cookie, set_session_cookies, user_agent,
};
use crate::{Shared, WebState, layout};

pub const SSO_COOKIE: &str = "berth_sso";
/// How long a sign-in may take at the provider.
const REQUEST_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// What a callback without its sign-in under way is told.
const NOT_STARTED: &str = "This sign-in was not started in this browser, was used already, or took longer than ten minutes. Start again from the sign-in page.";

/// The "Sign in with <provider>" buttons of the sign-in page (links: they work without
/// JavaScript).
pub(crate) fn buttons(state: &WebState, next: Option<&str>) -> Markup {
    let providers = state.access.oidc_providers();
    let next = safe_next(next);
    html! {
        @if !providers.is_empty() {
            div.single-sign-on {
                p { "Or sign in through your organisation:" }
                @for provider in providers {
                    a.button href=(format!("/sign-in/oidc/{}{}", provider.name(), layout::query(&[("next", &next)])))
                        data-provider=(provider.name()) {
                        "Sign in with " (provider.title())
                    }
                }
            }
        }
    }
}

fn provider<'a>(state: &'a WebState, name: &str) -> Result<&'a OidcProvider, WebError> {
    state
        .access
        .oidc_provider(name)
        .map(|p| p.as_ref())
        .ok_or(WebError::NotFound)
}

fn callback_url(state: &WebState, parts: &Parts, provider: &OidcProvider) -> String {
    format!(
        "{}/sign-in/oidc/{}/callback",
        state.urls.absolute_base(parts),
        provider.name()
    )
}

/// The `berth_sso` cookie: like the others, but SameSite=Lax (it comes back with the
/// provider's redirect) and only for the callback's path.
fn sso_cookie(state: &WebState, parts: &Parts, value: Option<&str>, max_age: u64) -> HeaderValue {
    let strict = set_cookie(state, parts, SSO_COOKIE, value, max_age);
    let text = strict
        .to_str()
        .unwrap_or_default()
        .replace("SameSite=Strict", "SameSite=Lax")
        .replace("Path=/;", "Path=/sign-in/oidc/;");
    HeaderValue::try_from(text).expect("cookie values are header-safe")
}

/// Refuses a sign-in: audited, an error page that says why.
fn refuse(state: &WebState, parts: &Parts, provider: &OidcProvider, why: String) -> WebError {
    state.access.audit(
        &berth_auth::Caller::anonymous(client(parts)),
        "login",
        "",
        "failed",
        &format!("{}: {why}", provider.source()),
    );
    WebError::BadRequest(why)
}

fn unavailable(state: &WebState, parts: &Parts, provider: &OidcProvider, cause: &str) -> WebError {
    tracing::warn!(
        provider = provider.name(),
        error = cause,
        "the OpenID provider cannot be reached"
    );
    state.access.audit(
        &berth_auth::Caller::anonymous(client(parts)),
        "login",
        "",
        "failed",
        &format!("{}: provider unavailable", provider.source()),
    );
    WebError::SignInUnavailable("the OpenID provider")
}

/// GET /sign-in/oidc/{provider}
pub async fn begin(State(state): Shared, Path(name): Path<String>, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let provider = provider(&state, &name)?;
    let query = Fields::query(&parts)?;
    let redirect = callback_url(&state, &parts, provider);
    let begun = match provider.begin(&redirect).await {
        Ok(begun) => begun,
        Err(OidcError::Unavailable(cause) | OidcError::Refused(cause)) => {
            return Err(unavailable(&state, &parts, provider, &cause));
        }
    };
    let secret = berth_auth::secret::random_token(32);
    let now = now_millis();
    state
        .access
        .store()
        .create_sso_request(&SsoRequest {
            id: berth_auth::secret::hash(&secret),
            provider: provider.name().to_string(),
            state: begun.state,
            nonce: begun.nonce,
            verifier: begun.verifier,
            next: safe_next(query.get("next")),
            created_at: now,
            expires_at: now + REQUEST_LIFETIME.as_millis() as i64,
        })
        .await?;
    let mut response = Redirect::to(&begun.url).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        sso_cookie(&state, &parts, Some(&secret), REQUEST_LIFETIME.as_secs()),
    );
    Ok(response)
}

/// GET /sign-in/oidc/{provider}/callback
pub async fn callback(
    State(state): Shared,
    Path(name): Path<String>,
    request: Request,
) -> PageResult {
    let (parts, _) = request.into_parts();
    let provider = provider(&state, &name)?;
    let query = Fields::query(&parts)?;
    let taken = match cookie(&parts, SSO_COOKIE) {
        Some(secret) => {
            state
                .access
                .store()
                .take_sso_request(&berth_auth::secret::hash(secret), now_millis())
                .await?
        }
        None => None,
    };
    let Some(pending) = taken.filter(|p| p.provider == provider.name()) else {
        return Err(refuse(&state, &parts, provider, NOT_STARTED.into()));
    };
    if let Some(error) = query.get("error") {
        let detail = query.get("error_description").unwrap_or_default();
        return Err(refuse(
            &state,
            &parts,
            provider,
            format!("{} did not sign you in: {error} {detail}", provider.title())
                .trim_end()
                .to_string(),
        ));
    }
    let returned = query.get("state").unwrap_or_default();
    if !berth_auth::secret::hash_matches(returned, &berth_auth::secret::hash(&pending.state)) {
        return Err(refuse(
            &state,
            &parts,
            provider,
            "The answer's state does not match this sign-in (a forged or replayed answer). Start again from the sign-in page.".into(),
        ));
    }
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        return Err(refuse(
            &state,
            &parts,
            provider,
            "The answer holds no authorization code.".into(),
        ));
    };
    let redirect = callback_url(&state, &parts, provider);
    let external = match provider
        .finish(&redirect, code, &pending.nonce, &pending.verifier)
        .await
    {
        Ok(external) => external,
        Err(OidcError::Refused(why)) => return Err(refuse(&state, &parts, provider, why)),
        Err(OidcError::Unavailable(cause)) => {
            return Err(unavailable(&state, &parts, provider, &cause));
        }
    };
    let caller = match state
        .access
        .external_sign_in(&external, provider.mapping(), client(&parts))
        .await
    {
        Ok(caller) => caller,
        Err(AuthFailure::Invalid(why)) => {
            return Err(WebError::Forbidden(crate::errors::sentence(why)));
        }
        Err(other) => return Err(other.into()),
    };
    let next = Some(pending.next.as_str());
    let mut response = match state
        .access
        .next_sign_in_step(&caller, FirstFactor::SingleSignOn)
        .await?
    {
        NextStep::Code(challenge) => {
            crate::second_factor::to_second_step(&state, &parts, &challenge, "/sign-in/code", next)
        }
        NextStep::Enrol(challenge) => {
            crate::second_factor::to_second_step(&state, &parts, &challenge, "/sign-in/enrol", next)
        }
        NextStep::Session => {
            let how = format!("single sign-on ({})", provider.name());
            let session = state
                .access
                .begin_session_with(&caller, &SignInMethod::one_factor(how), user_agent(&parts))
                .await?;
            let mut response = Redirect::to(&pending.next).into_response();
            set_session_cookies(&state, &parts, &mut response, &session);
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&state, &parts, SIGN_IN_COOKIE, None, 0),
            );
            response
        }
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, sso_cookie(&state, &parts, None, 0));
    Ok(onwards(response))
}

/// A redirect as a page that moves on by itself (see the module's documentation).
fn onwards(redirect: Response) -> Response {
    let (mut parts, _) = redirect.into_parts();
    let target = parts
        .headers
        .remove(header::LOCATION)
        .and_then(|l| l.to_str().map(str::to_string).ok())
        .unwrap_or_else(|| "/".into());
    let body = html! {
        section.sign-in #signed-in-elsewhere {
            h1 { "Signed in" }
            p { a #onwards href=(target) { "Continue" } }
        }
    };
    let page = layout::bare_moving_on("Signed in", Some(&target), body);
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut response = page.into_response();
    for value in parts.headers.get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, value.clone());
    }
    response
}
