//! Who is looking at a page, signing in and out, and CSRF.
//!
//! Signing in checks the user name and password (or access token) exactly as `podman login`
//! does ([`berth_auth::AccessService::login`], throttled the same way) and begins a session.
//! Two cookies follow, both HttpOnly and SameSite=Strict (Secure over HTTPS): the session
//! itself (`berth_session`, the same cookie the admin API accepts) and its CSRF token
//! (`berth_csrf`), which the database keeps only as a hash. Pages put the token in every
//! form; a POST is accepted only when the form's token is the session's. The sign-in form,
//! made before any session exists, carries a token of its own from the `berth_signin` cookie.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use berth_api::ConnectionInfo;
use berth_api::admin_api::SESSION_COOKIE;
use berth_auth::service::{NewSession, NextStep, SignInMethod};
use berth_auth::{AuthFailure, Caller, Mode, Principal};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use maud::html;

use crate::errors::{PageResult, WebError};
use crate::forms::Fields;
use crate::{Shared, WebState, layout};

pub const CSRF_COOKIE: &str = "berth_csrf";
pub const SIGN_IN_COOKIE: &str = "berth_signin";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub name: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

/// Who is looking.
pub struct Viewer {
    pub caller: Caller,
    pub user: Option<SignedIn>,
    /// The id of the viewer's session, if signed in.
    pub session_id: Option<String>,
    /// Whether the viewer's session began with a second factor.
    pub session_second_factor: bool,
    /// Whether berth runs its own authentication (else there is nobody to sign in as).
    pub sign_in_possible: bool,
}

impl Viewer {
    /// The viewer of a request: the session's user, or anonymous. A session that ended is
    /// simply no session; a database that cannot be reached is an error page.
    pub async fn of(state: &WebState, parts: &Parts) -> Result<Viewer, WebError> {
        let client = client(parts);
        let sign_in_possible = matches!(state.access.mode(), Mode::Berth(_));
        let anonymous = Viewer {
            caller: Caller::anonymous(client),
            user: None,
            session_id: None,
            session_second_factor: false,
            sign_in_possible,
        };
        let Some(session_cookie) = cookie(parts, SESSION_COOKIE) else {
            return Ok(anonymous);
        };
        if !sign_in_possible {
            return Ok(anonymous);
        }
        let csrf = cookie(parts, CSRF_COOKIE);
        match state.access.session(session_cookie, csrf, client).await {
            Ok(session) => {
                let user = match &session.caller.principal {
                    Principal::User { name, .. } => Some(SignedIn {
                        name: name.clone(),
                        // A session begun through the admin API has no CSRF cookie: its
                        // pages show, its forms are refused.
                        csrf: if session.csrf_ok {
                            csrf.unwrap_or_default().to_string()
                        } else {
                            String::new()
                        },
                    }),
                    _ => None,
                };
                Ok(Viewer {
                    caller: session.caller,
                    user,
                    session_id: Some(session.id),
                    session_second_factor: session.second_factor,
                    sign_in_possible,
                })
            }
            Err(AuthFailure::Invalid(_)) => Ok(anonymous),
            Err(other) => Err(other.into()),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.caller.principal.is_admin()
    }

    /// The signed-in user, or a trip to the sign-in page and back to `path`.
    pub fn require_user(&self, path: &str) -> Result<&SignedIn, WebError> {
        self.user
            .as_ref()
            .ok_or_else(|| WebError::SignInRequired(path.to_string()))
    }

    /// Checks a posted form's CSRF token against the session's.
    pub fn check_csrf(&self, form: &Fields) -> Result<&SignedIn, WebError> {
        let refused = || {
            WebError::Forbidden(
                "The form's security token is missing or stale. Reload the page and try again."
                    .into(),
            )
        };
        let user = self.user.as_ref().ok_or_else(refused)?;
        let presented = form.get(CSRF_FIELD).unwrap_or_default();
        if user.csrf.is_empty()
            || !berth_auth::secret::hash_matches(presented, &berth_auth::secret::hash(&user.csrf))
        {
            return Err(refused());
        }
        Ok(user)
    }

    /// A predicate telling which repositories the viewer may pull (and so see).
    pub async fn visible(
        &self,
        state: &WebState,
    ) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, WebError> {
        Ok(state.access.pull_filter(&self.caller).await?)
    }
}

/// The address of the client (for throttling and the audit log).
pub fn client(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectionInfo>()
        .map(|c| c.peer.ip())
}

/// The browser's `User-Agent`, if it sent a readable one.
pub fn user_agent(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// A cookie's value.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && !value.is_empty()).then_some(value)
        })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure when the dashboard is served over
/// HTTPS; `None` removes the cookie.
pub(crate) fn set_cookie(
    state: &WebState,
    parts: &Parts,
    name: &str,
    value: Option<&str>,
    max_age: u64,
) -> HeaderValue {
    let secure = if state.urls.absolute_base(parts).starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = match value {
        Some(value) => {
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
        }
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    // Names are constants and values are base64url or hex tokens: always a valid header.
    HeaderValue::try_from(text).expect("cookie values are header-safe")
}

/// Where to go after signing in: a path on this site, never another origin.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

/// GET /sign-in
pub async fn sign_in_page(State(state): Shared, request: Request) -> PageResult {
    let (parts, _) = request.into_parts();
    let query = Fields::query(&parts)?;
    let viewer = Viewer::of(&state, &parts).await?;
    if viewer.user.is_some() {
        return Ok(Redirect::to(&safe_next(query.get("next"))).into_response());
    }
    Ok(sign_in_form(
        &state,
        &parts,
        &viewer,
        query.get("next"),
        None,
        StatusCode::OK,
    ))
}

pub(crate) fn sign_in_form(
    state: &WebState,
    parts: &Parts,
    viewer: &Viewer,
    next: Option<&str>,
    failure: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = sign_in_token(parts);
    let body = html! {
        section.sign-in {
            h1 { "Sign in" }
            @if !viewer.sign_in_possible {
                p.notice { "This registry does not run berth's own authentication (auth: berth), so there is nobody to sign in as." }
            } @else {
                p { "Use the user name and password (or access token) you give " code { "podman login" } "." }
                @if let Some(failure) = failure {
                    p.failure role="alert" { (failure) }
                }
                form method="post" action="/sign-in" {
                    input type="hidden" name=(CSRF_FIELD) value=(token);
                    input type="hidden" name="next" value=(safe_next(next));
                    label for="username" { "User name" }
                    input #username type="text" name="username" autocomplete="username" required autofocus;
                    label for="password" { "Password or access token" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
                @if crate::password_reset::offered(state) {
                    p { a #forgot href="/sign-in/forgot" { "Forgot your password?" } }
                }
                (crate::passkeys::sign_in_block(state, &token, next))
                (crate::single_sign_on::buttons(state, next))
            }
        }
    };
    let mut response = (status, layout::page(viewer, "Sign in", None, body)).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, sign_in_cookie(state, parts, &token));
    response
}

/// POST /sign-in
pub async fn sign_in(State(state): Shared, request: Request) -> PageResult {
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    let anonymous = Viewer {
        caller: Caller::anonymous(client(&parts)),
        user: None,
        session_id: None,
        session_second_factor: false,
        sign_in_possible: matches!(state.access.mode(), Mode::Berth(_)),
    };
    if !anonymous.sign_in_possible {
        return Err(WebError::Refused(
            "The dashboard's sign-in needs berth's own authentication (auth: berth).".into(),
        ));
    }
    check_sign_in_csrf(&parts, &form)?;
    let next = form.get("next");
    let username = form.get("username").unwrap_or_default().trim();
    let password = form.get("password").unwrap_or_default();
    let (caller, method) = match state
        .access
        .first_factor(username, password, client(&parts))
        .await
    {
        Ok(found) => found,
        Err(AuthFailure::Invalid(why)) => {
            return Ok(sign_in_form(
                &state,
                &parts,
                &anonymous,
                next,
                Some(&crate::errors::sentence(why)),
                StatusCode::UNAUTHORIZED,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    // A second factor, or enrolling one, may come between the password and the session.
    let (challenge, step) = match state.access.next_sign_in_step(&caller, method).await? {
        NextStep::Session => (None, ""),
        NextStep::Code(challenge) => (Some(challenge), "/sign-in/code"),
        NextStep::Enrol(challenge) => (Some(challenge), "/sign-in/enrol"),
    };
    if let Some(challenge) = challenge {
        return Ok(crate::second_factor::to_second_step(
            &state, &parts, &challenge, step, next,
        ));
    }
    let session = match state
        .access
        .begin_session_with(
            &caller,
            &SignInMethod::one_factor(method.as_str()),
            user_agent(&parts),
        )
        .await
    {
        Ok(session) => session,
        Err(AuthFailure::Invalid(why)) => {
            return Ok(sign_in_form(
                &state,
                &parts,
                &anonymous,
                next,
                Some(why),
                StatusCode::FORBIDDEN,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let mut response = Redirect::to(&safe_next(next)).into_response();
    set_session_cookies(&state, &parts, &mut response, &session);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, &parts, SIGN_IN_COOKIE, None, 0),
    );
    Ok(response)
}

/// The CSRF token of forms made before any session exists: the `berth_signin` cookie's, or
/// a new one (which [`sign_in_cookie`] sets).
pub(crate) fn sign_in_token(parts: &Parts) -> String {
    cookie(parts, SIGN_IN_COOKIE)
        .filter(|t| t.len() >= 32 && t.len() <= 128)
        .map_or_else(|| berth_auth::secret::random_token(32), str::to_string)
}

/// The `berth_signin` cookie carrying `token`.
pub(crate) fn sign_in_cookie(state: &WebState, parts: &Parts, token: &str) -> HeaderValue {
    set_cookie(state, parts, SIGN_IN_COOKIE, Some(token), 3600)
}

/// Checks the CSRF token of a sign-in form (made before any session exists) against the
/// `berth_signin` cookie.
pub(crate) fn check_sign_in_csrf(parts: &Parts, form: &Fields) -> Result<(), WebError> {
    let expected = cookie(parts, SIGN_IN_COOKIE).unwrap_or_default();
    let presented = form.get(CSRF_FIELD).unwrap_or_default();
    if expected.is_empty()
        || !berth_auth::secret::hash_matches(presented, &berth_auth::secret::hash(expected))
    {
        return Err(WebError::Forbidden(
            "The sign-in form's security token is missing or stale. Reload the page and try again."
                .into(),
        ));
    }
    Ok(())
}

/// Sets the cookies of a session just begun (signing in, or a new session after a password
/// change ended the old ones).
pub fn set_session_cookies(
    state: &WebState,
    parts: &Parts,
    response: &mut Response,
    session: &NewSession,
) {
    let lifetime = berth_auth::service::SESSION_LIFETIME.as_secs();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            state,
            parts,
            SESSION_COOKIE,
            Some(&session.cookie),
            lifetime,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            state,
            parts,
            CSRF_COOKIE,
            Some(&session.csrf_token),
            lifetime,
        ),
    );
}

/// POST /sign-out: ends the session and removes its cookies.
pub async fn sign_out(State(state): State<Arc<WebState>>, request: Request<Body>) -> PageResult {
    if request.method() != Method::POST {
        return Err(WebError::MethodNotAllowed);
    }
    let (parts, body) = request.into_parts();
    let form = Fields::body(body).await?;
    let viewer = Viewer::of(&state, &parts).await?;
    if viewer.user.is_some() {
        viewer.check_csrf(&form)?;
        if let Some(cookie) = cookie(&parts, SESSION_COOKIE) {
            state.access.end_session(cookie).await?;
        }
    }
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, &parts, SESSION_COOKIE, None, 0),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, &parts, CSRF_COOKIE, None, 0),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/r/team/app")), "/r/team/app");
        for bad in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil",
            "x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
